"""The dataset commands: ``fxcap build-dataset``, ``fxcap dataset info`` and ``fxcap dataset validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fxcap.cli import tables
from fxcap.cli.options import DatasetLocation, SessionsDir

dataset_app = typer.Typer(help="Inspect and check dataset folders.", no_args_is_help=True)
"""The ``fxcap dataset`` group (``info``, ``validate``)."""


def build_dataset_command(
    sessions: Annotated[Optional[list[Path]], typer.Argument(help="Session folders (default: the newest under --sessions-dir).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Dataset folder or URI: s3://bucket/prefix, gs://..., file://... (default: datasets/<device>).")] = None,
    split: Annotated[str, typer.Option(help="train/valid/test shares of the trainable audio, e.g. 60/10/30.")] = "60/10/30",
    segment_seconds: Annotated[float, typer.Option(help="Segment length in seconds (one Parquet row per take and segment).")] = 2.0,
    split_mode: Annotated[str, typer.Option(help="interleaved (every split hears every kind of material) or contiguous.")] = "interleaved",
    holdout: Annotated[Optional[list[str]], typer.Option(help="Hold out a knob setting, e.g. drive=5 or drive=5,tone=3 (repeatable).")] = None,
    window: Annotated[Optional[int], typer.Option(help="Default training window in samples (default: 2048, 8192 for compressors).")] = None,
    wav: Annotated[bool, typer.Option("--wav/--no-wav", help="Also write the WAV shards.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset at --out.")] = False,
    sessions_dir: SessionsDir = Path("sessions"),
    mixed_signals: Annotated[bool, typer.Option("--mixed-signals", help="Combine sessions that played different signals (e.g. imported dry/wet files); each is split along time on its own.")] = False,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="Build from sessions that stopped before their plan was done (warns and lists their missing takes).")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Processes writing shards in parallel (default: one per core for large builds).")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Write shards as Ray tasks: auto, HOST:PORT or local.")] = None,
) -> None:
    """Turn capture sessions into Parquet + WAV shards with leakage-free splits and a dataset card."""
    from fxcap.capture.session import newest_session
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset

    config = BuildConfig(
        split=SplitConfig.parse_fractions(split, segment_seconds=segment_seconds, mode=split_mode),
        holdout=tuple(holdout or ()),
        window=window,
        write_wav=wav,
        mixed_signals=mixed_signals,
        allow_incomplete=allow_incomplete,
    )
    info = build_dataset(list(sessions) if sessions else [newest_session(sessions_dir)], out, config, overwrite=force,
                         progress=lambda take: tables.err_console.print(f"  {take}", highlight=False), workers=workers, ray=ray)
    tables.console.print(info.describe(), markup=False, highlight=False)


@dataset_app.command("info")
def dataset_info_command(path: DatasetLocation) -> None:
    """Print a dataset's device, knobs, splits, capture quality and hash."""
    from fxcap.dataset import load_dataset_info

    tables.console.print(load_dataset_info(path).describe(), markup=False, highlight=False)


@dataset_app.command("validate")
def dataset_validate_command(path: DatasetLocation) -> None:
    """Check schema, lengths, NaN/Inf, split leakage, knob coverage and every shard; exit 1 on errors."""
    from fxcap.dataset import validate

    problems = validate(path)
    for problem in problems:
        tables.console.print(str(problem), markup=False, highlight=False)
    errors = sum(p.severity == "error" for p in problems)
    tables.console.print(f"{path}: {errors} error(s), {len(problems) - errors} warning(s)", markup=False, highlight=False, soft_wrap=True)
    if errors:
        raise typer.Exit(1)
