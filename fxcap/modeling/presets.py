"""Training presets: the :class:`TrainConfig` and the model options each preset names.

``paper`` is the paper's recipe, ``default`` what fxcap recommends, ``quick`` a short look. A scheme may
replace a preset's learning rate, batch size and length (``Scheme.lr``, ``Scheme.batch_size``,
``Scheme.max_epochs`` in :mod:`fxcap.modeling.schemes`); the user's overrides replace them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fxcap.errors import ModelError
from fxcap.modeling.schemes import get_scheme, scheme_names
from fxcap.modeling.train_config import TrainConfig

STFT_WARMUP_STEPS = 400
"""The paper preset lets the time-domain L1 term lead for the first steps (see ``TrainConfig.stft_warmup_steps``):
without it a model can settle with inverted polarity, which the STFT terms cannot see."""

ESR_LOSS: dict[str, Any] = dict(
    l1_weight=0.0, stft_weight=0.0, pre_emphasis=False, stft_warmup_steps=0,
    esr_weight=1.0, dc_weight=1.0, esr_emphasis=0.85, esr_per_setting=True, loss_skip=None,
)
"""The loss of the ``default`` and ``quick`` presets (``default`` with :data:`DEFAULT_ESR_EMPHASIS`): ESR
(pre-emphasis ``1 - 0.85 z^-1``) + DC, each window divided by its knob setting's power so every setting
weighs alike, the first eighth of each window (its zero-state warm-up: 256 of 2048 samples) left out.
The measurements behind it are in ``docs/quality.md``."""

DEFAULT_ESR_EMPHASIS = 0.7
"""The ``default`` preset's ESR pre-emphasis ``1 - 0.7 z^-1``: over its 16 000 steps, 0.85 weighs the mid
band (a 1 kHz tone's level) too little (about 76x less than the top octave; 0.7: 23x) and 0.5 the weak
treble harmonics of a clean, bright setting too little (``docs/quality.md``, "The pre-emphasis")."""

CLEAN_WHERE_LINEAR: dict[str, Any] = dict(linear_penalty=None, linear_bands=12, linearisation="level")
"""The ``default`` preset's pressure to be clean where the device is: at the settings whose training
target a linear filter of the input explains (a drive pedal at drive 0), the model's nonlinear part
(its output less its change with the input's level) is pushed down per frequency band
(:mod:`fxcap.modeling.linearity`), with the weight the device's kind gets
(:meth:`TrainConfig.for_device`: none for a compressor). One extra run of the model on those windows;
no effect on a device without linear settings. The measurements behind it are in ``docs/quality.md``."""

PRESETS: dict[str, TrainConfig] = {
    # The paper's recipe: batch 80, Adam 1e-3 halved on plateaus, long training, early stopping decides,
    # L1 + 0.1 MRSTFT on pre-emphasised signals (plus the STFT warm-up, which only reweights the first steps).
    "paper": TrainConfig(batch_size=80, max_epochs=300, steps_per_epoch=None, early_stop_patience=10, valid_windows=None,
                         stft_warmup_steps=STFT_WARMUP_STEPS),
    # What fxcap recommends: 16 000 steps of batch 16 on a cosine schedule with the ESR loss (a milder
    # pre-emphasis than the quick preset's: DEFAULT_ESR_EMPHASIS), clean where the device is linear, and
    # learned linear filters and knob gains around the cell (PRESET_MODELS); 13-18 minutes per model on one
    # core (DynamicHyper, 20 000 steps of batch 4 by its Scheme record, about 18; `--time-budget 20` caps any of them).
    "default": TrainConfig(batch_size=16, max_epochs=160, steps_per_epoch=100, lr=3e-3, lr_schedule="cosine", warmup_steps=100,
                           early_stop_patience=160, valid_windows=64,
                           **{**ESR_LOSS, "esr_emphasis": DEFAULT_ESR_EMPHASIS}, **CLEAN_WHERE_LINEAR),
    # A quick look: the same recipe with ESR_LOSS's pre-emphasis, 2500 steps (the OD-3 quick recipe's four
    # models in minutes on 2 CPU cores).
    "quick": TrainConfig(batch_size=16, max_epochs=50, steps_per_epoch=50, lr=3e-3, lr_schedule="cosine", warmup_steps=100,
                         early_stop_patience=50, valid_windows=64, **ESR_LOSS),
}

PRESET_MODELS: dict[str, dict[str, Any]] = {
    "default": {"pre_filter_poles": 6, "post_filter_poles": 6, "knob_gains": True},
    "quick": {"pre_filter_poles": 6, "post_filter_poles": 6},
}
"""``ModelConfig`` fields a preset sets (architecture options beyond the paper's; ``paper`` sets none, so
its models keep the paper's exact parameter counts)."""


def preset_model_options(preset: str) -> dict[str, Any]:
    """The :class:`ModelConfig` fields of ``preset`` (:data:`PRESET_MODELS`), to be overridden by the user's."""
    if preset not in PRESETS:
        raise ModelError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    return dict(PRESET_MODELS.get(preset, {}))


def preset_config(preset: str, cond: str, overrides: dict[str, Any] | None = None, **fields: Any) -> TrainConfig:
    """The :class:`TrainConfig` of ``preset`` for scheme ``cond``: the preset, the scheme's rate, batch
    size and epochs for it (``Scheme.lr``, ``Scheme.batch_size``, ``Scheme.max_epochs``,
    :mod:`fxcap.modeling.schemes`), then ``overrides`` and ``fields`` (both replace the preset's fields)."""
    if preset not in PRESETS:
        raise ModelError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    record = get_scheme(cond) if cond in scheme_names() else None
    scheme = {name: getattr(record, name)[preset] for name in ("lr", "batch_size", "max_epochs")
              if record is not None and preset in getattr(record, name)}
    return replace(PRESETS[preset], **{**scheme, **(overrides or {}), **fields})
