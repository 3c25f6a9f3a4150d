"""Training sweeps: every scheme x cell x seed (x dataset), in parallel, resumable, with retries.

One trial is one run of the training orchestrator (:mod:`fxcap.modeling.pipeline`, as ``fxcap train``): the
grid is expanded by :func:`~fxcap.modeling.pipeline.plan_runs`, each trial trained and evaluated by
:func:`~fxcap.modeling.pipeline.start_run` into its run folder ``<runs>/<dataset name>/<cond>-<cell>-s<seed>``,
and each dataset compared by :func:`~fxcap.modeling.pipeline.compare_dataset`. This module adds the grid
of cells, seeds and datasets, the executor and the record of the trials. Trials run in local worker
processes (default), in this process (``workers=1``) or as Ray tasks on a cluster (``ray="auto"`` /
``"HOST:PORT"`` / ``"local"``), each with ``cpus_per_trial`` CPUs (torch threads).

``<runs>/sweep.json`` records every trial: its settings, status (``pending``, ``running``, ``done``,
``failed``), attempts (with the error of each failed one), the last error and its traceback, and results. Only this process writes it, atomically after every
change. A failed trial is retried up to ``retries`` more times, then reported as failed (never dropped);
running the same sweep again skips finished trials and resumes the others from their last finished
epoch (``train(..., resume=True)``), so an interrupted sweep loses at most one epoch per trial.
At the end every evaluated run of a dataset is compared (``comparison.md``, earlier runs too) and averaged over seeds
(``comparison_seeds.md``: mean ± std), as ``fxcap compare`` does.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from fxcap.dataset.remote import location_text
from fxcap.errors import FxcapError, ModelError
from fxcap.io import atomic_write_json
from fxcap.modeling.compare import aggregate_seeds
from fxcap.modeling.config import CELLS, CONDS
from fxcap.modeling.pipeline import PRESETS, RunGrid, RunSpec, compare_dataset, plan_runs, start_run
from fxcap.modeling.registry import registered_models
from fxcap.modeling.run_folder import setting_changes
from fxcap.parallel import ProcessRunner, TaskRunner, task_runner, unwrap_error

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = "fxcap-sweep"
SWEEP_VERSION = 1

SweepEvent = Callable[[str, dict[str, Any]], None]
"""``on_event(kind, record)`` with kind ``start``, ``done``, ``retry``, ``failed`` or ``skip``."""


@dataclass
class SweepConfig:
    """What to train and how.

    Attributes:
        datasets: dataset folders or URIs (``s3://...``); run folders go to ``runs_dir/<dataset name>``.
        conds / cells / seeds: the grid; every combination is a trial. A seed sets both the weight
            initialisation (``ModelConfig.seed``) and the window sampling (``TrainConfig.seed``).
        runs_dir: where run folders, ``sweep.json`` and the comparisons go.
        preset: :data:`fxcap.modeling.pipeline.PRESETS` name; ``overrides`` replace its fields.
        model_overrides: :class:`ModelConfig` fields for every trial (e.g. ``hidden_size``).
        retries: further attempts after a failure (0: report a failure at once).
        cpus_per_trial: CPUs (and torch threads) per trial; Ray reserves this share per task.
        workers: trials at once on this machine (default: CPU cores // cpus_per_trial); 1 runs them here.
        ray: Ray cluster address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or ``local``.
        cache_dir / cache_max_bytes: the loaders' local cache (see :func:`fxcap.dataset.make_dataloader`).
    """

    datasets: list[str | Path]
    conds: list[str] = field(default_factory=lambda: list(CONDS))
    cells: list[str] = field(default_factory=lambda: ["gru"])
    seeds: list[int] = field(default_factory=lambda: [0])
    runs_dir: Path = Path("runs")
    preset: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    retries: int = 1
    cpus_per_trial: float = 1.0
    workers: int | None = None
    ray: str | None = None
    cache_dir: str | Path | None = None
    cache_max_bytes: int | str | None = None

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ModelError("a sweep needs at least one dataset (--dataset)")
        if self.preset not in PRESETS:
            raise ModelError(f"unknown preset {self.preset!r}; use one of {', '.join(PRESETS)}")
        for name, values, known in (("cond", self.conds, tuple(registered_models())), ("cell", self.cells, CELLS)):
            if not values:
                raise ModelError(f"a sweep needs at least one {name}")
            bad = [v for v in values if v not in known]
            if bad:
                raise ModelError(f"unknown {name} {', '.join(map(str, bad))}; choose from {', '.join(known)} or all")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ModelError(f"seeds must be distinct and at least one, not {self.seeds}")
        if self.retries < 0 or self.cpus_per_trial <= 0:
            raise ModelError("retries must be >= 0 and cpus_per_trial > 0")
        self.runs_dir = Path(self.runs_dir)

    def grid(self) -> RunGrid:
        """The runs of this sweep (every run resumes; a trial's torch threads are its CPU share)."""
        return RunGrid(datasets=tuple(self.datasets), conds=tuple(self.conds), cells=tuple(self.cells), seeds=tuple(self.seeds),
                       runs_dir=self.runs_dir, preset=self.preset, overrides=dict(self.overrides),
                       model_overrides=dict(self.model_overrides),
                       threads=self.overrides.get("threads") or max(1, int(self.cpus_per_trial)))


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: every trial's record, and per dataset the run and seed tables."""

    manifest: Path
    trials: list[dict[str, Any]]
    comparisons: dict[str, pd.DataFrame]
    aggregates: dict[str, pd.DataFrame]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["status"] != "done"]


# -- one trial (runs in a worker) ----------------------------------------------------------------------------


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) and evaluate one trial; returns its results. Runs in a worker, or here.

    ``spec`` holds plain data only: ``run`` (:meth:`RunSpec.to_dict`), ``cache_dir``, ``cache_max_bytes``.
    """
    started = time.perf_counter()
    cache = {"cache_dir": spec.get("cache_dir"), "cache_max_bytes": spec.get("cache_max_bytes")}
    # resumes a run that finished an epoch; refuses one of other settings or another dataset (run_folder)
    outcome = start_run(RunSpec.from_dict(spec["run"]), resume=True, cache=cache)
    result, summary = outcome.result, outcome.evaluation or {}
    return {
        "epochs": result.epochs,
        "best_valid_loss": result.best_valid_loss,
        "stopped_early": result.stopped_early,
        "resumed": result.resumed,
        "seconds": round(time.perf_counter() - started, 3),
        "test": {k: summary["test"][k] for k in ("esr", "esr_db", "l1", "mrstft") if k in summary.get("test", {})},
    }


# -- the sweep (driver) --------------------------------------------------------------------------------------


def _error_text(exc: BaseException) -> tuple[str, str]:
    """``(one line for the record and the console, the traceback)`` of a trial's failure.

    A worker process's traceback travels as the exception's cause (text); Ray's in the wrapped error.
    """
    original = exc
    exc = unwrap_error(exc)
    if original.__cause__ is not None:  # a worker process: its traceback as text
        text = str(original.__cause__)
    elif exc is not original:  # Ray: the wrapping error's text carries the traceback
        text = str(original)
    else:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, FxcapError):
        return str(exc), text
    frames = re.findall(r'File "([^"]+)", line (\d+)', text)
    at = f" at {Path(frames[-1][0]).name}:{frames[-1][1]}" if frames else ""
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{at}".rstrip(), text[-4000:]


class _Sweep:
    def __init__(self, config: SweepConfig, on_event: SweepEvent | None):
        self.config = config
        self.on_event = on_event
        self.path = config.runs_dir / SWEEP_FILE
        self.records: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.specs: dict[str, RunSpec] = {}  # the trials this sweep plans (plan_runs), by trial name

    # -- planning -------------------------------------------------------------------------------------------
    def plan(self) -> None:
        previous = self._load()
        self.specs = {spec.key: spec for spec in plan_runs(self.config.grid())}
        for key, spec in self.specs.items():
            record = {
                "trial": key, "dataset": spec.dataset, "dataset_hash": spec.dataset_hash,
                "cond": spec.cond, "cell": spec.cell, "seed": spec.seed, "run_dir": str(spec.run_dir),
                "model": spec.model.to_dict(), "train": spec.train.to_dict(),
                "status": "pending", "attempts": 0, "error": None, "result": None,
            }
            old = previous.get(key)
            if old is not None:
                record["attempts"] = int(old.get("attempts", 0))
                record["history"] = list(old.get("history", []))
                if self._finished(old, record):
                    record.update(status="done", result=old.get("result"), error=None)
            if key not in self.records:
                self.order.append(key)
            self.records[key] = record
        # trials of an earlier sweep into this folder that this one does not plan are kept as they were
        for key, old in previous.items():
            if key not in self.records:
                self.records[key] = old
                self.order.append(key)
        self._save()

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != SWEEP_FORMAT:
                raise ValueError("not a sweep manifest")
            return {t["trial"]: t for t in data["trials"]}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.path} is corrupt ({exc}); move it away to start the sweep afresh") from None

    @staticmethod
    def _finished(old: dict[str, Any], new: dict[str, Any]) -> bool:
        return (old.get("status") == "done" and old.get("dataset_hash") == new["dataset_hash"]
                and not setting_changes(old, new["model"], new["train"])
                and old.get("train", {}).get("max_epochs") == new["train"]["max_epochs"]
                and (Path(new["run_dir"]) / "evaluation.json").is_file())

    def _save(self) -> None:
        c = self.config
        atomic_write_json(self.path, {
            "format": SWEEP_FORMAT,
            "version": SWEEP_VERSION,
            "config": {"datasets": [location_text(d) for d in c.datasets], "conds": c.conds, "cells": c.cells, "seeds": c.seeds,
                       "preset": c.preset, "overrides": c.overrides, "model_overrides": c.model_overrides,
                       "retries": c.retries, "cpus_per_trial": c.cpus_per_trial},
            "counts": {s: sum(r["status"] == s for r in self.records.values()) for s in ("pending", "running", "done", "failed")},
            "trials": [self.records[k] for k in self.order],
        })

    def _event(self, kind: str, record: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, record)

    # -- running --------------------------------------------------------------------------------------------
    def _spec(self, key: str) -> dict[str, Any]:
        c = self.config
        return {"run": self.specs[key].to_dict(),
                "cache_dir": None if c.cache_dir is None else str(c.cache_dir), "cache_max_bytes": c.cache_max_bytes}

    def _runner(self, todo: int) -> TaskRunner:
        c = self.config
        if c.ray:
            return task_runner(ray=c.ray)
        workers = c.workers if c.workers is not None else max(1, int((os.cpu_count() or 1) // c.cpus_per_trial))
        return task_runner(max(1, min(int(workers), todo)))

    def run(self) -> None:
        queue = [k for k in self.order if self.records[k]["status"] != "done" and k in self._planned()]
        for key in self.order:
            if key in self._planned() and self.records[key]["status"] == "done":
                self._event("skip", self.records[key])
        if not queue:
            return
        tries = {key: 0 for key in queue}
        with self._runner(len(queue)) as runner:
            slots = max(1, int(runner.slots // self.config.cpus_per_trial)) if runner.kind == "ray" else runner.slots
            running: dict[Future, str] = {}
            try:
                while queue or running:
                    while queue and len(running) < slots:
                        key = queue.pop(0)
                        record = self.records[key]
                        record.update(status="running", error=None, attempts=record["attempts"] + 1)
                        tries[key] += 1
                        self._save()
                        self._event("start", record)
                        running[runner.submit(run_trial, self._spec(key), num_cpus=self.config.cpus_per_trial)] = key
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    broken = False
                    for future in done:
                        key = running.pop(future)
                        record = self.records[key]
                        try:
                            record.update(status="done", result=future.result(), error=None, traceback=None)
                            record.setdefault("history", []).append({"attempt": record["attempts"], "status": "done"})
                            self._event("done", record)
                        except BaseException as exc:  # noqa: BLE001 - every failure is recorded, none is lost
                            if isinstance(exc, KeyboardInterrupt):
                                raise
                            broken = broken or isinstance(exc, BrokenProcessPool)
                            error, trace = _error_text(exc)
                            if isinstance(exc, BrokenProcessPool):
                                error = "the worker process died (out of memory or killed)"
                            record["traceback"] = trace
                            record.setdefault("history", []).append({"attempt": record["attempts"], "status": "failed", "error": error})
                            if tries[key] <= self.config.retries:
                                record.update(status="pending", error=error)
                                queue.append(key)
                                self._event("retry", record)
                            else:
                                record.update(status="failed", error=error)
                                self._event("failed", record)
                        self._save()
                    if broken and isinstance(runner, ProcessRunner):
                        for future, key in list(running.items()):  # their pool is gone: run them again
                            running.pop(future)
                            self.records[key].update(status="pending")
                            tries[key] -= 1
                            self.records[key]["attempts"] -= 1
                            queue.insert(0, key)
                        runner.restart()
            except BaseException:
                for future, key in running.items():
                    runner.cancel(future)
                    self.records[key].update(status="pending", error="interrupted; run the sweep again to resume it")
                self._save()
                raise

    def _planned(self) -> set[str]:
        return set(self.specs)

    # -- comparing ------------------------------------------------------------------------------------------
    def compare(self) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        comparisons, aggregates = {}, {}
        by_dataset: dict[str, list[Path]] = {}
        for key in self.order:
            record = self.records[key]
            if record["status"] == "done" and (Path(record["run_dir"]) / "evaluation.json").is_file():
                by_dataset.setdefault(key.split("/", 1)[0], []).append(Path(record["run_dir"]))
        for name in by_dataset:  # every evaluated run of the dataset, earlier `fxcap train` runs too
            frame = compare_dataset(self.config.runs_dir / name)
            if frame is not None:
                comparisons[name] = frame
                aggregates[name] = aggregate_seeds(frame)
        return comparisons, aggregates


def run_sweep(config: SweepConfig, on_event: SweepEvent | None = None) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring. Failed trials are in ``result.failed``."""
    sweep = _Sweep(config, on_event)
    sweep.plan()
    sweep.run()
    comparisons, aggregates = sweep.compare()
    planned = sweep._planned()
    return SweepResult(manifest=sweep.path, trials=[sweep.records[k] for k in sweep.order if k in planned],
                       comparisons=comparisons, aggregates=aggregates)


def load_sweep(runs_dir: str | Path) -> dict[str, Any]:
    """The ``sweep.json`` of a runs folder (status of every trial)."""
    path = Path(runs_dir) / SWEEP_FILE
    if not path.is_file():
        raise ModelError(f"{runs_dir} has no {SWEEP_FILE}; run `fxcap sweep` first")
    return json.loads(path.read_text(encoding="utf-8"))


