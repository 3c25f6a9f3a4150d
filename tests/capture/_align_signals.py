"""Test helpers for alignment and checks: a small capture signal and a simulated rig.

The signal mimics the real capture signal's layout (sync markers, calibration tone, silence, two
identical validation segments, program) at 48 kHz, about 7.7 s long. The rig impairments are
injected with methods independent of ``fxcap.dsp.resample``: clock drift by Fourier resampling
(``scipy.signal.resample``) and the fractional latency by an exact FFT phase shift, both on a
zero-padded signal.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter, resample

from fxcap.capture.backends.base import RawTake
from fxcap.capture.layout import Region, SignalLayout, TestSignal, audio_sha256
from fxcap.capture.markers import sync_marker

FS = 48000


def _fade(x: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    n = int(seconds * FS)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    x = x.copy()
    x[:n] *= ramp
    x[-n:] *= ramp[::-1]
    return x


def _lowpass_noise(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    a = np.exp(-2 * np.pi * cutoff_hz / FS)
    y = lfilter([1 - a], [1, -a], rng.standard_normal(n))
    return y / np.max(np.abs(y))


def _pluck(freq: float, seconds: float, decay_s: float) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    tone = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 6) if freq * h < 0.4 * FS)
    env = np.exp(-t / decay_s) * np.minimum(1.0, t / 0.002)
    return tone * env / 2.3


def _validation(rng: np.random.Generator) -> np.ndarray:
    n = FS
    x = 0.3 * _lowpass_noise(rng, n, 3000.0)
    x[: n // 2] += 0.3 * _pluck(196.0, 0.5, 0.2)
    x[n // 2 :] += 0.3 * _pluck(330.0, 0.5, 0.15)
    return _fade(x)


def _program(rng: np.random.Generator) -> np.ndarray:
    parts = []
    for level, f in [(0.1, 110.0), (0.3, 220.0), (0.5, 147.0)]:  # plucks at three levels
        parts.append(level * _pluck(f, 0.5, 0.25))
    for level in (0.05, 0.2, 0.45):  # noise bursts at three levels
        parts.append(_fade(level * _lowpass_noise(rng, FS // 2, 6000.0), 0.003))
    burst = np.zeros(FS // 2)  # drum-like hits
    for k in range(4):
        hit = _lowpass_noise(rng, 2400, 8000.0) * np.exp(-np.arange(2400) / 300.0)
        burst[k * 6000 : k * 6000 + 2400] += 0.4 * hit
    parts.append(burst)
    parts.append(0.3 * _pluck(82.4, 0.5, 0.4) + 0.2 * _pluck(123.5, 0.5, 0.3))  # bass + fifth
    return np.concatenate(parts)


@lru_cache(maxsize=1)
def make_signal() -> TestSignal:
    """The test capture signal (float32) and its layout; deterministic."""
    rng = np.random.default_rng(1234)
    marker = 0.5 * sync_marker(FS).astype(np.float64)
    t = np.arange(FS // 2) / FS
    tone = _fade(0.25 * np.sin(2 * np.pi * 1000.0 * t))
    validation = _validation(rng)
    pieces = [
        ("lead", "gap", np.zeros(int(0.05 * FS))),
        ("sync_start", "sync_start", marker),
        ("gap1", "gap", np.zeros(int(0.2 * FS))),
        ("calibration", "calibration", tone),
        ("gap2", "gap", np.zeros(int(0.1 * FS))),
        ("silence", "silence", np.zeros(FS // 2)),
        ("gap3", "gap", np.zeros(int(0.1 * FS))),
        ("validation_a", "validation", validation),
        ("gap4", "gap", np.zeros(int(0.2 * FS))),
        ("program", "program", _program(rng)),
        ("gap5", "gap", np.zeros(int(0.2 * FS))),
        ("validation_b", "validation", validation),
        ("gap6", "gap", np.zeros(int(0.2 * FS))),
        ("sync_end", "sync_end", marker),
        ("tail", "gap", np.zeros(int(0.1 * FS))),
    ]
    regions, pos = [], 0
    for name, kind, audio in pieces:
        regions.append(Region(name, kind, pos, pos + len(audio)))
        pos += len(audio)
    audio = np.concatenate([p[2] for p in pieces]).astype(np.float32)
    layout = SignalLayout(
        version="test-1", sample_rate=FS, length=len(audio), peak_dbfs=-6.0, preset="test", regions=regions
    )
    layout.sha256 = audio_sha256(audio)
    return TestSignal(audio=audio, layout=layout)


def soft_clip_device(x: np.ndarray, drive: float = 2.0, cutoff_hz: float = 5000.0) -> np.ndarray:
    """A non-trivial device: tanh soft clipper followed by a one-pole low-pass (has phase shift)."""
    a = np.exp(-2 * np.pi * cutoff_hz / FS)
    return lfilter([1 - a], [1, -a], np.tanh(drive * np.asarray(x, dtype=np.float64)))


def _adc_response(n: int) -> np.ndarray:
    """The interface's anti-alias filter on the rfft bins of an ``n``-point FFT: flat to 0.42 fs,
    raised-cosine roll-off to zero at 0.45 fs (a real converter passes nothing near Nyquist)."""
    f = np.arange(n // 2 + 1) / n
    ramp = np.clip((f - 0.42) / 0.03, 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * ramp)


def adc(x: np.ndarray) -> np.ndarray:
    """``x`` through the simulated interface's anti-alias filter (zero phase)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x) + 4096
    return np.fft.irfft(np.fft.rfft(x, n) * _adc_response(n), n)[: len(x)]


def _delay_fft(x: np.ndarray, delay: float) -> np.ndarray:
    """Anti-alias filter plus an exact band-limited delay by ``delay`` samples (circular; callers zero-pad)."""
    n = len(x)
    k = np.arange(n // 2 + 1)
    spec = np.fft.rfft(x) * _adc_response(n)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * k * delay / n), n)


def rig(
    x: np.ndarray,
    *,
    latency: float,
    gain_db: float = 0.0,
    polarity: int = 1,
    drift_ppm: float = 0.0,
    noise_dbfs: float | None = -70.0,
    tail_s: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """What the interface records of ``x``: ``rec(r) = g * p * adc(x)((r - latency) / (1 + drift)) + noise``."""
    x = np.asarray(x, dtype=np.float64)
    out_len = len(x) + int(np.ceil(latency)) + int(tail_s * FS)
    if drift_ppm:
        ratio = Fraction(1.0 + drift_ppm * 1e-6).limit_denominator(10**6)
        q = ratio.denominator
        n = q * int(np.ceil((out_len + 4096) / q))
        padded = np.zeros(n)
        padded[: len(x)] = x
        stretched = resample(padded, n * ratio.numerator // q)
    else:
        stretched = np.concatenate([x, np.zeros(out_len - len(x) + 4096)])
    y = _delay_fft(stretched, latency)[:out_len]
    y *= polarity * 10 ** (gain_db / 20)
    if noise_dbfs is not None:
        y += 10 ** (noise_dbfs / 20) * np.random.default_rng(seed).standard_normal(out_len)
    return y


@lru_cache(maxsize=32)
def _recorded(device, latency: float, gain_db: float, polarity: int, drift_ppm: float, noise_dbfs: float | None,
              seed: int) -> np.ndarray:
    x = make_signal().audio.astype(np.float64)
    y = device(x) if device is not None else x
    out = rig(y, latency=latency, gain_db=gain_db, polarity=polarity, drift_ppm=drift_ppm, noise_dbfs=noise_dbfs,
              seed=seed).astype(np.float32)
    out.setflags(write=False)
    return out


def make_take(
    device=None,
    *,
    latency: float = 123.37,
    gain_db: float = -4.3,
    polarity: int = 1,
    drift_ppm: float = 0.0,
    noise_dbfs: float | None = -70.0,
    seed: int = 0,
    events: list[str] | None = None,
) -> RawTake:
    """A raw take of the test signal through ``device`` (None: bypass) and the simulated rig.

    Returns fresh arrays (tests may edit them); the simulation itself is cached.
    """
    signal = make_signal()
    recorded = _recorded(device, latency, gain_db, polarity, drift_ppm, noise_dbfs, seed)
    return RawTake(played=signal.audio.copy(), recorded=recorded.copy(), sample_rate=FS, events=list(events or []))
