"""Export a model's weights as flat float32 arrays for the inference kernels, scheme by scheme.

A *plan* holds the weights that do not depend on the knobs, and turns a table of knob values
``(U, K)`` (one row per run of constant knobs) into the per-run tables its kernel reads. The per-run
tables are computed with the reference module's own methods (``modulation``, ``generate``, its
``nn.Linear`` layers), so the hypernetworks are exactly the reference's; what is folded here:

* Concat: the knobs' part of the input product joins the input bias, ``bx = W_c c + b_ih``, so the
  RNN sees mono audio only.
* FiLM: ``gx = a_x (w x + b_x) + s_x`` becomes ``(a_x w) x + (a_x b_x + s_x)``; the hidden side keeps
  the shared ``W_h`` with the per-run scale ``a_h`` and shift ``a_h b_h + s_h``.
* StaticHyper: the generated cell is used as it is (one ``W_h`` per run, generated directly in the
  transposed layout by reordering the rows of its head).
* DynamicHyper: the knob part of the hyper cell's input plus its bias is one vector per run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.concat import ConcatRNN
from fxcap.modeling.dynamic_hyper import DynamicHyperRNN
from fxcap.modeling.fast.kernels import cell_kernel, dynamic_kernel
from fxcap.modeling.fast.ops import aligned_copy, aligned_empty, padded
from fxcap.modeling.film import FiLMRNN
from fxcap.modeling.schemes import attach_fast_path, scheme_for_class
from fxcap.modeling.static_hyper import StaticHyperRNN


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """A float32 copy of ``t`` (detached) in 64-byte aligned, C-contiguous memory: the kernels' vector
    loads then never straddle cache lines (misaligned weights cost a quarter of the speed)."""
    a = t.detach().to(torch.float32).cpu().numpy() if isinstance(t, torch.Tensor) else t
    return aligned_copy(a)


def _pad_columns(w: np.ndarray) -> np.ndarray:
    """``w`` ``(n_in, n_out)`` with zero columns appended up to :func:`~fxcap.modeling.fast.ops.padded` width."""
    out = aligned_empty((w.shape[0], padded(w.shape[1])))
    out[:] = 0
    out[:, : w.shape[1]] = w
    return out


class Plan(ABC):
    """Flat weights of one model and the kernel that runs it (see the module doc).

    Attributes:
        row_bytes: bytes of one row of the per-run tables (bounds how many runs are built at once).
        group: streams the kernel prefers to process together (thread boundaries are multiples of it).
    """

    row_bytes: int
    group = 1

    def __init__(self, model: ConditionedRNN) -> None:
        self.hidden = model.hidden_size
        self.lstm = model.cell == "lstm"
        self.gates = model.gates
        self.wo = _np(model.output.weight[0])
        self.bo = np.float32(model.output.bias.detach()[0])

    @abstractmethod
    def tables(self, values: torch.Tensor) -> tuple[np.ndarray, ...]:
        """Per-run tables for knob values ``(U, K)`` (float32 tensor), in the kernel's argument order."""

    @abstractmethod
    def run(self, x, y, state, seg_ptr, seg_start, seg_row, tables: tuple[np.ndarray, ...], lo: int, hi: int) -> None:
        """Run the kernel over streams ``lo .. hi-1`` of ``x`` ``(B, T)`` into ``y``, updating ``state``
        ``(B, S)`` in place (different streams may run in different threads)."""


class CellPlan(Plan):
    """Concat, FiLM and StaticHyper: a plain GRU/LSTM with per-run weights (:func:`cell_kernel`)."""

    scaled = False
    per_run_vectors = 4
    """How many of the ``(G*H,)`` vectors ``wx, bx, ah, bh`` differ between runs (the others are shared)."""

    def __init__(self, model: ConditionedRNN) -> None:
        super().__init__(model)
        gh = self.gates * self.hidden
        shared_whT = self.shared_whT(model)
        per_run_matrix = 0 if shared_whT is not None else gh * self.hidden
        self.row_bytes = 4 * (self.per_run_vectors * gh + per_run_matrix + 1)
        self.whT = shared_whT
        self.kernel = cell_kernel(self.hidden, self.lstm, self.scaled)

    def shared_whT(self, model: ConditionedRNN) -> np.ndarray | None:
        """``(1, H, G*H)`` recurrent weight shared by every run, or ``None`` if generated per run."""
        return None

    def run(self, x, y, state, seg_ptr, seg_start, seg_row, tables, lo, hi):
        self.kernel(lo, hi, x, y, state, seg_ptr, seg_start, seg_row, *tables, self.wo, self.bo)


class ConcatPlan(CellPlan):
    """Concat: the fused RNN's weights, with the knobs folded into the input bias per run."""

    per_run_vectors = 1  # only the input bias carries the knobs

    def __init__(self, model: ConditionedRNN) -> None:
        rnn = model.rnn
        self.w_ih = rnn.weight_ih_l0.detach().float()
        self.b_ih = rnn.bias_ih_l0.detach().float()
        self.wx = _np(self.w_ih[:, 0])[None]
        self.bh = _np(rnn.bias_hh_l0)[None]
        super().__init__(model)

    def shared_whT(self, model):
        return _np(model.rnn.weight_hh_l0.t())[None]

    def tables(self, values):
        bx = _np(F.linear(values, self.w_ih[:, 1:], self.b_ih))
        return self.wx, bx, self.bh, self.bh, np.zeros(values.shape[0], np.int64), self.whT


class FiLMPlan(CellPlan):
    """FiLM: the shared cell, with the MLP's modulations folded into per-run input weights and biases
    and a per-run scale and shift of the hidden side."""

    scaled = True

    def __init__(self, model: ConditionedRNN) -> None:
        self.model = model
        super().__init__(model)

    def shared_whT(self, model):
        return _np(model.rnn.weight_hh.t())[None]

    def tables(self, values):
        rnn = self.model.rnn
        gh = self.gates * self.hidden
        with torch.no_grad():
            a_x, s_x, a_h, s_h = self.model.modulation(values).split(gh, dim=-1)
            wx = a_x * rnn.weight_ih[:, 0]
            bx = torch.addcmul(s_x, a_x, rnn.bias_ih)
            bh = torch.addcmul(s_h, a_h, rnn.bias_hh)
        return _np(wx), _np(bx), _np(a_h), _np(bh), np.zeros(values.shape[0], np.int64), self.whT


class StaticHyperPlan(CellPlan):
    """StaticHyper: the generated cell of every run (no shared weights but the output layer)."""

    per_run_vectors = 3  # wx, bx, bh (no scale)

    def __init__(self, model: ConditionedRNN) -> None:
        self.model = model
        super().__init__(model)
        gh, hidden = self.gates * self.hidden, self.hidden
        # rows of the W_h head reordered so the generated weights come out transposed, (H, G*H) per run
        order = torch.arange(gh * hidden).reshape(gh, hidden).t().reshape(-1)
        self.head_whT = model.head_weight_hh.weight.detach()[order]
        self.head_bhT = model.head_weight_hh.bias.detach()[order]

    def tables(self, values):
        m = self.model
        with torch.no_grad():
            e = m.hyper(values)  # as StaticHyperRNN.generate, with W_h generated transposed
            whT = F.linear(e, self.head_whT, self.head_bhT).reshape(len(values), self.hidden, -1)
            wx, bx, bh = _np(m.head_weight_ih(e)), _np(m.head_bias_ih(e)), _np(m.head_bias_hh(e))
        return wx, bx, bh, bh, np.arange(len(values), dtype=np.int64), _np(whT)


class DynamicHyperPlan(Plan):
    """DynamicHyper (:func:`dynamic_kernel`): shared weights, one hyper-input vector per run; streams
    are processed four at a time (the weights exceed L1: one read from L2 serves four streams)."""

    group = 4

    def __init__(self, model: ConditionedRNN) -> None:
        super().__init__(model)
        rnn, hyper = model.rnn, model.hyper_rnn
        w_h, self.w_c = hyper.weight_ih.detach().float().split([model.hidden_size, model.num_knobs], dim=1)
        self.b_c = hyper.bias_ih.detach().float()
        self.weights = (
            _np(rnn.weight_ih[:, 0]),
            _np(rnn.bias_ih),
            _np(rnn.bias_hh),
            _pad_columns(_np(torch.cat([rnn.weight_hh.t(), w_h.t()], dim=1))),
            _pad_columns(_np(hyper.weight_hh.t())),
            _np(hyper.bias_hh),
            _pad_columns(_np(model.hyper_to_z.weight.t())),
            _np(model.z_to_d),
        )
        self.row_bytes = 4 * self.gates * model.hyper_size
        sizes = (self.hidden, model.hyper_size, model.nz, self.lstm)
        self.kernel_one, self.kernel_group = dynamic_kernel(*sizes, 1), dynamic_kernel(*sizes, self.group)

    def tables(self, values):
        return (_pad_columns(_np(F.linear(values, self.w_c, self.b_c))),)

    def run(self, x, y, state, seg_ptr, seg_start, seg_row, tables, lo, hi):
        args = (x, y, state, seg_ptr, seg_start, seg_row, *tables, *self.weights, self.wo, self.bo)
        split = lo + (hi - lo) // self.group * self.group
        if split > lo:
            self.kernel_group(lo, split, *args)
        if hi > split:
            self.kernel_one(split, hi, *args)


for _model, _plan in ((ConcatRNN, ConcatPlan), (FiLMRNN, FiLMPlan), (StaticHyperRNN, StaticHyperPlan), (DynamicHyperRNN, DynamicHyperPlan)):
    attach_fast_path(_model, plan=_plan)  # the scheme records hold the plan builders (exact classes)


def make_plan(model: ConditionedRNN) -> Plan | None:
    """The plan of ``model``, or ``None`` for a model without a fast path (it then runs the reference):
    the ``fast_plan`` of the scheme registered to exactly ``type(model)`` (a subclass may change the
    maths, so it runs the reference)."""
    scheme = scheme_for_class(type(model))
    builder = None if scheme is None else scheme.fast_plan
    return None if builder is None else builder(model)
