"""``fxcap report``: the HTML report of a session, its dataset and its runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fxcap.cli import tables
from fxcap.cli.options import Checkpoint, SessionsDir


def report_command(
    session: Annotated[Optional[Path], typer.Option("--session", "-s", help="Session folder (default: the newest under --sessions-dir).")] = None,
    dataset: Annotated[Optional[Path], typer.Option("--dataset", "-d", help="Dataset folder (default: the newest under --datasets-dir built from the session).")] = None,
    run: Annotated[Optional[list[Path]], typer.Option("--run", "--model", "-m", help="Run folder; repeat for several (default: the evaluated runs under --runs).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default: reports/<session or dataset name>).")] = None,
    at: Annotated[Optional[list[str]], typer.Option("--at", help="Setting for spectrograms and audio, e.g. --at drive=10 or --at drive=5,tone=3 (repeatable).")] = None,
    audio_seconds: Annotated[float, typer.Option(help="Length of the audio excerpts (s).")] = 3.0,
    checkpoint: Checkpoint = "best",
    sessions_dir: SessionsDir = Path("sessions"),
    datasets_dir: Annotated[Path, typer.Option(help="Where to look for the newest dataset.")] = Path("datasets"),
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where to look for evaluated runs.")] = Path("runs"),
) -> None:
    """Write an HTML report (single file, figures and audio embedded) plus PNGs: capture quality, knob
    response of device and models, spectrograms, audio, training curves and the comparison table."""
    from fxcap.report import ExcerptConfig, ReportConfig, build_report, parse_setting, resolve_inputs

    inputs = resolve_inputs(session, dataset, run, sessions_dir, datasets_dir, runs_dir)
    config = ReportConfig(excerpts=ExcerptConfig(audio_seconds=audio_seconds), checkpoint=checkpoint)
    path = build_report(out or Path("reports") / inputs.name, inputs.session, inputs.dataset, inputs.runs,
                        settings=[parse_setting(a) for a in at or []], config=config, notes=inputs.notes,
                        progress=lambda line: tables.err_console.print(f"  {line}", highlight=False))
    tables.console.print(f"report written to [bold]{path}[/] ({path.stat().st_size / 1e6:.1f} MB)")
