"""Running median along one axis of a 2-D array (the median filters of the transient metric).

Each row keeps its current window sorted: one step removes the sample leaving the window and
inserts the one entering it, ``O(kernel)`` work per output, in a numba kernel. For the transient
metric's 17-long windows this is about four times faster than selecting every window's median with
``np.partition`` (which copies all windows first), and equal to ``scipy.ndimage.median_filter``
element for element: the output is an element of the window, the one of rank ``kernel // 2``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fxcap.errors import ModelError
from fxcap.numba_cache import cache_sources


@njit(cache=cache_sources(__file__), nogil=True)
def _sliding_median_rows(padded: np.ndarray, kernel: int, out: np.ndarray) -> None:  # pragma: no cover - jitted
    """``out[r, i]`` = the element of rank ``kernel // 2`` of ``padded[r, i : i + kernel]`` (no NaN)."""
    rows, n = out.shape
    half = kernel // 2
    window = np.empty(kernel)
    for r in range(rows):
        line = padded[r]
        for j in range(kernel):
            window[j] = line[j]
        window.sort()
        out[r, 0] = window[half]
        for i in range(1, n):
            old = line[i - 1]
            new = line[i - 1 + kernel]
            p = 0
            while window[p] != old:  # old is in the window: found before the end
                p += 1
            if new > old:  # shift the larger neighbours down over old's slot, then place new
                while p + 1 < kernel and window[p + 1] < new:
                    window[p] = window[p + 1]
                    p += 1
            else:
                while p > 0 and window[p - 1] > new:
                    window[p] = window[p - 1]
                    p -= 1
            window[p] = new
            out[r, i] = window[half]


def running_median(x: np.ndarray, kernel: int, axis: int) -> np.ndarray:
    """Median of ``kernel`` neighbours along ``axis`` of a 2-D float array, edges mirrored (``d c b a | a b c d``).

    Equal, element for element, to ``scipy.ndimage.median_filter`` with a ``kernel``-long footprint
    along ``axis`` and ``mode="reflect"`` (the element of rank ``kernel // 2``). Returns a new float64
    array of ``x``'s shape; NaN has no rank, so an input with NaN raises :class:`ModelError`.
    """
    values = np.asarray(x, dtype=np.float64)
    if values.ndim != 2 or axis not in (0, 1) or kernel < 1:
        raise ModelError(f"running_median takes a 2-D array, axis 0 or 1 and kernel >= 1 (got {values.ndim}-D, {axis}, {kernel})")
    if np.isnan(values).any():
        raise ModelError("running_median: the input contains NaN")
    lines = values if axis == 1 else values.T
    padded = np.ascontiguousarray(np.pad(lines, [(0, 0), (kernel // 2, kernel - 1 - kernel // 2)], mode="symmetric"))
    out = np.empty(lines.shape)
    if out.size:
        _sliding_median_rows(padded, kernel, out)
    return out if axis == 1 else np.ascontiguousarray(out.T)
