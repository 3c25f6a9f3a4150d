"""Small signal-processing helpers shared by alignment and checks.

* Band-limited interpolation of a sampled signal at arbitrary (fractional) positions with a
  Kaiser-windowed sinc kernel: :func:`fractional_shift` (a constant fractional delay) and
  :func:`warp_linear` (positions on a line with any slope, used to resample away clock drift).
* Level conversions (:func:`amp_to_db`, :func:`db_to_amp`, :func:`rms`, :func:`rms_dbfs`) and the
  error-to-signal ratio :func:`esr` used by the repeatability checks (same definition as the
  modeling metrics: ``sum((estimate - target)**2) / sum(target**2)``).

Positions are in samples of the input array; ``y[m] = x(position[m])`` where ``x(t)`` is the
band-limited continuation of the samples (zero outside the array).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import oaconvolve

HALF_TAPS = 32
"""Half length of the interpolation kernel (samples); the kernel spans ``2 * HALF_TAPS`` samples."""

KAISER_BETA = 9.0
"""Kaiser window shape: about -90 dB side lobes; flat passband up to about 0.45 x sample rate."""

TABLE_PHASES = 1024
"""Kernel table resolution (phases per sample); linear interpolation between phases."""

_EPS = 1e-20


# -- levels --------------------------------------------------------------------------------
def amp_to_db(amplitude: float | np.ndarray, floor_db: float = -240.0) -> float | np.ndarray:
    """``20 * log10(|amplitude|)`` in dB, never below ``floor_db`` (so silence gives a finite number)."""
    value = 20.0 * np.log10(np.maximum(np.abs(amplitude), 10.0 ** (floor_db / 20.0)))
    return float(value) if np.ndim(value) == 0 else value


def db_to_amp(db: float | np.ndarray) -> float | np.ndarray:
    """Amplitude ratio of a level in dB: ``10 ** (db / 20)``."""
    value = 10.0 ** (np.asarray(db, dtype=np.float64) / 20.0)
    return float(value) if np.ndim(value) == 0 else value


def power_to_db(power: float | np.ndarray, floor_db: float = -240.0) -> float | np.ndarray:
    """``10 * log10(power)`` in dB, never below ``floor_db``."""
    value = 10.0 * np.log10(np.maximum(power, 10.0 ** (floor_db / 10.0)))
    return float(value) if np.ndim(value) == 0 else value


def rms(x: np.ndarray) -> float:
    """Root-mean-square of ``x`` (0.0 for an empty array)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (full scale = 1.0 peak, so a full-scale sine reads -3.01 dBFS)."""
    return amp_to_db(rms(x))


def esr(target: np.ndarray, estimate: np.ndarray) -> float:
    """Error-to-signal ratio ``sum((estimate - target)**2) / sum(target**2)`` (linear; 0 is perfect)."""
    target = np.asarray(target, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if target.shape != estimate.shape:
        raise ValueError(f"esr: shapes differ {target.shape} vs {estimate.shape}")
    return float(np.sum((estimate - target) ** 2) / max(float(np.sum(target * target)), _EPS))


# -- band-limited interpolation ------------------------------------------------------------
def _kernel(t: np.ndarray, half_taps: int = HALF_TAPS, beta: float = KAISER_BETA) -> np.ndarray:
    """Kaiser-windowed sinc evaluated at offsets ``t`` (samples); zero for ``|t| >= half_taps``."""
    u = np.clip(t / half_taps, -1.0, 1.0)
    window = np.i0(beta * np.sqrt(1.0 - u * u)) / np.i0(beta)
    return np.where(np.abs(t) < half_taps, np.sinc(t) * window, 0.0)


@lru_cache(maxsize=4)
def _kernel_table(half_taps: int = HALF_TAPS, phases: int = TABLE_PHASES) -> np.ndarray:
    """Rows ``p = 0..phases``: the taps for fractional position ``p / phases``.

    Row ``p`` holds ``h(p/phases - k)`` for ``k = -half_taps + 1 .. half_taps`` (the weights of
    ``x[i + k]`` when evaluating ``x(i + p/phases)``), normalized to unit sum so DC passes exactly.
    """
    ks = np.arange(-half_taps + 1, half_taps + 1, dtype=np.float64)
    frac = np.arange(phases + 1, dtype=np.float64)[:, None] / phases
    table = _kernel(frac - ks[None, :], half_taps)
    table /= table.sum(axis=1, keepdims=True)
    table.setflags(write=False)
    return table


def _kernel_row(frac: float) -> np.ndarray:
    """Taps for one fractional position ``0 <= frac < 1`` (computed exactly, unit sum)."""
    ks = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1, dtype=np.float64)
    row = _kernel(frac - ks)
    return row / row.sum()


def fractional_shift(x: np.ndarray, shift: float, length: int | None = None) -> np.ndarray:
    """``y[n] = x(n + shift)`` for ``n = 0 .. length-1``: advance ``x`` by ``shift`` samples (any real).

    A positive ``shift`` removes a latency of ``shift`` samples. Samples read outside ``x`` are zero.
    Band-limited (windowed sinc), float64 out; ``length`` defaults to ``len(x)``.
    """
    x = np.asarray(x, dtype=np.float64)
    length = len(x) if length is None else int(length)
    if length <= 0:
        return np.zeros(0)
    base = int(np.floor(shift))
    row = _kernel_row(float(shift - base))
    # y[n] = sum_k row[k] * x[n + base + k + 1 - HALF_TAPS]: a correlation with ``row``.
    first = base + 1 - HALF_TAPS  # index into x of the first tap of y[0]
    need = length + len(row) - 1
    segment = np.zeros(need)
    lo, hi = max(first, 0), min(first + need, len(x))
    if hi > lo:
        segment[lo - first : hi - first] = x[lo:hi]
    return oaconvolve(segment, row[::-1], mode="valid")[:length]


def warp_linear(x: np.ndarray, start: float, step: float, length: int, chunk: int = 8192) -> np.ndarray:
    """``y[m] = x(start + m * step)`` for ``m = 0 .. length-1`` (band-limited; zero outside ``x``).

    ``step`` slightly different from 1 resamples by the ratio ``1 / step`` (clock-drift removal);
    ``step == 1`` is :func:`fractional_shift`. Float64 out. Cost ``O(length * 2 * HALF_TAPS)``.
    """
    if step == 1.0:
        return fractional_shift(x, start, length)
    if step <= 0:
        raise ValueError(f"warp_linear: step must be positive, got {step}")
    x = np.asarray(x, dtype=np.float64)
    length = int(length)
    table = _kernel_table()
    taps = table.shape[1]
    pad = taps + 2
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    windows = sliding_window_view(padded, taps)
    out = np.zeros(length)
    for c0 in range(0, length, chunk):
        m = np.arange(c0, min(c0 + chunk, length), dtype=np.float64)
        pos = start + m * step
        base = np.floor(pos)
        frac = (pos - base) * TABLE_PHASES
        phase = np.minimum(frac.astype(np.int64), TABLE_PHASES - 1)
        alpha = (frac - phase)[:, None]
        rows = table[phase] * (1.0 - alpha) + table[phase + 1] * alpha
        first = base.astype(np.int64) + 1 - HALF_TAPS + pad  # index into ``padded``
        inside = (first >= 0) & (first + taps <= len(padded))
        if not inside.all():
            rows[~inside] = 0.0
            first = np.where(inside, first, 0)
        out[c0 : c0 + len(m)] = np.einsum("ij,ij->i", windows[first], rows)
    return out


# -- linear prediction -------------------------------------------------------------------------
def _levinson(r: np.ndarray) -> np.ndarray:
    """Levinson-Durbin on rows of autocorrelations ``r`` (shape ``(b, order + 1)``).

    Returns predictor coefficients ``a`` (shape ``(b, order)``) with
    ``x[n] ~ sum_j a[j - 1] * x[n - j]``; rows with no energy give all-zero predictors.
    """
    rows, order = r.shape[0], r.shape[1] - 1
    a = np.zeros((rows, order))
    err = r[:, 0].copy()
    for i in range(order):
        acc = r[:, i + 1] - np.einsum("bj,bj->b", a[:, :i], r[:, i:0:-1]) if i else r[:, 1].copy()
        k = np.where(err > 0, acc / np.where(err > 0, err, 1.0), 0.0)
        k = np.clip(k, -0.9999, 0.9999)
        if i:
            a[:, :i] = a[:, :i] - k[:, None] * a[:, :i][:, ::-1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a


def lpc_residual(x: np.ndarray, order: int = 24, block: int = 2048) -> np.ndarray:
    """Prediction error of ``x`` under a per-block linear predictor (float64, same length as ``x``).

    Each block of ``block`` samples gets its own order-``order`` predictor, fitted on the
    Hann-windowed block (plus ``order`` samples of history) by the autocorrelation method. Tonal and
    smooth material is predicted almost exactly, so clicks, splices and dropouts stand out as spikes.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    blocks = -(-n // block)
    padded = np.zeros(blocks * block + order)
    padded[order : order + n] = x
    frames = sliding_window_view(padded, block + order)[::block][:blocks]
    windowed = frames * np.hanning(block + order)
    span = block + order
    r = np.stack([np.einsum("bn,bn->b", windowed[:, : span - k], windowed[:, k:]) for k in range(order + 1)], axis=1)
    r[:, 0] *= 1.0 + 1e-9  # white-noise correction keeps the recursion stable
    coeffs = _levinson(r)
    residual = x.copy()
    for j in range(1, order + 1):
        per_sample = np.repeat(coeffs[:, j - 1], block)[:n]
        residual[j:] -= per_sample[j:] * x[:-j]
    return residual
