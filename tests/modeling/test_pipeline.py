"""Presets and per-scheme training settings (fxcap.modeling.pipeline)."""

import pytest

from fxcap.errors import ModelError
from fxcap.modeling.pipeline import PRESETS, preset_config
from fxcap.modeling.schemes import get_scheme


def test_preset_config_applies_the_scheme_rate_batch_and_epochs_unless_the_user_sets_them():
    assert preset_config("quick", "concat").lr == get_scheme("concat").lr["quick"] != PRESETS["quick"].lr
    assert preset_config("quick", "film").lr == PRESETS["quick"].lr
    assert preset_config("quick", "concat", {"lr": 5e-4}).lr == 5e-4
    assert preset_config("paper", "concat").lr == 1e-3  # the paper's recipe is left as published
    assert preset_config("default", "dynamichyper").batch_size == get_scheme("dynamichyper").batch_size["default"] < PRESETS["default"].batch_size
    assert preset_config("default", "film").batch_size == PRESETS["default"].batch_size
    assert preset_config("default", "dynamichyper", {"batch_size": 32}).batch_size == 32  # the user's choice wins
    assert preset_config("paper", "dynamichyper").batch_size == PRESETS["paper"].batch_size
    # DynamicHyper: more, smaller steps in the default preset; the others keep its length
    assert preset_config("default", "dynamichyper").max_epochs == get_scheme("dynamichyper").max_epochs["default"] > PRESETS["default"].max_epochs
    assert preset_config("default", "concat").max_epochs == PRESETS["default"].max_epochs
    assert preset_config("default", "dynamichyper", {"max_epochs": 3}).max_epochs == 3
    config = preset_config("quick", "dynamichyper", {"max_epochs": 2}, seed=7)
    assert (config.max_epochs, config.seed, config.lr_schedule) == (2, 7, "cosine")


def test_every_preset_with_an_stft_term_warms_it_up():
    assert all(config.stft_warmup_steps > 0 for config in PRESETS.values() if config.stft_weight > 0)


def test_the_paper_preset_keeps_the_paper_models_and_the_others_add_filters_and_gains():
    from fxcap.modeling.pipeline import preset_model_options
    from fxcap.modeling.registry import ModelConfig, build_model

    assert preset_model_options("paper") == {}
    paper = build_model(ModelConfig(cond="concat", num_knobs=2, **preset_model_options("paper")))
    assert sum(p.numel() for p in paper.parameters()) == 3585  # the paper's Concat GRU
    default = build_model(ModelConfig(cond="concat", num_knobs=2, **preset_model_options("default")))
    assert sum(p.numel() for p in default.parameters()) == 3585 + 2 * (2 * 6 + 1) + 2 * (2 + 1)  # filters, knob gains
    quick = build_model(ModelConfig(cond="concat", num_knobs=2, **preset_model_options("quick")))
    assert sum(p.numel() for p in quick.parameters()) == 3585 + 2 * (2 * 6 + 1)


def test_only_the_default_preset_asks_a_pedal_to_be_clean_where_it_is_linear():
    from fxcap.modeling.train_config import DEVICE_LINEAR_PENALTY

    default = preset_config("default", "statichyper")
    assert default.for_device("overdrive").linear_penalty == DEVICE_LINEAR_PENALTY
    assert default.for_device("compressor").linear_penalty == 0.0
    assert (default.linear_bands, default.linearisation) == (12, "level")
    assert all(preset_config(name, "film").for_device("overdrive").linear_penalty == 0.0 for name in ("paper", "quick"))


def test_bad_preset_or_schedule_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown preset 'fast'"):
        preset_config("fast", "concat")
    with pytest.raises(ModelError, match="lr_schedule must be one of plateau, cosine"):
        preset_config("quick", "concat", {"lr_schedule": "linear"})


def test_a_scheme_that_diverges_is_recorded_and_the_others_still_train(tmp_path, monkeypatch):
    import json

    import fxcap.modeling.pipeline as pipeline
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
    from fxcap.dataset.testing import make_dummy_session
    from fxcap.errors import TrainingDivergedError

    session = make_dummy_session(tmp_path / "session", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], tmp_path / "data", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    real_train = pipeline.train

    def train(dataset, model_config, run_dir, config, resume=False, **kw):
        if model_config.cond == "film":
            run_dir.mkdir(parents=True, exist_ok=True)
            raise TrainingDivergedError("training diverged: 20 steps in a row had a non-finite loss (epoch 1)")
        return real_train(dataset, model_config, run_dir, config, resume=resume, **kw)

    monkeypatch.setattr(pipeline, "train", train)
    request = pipeline.TrainRequest(conds=["film", "concat"], dataset=tmp_path / "data", runs_dir=tmp_path / "runs", preset="quick",
                                    overrides={"window": 512, "max_epochs": 1, "steps_per_epoch": 2, "batch_size": 2,
                                               "valid_windows": 4, "stft_warmup_steps": 0})
    results = pipeline.train_models(request)
    assert [r.name for r in results.runs] == ["concat-gru-s0"]
    (failed, reason), = results.failed.items()
    assert failed.name == "film-gru-s0" and "diverged" in reason
    assert json.loads((failed / "failed.json").read_text())["scheme"] == "film"
    assert list(results.comparison["scheme"]) == ["concat"]
