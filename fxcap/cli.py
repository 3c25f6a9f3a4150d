"""The ``fxcap`` command: thin Typer commands over the library functions.

Every command parses its options, calls one library function and prints the result. Problems the
user can fix (:class:`fxcap.errors.FxcapError`) are printed as one line and exit with status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from fxcap import __version__
from fxcap.errors import FxcapError

app = typer.Typer(
    name="fxcap",
    help="Capture a real audio effect at swept knob settings and model it with a knob-conditioned RNN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"fxcap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    """fxcap: record a device, build a dataset, train and compare conditioned RNN models."""


@app.command()
def devices() -> None:
    """List built-in device profiles and virtual devices."""
    from fxcap.capture.profiles import BUILTIN_PROFILES

    table = Table(title="Device profiles")
    table.add_column("profile")
    table.add_column("kind")
    table.add_column("knobs")
    for profile in BUILTIN_PROFILES.values():
        knobs = ", ".join(
            f"{k.name} ({'/'.join(k.values)})" if k.is_switch else f"{k.name} {k.minimum:g}-{k.maximum:g}"
            for k in profile.knobs
        )
        table.add_row(profile.name, profile.kind, knobs)
    console.print(table)


# -- dataset ---------------------------------------------------------------------------------------------

dataset_app = typer.Typer(help="Inspect and check dataset folders.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@app.command("build-dataset")
def build_dataset_command(
    sessions: Annotated[Optional[list[Path]], typer.Argument(help="Session folders (default: the newest under --sessions-dir).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Dataset folder (default: datasets/<device>).")] = None,
    split: Annotated[str, typer.Option(help="train/valid/test shares of the trainable audio, e.g. 60/10/30.")] = "60/10/30",
    segment_seconds: Annotated[float, typer.Option(help="Segment length in seconds (one Parquet row per take and segment).")] = 2.0,
    split_mode: Annotated[str, typer.Option(help="interleaved (every split hears every kind of material) or contiguous.")] = "interleaved",
    holdout: Annotated[Optional[list[str]], typer.Option(help="Hold out a knob setting, e.g. drive=5 or drive=5,tone=3 (repeatable).")] = None,
    window: Annotated[Optional[int], typer.Option(help="Default training window in samples (default: 2048, 8192 for compressors).")] = None,
    wav: Annotated[bool, typer.Option("--wav/--no-wav", help="Also write the WAV shards.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset at --out.")] = False,
    sessions_dir: Annotated[Path, typer.Option(help="Where to look for the newest session.")] = Path("sessions"),
) -> None:
    """Turn capture sessions into Parquet + WAV shards with leakage-free splits and a dataset card."""
    from fxcap.capture.session import newest_session
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset

    config = BuildConfig(
        split=SplitConfig.parse_fractions(split, segment_seconds=segment_seconds, mode=split_mode),
        holdout=tuple(holdout or ()),
        window=window,
        write_wav=wav,
    )
    info = build_dataset(list(sessions) if sessions else [newest_session(sessions_dir)], out, config, overwrite=force,
                         progress=lambda take: err_console.print(f"  {take}", highlight=False))
    console.print(info.describe(), markup=False, highlight=False)


@dataset_app.command("info")
def dataset_info_command(path: Annotated[Path, typer.Argument(help="Dataset folder.")]) -> None:
    """Print a dataset's device, knobs, splits, capture quality and hash."""
    from fxcap.dataset import load_dataset_info

    console.print(load_dataset_info(path).describe(), markup=False, highlight=False)


@dataset_app.command("validate")
def dataset_validate_command(path: Annotated[Path, typer.Argument(help="Dataset folder.")]) -> None:
    """Check schema, lengths, NaN/Inf, split leakage, knob coverage and every shard; exit 1 on errors."""
    from fxcap.dataset import validate

    problems = validate(path)
    for problem in problems:
        console.print(str(problem), markup=False, highlight=False)
    errors = sum(p.severity == "error" for p in problems)
    console.print(f"{path}: {errors} error(s), {len(problems) - errors} warning(s)", markup=False, highlight=False)
    if errors:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one-line messages."""
    try:
        app(standalone_mode=False)
    except FxcapError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted; data written so far is kept (rerun with --resume to continue)")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
