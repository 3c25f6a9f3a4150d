"""Numba inference kernels: the recurrences of every scheme, one sample at a time, with the output layer fused.

Each kernel is built by a factory for one model size (hidden sizes and gate count are closure
constants, so LLVM unrolls and vectorises the loops and keeps small buffers in registers) and is
compiled once per size, with ``cache=True`` (later processes load it from ``__pycache__``).

Conventions shared by all kernels (float32 throughout):

* ``x`` ``(B, T)`` audio in, ``y`` ``(B, T)`` prediction out, ``state`` ``(B, S)`` the model's flat
  state (:attr:`~fxcap.modeling.base.ConditionedRNN.state_layout`), read at the start and overwritten
  with the final state.
* Knob runs: stream ``b`` uses runs ``seg_ptr[b] .. seg_ptr[b+1]-1``; run ``s`` starts at step
  ``seg_start[s]`` (the first run of every stream at 0) and reads row ``seg_row[s]`` of the per-run
  tables (the weights generated for that run's knob values).
* Weight matrices are stored transposed, ``(inputs, outputs)`` (see :mod:`fxcap.modeling.fast.ops`
  for the products and the gate arithmetic).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from fxcap.modeling.fast.ops import F32, FAST, KERNEL, block_project, gru_update, lstm_update, matvec, padded


@njit(inline="always", **FAST)
def run_end(seg_start, s, s_end, steps):
    """The step where run ``s`` (of a stream whose runs end before ``s_end``) stops."""
    return seg_start[s + 1] if s + 1 < s_end else steps


@lru_cache(maxsize=None)
def cell_kernel(hidden: int, lstm: bool, scaled: bool):
    """Kernel of a plain GRU/LSTM whose weights come from per-run tables (Concat, FiLM, StaticHyper).

    Per step, with ``u`` the run's table row and ``m = mat_row[u]``::

        gx = wx[u] * x_t + bx[u]
        gh = ah[u] * (whT[m].T @ h) + bh[u]      (scaled)      or      whT[m].T @ h + bh[u]
        (h, c) = cell(gx, gh, (h, c));   y_t = wo . h + bo

    Signature: ``kernel(x, y, state, seg_ptr, seg_start, seg_row, wx, bx, ah, bh, mat_row, whT, wo, bo)``
    with tables ``wx, bx, ah, bh`` ``(U, G*H)``, ``mat_row`` ``(U,)``, ``whT`` ``(M, H, G*H)``,
    ``wo`` ``(H,)``, ``bo`` a float32 scalar. State ``[h]`` or ``[h, c]``.
    """
    H = int(hidden)
    GH = (4 if lstm else 3) * H

    @njit(**KERNEL)
    def kernel(x, y, state, seg_ptr, seg_start, seg_row, wx, bx, ah, bh, mat_row, whT, wo, bo):
        batch, steps = x.shape
        h = np.empty(H, F32)
        c = np.empty(H, F32)
        gx = np.empty(GH, F32)
        gh = np.empty(GH, F32)
        for b in range(batch):
            for i in range(H):
                h[i] = state[b, i]
                if lstm:
                    c[i] = state[b, H + i]
            s_end = seg_ptr[b + 1]
            for s in range(seg_ptr[b], s_end):
                u = seg_row[s]
                w = whT[mat_row[u]]
                wxu, bxu, ahu, bhu = wx[u], bx[u], ah[u], bh[u]
                for t in range(seg_start[s], run_end(seg_start, s, s_end, steps)):
                    xt = x[b, t]
                    matvec(gh, w, h, H, GH)
                    for g in range(GH):
                        gx[g] = wxu[g] * xt + bxu[g]
                        if scaled:
                            gh[g] = ahu[g] * gh[g] + bhu[g]
                        else:
                            gh[g] += bhu[g]
                    if lstm:
                        lstm_update(h, c, gx, gh, H)
                    else:
                        gru_update(h, gx, gh, H)
                    out = bo
                    for i in range(H):
                        out += wo[i] * h[i]
                    y[b, t] = out
            for i in range(H):
                state[b, i] = h[i]
                if lstm:
                    state[b, H + i] = c[i]

    return kernel


@lru_cache(maxsize=None)
def dynamic_kernel(hidden: int, hyper: int, nz: int, lstm: bool):
    """Kernel of the DynamicHyper RNN (see :mod:`fxcap.modeling.dynamic_hyper`).

    Per step (``u`` the run's row of ``hyp_c``, the knob part of the hyper input plus its bias)::

        m = A.T @ h                        A = [W_h.T | W^_xh.T] (H, G*H + G*H_hyp): both products of h
        (h^, c^) = cell(hyp_c[u] + m[G*H:], V.T @ h^ + bv, (h^, c^))
        z = Wz.T @ h^;   d[k] = P[k].T @ z[k] for the 3G blocks k = kind*G + gate (kinds x, h, b)
        gx = (1 + d_x) * (wx * x_t) + (bx + d_b);   gh = (1 + d_h) * m[:G*H] + bh
        (h, c) = cell(gx, gh, (h, c));   y_t = wo . h + bo

    Signature: ``kernel(x, y, state, seg_ptr, seg_start, seg_row, hyp_c, wx, bx, bh, A, V, bv, Wz, P,
    wo, bo)`` with ``hyp_c`` ``(U, G*H_hyp)``, ``V`` ``(H_hyp, G*H_hyp)``, ``Wz`` ``(H_hyp, 3G*n_z)``,
    ``P`` ``(3G, n_z, H)``. State ``[h, h^]`` or ``[h, c, h^, c^]``.
    """
    H, HY, NZ = int(hidden), int(hyper), int(nz)
    G = 4 if lstm else 3
    GH, GHY, NK = G * H, G * HY, 3 * G
    NA = GH + GHY
    NZP, NAP, GHYP = padded(NK * NZ), padded(NA), padded(GHY)  # column counts of Wz, A, V, zero-padded
    OFF = 2 * H if lstm else H  # start of the hyper state in the flat state

    @njit(**KERNEL)
    def kernel(x, y, state, seg_ptr, seg_start, seg_row, hyp_c, wx, bx, bh, A, V, bv, Wz, P, wo, bo):
        batch, steps = x.shape
        h = np.empty(H, F32)
        c = np.empty(H, F32)
        hh = np.empty(HY, F32)
        hc = np.empty(HY, F32)
        m = np.empty(NAP, F32)
        hgx = np.empty(GHY, F32)
        hgh = np.empty(GHYP, F32)
        z = np.empty(NZP, F32)
        d = np.empty(NK * H, F32)
        gx = np.empty(GH, F32)
        gh = np.empty(GH, F32)
        for b in range(batch):
            for i in range(H):
                h[i] = state[b, i]
                if lstm:
                    c[i] = state[b, H + i]
            for i in range(HY):
                hh[i] = state[b, OFF + i]
                if lstm:
                    hc[i] = state[b, OFF + HY + i]
            s_end = seg_ptr[b + 1]
            for s in range(seg_ptr[b], s_end):
                hcu = hyp_c[seg_row[s]]
                for t in range(seg_start[s], run_end(seg_start, s, s_end, steps)):
                    xt = x[b, t]
                    matvec(m, A, h, H, NAP)
                    matvec(hgh, V, hh, HY, GHYP)
                    for g in range(GHY):
                        hgx[g] = hcu[g] + m[GH + g]
                        hgh[g] += bv[g]
                    if lstm:
                        lstm_update(hh, hc, hgx, hgh, HY)
                    else:
                        gru_update(hh, hgx, hgh, HY)
                    matvec(z, Wz, hh, HY, NZP)
                    block_project(d, z, P, NK, NZ, H)
                    for g in range(GH):
                        gx[g] = (d[g] + F32(1)) * (wx[g] * xt) + (d[2 * GH + g] + bx[g])
                        gh[g] = (d[GH + g] + F32(1)) * m[g] + bh[g]
                    if lstm:
                        lstm_update(h, c, gx, gh, H)
                    else:
                        gru_update(h, gx, gh, H)
                    out = bo
                    for i in range(H):
                        out += wo[i] * h[i]
                    y[b, t] = out
            for i in range(H):
                state[b, i] = h[i]
                if lstm:
                    state[b, H + i] = c[i]
            for i in range(HY):
                state[b, OFF + i] = hh[i]
                if lstm:
                    state[b, OFF + HY + i] = hc[i]

    return kernel
