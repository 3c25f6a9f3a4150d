"""Presets and per-scheme training settings (fxcap.modeling.pipeline)."""

import pytest

from fxcap.errors import ModelError
from fxcap.modeling.pipeline import PRESETS, SCHEME_LR, preset_config


def test_preset_config_applies_the_scheme_rate_unless_the_user_sets_one():
    assert preset_config("quick", "concat").lr == SCHEME_LR["quick"]["concat"] != PRESETS["quick"].lr
    assert preset_config("quick", "film").lr == PRESETS["quick"].lr
    assert preset_config("quick", "concat", {"lr": 5e-4}).lr == 5e-4
    assert preset_config("paper", "concat").lr == 1e-3  # the paper's recipe is left as published
    config = preset_config("quick", "dynamichyper", {"max_epochs": 2}, seed=7)
    assert (config.max_epochs, config.seed, config.lr_schedule) == (2, 7, "cosine")


def test_every_preset_warms_the_stft_term_up():
    assert all(config.stft_warmup_steps > 0 for config in PRESETS.values())


def test_bad_preset_or_schedule_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown preset 'fast'"):
        preset_config("fast", "concat")
    with pytest.raises(ModelError, match="lr_schedule must be one of plateau, cosine"):
        preset_config("quick", "concat", {"lr_schedule": "linear"})
