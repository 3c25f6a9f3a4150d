"""Train several schemes in one go, evaluate them and compare: what ``fxcap train`` calls."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fxcap.dataset import load_dataset_info
from fxcap.dataset.remote import locate
from fxcap.errors import ModelError
from fxcap.modeling.compare import compare_runs
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.train import TrainConfig, train

PRESETS: dict[str, TrainConfig] = {
    # The paper's recipe: batch 80, long training, early stopping decides.
    "paper": TrainConfig(batch_size=80, max_epochs=300, steps_per_epoch=None, early_stop_patience=10, valid_windows=None),
    # A sensible default for a CPU: a few minutes per model on a short capture.
    "default": TrainConfig(batch_size=16, max_epochs=60, steps_per_epoch=50, early_stop_patience=8),
    # A quick look: a couple of minutes per model on 2 CPU cores with the fast path.
    "quick": TrainConfig(batch_size=16, max_epochs=10, steps_per_epoch=40, lr=3e-3, early_stop_patience=4, valid_windows=64),
}


@dataclass
class TrainRequest:
    """Which models to train on which dataset, and how.

    ``overrides`` replace fields of the preset's :class:`TrainConfig`.
    """

    conds: list[str]
    cell: str = "gru"
    dataset: Path | str | None = None
    datasets_dir: Path = Path("datasets")
    runs_dir: Path = Path("runs")
    preset: str = "default"
    seed: int = 0
    resume: bool = False
    evaluate: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResults:
    runs: list[Path]
    comparison: pd.DataFrame | None


def newest_dataset(base: str | Path = "datasets") -> Path:
    """The most recently built dataset folder under ``base`` (by its ``dataset.json`` time)."""
    found = sorted(Path(base).glob("*/dataset.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ModelError(f"no dataset under {base}/; build one with `fxcap build-dataset` or pass --dataset")
    return found[-1].parent


def run_name(cond: str, cell: str, seed: int) -> str:
    """Run folder name, e.g. ``dynamichyper-gru-s0``."""
    return f"{cond}-{cell}-s{seed}"


def train_models(request: TrainRequest, console: Any | None = None) -> TrainResults:
    """Train (or resume) every scheme of ``request``, then evaluate and compare them."""
    if request.preset not in PRESETS:
        raise ModelError(f"unknown preset {request.preset!r}; use one of {', '.join(PRESETS)}")
    location = locate(request.dataset) if request.dataset else locate(newest_dataset(request.datasets_dir))
    dataset = location.as_target()
    info = load_dataset_info(location)
    config = replace(PRESETS[request.preset], seed=request.seed, **request.overrides)
    if config.threads:
        torch.set_num_threads(config.threads)
    runs_root = Path(request.runs_dir) / location.name
    runs = []
    for cond in request.conds:
        model_config = ModelConfig(cond=cond, cell=request.cell, num_knobs=len(info.knob_names), **request.model_overrides)
        run_dir = runs_root / run_name(cond, request.cell, request.seed)
        resume = request.resume and (run_dir / "state.pt").exists()
        _train_with_progress(dataset, model_config, run_dir, config, resume, console)
        if request.evaluate:
            evaluate_run(run_dir, dataset)
        runs.append(run_dir)
    comparison = compare_runs(runs, runs_root) if request.evaluate else None
    return TrainResults(runs=runs, comparison=comparison)


def _train_with_progress(dataset: Path | str, model_config: ModelConfig, run_dir: Path, config: TrainConfig, resume: bool, console: Any | None):
    if console is None:
        return train(dataset, model_config, run_dir, config, resume=resume)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    label = f"{model_config.cond}-{model_config.cell}"
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task(label, total=config.max_epochs, status="")

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, status=f"step {step}/{total} loss {loss:.4f}")

        def on_epoch(row: dict[str, Any]) -> None:
            progress.update(
                task, completed=row["epoch"], status=f"train {row['train_loss']:.4f} valid {row['valid_loss']:.4f} lr {row['lr']:.1e}"
            )

        result = train(dataset, model_config, run_dir, config, resume=resume, on_epoch=on_epoch, on_step=on_step)
        progress.update(task, completed=config.max_epochs)
    return result
