"""Train several schemes in one go, evaluate them and compare: what ``fxcap train`` calls."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from fxcap.dataset import load_dataset_info
from fxcap.dataset.find import newest_dataset
from fxcap.dataset.remote import locate
from fxcap.errors import ModelError, TrainingDivergedError
from fxcap.io import atomic_write_json
from fxcap.modeling.compare import compare_runs, dataset_runs
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.schemes import get_scheme, scheme_names
from fxcap.modeling.train import TrainConfig, train

STFT_WARMUP_STEPS = 400
"""The paper preset lets the time-domain L1 term lead for the first steps (see ``TrainConfig.stft_warmup_steps``):
without it a model can settle with inverted polarity, which the STFT terms cannot see."""

ESR_LOSS: dict[str, Any] = dict(
    l1_weight=0.0, stft_weight=0.0, pre_emphasis=False, stft_warmup_steps=0,
    esr_weight=1.0, dc_weight=1.0, esr_emphasis=0.85, esr_per_setting=True, loss_skip=None,
)
"""The loss of the ``default`` and ``quick`` presets: ESR (pre-emphasis ``1 - 0.85 z^-1``) + DC, each window
divided by its knob setting's power so every setting weighs alike, the first eighth of each window (its
zero-state warm-up: 256 of 2048 samples) left out. The measurements behind it are in ``docs/quality.md``."""

PRESETS: dict[str, TrainConfig] = {
    # The paper's recipe: batch 80, Adam 1e-3 halved on plateaus, long training, early stopping decides,
    # L1 + 0.1 MRSTFT on pre-emphasised signals (plus the STFT warm-up, which only reweights the first steps).
    "paper": TrainConfig(batch_size=80, max_epochs=300, steps_per_epoch=None, early_stop_patience=10, valid_windows=None,
                         stft_warmup_steps=STFT_WARMUP_STEPS),
    # What fxcap recommends: 8000 steps of batch 16 on a cosine schedule with the ESR loss, and learned
    # linear filters around the cell (PRESET_MODELS); minutes per model on one core.
    "default": TrainConfig(batch_size=16, max_epochs=80, steps_per_epoch=100, lr=3e-3, lr_schedule="cosine", warmup_steps=100,
                           early_stop_patience=80, valid_windows=64, **ESR_LOSS),
    # A quick look: the same recipe, 2500 steps (the OD-3 quick recipe's four models in minutes on 2 CPU cores).
    "quick": TrainConfig(batch_size=16, max_epochs=50, steps_per_epoch=50, lr=3e-3, lr_schedule="cosine", warmup_steps=100,
                         early_stop_patience=50, valid_windows=64, **ESR_LOSS),
}

SCHEME_LR: dict[str, dict[str, float]] = {
    # Concat's knobs enter only as extra inputs, so its plain input weights must themselves grow large
    # (the OD-3's drive spans 40 dB of gain) and it learns much faster at a higher rate; the
    # hypernetwork schemes scale their weights through the knobs and diverge at that rate
    # (docs/quality.md).
    "quick": {"concat": 1e-2},
    "default": {"concat": 1e-2, "dynamichyper": 2e-3},
}
"""Per-scheme learning rates replacing a preset's ``lr`` (unless the user sets ``lr`` explicitly)."""


PRESET_MODELS: dict[str, dict[str, Any]] = {
    "default": {"pre_filter_poles": 6, "post_filter_poles": 6},
    "quick": {"pre_filter_poles": 6, "post_filter_poles": 6},
}
"""``ModelConfig`` fields a preset sets (architecture options beyond the paper's; ``paper`` sets none, so
its models keep the paper's exact parameter counts)."""


def preset_model_options(preset: str) -> dict[str, Any]:
    """The :class:`ModelConfig` fields of ``preset`` (:data:`PRESET_MODELS`), to be overridden by the user's."""
    if preset not in PRESETS:
        raise ModelError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    return dict(PRESET_MODELS.get(preset, {}))


def preset_config(preset: str, cond: str, overrides: dict[str, Any] | None = None, **fields: Any) -> TrainConfig:
    """The :class:`TrainConfig` of ``preset`` for scheme ``cond``: the preset, the scheme's rate for it
    (``Scheme.lr``, :mod:`fxcap.modeling.schemes`), then ``overrides`` and ``fields`` (both replace the
    preset's fields)."""
    if preset not in PRESETS:
        raise ModelError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    rates = get_scheme(cond).lr if cond in scheme_names() else {}
    scheme = {"lr": rates[preset]} if preset in rates else {}
    return replace(PRESETS[preset], **{**scheme, **(overrides or {}), **fields})


@dataclass
class TrainRequest:
    """Which models to train on which dataset, and how.

    ``overrides`` replace fields of the preset's :class:`TrainConfig`. ``resume`` continues runs that
    finished an epoch (refused when their dataset or settings changed), ``force`` starts them afresh
    (see :mod:`fxcap.modeling.run_folder`).
    """

    conds: list[str]
    cell: str = "gru"
    dataset: Path | str | None = None
    datasets_dir: Path = Path("datasets")
    runs_dir: Path = Path("runs")
    preset: str = "default"
    seed: int = 0
    resume: bool = False
    force: bool = False
    evaluate: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResults:
    """What :func:`train_models` did.

    Attributes:
        runs: the run folders trained, ``<runs_dir>/<dataset name>/<scheme>-<cell>-s<seed>``.
        comparison: every evaluated run of the dataset (``None`` without evaluation).
        runs_root: ``<runs_dir>/<dataset name>``, where ``comparison.md`` is written.
        failed: run folder -> the one-line reason it diverged; the other schemes are trained and
            compared all the same, and the folder keeps ``failed.json`` and its last good checkpoints.
    """

    runs: list[Path]
    comparison: pd.DataFrame | None
    runs_root: Path = Path("runs")
    failed: dict[Path, str] = field(default_factory=dict)


def run_name(cond: str, cell: str, seed: int) -> str:
    """Run folder name, e.g. ``dynamichyper-gru-s0``."""
    return f"{cond}-{cell}-s{seed}"


def train_models(request: TrainRequest, console: Any | None = None) -> TrainResults:
    """Train (or resume) every scheme of ``request`` into ``<runs_dir>/<dataset name>/<run name>``, then
    evaluate them and compare every evaluated run of that dataset (``comparison.md`` beside them)."""
    preset_config(request.preset, "", request.overrides)  # unknown preset / bad override: fail before any work
    location = locate(request.dataset) if request.dataset else locate(newest_dataset(request.datasets_dir))
    dataset = location.as_target()
    info = load_dataset_info(location)
    runs_root = Path(request.runs_dir) / location.name
    runs: list[Path] = []
    failed: dict[Path, str] = {}
    for cond in request.conds:
        config = preset_config(request.preset, cond, request.overrides, seed=request.seed)
        model_config = ModelConfig(cond=cond, cell=request.cell, num_knobs=len(info.knob_names),
                                   **{**preset_model_options(request.preset), **request.model_overrides})
        run_dir = runs_root / run_name(cond, request.cell, request.seed)
        try:
            _train_with_progress(dataset, model_config, run_dir, config, request.resume, request.force, console)
        except TrainingDivergedError as exc:  # one scheme's failure does not cost the others theirs
            failed[run_dir] = str(exc)
            atomic_write_json(run_dir / "failed.json", {"error": str(exc), "scheme": cond, "seed": request.seed})
            if console is not None:
                console.print(f"[red]{run_dir.name} failed:[/] {exc}; going on with the other schemes", highlight=False)
            continue
        if request.evaluate:
            evaluate_run(run_dir, dataset)
        runs.append(run_dir)
    compared = dataset_runs(runs_root) if request.evaluate else []  # earlier runs of the dataset too
    comparison = compare_runs(compared, runs_root) if compared else None
    return TrainResults(runs=runs, comparison=comparison, runs_root=runs_root, failed=failed)


def _train_with_progress(dataset: Path | str, model_config: ModelConfig, run_dir: Path, config: TrainConfig, resume: bool,
                         force: bool, console: Any | None):
    if console is None:
        return train(dataset, model_config, run_dir, config, resume=resume, force=force)
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

        result = train(dataset, model_config, run_dir, config, resume=resume, on_epoch=on_epoch, on_step=on_step, force=force)
        progress.update(task, completed=config.max_epochs)
    for line in result.recoveries:
        console.print(f"[yellow]{label}: recovered[/] {line}", highlight=False)
    return result
