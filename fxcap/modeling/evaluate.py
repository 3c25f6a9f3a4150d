"""Scoring a trained run on the dataset's test split (and held-out knob settings).

Every test segment is processed from a zero state, like the training windows. Metrics (see
:mod:`fxcap.modeling.metrics` for exact definitions) are computed per knob setting on the
concatenated segments of that setting, then averaged over settings (each setting weighs the same).
The result is written to ``<run>/evaluation.json`` and ``<run>/evaluation_per_knob.csv``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fxcap.dataset import SequenceDataset, load_dataset_info
from fxcap.errors import ModelError
from fxcap.io import atomic_write_json, atomic_write_text
from fxcap.modeling.compute import compute_cost
from fxcap.modeling.compute_context import compute_context
from fxcap.modeling.inference import run_blocks
from fxcap.modeling.metrics import esr_grade, score_all
from fxcap.modeling.run_folder import read_run_config
from fxcap.modeling.train import load_run

EVAL_SPLITS = ("test", "holdout")


def _predict_batched(model: torch.nn.Module, inputs: list[np.ndarray], knobs: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Model outputs for many segments, run in batches of equal-length segments (zero initial state each)."""
    outputs: list[np.ndarray | None] = [None] * len(inputs)
    by_length: dict[int, list[int]] = {}
    for index, x in enumerate(inputs):
        by_length.setdefault(len(x), []).append(index)
    for indices in by_length.values():
        for start in range(0, len(indices), batch):
            chunk = indices[start : start + batch]
            x = torch.from_numpy(np.stack([inputs[i] for i in chunk]))
            k = torch.from_numpy(np.stack([knobs[i] for i in chunk]))
            y = run_blocks(model, x, k)[0].numpy()
            for row, i in enumerate(chunk):
                outputs[i] = y[row]
    return outputs  # type: ignore[return-value]


def score_split(
    model: torch.nn.Module, dataset_dir: str | Path, split: str, sample_rate: int, batch: int = 64,
    cache_dir: str | Path | None = None, cache_max_bytes: int | str | None = None,
) -> list[dict[str, Any]]:
    """Rows of metrics, one per knob setting of ``split`` (empty if the dataset has no such split).

    Segments are processed in batches of ``batch`` (same result as one at a time: each starts
    from a zero state), which amortizes the per-step cost of the recurrent loop.
    """
    info = load_dataset_info(dataset_dir)
    if split not in info.splits or not info.splits[split].files:
        return []
    segments = SequenceDataset(dataset_dir, split, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
    inputs, targets, knob_rows, keys = [], [], [], []
    groups: dict[tuple, dict[str, Any]] = {}
    for index in range(len(segments)):
        x, y, knobs = segments[index]
        facts = segments.row(index)
        key = tuple(np.round(knobs.numpy(), 6).tolist())
        groups.setdefault(key, {"knobs_raw": {k.name: facts.get(k.raw_column) for k in info.knobs}, "pred": [], "target": []})
        inputs.append(x.numpy())
        targets.append(y.numpy())
        knob_rows.append(knobs.numpy())
        keys.append(key)
    predictions = _predict_batched(model, inputs, knob_rows, batch)
    for key, pred, target in zip(keys, predictions, targets):
        groups[key]["pred"].append(pred)
        groups[key]["target"].append(target)
    rows = []
    for key in sorted(groups):
        group = groups[key]
        pred, target = np.concatenate(group["pred"]), np.concatenate(group["target"])
        row = {"split": split, **{f"knob_{k}": v for k, v in group["knobs_raw"].items()}}
        row.update(score_all(pred, target, sample_rate))
        rows.append(row)
    return rows


def setting_text(row: pd.Series) -> str:
    """A per-setting row's knob values as ``drive=10, tone=0`` (from its ``knob_*`` columns)."""
    parts = []
    for column in (c for c in row.index if c.startswith("knob_")):
        value = row[column]
        parts.append(f"{column[len('knob_'):]}={value:g}" if isinstance(value, (int, float)) else f"{column[len('knob_'):]}={value}")
    return ", ".join(parts)


def inverted_settings(frame: pd.DataFrame) -> list[str]:
    """One line per knob setting whose prediction is anti-correlated with the target (an inverted
    output: the STFT loss terms cannot see polarity, so such a model can look fine by its loss)."""
    lines = []
    for _, row in frame[frame["correlation"] < 0].iterrows():
        setting = setting_text(row)
        lines.append(
            f"{row['split']} {setting}: the output is inverted (correlation {row['correlation']:.2f}); retrain with a "
            "longer --stft-warmup or a higher L1 weight"
        )
    return lines


def evaluate_run(run_dir: str | Path, dataset_dir: str | Path | None = None, which: str = "best", *,
                 cache_dir: str | Path | None = None, cache_max_bytes: int | str | None = None) -> dict[str, Any]:
    """Score ``run_dir`` on its dataset's test (and holdout) split; writes and returns the summary.

    ``dataset_dir`` (default: the one the run was trained on) may be a local folder or a URI. Scoring
    runs with the run's ``train.threads`` (as its training did), the caller's setting restored after.
    """
    run_dir = Path(run_dir)
    model, run_config = load_run(run_dir, which)
    dataset_dir = dataset_dir or run_config["dataset"]["path"]
    info = load_dataset_info(dataset_dir)
    if run_config["dataset"].get("hash") and info.dataset_hash != run_config["dataset"]["hash"]:
        raise ModelError(
            f"{dataset_dir} is not the dataset {run_dir} was trained on (hash differs); pass the right --dataset"
        )
    rows = []
    threads = (run_config.get("train") or {}).get("threads") or None
    with compute_context(threads=threads):  # the thread count the run trained with (float sums depend on it)
        for split in EVAL_SPLITS:
            rows.extend(score_split(model, dataset_dir, split, info.sample_rate, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes))
    if not rows:
        raise ModelError(f"{dataset_dir} has no test segments; rebuild it with a non-zero test fraction")
    frame = pd.DataFrame(rows)
    metric_columns = [c for c in frame.columns if c != "split" and not c.startswith("knob_")]
    summary: dict[str, Any] = {
        "run": run_dir.name,
        "model": run_config["model"],
        "parameters": run_config.get("parameters"),
        "compute": compute_cost(run_config["model"], info.sample_rate),
        "dataset_hash": info.dataset_hash,
        "checkpoint": which,
    }
    for split, part in frame.groupby("split"):
        summary[split] = {c: float(part[c].mean()) for c in metric_columns}
        summary[split]["settings"] = int(len(part))
        worst = part.loc[part["esr"].idxmax()]
        summary[split]["esr_worst"] = float(worst["esr"])
        summary[split]["grade"] = esr_grade(summary[split]["esr"])
        summary[f"{split}_worst_setting"] = setting_text(worst)
    warnings = inverted_settings(frame)
    if warnings:
        summary["warnings"] = warnings
    atomic_write_json(run_dir / "evaluation.json", summary)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    atomic_write_text(run_dir / "evaluation_per_knob.csv", buffer.getvalue())
    return summary


def current_evaluation(run_dir: str | Path, which: str = "best") -> dict[str, Any] | None:
    """The run's ``evaluation.json`` when it scores checkpoint ``which`` as it is now, on the dataset the
    run was trained on (written after ``<which>.safetensors``, same dataset hash); else None (score it
    again with :func:`evaluate_run`)."""
    run_dir = Path(run_dir)
    evaluation, weights = run_dir / "evaluation.json", run_dir / f"{which}.safetensors"
    if not (evaluation.exists() and weights.exists()) or evaluation.stat().st_mtime < weights.stat().st_mtime:
        return None
    try:
        summary = json.loads(evaluation.read_text())
    except (OSError, ValueError):
        return None
    trained_on = ((read_run_config(run_dir) or {}).get("dataset") or {}).get("hash")
    if summary.get("checkpoint") != which or not trained_on or summary.get("dataset_hash") != trained_on:
        return None
    return summary
