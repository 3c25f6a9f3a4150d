"""The GRU/LSTM recurrences in numpy (float64), for the readers that check exported files.

Weights in the Keras layout RTNeural's JSON uses (``kernel`` ``(in, G*H)``, ``recurrent``
``(H, G*H)``), gates in Keras order: GRU ``z, r, h`` with two bias rows (``reset_after``), LSTM
``i, f, c, o`` with one bias. These are PyTorch's equations once the weights are converted (see
:mod:`fxcap.modeling.export.rtneural`); they are written here independently of PyTorch so that an
exported file is checked by arithmetic that does not share code with the model it came from.
"""

from __future__ import annotations

import numpy as np


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def gru_sequence(values: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``values`` ``(T, in)`` -> hidden states ``(T, H)`` from a zero state; ``bias`` ``(2, 3H)``::

        z = sigmoid(x W_z + b0_z + h U_z + b1_z)      r = sigmoid(x W_r + b0_r + h U_r + b1_r)
        h~ = tanh(x W_h + b0_h + r * (h U_h + b1_h))   h' = z * h + (1 - z) * h~
    """
    units = recurrent.shape[0]
    out = np.empty((len(values), units))
    h = np.zeros(units)
    xw = values @ kernel + bias[0]  # input side of every step at once (it does not depend on h)
    for t in range(len(values)):
        hu = h @ recurrent + bias[1]
        zr = sigmoid(xw[t, : 2 * units] + hu[: 2 * units])
        z, r = zr[:units], zr[units:]
        candidate = np.tanh(xw[t, 2 * units :] + r * hu[2 * units :])
        h = z * h + (1.0 - z) * candidate
        out[t] = h
    return out


def lstm_sequence(
    values: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray,
    h0: np.ndarray | None = None, c0: np.ndarray | None = None,
) -> np.ndarray:
    """``values`` ``(T, in)`` -> hidden states ``(T, H)`` from ``(h0, c0)`` (default zeros); ``bias`` ``(4H,)``::

        i, f, o = sigmoid(.), g = tanh(.) of x W + h U + b;   c' = f c + i g;   h' = o tanh(c')
    """
    units = recurrent.shape[0]
    out = np.empty((len(values), units))
    h = np.zeros(units) if h0 is None else np.asarray(h0, dtype=np.float64)
    c = np.zeros(units) if c0 is None else np.asarray(c0, dtype=np.float64)
    xw = values @ kernel + bias
    for t in range(len(values)):
        pre = xw[t] + h @ recurrent
        i, f, o = sigmoid(pre[:units]), sigmoid(pre[units : 2 * units]), sigmoid(pre[3 * units :])
        c = f * c + i * np.tanh(pre[2 * units : 3 * units])
        h = o * np.tanh(c)
        out[t] = h
    return out
