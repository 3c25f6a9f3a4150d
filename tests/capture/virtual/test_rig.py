import math

import numpy as np
import pytest

from fxcap.capture.virtual import RigImpairments, apply_rig, random_impairments
from fxcap.capture.virtual.dsp import fractional_delay, resample_time_axis
from fxcap.capture.virtual.rig import recorded_length
from fxcap.errors import CaptureError

FS = 48000
FREQS = (97.0, 1234.5, 5000.0, 11025.0, 17000.0)


def bandlimited(t):
    """A sum of sines below 0.36 fs, evaluated at (fractional) sample times ``t``."""
    return sum(np.sin(2 * np.pi * f / FS * t + 0.7 * k) for k, f in enumerate(FREQS)) / len(FREQS)


QUIET = dict(noise_dbfs=None, hum_dbfs=None)


def test_fractional_delay_matches_the_analytic_signal():
    n = 8000
    y = fractional_delay(bandlimited(np.arange(n)), 10.3)
    assert len(y) == n + 11
    k = np.arange(len(y))
    inner = slice(100, n - 100)
    np.testing.assert_allclose(y[inner], bandlimited(k - 10.3)[inner], atol=2e-4)
    # An integer delay is an exact shift; the tabulated interpolator agrees with the exact kernel.
    x = np.random.default_rng(0).standard_normal(500)
    np.testing.assert_array_equal(fractional_delay(x, 7.0)[7:507], x)
    np.testing.assert_allclose(resample_time_axis(x, -10.3, 1.0, 511), fractional_delay(x, 10.3), atol=1e-5)


def test_clock_drift_resamples_the_time_axis():
    n = 48000
    x = bandlimited(np.arange(n))
    rig = RigImpairments(latency_samples=123.37, drift_ppm=20.0, **QUIET)
    y = apply_rig(x, rig, FS).astype(np.float64)
    assert len(y) == recorded_length(n, rig) == math.ceil((n + 123.37) * (1 + 20e-6))
    k = np.arange(len(y))
    expected = bandlimited(k / (1 + 20e-6) - 123.37)
    inner = slice(300, n - 300)
    np.testing.assert_allclose(y[inner], expected[inner], atol=3e-4)
    # 20 ppm over 1 s is about one sample at 48 kHz: a drift-free reading would be far off at the end.
    assert np.max(np.abs(y[n - 1000 : n - 300] - bandlimited(k - 123.37)[n - 1000 : n - 300])) > 0.05


def test_gain_polarity_latency_and_tail():
    x = np.random.default_rng(1).standard_normal(1000) * 0.1
    rig = RigImpairments(latency_samples=5.0, gain_db=-6.0, polarity=-1, tail_samples=100, **QUIET)
    y = apply_rig(x, rig, FS)
    assert y.dtype == np.float32 and len(y) == 1000 + 5 + 100
    np.testing.assert_allclose(y[5:1005], -(10 ** (-6 / 20)) * x, atol=1e-7)
    assert not np.any(y[:5]) and not np.any(y[1005:])


@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_floor_and_hum_levels(color):
    silent = np.zeros(FS)
    noise = apply_rig(silent, RigImpairments(noise_dbfs=-70.0, noise_color=color), FS).astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(noise**2))) == pytest.approx(-70.0, abs=0.3)
    hum = apply_rig(silent, RigImpairments(noise_dbfs=None, hum_dbfs=-60.0, hum_hz=60.0), FS).astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(hum**2))) == pytest.approx(-60.0, abs=0.2)
    spectrum = np.abs(np.fft.rfft(hum))
    assert np.fft.rfftfreq(len(hum), 1 / FS)[np.argmax(spectrum)] == pytest.approx(60.0, abs=1)


def test_faults():
    x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(FS) / FS)
    clipped = apply_rig(x, RigImpairments(fault="clip"), FS)
    assert np.max(np.abs(clipped)) == 1.0 and np.mean(np.abs(clipped) == 1.0) > 0.3
    dropped = apply_rig(x, RigImpairments(fault="dropout", dropout_at_s=0.25, dropout_s=0.01), FS)
    assert not np.any(dropped[12000:12480]) and np.all(dropped[11990:12000] != 0)
    assert np.count_nonzero(dropped == 0) < 500
    unplugged = apply_rig(x, RigImpairments(fault="silence", noise_dbfs=-80.0), FS).astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(unplugged**2))) == pytest.approx(-80.0, abs=0.3)
    with pytest.raises(CaptureError, match="clip, dropout, silence"):
        apply_rig(x, RigImpairments(fault="fire"), FS)
    with pytest.raises(CaptureError, match="latency"):
        apply_rig(x, RigImpairments(latency_samples=-1.0), FS)


def test_random_impairments_are_realistic_and_repeatable():
    rigs = [random_impairments(seed) for seed in range(200)]
    assert rigs[7] == random_impairments(7)
    assert all(50 <= r.latency_samples <= 400 and r.latency_samples != int(r.latency_samples) for r in rigs)
    assert all(-6 <= r.gain_db <= 3 and -90 <= r.noise_dbfs <= -70 and 0 <= r.drift_ppm <= 30 for r in rigs)
    assert {r.polarity for r in rigs} == {1, -1}
    assert any(r.hum_dbfs is None for r in rigs) and any(r.hum_dbfs is not None for r in rigs)
    assert all(r.fault is None for r in rigs)
    x = np.random.default_rng(2).standard_normal(2000)
    assert apply_rig(x, rigs[3], FS, seed=5).tobytes() == apply_rig(x, rigs[3], FS, seed=5).tobytes()
    assert apply_rig(x, rigs[3], FS, seed=5).tobytes() != apply_rig(x, rigs[3], FS, seed=6).tobytes()
