"""Each recipe's quick preset, end to end (slow: a minute or two of CPU each; CI runs them).

Only sizes differ from the recipes as published: two tiny epochs (:data:`SHORT_TRAINING`), the LA-2A
recipe's short files, and for the OD-3 recipe a smaller test share and shorter report excerpts
(:data:`SMALL_SPLIT`, :func:`small_report`): the same steps run, on less audio.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

SHORT_TRAINING = {"max_epochs": 2, "steps_per_epoch": 2, "batch_size": 4, "valid_windows": 8}
"""Two tiny epochs: enough to exercise training, resume bookkeeping, evaluation and the report (the
model quality is the README's measured table, not this test's)."""

SMALL_SPLIT = (0.9, 0.05, 0.05)
"""Train/valid/test shares: a sixth of the recipe's test audio to score (every setting still has some)."""


def small_report():
    """Report excerpts of half a second (1 s of program material for the knob response) at 60 dpi."""
    from fxcap.report import ExcerptConfig, ReportConfig

    return ReportConfig(excerpts=ExcerptConfig(analysis_seconds=1.0, audio_seconds=0.5), dpi=60)


def _load(name):
    sys.path.insert(0, str(RECIPES))
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_result(result, schemes=("concat", "film", "statichyper", "dynamichyper")):
    test = result["test"]
    assert list(test["scheme"]) == list(schemes)
    assert np.isfinite(test["esr"]).all()
    for run in result["runs"]:
        assert (Path(run) / "best.safetensors").is_file() and (Path(run) / "evaluation.json").is_file()
    report = Path(result["report"])
    html = report.read_text() if report.suffix == ".html" else (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "data:audio/wav;base64," in html


@pytest.mark.slow
def test_od3_quick_recipe(tmp_path):
    od3 = _load("od3")
    study = od3.od3_study(tmp_path / "od3", quick=True)
    study.train_overrides = SHORT_TRAINING  # the plumbing, not the model quality (see the recipe's README numbers)
    study.split, study.report_config = SMALL_SPLIT, small_report()
    result = od3.run_study(study)
    _check_result(result)
    params = dict(zip(result["test"]["scheme"], result["test"]["params"]))
    filters = 2 * (2 * 6 + 1)  # the quick preset's learned 6-pole filters before and after the cell
    paper = {"concat": 3585, "film": 17217, "statichyper": 30369, "dynamichyper": 20289}
    assert params == {scheme: count + filters for scheme, count in paper.items()}
    assert len(result["holdout"]) == 4
    session = json.loads((tmp_path / "od3" / "session" / "session.json").read_text())
    assert len(session["takes"]) == 25 and session["status"] == "complete"


@pytest.mark.slow
def test_la2a_quick_recipe_on_signaltrain_style_files(tmp_path):
    """The LA-2A recipe on files laid out like SignalTrain (input_<id>_.wav / target_<id>_LA2A_...)."""
    from fxcap.capture.virtual import build_virtual_device

    rate, seconds = 44100, 8.0
    rng = np.random.default_rng(0)
    folder = tmp_path / "signaltrain"
    folder.mkdir()
    for ident in (1, 2):
        t = np.arange(int(rate * seconds)) / rate
        envelope = np.repeat(rng.uniform(0.05, 0.9, int(seconds * 4)), rate // 4)[: len(t)]
        dry = (envelope * np.sin(2 * np.pi * rng.uniform(100, 400) * t)).astype(np.float32)
        sf.write(folder / f"input_{ident}_.wav", dry, rate, subtype="FLOAT")
        for switch, mode in ((0, "compress"),):
            for peak in (0, 50, 100):
                device = build_virtual_device("LA-2A", rate)
                wet = device.process(dry, {"peak_reduction": peak, "mode": mode})
                sf.write(folder / f"target_{ident}_LA2A_2c__{switch}__{peak}.wav", wet, rate, subtype="FLOAT")
    la2a = _load("la2a")
    from fxcap.capture.signaltrain import import_signaltrain

    sessions = [s.root for s in import_signaltrain(folder, tmp_path / "la2a" / "sessions")]
    study = la2a.la2a_study(tmp_path / "la2a", quick=True, sessions=sessions)
    study.window = 4096  # 8-second files: shorter windows and segments than the recipe's so every split has some
    study.segment_seconds = 0.5
    study.train_overrides = SHORT_TRAINING
    study.report_config = small_report()
    _check_result(la2a.run_study(study))
