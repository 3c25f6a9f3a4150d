"""A training sweep through Ray: the four schemes x 2 seeds on a small synthetic dataset, read from S3.

Starts a moto S3 server on 127.0.0.1 (its own process, fake credentials), builds a synthetic dataset into
``s3://fxcap-bench/sweep-ds``, starts a local Ray instance (``--cpus`` CPUs, no dashboard) and runs
``fxcap.modeling.sweep.run_sweep`` with ``ray="local"``: one Ray task per trial with 1 CPU, every run
reading the dataset through its bounded local shard cache. With ``--reference`` the same sweep also runs
in this process (``workers=1``): the runs must give the same scores, and the wall times are compared.

Usage: ``python bench/ray_sweep.py [--seconds 10] [--epochs 3] [--reference]``. Prints the per-run and
mean ± std tables, writes ``bench/results/ray_sweep.json`` and ``bench/results/ray_sweep.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from remote_dataset import BUCKET, S3Server  # noqa: E402

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset  # noqa: E402
from fxcap.dataset.testing import make_dummy_session  # noqa: E402
from fxcap.modeling.compare import seeds_markdown, to_markdown  # noqa: E402
from fxcap.modeling.config import CONDS  # noqa: E402
from fxcap.modeling.sweep import SweepConfig, run_sweep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic signal (s)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per epoch")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--cache-max-bytes", default="256M", help="bound of the runs' shard cache")
    parser.add_argument("--reference", action="store_true", help="also run the sweep in this process and compare")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ray_sweep.json")
    args = parser.parse_args()

    import ray

    server = S3Server()
    work = Path(tempfile.mkdtemp(prefix="fxcap-bench-sweep-"))
    report: dict = {}
    try:
        session = make_dummy_session(work / "session", knob_grid={"drive": [0.0, 5.0, 10.0], "tone": [2.0, 8.0]},
                                     seconds=args.seconds)
        dataset = f"s3://{BUCKET}/sweep-ds"
        info = build_dataset([session.root], dataset, BuildConfig(split=SplitConfig(segment_seconds=0.5), write_wav=False))
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})

        def sweep(runs: Path, **where) -> tuple[float, object]:
            config = SweepConfig(
                datasets=[dataset], conds=list(CONDS), seeds=list(range(args.seeds)), runs_dir=runs, preset="quick",
                overrides={"max_epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch,
                           "window": args.window, "valid_windows": 32},
                cache_dir=work / "cache", cache_max_bytes=args.cache_max_bytes, **where)
            t0 = time.perf_counter()
            result = run_sweep(config, on_event=lambda kind, r: print(f"  {kind:<6} {r['trial']}", flush=True))
            return time.perf_counter() - t0, result

        print(f"sweep through Ray ({args.cpus} CPUs, 1 per trial): {len(CONDS)} schemes x {args.seeds} seeds")
        seconds, result = sweep(work / "runs-ray", ray="auto")
        frame, aggregate = result.comparisons["sweep-ds"], result.aggregates["sweep-ds"]
        report = {
            "dataset": {"uri": dataset, "hash": info.dataset_hash, "train_seconds": info.splits["train"].seconds,
                        "rows": {k: v.rows for k, v in info.splits.items()}},
            "ray": {"seconds": seconds, "trials": len(result.trials), "failed": len(result.failed),
                    "trial_seconds": {t["trial"]: t["result"]["seconds"] for t in result.trials if t["result"]}},
            "runs": json.loads(frame.to_json(orient="records")),
            "mean_std": json.loads(aggregate.to_json(orient="records")),
        }
        markdown = (f"# Ray sweep: {len(CONDS)} schemes x {args.seeds} seeds, {seconds:.0f} s wall on {args.cpus} CPUs\n\n"
                    f"Dataset {dataset} ({info.splits['train'].seconds:.1f} s of training audio per stream), "
                    f"quick preset: {args.epochs} epochs x {args.steps} steps, batch {args.batch}, window {args.window}.\n\n"
                    + to_markdown(frame) + "\n" + seeds_markdown(aggregate))
        if args.reference:
            print("the same sweep in this process (reference)")
            ref_seconds, ref = sweep(work / "runs-inline", workers=1)
            same = all(
                json.loads((work / "runs-inline" / t["trial"] / "evaluation.json").read_text())["test"]
                == json.loads((work / "runs-ray" / t["trial"] / "evaluation.json").read_text())["test"] for t in ref.trials)
            report["reference"] = {"seconds": ref_seconds, "same_scores": same, "speedup_ray_over_inline": ref_seconds / seconds}
            markdown += (f"\nSame sweep in one process: {ref_seconds:.0f} s (Ray {ref_seconds / seconds:.2f}x faster); "
                         f"identical scores: {same}.\n")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(markdown)
    report["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report["machine"] = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                         "ray": ray.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
