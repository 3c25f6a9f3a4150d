"""The steps every capture study shares: capture -> dataset -> train all schemes -> compare -> report.

``recipes/od3.py`` and ``recipes/la2a.py`` describe their study with a :class:`Study` and call
:func:`run_study`; each step is one library call, so this file is the whole story.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxcap.capture.capture import CaptureRequest, run_capture
from fxcap.capture.plan import PlanConfig
from fxcap.capture.record import session_summary
from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.modeling.compare import compare_runs, to_markdown
from fxcap.modeling.schemes import BUILTIN_SCHEMES
from fxcap.modeling.sweep import SweepConfig, run_sweep

CONDITIONS = list(BUILTIN_SCHEMES)
COST_ORDER = ["dynamichyper", "film", "concat", "statichyper"]
"""The schemes, slowest to train first (DynamicHyper's kernels are about 4x slower per sample)."""


@dataclass
class Study:
    """One study: which device, which knobs, which windows, held-out settings, how long to train.

    ``quick`` picks the short capture signal and the quick training preset (minutes on a CPU);
    otherwise the default signal and the default preset (``preset="paper"`` for the paper's recipe).
    """

    device: str
    knobs: list[str]
    steps: int
    window: int
    out: Path
    quick: bool = True
    holdout: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    cells: list[str] = field(default_factory=lambda: ["gru"])
    seed: int = 0
    sample_rate: int = 48000
    sessions: list[Path] | None = None  # use these sessions instead of capturing
    segment_seconds: float = 2.0  # dataset segment length (shorter for short imported files)
    split: tuple[float, float, float] = (0.6, 0.1, 0.3)  # train/valid/test shares of the trainable audio
    train_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields replacing the preset's
    report_config: Any = None  # fxcap.report.ReportConfig (excerpt lengths, dpi); None: its defaults
    preset: str | None = None  # training preset; default "quick" with quick, else "default"
    workers: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))  # models trained at once
    plan: str = "grid"  # knob plan kind: grid (``steps`` values per knob), lhs or adaptive (``takes`` settings)
    takes: int = 16  # settings of an lhs or adaptive plan (adaptive: ``steps`` is then its candidate grid)
    batch: int = 3  # adaptive plan: settings chosen per round
    extend: Any = None  # adaptive plan: what chooses the next settings (fxcap.adaptive.AdaptivePlanner)

    @property
    def training_preset(self) -> str:
        return self.preset or ("quick" if self.quick else "default")


def capture(study: Study):
    """Record the study's knob plan (a grid unless ``study.plan`` says otherwise) on the virtual device,
    resuming an interrupted capture in the same folder."""
    session_dir = study.out / "session"
    request = CaptureRequest(
        device=study.device,
        backend="sim",
        plan=PlanConfig(knobs=study.knobs, steps=study.steps, kind=study.plan, takes=study.takes, batch=study.batch,
                        fixed=study.fixed, shuffle=True, seed=study.seed),
        sample_rate=study.sample_rate,
        preset="short" if study.quick else "default",
        out=session_dir,
        resume=(session_dir / "session.json").exists(),
        seed=study.seed,
        extend=study.extend,
    )
    return run_capture(request)


def build_study_dataset(study: Study, session_roots: list[Path]):
    """Build the study's dataset into ``<out>/dataset`` (time splits, the study's window and held-out settings)."""
    # Imported SignalTrain sessions each played their own input: split each along time on its own.
    config = BuildConfig(
        split=SplitConfig(*study.split, segment_seconds=study.segment_seconds), window=study.window, holdout=study.holdout,
        write_wav=False, mixed_signals=bool(study.sessions),
    )
    return build_dataset(session_roots, study.out / "dataset", config, overwrite=True)


def train_all(study: Study, dataset: Path, console: Any | None = None) -> tuple[list[Path], dict[str, str]]:
    """Train and evaluate every scheme (and cell), ``study.workers`` models at a time in worker processes
    (one thread each), resuming finished epochs of an interrupted run; returns the run folders and the
    failed runs with their reason."""
    say = console.print if console is not None else (lambda *a, **k: None)

    def event(kind: str, record: dict[str, Any]) -> None:
        name = Path(record["run_dir"]).name
        if kind == "done":
            test = record["result"].get("test", {})
            say(f"  {name}: trained and scored in {record['result']['seconds']:.0f} s, test ESR {test.get('esr', float('nan')):.4f}",
                markup=False)
        elif kind in ("start", "failed"):
            say(f"  {name}: {'training' if kind == 'start' else 'FAILED: ' + str(record.get('error'))}", markup=False)

    # the slowest scheme first, so that it trains beside the other three rather than after them
    config = SweepConfig(datasets=[dataset], conds=COST_ORDER, cells=list(study.cells), seeds=[study.seed],
                         runs_dir=study.out / "runs", preset=study.training_preset, overrides=dict(study.train_overrides),
                         retries=0, workers=study.workers)
    result = run_sweep(config, on_event=event)
    runs = sorted((Path(t["run_dir"]) for t in result.trials if t["status"] == "done"),
                  key=lambda run: (CONDITIONS.index(run.name.split("-")[0]), run.name))  # the paper's order
    failed = {t["run_dir"]: str(t.get("error")) for t in result.trials if t["status"] != "done"}
    return runs, failed


def run_study(study: Study, console: Any | None = None) -> dict[str, Any]:
    """Run every step; returns timings, the comparison tables and where everything was written."""
    timings: dict[str, float] = {}
    say = console.print if console is not None else (lambda *a, **k: None)

    start = time.perf_counter()
    if study.sessions:
        session_roots = list(study.sessions)
    else:
        session = capture(study)
        session_roots = [session.root]
        rows = session_summary(session)
        say(f"captured {len(rows)} takes of {study.device} into {session.root}")
        for row in rows:
            say(
                f"  {row['take']}  {row['knobs']:<28} latency {row['latency_samples']:.2f} smp  gain {row['gain_db']:+.2f} dB  "
                f"noise {row['noise_floor_dbfs']:.1f} dBFS  repeatability {row['repeatability_esr_db']:.1f} dB  {row['status']}"
            )
    timings["capture_s"] = time.perf_counter() - start

    start = time.perf_counter()
    info = build_study_dataset(study, session_roots)
    timings["dataset_s"] = time.perf_counter() - start
    say(info.describe(), markup=False)

    start = time.perf_counter()
    runs, failed = train_all(study, info.path, console)
    timings["train_evaluate_s"] = time.perf_counter() - start

    result: dict[str, Any] = {"sessions": session_roots, "dataset": info.path, "runs": runs, "timings": timings, "failed": failed}
    if not runs:
        return result
    result["test"] = compare_runs(runs, study.out, split="test")
    if study.holdout:
        result["holdout"] = compare_runs(runs, study.out / "holdout", split="holdout")
    try:
        from fxcap.report import build_report
    except ImportError:  # the report needs matplotlib (pip install 'fxcap[report]')
        return result
    start = time.perf_counter()
    result["report"] = build_report(study.out / "report", session=session_roots[0], dataset=info.path, runs=runs,
                                    config=study.report_config)
    timings["report_s"] = time.perf_counter() - start
    return result


def print_result(result: dict[str, Any], console: Any) -> None:
    """The comparison tables and timings, as the recipes print them at the end."""
    if "test" in result:
        console.print("\nTest split (a stretch of input never heard in training):", markup=False)
        console.print(to_markdown(result["test"]), markup=False)
    if "holdout" in result:
        console.print("Held-out knob settings (never heard in training):", markup=False)
        console.print(to_markdown(result["holdout"]), markup=False)
    for run, reason in result.get("failed", {}).items():
        console.print(f"FAILED {run}: {reason}", markup=False)
    console.print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result["timings"].items()), markup=False)
    if "report" in result:
        console.print(f"report: {result['report']}", markup=False)
