"""Synthesis of test material used by more than one stage: the Karplus-Strong plucked string.

:func:`karplus_strong` is the string of the capture signal's instruments
(:mod:`fxcap.capture.signal.instruments`) and of the export self-test
(:func:`fxcap.modeling.export.common.plucked_guitar`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fxcap.numba_cache import cache_sources


@njit(cache=cache_sources(__file__))
def karplus_strong(excitation: np.ndarray, n: int, delay: float, loop_gain: float) -> np.ndarray:  # pragma: no cover - jitted
    """Karplus-Strong string: ``y[i] = e[i] + g * (y(i - d) + y(i - d - 1)) / 2`` (linear interpolation).

    ``excitation`` is the pick (its first samples; zeros after), ``n`` the output length, ``delay`` the
    loop delay in samples (fractional allowed; the pitch is ``sample_rate / (delay + 0.5)``) and
    ``loop_gain`` the gain per round trip (< 1: the string decays). No feedback is applied before
    ``i - delay`` reaches 1. Float64 out."""
    out = np.zeros(n)
    ne = excitation.shape[0]
    for i in range(n):
        value = excitation[i] if i < ne else 0.0
        t = i - delay
        if t >= 1.0:
            j = int(t)
            f = t - j
            d0 = out[j] + f * (out[j + 1] - out[j])
            d1 = out[j - 1] + f * (out[j] - out[j - 1])
            value += loop_gain * 0.5 * (d0 + d1)
        out[i] = value
    return out
