import json

import numpy as np
import pytest

from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.layout import Region, SignalLayout, audio_sha256
from fxcap.capture.profiles import OD3
from fxcap.capture.session import (
    Alignment,
    CheckResult,
    Session,
    TakeRecord,
    find_sessions,
    newest_session,
)
from fxcap.errors import SessionError


def _layout(audio):
    return SignalLayout(
        version="test",
        sample_rate=48000,
        length=len(audio),
        peak_dbfs=-3.0,
        preset="unit",
        regions=[Region("a", "program", 0, len(audio))],
        sha256=audio_sha256(audio),
    )


def _take(index, passed=True):
    return TakeRecord(
        take_id=f"take-{index:04d}",
        index=index,
        knobs={"level": 5.0, "tone": 5.0, "drive": float(index)},
        knobs_normalized=OD3.normalize({"drive": float(index)}),
        alignment=Alignment(latency_samples=12.5, gain_db=-1.0, polarity=1, drift_ppm=0.0, drift_corrected=False),
        checks=[CheckResult("clipping", passed, 0.0, "dBFS")],
        output_file=f"takes/take-{index:04d}/output.wav",
        raw_file=f"takes/take-{index:04d}/raw.wav",
    )


def test_create_add_take_and_reopen(tmp_path):
    audio = np.linspace(-1, 1, 480, dtype=np.float32)
    session = Session.create(tmp_path / "s", device=OD3, backend=BackendDetails("sim"), signal_audio=audio, layout=_layout(audio), plan={"takes": []})
    session.add_take(_take(1), aligned=audio * 2, raw=np.concatenate([np.zeros(12), audio]))
    reopened = Session.open(tmp_path / "s")
    assert reopened.manifest.device == OD3
    assert reopened.takes[0] == session.takes[0]
    np.testing.assert_array_equal(reopened.input_audio(), audio)
    np.testing.assert_array_equal(reopened.take_output("take-0001"), audio * 2)
    assert reopened.layout.sha256 == audio_sha256(audio)
    data = json.loads((tmp_path / "s" / "session.json").read_text())
    assert data["takes"][0]["passed"] is True
    assert not any(str(tmp_path) in json.dumps(v) for v in data.values())  # relative paths only


def test_errors_for_missing_corrupt_and_future_sessions(tmp_path):
    with pytest.raises(SessionError, match="not a capture session"):
        Session.open(tmp_path)
    (tmp_path / "session.json").write_text("{ broken")
    with pytest.raises(SessionError, match="corrupt"):
        Session.open(tmp_path)
    audio = np.zeros(10, dtype=np.float32)
    Session.create(tmp_path / "ok", device=OD3, backend=BackendDetails("sim"), signal_audio=audio, layout=_layout(audio), plan={})
    manifest = tmp_path / "ok" / "session.json"
    data = json.loads(manifest.read_text())
    data["schema_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(SessionError, match="schema version 99"):
        Session.open(tmp_path / "ok")
    with pytest.raises(SessionError, match="already holds a session"):
        Session.create(tmp_path / "ok", device=OD3, backend=BackendDetails("sim"), signal_audio=audio, layout=_layout(audio), plan={})


def test_newest_session(tmp_path):
    with pytest.raises(SessionError, match="no capture session"):
        newest_session(tmp_path)
    audio = np.zeros(10, dtype=np.float32)
    for name in ("b", "a"):
        Session.create(tmp_path / name, device=OD3, backend=BackendDetails("sim"), signal_audio=audio, layout=_layout(audio), plan={})
    assert [p.name for p in find_sessions(tmp_path)] == ["b", "a"]
    assert newest_session(tmp_path).name == "a"
