"""One call from options to a recorded session: what ``fxcap record`` and the recipes use."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxcap.capture.backends.factory import make_backend
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.layout import TestSignal
from fxcap.capture.record import Observer, RecordConfig, record_session, resume_session
from fxcap.capture.session import Session, newest_session
from fxcap.capture.signal import SignalConfig, generate_signal, wrap_program
from fxcap.errors import CaptureError
from fxcap.io import read_wav


@dataclass
class CaptureRequest:
    """Everything ``fxcap record`` needs.

    Attributes:
        device: profile name (``OD-3``, ``LA-2A``) or path of a ``.toml`` profile.
        backend: backend spec (see :mod:`fxcap.capture.backends.factory`).
        plan: the knob plan.
        sample_rate: Hz.
        preset: capture-signal preset (``short`` or ``default``).
        program: optional user program material (a WAV file) wrapped with sync markers instead of
            the built-in material.
        peak_dbfs: peak level of the played signal (dBFS).
        out: session folder; default ``sessions/<device>-<UTC time>``.
        resume: continue the session in ``out`` (or the newest under ``sessions_dir``).
        seed: seeds the virtual rig's hidden impairments and random plans.
    """

    device: str = "OD-3"
    backend: str = "sim"
    plan: PlanConfig = field(default_factory=PlanConfig)
    sample_rate: int = 48000
    preset: str = "default"
    program: Path | None = None
    peak_dbfs: float | None = None
    out: Path | None = None
    resume: bool = False
    sessions_dir: Path = Path("sessions")
    seed: int = 0
    record: RecordConfig = field(default_factory=RecordConfig)
    backend_options: dict[str, Any] = field(default_factory=dict)


def default_session_dir(base: Path, device: str) -> Path:
    """``base/<device>-<YYYYmmdd-HHMMSS>`` (UTC), made unique with a suffix if needed."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(device).stem).strip("-") or "device"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = base / f"{slug}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{slug}-{stamp}-{n}"
    return path


def run_capture(request: CaptureRequest, observer: Observer | None = None) -> Session:
    """Record (or resume) a session as ``request`` says and return it."""
    if request.resume:
        path = request.out or newest_session(request.sessions_dir)
        session = Session.open(path)
        backend_spec = session.manifest.backend.get("spec", request.backend)
        backend = make_backend(
            backend_spec,
            session.manifest.device.name,
            session.sample_rate,
            seed=int(session.manifest.backend.get("seed", request.seed)),
            **request.backend_options,
        )
        with backend:
            return resume_session(path, backend, request.record, observer)

    backend = make_backend(request.backend, request.device, request.sample_rate, seed=request.seed, **request.backend_options)
    with backend:
        profile = backend.profile
        try:
            planned = make_plan(profile, request.plan)
        except ValueError as exc:
            raise CaptureError(str(exc)) from None
        signal = _capture_signal(request)
        out = request.out or default_session_dir(request.sessions_dir, profile.name)
        info = {**backend.describe(), "spec": request.backend, "seed": request.seed}
        return record_session(
            out, backend, signal, plan_to_dict(request.plan, planned), request.record, observer, backend_info=info
        )


def _capture_signal(request: CaptureRequest) -> TestSignal:
    if request.program is not None:
        audio, rate = read_wav(request.program)
        if rate != request.sample_rate:
            raise CaptureError(
                f"{request.program} is at {rate} Hz but the capture runs at {request.sample_rate} Hz; "
                f"pass --rate {rate} or resample the file"
            )
        return wrap_program(audio, rate, peak_dbfs=request.peak_dbfs)
    config = SignalConfig(sample_rate=request.sample_rate, preset=request.preset)
    if request.peak_dbfs is not None:
        config.peak_dbfs = request.peak_dbfs
    return generate_signal(config)
