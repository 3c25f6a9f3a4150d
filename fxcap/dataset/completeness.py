"""Sessions that stopped before their plan was done: which takes they lack, and whether to build from them.

A capture interrupted after 2 of 9 takes is a valid session (every take it holds passed its checks), but a
dataset built from it covers only part of the knob range, and the user most likely meant to finish it
(``fxcap record --resume``). :func:`check_complete` therefore refuses such a session, naming the
missing takes, unless the build allows incomplete sessions (``--allow-incomplete``); then it builds from
the takes there are and warns, and the manifest lists the missing takes per session.
"""

from __future__ import annotations

import logging
from typing import Sequence

from fxcap.capture.session import Session
from fxcap.errors import DatasetError

log = logging.getLogger(__name__)


def missing_takes(session: Session) -> list[str]:
    """Take ids the session's plan holds but the session never recorded (empty for a complete session,
    or a plan that does not list its takes)."""
    if session.manifest.status == "complete":
        return []
    planned = session.manifest.plan.get("takes") or []
    recorded = {take.index for take in session.manifest.takes}
    return [f"take-{int(t['index']):04d}" for t in planned if int(t["index"]) not in recorded]


def _listing(takes: list[str]) -> str:
    return ", ".join(takes) if len(takes) <= 4 else f"{', '.join(takes[:3])}, ... {takes[-1]}"


def _resume_hint(session: Session) -> str:
    if session.manifest.plan.get("kind") in ("import", "signaltrain"):
        return "import the recordings again into a new session folder"
    return f"finish it with `fxcap record --resume --out {session.root}`"


def check_complete(sessions: Sequence[Session], names: Sequence[str], allow_incomplete: bool) -> list[list[str]]:
    """The missing takes of every session (in order). An incomplete session is refused (one line, naming
    its missing takes and what to do) unless ``allow_incomplete``, which logs a warning instead."""
    missing = [missing_takes(session) for session in sessions]
    for session, name, lacking in zip(sessions, names, missing):
        if not lacking:
            continue
        planned = len(session.manifest.plan.get("takes") or [])
        what = (f"session {name} is incomplete ({session.manifest.status}): {len(lacking)} of its {planned} planned takes "
                f"were never recorded ({_listing(lacking)})")
        if not allow_incomplete:
            raise DatasetError(f"{what}; {_resume_hint(session)}, or pass --allow-incomplete to build from the "
                               f"{planned - len(lacking)} take(s) it has")
        log.warning("warning: %s; building from the takes it has (--allow-incomplete)", what)
    return missing
