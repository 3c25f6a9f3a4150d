"""Evaluation metrics on signals with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fxcap.errors import ModelError
from fxcap.modeling import metrics as M
from fxcap.modeling.losses import MultiResolutionSTFTLoss

SR = 48000
DB6 = 20 * math.log10(2)  # 6.0206 dB


def tone_and_noise(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return 0.3 * np.sin(2 * math.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)


def clicks_on_a_tone(smear: bool = False, tone_gain: float = 1.0):
    """A 220 Hz tone plus decaying noise bursts every 200 ms; ``smear`` spreads each burst over 20 ms
    (same energy)."""
    rng = np.random.default_rng(1)
    n = SR
    clicks = np.zeros(n)
    for start in range(4800, n, 9600):
        clicks[start : start + 48] = rng.standard_normal(48) * np.exp(-np.arange(48) / 10)
    if smear:
        window = np.hanning(960)
        spread = np.convolve(clicks, window, mode="same")
        clicks = spread * np.sqrt(np.sum(clicks**2) / np.sum(spread**2))
    tone = 0.2 * np.sin(2 * math.pi * 220 * np.arange(n) / SR)
    return tone_gain * tone + clicks, tone


def test_level_change_of_6_db():
    y = tone_and_noise()
    pred = 0.5 * y
    assert M.rms_diff_db(pred, y) == pytest.approx(DB6, abs=1e-9)
    assert M.crest_factor_diff_db(pred, y) == pytest.approx(0.0, abs=1e-9)
    assert M.lufs_diff(pred, y, SR) == pytest.approx(DB6, abs=1e-6)
    assert M.esr(pred, y) == pytest.approx(0.25)
    assert M.esr_db(pred, y) == pytest.approx(-DB6, abs=1e-9)
    assert M.l1(pred, y) == pytest.approx(0.5 * np.mean(np.abs(y)))


def test_known_rms_and_crest_factor_of_a_sine():
    t = np.arange(SR) / SR
    sine = np.sin(2 * math.pi * 100 * t)
    assert M.rms_db(sine) == pytest.approx(-10 * math.log10(2), abs=1e-6)  # -3.01 dBFS
    assert M.crest_factor_db(sine) == pytest.approx(10 * math.log10(2), abs=1e-6)  # sqrt(2) -> 3.01 dB
    square = np.sign(sine + 1e-12)
    assert M.crest_factor_diff_db(sine, square) == pytest.approx(10 * math.log10(2), abs=1e-6)


def test_known_esr():
    y = np.array([1.0, 2.0, -2.0, 1.0])  # target energy 10
    pred = np.array([1.0, 1.0, -2.0, 0.0])  # error energy 2, prediction energy 6: the denominators differ
    assert M.esr(pred, y) == pytest.approx(0.2)
    assert M.esr(y, pred) == pytest.approx(2 / 6)  # not symmetric: the target's energy divides
    assert M.esr_db(pred, y) == pytest.approx(10 * math.log10(0.2))
    assert M.esr_db(y, y) == -120.0
    assert M.esr(torch.tensor(pred)[None], torch.tensor(y)[:, None]) == pytest.approx(0.2)  # (1, T) and (T, 1)


def test_esr_of_a_silent_target_is_finite():
    silent = np.zeros(64)
    pred = np.full(64, 1e-3)
    with np.errstate(all="raise"):  # no division by zero, no NaN
        assert M.esr(silent, silent) == 0.0
        assert M.esr(pred, silent) == pytest.approx(64e-6 / 1e-12)
        assert M.esr_db(silent, silent) == -120.0
    assert M.score_all(pred, silent, SR)["esr"] == pytest.approx(64e-6 / 1e-12)


def test_lufs_matches_pyloudnorm_and_handles_short_and_silent_signals():
    import pyloudnorm

    y = tone_and_noise(1.0)
    assert M.lufs(y, SR) == pytest.approx(pyloudnorm.Meter(SR).integrated_loudness(y))
    short = y[:4000]  # 83 ms, shorter than one 400 ms block: measured as one block
    assert np.isfinite(M.lufs(short, SR))
    assert M.lufs_diff(0.5 * short, short, SR) == pytest.approx(DB6, abs=1e-6)
    assert M.lufs(y[:19199], SR) == pytest.approx(M.lufs(y[:19200], SR), abs=0.05)  # no jump at 0.4 s
    assert M.lufs(np.zeros(SR), SR) == M.LUFS_FLOOR
    assert M.lufs_diff(np.zeros(100), np.zeros(100), SR) == 0.0


def test_silence_gives_finite_levels():
    assert M.rms_db(np.zeros(10)) == -200.0 and M.crest_factor_db(np.zeros(10)) == 0.0


def test_mrstft_metric_values():
    y = tone_and_noise(0.5)
    assert M.mrstft(y, y) == pytest.approx(0.0, abs=1e-9)
    assert M.mrstft(0.5 * y, y) == pytest.approx(0.5 + math.log(2), rel=1e-4)
    assert M.stft_2048(0.5 * y, y) == pytest.approx(0.5 + math.log(2), rel=1e-4)
    assert math.isnan(M.stft_2048(y[:1000], y[:1000]))


def test_mrstft_in_float32_equals_the_float64_loss():
    y = tone_and_noise(0.5)
    pred = 0.8 * y + 0.05 * np.random.default_rng(3).standard_normal(y.size)
    with torch.no_grad():
        reference = float(MultiResolutionSTFTLoss()(torch.from_numpy(pred)[None], torch.from_numpy(y)[None]))
    assert M.mrstft(pred, y) == pytest.approx(reference, rel=1e-4)
    assert M.mrstft(pred, y) != pytest.approx(M.mrstft(0.5 * pred, y), rel=1e-2)  # it is still the distance


def test_transient_error():
    y, _ = clicks_on_a_tone()
    smeared, _ = clicks_on_a_tone(smear=True)
    assert M.transient_error(y, y, SR) == 0.0
    # a tone-level error with the same error energy as the smeared clicks
    error_energy = np.sum((smeared - y) ** 2)
    _, tone = clicks_on_a_tone()
    louder_tone, _ = clicks_on_a_tone(tone_gain=1 + math.sqrt(error_energy / np.sum(tone**2)))
    assert M.esr(louder_tone, y) == pytest.approx(M.esr(smeared, y))
    smeared_error = M.transient_error(smeared, y, SR)
    tone_error = M.transient_error(louder_tone, y, SR)
    assert smeared_error > 0.5
    assert smeared_error > 10 * tone_error  # it measures attacks, not steady tones


def test_percussive_part_separates_clicks_from_a_tone():
    y, tone = clicks_on_a_tone()
    clicks = y - tone
    part = M.percussive_part(y, SR)
    assert part.shape == y.shape
    assert np.sum((part - clicks) ** 2) < 0.1 * np.sum(clicks**2)  # mostly the clicks...
    assert np.sum(M.percussive_part(tone, SR) ** 2) < 0.005 * np.sum(tone**2)  # ...and hardly any tone


def test_score_all_has_every_metric_and_accepts_tensors():
    y = tone_and_noise(0.25)
    scores = M.score_all(torch.from_numpy(0.5 * y).float(), y.astype(np.float32), SR)
    assert set(scores) == {
        "l1", "esr", "esr_db", "mrstft", "stft_2048", "lufs_diff", "crest_factor_diff_db", "rms_diff_db", "transient",
        "correlation",
    }
    assert scores["rms_diff_db"] == pytest.approx(DB6, abs=1e-5)
    assert all(isinstance(v, float) for v in scores.values())
    same = M.score_all(y, y, SR)
    assert all(same[k] == 0.0 for k in ("l1", "esr", "lufs_diff", "crest_factor_diff_db", "rms_diff_db", "transient"))


def test_correlation_sees_polarity_and_ignores_level():
    y = tone_and_noise(0.25)
    assert M.correlation(0.5 * y, y) == pytest.approx(1.0)
    assert M.correlation(-2.0 * y, y) == pytest.approx(-1.0)
    assert M.correlation(np.zeros_like(y), y) == 0.0
    noise = np.random.default_rng(3).standard_normal(len(y))
    assert abs(M.correlation(noise, y)) < 0.05


def test_inverted_settings_are_named():
    import pandas as pd

    from fxcap.modeling.evaluate import inverted_settings

    frame = pd.DataFrame([
        {"split": "test", "knob_drive": 2.5, "knob_mode": "compress", "correlation": 0.9},
        {"split": "holdout", "knob_drive": 7.5, "knob_mode": "limit", "correlation": -0.7},
    ])
    (line,) = inverted_settings(frame)
    assert line.startswith("holdout drive=7.5, mode=limit: the output is inverted (correlation -0.70)")


def test_bad_inputs():
    with pytest.raises(ModelError, match="lengths differ"):
        M.l1(np.zeros(10), np.zeros(11))
    with pytest.raises(ModelError, match="mono"):
        M.l1(np.zeros((2, 10)), np.zeros((2, 10)))
    with pytest.raises(ModelError, match="NaN"):
        M.esr(np.full(4, np.nan), np.zeros(4))
    with pytest.raises(ModelError, match="at least 32 samples"):
        M.score_all(np.zeros(10), np.zeros(10), SR)


@pytest.mark.parametrize(
    "value, words",
    [(0.0, "great"), (0.0099, "great"), (0.01, "not bad"), (0.0349, "not bad"), (0.035, "might sound OK"),
     (0.0999, "might sound OK"), (0.1, "probably will not sound great"), (0.2999, "probably will not sound great"),
     (0.3, "poor"), (3.0, "poor"), (float("nan"), "n/a")],
)
def test_esr_grade_bands(value, words):
    assert M.esr_grade(value) == words


@pytest.mark.parametrize("kernel", [17, 4, 1, 40])
def test_running_median_equals_scipys_median_filter(kernel):
    from scipy.ndimage import median_filter

    x = np.abs(np.random.default_rng(kernel).standard_normal((37, 30)))
    x[5, 3:20] = 0.5  # ties
    x[6:30, 7] = 0.25
    x[8, :] = np.inf
    x[9, ::2] = 0.0
    for axis, size in ((1, (1, kernel)), (0, (kernel, 1))):  # a kernel of 40 is longer than either axis
        np.testing.assert_array_equal(M.running_median(x, kernel, axis), median_filter(x, size=size, mode="reflect"))
    with pytest.raises(ModelError, match="NaN"):
        M.running_median(np.full((2, 3), np.nan), kernel, 0)


    M.score_all(np.zeros(32), np.ones(32), SR)  # 32 is enough
    with pytest.raises(ModelError, match="^target contains NaN"):
        M.esr(np.zeros(4), np.array([0.0, np.inf, 0.0, 0.0]))
    with pytest.raises(ModelError, match="^prediction must be a mono signal"):
        M.esr(np.zeros((2, 4)), np.zeros(8))
    with pytest.raises(ModelError, match="^target must be a mono signal"):
        M.esr(np.zeros(8), np.zeros((2, 4)))
    with pytest.raises(ModelError, match="^cannot score empty signals$"):
        M.l1(np.zeros(0), np.zeros(0))
    assert M.l1(np.zeros(1), np.ones(1)) == 1.0  # one sample is a signal
    with pytest.raises(ModelError, match="^cannot measure the loudness of an empty signal$"):
        M.lufs(np.zeros(0), SR)
    assert M.lufs(np.zeros(1), SR) == M.LUFS_FLOOR


def test_inputs_become_float64_mono_arrays():
    x = torch.linspace(-1, 1, 8, requires_grad=True)  # a tensor still attached to autograd
    assert M.as_mono(x[None]).dtype == np.float64 and M.as_mono(x[:, None]).shape == (8,)
    tiny = np.float32(1e-30) * np.ones(4, dtype=np.float32)  # its square underflows in float32
    assert M.esr(np.zeros(4, dtype=np.float32), tiny) == pytest.approx(4e-60 / (4e-60 + 1e-12), rel=1e-6, abs=0)
    assert M.correlation(1e-3 * np.arange(5.0), 1e-3 * np.arange(5.0)) == pytest.approx(1.0)  # small signals too


def test_transient_fft_size_follows_the_rate_and_fits_the_signal():
    assert M.transient_fft_size(48000, 10**6) == 1024 and M.transient_fft_size(44100, 10**6) == 1024
    assert M.transient_fft_size(96000, 10**6) == 2048 and M.transient_fft_size(8000, 10**6) == 128
    assert M.transient_fft_size(1000, 10**6) == 64  # never below 64...
    assert M.transient_fft_size(48000, 1000) == 512 and M.transient_fft_size(48000, 1024) == 1024  # ...or above the length
    assert M.transient_fft_size(48000, 40) == 32 and M.transient_fft_size(48000, 2) == 2


def test_stft_2048_is_the_single_2048_resolution():
    y = tone_and_noise(0.25)
    pred = 0.7 * y + 0.01 * np.random.default_rng(5).standard_normal(y.size)
    assert M.stft_2048(pred, y) == pytest.approx(M.mrstft(pred, y, (2048,)))
    assert M.stft_2048(pred, y) != pytest.approx(M.mrstft(pred, y), rel=1e-3)
    assert np.isfinite(M.stft_2048(pred[:2048], y[:2048])) and math.isnan(M.stft_2048(pred[:2047], y[:2047]))
