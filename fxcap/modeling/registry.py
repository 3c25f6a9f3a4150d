"""Build any registered model: ``build_model(config)``.

The schemes (name, model class, learning rates, compute reference, fast path) are records of
:mod:`fxcap.modeling.schemes`; the built-in ones::

    concat        fxcap.modeling.concat.ConcatRNN
    film          fxcap.modeling.film.FiLMRNN
    statichyper   fxcap.modeling.static_hyper.StaticHyperRNN
    dynamichyper  fxcap.modeling.dynamic_hyper.DynamicHyperRNN

Parameter counts for the paper's settings (H = 32, ``Linear(32, 1)`` output)::

                     Concat  FiLM   StaticHyper  DynamicHyper
    GRU,  2 knobs    3585    17217  30369        20289
    GRU,  1 knob     3489    17185  30361        20169
    LSTM, 2 knobs    4769    22561  40449        21857

A new scheme is one :func:`~fxcap.modeling.schemes.register_scheme` call (or ``@register_model("name")``
on a :class:`~fxcap.modeling.base.ConditionedRNN` subclass whose constructor takes a
:class:`~fxcap.modeling.config.ModelConfig`, for a scheme with no other settings). Importing this
module imports the fast path (:mod:`fxcap.modeling.fast`), which attaches itself to the built-in schemes.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch

import fxcap.modeling.fast  # noqa: F401  (installs the fast path: models built here run on it)
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.config import ModelConfig
from fxcap.modeling.filters import FilteredRNN
from fxcap.modeling.schemes import Scheme, get_scheme, register_scheme, scheme_names

__all__ = ["ModelConfig", "build_model", "register_model", "registered_models"]

T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: register ``cls`` as the scheme ``name`` (a :class:`Scheme` with no learning-rate
    override, compute reference or fast path); ``build_model`` then builds it for ``config.cond == name``."""

    def decorator(cls: T) -> T:
        register_scheme(Scheme(name, model=cls))
        return cls

    return decorator


def registered_models() -> list[str]:
    """Names ``build_model`` accepts as ``config.cond`` (:func:`fxcap.modeling.schemes.scheme_names`)."""
    return scheme_names()


def build_model(config: ModelConfig | dict[str, Any]) -> ConditionedRNN:
    """Build the model described by ``config`` (a :class:`ModelConfig` or its ``to_dict()``).

    With ``config.seed`` set, initialisation is deterministic and torch's global RNG is left untouched.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    cls = get_scheme(config.cond).model_class()
    if config.seed is None:
        return _with_filters(cls(config), config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _with_filters(cls(config), config)


def _with_filters(model: ConditionedRNN, config: ModelConfig) -> torch.nn.Module:
    """``model`` itself, or wrapped in learned linear filters when ``config`` asks for them."""
    if not (config.pre_filter_poles or config.post_filter_poles or config.knob_gains or config.even_gain):
        return model
    return FilteredRNN(model, config.pre_filter_poles, config.post_filter_poles, config.knob_gains, config.even_gain)
