"""Per-take and session checks: clean takes pass, broken takes fail with a clear message."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from fxcap.capture.align import Calibration, align_take, measure_calibration
from fxcap.capture.backends.base import RawTake
from fxcap.capture.checks import CheckConfig, check_take, repeatability_esr, session_checks
from fxcap.dsp.levels import db_to_amp, power_to_db
from fxcap.capture.session import CheckResult, TakeRecord
from tests.capture._align_signals import FS, make_signal, make_take, soft_clip_device

NOISE_DBFS = -70.0
RIG_GAIN_DB = -4.3
DRIFT_PPM = 20.0
NAMES = [
    "stream", "sync", "input_clipping", "output_clipping", "silence", "dropouts", "noise_floor", "repeatability",
    "latency_consistency", "drift",
]


@lru_cache(maxsize=1)
def _calibration() -> Calibration:
    return measure_calibration(make_take(None, drift_ppm=DRIFT_PPM, seed=1), make_signal().layout)


def _take(device=soft_clip_device, **kw) -> RawTake:
    kw.setdefault("drift_ppm", DRIFT_PPM)
    kw.setdefault("seed", 2)
    return make_take(device, **kw)


def _run(raw: RawTake, calibration: Calibration | None = None, **kw) -> dict[str, CheckResult]:
    layout = make_signal().layout
    calibration = calibration if calibration is not None else _calibration()
    aligned, alignment = align_take(raw, layout, calibration)
    results = check_take(raw, aligned, layout, alignment, calibration, **kw)
    assert [r.name for r in results] == NAMES
    for r in results:  # every result is one JSON-safe line
        assert "\n" not in r.message and r.message
        json.dumps(r.to_dict(), allow_nan=False)
    return {r.name: r for r in results}


def _failed(results: dict[str, CheckResult], severity: str = "error") -> set[str]:
    return {name for name, r in results.items() if not r.passed and r.severity == severity}


def _program_index(offset_s: float) -> int:
    """Raw-recording index of a point ``offset_s`` into the program region."""
    program = make_signal().layout.region("program")
    return program.start + int(offset_s * FS) + 123


def test_clean_take_passes_every_check():
    results = _run(_take())
    assert all(r.passed for r in results.values()), [r.message for r in results.values() if not r.passed]
    assert results["noise_floor"].value == pytest.approx(NOISE_DBFS - RIG_GAIN_DB, abs=0.5)
    assert results["drift"].value == pytest.approx(DRIFT_PPM, abs=0.05)
    assert results["sync"].value > 0.5


def test_repeatability_matches_the_injected_noise():
    results = _run(_take())
    layout = make_signal().layout
    aligned, _ = align_take(_take(), layout, _calibration())
    copy = layout.of_kind("validation")[0]
    signal_power = np.mean(aligned[copy.start : copy.stop].astype(np.float64) ** 2)
    noise_power = db_to_amp(NOISE_DBFS - RIG_GAIN_DB) ** 2
    expected_db = power_to_db(2 * noise_power / signal_power)  # two independent noise copies
    assert results["repeatability"].value == pytest.approx(expected_db, abs=1.0)
    assert power_to_db(repeatability_esr(aligned, layout)) == pytest.approx(results["repeatability"].value)


def test_clean_take_without_noise_or_calibration_passes():
    raw = _take(noise_dbfs=None)
    layout = make_signal().layout
    aligned, alignment = align_take(raw, layout, None)
    results = check_take(raw, aligned, layout, alignment, None)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_clipped_take_is_rejected():
    raw = _take(gain_db=12.0)
    raw.recorded = np.clip(raw.recorded, -1.0, 1.0)
    results = _run(raw)
    assert _failed(results) == {"output_clipping"}
    assert "clipped" in results["output_clipping"].message
    assert "lower" in results["output_clipping"].message


def test_flat_topped_take_is_rejected():
    raw = _take(gain_db=12.0)
    raw.recorded = np.clip(raw.recorded, -0.8, 0.8)  # an interface that clips below full scale
    results = _run(raw)
    assert _failed(results) == {"output_clipping"}
    assert "flat-topped" in results["output_clipping"].message


def test_silent_take_is_rejected():
    results = _run(_take(lambda x: 0.0 * x))
    assert {"silence", "sync"} <= _failed(results)
    assert "no signal" in results["silence"].message and "cables" in results["silence"].message


def test_signal_lost_mid_take_is_rejected():
    raw = _take()
    i = _program_index(2.0)
    noise = db_to_amp(NOISE_DBFS) * np.random.default_rng(9).standard_normal(FS // 2)
    raw.recorded[i : i + FS // 2] = noise  # cable pulled for half a second
    results = _run(raw)
    assert "silence" in _failed(results)
    assert "signal lost from 4.9" in results["silence"].message


@pytest.mark.parametrize("kind", ["zeros", "held"])
def test_dropout_is_rejected_with_its_time(kind):
    raw = _take()
    i = _program_index(1.25)
    raw.recorded[i : i + 200] = 0.0 if kind == "zeros" else raw.recorded[i]
    results = _run(raw)
    assert _failed(results) == {"dropouts"}
    assert "dropout at 4.15 s" in results["dropouts"].message


def test_click_is_rejected_with_its_time():
    raw = _take()
    raw.recorded[_program_index(1.25)] += 0.05
    results = _run(raw)
    assert _failed(results) == {"dropouts"}
    assert "discontinuity (click) at 4.15 s" in results["dropouts"].message


def test_lost_samples_are_rejected():
    raw = _take()
    i = _program_index(1.25)
    raw.recorded = np.concatenate([raw.recorded[:i], raw.recorded[i + 100 :]])  # a buffer went missing
    results = _run(raw)
    assert {"dropouts", "drift", "repeatability"} <= _failed(results)
    assert "4.15 s" in results["dropouts"].message
    assert "lost or inserted" in results["drift"].message


def test_stream_events_fail_the_take():
    results = _run(_take(events=["input overflow", "input overflow"]))
    assert _failed(results) == {"stream"}
    assert "input overflow" in results["stream"].message and "buffer size" in results["stream"].message


def test_input_clipping():
    raw = _take()
    raw.played = raw.played * 2.5  # exceeds full scale
    results = _run(raw)
    assert "input_clipping" in _failed(results)
    raw = _take()
    layout = make_signal().layout
    program = layout.region("program")
    raw.played = raw.played.copy()
    raw.played[program.start + 100] = 0.995  # hot but not over: warning, take kept
    results = _run(raw)
    assert "input_clipping" in _failed(results, "warning")
    assert "input_clipping" not in _failed(results)


def test_noise_floor_and_repeatability_fail_on_a_noisy_take():
    results = _run(_take(noise_dbfs=-40.0))
    assert {"noise_floor", "repeatability"} <= _failed(results)
    assert results["noise_floor"].value == pytest.approx(-40.0 - RIG_GAIN_DB, abs=0.5)
    assert "hum" in results["noise_floor"].message


def test_repeatability_fails_when_the_device_changes_mid_take():
    layout = make_signal().layout
    validation_b = layout.region("validation_b")

    def unstable(x):  # the device's drive changes before the second validation copy
        y = soft_clip_device(x)
        y[validation_b.start - 1000 :] = soft_clip_device(x, drive=6.0)[validation_b.start - 1000 :]
        return y

    results = _run(_take(unstable))
    assert _failed(results) == {"repeatability"}


def test_buffer_slip_against_earlier_takes():
    layout = make_signal().layout
    _, earlier = align_take(_take(), layout, _calibration())
    results = _run(_take(latency=123.37 + 64), previous=[earlier])
    assert _failed(results) == {"latency_consistency"}
    assert "+64.00 samples" in results["latency_consistency"].message
    assert _run(_take(seed=3), previous=[earlier])["latency_consistency"].passed


def test_stale_calibration_is_detected():
    results = _run(_take(latency=123.37 + 0.02 * FS))
    assert "latency_consistency" in _failed(results)
    assert "calibration" in results["latency_consistency"].message


def test_drift_changes_and_large_drift():
    results = _run(_take(drift_ppm=40.0))
    assert _failed(results) == {"drift"}
    cal = measure_calibration(make_take(None, drift_ppm=300.0, seed=1), make_signal().layout)
    results = _run(_take(drift_ppm=300.0), calibration=cal)
    assert not _failed(results)
    assert "drift" in _failed(results, "warning")


def test_thresholds_are_configurable():
    results = _run(_take(), config=CheckConfig(noise_floor_max_dbfs=-70.0))
    assert "noise_floor" in _failed(results)


def _record(take_id: str, raw: RawTake, reference: bool = False) -> tuple[TakeRecord, np.ndarray]:
    layout = make_signal().layout
    aligned, alignment = align_take(raw, layout, _calibration())
    checks = check_take(raw, aligned, layout, alignment, _calibration())
    record = TakeRecord(
        take_id=take_id, index=0, knobs={}, knobs_normalized={}, alignment=alignment, checks=checks,
        output_file="", raw_file="", is_reference=reference,
    )
    return record, aligned


def test_session_checks():
    layout = make_signal().layout
    r1, a1 = _record("take-0001", _take(seed=2), reference=True)
    r2, a2 = _record("take-0002", _take(seed=3), reference=True)
    r3, a3 = _record("take-0003", _take(lambda x: soft_clip_device(x, drive=6.0), seed=4), reference=True)
    results = {r.name: r for r in session_checks([r1, r2], {"take-0001": a1, "take-0002": a2}, layout)}
    assert all(r.passed for r in results.values()), [r.message for r in results.values()]
    assert set(results) == {"kept_takes_pass", "latency_spread", "drift_spread", "reference_drift"}
    # the device changed between re-takes of the reference setting
    outputs = {"take-0001": a1, "take-0002": a2, "take-0003": a3}
    results = {r.name: r for r in session_checks([r1, r2, r3], outputs, layout)}
    assert not results["reference_drift"].passed and "take-0003" in results["reference_drift"].message
    # a failing take must never be kept
    broken, _ = _record("take-0004", _take(events=["input overflow"]))
    results = {r.name: r for r in session_checks([r1, broken])}
    assert not results["kept_takes_pass"].passed and results["kept_takes_pass"].severity == "error"
    assert "take-0004" in results["kept_takes_pass"].message


def _sweep_take(lost_in: str):
    """A program burst then a -20 dBFS log sweep 20 Hz..20 kHz; the output loses 0.3 s in ``lost_in``."""
    from scipy.signal import chirp

    from fxcap.capture.checks import _check_silence
    from fxcap.capture.layout import Region, SignalLayout

    rng = np.random.default_rng(3)
    program = 0.3 * rng.standard_normal(2 * FS)
    t = np.arange(3 * FS) / FS
    sweep = 0.1 * chirp(t, 20.0, t[-1], 20000.0, method="logarithmic")
    played = np.concatenate([program, sweep]).astype(np.float32)
    regions = [Region("program", "program", 0, 2 * FS), Region("sweep_1", "sweep", 2 * FS, 5 * FS)]
    layout = SignalLayout(version="t", sample_rate=FS, length=len(played), peak_dbfs=-6.0, preset="t", regions=regions)
    floor = db_to_amp(NOISE_DBFS) * np.random.default_rng(4).standard_normal(len(played))
    aligned = played + floor
    start = {"program": FS, "sweep": 5 * FS - int(0.3 * FS)}[lost_in]  # the sweep's top: a dark device's range
    aligned[start : start + int(0.3 * FS)] = floor[start : start + int(0.3 * FS)]
    raw = RawTake(played=played, recorded=aligned.astype(np.float32), sample_rate=FS)
    return _check_silence(raw, aligned, layout, NOISE_DBFS, CheckConfig())


def test_a_sweep_top_below_the_floor_is_not_signal_loss():
    """A dark tone setting filters a quiet sweep's top octave below the noise floor: not a pulled cable."""
    assert _sweep_take("sweep").passed
    lost = _sweep_take("program")
    assert not lost.passed and "signal lost from 1.0" in lost.message
