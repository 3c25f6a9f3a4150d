"""Evaluation: the scores in evaluation.json recomputed here from a plain forward pass over the test
and holdout segments, with the metrics written out in the test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fxcap.dataset import SequenceDataset
from fxcap.errors import ModelError
from fxcap.modeling.evaluate import current_evaluation, evaluate_run
from fxcap.modeling.metrics import esr_grade
from fxcap.modeling.train import load_run


def _per_setting(model, dataset, split):
    """``{drive: (prediction, target)}``: every segment from a zero state, concatenated per knob setting."""
    segments = SequenceDataset(dataset, split)
    groups: dict[float, tuple[list, list]] = {}
    for index in range(len(segments)):
        x, y, knobs = segments[index]
        with torch.no_grad():
            pred, _ = model(x[None], knobs[None])
        preds, targets = groups.setdefault(float(segments.row(index)["knob_drive_raw"]), ([], []))
        preds.append(pred[0].double().numpy())
        targets.append(y.double().numpy())
    return {key: (np.concatenate(p), np.concatenate(t)) for key, (p, t) in groups.items()}


def test_scores_equal_an_independent_computation(tiny_run, tiny_dataset):
    summary = evaluate_run(tiny_run)
    saved = json.loads((tiny_run / "evaluation.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    per_knob = pd.read_csv(tiny_run / "evaluation_per_knob.csv")
    assert list(per_knob.columns[:2]) == ["split", "knob_drive"]  # no index column
    metrics = {"l1", "esr", "esr_db", "mrstft", "stft_2048", "lufs_diff", "crest_factor_diff_db", "rms_diff_db", "transient",
               "correlation"}
    assert set(per_knob.columns) == {"split", "knob_drive"} | metrics
    inverted = {"warnings"} if (per_knob["correlation"] < 0).any() else set()
    assert set(saved) == {"run", "model", "parameters", "compute", "dataset_hash", "checkpoint", "test", "holdout",
                          "test_worst_setting", "holdout_worst_setting"} | inverted
    assert (saved["run"], saved["checkpoint"]) == (tiny_run.name, "best")
    assert saved["dataset_hash"] == json.loads((tiny_run / "config.json").read_text())["dataset"]["hash"]
    assert set(saved["test"]) == set(saved["holdout"]) == metrics | {"settings", "esr_worst", "grade"}
    model, _ = load_run(tiny_run)
    for split, drives in (("test", [0.0, 10.0]), ("holdout", [5.0])):
        settings = _per_setting(model, tiny_dataset, split)
        assert sorted(settings) == drives and saved[split]["settings"] == len(drives)
        esr, esr_db, l1, rms_diff = {}, {}, {}, {}
        for drive, (pred, target) in settings.items():
            # the prediction's energy is far from the target's, so an ESR over the wrong energy (or with
            # prediction and target swapped) gives another number
            assert abs(np.log(np.sum(pred**2) / np.sum(target**2))) > np.log(1.2)
            esr[drive] = np.sum((pred - target) ** 2) / np.sum(target**2)
            esr_db[drive] = 10 * np.log10(esr[drive])
            l1[drive] = np.mean(np.abs(pred - target))
            rms_diff[drive] = abs(20 * np.log10(np.sqrt(np.mean(pred**2)) / np.sqrt(np.mean(target**2))))
            row = per_knob[(per_knob["split"] == split) & (per_knob["knob_drive"] == drive)]
            assert len(row) == 1
            assert row["esr"].item() == pytest.approx(esr[drive], rel=1e-4)
            assert row["l1"].item() == pytest.approx(l1[drive], rel=1e-4)
        # every setting weighs the same: the mean over settings (not the max, not pooled audio)
        for name, values in (("esr", esr), ("esr_db", esr_db), ("l1", l1), ("rms_diff_db", rms_diff)):
            assert saved[split][name] == pytest.approx(np.mean(list(values.values())), rel=1e-4, abs=1e-6), name
        # the worst setting, by value and by name, and the mean's grade in words
        worst = max(esr, key=esr.get)
        assert saved[split]["esr_worst"] == pytest.approx(esr[worst], rel=1e-4)
        assert saved[f"{split}_worst_setting"] == f"drive={worst:g}"
        assert saved[split]["grade"] == esr_grade(saved[split]["esr"])
    test = _per_setting(model, tiny_dataset, "test")
    values = [np.sum((p - t) ** 2) / np.sum(t**2) for p, t in test.values()]
    assert max(values) > 1.05 * np.mean(values)  # the two settings differ: a max would show


def test_a_different_dataset_is_refused(tiny_run, tmp_path):
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
    from fxcap.dataset.testing import make_dummy_session

    session = make_dummy_session(tmp_path / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0, seed=3)
    build_dataset([session.root], tmp_path / "other", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    with pytest.raises(ModelError, match="hash differs"):
        evaluate_run(tiny_run, tmp_path / "other")


def test_an_inverted_output_is_flagged(tiny_run, tmp_path):
    import shutil

    from fxcap.modeling.checkpoint import save_weights

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    first = evaluate_run(run)
    model, _ = load_run(run)
    with torch.no_grad():
        model.output.weight.neg_()
        model.output.bias.neg_()
    save_weights(run / "best.safetensors", model, {"epoch": 1, "valid_loss": 0.0})
    second = evaluate_run(run)
    assert second["test"]["correlation"] == pytest.approx(-first["test"]["correlation"], rel=1e-4)
    inverted = first if first["test"]["correlation"] < 0 else second
    assert inverted["warnings"] and all("the output is inverted" in line for line in inverted["warnings"])


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
    assert current_evaluation(_scored_run(tmp_path, summary)) == summary


@pytest.mark.parametrize("evaluation, after_best", [
    ({"checkpoint": "best", "dataset_hash": "abc"}, False),  # the best checkpoint changed since (training went on)
    ({"checkpoint": "best", "dataset_hash": "other"}, True),  # scored on another dataset (fxcap evaluate --dataset)
    ({"checkpoint": "last", "dataset_hash": "abc"}, True),  # scored the last checkpoint
    ('{"checkpoint": "be', True),  # cut short
])
def test_an_evaluation_of_something_else_is_scored_again(tmp_path, evaluation, after_best):
    assert current_evaluation(_scored_run(tmp_path, evaluation, evaluated_after_best=after_best)) is None


def test_a_run_never_scored_is_scored(tmp_path):
    (tmp_path / "best.safetensors").write_bytes(b"weights")
    assert current_evaluation(tmp_path) is None
