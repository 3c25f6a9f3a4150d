"""bench/quality.py: a finished run is reused only when it was trained with the job's settings, and its
evaluation only when it scores that run's best checkpoint on its dataset."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quality import earlier_evaluation, refuse_other_settings  # noqa: E402

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


def _scored_run(tmp_path: Path, evaluation: dict | str, *, evaluated_after_best: bool = True) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"dataset": {"path": "d", "hash": "abc"}}))
    (tmp_path / "best.safetensors").write_bytes(b"weights")
    (tmp_path / "evaluation.json").write_text(evaluation if isinstance(evaluation, str) else json.dumps(evaluation))
    best_time = 1_000_000.0
    os.utime(tmp_path / "best.safetensors", (best_time, best_time))
    scored = best_time + (10.0 if evaluated_after_best else -10.0)
    os.utime(tmp_path / "evaluation.json", (scored, scored))
    return tmp_path


def test_the_evaluation_of_the_best_checkpoint_on_the_runs_dataset_is_read_not_scored_again(tmp_path):
    summary = {"checkpoint": "best", "dataset_hash": "abc", "test": {"esr": 0.004}}
    assert earlier_evaluation(_scored_run(tmp_path, summary)) == summary


@pytest.mark.parametrize("evaluation, after_best", [
    ({"checkpoint": "best", "dataset_hash": "abc"}, False),  # the best checkpoint changed since (training went on)
    ({"checkpoint": "best", "dataset_hash": "other"}, True),  # scored on another dataset (fxcap evaluate --dataset)
    ({"checkpoint": "last", "dataset_hash": "abc"}, True),  # scored the last checkpoint
    ('{"checkpoint": "be', True),  # cut short
])
def test_an_evaluation_of_something_else_is_scored_again(tmp_path, evaluation, after_best):
    assert earlier_evaluation(_scored_run(tmp_path, evaluation, evaluated_after_best=after_best)) is None


def test_a_run_never_scored_is_scored(tmp_path):
    (tmp_path / "best.safetensors").write_bytes(b"weights")
    assert earlier_evaluation(tmp_path) is None
