"""The capture engine: calibrate, then play-record-align-check every planned take into a Session.

Every take is checked; a failing take is re-taken up to ``max_attempts`` times and, if it still
fails, the run stops with a one-line message naming the take, the check and what to do. A failed
take is never kept. Takes already on disk stay byte-identical whatever happens later (crash,
Ctrl-C, failed take); :func:`resume_session` continues with the first take not yet recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fxcap.capture.align import AlignConfig, Calibration, align_take, measure_calibration
from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.checks import CheckConfig, check_take, session_checks
from fxcap.capture.layout import TestSignal, audio_sha256
from fxcap.capture.plan import PlannedTake, plan_from_dict
from fxcap.capture.session import CheckResult, Session, TakeRecord, now_iso
from fxcap.errors import CaptureError, SessionError
from fxcap.io import atomic_write_wav

Observer = Callable[[str, dict[str, Any]], None]
"""Progress callback: ``observer(event, data)`` with events ``calibration``, ``take_start``,
``attempt_rejected``, ``take_done``, ``session_done`` (and ``plan`` first, with the number of
takes in the plan and how many a resumed session already has)."""


@dataclass
class RecordConfig:
    """Options of the capture engine.

    Attributes:
        max_attempts: tries per take before the run stops (a take failing a check is re-taken).
        align: alignment options (latency search, drift threshold).
        checks: check thresholds.
    """

    max_attempts: int = 3
    align: AlignConfig = field(default_factory=AlignConfig)
    checks: CheckConfig = field(default_factory=CheckConfig)


def _failures(checks: list[CheckResult]) -> list[CheckResult]:
    return [c for c in checks if c.severity == "error" and not c.passed]


def _describe_knobs(knobs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in knobs.items())


def _calibrate(session: Session, backend: Backend, signal: TestSignal, config: RecordConfig, observer: Observer) -> Calibration:
    """Record the bypass/loopback take, or reuse the one a resumed session already has."""
    stored = session.manifest.calibration
    if stored.get("result"):
        return Calibration.from_dict(stored["result"])
    last_problem = ""
    for attempt in range(1, config.max_attempts + 1):
        raw = backend.calibration_take(signal.audio)
        calibration = measure_calibration(raw, signal.layout, config.align)
        aligned, alignment = align_take(raw, signal.layout, calibration, config.align)
        checks = check_take(raw, aligned, signal.layout, alignment, calibration, config.checks)
        failed = _failures(checks)
        if not failed:
            atomic_write_wav(session.root / "calibration" / "raw.wav", raw.recorded, signal.sample_rate)
            session.manifest.calibration = {
                "result": calibration.to_dict(),
                "raw_file": "calibration/raw.wav",
                "checks": [c.to_dict() for c in checks],
                "attempts": attempt,
                "recorded_at": now_iso(),
            }
            session.save()
            observer("calibration", {"calibration": calibration, "checks": checks})
            return calibration
        last_problem = "; ".join(c.message for c in failed)
        session.manifest.notes.append(f"calibration attempt {attempt} rejected: {last_problem}")
        session.save()
    raise CaptureError(f"calibration (bypass) take failed {config.max_attempts} times: {last_problem}")


def _record_take(
    session: Session,
    backend: Backend,
    signal: TestSignal,
    planned: PlannedTake,
    calibration: Calibration,
    config: RecordConfig,
    observer: Observer,
) -> TakeRecord:
    profile = session.manifest.device
    started = now_iso()
    last_problem = ""
    for attempt in range(1, config.max_attempts + 1):
        observer("take_start", {"take": planned, "attempt": attempt})
        raw: RawTake = backend.play_record(signal.audio, planned.knobs)
        aligned, alignment = align_take(raw, signal.layout, calibration, config.align)
        previous = [t.alignment for t in session.manifest.takes]
        checks = check_take(raw, aligned, signal.layout, alignment, calibration, config.checks, previous)
        failed = _failures(checks)
        if not failed:
            record = TakeRecord(
                take_id=planned.take_id,
                index=planned.index,
                knobs=dict(planned.knobs),
                knobs_normalized=profile.normalize(planned.knobs),
                alignment=alignment,
                checks=checks,
                output_file=f"takes/{planned.take_id}/output.wav",
                raw_file=f"takes/{planned.take_id}/raw.wav",
                is_reference=planned.is_reference,
                attempts=attempt,
                started_at=started,
                finished_at=now_iso(),
                backend_info=dict(raw.info),
            )
            session.add_take(record, aligned, raw.recorded)
            observer("take_done", {"take": planned, "record": record})
            return record
        last_problem = "; ".join(f"{c.name}: {c.message}" for c in failed)
        session.manifest.notes.append(
            f"{planned.take_id} ({_describe_knobs(planned.knobs)}) attempt {attempt} rejected: {last_problem}"
        )
        session.save()
        observer("attempt_rejected", {"take": planned, "attempt": attempt, "failed": failed})
    session.manifest.status = "failed"
    session.save()
    raise CaptureError(
        f"{planned.take_id} ({_describe_knobs(planned.knobs)}) failed its checks {config.max_attempts} times "
        f"({last_problem}); fix the rig, then continue with `fxcap record --resume {session.root}`"
    )


def _run(session: Session, backend: Backend, signal: TestSignal, config: RecordConfig, observer: Observer | None) -> Session:
    observe: Observer = observer or (lambda event, data: None)
    session.manifest.status = "running"
    session.save()
    planned_takes = plan_from_dict(session.manifest.plan)
    done = {t.index for t in session.manifest.takes}
    observe("plan", {"total": len(planned_takes), "done": len(done)})
    calibration = _calibrate(session, backend, signal, config, observe)
    for planned in planned_takes:
        if planned.index in done:
            continue
        _record_take(session, backend, signal, planned, calibration, config, observe)
    references = {t.take_id: session.take_output(t) for t in session.manifest.takes if t.is_reference}
    results = session_checks(session.manifest.takes, references, signal.layout, config.checks)
    session.manifest.calibration["session_checks"] = [c.to_dict() for c in results]
    session.manifest.status = "complete"
    session.save()
    observe("session_done", {"session": session, "session_checks": results})
    return session


def record_session(
    out_dir: str | Path,
    backend: Backend,
    signal: TestSignal,
    plan: dict[str, Any],
    config: RecordConfig | None = None,
    observer: Observer | None = None,
    backend_info: dict[str, Any] | None = None,
) -> Session:
    """Create a session in ``out_dir`` and record every take of ``plan`` (see :mod:`fxcap.capture.plan`).

    Returns the completed session. Raises :class:`CaptureError` if a take keeps failing its
    checks; everything recorded so far stays on disk and :func:`resume_session` continues.
    """
    config = config or RecordConfig()
    if signal.sample_rate != backend.sample_rate:
        raise CaptureError(
            f"the signal is at {signal.sample_rate} Hz but the backend runs at {backend.sample_rate} Hz; "
            "generate the signal at the device's rate (--rate)"
        )
    session = Session.create(
        out_dir,
        device=backend.profile,
        backend=backend_info or backend.describe(),
        signal_audio=signal.audio,
        layout=signal.layout,
        plan=plan,
    )
    return _run(session, backend, signal, config, observer)


def load_session_signal(session: Session) -> TestSignal:
    """The signal a session played, verified against the hash in its manifest."""
    audio = session.input_audio()
    layout = session.layout
    expected = session.manifest.signal.get("sha256")
    if expected and audio_sha256(audio) != expected:
        raise SessionError(
            f"{session.root}/signal.wav does not match the hash in session.json; the session is damaged, re-record it"
        )
    return TestSignal(audio=np.asarray(audio, dtype=np.float32), layout=layout)


def resume_session(
    path: str | Path,
    backend: Backend,
    config: RecordConfig | None = None,
    observer: Observer | None = None,
) -> Session:
    """Continue an interrupted or failed capture with the first take not yet recorded.

    Takes already recorded are left untouched (byte-identical). The backend must drive the same
    device at the same sample rate.
    """
    config = config or RecordConfig()
    session = Session.open(path)
    if session.manifest.device.name != backend.profile.name:
        raise SessionError(
            f"{path} was recorded from {session.manifest.device.name}, not {backend.profile.name}; resume with the same --device"
        )
    if session.sample_rate != backend.sample_rate:
        raise SessionError(f"{path} was recorded at {session.sample_rate} Hz; resume with --rate {session.sample_rate}")
    if session.manifest.status == "complete":
        return session
    return _run(session, backend, load_session_signal(session), config, observer)


def session_summary(session: Session) -> list[dict[str, Any]]:
    """One row per take: the knobs that vary across the session, latency (samples), gain (dB),
    drift (ppm), noise floor (dBFS), repeatability ESR (dB), attempts and status — what the CLI
    prints at the end."""
    takes = session.manifest.takes
    varying = [name for name in session.manifest.device.knob_names if len({str(t.knobs.get(name)) for t in takes}) > 1]
    rows = []
    for take in takes:
        noise = take.check("noise_floor")
        repeat = take.check("repeatability")
        shown = {k: take.knobs[k] for k in varying} if varying else take.knobs
        rows.append(
            {
                "take": take.take_id,
                "knobs": _describe_knobs(shown),
                "reference": take.is_reference,
                "latency_samples": take.alignment.latency_samples,
                "gain_db": take.alignment.gain_db,
                "drift_ppm": take.alignment.drift_ppm,
                "noise_floor_dbfs": noise.value if noise else None,
                "repeatability_esr_db": repeat.value if repeat else None,
                "attempts": take.attempts,
                "status": "ok" if take.passed else "failed",
            }
        )
    return rows
