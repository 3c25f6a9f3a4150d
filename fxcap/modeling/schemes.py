"""The conditioning schemes: one record per scheme, the one list every stage reads.

A :class:`Scheme` holds all fxcap knows about a scheme: its name, its model class (a
:class:`~fxcap.modeling.base.ConditionedRNN` subclass whose constructor takes a
:class:`~fxcap.modeling.config.ModelConfig`), the learning rate it trains at per preset (replacing the
preset's), the compute the paper reports for it (the reference of :mod:`fxcap.modeling.compute`), and
its fast path (the inference plan and the autograd run of :mod:`fxcap.modeling.fast`, attached by the
fast package when it is imported; ``None``: the scheme runs its reference PyTorch code).

``ModelConfig`` validation, ``build_model``, ``fxcap train --cond all``, the sweep grid, the run order
of ``fxcap compare``, the presets' learning rates, the compute table and the fast path all read this
registry. Adding a scheme is one registration::

    from fxcap.modeling.schemes import Scheme, register_scheme

    register_scheme(Scheme("myscheme", model=MyRNN, lr={"default": 2e-3}))

This module imports nothing else of :mod:`fxcap.modeling`: the built-in records name their model
class as ``"module:Class"``, imported on first use, so the lowest layers (the config, the base
class) can read the registry without an import cycle (``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from fxcap.errors import ModelError

__all__ = [
    "BUILTIN_SCHEMES", "Scheme", "accelerator", "attach_fast_path", "get_scheme", "install_accelerator",
    "register_scheme", "scheme_for_class", "scheme_names", "unregister_scheme",
]


@dataclass
class Scheme:
    """One conditioning scheme.

    Attributes:
        name: the ``ModelConfig.cond`` value that selects it (lower case).
        model: the model class, or ``"package.module:Class"`` (imported on first use).
        lr: preset name -> Adam learning rate that replaces the preset's ``lr`` for this scheme
            (unless the user sets ``lr``); presets not listed keep their rate.
        batch_size: preset name -> windows per step that replace the preset's ``batch_size`` for
            this scheme (unless the user sets it): a scheme whose steps cost more gets more, smaller
            steps in the same time.
        max_epochs: preset name -> epochs (of the preset's ``steps_per_epoch`` steps) that replace the
            preset's ``max_epochs`` for this scheme (unless the user sets it): more of those smaller
            steps, where they fit the time the others take.
        paper_gflops: cell -> GFLOPs per second of 48 kHz audio the paper reports for the scheme
            (GRU, 2 knobs); what ``fxcap.modeling.compute`` compares its own count with.
        fast_plan: builds the inference plan of a model of exactly :meth:`model_class`
            (``fxcap.modeling.fast.plans``); ``None``: inference runs the reference.
        fast_run: the fast drop-in for the model's ``_run`` under autograd
            (``fxcap.modeling.fast.autograd``); ``None``: training runs the reference.
    """

    name: str
    model: type | str
    lr: Mapping[str, float] = field(default_factory=dict)
    batch_size: Mapping[str, int] = field(default_factory=dict)
    max_epochs: Mapping[str, int] = field(default_factory=dict)
    paper_gflops: Mapping[str, float] = field(default_factory=dict)
    fast_plan: Callable[[Any], Any] | None = None
    fast_run: Callable[..., Any] | None = None

    def model_class(self) -> type:
        """The model class (importing its module the first time)."""
        if isinstance(self.model, str):
            module, _, name = self.model.partition(":")
            self.model = getattr(importlib.import_module(module), name)
        return self.model

    def model_path(self) -> str:
        """``"module:Class"`` of the model class (without importing it)."""
        if isinstance(self.model, str):
            return self.model
        return f"{self.model.__module__}:{self.model.__qualname__}"


_SCHEMES: dict[str, Scheme] = {}
_BY_CLASS: dict[type, Scheme | None] = {}
_ACCELERATOR: list[Callable[..., Any]] = []


def register_scheme(scheme: Scheme) -> Scheme:
    """Add ``scheme`` to the registry (after the others: the order of :func:`scheme_names`).

    Registering a name again with the same model class updates the record; with another class it
    raises :class:`ModelError`.
    """
    name = str(scheme.name).lower()
    scheme.name = name
    old = _SCHEMES.get(name)
    if old is not None and old.model_path() != scheme.model_path():
        raise ModelError(f"model name {name!r} is already registered to {old.model_path().rpartition(':')[2]}")
    _SCHEMES[name] = scheme
    _BY_CLASS.clear()
    return scheme


def unregister_scheme(name: str) -> None:
    """Remove the scheme ``name`` (a no-op when it is not registered)."""
    _SCHEMES.pop(str(name).lower(), None)
    _BY_CLASS.clear()


def scheme_names() -> list[str]:
    """Names of the registered schemes, built-ins first in the paper's order, then in registration order."""
    return list(_SCHEMES)


def get_scheme(name: str) -> Scheme:
    """The registered scheme ``name``; :class:`ModelError` naming the registered ones otherwise."""
    scheme = _SCHEMES.get(str(name).lower())
    if scheme is None:
        raise ModelError(f"unknown conditioning scheme {name!r}; choose one of {', '.join(_SCHEMES)}")
    return scheme


def scheme_for_class(cls: type) -> Scheme | None:
    """The scheme whose model class is exactly ``cls`` (a subclass may change the maths, so it gets
    no record of its parent's and runs the reference), or ``None``."""
    if cls not in _BY_CLASS:
        path = f"{cls.__module__}:{cls.__qualname__}"
        _BY_CLASS[cls] = next((s for s in _SCHEMES.values() if s.model_path() == path and s.model_class() is cls), None)
    return _BY_CLASS[cls]


def attach_fast_path(model: type, *, plan: Callable[[Any], Any] | None = None, run: Callable[..., Any] | None = None) -> None:
    """Record the inference ``plan`` and/or autograd ``run`` of the scheme whose model class is exactly
    ``model`` (called by :mod:`fxcap.modeling.fast` when it is imported); nothing happens when no
    scheme is registered to that class."""
    path = f"{model.__module__}:{model.__qualname__}"
    for scheme in _SCHEMES.values():
        if scheme.model_path() == path:
            scheme.fast_plan = plan or scheme.fast_plan
            scheme.fast_run = run or scheme.fast_run


def install_accelerator(dispatch: Callable[..., Any]) -> None:
    """Install the fast path's dispatcher, which ``ConditionedRNN.forward`` calls (see
    :func:`fxcap.modeling.fast.dispatch`); the fast package does this when it is imported."""
    _ACCELERATOR[:] = [dispatch]


def accelerator() -> Callable[..., Any] | None:
    """The installed dispatcher, or ``None`` (the fast package was not imported: reference path)."""
    return _ACCELERATOR[0] if _ACCELERATOR else None


BUILTIN_SCHEMES: tuple[str, ...] = tuple(
    register_scheme(scheme).name
    for scheme in (
        # Concat's knobs enter only as extra inputs, so its plain input weights must themselves grow large
        # and it trains faster at a higher rate; the hypernetwork schemes scale their weights through the
        # knobs and diverge at that rate. DynamicHyper's training costs about 4x the others' per window,
        # so the default preset gives it more, smaller steps: 20 000 of batch 4 (16 000 of 16 for the
        # others), which fit the 20-minute budget where batch 8 did not (measurements: docs/quality.md).
        Scheme("concat", "fxcap.modeling.concat:ConcatRNN", lr={"quick": 1e-2, "default": 1e-2}, paper_gflops={"gru": 0.325}),
        Scheme("film", "fxcap.modeling.film:FiLMRNN", paper_gflops={"gru": 0.307}),
        Scheme("statichyper", "fxcap.modeling.static_hyper:StaticHyperRNN", paper_gflops={"gru": 0.003}),
        Scheme("dynamichyper", "fxcap.modeling.dynamic_hyper:DynamicHyperRNN", lr={"default": 2e-3},
               batch_size={"default": 4}, max_epochs={"default": 200}, paper_gflops={"gru": 1.907}),
    )
)
"""The paper's four schemes, in its order (registered when this module is imported)."""
