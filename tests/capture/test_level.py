"""Choosing the played level of a deterministic backend (a plugin), and not re-taking it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.level import LEVEL_STEP_DB, MIN_PEAK_DBFS, pick_peak_level
from fxcap.capture.profiles import DeviceProfile, Knob
from fxcap.errors import CaptureError, FxcapError

RATE = 48000


class Saturator(Backend):
    """A deterministic hard clipper at full scale after ``gain_db`` of gain; counts its calls."""

    name = "saturator"
    deterministic = True

    def __init__(self) -> None:
        self.profile = DeviceProfile("Saturator", (Knob("gain_db", 0.0, 60.0, 0.0, unit="dB"),))
        self.sample_rate = RATE
        self.calls: list[float] = []

    def play_record(self, signal, knobs):
        gain = 10 ** (float(knobs["gain_db"]) / 20)
        self.calls.append(float(knobs["gain_db"]))
        return RawTake(signal, np.clip(signal * gain, -1.0, 1.0).astype(np.float32), RATE)

    def calibration_take(self, signal):
        return RawTake(signal, signal, RATE)


def _sine(peak_dbfs: float) -> np.ndarray:
    t = np.arange(RATE // 10) / RATE
    return (10 ** (peak_dbfs / 20) * np.sin(2 * np.pi * 441 * t)).astype(np.float32)


def test_the_level_drops_in_steps_until_no_setting_clips_and_each_setting_plays_once_per_level_lowered():
    backend = Saturator()
    settings = [{"gain_db": 0.0}, {"gain_db": 10.0}, {"gain_db": 20.0}, {"gain_db": 10.0}]  # a repeat plays once
    choice = pick_peak_level(backend, settings, _sine, -3.0)
    # +20 dB of gain clips unless the peak is below about -20 dBFS: -3 -> -9 -> -15 -> -21
    assert choice.peak_dbfs == -3.0 - 3 * LEVEL_STEP_DB
    assert [level for level, _ in choice.clipped] == [-3.0, -9.0, -15.0]
    assert choice.clipped[0][1] == {"gain_db": 10.0}  # at -3 dBFS +10 dB clips first
    assert backend.calls == [0.0, 10.0, 10.0, 10.0, 20.0, 20.0]  # 3 settings + 3 levels lowered
    assert "-21.0 dBFS chosen" in choice.describe("Saturator") and "--peak-dbfs" in choice.describe("Saturator")
    assert pick_peak_level(Saturator(), [{"gain_db": 0.0}], _sine, -3.0).clipped == []


def test_a_setting_that_clips_at_the_lowest_level_is_a_clear_error():
    with pytest.raises(CaptureError, match=f"clips at gain_db=60.0 even with the signal at {MIN_PEAK_DBFS:g} dBFS.*--device"):
        pick_peak_level(Saturator(), [{"gain_db": 60.0}], _sine, -3.0)


pedalboard = pytest.importorskip("pedalboard")
runner = CliRunner()


def _record(tmp_path, *args):
    from fxcap.cli import app

    out = tmp_path / "s"
    result = runner.invoke(app, ["record", "--backend", "plugin:Distortion", "--knob", "drive_db", "--preset", "short",
                                 "--out", str(out), *args])
    return result, out


def test_a_plugin_records_at_a_level_that_does_not_clip_and_says_so(tmp_path):
    result, out = _record(tmp_path, "--steps", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "session.json").read_text())
    level = manifest["backend"]["level"]
    assert level["chosen"] and level["peak_dbfs"] < -3.0 and level["clipped"][0]["peak_dbfs"] == -3.0
    assert manifest["signal"]["peak_dbfs"] == pytest.approx(level["peak_dbfs"], abs=0.01)
    assert [t["attempts"] for t in manifest["takes"]] == [1, 1]
    assert [t["knobs"]["drive_db"] for t in manifest["takes"]] == [0.0, 50.0]
    assert manifest["backend"]["profile_source"] is None  # the plugin's own parameters, not OD-3
    text = " ".join(result.output.split())
    assert f"signal level {level['peak_dbfs']:+.1f} dBFS chosen" in text and "--peak-dbfs" in text


def test_a_plugin_that_clips_at_a_given_level_is_not_retaken_and_the_advice_names_peak_dbfs(tmp_path):
    result, out = _record(tmp_path, "--steps", "2", "--peak-dbfs", "-3")
    assert isinstance(result.exception, FxcapError), result.output
    message = str(result.exception)
    assert "take-0002 (drive_db=50) failed its checks (output_clipping" in message
    assert "--peak-dbfs" in message and "input gain" not in message and "not re-taken" in message
    manifest = json.loads((out / "session.json").read_text())
    assert "attempt 2" not in result.output and sum("attempt 1 rejected" in n for n in manifest["notes"]) == 1


def test_a_profile_narrows_a_plugins_knob_range_and_a_foreign_profile_is_refused(tmp_path):
    profile = tmp_path / "narrow.toml"
    profile.write_text('name = "Narrow"\n[[knobs]]\nname = "Drive_dB"\nmin = 0\nmax = 10\ndefault = 5\n')
    result, out = _record(tmp_path, "--steps", "2", "--device", str(profile))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "session.json").read_text())
    assert [t["knobs"]["drive_db"] for t in manifest["takes"]] == [0.0, 10.0]
    assert manifest["device"]["knobs"][0]["maximum"] == 10.0 and manifest["device"]["name"] == "Distortion"
    assert manifest["backend"]["profile"] == str(profile)
    assert [t["knobs_normalized"]["drive_db"] for t in manifest["takes"]] == [-1.0, 1.0]
    for text, message in [
        ('name = "W"\n[[knobs]]\nname = "drive_db"\nmin = 0\nmax = 80\n', "0..80 is outside Distortion's range 0..50"),
        ('name = "W"\n[[knobs]]\nname = "fuzz"\nmin = 0\nmax = 1\ndefault = 0\n', "'fuzz', which Distortion does not have"),
    ]:
        profile.write_text(text)
        result, _ = _record(tmp_path / "w", "--steps", "2", "--device", str(profile))
        assert isinstance(result.exception, FxcapError) and message in str(result.exception), result.output
    result, _ = _record(tmp_path / "od3", "--steps", "2", "--device", "OD-3")
    assert isinstance(result.exception, FxcapError) and "'level', which Distortion does not have" in str(result.exception)
