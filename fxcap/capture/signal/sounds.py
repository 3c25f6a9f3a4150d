"""Building blocks of the capture signal (float64, peak-normalized; levels applied by the caller):
tones, sine sweeps, white and pink noise, fades."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal as sps

from fxcap.capture.signal.config import FADE_SECONDS, SWEEP_F1, sweep_stop_hz
from fxcap.dsp.levels import db_to_amp as db_to_gain  # linear amplitude of a level in dB (the name the signal code uses)


def _samples(seconds: float, sample_rate: int) -> int:
    return int(round(seconds * sample_rate))


def _fade(audio: np.ndarray, sample_rate: int, fade_in_s: float = FADE_SECONDS, fade_out_s: float = FADE_SECONDS) -> np.ndarray:
    """Apply raised-cosine fades in place and return ``audio``."""
    for seconds, end in ((fade_in_s, False), (fade_out_s, True)):
        n = min(_samples(seconds, sample_rate), len(audio) // 2)
        if n <= 0:
            continue
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
        if end:
            audio[-n:] *= ramp[::-1]
        else:
            audio[:n] *= ramp
    return audio


def _normalize(audio: np.ndarray, peak: float = 1.0) -> np.ndarray:
    top = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if top == 0.0:
        return audio
    return audio * (peak / top)


def sine_tone(sample_rate: int, freq_hz: float, seconds: float, level_db: float = 0.0) -> np.ndarray:
    """A steady sine, peak ``level_db`` re 1.0, with :data:`FADE_SECONDS` fades (float64)."""
    t = np.arange(_samples(seconds, sample_rate)) / sample_rate
    return _fade(db_to_gain(level_db) * np.sin(2 * np.pi * freq_hz * t), sample_rate)


def log_sweep(sample_rate: int, seconds: float, f1: float = SWEEP_F1, f2: float | None = None, level_db: float = 0.0) -> np.ndarray:
    """Exponential (Farina) sine sweep from ``f1`` to ``f2`` Hz over ``seconds``, peak ``level_db``.

    Phase ``2 pi f1 L (exp(t / L) - 1)`` with ``L = seconds / ln(f2 / f1)``; 50 ms fade-in and 10 ms
    fade-out. ``f2`` defaults to :func:`sweep_stop_hz`.
    """
    f2 = sweep_stop_hz(sample_rate) if f2 is None else f2
    n = _samples(seconds, sample_rate)
    t = np.arange(n) / sample_rate
    rate = seconds / math.log(f2 / f1)
    sweep = np.sin(2 * np.pi * f1 * rate * np.expm1(t / rate))
    return db_to_gain(level_db) * _fade(sweep, sample_rate, 0.05, 0.01)


_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, unit RMS, ``n`` samples (float64)."""
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f, -3 dB/octave) noise, unit RMS, ``n`` samples (float64).

    White noise through a 3-pole/3-zero 1/f approximation (within 0.05 dB over 9 Hz..0.2 fs); the
    filter's start-up transient is discarded.
    """
    warmup = 4096
    noise = sps.lfilter(_PINK_B, _PINK_A, rng.standard_normal(n + warmup))[warmup:]
    rms = float(np.sqrt(np.mean(noise**2))) if n else 1.0
    return noise / rms if rms > 0 else noise


def noise_burst(sample_rate: int, seconds: float, color: str, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """A white or pink noise burst with peak ``level_db`` re 1.0 and :data:`FADE_SECONDS` fades."""
    n = _samples(seconds, sample_rate)
    make = {"white": white_noise, "pink": pink_noise}[color]
    return _fade(_normalize(make(n, rng), db_to_gain(level_db)), sample_rate)
