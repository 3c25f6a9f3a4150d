"""The paper's OD-3 study, end to end, on the built-in virtual OD-3.

1. Capture a 5 x 5 grid of DRIVE x TONE on the virtual OD-3 behind a virtual rig (unknown
   latency, gain, noise, clock drift); every take aligned and checked.
2. Build the dataset: time splits 60/10/30, identical for every setting; 2048-sample windows (as
   in the paper); two knob settings held out entirely, to measure interpolation to unseen knobs.
3. Train Concat, FiLM, StaticHyper and DynamicHyper (GRU; LSTM too with ``--lstm``) with
   L1 + multi-resolution STFT loss.
4. Evaluate on the test split and on the held-out settings, compare, write the report.

``--quick`` finishes in minutes on a 2-core CPU; without it the capture uses the full (3-minute)
signal and training the ``default`` preset; ``--preset paper`` trains with the paper's recipe (batch 80,
early stopping, L1 + STFT loss).

    python recipes/od3.py --quick --out work/od3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study import Study, print_result, run_study  # noqa: E402


def od3_study(out: Path, quick: bool = True, lstm: bool = False, seed: int = 0, preset: str | None = None) -> Study:
    return Study(
        device="OD-3",
        knobs=["drive", "tone"],
        steps=5,  # 0, 2.5, 5, 7.5, 10
        window=2048,
        out=out,
        quick=quick,
        holdout=("drive=5,tone=5", "drive=2.5,tone=7.5"),
        cells=["gru", "lstm"] if lstm else ["gru"],
        seed=seed,
        preset=preset,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The paper's OD-3 study on the virtual OD-3.")
    parser.add_argument("--out", type=Path, default=Path("work/od3"), help="folder for session, dataset, runs, report")
    parser.add_argument("--quick", action="store_true", help="short capture and training (minutes on a CPU)")
    parser.add_argument("--preset", default=None, help="training preset: quick, default or paper (default: quick with --quick, else default)")
    parser.add_argument("--lstm", action="store_true", help="also train the LSTM variants")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console()
    print_result(run_study(od3_study(args.out, args.quick, args.lstm, args.seed, args.preset), console), console)


if __name__ == "__main__":
    main()
