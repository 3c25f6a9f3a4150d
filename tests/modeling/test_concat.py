"""Concat conditioning: nn.GRU / nn.LSTM over [x; c]."""

from __future__ import annotations

import torch

from model_family import ModelFamilyTests


class TestConcat(ModelFamilyTests):
    cond = "concat"
    PARAMS = {("gru", 2): 3585, ("gru", 1): 3489, ("lstm", 2): 4769}

    def neutralise(self, model):
        pass  # the knobs are ordinary inputs: the model is the plain RNN over [x; c]

    def plain_weights(self, model):
        rnn = model.rnn
        return rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0

    def formula_gates(self, model, x_t, c_t, h, extra):
        """``gx = W_x [x; c] + b_x``, ``gh = W_h h + b_h``."""
        rnn = model.rnn
        gx = torch.cat([x_t, c_t], -1) @ rnn.weight_ih_l0.T + rnn.bias_ih_l0
        return gx, h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0, None

    def test_uses_the_fused_rnn(self):
        import torch.nn as nn

        assert isinstance(self.make("gru").rnn, nn.GRU) and isinstance(self.make("lstm").rnn, nn.LSTM)
        assert self.make("gru", 3).rnn.input_size == 4
