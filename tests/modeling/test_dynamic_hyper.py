"""DynamicHyper conditioning: a hyper-RNN of [h; c] rescales the gates every step."""

from __future__ import annotations

import torch

from fxcap.modeling.registry import ModelConfig, build_model
from model_family import ModelFamilyTests


class TestDynamicHyper(ModelFamilyTests):
    cond = "dynamichyper"
    PARAMS = {("gru", 2): 20289, ("gru", 1): 20169, ("lstm", 2): 21857}

    def neutralise(self, model):
        model.z_to_d.zero_()  # d_x = d_h = 1, d_b = 0

    def plain_weights(self, model):
        rnn = model.rnn
        return rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh

    def formula_gates(self, model, x_t, c_t, h, extra):
        """Hyper cell on ``[h_{t-1}; c_t]``, ``z = W_z h^``, ``d[kind, gate] = P[kind, gate].T z[kind, gate]``;
        ``gx = (1 + d_x) (W_x x) + b_x + d_b``, ``gh = (1 + d_h) (W_h h) + b_h``."""
        from model_family import cell_step

        batch, gates, nz, hidden = x_t.shape[0], model.gates, model.nz, model.hidden_size
        h_hyp, c_hyp = extra or (torch.zeros(batch, model.hyper_size, dtype=h.dtype),) * 2
        hyper = model.hyper_rnn
        hyp_x = torch.cat([h, c_t], -1) @ hyper.weight_ih.T + hyper.bias_ih
        h_hyp, c_hyp = cell_step(model.cell, hyp_x, h_hyp @ hyper.weight_hh.T + hyper.bias_hh, h_hyp, c_hyp)
        z = (h_hyp @ model.hyper_to_z.weight.T).reshape(batch, 3, gates, nz)
        d = torch.einsum("bkgn,kgnh->bkgh", z, model.z_to_d.reshape(3, gates, nz, hidden)).reshape(batch, 3, -1)
        rnn = model.rnn
        gx = (1 + d[:, 0]) * (x_t @ rnn.weight_ih.T) + rnn.bias_ih + d[:, 2]
        gh = (1 + d[:, 1]) * (h @ rnn.weight_hh.T) + rnn.bias_hh
        return gx, gh, (h_hyp, c_hyp)

    def test_paper_sizes_and_config_overrides(self):
        gru, lstm = self.make("gru"), self.make("lstm")
        assert (gru.hyper_size, gru.nz, lstm.nz) == (40, 12, 6)
        assert gru.rnn.weight_ih.shape == (96, 1)  # mono input: (G*H, 1), not the released code's shape
        assert gru.hyper_rnn.weight_ih.shape == (120, 34)  # input [h; c]
        assert gru.hyper_to_z.bias is None and gru.z_to_d.shape == (9, 12, 32)
        small = build_model(ModelConfig(cond="dynamichyper", dynamic_hidden=8, dynamic_nz=8))
        assert (small.hyper_size, small.nz) == (8, 8)
        expected = 3393 + 24 * (34 + 8 + 2) + 8 * 72 + 72 * 32
        assert sum(p.numel() for p in small.parameters()) == expected

    def test_state_carries_the_hyper_cell(self):
        gru, lstm = self.make("gru"), self.make("lstm")
        assert gru.state_layout == [("h", 32), ("h_hyper", 40)]
        assert lstm.state_layout == [("h", 32), ("c", 32), ("h_hyper", 40), ("c_hyper", 40)]

    def test_scalings_start_near_one(self):
        for cell in ("gru", "lstm"):
            model = self.make(cell)
            with torch.no_grad():
                h_hyper = torch.rand(256, model.hyper_size) * 2 - 1  # any reachable hyper state
                z = model.hyper_to_z(h_hyper).reshape(256, -1, model.nz).transpose(0, 1)
                d = torch.bmm(z, model.z_to_d)  # offsets of d_x, d_h from 1, and d_b
            assert d.abs().max() < 0.25
            assert d.abs().max() > 0
