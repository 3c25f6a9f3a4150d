"""The ``fxcap`` command: thin Typer commands over the library functions.

Every command parses its options, calls one library function and prints the result. Problems the
user can fix (:class:`fxcap.errors.FxcapError`, OS and audio-file errors) are printed as one line and
exit with status 1; Ctrl-C exits with 130 (see :func:`main`).

Layout (one module per command group; a command is a plain function registered on :data:`app` below):

* :mod:`fxcap.cli.capture`: ``devices``, ``signal``, ``check``, ``record``, ``import``, ``import-signaltrain``;
* :mod:`fxcap.cli.plan`: the ``plan`` group (``next``: the next settings of an adaptive capture);
* :mod:`fxcap.cli.modeling`: ``train``, ``evaluate``, ``compare``, ``render``, ``ab``, ``export``;
* :mod:`fxcap.cli.dataset`: ``build-dataset`` and the ``dataset`` group (``info``, ``validate``);
* :mod:`fxcap.cli.report`: ``report``; :mod:`fxcap.cli.sweep`: ``sweep``;
* :mod:`fxcap.cli.options`: the option types several commands share;
* :mod:`fxcap.cli.tables`: the consoles and every table printed; :mod:`fxcap.cli.progress`: the capture progress bar;
* :mod:`fxcap.cli.boundary`: the translation of escaping errors into one line and an exit status.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape

from fxcap import __version__
from fxcap.cli import capture, dataset, modeling, plan, report, sweep, tables

app = typer.Typer(
    name="fxcap",
    help="Capture a real audio effect at swept knob settings and model it with a knob-conditioned RNN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        tables.console.print(f"fxcap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    """fxcap: record a device, build a dataset, train and compare conditioned RNN models."""


# The commands, in the order `fxcap --help` lists them.
app.command("devices")(capture.devices)
app.command("signal")(capture.signal_command)
app.command("check")(capture.check)
app.command("record")(capture.record)
app.command("import")(capture.import_command)
app.command("import-signaltrain")(capture.import_signaltrain_command)
app.add_typer(plan.plan_app, name="plan")
app.command("train")(modeling.train)
app.command("evaluate")(modeling.evaluate_command)
app.command("compare")(modeling.compare)
app.command("render")(modeling.render)
app.command("ab")(modeling.ab)
app.add_typer(dataset.dataset_app, name="dataset")
app.command("build-dataset")(dataset.build_dataset_command)
app.command("export")(modeling.export_command)
app.command("report")(report.report_command)
app.command("sweep")(sweep.sweep)


def main(args: Optional[list[str]] = None) -> None:
    """Console-script entry point (``args``: default ``sys.argv[1:]``); exits with the command's status.

    Exit status: 0 done; 1 a problem the user can fix, printed as one red line saying what to do
    (fxcap's own errors, and OS and audio-file errors with the path and the fix, see
    :mod:`fxcap.cli.boundary`); 2 a usage error (Typer's usage text); 130 Ctrl-C, after the line
    ``interrupted; nothing written so far is lost; continue with ...`` (everything written so far
    stays intact, and the command that continues is named where there is one).
    """
    from fxcap.cli.boundary import run_cli

    def print_error(line: str) -> None:
        tables.err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)

    def print_interrupted(line: str) -> None:
        tables.err_console.print(f"[yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)

    sys.exit(run_cli(app, args, print_error, print_interrupted))
