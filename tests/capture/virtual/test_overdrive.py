import numpy as np
import pytest

from fxcap.capture.virtual import OD3Overdrive
from fxcap.capture.virtual.overdrive import CAPACITOR_F, RESISTOR_OHM, _clip, _clip_lookup, clipper_table

FS = 48000


def sine(freq=1000.0, amplitude=0.25, seconds=0.5, fs=FS):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * fs)) / fs)


def harmonics(y, f0, fs, count=8):
    """Amplitudes of the first ``count`` harmonics of ``f0`` in the second half of ``y``."""
    y = np.asarray(y[len(y) // 2 :], dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.blackman(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / fs)
    out = []
    for k in range(1, count + 1):
        i = int(np.argmin(np.abs(freqs - k * f0)))
        out.append(np.sqrt(np.sum(spectrum[i - 3 : i + 4] ** 2)))
    return np.array(out)


def thd(y, f0=1000.0, fs=FS):
    h = harmonics(y, f0, fs)
    return float(np.sqrt(np.sum(h[1:] ** 2)) / h[0])


def rms_db(y):
    return 20 * np.log10(np.sqrt(np.mean(np.asarray(y, dtype=np.float64) ** 2)))


def test_more_drive_more_distortion_and_drive_zero_is_nearly_clean():
    device = OD3Overdrive(FS)
    values = []
    for drive in (0, 2, 4, 6, 8, 10):
        device.reset()
        values.append(thd(device.process(sine(), {"drive": drive})))
    assert values[0] < 0.005
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[-1] > 0.15


def test_asymmetric_clipping_makes_even_harmonics():
    device = OD3Overdrive(FS)
    h = harmonics(device.process(sine(), {"drive": 7}), 1000.0, FS)
    assert h[1] / h[0] > 0.02  # 2nd harmonic: the diodes are not symmetric


def test_tone_turns_up_the_treble():
    noise = 0.3 * np.random.default_rng(0).standard_normal(FS)
    device = OD3Overdrive(FS)
    ratios = []
    for tone in (0, 2.5, 5, 7.5, 10):
        device.reset()
        y = device.process(noise, {"tone": tone, "drive": 3}).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / FS)
        ratios.append(spectrum[freqs > 3000].sum() / spectrum[freqs < 500].sum())
    assert all(b > a * 1.3 for a, b in zip(ratios, ratios[1:])), ratios


def test_level_is_an_output_volume():
    device = OD3Overdrive(FS)
    levels = []
    for level in (0, 5, 10):
        device.reset()
        levels.append(rms_db(device.process(sine(), {"level": level, "drive": 6})))
    assert levels[1] - levels[0] == pytest.approx(12.0, abs=0.01)
    assert levels[2] - levels[1] == pytest.approx(12.0, abs=0.01)


def test_hot_settings_stay_bounded_and_finite():
    device = OD3Overdrive(FS)
    square = np.sign(sine(amplitude=1.0)) * 1.0
    y = device.process(square, {"drive": 10, "level": 10, "tone": 10})
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) < 2.0


def test_clipper_has_memory():
    # The capacitor holds charge: the same input sample gives a different output after a loud burst.
    device = OD3Overdrive(FS)
    quiet = np.zeros(200)
    after_silence = device.process(np.concatenate([quiet, [0.3] * 5]), {"drive": 8})[-1]
    device.reset()
    after_burst = device.process(np.concatenate([np.full(200, -1.0), [0.3] * 5]), {"drive": 8})[-1]
    assert abs(after_burst - after_silence) > 1e-3


def test_clipper_table_matches_newton():
    dt_c = 1.0 / (96000 * CAPACITOR_F)
    values, slopes, w0, inv_dw = clipper_table(dt_c, 1.0 / RESISTOR_OHM)
    rng = np.random.default_rng(1)
    for scale in (0.01, 1.0, 100.0, 2000.0):  # beyond 300 V the lookup falls back to Newton
        for u, v_prev in zip(rng.uniform(-scale, scale, 200), rng.uniform(-1.2, 0.7, 200)):
            exact = _clip(u, v_prev, dt_c, 1.0 / RESISTOR_OHM)
            # 1e-7 V is -140 dB re the clipper's 1 V swing.
            assert _clip_lookup(u, v_prev, dt_c, 1.0 / RESISTOR_OHM, values, slopes, w0, inv_dw) == pytest.approx(exact, abs=1e-7)


def test_rates_sound_alike():
    # Oversampling below 88.2 kHz runs the clipper near 96 kHz at every rate: similar distortion.
    values = [thd(OD3Overdrive(rate).process(sine(fs=rate), {"drive": 5}), fs=rate) for rate in (44100, 48000, 96000)]
    assert max(values) / min(values) < 1.1, values
