"""The capture engine end to end on the virtual OD-3 behind a rig with known, hidden impairments."""

import json

import numpy as np
import pytest

from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.record import RecordConfig, record_session, resume_session
from fxcap.capture.session import Session
from fxcap.capture.signal import SignalConfig, generate_signal
from fxcap.capture.virtual import RigImpairments, build_virtual_device
from fxcap.errors import CaptureError

RATE = 48000
RIG = RigImpairments(latency_samples=123.37, gain_db=-4.3, polarity=-1, noise_dbfs=-95.0, drift_ppm=20.0, tail_samples=2000)


@pytest.fixture(scope="module")
def signal():
    return generate_signal(SignalConfig(sample_rate=RATE, preset="short"))


def _plan(profile, steps=3, **kwargs):
    config = PlanConfig(knobs=["drive"], steps=steps, **kwargs)
    return plan_to_dict(config, make_plan(profile, config))


def _backend(**kwargs):
    return SimBackend("OD-3", RATE, impairments=RigImpairments(**{**RIG.__dict__, **kwargs.pop("rig", {})}), seed=1, **kwargs)


def _esr_db(a, b):
    return 10 * np.log10(np.sum((a - b) ** 2) / np.sum(b**2))


def _files(session):
    return {p.relative_to(session.root): p.read_bytes() for p in sorted(session.root.glob("takes/*/*.wav"))}


def test_aligned_takes_match_the_device_output_and_rig_is_recovered(tmp_path, signal):
    backend = _backend()
    session = record_session(tmp_path / "s", backend, signal, _plan(backend.profile))
    assert session.manifest.status == "complete" and len(session.takes) == 3
    cal = session.manifest.calibration["result"]
    assert cal["gain_db"] == pytest.approx(-4.3, abs=0.05)
    assert cal["polarity"] == -1
    assert cal["drift_ppm"] == pytest.approx(20.0, abs=2.0)
    # The latency is reported at the start marker's centre; refer it back to t = 0 for the rig's value.
    marker = signal.layout.of_kind("sync_start")[0]
    centre = (marker.start + marker.stop) / 2
    assert cal["latency_samples"] - 20e-6 * centre == pytest.approx(123.37, abs=0.05)
    device = build_virtual_device("OD-3", RATE)
    for take in session.takes:
        device.reset()
        clean = device.process(signal.audio, take.knobs)
        aligned = session.take_output(take)
        assert len(aligned) == len(signal.audio)
        assert _esr_db(aligned, clean) < -45.0, take.take_id  # errors near the injected noise floor
        assert all(c.passed for c in take.checks if c.severity == "error")
    manifest = json.loads((tmp_path / "s" / "session.json").read_text())
    assert "123.37" not in json.dumps(manifest["backend"])  # the rig stays hidden from the manifest


@pytest.mark.parametrize("fault", ["clip", "silence", "dropout", "xrun"])
def test_a_bad_take_is_retaken_never_kept(tmp_path, signal, fault):
    backend = _backend(fault_plan={2: fault})  # call 1 = take 1, call 2 = take 2 (bad), call 3 = its re-take
    session = record_session(tmp_path / "s", backend, signal, _plan(backend.profile, steps=2))
    assert [t.attempts for t in session.takes] == [1, 2]
    assert any("take-0002" in note and "rejected" in note for note in session.manifest.notes)
    assert all(t.passed for t in session.takes)


def test_persistent_failure_stops_then_resume_keeps_earlier_takes_byte_identical(tmp_path, signal):
    always_clip = lambda call, knobs: "clip" if knobs["drive"] == 10 else None  # noqa: E731
    backend = _backend(fault_plan=always_clip)
    with pytest.raises(CaptureError, match=r"take-0003 \(.*drive=10\) failed its checks 2 times.*--resume"):
        record_session(tmp_path / "s", backend, signal, _plan(backend.profile), RecordConfig(max_attempts=2))
    stopped = Session.open(tmp_path / "s")
    assert stopped.manifest.status == "failed" and [t.take_id for t in stopped.takes] == ["take-0001", "take-0002"]
    before = _files(stopped)
    session = resume_session(tmp_path / "s", _backend())
    assert session.manifest.status == "complete" and len(session.takes) == 3
    after = _files(session)
    for name, data in before.items():
        assert after[name] == data, name


def test_interrupted_run_resumes_where_it_stopped(tmp_path, signal):
    class Interrupt:
        def __call__(self, event, data):
            if event == "take_done" and data["take"].index == 2:
                raise KeyboardInterrupt

    backend = _backend()
    with pytest.raises(KeyboardInterrupt):
        record_session(tmp_path / "s", backend, signal, _plan(backend.profile, steps=4), observer=Interrupt())
    before = _files(Session.open(tmp_path / "s"))
    assert len(before) == 4  # two takes, raw + aligned each
    calls = []
    session = resume_session(tmp_path / "s", _backend(), observer=lambda e, d: calls.append(e))
    assert calls.count("take_done") == 2 and "calibration" not in calls  # calibration reused
    assert [t.index for t in session.takes] == [1, 2, 3, 4]
    assert all(_files(session)[name] == data for name, data in before.items())


def test_resume_refuses_another_device_or_rate(tmp_path, signal):
    backend = _backend()
    record_session(tmp_path / "s", backend, signal, _plan(backend.profile, steps=2))
    from fxcap.errors import SessionError

    with pytest.raises(SessionError, match="recorded from OD-3"):
        resume_session(tmp_path / "s", SimBackend("LA-2A", RATE))
    with pytest.raises(SessionError, match="--rate 48000"):
        resume_session(tmp_path / "s", SimBackend("OD-3", 44100))
