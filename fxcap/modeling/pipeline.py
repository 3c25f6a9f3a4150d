"""The training orchestrator: a request -> run specs -> each run trained (or resumed) and evaluated -> compared.

``fxcap train`` (:func:`train_models`) and ``fxcap sweep`` (:mod:`fxcap.modeling.sweep`, which the recipes
use) go through the same three steps:

1. :func:`plan_runs` expands a :class:`RunGrid` (datasets x cells x schemes x seeds, one preset and its
   overrides) into :class:`RunSpec` s, in that order, and decides where each run folder goes:
   ``<runs>/<dataset name>/<scheme>-<cell>-s<seed>`` (:func:`run_name`);
2. :func:`start_run` trains one spec through :func:`fxcap.modeling.train.train`, which decides in the folder
   whether the run starts afresh, resumes or is refused (:mod:`fxcap.modeling.run_folder`), and evaluates it;
3. :func:`compare_dataset` compares every evaluated run of a dataset (``comparison.md``, earlier runs too).

The callers differ in how they run the specs. ``fxcap train`` runs them one after another in this process
with a progress bar; a scheme that diverges is recorded in its folder (``failed.json``) and the others go on.
A sweep runs them in worker processes or on Ray, with retries and its ``sweep.json``, and always resumes.

A run's seed seeds both its window sampling and its initial weights (``ModelConfig.seed``), in ``fxcap train``
and in a sweep alike.

The presets are in :mod:`fxcap.modeling.presets` (their names are re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from fxcap.dataset import load_dataset_info
from fxcap.dataset.find import newest_dataset
from fxcap.dataset.remote import Location, locate, location_text
from fxcap.errors import ModelError, TrainingDivergedError
from fxcap.io import atomic_write_json
from fxcap.modeling.compare import compare_runs, dataset_runs
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.presets import (  # noqa: F401  (re-exported: the presets' public names)
    ESR_LOSS,
    PRESET_MODELS,
    PRESETS,
    STFT_WARMUP_STEPS,
    preset_config,
    preset_model_options,
)
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.train import RunResult, TrainConfig, train


def run_name(cond: str, cell: str, seed: int) -> str:
    """Run folder name, e.g. ``dynamichyper-gru-s0``."""
    return f"{cond}-{cell}-s{seed}"


@dataclass(frozen=True)
class RunGrid:
    """What to train: every dataset x cell x scheme x seed, with one preset.

    Attributes:
        datasets: dataset folders, URIs or :class:`~fxcap.dataset.remote.Location` s; the runs of each go to
            ``runs_dir/<dataset name>`` (two datasets of one name are refused: their folders would collide).
        conds / cells / seeds: the grid. A seed seeds the window sampling and the weight initialisation.
        preset: a :data:`PRESETS` name; ``overrides`` replace fields of its :class:`TrainConfig` (after the
            scheme's learning rate), ``model_overrides`` fields of the :class:`ModelConfig`.
        threads: ``TrainConfig.threads`` of every run (``None``: the preset's or the overrides').
    """

    datasets: tuple[str | Path | Location, ...]
    conds: tuple[str, ...]
    cells: tuple[str, ...] = ("gru",)
    seeds: tuple[int, ...] = (0,)
    runs_dir: Path = Path("runs")
    preset: str = "default"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    threads: int | None = None


@dataclass(frozen=True)
class RunSpec:
    """One training run: which model, trained how, on which dataset, into which folder.

    ``dataset`` is the dataset's location as run folders record it (a local path or a URI);
    ``dataset_hash`` the hash it had when the run was planned.
    """

    dataset: str
    dataset_name: str
    dataset_hash: str
    model: ModelConfig
    train: TrainConfig
    run_dir: Path

    @property
    def cond(self) -> str:
        return self.model.cond

    @property
    def cell(self) -> str:
        return self.model.cell

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def key(self) -> str:
        """``<dataset name>/<run name>``: the run's folder under the runs folder, and a sweep's trial name."""
        return f"{self.dataset_name}/{self.run_dir.name}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what a worker process or a Ray task receives); :meth:`from_dict` reads it back."""
        return {"dataset": self.dataset, "dataset_name": self.dataset_name, "dataset_hash": self.dataset_hash,
                "model": self.model.to_dict(), "train": self.train.to_dict(), "run_dir": str(self.run_dir)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        return cls(dataset=data["dataset"], dataset_name=data["dataset_name"], dataset_hash=data["dataset_hash"],
                   model=ModelConfig.from_dict(dict(data["model"])), train=TrainConfig(**data["train"]),
                   run_dir=Path(data["run_dir"]))


def plan_runs(grid: RunGrid) -> list[RunSpec]:
    """Every run of ``grid``, datasets x cells x schemes x seeds in that order, each with its run folder.

    Reads each dataset's ``dataset.json`` (knob count and hash); touches no run folder. Raises
    :class:`ModelError` for an unknown preset or a bad setting, before any run starts.
    """
    specs: list[RunSpec] = []
    names: dict[str, str] = {}
    for dataset in grid.datasets:
        location = locate(dataset)
        info = load_dataset_info(location)
        name = location.name
        if name in names and names[name] != str(location):
            raise ModelError(f"datasets {names[name]} and {location} share the name {name!r}; their run folders would "
                             "collide: sweep them into separate --runs folders")
        names[name] = str(location)
        for cell in grid.cells:
            for cond in grid.conds:
                for seed in grid.seeds:
                    model = ModelConfig(cond=cond, cell=cell, num_knobs=len(info.knob_names),
                                        **{**preset_model_options(grid.preset), **grid.model_overrides, "seed": seed})
                    fields = {"seed": seed, **({"threads": grid.threads} if grid.threads is not None else {})}
                    config = preset_config(grid.preset, cond, dict(grid.overrides), **fields)
                    specs.append(RunSpec(location_text(location), name, info.dataset_hash, model, config,
                                         Path(grid.runs_dir) / name / run_name(cond, cell, seed)))
    return specs


@dataclass
class RunOutcome:
    """What :func:`start_run` did: the spec, the training result and the evaluation summary (``None``: not
    evaluated; see :func:`fxcap.modeling.evaluate.evaluate_run`)."""

    spec: RunSpec
    result: RunResult
    evaluation: dict[str, Any] | None = None


def start_run(spec: RunSpec, *, resume: bool, force: bool = False, evaluate: bool = True, console: Any | None = None,
              cache: Mapping[str, Any] | None = None) -> RunOutcome:
    """Train ``spec`` into its folder (afresh, resumed or refused as :func:`fxcap.modeling.train.train` decides
    from ``resume`` and ``force``), then evaluate it on its test split.

    ``console`` (a rich console): show a progress bar there. ``cache``: ``cache_dir`` / ``cache_max_bytes``
    for the loaders (remote datasets). Errors propagate (:class:`TrainingDivergedError` among them).
    """
    cache = dict(cache or {})
    result = _train_with_progress(spec, resume, force, console, cache)
    evaluation = evaluate_run(spec.run_dir, spec.dataset, **cache) if evaluate else None
    return RunOutcome(spec, result, evaluation)


def compare_dataset(runs_root: str | Path) -> pd.DataFrame | None:
    """Compare every evaluated run in ``runs_root`` (``<runs>/<dataset name>``): writes ``comparison.md`` and
    ``comparison_seeds.md`` (and their CSV) there and returns the per-run table; ``None`` when no run is evaluated."""
    runs = dataset_runs(runs_root)
    return compare_runs(runs, runs_root) if runs else None


def _train_with_progress(spec: RunSpec, resume: bool, force: bool, console: Any | None, cache: dict[str, Any]) -> RunResult:
    if console is None:
        return train(spec.dataset, spec.model, spec.run_dir, spec.train, resume=resume, force=force, **cache)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    label = f"{spec.cond}-{spec.cell}"
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task(label, total=spec.train.max_epochs, status="")

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, status=f"step {step}/{total} loss {loss:.4f}")

        def on_epoch(row: dict[str, Any]) -> None:
            progress.update(
                task, completed=row["epoch"], status=f"train {row['train_loss']:.4f} valid {row['valid_loss']:.4f} lr {row['lr']:.1e}"
            )

        result = train(spec.dataset, spec.model, spec.run_dir, spec.train, resume=resume, on_epoch=on_epoch, on_step=on_step,
                       force=force, **cache)
        progress.update(task, completed=spec.train.max_epochs)
    for line in result.recoveries:
        console.print(f"[yellow]{label}: recovered[/] {line}", highlight=False)
    return result


# -- fxcap train ---------------------------------------------------------------------------------------------


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

    def grid(self, dataset: str | Path | Location) -> RunGrid:
        """The runs of this request on ``dataset`` (one cell, one seed, the schemes in the order given)."""
        return RunGrid(datasets=(dataset,), conds=tuple(self.conds), cells=(self.cell,), seeds=(self.seed,),
                       runs_dir=Path(self.runs_dir), preset=self.preset, overrides=dict(self.overrides),
                       model_overrides=dict(self.model_overrides))


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


def train_models(request: TrainRequest, console: Any | None = None) -> TrainResults:
    """Train (or resume) every scheme of ``request`` into ``<runs_dir>/<dataset name>/<run name>``, one after
    another, then compare every evaluated run of that dataset (``comparison.md`` beside them)."""
    preset_config(request.preset, "", request.overrides)  # unknown preset / bad override: fail before any work
    location = locate(request.dataset) if request.dataset else locate(newest_dataset(request.datasets_dir))
    runs_root = Path(request.runs_dir) / location.name
    runs: list[Path] = []
    failed: dict[Path, str] = {}
    for spec in plan_runs(request.grid(location)):
        try:
            start_run(spec, resume=request.resume, force=request.force, evaluate=request.evaluate, console=console)
        except TrainingDivergedError as exc:  # one scheme's failure does not cost the others theirs
            failed[spec.run_dir] = str(exc)
            atomic_write_json(spec.run_dir / "failed.json", {"error": str(exc), "scheme": spec.cond, "seed": spec.seed})
            if console is not None:
                console.print(f"[red]{spec.run_dir.name} failed:[/] {exc}; going on with the other schemes", highlight=False)
            continue
        runs.append(spec.run_dir)
    comparison = compare_dataset(runs_root) if request.evaluate else None  # earlier runs of the dataset too
    return TrainResults(runs=runs, comparison=comparison, runs_root=runs_root, failed=failed)
