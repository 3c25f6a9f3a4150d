"""FiLM conditioning: the knobs scale and shift the gate pre-activations of a GRU/LSTM.

An MLP ``K -> 32 -> 32`` (Linear + activation blocks) and a head ``Linear(32, 4*G*H)`` map the knobs
``c`` to four ``G*H`` vectors ``[a_x, s_x, a_h, s_h]``; the cell's pre-activations become::

    gx = a_x * (W_x x + b_x) + s_x        gh = a_h * (W_h h + b_h) + s_h

and then follow the ordinary GRU/LSTM update (:mod:`fxcap.modeling.cells`). Parameters: cell
``G*H*(1 + H + 2)``, MLP, head ``(32 + 1)*4*G*H``, output ``H + 1`` (GRU, K = 2: 17217; K = 1: 17185;
LSTM, K = 2: 22561). At init ``a = 1`` and ``s = 0`` up to small knob-dependent terms.

Computation: the MLP runs once per knob value (once per call for constant knobs, once per run of
equal values for a knob sequence); the input side ``gx`` is computed for all steps at once; only the
hidden side loops over time. State layout: ``[h]`` (GRU) or ``[h, c]`` (LSTM).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fxcap.modeling.base import CellWeights, ConditionedRNN, KnobSegments, ModelCost, make_mlp, mlp_macs, time_steps
from fxcap.modeling.cells import ELEMENTWISE_OPS_PER_UNIT, RecurrentWeights, cell_update
from fxcap.modeling.config import ModelConfig
from fxcap.modeling.init import init_head, init_mlp


class FiLMRNN(ConditionedRNN):
    """GRU/LSTM whose gate pre-activations are FiLM-modulated by an MLP of the knobs (see module doc)."""

    folds_at_setting = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        gh = self.gates * self.hidden_size
        self.rnn = RecurrentWeights(self.cell, 1, self.hidden_size)
        self.film = make_mlp(self.num_knobs, config.film_hidden, config.mlp_activation)
        init_mlp(self.film, config.mlp_activation)
        self.film_head = nn.Linear(config.film_hidden[-1], 4 * gh)
        ones, zeros = torch.ones(gh), torch.zeros(gh)
        init_head(self.film_head, torch.cat([ones, zeros, ones, zeros]))
        self._make_output()

    def modulation(self, knobs: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` knobs -> ``(N, 4*G*H)`` modulations ``[a_x, s_x, a_h, s_h]``."""
        return self.film_head(self.film(knobs))

    def _run(
        self, x: torch.Tensor, knobs: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        steps = x.shape[1]
        gh_size = self.gates * self.hidden_size
        if knobs.dim() == 2:
            mod = self.modulation(knobs)[:, None, :]  # (B, 1, 4*G*H), broadcast over time
        else:
            segments = KnobSegments.from_sequence(knobs)
            mod = segments.per_step(self.modulation(segments.values))  # (B, T, 4*G*H)
        a_x, s_x, a_h, s_h = mod.split(gh_size, dim=-1)
        gx = torch.addcmul(s_x, a_x, F.linear(x, self.rnn.weight_ih, self.rnn.bias_ih))  # (B, T, G*H)
        c_h = torch.addcmul(s_h, a_h, self.rnn.bias_hh)  # a_h * b_h + s_h
        gx, a_h, c_h = time_steps(gx, steps), time_steps(a_h, steps), time_steps(c_h, steps)
        w_hh = self.rnn.weight_hh.t()
        outputs = []
        for t in range(steps):
            gh = torch.addcmul(c_h[t], a_h[t], state[0] @ w_hh)
            state = cell_update(self.cell, gx[t], gh, state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1), state

    def cell_at(self, knobs: torch.Tensor) -> CellWeights:
        """At a fixed setting the modulations are constants: ``gx = (a_x W_x) x + (a_x b_x + s_x)``,
        ``gh = (a_h W_h) h + (a_h b_h + s_h)`` (``a_h`` scales the rows of ``W_h``)."""
        model = self._float64()
        with torch.no_grad():
            a_x, s_x, a_h, s_h = model.modulation(self._knob_row(knobs))[0].split(self.gates * self.hidden_size)
            rnn = model.rnn
            return CellWeights(
                self.cell, a_x[:, None] * rnn.weight_ih, a_h[:, None] * rnn.weight_hh,
                a_x * rnn.bias_ih + s_x, a_h * rnn.bias_hh + s_h,
            )

    def cost(self) -> ModelCost:
        out_macs, out_ops = self._output_cost()
        gh = self.gates * self.hidden_size
        macs = self.rnn.macs + out_macs
        # b_x add, a_x*(.)+s_x, a_h*(.)+(a_h*b_h+s_h), cell update, output bias
        ops = gh + 2 * gh + 2 * gh + ELEMENTWISE_OPS_PER_UNIT[self.cell] * self.hidden_size + out_ops
        per_change = mlp_macs(self.film) + self.film_head.weight.numel()
        return ModelCost(macs_per_sample=macs, macs_per_change=per_change, elementwise_per_sample=ops)
