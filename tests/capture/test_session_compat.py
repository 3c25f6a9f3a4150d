"""The typed records of session.json (the backend's details, the checks across takes) read and write the same
JSON as before, both ways; and a backend that stops names the session's own resume command in a message built,
not rewritten."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.record import record_session, resume_command
from fxcap.capture.session import CheckResult, Session
from fxcap.errors import CaptureError, CaptureStopped, SessionError
from tests.faults._capture_helpers import FAST_RIG, RATE, short_signal

# What the code before the typed records wrote into calibration["session_checks"] (CheckResult.to_dict per check).
OLD_CHECKS = [
    {"name": "latency_spread", "passed": True, "value": 0.25, "unit": "samples", "threshold": 2.0,
     "message": "latency varies by 0.25 samples", "severity": "warning"},
    {"name": "reference_drift", "passed": False, "value": -18.5, "unit": "dB", "threshold": -30.0,
     "message": "the reference setting drifted", "severity": "error"},
]

# A session.json as fxcap wrote it before the typed records (an import without --bypass): the backend one
# flat object (with keys stored as null and one key fxcap does not know), the session checks inside calibration.
OLD_SESSION_JSON = """{
  "backend": {"name": "import", "sample_rate": 8000, "device": "OD-3", "signal_file": "/rig/signal.wav",
              "bypass_file": null, "bypass_source": null, "channel": null, "resample": false, "gui": "fxcap-gui 0.3"},
  "calibration": {"result": null, "source": "none", "session_checks": [
    {"name": "latency_spread", "passed": true, "value": 0.25, "unit": "samples", "threshold": 2.0,
     "message": "latency varies by 0.25 samples", "severity": "warning"},
    {"name": "reference_drift", "passed": false, "value": -18.5, "unit": "dB", "threshold": -30.0,
     "message": "the reference setting drifted", "severity": "error"}]},
  "created_at": "2025-05-01T10:00:00.000000+00:00",
  "device": {"name": "OD-3", "kind": "effect", "description": "", "extra": {}, "knobs": [
    {"name": "drive", "default": 5.0, "minimum": 0.0, "maximum": 10.0, "unit": "", "taper": "linear",
     "description": "gain", "midi_cc": null, "values": null}]},
  "fxcap_version": "0.1.0",
  "notes": [],
  "plan": {"kind": "import", "knobs": ["drive"], "knobs_csv": null, "takes": [
    {"index": 1, "knobs": {"drive": 0.0}, "is_reference": false, "file": "d0.wav", "source": "/rig/d0.wav"}]},
  "sample_rate": 8000,
  "schema_version": 1,
  "signal": {"file": "signal.wav", "layout_file": "signal.json", "version": "dummy-1", "sha256": "ab",
             "preset": "dummy", "source": "import", "length_samples": 4000, "peak_dbfs": -1.0},
  "status": "complete",
  "takes": [{"take_id": "take-0001", "index": 1, "knobs": {"drive": 0.0}, "knobs_normalized": {"drive": -1.0},
             "alignment": {"latency_samples": 0.0, "gain_db": 0.0, "polarity": 1, "drift_ppm": 0.0,
                           "drift_corrected": false, "marker_latency_start": null, "marker_latency_end": null,
                           "extra": {}},
             "checks": [{"name": "clipping", "passed": true, "value": -3.0, "unit": "dBFS", "threshold": null,
                         "message": "no clipped runs", "severity": "error"}],
             "output_file": "takes/take-0001/output.wav", "raw_file": "takes/take-0001/output.wav",
             "is_reference": false, "attempts": 1, "started_at": "", "finished_at": "",
             "backend_info": {"file": "/rig/d0.wav"}, "sha256": "", "passed": true}],
  "updated_at": "2025-05-01T10:05:00.000000+00:00"
}"""
OLD_BACKEND = json.loads(OLD_SESSION_JSON)["backend"]


def _without_updated_at(raw: bytes | str) -> dict:
    return {k: v for k, v in json.loads(raw).items() if k != "updated_at"}


def test_an_old_layout_session_json_loads_typed_and_saves_back_to_the_same_json(tmp_path):
    (tmp_path / "session.json").write_text(OLD_SESSION_JSON)
    session = Session.open(tmp_path)
    manifest = session.manifest

    backend = manifest.backend
    assert isinstance(backend, BackendDetails)
    assert (backend.name, backend.sample_rate, backend.device, backend.signal_file) == ("import", 8000, "OD-3", "/rig/signal.wav")
    assert backend.bypass is None and backend.channel is None and backend.resample is False
    assert backend.extra == {"gui": "fxcap-gui 0.3", "bypass_file": None, "bypass_source": None, "channel": None}
    assert resume_command(session) == f"fxcap import --resume --out {tmp_path}"  # read through the typed name

    assert all(isinstance(c, CheckResult) for c in manifest.session_checks)
    assert [c.to_dict() for c in manifest.session_checks] == OLD_CHECKS
    assert [(c.name, c.passed, c.severity) for c in manifest.session_checks] == [
        ("latency_spread", True, "warning"), ("reference_drift", False, "error")]
    assert manifest.calibration == {"result": None, "source": "none"}  # the checks moved out, in memory only

    session.save()
    assert _without_updated_at((tmp_path / "session.json").read_text()) == _without_updated_at(OLD_SESSION_JSON)


def test_a_session_written_now_has_the_layout_an_older_fxcap_reads(tmp_path):
    from fxcap.dataset.testing import make_dummy_session

    session = make_dummy_session(tmp_path / "s", knob_grid={"drive": [0, 10]}, sample_rate=8000, seconds=0.5)
    assert session.manifest.session_checks is None  # not run: no key written
    assert "session_checks" not in json.loads((session.root / "session.json").read_text())["calibration"]

    session.manifest.session_checks = [CheckResult.from_dict(c) for c in OLD_CHECKS]
    session.save()
    data = json.loads((session.root / "session.json").read_text())
    assert data["calibration"]["session_checks"] == OLD_CHECKS  # where the code before looked for them
    assert data["calibration"]["latency_samples"] == 48.0  # the rest of calibration as written
    assert data["backend"] == {"name": "dummy", "sample_rate": 8000, "device": "OD-3"}  # one flat object

    session.manifest.session_checks = []  # run, nothing to report: stored as an empty list, read back as one
    session.save()
    assert Session.open(session.root).manifest.session_checks == []


BACKEND_ENTRIES = {
    "soundcard": {"name": "soundcard", "sample_rate": 48000, "device": "my-pedal", "spec": "soundcard:Scarlett",
                  "seed": 0, "profile_source": "pedals/my-pedal.toml", "interface": "Scarlett 2i2", "hostapi": "ALSA",
                  "output_channels": [1, 2], "input_channel": 1, "loopback_channel": None, "blocksize": 256,
                  "tail_seconds": 0.5},
    "plugin": {"name": "plugin", "sample_rate": 44100, "device": "Fuzz", "spec": "plugin:/p/Fuzz.vst3", "seed": 0,
               "profile_source": None, "plugin": "/p/Fuzz.vst3", "profile": None, "pedalboard": "0.9.9",
               "tail_seconds": 0.25, "stereo": False,
               "level": {"peak_dbfs": -6.0, "chosen": True, "clipped": [], "note": "signal level -6.0 dBFS"}},
    "signaltrain": {"name": "signaltrain", "sample_rate": 44100, "device": "LA-2A", "source": "/data/SignalTrain"},
    "third party": {"name": "my-rig", "firmware": "2.1", "sample_rate": 96000, "channels": {"in": [1], "out": [3]}},
}


@pytest.mark.parametrize("kind", sorted(BACKEND_ENTRIES))
def test_backend_details_round_trip_key_for_key(kind):
    entry = BACKEND_ENTRIES[kind]
    details = BackendDetails.from_dict(entry)
    assert details.to_dict() == entry
    assert json.dumps(details.to_dict(), sort_keys=True) == json.dumps(entry, sort_keys=True)
    assert BackendDetails.from_dict(details.to_dict()) == details


def test_backend_details_are_typed_and_frozen():
    card = BackendDetails.from_dict(BACKEND_ENTRIES["soundcard"])
    assert card.output_channels == (1, 2) and card.blocksize == 256 and card.loopback_channel is None
    assert card.extra == {"loopback_channel": None}  # a null kept as read, nothing typed in extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.name = "sim"  # type: ignore[misc]
    rig = BackendDetails.from_dict(BACKEND_ENTRIES["third party"])
    assert rig.name == "my-rig" and rig.sample_rate == 96000 and rig.extra == {"firmware": "2.1", "channels": {"in": [1], "out": [3]}}
    written = BackendDetails("import", bypass_file="b.wav", bypass_source="/rig/b.wav", channel=None)
    assert written.bypass == "/rig/b.wav" and written.to_dict() == {"name": "import", "bypass_file": "b.wav", "bypass_source": "/rig/b.wav"}
    assert dataclasses.replace(BackendDetails.from_dict(OLD_BACKEND), channel=2).to_dict()["channel"] == 2  # typed wins over a kept null


def test_a_sim_recording_stores_what_the_backend_describes(tmp_path):
    backend = SimBackend("OD-3", RATE, impairments=FAST_RIG, seed=5)
    details = BackendDetails.from_dict(backend.describe())
    assert (details.name, details.sample_rate, details.device, details.loopback) == ("sim", RATE, "OD-3", False)
    assert details.virtual_device is not None and details.rig == "explicit (hidden)" and details.extra == {}
    assert details.to_dict() == backend.describe()


@pytest.mark.parametrize("entry, problem", [({"sample_rate": 8000}, "no name"), ({"name": None}, "no name"),
                                            ({"name": ""}, "needs a name"), (["sim"], "not an object")])
def test_a_backend_entry_without_a_name_is_one_line_error(tmp_path, entry, problem):
    data = json.loads(OLD_SESSION_JSON)
    data["backend"] = entry
    (tmp_path / "session.json").write_text(json.dumps(data))
    with pytest.raises(SessionError, match=f"is not a valid session manifest .*{problem}") as caught:
        Session.open(tmp_path)
    assert "\n" not in str(caught.value)


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
