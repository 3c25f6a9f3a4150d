"""Band-limited interpolation of a sampled signal at arbitrary (fractional) positions.

A Kaiser-windowed sinc kernel: :func:`fractional_shift` (a constant fractional delay) and
:func:`warp_linear` (positions on a line with any slope, used to resample away clock drift). The
aligner (:mod:`fxcap.capture.align`) undoes a recording's latency and drift with them.

Positions are in samples of the input array; ``y[m] = x(position[m])`` where ``x(t)`` is the
band-limited continuation of the samples (zero outside the array).

The virtual devices (:mod:`fxcap.capture.virtual.dsp`) simulate latency and drift with their own
interpolator on purpose: the alignment tests recover the delays the virtual rig applied, and a bug
shared by both sides would cancel out there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from scipy.signal import oaconvolve

from fxcap.numba_cache import cache_sources

HALF_TAPS = 32
"""Half length of the interpolation kernel (samples); the kernel spans ``2 * HALF_TAPS`` samples."""

KAISER_BETA = 9.0
"""Kaiser window shape: about -90 dB side lobes; flat passband up to about 0.45 x sample rate."""

TABLE_PHASES = 1024
"""Kernel table resolution (phases per sample); linear interpolation between phases."""


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


@njit(cache=cache_sources(__file__), nogil=True)
def _warp_kernel(padded: np.ndarray, table: np.ndarray, start: float, step: float, pad: int, out: np.ndarray) -> None:  # pragma: no cover - jitted
    """``out[m] = padded(pad + start + m * step)`` through the kernel ``table`` (zero where the taps leave ``padded``)."""
    phases = table.shape[0] - 1
    taps = table.shape[1]
    half = taps // 2
    for m in range(out.shape[0]):
        pos = start + m * step
        base = np.floor(pos)
        frac = (pos - base) * phases
        phase = min(int(frac), phases - 1)
        alpha = frac - phase
        first = int(base) + 1 - half + pad  # index into ``padded`` of the first tap
        if first < 0 or first + taps > padded.shape[0]:
            out[m] = 0.0
            continue
        acc = 0.0
        for k in range(taps):
            acc += (table[phase, k] * (1.0 - alpha) + table[phase + 1, k] * alpha) * padded[first + k]
        out[m] = acc


def warp_linear(x: np.ndarray, start: float, step: float, length: int) -> np.ndarray:
    """``y[m] = x(start + m * step)`` for ``m = 0 .. length-1`` (band-limited; zero outside ``x``).

    ``step`` slightly different from 1 resamples by the ratio ``1 / step`` (clock-drift removal);
    ``step == 1`` is :func:`fractional_shift`. Float64 out. Cost ``O(length * 2 * HALF_TAPS)``, in a
    numba kernel: each output interpolates the kernel table between its two nearest phases
    (``TABLE_PHASES`` per sample) and sums ``2 * HALF_TAPS`` taps.
    """
    if step == 1.0:
        return fractional_shift(x, start, length)
    if step <= 0:
        raise ValueError(f"warp_linear: step must be positive, got {step}")
    x = np.asarray(x, dtype=np.float64)
    table = _kernel_table()
    pad = table.shape[1] + 2
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    out = np.zeros(max(int(length), 0))
    _warp_kernel(padded, table, float(start), float(step), pad, out)
    return out
