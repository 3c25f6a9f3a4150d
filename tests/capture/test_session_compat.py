"""Typed views of session.json (the session-wide checks) read and write the same JSON as before, and a
backend that stops names the session's own resume command in a message built, not rewritten."""

from __future__ import annotations

import json

import pytest

from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.record import record_session
from fxcap.capture.session import CheckResult, Session
from fxcap.errors import CaptureError, CaptureStopped
from tests.faults._capture_helpers import FAST_RIG, RATE, short_signal

# What the code before the typed view wrote into calibration["session_checks"] (CheckResult.to_dict per check).
OLD_CHECKS = [
    {"name": "latency_spread", "passed": True, "value": 0.25, "unit": "samples", "threshold": 2.0,
     "message": "latency varies by 0.25 samples", "severity": "warning"},
    {"name": "reference_drift", "passed": False, "value": -18.5, "unit": "dB", "threshold": -30.0,
     "message": "the reference setting drifted", "severity": "error"},
]


def test_session_checks_written_before_load_typed_and_save_byte_identical(tmp_path):
    from fxcap.dataset.testing import make_dummy_session

    session = make_dummy_session(tmp_path / "s", knob_grid={"drive": [0, 10]}, sample_rate=8000, seconds=0.5)
    session.manifest.calibration["session_checks"] = [dict(c) for c in OLD_CHECKS]  # the old way of storing them
    session.save()
    before = (session.root / "session.json").read_bytes()

    opened = Session.open(session.root)
    checks = opened.manifest.session_checks
    assert all(isinstance(c, CheckResult) for c in checks)
    assert [(c.name, c.passed, c.severity, c.value) for c in checks] == [
        ("latency_spread", True, "warning", 0.25), ("reference_drift", False, "error", -18.5)]

    opened.manifest.session_checks = checks  # stored back through the typed view
    opened.save()
    after = (session.root / "session.json").read_bytes()
    assert json.loads(after)["calibration"]["session_checks"] == OLD_CHECKS
    strip = lambda raw: {k: v for k, v in json.loads(raw).items() if k != "updated_at"}  # noqa: E731
    assert strip(after) == strip(before)


def test_a_session_without_session_checks_has_none():
    from fxcap.capture.session import SessionManifest

    assert SessionManifest.session_checks.fget(type("M", (), {"calibration": {}})()) == []


def test_a_stopped_backend_names_this_sessions_resume_command(tmp_path):
    backend = SimBackend("OD-3", RATE, impairments=FAST_RIG, seed=5, fault_plan={1: "lost"})
    config = PlanConfig(knobs=["drive"], steps=2)
    out = tmp_path / "s"
    with pytest.raises(CaptureError) as caught:
        record_session(out, backend, short_signal(), plan_to_dict(config, make_plan(backend.profile, config)))
    assert str(caught.value) == (
        "virtual audio interface of OD-3 stopped during the take (simulated: lost device); "
        f"reconnect it, then continue with `fxcap record --resume --out {out}`")


def test_capture_stopped_says_the_generic_command_until_the_recorder_names_the_session():
    stop = CaptureStopped("stopped at the knob prompt", then="continue later with")
    assert str(stop) == "stopped at the knob prompt; continue later with `fxcap record --resume`"
    assert stop.continue_with("`fxcap record --resume --out s`") == (
        "stopped at the knob prompt; continue later with `fxcap record --resume --out s`")
    assert isinstance(stop, CaptureError)
