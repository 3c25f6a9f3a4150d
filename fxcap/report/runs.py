"""Training runs as the report sees them: model, knob ranges, training history, evaluation; and rendering.

Models are fed knob values normalized with the ranges stored in the run's ``config.json``
(``dataset.knobs``, the order of the model's knob input), exactly as training did.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fxcap.capture.profiles import Knob, KnobValue
from fxcap.errors import ModelError
from fxcap.modeling.compute_context import compute_context
from fxcap.modeling.inference import run_blocks
from fxcap.modeling.render import knobs_from_run
from fxcap.modeling.train import load_run

RENDER_BLOCK = 8192
"""Samples per forward call when rendering (hidden state carried across blocks; bounds memory)."""

RENDER_BATCH = 64
"""Knob settings rendered together in one batch."""


@dataclass
class ReportRun:
    """One training run: its label in the report, config, history and (when loadable) model.

    ``model`` is None when the run has no usable checkpoint; ``problem`` then says why.
    """

    run_dir: Path
    label: str
    config: dict[str, Any]
    history: list[dict[str, float]]
    evaluated: bool
    model: torch.nn.Module | None = None
    problem: str = ""
    knobs: list[Knob] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return int(self.config["dataset"]["sample_rate"])

    @property
    def scheme(self) -> str:
        model = self.config.get("model", {})
        return f"{model.get('cond', '?')}-{model.get('cell', '?')}"

    def normalized(self, setting: Mapping[str, KnobValue]) -> np.ndarray:
        """The model's knob vector ``(K,)`` (float32, [-1, 1]) for a raw setting; ``ValueError`` when a
        knob is missing from ``setting`` or out of the range the model was trained on."""
        values = []
        for knob in self.knobs:
            if knob.name not in setting:
                raise ValueError(f"the setting has no value for the model's knob {knob.name!r}")
            values.append(knob.normalize(setting[knob.name]))
        return np.asarray(values, dtype=np.float32)


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` (one per finished epoch) with numeric fields as floats; [] when absent."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, float] = {}
            for key, value in row.items():
                try:
                    parsed[key] = float(value)
                except (TypeError, ValueError):
                    continue
            rows.append(parsed)
    return rows


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    names = [p.name for p in run_dirs]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in run_dirs]


def load_report_runs(run_dirs: Sequence[str | Path], checkpoint: str = "best") -> list[ReportRun]:
    """Open every run folder; a run whose weights cannot be loaded keeps its history and says why.

    Raises :class:`ModelError` for a folder that is not a training run at all (no config.json).
    """
    paths = [Path(p) for p in run_dirs]
    runs = []
    for path, label in zip(paths, _labels(paths)):
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a training run (no config.json); pass run folders made by `fxcap train`")
        model, problem = None, ""
        try:
            model, config = load_run(path, checkpoint)
        except ModelError as exc:
            try:
                config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise ModelError(f"{path}/config.json is corrupt ({err}); retrain the run") from None
            problem = str(exc)
        try:
            knobs = knobs_from_run(config)
            int(config["dataset"]["sample_rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}/config.json lacks the dataset's knobs or sample rate ({exc!r}); retrain the run") from None
        runs.append(
            ReportRun(
                run_dir=path, label=label, config=config, history=read_history(path),
                evaluated=(path / "evaluation.json").is_file(), model=model, problem=problem, knobs=knobs,
            )
        )
    return runs


def render(model: torch.nn.Module, x: np.ndarray, knobs: np.ndarray, block: int = RENDER_BLOCK, batch: int = RENDER_BATCH) -> np.ndarray:
    """Process mono ``x`` ``(T,)`` through ``model`` at every knob vector of ``knobs`` ``(B, K)``
    (normalized), from a zero state; returns ``(B, T)`` float32. Streams ``block`` samples at a time
    and ``batch`` settings at a time, so memory stays bounded for long excerpts and many settings."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    knobs = np.ascontiguousarray(knobs, dtype=np.float32)
    if knobs.ndim != 2:
        raise ModelError(f"knobs must have shape (settings, knobs), got {knobs.shape}")
    out = np.empty((knobs.shape[0], x.size), dtype=np.float32)
    with compute_context(threads=1):  # per-step products of a 32-unit RNN: thread hand-offs cost more than they save
        for first in range(0, knobs.shape[0], batch):
            k = torch.from_numpy(knobs[first : first + batch])
            audio = torch.from_numpy(x)[None].expand(k.shape[0], -1)
            out[first : first + k.shape[0]] = run_blocks(model, audio, k, block)[0].numpy()
    return out


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite (JSON-safe)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None
