"""StaticHyper conditioning: a hypernetwork generates the whole cell from the knobs."""

from __future__ import annotations

import torch

from model_family import ModelFamilyTests


class TestStaticHyper(ModelFamilyTests):
    cond = "statichyper"
    PARAMS = {("gru", 2): 30369, ("gru", 1): 30361, ("lstm", 2): 40449}

    def heads(self, model):
        return model.head_weight_ih, model.head_weight_hh, model.head_bias_ih, model.head_bias_hh

    def neutralise(self, model):
        for head in self.heads(model):
            head.weight.zero_()  # generated weights = head biases, whatever the knobs

    def plain_weights(self, model):
        gh = model.gates * model.hidden_size
        w_ih, w_hh, b_ih, b_hh = (head.bias for head in self.heads(model))
        return w_ih.reshape(gh, 1), w_hh.reshape(gh, model.hidden_size), b_ih, b_hh

    def formula_gates(self, model, x_t, c_t, h, extra):
        """``e = MLP(c)``; ``gx = W_x(e) x + b_x(e)``, ``gh = W_h(e) h + b_h(e)`` with every weight generated."""
        e = model.hyper(c_t)
        batch, gh = x_t.shape[0], model.gates * model.hidden_size
        w_x = model.head_weight_ih(e).reshape(batch, gh, 1)
        w_h = model.head_weight_hh(e).reshape(batch, gh, model.hidden_size)
        gx = (w_x @ x_t[..., None])[..., 0] + model.head_bias_ih(e)
        return gx, (w_h @ h[..., None])[..., 0] + model.head_bias_hh(e), None

    def test_no_weights_of_its_own(self):
        model = self.make("gru")
        names = {name.split(".")[0] for name, _ in model.named_parameters()}
        assert names == {"hyper", "head_weight_ih", "head_weight_hh", "head_bias_ih", "head_bias_hh", "output"}

    def test_generated_weights_start_near_the_base_cell(self):
        model = self.make("lstm")
        with torch.no_grad():
            w_ih, w_hh, b_ih, b_hh = model.generate(torch.rand(32, 2) * 2 - 1)
            base = self.plain_weights(model)
        for generated, reference in zip((w_ih, w_hh), base[:2]):  # weights: within ~10 % of the base
            assert (generated - reference).std() < 0.1 * reference.std()
        for generated, reference in zip((b_ih, b_hh), base[2:]):  # biases: zero (forget +1) +- 0.1
            assert (generated - reference).abs().max() < 0.1
        assert (w_hh[0] - w_hh[1]).abs().max() > 0

    def test_mlp_structure(self):
        model = self.make("gru", 2)
        linears = [m for m in model.hyper if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(2, 8), (8, 8)]
        assert model.head_weight_hh.out_features == 3 * 32 * 32
        narrow = self.make("gru", 2, static_hidden=(6, 4))  # the heads read the last MLP layer
        assert narrow.head_weight_hh.in_features == 4 and narrow(torch.randn(1, 5), torch.zeros(1, 2))[0].shape == (1, 5)
