"""Numba training kernels: the recurrences forward (saving what backpropagation needs) and backward
through time, for the autograd Functions of :mod:`fxcap.modeling.fast.autograd`.

Only the loop over time lives here; every product that can be done for all steps at once (input
projections, hypernetworks, output layer) stays in PyTorch and its autograd. Kernels process the
streams ``b0 .. b1-1`` of a batch, so threads can share one batch (they release the GIL); gradients
of shared weights are accumulated into buffers owned by the calling thread.

Knobs enter through per-run tables: ``row[b, t]`` is the table row in force at step ``t`` of stream
``b`` (with constant knobs simply ``b``). Kernels compile for float32 (fast activations) and float64
(libm activations, for ``torch.autograd.gradcheck``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from fxcap.modeling.fast.ops import (
    KERNEL,
    block_project,
    block_project_back,
    copy_row,
    gru_backward,
    gru_forward,
    local_buffer,
    lstm_backward,
    lstm_forward,
    matvec,
    matvec_rows,
    one,
    outer_acc,
    padded,
)


@lru_cache(maxsize=None)
def cell_train_kernels(hidden: int, lstm: bool, scaled: bool):
    """``(forward, backward)`` of a GRU/LSTM with per-run hidden-side weights (Concat, FiLM, StaticHyper).

    Per step, with ``u = row[b, t]``::

        pre = whT[wrow[u]].T @ h
        gh = a[u] * pre + c[u]   (scaled)   or   pre + c[u]
        (h, c) = cell(gx[b, t], gh, (h, c))

    ``forward(b0, b1, gx, row, a, c, whT, wrow, h0, c0, hidden, gates, aux, preh, hT, cT)`` fills
    ``hidden`` ``(B, T, H)``, the saved ``gates`` ``(B, T, G*H)``, ``aux`` ``(B, T, H)`` (GRU: the
    hidden-side candidate pre-activation; LSTM: the cell state), ``preh`` ``(B, T, G*H)`` (``pre``,
    only when scaled) and the final state ``hT``, ``cT``.

    ``backward(b0, b1, dhidden, dhT, dcT, row, a, whT, wrow, h0, c0, hidden, gates, aux, preh, dgx, da,
    dc, dW, dh0, dc0)`` writes ``dgx`` ``(B, T, G*H)``, ``dh0``, ``dc0`` and accumulates ``da``, ``dc``
    ``(U, G*H)`` and ``dW`` ``(M, H, G*H)``.
    """
    H = int(hidden)
    GH = (4 if lstm else 3) * H

    @njit(**KERNEL)
    def forward(b0, b1, gx, row, a, c, whT, wrow, h0, c0, hidden, gates, aux, preh, hT, cT):
        steps = gx.shape[1]
        h = local_buffer(H, gx.dtype)
        cell = local_buffer(H, gx.dtype)
        gh = local_buffer(GH, gx.dtype)
        for b in range(b0, b1):
            copy_row(h, h0[b], H)
            copy_row(cell, c0[b], H)
            for t in range(steps):
                u = row[b, t]
                matvec(gh, whT[wrow[u]], h, H, GH)
                if scaled:
                    copy_row(preh[b, t], gh, GH)
                    for g in range(GH):
                        gh[g] = a[u, g] * gh[g] + c[u, g]
                else:
                    for g in range(GH):
                        gh[g] += c[u, g]
                if lstm:
                    lstm_forward(h, cell, gx[b, t], gh, H, gates[b, t])
                    copy_row(aux[b, t], cell, H)
                else:
                    gru_forward(h, gx[b, t], gh, H, gates[b, t], aux[b, t])
                copy_row(hidden[b, t], h, H)
            copy_row(hT[b], h, H)
            copy_row(cT[b], cell, H)

    @njit(**KERNEL)
    def backward(b0, b1, dhidden, dhT, dcT, row, a, whT, wrow, h0, c0, hidden, gates, aux, preh, dgx, da, dc, dW, dh0, dc0):
        steps = dhidden.shape[1]
        dh = local_buffer(H, dhidden.dtype)
        dcell = local_buffer(H, dhidden.dtype)
        dgh = local_buffer(GH, dhidden.dtype)
        for b in range(b0, b1):
            copy_row(dh, dhT[b], H)
            copy_row(dcell, dcT[b], H)
            for t in range(steps - 1, -1, -1):
                for i in range(H):
                    dh[i] += dhidden[b, t, i]
                h_prev = hidden[b, t - 1] if t > 0 else h0[b]
                if lstm:
                    c_prev = aux[b, t - 1] if t > 0 else c0[b]
                    lstm_backward(dh, dcell, c_prev, aux[b, t], gates[b, t], H, dgx[b, t])
                    copy_row(dgh, dgx[b, t], GH)
                else:
                    gru_backward(dh, h_prev, gates[b, t], aux[b, t], H, dgx[b, t], dgh)
                u = row[b, t]
                for g in range(GH):
                    dc[u, g] += dgh[g]
                if scaled:
                    for g in range(GH):
                        da[u, g] += dgh[g] * preh[b, t, g]
                        dgh[g] *= a[u, g]
                m = wrow[u]
                outer_acc(dW[m], h_prev, dgh, H, GH)
                matvec_rows(dh, whT[m], dgh, H, GH)
            copy_row(dh0[b], dh, H)
            copy_row(dc0[b], dcell, H)

    return forward, backward


@lru_cache(maxsize=None)
def dynamic_train_kernels(hidden: int, hyper: int, nz: int, lstm: bool):
    """``(forward, backward)`` of the DynamicHyper recurrence (as :func:`~fxcap.modeling.fast.kernels.dynamic_kernel`,
    with ``wx[b, t] = W_x x_t`` given and no output layer).

    ``forward(b0, b1, wx, row, hc, bx, bh, A, V, bv, Wz, P, h0, c0, hh0, hc0, hidden, gates, aux, preh,
    hgates, haux, hhid, zs, hT, cT, hhT, hcT)``: ``A`` ``(H, pad(G*H + G*H_hyp))``, ``V``
    ``(H_hyp, pad(G*H_hyp))``, ``Wz`` ``(H_hyp, pad(3G*n_z))`` (zero-padded columns, see
    :func:`~fxcap.modeling.fast.ops.padded`), ``P`` ``(3G, n_z, H)``, ``hc`` ``(U, G*H_hyp)`` per-run
    hyper inputs. Saves per step the main and hyper gates and auxiliaries (as
    :func:`cell_train_kernels`), ``preh = W_h h``, the hyper state ``hhid``, ``z`` and ``d``.

    ``backward(b0, b1, dhidden, dhT, dcT, dhhT, dhcT, wx, row, A, V, Wz, P, h0, c0, hh0, hc0, hidden,
    gates, aux, preh, hgates, haux, hhid, zs, dwx, dhc, dbx, dbh, dA, dV, dbv, dWz, dP, dh0, dc0,
    dhh0, dhc0)`` writes ``dwx`` and the initial-state gradients and accumulates the rest.
    """
    H, HY, NZ = int(hidden), int(hyper), int(nz)
    G = 4 if lstm else 3
    GH, GHY, NK = G * H, G * HY, 3 * G
    NA, NZK = GH + GHY, NK * NZ
    NAP, GHYP, NZP = padded(NA), padded(GHY), padded(NZK)

    @njit(**KERNEL)
    def forward(b0, b1, wx, row, hc, bx, bh, A, V, bv, Wz, P, h0, c0, hh0, hc0,
                hidden, gates, aux, preh, hgates, haux, hhid, zs, hT, cT, hhT, hcT):
        steps = wx.shape[1]
        dt = wx.dtype
        h, cell = local_buffer(H, dt), local_buffer(H, dt)
        hh, hcell = local_buffer(HY, dt), local_buffer(HY, dt)
        m, hgx, hgh = local_buffer(NAP, dt), local_buffer(GHY, dt), local_buffer(GHYP, dt)
        gx, gh, d = local_buffer(GH, dt), local_buffer(GH, dt), local_buffer(3 * GH, dt)
        for b in range(b0, b1):
            copy_row(h, h0[b], H)
            copy_row(cell, c0[b], H)
            copy_row(hh, hh0[b], HY)
            copy_row(hcell, hc0[b], HY)
            for t in range(steps):
                u = row[b, t]
                matvec(m, A, h, H, NAP)
                matvec(hgh, V, hh, HY, GHYP)
                for g in range(GHY):
                    hgx[g] = hc[u, g] + m[GH + g]
                    hgh[g] += bv[g]
                if lstm:
                    lstm_forward(hh, hcell, hgx, hgh, HY, hgates[b, t])
                    copy_row(haux[b, t], hcell, HY)
                else:
                    gru_forward(hh, hgx, hgh, HY, hgates[b, t], haux[b, t])
                copy_row(hhid[b, t], hh, HY)
                z = zs[b, t]
                matvec(z, Wz, hh, HY, NZP)
                block_project(d, z, P, NK, NZ, H)
                for g in range(GH):
                    o = one(d[g])
                    gx[g] = (d[g] + o) * wx[b, t, g] + (d[2 * GH + g] + bx[g])
                    preh[b, t, g] = m[g]
                    gh[g] = (d[GH + g] + o) * m[g] + bh[g]
                if lstm:
                    lstm_forward(h, cell, gx, gh, H, gates[b, t])
                    copy_row(aux[b, t], cell, H)
                else:
                    gru_forward(h, gx, gh, H, gates[b, t], aux[b, t])
                copy_row(hidden[b, t], h, H)
            copy_row(hT[b], h, H)
            copy_row(cT[b], cell, H)
            copy_row(hhT[b], hh, HY)
            copy_row(hcT[b], hcell, HY)

    @njit(**KERNEL)
    def backward(b0, b1, dhidden, dhT, dcT, dhhT, dhcT, wx, row, A, V, Wz, P, h0, c0, hh0, hc0,
                 hidden, gates, aux, preh, hgates, haux, hhid, zs,
                 dwx, dhc, dbx, dbh, dA, dV, dbv, dWz, dP, dh0, dc0, dhh0, dhc0):
        steps = dhidden.shape[1]
        dt = dhidden.dtype
        dh, dcell = local_buffer(H, dt), local_buffer(H, dt)
        dhh, dhcell = local_buffer(HY, dt), local_buffer(HY, dt)
        dgx, dgh = local_buffer(GH, dt), local_buffer(GH, dt)
        dhgx, dhgh = local_buffer(GHY, dt), local_buffer(GHY, dt)
        d, dd, dm, dz = local_buffer(3 * GH, dt), local_buffer(3 * GH, dt), local_buffer(NA, dt), local_buffer(NZP, dt)
        for b in range(b0, b1):
            copy_row(dh, dhT[b], H)
            copy_row(dcell, dcT[b], H)
            copy_row(dhh, dhhT[b], HY)
            copy_row(dhcell, dhcT[b], HY)
            for t in range(steps - 1, -1, -1):
                for i in range(H):
                    dh[i] += dhidden[b, t, i]
                h_prev = hidden[b, t - 1] if t > 0 else h0[b]
                hh_prev = hhid[b, t - 1] if t > 0 else hh0[b]
                if lstm:
                    c_prev = aux[b, t - 1] if t > 0 else c0[b]
                    lstm_backward(dh, dcell, c_prev, aux[b, t], gates[b, t], H, dgx)
                    copy_row(dgh, dgx, GH)
                else:
                    gru_backward(dh, h_prev, gates[b, t], aux[b, t], H, dgx, dgh)
                block_project(d, zs[b, t], P, NK, NZ, H)  # d is recomputed: cheaper than storing it
                for g in range(GH):
                    o = one(d[g])
                    dwx[b, t, g] = dgx[g] * (d[g] + o)
                    dd[g] = dgx[g] * wx[b, t, g]
                    dd[2 * GH + g] = dgx[g]
                    dbx[g] += dgx[g]
                    dd[GH + g] = dgh[g] * preh[b, t, g]
                    dbh[g] += dgh[g]
                    dm[g] = dgh[g] * (d[GH + g] + o)
                block_project_back(dz, dP, zs[b, t], dd, P, NK, NZ, H)
                matvec_rows(dhh, Wz, dz, HY, NZK)
                outer_acc(dWz, hhid[b, t], dz, HY, NZK)
                if lstm:
                    hc_prev = haux[b, t - 1] if t > 0 else hc0[b]
                    lstm_backward(dhh, dhcell, hc_prev, haux[b, t], hgates[b, t], HY, dhgx)
                    copy_row(dhgh, dhgx, GHY)
                else:
                    gru_backward(dhh, hh_prev, hgates[b, t], haux[b, t], HY, dhgx, dhgh)
                u = row[b, t]
                for g in range(GHY):
                    dhc[u, g] += dhgx[g]
                    dm[GH + g] = dhgx[g]
                    dbv[g] += dhgh[g]
                outer_acc(dA, h_prev, dm, H, NA)
                matvec_rows(dh, A, dm, H, NA)
                outer_acc(dV, hh_prev, dhgh, HY, GHY)
                matvec_rows(dhh, V, dhgh, HY, GHY)
            copy_row(dh0[b], dh, H)
            copy_row(dc0[b], dcell, H)
            copy_row(dhh0[b], dhh, HY)
            copy_row(dhc0[b], dhcell, HY)

    return forward, backward
