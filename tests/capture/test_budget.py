"""The capture estimate (fxcap.capture.budget): what `fxcap record --dry-run` prints, the progress bar's
time left and the question before a long capture come from one estimate, and it matches what a capture
really plays."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from fxcap.capture import capture as capture_module
from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.budget import CapturePace, TakeTiming, estimate_capture
from fxcap.capture.capture import CaptureRequest, preview_capture, run_capture
from fxcap.capture.plan import PlanConfig, PlannedTake
from fxcap.capture.record import RecordConfig
from fxcap.cli import tables
from fxcap.cli.progress import RecordProgress
from fxcap.errors import CaptureError
from tests.faults._capture_helpers import assert_one_line_error, run_fxcap


class CountingSim(SimBackend):
    """The virtual device, counting every frame it plays or records (the longer of the two per pass)."""

    frames = 0
    passes = 0

    def _count(self, take):
        CountingSim.frames += max(len(take.played), len(take.recorded))
        CountingSim.passes += 1
        return take

    def play_record(self, signal, knobs):
        return self._count(super().play_record(signal, knobs))

    def calibration_take(self, signal):
        return self._count(super().calibration_take(signal))


def test_the_dry_run_estimate_is_the_audio_a_sim_capture_plays(tmp_path, monkeypatch):
    """Acceptance: the estimate's audio time equals the frames played/recorded by a real sim capture
    (calibration take and reference re-takes included) within a few percent."""
    request = CaptureRequest(backend="sim", preset="short", out=tmp_path / "s",
                             plan=PlanConfig(knobs=["drive"], steps=2, reference_every=2))
    estimate = preview_capture(request).estimate
    assert not (tmp_path / "s").exists()  # a preview writes nothing
    assert [c.take.is_reference for c in estimate.takes] == [True, False, False, True]  # re-takes of the reference
    monkeypatch.setattr(capture_module, "make_backend",
                        lambda spec, device, rate, seed=0, **options: CountingSim("OD-3", rate, seed=seed))
    CountingSim.frames = CountingSim.passes = 0
    session = run_capture(request)
    assert session.manifest.status == "complete" and len(session.takes) == 4
    measured = CountingSim.frames / session.sample_rate
    assert CountingSim.passes == 5  # the calibration take and the four planned takes
    assert estimate.audio_seconds == pytest.approx(5 * estimate.signal_seconds)
    assert abs(estimate.audio_seconds - measured) / measured < 0.03, (estimate.audio_seconds, measured)
    assert estimate.knob_seconds == 0.0 and estimate.seconds == estimate.audio_seconds  # the sim sets its knobs


def _takes(*settings: tuple[float, float], reference: tuple[int, ...] = ()) -> list[PlannedTake]:
    return [PlannedTake(i + 1, {"drive": d, "tone": t}, i in reference) for i, (d, t) in enumerate(settings)]


def test_knobs_turned_by_hand_cost_their_time_once_per_change():
    takes = _takes((0, 0), (0, 5), (5, 5), (5, 5), (0, 0))
    timing = TakeTiming(margin_seconds=0.5, probe_seconds=1.0, manual_knobs=("drive", "tone"), manual_bypass=True, realtime=True)
    estimate = estimate_capture(takes, 20.0, timing, knob_change_seconds=7.0)
    assert [c.turned for c in estimate.takes] == [("drive", "tone"), ("tone",), ("drive",), (), ("drive", "tone")]
    assert estimate.knob_changes == 6
    assert estimate.bypass_seconds == 14.0  # into bypass for the calibration take, and back
    assert estimate.knob_seconds == 6 * 7.0 + 14.0
    assert estimate.calibration_seconds == 20.5  # a pass: the signal and the margins, no probe
    assert estimate.take_audio_seconds == 5 * (20.5 + 1.0)
    assert estimate.seconds == pytest.approx(20.5 + 5 * 21.5 + 56.0)
    # a resumed capture (calibration on disk): no calibration, no bypass, and the first take prompts every knob
    resumed = estimate_capture(takes[2:], 20.0, timing, 7.0, calibrate=False)
    assert resumed.calibration_seconds == resumed.bypass_seconds == 0.0
    assert resumed.takes[0].turned == ("drive", "tone")
    # a plugin's level search: one pass per distinct setting
    assert estimate_capture(takes, 20.0, level_passes=3).level_seconds == 60.0


def test_record_config_refuses_a_negative_knob_change_time():
    with pytest.raises(CaptureError, match="--knob-change-seconds must be 0 or more"):
        RecordConfig(knob_change_seconds=-1.0)


def test_the_time_left_follows_the_estimate_at_the_measured_pace():
    takes = _takes((0, 0), (10, 0), (10, 10))
    realtime = estimate_capture(takes, 10.0, TakeTiming(manual_knobs=("drive",), realtime=True), knob_change_seconds=5.0)
    pace = CapturePace(realtime)
    assert pace.remaining(0.0) == realtime.seconds == 30.0 + 10.0 + 10.0  # before anything: the estimate itself
    pace.calibration_done()
    assert pace.remaining(5.0) == pytest.approx(realtime.remaining_seconds(True, 0) * 5.0 / 10.0)  # twice as fast so far
    pace.take_done()  # drive 0: the first knob turn and the signal
    assert realtime.remaining_seconds(True, 1) == 10.0 + 10.0 + 5.0
    assert pace.remaining(25.0) == pytest.approx(25.0)  # 25 s for 25 estimated seconds: on pace
    computed = CapturePace(estimate_capture(takes, 10.0))  # a virtual device: its pace is unknown before a step
    assert computed.remaining(1.0) is None
    computed.calibration_done()
    assert computed.remaining(1.0) == pytest.approx(3.0)  # 1 s per 10 s of audio, 30 s of audio left


def test_the_progress_bar_takes_its_time_left_from_the_plan_event():
    estimate = estimate_capture(_takes((0, 0), (5, 0)), 10.0, TakeTiming(realtime=True))
    with RecordProgress() as progress:
        progress("plan", {"total": 2, "done": 0, "estimate": estimate})
        assert progress.pace is not None and progress.pace.remaining(0.0) == 30.0
        progress("take_done", {"take": estimate.takes[0].take, "record": None})
        assert progress.pace.done_takes == 1 and progress.pace.estimate.remaining_seconds(False, 1) == 20.0


def _sessions(folder: Path) -> list[Path]:
    return sorted(folder.rglob("session.json"))


def test_cli_dry_run_prints_the_plan_in_words_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tables, "console", Console(width=250))  # table cells unwrapped
    outcome = run_fxcap(capsys, "record", "--backend", "soundcard", "--knob", "drive", "--steps", "3", "--preset", "short",
                        "--reference-every", "2", "--knob-change-seconds", "8", "--dry-run", "--out", tmp_path / "s")
    assert outcome.code == 0, outcome.text
    text = " ".join(outcome.out.split())  # however the table wraps
    assert "turn LEVEL to 5 (about 12 o'clock)" in text and "DRIVE to 10 (about 5 o'clock)" in text  # the prompts' words
    assert "switch the device to bypass, then back on" in text
    assert "pre-roll/tail" in text and "knob probe" in text
    # reference, 0, 5, reference, 10, reference: every knob at the first, then drive 5 -> 0 -> 5 (-> 5) -> 10 -> 5;
    # 8 s per knob turned, and 2 bypass switches
    assert "knob changes by hand: 7 turns and 2 bypass switches, 72 s" in text
    assert "6 takes incl. 3 reference re-takes" in text
    assert not (tmp_path / "s").exists() and not (tmp_path / "sessions").exists()
    sim = run_fxcap(capsys, "record", "--knob", "drive", "--steps", "2", "--preset", "short", "--dry-run")
    assert sim.code == 0 and "knob changes by hand: none (the backend sets the knobs)" in sim.out
    assert _sessions(tmp_path) == []
    assert_one_line_error(run_fxcap(capsys, "record", "--knob", "drive", "--dry-run", "--knob-change-seconds", "-3"),
                          "--knob-change-seconds must be 0 or more")
    assert_one_line_error(run_fxcap(capsys, "record", "--resume", "--dry-run"), "--dry-run previews a new capture")
