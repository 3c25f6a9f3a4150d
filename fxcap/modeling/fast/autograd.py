"""Fast training: the recurrences as ``torch.autograd.Function``s with hand-written backward passes.

:func:`fast_run` is a drop-in for a model's ``_run`` (same inputs, same ``(hidden, state parts)``
output): it computes everything that does not loop over time exactly as the reference module does,
in PyTorch (the hypernetworks, the input-side products for all steps, the knob runs), and hands the
loop over time, forward and backward, to the numba kernels of
:mod:`fxcap.modeling.fast.train_kernels` through two Functions:

* :class:`CellRecurrence` (Concat, FiLM, StaticHyper): a GRU/LSTM given the input-side
  pre-activations ``gx`` of every step and per-run hidden-side weights, scales and biases;
* :class:`DynamicRecurrence` (DynamicHyper): the hyper cell, its projections and the main cell.

The batch is split over ``torch.get_num_threads()`` threads (the kernels release the GIL).
Gradients equal autograd's through the reference loop (tests compare them, and
``torch.autograd.gradcheck`` checks the Functions in float64).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fxcap.modeling.base import ConditionedRNN, KnobSegments
from fxcap.modeling.concat import ConcatRNN
from fxcap.modeling.dynamic_hyper import DynamicHyperRNN
from fxcap.modeling.fast.ops import aligned_copy, aligned_empty, padded
from fxcap.modeling.fast.threads import chunks, parallel
from fxcap.modeling.fast.train_kernels import cell_train_kernels, dynamic_train_kernels
from fxcap.modeling.film import FiLMRNN
from fxcap.modeling.schemes import attach_fast_path, scheme_for_class
from fxcap.modeling.static_hyper import StaticHyperRNN

def _arr(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a detached tensor, or a copy when it is not C-contiguous and 64-byte aligned."""
    a = t.detach().numpy()
    return a if a.flags.c_contiguous and a.ctypes.data % 64 == 0 else aligned_copy(a)


def _empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    return aligned_empty(shape, dtype)


def _zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out


def _grad(g: torch.Tensor | None, like: np.ndarray) -> np.ndarray:
    return _zeros(like.shape, like.dtype) if g is None else _arr(g)


class CellRecurrence(torch.autograd.Function):
    """GRU/LSTM over given input pre-activations with per-run hidden-side weights (see
    :func:`~fxcap.modeling.fast.train_kernels.cell_train_kernels`).

    ``apply(gx (B,T,G*H), a (U,G*H) or None, c (U,G*H), whT (M,H,G*H), h0 (B,H), c0 (B,H), row (B,T)
    int64 array, wrow (U,) int64 array, lstm)`` -> ``(hidden (B,T,H), hT, cT)``; ``a`` None means no
    scale. For a GRU ``c0`` is ignored and ``cT`` returned as is.

    The kernels read NumPy views of the inputs in the backward pass; the tensors are also saved the
    usual way, so modifying one in place before ``backward`` raises autograd's error.
    """

    @staticmethod
    def forward(ctx, gx, a, c, whT, h0, c0, row, wrow, lstm):
        batch, steps, gh = gx.shape
        hidden = gh // (4 if lstm else 3)
        scaled = a is not None
        forward, _ = cell_train_kernels(hidden, lstm, scaled)
        dtype = gx.detach().numpy().dtype
        arrays = dict(gx=_arr(gx), a=_arr(a if scaled else c), c=_arr(c), whT=_arr(whT), h0=_arr(h0), c0=_arr(c0))
        out = _empty((batch, steps, hidden), dtype)
        gates = _empty((batch, steps, gh), dtype)
        aux = _empty((batch, steps, hidden), dtype)
        preh = _empty((batch, steps, gh) if scaled else (1, 1, gh), dtype)
        hT, cT = _empty((batch, hidden), dtype), _empty((batch, hidden), dtype)

        def job(_, b0, b1):
            forward(b0, b1, arrays["gx"], row, arrays["a"], arrays["c"], arrays["whT"], wrow, arrays["h0"],
                    arrays["c0"], out, gates, aux, preh, hT, cT)

        parallel(job, chunks(batch))
        outputs = torch.from_numpy(out), torch.from_numpy(hT), torch.from_numpy(cT)
        ctx.save_for_backward(*(t for t in (gx, a, c, whT, h0, c0) if t is not None), outputs[0])
        ctx.arrays = dict(arrays, row=row, wrow=wrow, hidden=out, gates=gates, aux=aux, preh=preh)
        ctx.config = (hidden, lstm, scaled)
        return outputs

    @staticmethod
    def backward(ctx, dhidden, dhT, dcT):
        ctx.saved_tensors  # noqa: B018 (raises if a saved tensor was modified in place)
        hidden, lstm, scaled = ctx.config
        A = ctx.arrays
        _, backward = cell_train_kernels(hidden, lstm, scaled)
        batch = A["gx"].shape[0]
        dh = _grad(dhidden, A["hidden"])
        dhT_, dcT_ = _grad(dhT, A["h0"]), _grad(dcT, A["c0"])
        parts = chunks(batch)
        n = len(parts)
        dgx = _empty(A["gx"].shape, A["gx"].dtype)
        # per-thread gradient buffers of the shared tables
        da, dc, dW = ([_zeros(A[k].shape, A[k].dtype) for _ in range(n)] for k in ("c", "c", "whT"))
        dh0, dc0 = _empty(A["h0"].shape, A["h0"].dtype), _empty(A["c0"].shape, A["c0"].dtype)

        def job(i, b0, b1):
            backward(b0, b1, dh, dhT_, dcT_, A["row"], A["a"], A["whT"], A["wrow"], A["h0"], A["c0"],
                     A["hidden"], A["gates"], A["aux"], A["preh"], dgx, da[i], dc[i], dW[i], dh0, dc0)

        parallel(job, parts)
        t = torch.from_numpy
        return (t(dgx), t(sum(da)) if scaled else None, t(sum(dc)), t(sum(dW)), t(dh0),
                t(dc0) if lstm else None, None, None, None)


class DynamicRecurrence(torch.autograd.Function):
    """The DynamicHyper recurrence (see :func:`~fxcap.modeling.fast.train_kernels.dynamic_train_kernels`).

    ``apply(wx (B,T,G*H), hc (U,G*H_hyp), bx, bh, A, V, bv, Wz, P, h0, c0, hh0, hc0, row, sizes)`` with
    ``sizes = (hidden, hyper, nz, lstm)`` -> ``(hidden (B,T,H), hT, cT, hhT, hcT)``.
    """

    @staticmethod
    def forward(ctx, wx, hc, bx, bh, A, V, bv, Wz, P, h0, c0, hh0, hc0, row, sizes):
        hidden, hyper, nz, lstm = sizes
        forward, _ = dynamic_train_kernels(*sizes)
        batch, steps, gh = wx.shape
        ghy = hc.shape[1]
        dtype = wx.detach().numpy().dtype
        arrays = {k: _arr(v) for k, v in dict(wx=wx, hc=hc, bx=bx, bh=bh, A=A, V=V, bv=bv, Wz=Wz, P=P,
                                                h0=h0, c0=c0, hh0=hh0, hc0=hc0).items()}

        def empty(*shape):
            return _empty((batch, steps) + shape, dtype)

        saved = dict(hidden=empty(hidden), gates=empty(gh), aux=empty(hidden), preh=empty(gh), hgates=empty(ghy),
                     haux=empty(hyper), hhid=empty(hyper), zs=empty(Wz.shape[1]))
        finals = [_empty((batch, n), dtype) for n in (hidden, hidden, hyper, hyper)]
        a, s = arrays, saved

        def job(_, b0, b1):
            forward(b0, b1, a["wx"], row, a["hc"], a["bx"], a["bh"], a["A"], a["V"], a["bv"], a["Wz"], a["P"],
                    a["h0"], a["c0"], a["hh0"], a["hc0"], s["hidden"], s["gates"], s["aux"], s["preh"],
                    s["hgates"], s["haux"], s["hhid"], s["zs"], *finals)

        parallel(job, chunks(batch))
        outputs = (torch.from_numpy(saved["hidden"]),) + tuple(torch.from_numpy(f) for f in finals)
        ctx.save_for_backward(wx, hc, bx, bh, A, V, bv, Wz, P, h0, c0, hh0, hc0, outputs[0])
        ctx.arrays = dict(arrays, row=row, **saved)
        ctx.sizes = sizes
        return outputs

    @staticmethod
    def backward(ctx, dhidden, dhT, dcT, dhhT, dhcT):
        ctx.saved_tensors  # noqa: B018 (raises if a saved tensor was modified in place)
        a = ctx.arrays
        lstm = ctx.sizes[3]
        _, backward = dynamic_train_kernels(*ctx.sizes)
        dh = _grad(dhidden, a["hidden"])
        finals = [_grad(g, a[k]) for g, k in ((dhT, "h0"), (dcT, "c0"), (dhhT, "hh0"), (dhcT, "hc0"))]
        parts = chunks(a["wx"].shape[0])
        n = len(parts)
        # per-thread gradient buffers of the shared weights
        acc = {k: [_zeros(a[k].shape, a[k].dtype) for _ in range(n)] for k in ("hc", "bx", "bh", "A", "V", "bv", "Wz", "P")}
        dwx = _empty(a["wx"].shape, a["wx"].dtype)
        starts = [_empty(a[k].shape, a[k].dtype) for k in ("h0", "c0", "hh0", "hc0")]

        def job(i, b0, b1):
            backward(b0, b1, dh, *finals, a["wx"], a["row"], a["A"], a["V"], a["Wz"], a["P"],
                     a["h0"], a["c0"], a["hh0"], a["hc0"], a["hidden"], a["gates"], a["aux"], a["preh"],
                     a["hgates"], a["haux"], a["hhid"], a["zs"], dwx, acc["hc"][i], acc["bx"][i],
                     acc["bh"][i], acc["A"][i], acc["V"][i], acc["bv"][i], acc["Wz"][i], acc["P"][i], *starts)

        parallel(job, parts)
        t = torch.from_numpy
        sums = [t(sum(acc[k])) for k in ("hc", "bx", "bh", "A", "V", "bv", "Wz", "P")]
        h0g, c0g, hh0g, hc0g = (t(s) for s in starts)
        return (t(dwx), *sums, h0g, c0g if lstm else None, hh0g, hc0g if lstm else None, None, None)


# -- per-scheme drop-ins for ``_run`` ---------------------------------------------------------------


def _runs(knobs: torch.Tensor, steps: int) -> tuple[torch.Tensor, np.ndarray, Callable[[torch.Tensor], torch.Tensor]]:
    """Knob values per run, ``row`` ``(B, T)`` (the run in force at every step) and a function
    expanding a per-run table ``(U, D)`` to ``(B, T or 1, D)`` (broadcast over time for constant knobs)."""
    batch = knobs.shape[0]
    if knobs.dim() == 2:
        row = np.ascontiguousarray(np.broadcast_to(np.arange(batch, dtype=np.int64)[:, None], (batch, steps)))
        return knobs, row, lambda table: table[:, None, :]
    segments = KnobSegments.from_sequence(knobs)
    return segments.values, np.ascontiguousarray(segments.index.numpy()), segments.per_step


def _cell(model: ConditionedRNN, gx, a, c, whT, wrow: np.ndarray, row: np.ndarray, state):
    lstm = model.cell == "lstm"
    h0 = state[0]
    c0 = state[1] if lstm else torch.zeros_like(h0)
    hidden, hT, cT = CellRecurrence.apply(gx.contiguous(), a, c, whT, h0, c0, row, wrow, lstm)
    return hidden, ((hT, cT) if lstm else (hT,))


def _run_concat(model: ConcatRNN, x, knobs, state):
    batch, steps, _ = x.shape
    rnn = model.rnn
    if knobs.dim() == 2:
        knobs = knobs[:, None, :].expand(batch, steps, model.num_knobs)
    gx = F.linear(torch.cat([x, knobs], dim=-1), rnn.weight_ih_l0, rnn.bias_ih_l0)
    row = np.zeros((batch, steps), dtype=np.int64)
    return _cell(model, gx, None, rnn.bias_hh_l0[None], rnn.weight_hh_l0.t()[None], np.zeros(1, np.int64), row, state)


def _run_film(model: FiLMRNN, x, knobs, state):
    values, row, per_step = _runs(knobs, x.shape[1])
    a_x, s_x, a_h, s_h = model.modulation(values).split(model.gates * model.hidden_size, dim=-1)
    gx = torch.addcmul(per_step(s_x), per_step(a_x), F.linear(x, model.rnn.weight_ih, model.rnn.bias_ih))
    c_h = torch.addcmul(s_h, a_h, model.rnn.bias_hh)
    wrow = np.zeros(values.shape[0], np.int64)
    return _cell(model, gx, a_h, c_h, model.rnn.weight_hh.t()[None], wrow, row, state)


def _run_static(model: StaticHyperRNN, x, knobs, state):
    values, row, per_step = _runs(knobs, x.shape[1])
    w_x, w_h, b_x, b_h = model.generate(values)
    if knobs.dim() == 2:
        gx = torch.baddbmm(b_x[:, None, :], x, w_x.transpose(1, 2))
    else:
        gx = torch.addcmul(per_step(b_x), x, per_step(w_x[..., 0]))
    wrow = np.arange(values.shape[0], dtype=np.int64)
    return _cell(model, gx, None, b_h, w_h.transpose(1, 2), wrow, row, state)


def _run_dynamic(model: DynamicHyperRNN, x, knobs, state):
    lstm = model.cell == "lstm"
    hidden, hyper = model.hidden_size, model.hyper_size
    rnn, hyp = model.rnn, model.hyper_rnn
    batch, steps, _ = x.shape
    hyp_w_h, hyp_w_c = hyp.weight_ih.split([hidden, model.num_knobs], dim=1)
    if knobs.dim() == 2:
        _, row, _ = _runs(knobs, steps)
        hc = F.linear(knobs, hyp_w_c, hyp.bias_ih)
    else:  # like the reference, one hyper input per step (so each step's knobs get their own gradient)
        row = np.arange(batch * steps, dtype=np.int64).reshape(batch, steps)
        hc = F.linear(knobs.reshape(batch * steps, -1), hyp_w_c, hyp.bias_ih)

    def pad(w: torch.Tensor) -> torch.Tensor:
        return F.pad(w, (0, padded(w.shape[1]) - w.shape[1]))

    A = pad(torch.cat([rnn.weight_hh.t(), hyp_w_h.t()], dim=1))
    if lstm:
        h0, c0, hh0, hc0 = state
    else:
        (h0, hh0), c0, hc0 = state, torch.zeros_like(state[0]), torch.zeros_like(state[1])
    out = DynamicRecurrence.apply(
        F.linear(x, rnn.weight_ih).contiguous(), hc, rnn.bias_ih, rnn.bias_hh, A, pad(hyp.weight_hh.t()), hyp.bias_hh,
        pad(model.hyper_to_z.weight.t()), model.z_to_d, h0, c0, hh0, hc0, row, (hidden, hyper, model.nz, lstm),
    )
    hidden_seq, hT, cT, hhT, hcT = out
    return hidden_seq, ((hT, cT, hhT, hcT) if lstm else (hT, hhT))


for _model, _run in ((ConcatRNN, _run_concat), (FiLMRNN, _run_film), (StaticHyperRNN, _run_static), (DynamicHyperRNN, _run_dynamic)):
    attach_fast_path(_model, run=_run)  # the scheme records hold the runs (exact classes, like the plans)


def has_fast_run(model: torch.nn.Module) -> bool:
    """Whether the scheme registered to exactly ``type(model)`` has a fast training path."""
    scheme = scheme_for_class(type(model))
    return scheme is not None and scheme.fast_run is not None


def fast_run(model: ConditionedRNN, x: torch.Tensor, knobs: torch.Tensor, state: Sequence[torch.Tensor]):
    """The fast equivalent of ``model._run(x, knobs, state)``: ``x`` ``(B, T, 1)``, knobs ``(B, K)`` or
    ``(B, T, K)``, state parts -> ``(hidden (B, T, H), final state parts)``, differentiable.

    Raises ``ValueError`` for a model class without a fast training path.
    """
    scheme = scheme_for_class(type(model))
    if scheme is None or scheme.fast_run is None:
        raise ValueError(f"{type(model).__name__} has no fast training path; call the model itself")
    return scheme.fast_run(model, x, knobs, tuple(state))
