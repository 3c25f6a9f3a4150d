"""bench/quality.py: a finished run is reused only when it was trained with the job's settings."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quality import refuse_other_settings  # noqa: E402

from fxcap.modeling.pipeline import preset_config, preset_model_options  # noqa: E402
from fxcap.modeling.registry import ModelConfig  # noqa: E402


def _run(tmp_path: Path, train: dict, model: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"train": train, "model": model}))
    return tmp_path


def test_a_run_with_the_jobs_settings_is_reused_and_a_missing_field_reads_as_its_default(tmp_path):
    config = preset_config("default", "film", seed=1)
    model = ModelConfig(cond="film", num_knobs=2, **preset_model_options("default"))
    refuse_other_settings(_run(tmp_path, config.to_dict(), model.to_dict()), config, model)
    older = {k: v for k, v in config.to_dict().items() if k != "linearisation"}  # a run that predates the field
    silence = replace(config, linearisation="silence")  # the field's default
    refuse_other_settings(_run(tmp_path, older, model.to_dict()), silence, model)
    with pytest.raises(SystemExit, match="linearisation silence -> level"):
        refuse_other_settings(_run(tmp_path, older, model.to_dict()), replace(config, linearisation="level"), model)


def test_every_changed_setting_is_named_the_resumable_ones_too(tmp_path):
    config = preset_config("default", "film", seed=1)
    model = ModelConfig(cond="film", num_knobs=2, **preset_model_options("default"))
    run = _run(tmp_path, config.to_dict(), model.to_dict())
    other = replace(config, linear_bands=config.linear_bands + 1, lr=0.5, max_epochs=config.max_epochs * 2)
    with pytest.raises(SystemExit) as refused:
        refuse_other_settings(run, other, replace(model, hidden_size=48))
    message = str(refused.value)
    for change in (f"lr {config.lr} -> 0.5", f"linear_bands {config.linear_bands} -> {config.linear_bands + 1}",
                   f"max_epochs {config.max_epochs} -> {config.max_epochs * 2}", "model hidden_size 32 -> 48"):
        assert change in message
    assert "time_budget_s" not in message and "seed" not in message
