"""fxcap record / signal / devices through the command line."""

import json

from typer.testing import CliRunner

from fxcap.cli import app
from fxcap.errors import FxcapError

runner = CliRunner()


def test_record_sweep_on_the_virtual_od3_then_resume_is_a_no_op(tmp_path):
    out = tmp_path / "session"
    result = runner.invoke(app, ["record", "--device", "OD-3", "--knob", "drive", "--steps", "3", "--set", "tone=7", "--preset", "short", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "session.json").read_text())
    assert manifest["status"] == "complete"
    assert [t["knobs"]["drive"] for t in manifest["takes"]] == [0.0, 5.0, 10.0]
    assert all(t["knobs"]["tone"] == 7.0 for t in manifest["takes"])
    assert "drive=10" in result.output and "kept_takes_pass" in result.output
    before = (out / "takes" / "take-0002" / "output.wav").read_bytes()
    result = runner.invoke(app, ["record", "--resume", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "takes" / "take-0002" / "output.wav").read_bytes() == before


def test_record_user_errors(tmp_path):
    result = runner.invoke(app, ["record", "--device", "OD-3", "--knob", "fuzz", "--out", str(tmp_path / "a")])
    assert isinstance(result.exception, FxcapError) and "no knob 'fuzz'" in str(result.exception)
    result = runner.invoke(app, ["record", "--device", "Big Muff", "--out", str(tmp_path / "b")])
    assert isinstance(result.exception, FxcapError) and "OD-3" in str(result.exception)
    result = runner.invoke(app, ["record", "--backend", "tape", "--out", str(tmp_path / "c")])
    assert isinstance(result.exception, FxcapError) and "sim" in str(result.exception)
    result = runner.invoke(app, ["record", "--resume", "--out", str(tmp_path / "nothing")])
    assert isinstance(result.exception, FxcapError) and "not a capture session" in str(result.exception)


def test_signal_command_writes_wav_and_layout(tmp_path):
    result = runner.invoke(app, ["signal", "--out", str(tmp_path / "sig.wav"), "--rate", "44100", "--preset", "short"])
    assert result.exit_code == 0, result.output
    layout = json.loads((tmp_path / "sig.json").read_text())
    assert layout["sample_rate"] == 44100 and {r["kind"] for r in layout["regions"]} >= {"sync_start", "sync_end", "validation"}
    result = runner.invoke(app, ["signal", "--out", str(tmp_path / "x.wav"), "--rate", "22050"])
    assert isinstance(result.exception, FxcapError) and "44100" in str(result.exception)


def test_devices_lists_builtin_profiles():
    result = runner.invoke(app, ["devices"])
    assert result.exit_code == 0 and "OD-3" in result.output and "LA-2A" in result.output
