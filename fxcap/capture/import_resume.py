"""Continue an import that stopped (Ctrl-C, a crash, a ``--strict`` refusal): ``fxcap import --resume``.

The session folder holds everything needed: the signal (``signal.wav``, checked against its hash),
the planned files and their knob values (``plan["takes"]``), the channel and resampling options
and the bypass measurement (or the bypass file to measure it from). The takes already kept stay
byte-identical; every other planned file is imported as :func:`fxcap.capture.importer.import_recordings`
would (a file rejected before gets another chance: it may have been re-exported since).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from fxcap.capture.align import Calibration
from fxcap.capture.import_knobs import Recording
from fxcap.capture.importer import ImportConfig, measure_bypass, check_file, import_takes
from fxcap.capture.plan import PlannedTake
from fxcap.capture.record import Observer, interruptible, load_session_signal
from fxcap.capture.session import Session, newest_session
from fxcap.errors import CaptureError, FxcapError, SessionError


def _planned_files(session: Session) -> list[tuple[PlannedTake, Recording]]:
    """The import's planned takes and their files, from the manifest (a damaged plan: one line)."""
    try:
        items = []
        for entry in session.manifest.plan["takes"]:
            knobs = dict(entry["knobs"])
            path = Path(entry.get("source") or entry["file"])
            items.append((PlannedTake(index=int(entry["index"]), knobs=knobs), Recording(path=path, knobs=knobs)))
        return items
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SessionError(
            f"{session.root / 'session.json'}: the import plan is damaged ({type(exc).__name__}: {exc}); import the files "
            "again into a new --out"
        ) from None


def _options(session: Session, config: ImportConfig) -> ImportConfig:
    """The import's stored channel and resampling; given options must agree with them."""
    stored = session.manifest.backend
    channel = stored.channel
    if config.channel is not None and config.channel != channel:
        raise FxcapError(
            f"{session.root} was imported with --channel {channel or '(none)'}, not {config.channel}; resume without "
            "--channel, or import into a new --out"
        )
    return dataclasses.replace(config, channel=channel, resample=bool(stored.resample) or config.resample)


def _check_same_files(session: Session, given: Sequence[str | Path], planned: list[tuple[PlannedTake, Recording]]) -> None:
    if not given:
        return
    stored = {item.path.resolve() for _, item in planned}
    if {Path(p).resolve() for p in given} != stored:
        raise FxcapError(
            f"the files given are not the {len(stored)} files of the import in {session.root}; give the same files or "
            f"none (`fxcap import --resume --out {session.root}`), or import these into a new --out"
        )


def _calibration(session: Session, signal, config: ImportConfig, observe: Observer) -> Calibration | None:
    """The bypass measurement stored in the session, measured now if the import stopped before it."""
    stored = session.manifest.calibration
    if stored.get("result"):
        return Calibration.from_dict(stored["result"])
    if stored.get("source") == "none":
        return None
    bypass = session.manifest.backend.bypass
    if bypass is not None and not Path(bypass).is_file():
        raise FxcapError(f"bypass recording {bypass} of the import in {session.root} does not exist any more; put it back")
    with interruptible(session):
        return measure_bypass(session, signal, bypass, config, observe)


def resume_import(
    out: str | Path | None,
    recordings: Sequence[str | Path],
    config: ImportConfig,
    observe: Observer,
    sessions_dir: str | Path = "sessions",
) -> Session:
    """Continue the import in ``out`` (default: the newest session under ``sessions_dir``); see the module docstring.

    ``recordings``, when given, must be the import's own files. A complete session is returned as it is.
    """
    path = Path(out) if out is not None else newest_session(sessions_dir)
    session = Session.open(path)
    if session.manifest.backend.name != "import":
        raise CaptureError(f"{path} was not made by `fxcap import`; continue a recorded session with `fxcap record --resume --out {path}`")
    planned = _planned_files(session)
    _check_same_files(session, recordings, planned)
    if session.manifest.status == "complete":
        return session
    config = _options(session, config)
    signal = load_session_signal(session)
    done = {t.index for t in session.manifest.takes}
    for take, item in planned:
        if take.index not in done:
            check_file(item.path, signal, config)
    session.manifest.status = "running"
    session.save()
    observe("plan", {"total": len(planned), "done": len(done)})
    calibration = _calibration(session, signal, config, observe)
    return import_takes(session, signal, planned, calibration, config, observe)
