"""Export a model's weights as flat float32 arrays for the inference kernels, scheme by scheme.

A *plan* holds the weights that do not depend on the knobs, and turns a table of knob values
``(U, K)`` (one row per run of constant knobs) into the per-run tables its kernel reads. The per-run
tables are computed with the reference module's own methods (``modulation``, ``generate``, its
``nn.Linear`` layers), so the hypernetworks are exactly the reference's; what is folded here:

* Concat: the knobs' part of the input product joins the input bias, ``bx = W_c c + b_ih``, so the
  RNN sees mono audio only.
* FiLM: ``gx = a_x (w x + b_x) + s_x`` becomes ``(a_x w) x + (a_x b_x + s_x)``; the hidden side keeps
  the shared ``W_h`` with the per-run scale ``a_h`` and shift ``a_h b_h + s_h``.
* StaticHyper: the generated cell is used as it is (one ``W_h`` per run).
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
from fxcap.modeling.fast.kernels import cell_kernel, dynamic_kernel, padded
from fxcap.modeling.film import FiLMRNN
from fxcap.modeling.static_hyper import StaticHyperRNN


def _np(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 NumPy copy of ``t`` (detached)."""
    return np.ascontiguousarray(t.detach().to(torch.float32).cpu().numpy())


def _pad_columns(w: np.ndarray) -> np.ndarray:
    """``w`` ``(n_in, n_out)`` with zero columns appended up to :func:`~fxcap.modeling.fast.kernels.padded` width."""
    out = np.zeros((w.shape[0], padded(w.shape[1])), dtype=np.float32)
    out[:, : w.shape[1]] = w
    return out


class Plan(ABC):
    """Flat weights of one model and the kernel that runs it (see the module doc).

    Attributes:
        row_bytes: bytes of one row of the per-run tables (bounds how many runs are built at once).
    """

    row_bytes: int

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
    def run(self, x, y, state, seg_ptr, seg_start, seg_row, tables: tuple[np.ndarray, ...]) -> None:
        """Run the kernel over ``x`` ``(B, T)`` into ``y``, updating ``state`` ``(B, S)`` in place."""


class CellPlan(Plan):
    """Concat, FiLM and StaticHyper: a plain GRU/LSTM with per-run weights (:func:`cell_kernel`)."""

    scaled = False

    def __init__(self, model: ConditionedRNN) -> None:
        super().__init__(model)
        gh = self.gates * self.hidden
        shared_whT = self.shared_whT(model)
        per_run_matrix = 0 if shared_whT is not None else gh * self.hidden
        self.row_bytes = 4 * (4 * gh + per_run_matrix + 1)
        self.whT = shared_whT
        self.kernel = cell_kernel(self.hidden, self.lstm, self.scaled)

    def shared_whT(self, model: ConditionedRNN) -> np.ndarray | None:
        """``(1, H, G*H)`` recurrent weight shared by every run, or ``None`` if generated per run."""
        return None

    def run(self, x, y, state, seg_ptr, seg_start, seg_row, tables):
        self.kernel(x, y, state, seg_ptr, seg_start, seg_row, *tables, self.wo, self.bo)


class ConcatPlan(CellPlan):
    def __init__(self, model: ConditionedRNN) -> None:
        rnn = model.rnn
        self.w_ih = rnn.weight_ih_l0.detach().float()
        self.b_ih = rnn.bias_ih_l0.detach().float()
        self.b_hh = rnn.bias_hh_l0.detach().float()
        super().__init__(model)

    def shared_whT(self, model):
        return _np(model.rnn.weight_hh_l0.t())[None]

    def tables(self, values):
        n = values.shape[0]
        wx = _np(self.w_ih[:, 0].expand(n, -1))
        bx = _np(F.linear(values, self.w_ih[:, 1:], self.b_ih))
        bh = _np(self.b_hh.expand(n, -1))
        return wx, bx, bh, bh, np.zeros(n, np.int64), self.whT


class FiLMPlan(CellPlan):
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
    def __init__(self, model: ConditionedRNN) -> None:
        self.model = model
        super().__init__(model)

    def tables(self, values):
        with torch.no_grad():
            w_x, w_h, b_x, b_h = self.model.generate(values)
        bh = _np(b_h)
        whT = _np(w_h.transpose(1, 2))
        return _np(w_x[..., 0]), _np(b_x), bh, bh, np.arange(values.shape[0], dtype=np.int64), whT


class DynamicHyperPlan(Plan):
    """DynamicHyper (:func:`dynamic_kernel`): shared weights, one hyper-input vector per run."""

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
        self.kernel = dynamic_kernel(self.hidden, model.hyper_size, model.nz, self.lstm)

    def tables(self, values):
        return (_np(F.linear(values, self.w_c, self.b_c)),)

    def run(self, x, y, state, seg_ptr, seg_start, seg_row, tables):
        self.kernel(x, y, state, seg_ptr, seg_start, seg_row, *tables, *self.weights, self.wo, self.bo)


PLANS: dict[type, Callable[[ConditionedRNN], Plan]] = {
    ConcatRNN: ConcatPlan,
    FiLMRNN: FiLMPlan,
    StaticHyperRNN: StaticHyperPlan,
    DynamicHyperRNN: DynamicHyperPlan,
}
"""Plan builder per model class (exact class: a subclass may change the math, so it runs the reference)."""


def make_plan(model: ConditionedRNN) -> Plan | None:
    """The plan of ``model``, or ``None`` for a model without a fast path (it then runs the reference)."""
    builder = PLANS.get(type(model))
    return None if builder is None else builder(model)
