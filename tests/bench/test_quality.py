"""bench/quality.py: a finished run is reused only when it was trained with the job's settings."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quality import changed_settings  # noqa: E402

from fxcap.modeling.pipeline import preset_config, preset_model_options  # noqa: E402
from fxcap.modeling.registry import ModelConfig  # noqa: E402


def _run(tmp_path: Path, train: dict, model: dict) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"train": train, "model": model}))
    return tmp_path


def test_changed_settings_names_each_field_that_differs_and_reads_missing_fields_as_defaults(tmp_path):
    config = preset_config("default", "film", seed=1)
    model = ModelConfig(cond="film", num_knobs=2, **preset_model_options("default"))
    run = _run(tmp_path, config.to_dict(), model.to_dict())
    assert changed_settings(run, config, model) == []
    older = {k: v for k, v in config.to_dict().items() if k != "linearisation"}  # a run that predates the field
    run = _run(tmp_path, older, model.to_dict())
    assert changed_settings(run, config, model) == (
        [] if config.linearisation == "silence" else ['train.linearisation: "silence" -> "level"'])
    other = replace(config, linear_bands=config.linear_bands + 1, lr=0.5)
    assert changed_settings(run, other, replace(model, hidden_size=48)) == [
        f"train.lr: {json.dumps(config.lr)} -> 0.5",
        f"train.linear_bands: {config.linear_bands} -> {config.linear_bands + 1}",
        *([] if config.linearisation == "silence" else ['train.linearisation: "silence" -> "level"']),
        "model.hidden_size: 32 -> 48",
    ]
