"""One registry for every model: ``build_model(config)``.

Built-in schemes (registered on first use)::

    concat        fxcap.modeling.concat.ConcatRNN
    film          fxcap.modeling.film.FiLMRNN
    statichyper   fxcap.modeling.static_hyper.StaticHyperRNN
    dynamichyper  fxcap.modeling.dynamic_hyper.DynamicHyperRNN

Parameter counts for the paper's settings (H = 32, ``Linear(32, 1)`` output)::

                     Concat  FiLM   StaticHyper  DynamicHyper
    GRU,  2 knobs    3585    17217  30369        20289
    GRU,  1 knob     3489    17185  30361        20169
    LSTM, 2 knobs    4769    22561  40449        21857

A new scheme registers itself with ``@register_model("name")`` on a
:class:`~fxcap.modeling.base.ConditionedRNN` subclass whose constructor takes a
:class:`~fxcap.modeling.config.ModelConfig`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

import torch

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.config import ModelConfig

__all__ = ["ModelConfig", "build_model", "register_model", "registered_models"]

_BUILTIN_MODULES = (
    "fxcap.modeling.concat",
    "fxcap.modeling.film",
    "fxcap.modeling.static_hyper",
    "fxcap.modeling.dynamic_hyper",
)
_REGISTRY: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: make ``build_model`` build ``cls`` for ``config.cond == name``."""

    def decorator(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ModelError(f"model name {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_builtin() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def registered_models() -> list[str]:
    """Names ``build_model`` accepts as ``config.cond``."""
    _load_builtin()
    return sorted(_REGISTRY)


def build_model(config: ModelConfig | dict[str, Any]) -> ConditionedRNN:
    """Build the model described by ``config`` (a :class:`ModelConfig` or its ``to_dict()``).

    With ``config.seed`` set, initialisation is deterministic and torch's global RNG is left untouched.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    _load_builtin()
    if config.cond not in _REGISTRY:
        raise ModelError(f"no model registered as {config.cond!r}; registered: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[config.cond]
    if config.seed is None:
        return _with_filters(cls(config), config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _with_filters(cls(config), config)


def _with_filters(model: ConditionedRNN, config: ModelConfig) -> torch.nn.Module:
    """``model`` itself, or wrapped in learned linear filters when ``config`` asks for them."""
    if not (config.pre_filter_poles or config.post_filter_poles):
        return model
    from fxcap.modeling.filters import FilteredRNN

    return FilteredRNN(model, config.pre_filter_poles, config.post_filter_poles)
