"""The ``fxcap`` command: thin Typer commands over the library functions.

Every command parses its options, calls one library function and prints the result. Problems the
user can fix (:class:`fxcap.errors.FxcapError`) are printed as one line and exit with status 1.
"""

from __future__ import annotations

import sys
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
