"""FiLM conditioning: an MLP of the knobs scales and shifts the gate pre-activations."""

from __future__ import annotations

import torch

from model_family import ModelFamilyTests


class TestFiLM(ModelFamilyTests):
    cond = "film"
    PARAMS = {("gru", 2): 17217, ("gru", 1): 17185, ("lstm", 2): 22561}

    def neutralise(self, model):
        model.film_head.weight.zero_()  # modulation = head bias = [a_x=1, s_x=0, a_h=1, s_h=0]

    def plain_weights(self, model):
        rnn = model.rnn
        return rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh

    def formula_gates(self, model, x_t, c_t, h, extra):
        """``[a_x, s_x, a_h, s_h] = head(MLP(c))``; ``gx = a_x (W_x x + b_x) + s_x``, ``gh = a_h (W_h h + b_h) + s_h``."""
        rnn = model.rnn
        a_x, s_x, a_h, s_h = model.film_head(model.film(c_t)).chunk(4, -1)
        gx = a_x * (x_t @ rnn.weight_ih.T + rnn.bias_ih) + s_x
        gh = a_h * (h @ rnn.weight_hh.T + rnn.bias_hh) + s_h
        return gx, gh, None

    def test_init_scale_one_shift_zero(self):
        for cell in ("gru", "lstm"):
            model = self.make(cell)
            gh = model.gates * model.hidden_size
            knobs = torch.rand(64, 2) * 2 - 1
            a_x, s_x, a_h, s_h = model.modulation(knobs).detach().split(gh, dim=-1)
            for scale in (a_x, a_h):
                assert (scale - 1).abs().max() < 0.1
            for shift in (s_x, s_h):
                assert shift.abs().max() < 0.1
            assert (a_x[0] - a_x[1]).abs().max() > 0  # but the knobs do act

    def test_mlp_structure(self):
        model = self.make("gru", 2)
        linears = [m for m in model.film if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(2, 32), (32, 32)]
        assert model.film_head.out_features == 4 * 3 * 32
        narrow = self.make("gru", 2, film_hidden=(16, 8))  # the head reads the last MLP layer
        assert narrow.film_head.in_features == 8 and narrow(torch.randn(1, 5), torch.zeros(1, 2))[0].shape == (1, 5)

    def test_knob_runs_evaluate_the_mlp_once_per_value(self):
        model = self.make("gru", 2)
        calls = []
        model.film.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
        knobs = torch.zeros(2, 100, 2)
        knobs[0, 40:] = 0.5  # row 0: two runs; row 1: one run
        model(torch.randn(2, 100), knobs)
        assert calls == [3]
