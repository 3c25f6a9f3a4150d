"""``fxcap sweep``: every scheme x cell x seed (x dataset), in parallel, resumable, compared over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fxcap.cli import tables
from fxcap.cli.options import BatchSize, Epochs, LearningRate, Preset, StepsPerEpoch, Window, given
from fxcap.errors import FxcapError
from fxcap.modeling.schemes import scheme_names


def sweep(
    dataset: Annotated[list[str], typer.Option("--dataset", "-d", help="Dataset folder or URI (s3://...); repeat for several.")],
    cond: Annotated[Optional[list[str]], typer.Option("--cond", "-c", help="Scheme(s) to train; repeatable; default all four.")] = None,
    cell: Annotated[Optional[list[str]], typer.Option("--cell", help="gru, lstm or all; repeatable; default gru.")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per scheme: first-seed .. first-seed + seeds - 1.")] = 2,
    first_seed: Annotated[int, typer.Option(help="The first seed.")] = 0,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where run folders, sweep.json and the comparisons go.")] = Path("runs"),
    preset: Preset = "default",
    epochs: Epochs = None,
    steps: StepsPerEpoch = None,
    batch_size: BatchSize = None,
    window: Window = None,
    lr: LearningRate = None,
    retries: Annotated[int, typer.Option(help="Further attempts for a failed trial before it is reported as failed.")] = 1,
    workers: Annotated[Optional[int], typer.Option(help="Trials at once on this machine (default: cores // --cpus-per-trial; 1: in this process).")] = None,
    cpus_per_trial: Annotated[float, typer.Option(help="CPUs (torch threads) per trial; Ray reserves this share.")] = 1.0,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run trials as Ray tasks: auto, HOST:PORT, ray://HOST:PORT or local.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Local cache of remote datasets (default $FXCAP_CACHE_DIR or ~/.cache/fxcap).")] = None,
    cache_max_bytes: Annotated[Optional[str], typer.Option(help="Bound of that cache, e.g. 8G (default $FXCAP_CACHE_MAX_BYTES).")] = None,
) -> None:
    """Train every scheme x cell x seed (x dataset) in parallel (processes or Ray); resumable; compare with mean ± std."""
    from fxcap.modeling.sweep import SweepConfig, run_sweep

    config = SweepConfig(
        datasets=list(dataset),
        conds=scheme_names() if not cond or "all" in cond else list(cond),
        cells=["gru", "lstm"] if cell and "all" in cell else list(cell or ["gru"]),
        seeds=list(range(first_seed, first_seed + seeds)),
        runs_dir=runs_dir, preset=preset, retries=retries, workers=workers, cpus_per_trial=cpus_per_trial, ray=ray,
        overrides=given(max_epochs=epochs, steps_per_epoch=steps, batch_size=batch_size, window=window, lr=lr),
        cache_dir=cache_dir, cache_max_bytes=cache_max_bytes,
    )
    result = run_sweep(config, on_event=_print_event)
    for name, frame in result.comparisons.items():
        tables.print_comparison(frame, runs_dir / name / "comparison.md")
        tables.print_seeds(frame, title=f"{name}: mean ± std over seeds (lower is better, * best mean)",
                           written=runs_dir / name / "comparison_seeds.md")
    tables.console.print(f"sweep state: {result.manifest}")
    if result.failed:
        names = ", ".join(t["trial"] for t in result.failed)
        raise FxcapError(f"{len(result.failed)} trial(s) failed: {names}; see {result.manifest}, fix the cause and run the sweep again to resume")


def _print_event(kind: str, record: dict) -> None:
    """One line per trial event of the sweep: start, skip, done (epochs, test ESR, time), retry, failed."""
    console = tables.console
    if kind == "done":
        result = record["result"] or {}
        esr = result.get("test", {}).get("esr")
        console.print(f"[green]done[/]    {record['trial']}: {result.get('epochs')} epoch(s), "
                      f"ESR {esr:.4f}, {result.get('seconds', 0):.0f} s" if esr is not None else f"[green]done[/]    {record['trial']}",
                      highlight=False)
    elif kind in ("retry", "failed"):
        style = "yellow" if kind == "retry" else "red"
        console.print(f"[{style}]{kind:<7}[/] {record['trial']} (attempt {record['attempts']}): {record['error']}", highlight=False)
    elif kind == "start":
        console.print(f"start   {record['trial']} (attempt {record['attempts']})", highlight=False)
    elif kind == "skip":
        console.print(f"skip    {record['trial']} (finished earlier)", highlight=False)
