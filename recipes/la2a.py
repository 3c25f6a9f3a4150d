"""The LA-2A study: the built-in virtual LA-2A (optical compressor), or SignalTrain-style data.

1. Capture PEAK REDUCTION in 6 steps (0..100) in COMPRESS mode on the virtual LA-2A (gain at its
   default) — or, with ``--signaltrain DIR``, import an existing dry/wet dataset laid out as
   ``input_<id>_.wav`` / ``target_<id>_LA2A_<...>__<switch>__<peak>.wav`` pairs.
2. Build the dataset with 8192-sample windows (a compressor's memory is long); hold out
   PEAK REDUCTION = 60.
3. Train the four schemes, evaluate, compare, write the report.

    python recipes/la2a.py --quick --out work/la2a
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study import Study, print_result, run_study  # noqa: E402


def la2a_study(out: Path, quick: bool = True, seed: int = 0, sessions: list[Path] | None = None,
               preset: str | None = None) -> Study:
    return Study(
        device="LA-2A",
        knobs=["peak_reduction"],
        steps=6,  # 0, 20, 40, 60, 80, 100
        fixed={"mode": "compress"},
        window=8192,
        out=out,
        quick=quick,
        holdout=("peak_reduction=60",) if sessions is None else (),
        seed=seed,
        sessions=sessions,
        preset=preset,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The LA-2A study on the virtual LA-2A or SignalTrain data.")
    parser.add_argument("--out", type=Path, default=Path("work/la2a"), help="folder for session, dataset, runs, report")
    parser.add_argument("--quick", action="store_true", help="short capture and training (minutes on a CPU)")
    parser.add_argument("--preset", default=None, help="training preset: quick, default or paper (default: quick with --quick, else default)")
    parser.add_argument("--signaltrain", type=Path, default=None, help="import a SignalTrain-style folder instead of capturing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console()
    sessions = None
    if args.signaltrain is not None:
        from fxcap.capture.signaltrain import import_signaltrain

        sessions = [s.root for s in import_signaltrain(args.signaltrain, args.out / "sessions")]
    print_result(run_study(la2a_study(args.out, args.quick, args.seed, sessions, args.preset), console), console)


if __name__ == "__main__":
    main()
