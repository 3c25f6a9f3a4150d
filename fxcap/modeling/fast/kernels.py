"""Numba inference kernels: the recurrences of every scheme, one sample at a time, with the output layer fused.

Each kernel is built by a factory for one model size: hidden sizes and gate count are closure
constants, so LLVM knows every trip count and fully vectorises the loops (with the sizes as run-time
values the same code runs slower: ``docs/quality.md``, "Measurements behind the code"). It is compiled once per size and cached on disk: later
processes load the machine code from ``__pycache__`` (or numba's cache directory), keyed to the sources
of this whole folder, so an edit of an inlined helper in :mod:`~fxcap.modeling.fast.ops` recompiles it
(:mod:`fxcap.numba_cache`).

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

from fxcap.modeling.fast.ops import (
    F32,
    FAST,
    KERNEL,
    block_project_streams,
    gru_update,
    local_buffer,
    local_rows,
    lstm_update,
    matmat,
    matvec,
    padded,
)


@njit(inline="always", **FAST)
def run_end(seg_start, s, s_end, steps):
    """The step where run ``s`` (of a stream whose runs end before ``s_end``) stops."""
    return seg_start[s + 1] if s + 1 < s_end else steps


@njit(inline="always", **FAST)
def row_of(table, u):
    """Row ``u`` of a per-run table, or its only row when it is shared by every run (shape ``(1, n)``)."""
    return table[u] if table.shape[0] > 1 else table[0]


@lru_cache(maxsize=None)
def cell_kernel(hidden: int, lstm: bool, scaled: bool):
    """Kernel of a plain GRU/LSTM whose weights come from per-run tables (Concat, FiLM, StaticHyper).

    Per step, with ``u`` the run's table row and ``m = mat_row[u]``::

        gx = wx[u] * x_t + bx[u]
        gh = ah[u] * (whT[m].T @ h) + bh[u]      (scaled)      or      whT[m].T @ h + bh[u]
        (h, c) = cell(gx, gh, (h, c));   y_t = wo . h + bo

    Signature: ``kernel(b_lo, b_hi, x, y, state, seg_ptr, seg_start, seg_row, wx, bx, ah, bh, mat_row, whT,
    wo, bo)`` for streams ``b_lo .. b_hi-1``, with tables ``wx, bx, ah, bh`` ``(U, G*H)`` (or ``(1, G*H)``:
    shared by every run), ``mat_row`` ``(U,)``, ``whT`` ``(M, H, G*H)``,
    ``wo`` ``(H,)``, ``bo`` a float32 scalar. State ``[h]`` or ``[h, c]``.
    """
    H = int(hidden)
    GH = (4 if lstm else 3) * H

    @njit(**KERNEL)
    def kernel(b_lo, b_hi, x, y, state, seg_ptr, seg_start, seg_row, wx, bx, ah, bh, mat_row, whT, wo, bo):
        steps = x.shape[1]
        h = local_buffer(H, F32)
        c = local_buffer(H, F32)
        gx = local_buffer(GH, F32)
        gh = local_buffer(GH, F32)
        for b in range(b_lo, b_hi):
            for i in range(H):
                h[i] = state[b, i]
                if lstm:
                    c[i] = state[b, H + i]
            s_end = seg_ptr[b + 1]
            for s in range(seg_ptr[b], s_end):
                u = seg_row[s]
                w = whT[mat_row[u]]
                wxu, bxu, ahu, bhu = row_of(wx, u), row_of(bx, u), row_of(ah, u), row_of(bh, u)
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
def dynamic_kernel(hidden: int, hyper: int, nz: int, lstm: bool, group: int):
    """Kernel of the DynamicHyper RNN (see :mod:`fxcap.modeling.dynamic_hyper`), ``group`` streams at a time.

    Per step and stream (``u`` the run's row of ``hyp_c``, the knob part of the hyper input plus its bias)::

        m = A.T @ h                        A = [W_h.T | W^_xh.T] (H, G*H + G*H_hyp): both products of h
        (h^, c^) = cell(hyp_c[u] + m[G*H:], V.T @ h^ + bv, (h^, c^))
        z = Wz.T @ h^;   d[k] = P[k].T @ z[k] for the 3G blocks k = kind*G + gate (kinds x, h, b)
        gx = (1 + d_x) * (wx * x_t) + (bx + d_b);   gh = (1 + d_h) * m[:G*H] + bh
        (h, c) = cell(gx, gh, (h, c));   y_t = wo . h + bo

    The weights (about 80 KB, more than L1) are shared by the ``group`` streams processed together
    (:func:`~fxcap.modeling.fast.ops.matmat`). Signature: ``kernel(b_lo, b_hi, x, y, state, seg_ptr,
    seg_start, seg_row, hyp_c, wx, bx, bh, A, V, bv, Wz, P, wo, bo)`` for streams ``b_lo .. b_hi-1``
    (a multiple of ``group`` of them), with ``hyp_c`` ``(U, G*H_hyp)``, ``A``, ``V``, ``Wz`` transposed
    with zero-padded columns (:func:`~fxcap.modeling.fast.ops.padded`), ``P`` ``(3G, n_z, H)``.
    State ``[h, h^]`` or ``[h, c, h^, c^]``.
    """
    H, HY, NZ, NB = int(hidden), int(hyper), int(nz), int(group)
    G = 4 if lstm else 3
    GH, GHY, NK = G * H, G * HY, 3 * G
    NZP, NAP, GHYP = padded(NK * NZ), padded(GH + GHY), padded(GHY)  # column counts of Wz, A, V
    OFF = 2 * H if lstm else H  # start of the hyper state in the flat state

    @njit(**KERNEL)
    def kernel(b_lo, b_hi, x, y, state, seg_ptr, seg_start, seg_row, hyp_c, wx, bx, bh, A, V, bv, Wz, P, wo, bo):
        steps = x.shape[1]
        h, c = local_rows(NB, H, F32), local_rows(NB, H, F32)
        hh, hc = local_rows(NB, HY, F32), local_rows(NB, HY, F32)
        m, hgx, hgh = local_rows(NB, NAP, F32), local_rows(NB, GHY, F32), local_rows(NB, GHYP, F32)
        z, d = local_rows(NB, NZP, F32), local_rows(NB, NK * H, F32)
        gx, gh = local_rows(NB, GH, F32), local_rows(NB, GH, F32)
        s_cur, s_end, t_next = np.empty(NB, np.int64), np.empty(NB, np.int64), np.empty(NB, np.int64)
        for b0 in range(b_lo, b_hi, NB):
            for q in range(NB):
                b = b0 + q
                for i in range(H):
                    h[q, i] = state[b, i]
                    if lstm:
                        c[q, i] = state[b, H + i]
                for i in range(HY):
                    hh[q, i] = state[b, OFF + i]
                    if lstm:
                        hc[q, i] = state[b, OFF + HY + i]
                s_cur[q], s_end[q] = seg_ptr[b], seg_ptr[b + 1]
                t_next[q] = run_end(seg_start, s_cur[q], s_end[q], steps)
            for t in range(steps):
                matmat(m, A, h, NB, H, NAP)
                matmat(hgh, V, hh, NB, HY, GHYP)
                for q in range(NB):
                    if t == t_next[q]:  # the next knob run of this stream starts
                        s_cur[q] += 1
                        t_next[q] = run_end(seg_start, s_cur[q], s_end[q], steps)
                    hcu = hyp_c[seg_row[s_cur[q]]]
                    for g in range(GHY):
                        hgx[q, g] = hcu[g] + m[q, GH + g]
                        hgh[q, g] += bv[g]
                    if lstm:
                        lstm_update(hh[q], hc[q], hgx[q], hgh[q], HY)
                    else:
                        gru_update(hh[q], hgx[q], hgh[q], HY)
                matmat(z, Wz, hh, NB, HY, NZP)
                block_project_streams(d, z, P, NB, NK, NZ, H)
                for q in range(NB):
                    xt = x[b0 + q, t]
                    for g in range(GH):
                        gx[q, g] = (d[q, g] + F32(1)) * (wx[g] * xt) + (d[q, 2 * GH + g] + bx[g])
                        gh[q, g] = (d[q, GH + g] + F32(1)) * m[q, g] + bh[g]
                    if lstm:
                        lstm_update(h[q], c[q], gx[q], gh[q], H)
                    else:
                        gru_update(h[q], gx[q], gh[q], H)
                    out = bo
                    for i in range(H):
                        out += wo[i] * h[q, i]
                    y[b0 + q, t] = out
            for q in range(NB):
                b = b0 + q
                for i in range(H):
                    state[b, i] = h[q, i]
                    if lstm:
                        state[b, H + i] = c[q, i]
                for i in range(HY):
                    state[b, OFF + i] = hh[q, i]
                    if lstm:
                        state[b, OFF + HY + i] = hc[q, i]

    return kernel
