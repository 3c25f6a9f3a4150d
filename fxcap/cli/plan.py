"""``fxcap plan next``: the next settings of a capture made in several sittings (:mod:`fxcap.adaptive`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fxcap.cli import tables
from fxcap.cli.options import QuickSteps, ScoreBy

plan_app = typer.Typer(help="Choose the next knob settings of a session (adaptive plan).", no_args_is_help=True)


def adaptive_config(quick_steps: Optional[int]):
    """The adaptive plan's settings with the command's ``--quick-steps`` (``None``: the default)."""
    from dataclasses import replace

    from fxcap.adaptive import AdaptiveConfig

    config = AdaptiveConfig()
    return config if quick_steps is None else replace(config, quick=replace(config.quick, steps=quick_steps))


def adaptive_planner(quick_steps: Optional[int], score_by: Optional[str], steps: Optional[int] = None):
    """The planner of ``fxcap record --plan adaptive`` and ``fxcap plan next``: ``--score-by`` in the
    command's spelling (``output-change``), None to go on as the session began."""
    from fxcap.adaptive import AdaptivePlanner
    from fxcap.adaptive.config import SCORE_BY
    from fxcap.errors import CaptureError

    chosen = None if score_by is None else score_by.replace("-", "_")
    if chosen is not None and chosen not in SCORE_BY:
        names = [s.replace("_", "-") for s in SCORE_BY]
        raise CaptureError(f"--score-by must be {', '.join(names[:-1])} or {names[-1]}, not {score_by!r}")
    return AdaptivePlanner(adaptive_config(quick_steps), steps, score_by=chosen)


def setting_words(session, knobs: dict) -> str:
    """A planned setting as the record prompts say it: knobs turned by hand (a sound-card session, knobs
    without a MIDI CC) in words (``DRIVE to 7.5 (about 2:30 o'clock)``), the others as values."""
    from fxcap.capture.knob_setters import knob_instruction

    profile = session.manifest.device
    by_hand = session.manifest.backend.name == "soundcard"
    parts = []
    for name, value in knobs.items():
        knob = profile.knob(name)
        if by_hand and knob.midi_cc is None:
            parts.append(knob_instruction(knob, value))
        else:
            parts.append(f"{name}={value:g}" if isinstance(value, (int, float)) else f"{name}={value}")
    return ", ".join(parts)


@plan_app.command("next")
def next_command(
    session: Annotated[Path, typer.Argument(help="The session folder (recorded with fxcap record).")],
    takes: Annotated[int, typer.Option("--takes", "-n", help="Settings to add.")] = 3,
    steps: Annotated[Optional[int], typer.Option(help="Candidate values per swept knob (default: the plan's; a grid's doubled).")] = None,
    quick_steps: QuickSteps = None,
    score_by: ScoreBy = None,
) -> None:
    """Train a quick committee on the session's takes, print the next settings and add them to its plan
    (`fxcap record --resume --out SESSION` records them)."""
    from fxcap.adaptive import plan_next
    from fxcap.capture.record import resume_command

    opened, added = plan_next(session, takes, planner=adaptive_planner(quick_steps, score_by, steps))
    swept = list(opened.manifest.plan.get("knobs") or [])
    for take in added:
        shown = {name: take.knobs[name] for name in (swept or take.knobs)}
        line = f"{take.take_id}: {setting_words(opened, shown)}  (score {take.score:.3g})"
        tables.console.print(line, highlight=False, markup=False, soft_wrap=True)
    line = f"{len(added)} settings added to the plan; record them with `{resume_command(opened)}`"
    tables.console.print(line, highlight=False, markup=False, soft_wrap=True)
