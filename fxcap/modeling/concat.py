"""Concat conditioning: the knobs are extra input channels of a standard fused RNN.

The RNN input at every step is ``[x_t; c_t]`` (``1 + K`` values), so this is exactly ``nn.GRU`` /
``nn.LSTM`` (PyTorch's fused kernels) followed by ``Linear(H, 1)``. Parameters:
``G*H*(1 + K + H + 2) + H + 1`` (GRU, K = 2: 3585; K = 1: 3489; LSTM, K = 2: 4769).
State layout: ``[h]`` (GRU) or ``[h, c]`` (LSTM).
"""

from __future__ import annotations

import torch
from torch import nn

from fxcap.modeling.base import CellWeights, ConditionedRNN, ModelCost
from fxcap.modeling.cells import ELEMENTWISE_OPS_PER_UNIT
from fxcap.modeling.config import ModelConfig
from fxcap.modeling.init import init_recurrent


class ConcatRNN(ConditionedRNN):
    """``nn.GRU``/``nn.LSTM`` over ``[x; c]`` with a linear output (see module doc)."""

    folds_at_setting = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        rnn_cls = nn.GRU if self.cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(1 + self.num_knobs, self.hidden_size, num_layers=1, batch_first=True)
        init_recurrent(self.cell, self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0, self.rnn.bias_hh_l0)
        self._make_output()

    def _run(
        self, x: torch.Tensor, knobs: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        batch, steps, _ = x.shape
        if knobs.dim() == 2:
            knobs = knobs[:, None, :].expand(batch, steps, self.num_knobs)
        inputs = torch.cat([x, knobs], dim=-1)
        initial = tuple(part.unsqueeze(0).contiguous() for part in state)
        if self.cell == "gru":
            hidden, h = self.rnn(inputs, initial[0])
            return hidden, (h[0],)
        hidden, (h, c) = self.rnn(inputs, initial)
        return hidden, (h[0], c[0])

    def cell_at(self, knobs: torch.Tensor) -> CellWeights:
        """At a fixed setting ``c`` the knob columns of the input weights join the input bias:
        ``gx = W_x x + (W_c c + b_ih)``."""
        c = self._knob_row(knobs)[0]
        with torch.no_grad():
            w_ih = self.rnn.weight_ih_l0.double()
            return CellWeights(
                self.cell, w_ih[:, :1].clone(), self.rnn.weight_hh_l0.double().clone(),
                self.rnn.bias_ih_l0.double() + w_ih[:, 1:] @ c, self.rnn.bias_hh_l0.double().clone(),
            )

    def cost(self) -> ModelCost:
        out_macs, out_ops = self._output_cost()
        macs = self.rnn.weight_ih_l0.numel() + self.rnn.weight_hh_l0.numel() + out_macs
        bias_adds = 2 * self.gates * self.hidden_size
        ops = bias_adds + ELEMENTWISE_OPS_PER_UNIT[self.cell] * self.hidden_size + out_ops
        return ModelCost(macs_per_sample=macs, macs_per_change=0, elementwise_per_sample=ops)
