"""Alignment: sub-sample latency, gain, polarity and drift recovered from simulated takes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import resample

from fxcap.capture.align import AlignConfig, Calibration, align_take, estimate_delay, measure_calibration
from fxcap.capture.backends.base import RawTake
from fxcap.dsp.esr import esr
from fxcap.dsp.levels import amp_to_db, db_to_amp, power_to_db, rms
from fxcap.dsp.resample import fractional_shift, warp_linear
from fxcap.capture.markers import sync_marker
from fxcap.errors import CaptureError
from tests.capture._align_signals import FS, adc, make_signal, make_take, rig, soft_clip_device

NOISE_DBFS = -70.0
LATENCY_TOL = 1e-3
"""Samples. The estimator's errors on these takes are at most 1.3e-4 samples (measured over every case
below); a bias of a few thousandths of a sample is a bug, not noise."""
GAIN_TOL_DB = 5e-3
"""dB. Measured errors are at most 3.4e-4 dB."""
DRIFT_TOL_PPM = 1e-3
"""ppm. Measured errors are at most 3e-5 ppm."""


def _centre(region) -> float:
    return (region.start + region.stop - 1) / 2.0


def _device_reference() -> np.ndarray:
    """What a perfectly aligned take of ``soft_clip_device`` must contain (before noise)."""
    return adc(soft_clip_device(make_signal().audio.astype(np.float64)))


def _marker_residual(aligned: np.ndarray, name: str) -> float:
    """Latency (samples) left at a marker of an aligned output."""
    signal = make_signal()
    region = signal.layout.region(name)
    pad = 20
    delay, _, _ = estimate_delay(
        signal.audio[region.start : region.stop], aligned[region.start - pad : region.stop + pad], (pad - 5, pad + 5)
    )
    return delay - pad


# -- dsp ---------------------------------------------------------------------------------------
def _bandlimited_noise(n: int, seed: int = 0) -> np.ndarray:
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spec[np.fft.rfftfreq(n) > 0.42] = 0.0
    x = np.fft.irfft(spec, n)
    x[:2000] = 0.0
    x[-2000:] = 0.0
    return x


@pytest.mark.parametrize("shift", [0.37, -12.6, 123.37])
def test_fractional_shift_matches_exact_fft_delay(shift):
    n = 2**15
    x = _bandlimited_noise(n)
    k = np.arange(n // 2 + 1)
    expected = np.fft.irfft(np.fft.rfft(x) * np.exp(2j * np.pi * k * shift / n), n)  # x(t + shift)
    inner = slice(3000, n - 3000)
    assert power_to_db(esr(fractional_shift(x, shift)[inner], expected[inner])) < -85
    # the general warp (used for drift) agrees with the constant-shift path
    warped = warp_linear(x, shift, 1.0 + 1e-12, n)
    assert power_to_db(esr(warped[inner], expected[inner])) < -85


def test_warp_linear_resamples_by_ratio():
    n = 2**15
    x = _bandlimited_noise(n, seed=1)
    drift = 1 / 50000  # 20 ppm; Fourier resampling of a zero-padded copy gives the exact reference
    padded = np.concatenate([x, np.zeros(100000 - n)])
    stretched = resample(padded, 100002)  # stretched[m] = x(m / (1 + drift))
    back = warp_linear(stretched, 0.0, 1.0 + drift, n)
    inner = slice(3000, n - 3000)
    assert power_to_db(esr(back[inner], x[inner])) < -80


# -- delay estimation ----------------------------------------------------------------------------
@pytest.mark.parametrize("weighting", ["plain", "phat"])
@pytest.mark.parametrize("delay,polarity", [(123.37, 1), (57.81, -1), (300.5, 1), (0.02, 1)])
def test_estimate_delay_is_subsample_precise(delay, polarity, weighting):
    marker = sync_marker(FS).astype(np.float64)
    recorded = rig(marker, latency=delay, polarity=polarity, gain_db=-6.0, noise_dbfs=NOISE_DBFS, seed=3)
    found, corr, pol = estimate_delay(marker, recorded, (-50, 1000), weighting=weighting)
    assert abs(found - delay) < LATENCY_TOL
    assert pol == polarity
    assert corr > 0.99


def test_estimate_delay_respects_search_range():
    marker = sync_marker(FS).astype(np.float64)
    strong = rig(marker, latency=400.0, noise_dbfs=None)
    weak = rig(marker, latency=100.25, gain_db=-12, noise_dbfs=None)
    recorded = strong[: len(weak)] + weak
    assert abs(estimate_delay(marker, recorded)[0] - 400.0) < LATENCY_TOL  # the stronger copy
    assert abs(estimate_delay(marker, recorded, (0, 200))[0] - 100.25) < LATENCY_TOL


# -- calibration and alignment -----------------------------------------------------------------------
CASES = [  # latency (samples), gain (dB), polarity
    (123.37, -4.3, 1),
    (57.81, 2.0, -1),
    (300.5, -12.0, 1),
]


@pytest.mark.parametrize("latency,gain_db,polarity", CASES)
def test_calibration_recovers_latency_gain_polarity(latency, gain_db, polarity):
    layout = make_signal().layout
    cal = measure_calibration(make_take(None, latency=latency, gain_db=gain_db, polarity=polarity, seed=1), layout)
    assert abs(cal.latency_samples - latency) < LATENCY_TOL
    assert abs(cal.gain_db - gain_db) < GAIN_TOL_DB
    assert cal.polarity == polarity
    assert abs(cal.drift_ppm) < 0.5
    # noise floor in the played-signal scale: injected noise minus the rig gain
    assert abs(cal.noise_floor_dbfs - (NOISE_DBFS - gain_db)) < 0.5


@pytest.mark.parametrize("latency,gain_db,polarity", CASES)
def test_align_take_through_nonlinear_device(latency, gain_db, polarity):
    layout = make_signal().layout
    cal = measure_calibration(make_take(None, latency=latency, gain_db=gain_db, polarity=polarity, seed=1), layout)
    raw = make_take(soft_clip_device, latency=latency, gain_db=gain_db, polarity=polarity, seed=2)
    aligned, alignment = align_take(raw, layout, cal)
    assert aligned.dtype == np.float32 and len(aligned) == layout.length
    assert abs(alignment.latency_samples - latency) < LATENCY_TOL
    assert alignment.gain_db == cal.gain_db and alignment.polarity == polarity
    # the device's phase shift moves its own markers: using them would misalign the take
    assert abs(alignment.extra["latency_offset"]) > 0.2
    # aligned output = device output up to the rig noise (scaled back by the rig gain)
    program = layout.region("program")
    target = _device_reference()[program.start : program.stop]
    noise_power = db_to_amp(NOISE_DBFS - gain_db) ** 2
    expected_db = power_to_db(noise_power / np.mean(target**2))
    measured_db = power_to_db(esr(aligned[program.start : program.stop], target))
    assert measured_db < expected_db + 0.5
    json.dumps(alignment.to_dict(), allow_nan=False)


@pytest.mark.parametrize("drift_ppm", [20.0, -20.0])
def test_drift_is_estimated_and_removed(drift_ppm):
    layout = make_signal().layout
    cal_raw = make_take(None, drift_ppm=drift_ppm, seed=1)
    cal = measure_calibration(cal_raw, layout)
    assert abs(cal.drift_ppm - drift_ppm) < 2.0
    assert abs(cal.drift_ppm - drift_ppm) < DRIFT_TOL_PPM  # measured precision is far better than required
    assert abs(cal.gain_db - -4.3) < GAIN_TOL_DB
    start, end = layout.region("sync_start"), layout.region("sync_end")
    # latency is defined at the start marker's centre: rec(r) = x((r - 123.37) / (1 + d))
    assert abs(cal.latency_samples - (123.37 + drift_ppm * 1e-6 * _centre(start))) < LATENCY_TOL

    raw = make_take(soft_clip_device, drift_ppm=drift_ppm, seed=2)
    for take, calibration in [(cal_raw, cal), (raw, cal), (raw, None)]:
        aligned, alignment = align_take(take, layout, calibration)
        assert alignment.drift_corrected
        assert abs(alignment.drift_ppm - drift_ppm) < 2.0
        if take is cal_raw:  # bypass take: both markers land on the played ones
            assert abs(_marker_residual(aligned, "sync_start")) < 0.1
            assert abs(_marker_residual(aligned, "sync_end")) < 0.1
    # without drift removal the end marker would be 20 ppm * distance off
    assert abs(drift_ppm * 1e-6 * (_centre(end) - _centre(start))) > 0.1
    # the device take lines up along the whole signal (validation B is near the end)
    aligned, _ = align_take(raw, layout, cal)
    target = _device_reference()
    for name in ("validation_a", "validation_b"):
        region = layout.region(name)
        part = slice(region.start, region.stop)
        assert power_to_db(esr(aligned[part], target[part])) < -40


def test_drift_below_threshold_is_measured_but_not_resampled():
    layout = make_signal().layout
    _, alignment = align_take(make_take(None, noise_dbfs=None, seed=1), layout, None)
    assert not alignment.drift_corrected  # no drift: nothing to resample
    assert abs(alignment.drift_ppm) < 0.01
    raw = make_take(None, drift_ppm=20.0, seed=1)  # 7.9 samples between the markers
    _, alignment = align_take(raw, layout, None, AlignConfig(drift_threshold_samples=10.0))
    assert not alignment.drift_corrected
    assert abs(alignment.drift_ppm - 20.0) < DRIFT_TOL_PPM


def test_without_calibration_the_take_keeps_its_level():
    layout = make_signal().layout
    raw = make_take(None, latency=77.7, gain_db=-4.3, polarity=-1, seed=4)
    aligned, alignment = align_take(raw, layout, None)
    assert alignment.gain_db == 0.0
    assert alignment.polarity == -1
    assert abs(alignment.latency_samples - 77.7) < LATENCY_TOL
    tone = layout.region("calibration")
    played = make_signal().audio[tone.start : tone.stop]
    # never normalized by itself: the rig's -4.3 dB is still there
    assert abs(amp_to_db(rms(aligned[tone.start : tone.stop]) / rms(played)) - -4.3) < 0.05


def test_all_takes_share_the_calibration_reference():
    layout = make_signal().layout
    cal = measure_calibration(make_take(None, gain_db=-4.3, seed=1), layout)
    quiet = soft_clip_device
    loud = lambda x: 2.0 * soft_clip_device(x)  # noqa: E731 - a device with 6 dB more output
    a_quiet, _ = align_take(make_take(quiet, seed=2), layout, cal)
    a_loud, _ = align_take(make_take(loud, seed=3), layout, cal)
    program = layout.region("program")
    ratio_db = amp_to_db(rms(a_loud[program.start : program.stop]) / rms(a_quiet[program.start : program.stop]))
    assert abs(ratio_db - amp_to_db(2.0)) < 0.05


def test_silent_take_aligns_without_raising():
    layout = make_signal().layout
    cal = measure_calibration(make_take(None, seed=1), layout)
    raw = make_take(lambda x: 0.0 * x, seed=5)
    aligned, alignment = align_take(raw, layout, cal)
    assert len(aligned) == layout.length
    assert alignment.extra["markers_found"] is False
    assert alignment.latency_samples == cal.latency_samples
    json.dumps(alignment.to_dict(), allow_nan=False)


def test_short_recording_is_not_an_exception():
    layout = make_signal().layout
    raw = make_take(None, seed=1)
    raw.recorded = raw.recorded[: layout.region("sync_end").start]  # recording stopped early
    aligned, alignment = align_take(raw, layout, None)
    assert len(aligned) == layout.length
    assert alignment.extra["markers_found"] is False


def test_bad_inputs_raise_clear_errors():
    signal = make_signal()
    layout = signal.layout
    raw = make_take(None, seed=1)
    with pytest.raises(CaptureError, match="sample rate|Hz"):
        align_take(RawTake(raw.played, raw.recorded, 44100), layout)
    with pytest.raises(CaptureError, match="does not belong"):
        align_take(RawTake(raw.played[:-10], raw.recorded, FS), layout)
    no_markers = replace(layout, regions=[r for r in layout.regions if r.kind != "sync_end"])
    with pytest.raises(CaptureError, match="sync"):
        align_take(raw, no_markers)
    with pytest.raises(CaptureError, match="calibration take"):
        measure_calibration(make_take(lambda x: 0.0 * x, seed=5), layout)
    with pytest.raises(CaptureError, match="weighting"):
        AlignConfig(weighting="bogus")


def test_calibration_round_trips_through_json():
    layout = make_signal().layout
    cal = measure_calibration(make_take(None, drift_ppm=20.0, seed=1), layout)
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict(), allow_nan=False)))
    assert again == cal


def test_mains_hum_does_not_bias_latency_or_gain():
    layout = make_signal().layout
    raw = make_take(None, latency=123.37, gain_db=-4.3, seed=1)
    t = np.arange(len(raw.recorded)) / FS
    raw.recorded = (raw.recorded + db_to_amp(-40.0) * np.sin(2 * np.pi * 50.0 * t + 0.3)).astype(np.float32)
    cal = measure_calibration(raw, layout)
    assert abs(cal.latency_samples - 123.37) < LATENCY_TOL
    assert abs(cal.gain_db - -4.3) < GAIN_TOL_DB
    assert cal.noise_floor_dbfs == pytest.approx(-40.0 - 3.01 + 4.3, abs=0.5)  # the hum dominates the floor
