"""The paper's OD-3 study, end to end, on the built-in virtual OD-3.

The story, top to bottom:

1. **Capture** a 5 x 5 grid of DRIVE x TONE on the virtual OD-3 behind a virtual rig (unknown
   latency, gain, noise, clock drift), every take aligned and checked.
2. **Build the dataset**: time splits 60/10/30 identical for every setting, 2048-sample windows,
   and two knob settings held out entirely (to measure interpolation to unseen knobs).
3. **Train** the four conditioning schemes (Concat, FiLM, StaticHyper, DynamicHyper; GRU, and
   LSTM with ``--lstm``) with L1 + multi-resolution STFT loss.
4. **Evaluate and compare** on the test split and the held-out settings; write the report.

``--quick`` finishes in minutes on a 2-core CPU (short capture signal, short training); the full
preset follows the paper's recipe (default capture signal, batch 80, early stopping).

Run it::

    python recipes/od3.py --quick --out work/od3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxcap.capture.capture import CaptureRequest, run_capture
from fxcap.capture.plan import PlanConfig
from fxcap.dataset import BuildConfig, build_dataset
from fxcap.modeling.compare import compare_runs, to_markdown
from fxcap.modeling.pipeline import TrainRequest, train_models

CONDITIONS = ["concat", "film", "statichyper", "dynamichyper"]


@dataclass
class OD3Study:
    """Options of the study. ``quick`` picks the short capture signal and the quick training preset."""

    out: Path = Path("work/od3")
    quick: bool = True
    cells: list[str] = field(default_factory=lambda: ["gru"])
    steps: int = 5
    holdout: tuple[str, ...] = ("drive=5,tone=5", "drive=2.5,tone=7.5")
    seed: int = 0
    sample_rate: int = 48000


def capture(study: OD3Study):
    """Record the DRIVE x TONE grid (resuming an interrupted capture in the same folder)."""
    session_dir = study.out / "session"
    request = CaptureRequest(
        device="OD-3",
        backend="sim",
        plan=PlanConfig(knobs=["drive", "tone"], steps=study.steps, shuffle=True, seed=study.seed),
        sample_rate=study.sample_rate,
        preset="short" if study.quick else "default",
        out=session_dir,
        resume=(session_dir / "session.json").exists(),
        seed=study.seed,
    )
    return run_capture(request)


def prepare_dataset(study: OD3Study, session_root: Path):
    """Leakage-free time splits; 2048-sample windows; the held-out settings in their own split."""
    return build_dataset(
        [session_root], study.out / "dataset", BuildConfig(window=2048, holdout=study.holdout, write_wav=False), overwrite=True
    )


def train_all(study: OD3Study, dataset_dir: Path, console: Any | None = None):
    """Train, evaluate and compare every scheme for every cell."""
    runs = []
    for cell in study.cells:
        request = TrainRequest(
            conds=CONDITIONS,
            cell=cell,
            dataset=dataset_dir,
            runs_dir=study.out / "runs",
            preset="quick" if study.quick else "paper",
            seed=study.seed,
            resume=True,
        )
        runs.extend(train_models(request, console=console).runs)
    return runs


def run(study: OD3Study, console: Any | None = None) -> dict[str, Any]:
    """The whole study; returns timings, the comparison table and where everything was written."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    session = capture(study)
    timings["capture_s"] = time.perf_counter() - start

    start = time.perf_counter()
    info = prepare_dataset(study, session.root)
    timings["dataset_s"] = time.perf_counter() - start

    start = time.perf_counter()
    runs = train_all(study, info.path, console)
    timings["train_evaluate_s"] = time.perf_counter() - start

    test = compare_runs(runs, study.out, split="test")
    holdout = compare_runs(runs, study.out / "holdout", split="holdout")
    result = {"session": session.root, "dataset": info.path, "runs": runs, "test": test, "holdout": holdout, "timings": timings}
    try:
        from fxcap.report import build_report
    except ImportError:
        return result
    start = time.perf_counter()
    result["report"] = build_report(study.out / "report", session=session.root, dataset=info.path, runs=runs)
    timings["report_s"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("work/od3"), help="folder for session, dataset, runs and report")
    parser.add_argument("--quick", action="store_true", help="short capture and training (minutes on a CPU)")
    parser.add_argument("--lstm", action="store_true", help="also train the LSTM variants")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console()
    study = OD3Study(out=args.out, quick=args.quick, cells=["gru", "lstm"] if args.lstm else ["gru"], seed=args.seed)
    result = run(study, console)
    console.print("\n[bold]Test split[/] (time stretch never heard in training)")
    console.print(to_markdown(result["test"]), markup=False)
    console.print("[bold]Held-out knob settings[/] (settings never heard in training)")
    console.print(to_markdown(result["holdout"]), markup=False)
    console.print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result["timings"].items()))
    if "report" in result:
        console.print(f"report: {result['report']}")


if __name__ == "__main__":
    main()
