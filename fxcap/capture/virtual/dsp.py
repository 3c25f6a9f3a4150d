"""Small DSP building blocks shared by the virtual devices and the rig model.

* First-order filters from analog prototypes by the bilinear transform (prewarped), as
  ``(b0, b1, a1)`` for ``y[n] = b0 x[n] + b1 x[n-1] - a1 y[n-1]``, and a jitted step function that
  keeps its state in a caller-owned array (so streams can be processed block by block).
* Band-limited interpolation: Kaiser-windowed sinc, used for exact fractional delays and for
  resampling a recording's time axis (clock drift). Kept apart from the aligner's interpolator
  (:mod:`fxcap.dsp.resample`) on purpose: the virtual rig applies the latency and drift that the
  aligner must then measure and undo, and the alignment tests compare the two; one shared
  interpolator would let a bug in it cancel out there.
* A streaming 2x polyphase FIR resampler pair for running a nonlinearity oversampled.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from scipy import signal as sps

from fxcap.numba_cache import cache_sources

CACHE = cache_sources(__file__)
"""``cache=`` of this folder's numba functions: on disk, keyed to all of the folder's sources (the device
kernels inline the helpers below; see :mod:`fxcap.numba_cache`); False where no folder is writable."""

SINC_HALF_WIDTH = 32
"""Taps on each side of the interpolation point (the kernel spans 64 input samples)."""

SINC_BETA = 9.0
"""Kaiser window shape: about -90 dB sidelobes; flat (error < 1e-4) to 0.45 of the sample rate."""

SINC_PHASES = 2048
"""Table resolution of the sinc kernel for time-varying interpolation (phases per sample)."""


# --------------------------------------------------------------------------------------------------
# First-order filters
# --------------------------------------------------------------------------------------------------


def bilinear1(b0: float, b1: float, a0: float, a1: float, warp_hz: float, sample_rate: float) -> np.ndarray:
    """Digitize ``H(s) = (b0 + b1 s) / (a0 + a1 s)`` (s in rad/s), matching it exactly at ``warp_hz``.

    Returns ``[b0, b1, a1]`` of ``y[n] = b0 x[n] + b1 x[n-1] - a1 y[n-1]``.
    """
    warp_hz = min(warp_hz, 0.49 * sample_rate)
    k = 2 * math.pi * warp_hz / math.tan(math.pi * warp_hz / sample_rate)
    norm = a0 + a1 * k
    return np.array([(b0 + b1 * k) / norm, (b0 - b1 * k) / norm, (a0 - a1 * k) / norm])


def lowpass1(cutoff_hz: float, sample_rate: float) -> np.ndarray:
    """First-order lowpass, -3 dB at ``cutoff_hz``: ``1 / (1 + s / wc)``."""
    wc = 2 * math.pi * cutoff_hz
    return bilinear1(1.0, 0.0, 1.0, 1.0 / wc, cutoff_hz, sample_rate)


def highpass1(cutoff_hz: float, sample_rate: float) -> np.ndarray:
    """First-order highpass, -3 dB at ``cutoff_hz``: ``(s / wc) / (1 + s / wc)``."""
    wc = 2 * math.pi * cutoff_hz
    return bilinear1(0.0, 1.0 / wc, 1.0, 1.0 / wc, cutoff_hz, sample_rate)


def high_shelf1(center_hz: float, gain_db: float, sample_rate: float) -> np.ndarray:
    """First-order high shelf: unity at DC, ``gain_db`` at high frequencies, half-way (in dB) at ``center_hz``.

    ``H(s) = (1 + s sqrt(g) / wc) / (1 + s / (wc sqrt(g)))`` with ``g = 10^(gain_db/20)``.
    """
    wc = 2 * math.pi * center_hz
    root = math.sqrt(10.0 ** (gain_db / 20.0))
    return bilinear1(1.0, root / wc, 1.0, 1.0 / (wc * root), center_hz, sample_rate)


def tilt1(center_hz: float, tilt_db: float, sample_rate: float) -> np.ndarray:
    """First-order tilt: ``-tilt_db / 2`` dB at low frequencies, ``+tilt_db / 2`` at high, 0 dB at ``center_hz``."""
    coef = high_shelf1(center_hz, tilt_db, sample_rate)
    coef[:2] *= 10.0 ** (-tilt_db / 40.0)
    return coef


@njit(cache=CACHE, fastmath=True, inline="always")
def fo_step(coefs: np.ndarray, row: int, state: np.ndarray, i: int, x: float) -> float:  # pragma: no cover - jitted
    """One sample of the first-order section ``coefs[row]`` (``[b0, b1, a1]``) whose ``(x[n-1], y[n-1])``
    live at ``state[i:i+2]``."""
    y = coefs[row, 0] * x + coefs[row, 1] * state[i] - coefs[row, 2] * state[i + 1]
    state[i] = x
    state[i + 1] = y
    return y


@njit(cache=CACHE, fastmath=True, inline="always")
def dot_at(taps: np.ndarray, history: np.ndarray, start: int) -> float:  # pragma: no cover - jitted
    """``sum(taps * history[start:start + len(taps)])``, vectorized (the slice spares index checks)."""
    segment = history[start : start + taps.shape[0]]
    acc = 0.0
    for j in range(taps.shape[0]):
        acc += taps[j] * segment[j]
    return acc


# --------------------------------------------------------------------------------------------------
# Band-limited interpolation
# --------------------------------------------------------------------------------------------------


def _kaiser_sinc(u: np.ndarray, half_width: int = SINC_HALF_WIDTH, beta: float = SINC_BETA) -> np.ndarray:
    """``sinc(u) * kaiser(u / half_width)``, zero for ``|u| >= half_width``."""
    z = np.clip(u / half_width, -1.0, 1.0)
    window = np.i0(beta * np.sqrt(1.0 - z * z)) / np.i0(beta)
    return np.where(np.abs(u) < half_width, np.sinc(u) * window, 0.0)


def fractional_delay(x: np.ndarray, delay: float, length: int | None = None) -> np.ndarray:
    """``y[k] = x(k - delay)``: ``x`` delayed by ``delay`` samples (>= 0, fractional allowed).

    The fractional part is applied with a 64-tap Kaiser-windowed sinc (exact for signals band-limited
    below 0.45 fs to about 1e-4), the integer part as a shift. Samples outside ``x`` are zero.
    ``length`` is the output length (default ``len(x) + ceil(delay)``). Returns float64.
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0 samples, not {delay}")
    x = np.asarray(x, dtype=np.float64)
    whole = int(math.floor(delay))
    frac = delay - whole
    length = len(x) + int(math.ceil(delay)) if length is None else int(length)
    out = np.zeros(length)
    if frac < 1e-12:
        shifted = x
        shift = whole
    else:
        # y[k] = sum_m x[m] h(k - whole - frac - m); taps j = k - whole - m in [-W+1, W].
        taps = np.arange(-SINC_HALF_WIDTH + 1, SINC_HALF_WIDTH + 1)
        kernel = _kaiser_sinc(taps - frac)
        shifted = _convolve_full(x, kernel)
        shift = whole - SINC_HALF_WIDTH + 1
    # shifted[i] belongs at output index i + shift.
    lo = max(shift, 0)
    hi = min(shift + len(shifted), length)
    if hi > lo:
        out[lo:hi] = shifted[lo - shift : hi - shift]
    return out


@njit(cache=CACHE, fastmath=True)
def _convolve_full(x: np.ndarray, h: np.ndarray) -> np.ndarray:  # pragma: no cover - jitted
    """Direct-form full convolution (``np.convolve(x, h)``) for a short ``h``; faster than FFT here."""
    n, m = x.shape[0], h.shape[0]
    padded = np.zeros(n + 2 * (m - 1))
    padded[m - 1 : m - 1 + n] = x
    reversed_h = h[::-1].copy()
    out = np.empty(n + m - 1)
    for i in range(n + m - 1):
        out[i] = dot_at(reversed_h, padded, i)
    return out


@functools.lru_cache(maxsize=1)
def sinc_table() -> tuple[np.ndarray, np.ndarray]:
    """The tabulated kernel for time-varying interpolation and its differences between phases.

    ``table[p, j] = kernel(p / P + W - 1 - j)`` for ``p = 0..P`` phases and ``j = 0..2W-1`` taps;
    ``diff[p] = table[p + 1] - table[p]``.
    """
    p = np.arange(SINC_PHASES + 1)[:, None] / SINC_PHASES
    j = np.arange(2 * SINC_HALF_WIDTH)[None, :]
    table = _kaiser_sinc(p + SINC_HALF_WIDTH - 1 - j)
    return table, np.ascontiguousarray(np.diff(table, axis=0))


@njit(cache=CACHE, fastmath=True)
def _interpolate_linear_time(
    x: np.ndarray, start: float, step: float, n_out: int, table: np.ndarray, table_diff: np.ndarray
) -> np.ndarray:  # pragma: no cover - jitted
    phases = table.shape[0] - 1
    taps = table.shape[1]
    half = taps // 2
    n_in = x.shape[0]
    padded = np.zeros(n_in + 2 * taps)  # taps zeros each side: every window is a plain slice
    padded[taps : taps + n_in] = x
    out = np.zeros(n_out)
    for k in range(n_out):
        t = start + k * step
        n0 = math.floor(t)
        first = int(n0) - half + 1 + taps  # index into padded
        if first < 0 or first + taps > padded.shape[0]:
            continue  # the whole window lies outside x: zero
        pos = (t - n0) * phases
        p = int(pos)
        if p >= phases:
            p = phases - 1
        w = pos - p
        out[k] = dot_at(table[p], padded, first) + w * dot_at(table_diff[p], padded, first)
    return out


def resample_time_axis(x: np.ndarray, start: float, step: float, n_out: int) -> np.ndarray:
    """Evaluate the band-limited ``x`` at times ``start + k * step`` (samples of ``x``), ``k < n_out``.

    ``step = 1 / (1 + ppm * 1e-6)`` reads ``x`` with a clock running ``ppm`` faster; ``start = -d``
    delays it by ``d`` samples. Uses the tabulated Kaiser-windowed sinc (:func:`sinc_table`, linear
    interpolation between its phases). Returns float64.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    table, diff = sinc_table()
    return _interpolate_linear_time(x, float(start), float(step), int(n_out), table, diff)


# --------------------------------------------------------------------------------------------------
# 2x oversampling
# --------------------------------------------------------------------------------------------------

OVERSAMPLE_TAPS = 48
"""Length of the 2x anti-imaging / anti-aliasing FIR (at the doubled rate)."""


def halfband_minphase() -> np.ndarray:
    """A minimum-phase lowpass for 2x resampling: passband to 0.42 fs, stopband from 0.58 fs
    (of the base rate), gain 1 at DC. Minimum phase keeps its delay to about 2 base-rate samples.
    """
    linear = sps.firwin(2 * OVERSAMPLE_TAPS - 1, 0.5, window=("kaiser", 8.0))
    h = sps.minimum_phase(linear, method="homomorphic", n_fft=1 << 14, half=False)
    return h / h.sum()
