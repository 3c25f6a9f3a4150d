"""Linear prediction for the capture checks: :func:`lpc_residual` makes clicks, splices and dropouts
stand out as spikes of the prediction error.

The signal maths shared with other stages (levels, ESR, band-limited interpolation) live in
:mod:`fxcap.dsp`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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
    # block b's samples are predicted with block b's coefficients from the ``order`` samples before
    # them (zeros before the start): ``padded`` holds those histories, one (blocks, block) view per lag
    residual = padded[order:].reshape(blocks, block).copy()
    for j in range(1, order + 1):
        residual -= coeffs[:, j - 1 : j] * padded[order - j : order - j + blocks * block].reshape(blocks, block)
    return residual.reshape(-1)[:n]
