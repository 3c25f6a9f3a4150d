"""Shared tests for every conditioned-RNN family (one subclass per scheme, like the ``nam`` package).

A subclass sets ``cond``, ``PARAMS`` (expected parameter counts) and implements
``neutralise(model)`` (switch the conditioning off in place) and ``plain_weights(model)`` (the
weights of the plain RNN the neutralised model must equal); scheme-specific init checks live in the
subclass.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fxcap.errors import ModelError
from fxcap.modeling.registry import ModelConfig, build_model


CELLS = ("gru", "lstm")


def tiny_batch(batch: int = 8, steps: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise input, 2 knobs, target ``tanh(gain(knob0) * x) * level(knob1)``."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, steps, generator=g) * 2 - 1) * 0.8
    knobs = torch.rand(batch, 2, generator=g) * 2 - 1
    y = torch.tanh((3 + 2 * knobs[:, :1]) * x) * (0.75 + 0.25 * knobs[:, 1:])
    return x, knobs, y


def random_knob_sequence(batch: int, steps: int, num_knobs: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, num_knobs, generator=g) * 2 - 1


def gru_cell(gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The GRU update written out (PyTorch's gate order r, z, n; ``r`` gates the whole ``gh_n``)."""
    (xr, xz, xn), (hr, hz, hn) = gx.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def lstm_cell(gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM update written out (gate order i, f, g, o)."""
    i, f, g, o = (gx + gh).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def cell_step(cell: str, gx, gh, h, c):
    return (gru_cell(gx, gh, h), c) if cell == "gru" else lstm_cell(gx, gh, h, c)


def perturb(model: nn.Module, scale: float = 0.5, seed: int = 5) -> None:
    """Add seeded noise to every parameter, ``scale`` times the parameter's own spread, so no
    conditioning term sits at its neutral value (scales away from 1, shifts away from 0, input-side
    and hidden-side modulations all different) while the recurrence stays stable: with noise of a
    fixed size, recurrent weights become chaotic and float32 and float64 runs part within 20 steps."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            spread = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.1
            p.add_(scale * spread * torch.randn(p.shape, generator=g))


class ModelFamilyTests:
    cond: str = ""
    PARAMS: dict[tuple[str, int], int] = {}

    # -- hooks ------------------------------------------------------------------------------------

    def neutralise(self, model: nn.Module) -> None:
        """Make the conditioning a no-op (in place)."""
        raise AssertionError("subclass must implement")

    def plain_weights(self, model: nn.Module) -> tuple[torch.Tensor, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of the plain RNN equal to the neutralised model."""
        raise AssertionError("subclass must implement")

    def formula_gates(self, model: nn.Module, x_t: torch.Tensor, c_t: torch.Tensor, h: torch.Tensor, extra):
        """The scheme's pre-activations written from its paper formula, independently of the package:
        ``x_t`` ``(B, 1)``, knobs ``c_t`` ``(B, K)``, previous ``h`` -> ``(gx, gh, extra)`` (``extra``:
        scheme state, None at the first step)."""
        raise AssertionError("subclass must implement")

    # -- helpers ----------------------------------------------------------------------------------

    def formula(self, model: nn.Module, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        """``y`` ``(B, T)`` from :meth:`formula_gates`, the cell updates above and ``w_o . h + b_o``."""
        batch, steps = x.shape
        if knobs.dim() == 2:
            knobs = knobs[:, None].expand(batch, steps, knobs.shape[-1])
        h = c = torch.zeros(batch, model.hidden_size, dtype=torch.float64)
        extra, out = None, []
        w_o, b_o = model.output.weight.double(), model.output.bias.double()
        for t in range(steps):
            gx, gh, extra = self.formula_gates(model, x[:, t : t + 1], knobs[:, t], h, extra)
            h, c = cell_step(model.cell, gx, gh, h, c)
            out.append(h @ w_o[0] + b_o[0])
        return torch.stack(out, 1)

    def make(self, cell: str = "gru", num_knobs: int = 2, **kwargs) -> nn.Module:
        return build_model(ModelConfig(cond=self.cond, cell=cell, num_knobs=num_knobs, **kwargs))

    # -- tests ------------------------------------------------------------------------------------

    def test_parameter_counts(self):
        assert self.PARAMS, "subclass must list the expected counts"
        for (cell, knobs), expected in self.PARAMS.items():
            model = self.make(cell, knobs)
            assert sum(p.numel() for p in model.parameters()) == expected, (cell, knobs)
            assert model.cost() is not None

    @pytest.mark.parametrize("cell", CELLS)
    def test_shapes_and_state_layout(self, cell):
        model = self.make(cell)
        x = torch.randn(3, 20)
        knobs = torch.zeros(3, 2)
        y, state = model(x, knobs)
        assert y.shape == (3, 20)
        assert state.shape == (3, model.state_size)
        assert model.state_size == sum(width for _, width in model.state_layout)
        assert [name for name, _ in model.state_layout][: 1 + (cell == "lstm")] == ["h", "c"][: 1 + (cell == "lstm")]
        parts = model.split_state(state)
        assert torch.allclose(y[:, -1], model.output(parts[0])[:, 0], atol=1e-6)  # h comes first
        y3, _ = model(x[..., None], knobs)
        assert y3.shape == (3, 20, 1) and torch.equal(y3[..., 0], y)
        empty, same = model(torch.zeros(3, 0), knobs, state)
        assert empty.shape == (3, 0) and torch.equal(same, state)

    @pytest.mark.parametrize("cell", CELLS)
    def test_zero_initial_state(self, cell):
        model = self.make(cell)
        x, knobs = torch.randn(2, 10), torch.zeros(2, 2)
        y0, s0 = model(x, knobs)
        y1, s1 = model(x, knobs, model.init_state(2))
        assert torch.equal(y0, y1) and torch.equal(s0, s1)
        assert torch.count_nonzero(model.init_state(2)) == 0

    @pytest.mark.parametrize("cell", CELLS)
    def test_streaming_equals_one_shot(self, cell):
        model = self.make(cell)
        x = torch.randn(2, 50)
        for knobs in (torch.tensor([[0.3, -0.7], [-1.0, 1.0]]), random_knob_sequence(2, 50)):
            y, state = model(x, knobs)
            pieces, s = [], None
            for start, stop in ((0, 7), (7, 8), (8, 31), (31, 50)):
                k = knobs if knobs.dim() == 2 else knobs[:, start:stop]
                piece, s = model(x[:, start:stop], k, s)
                pieces.append(piece)
            assert torch.allclose(torch.cat(pieces, 1), y, atol=1e-6)
            assert torch.allclose(s, state, atol=1e-6)

    @pytest.mark.parametrize("cell", CELLS)
    def test_knob_sequence_follows_knobs_per_step(self, cell):
        """A sequence changing every step equals one-sample calls with constant knobs."""
        model = self.make(cell)
        x = torch.randn(3, 12)
        knobs = random_knob_sequence(3, 12)
        knobs[1, 4:9] = knobs[1, 4]  # one row holds its value for a while, the others keep moving
        y, state = model(x, knobs)
        s, pieces = None, []
        for t in range(12):
            piece, s = model(x[:, t : t + 1], knobs[:, t], s)
            pieces.append(piece)
        assert torch.allclose(torch.cat(pieces, 1), y, atol=1e-6)
        assert torch.allclose(s, state, atol=1e-6)

    @pytest.mark.parametrize("cell", CELLS)
    def test_constant_sequence_equals_constant_knobs(self, cell):
        model = self.make(cell)
        x, knobs = torch.randn(2, 30), torch.tensor([[0.5, -0.25], [-0.9, 0.1]])
        y, s = model(x, knobs)
        y_seq, s_seq = model(x, knobs[:, None, :].expand(2, 30, 2))
        assert torch.allclose(y, y_seq, atol=1e-7) and torch.allclose(s, s_seq, atol=1e-7)

    @pytest.mark.parametrize("cell", CELLS)
    def test_knobs_change_the_output(self, cell):
        model = self.make(cell)
        x = torch.randn(1, 40)
        y_a, _ = model(x, torch.tensor([[-1.0, -1.0]]))
        y_b, _ = model(x, torch.tensor([[1.0, 1.0]]))
        assert (y_a - y_b).abs().max() > 1e-4

    @pytest.mark.parametrize("cell", CELLS)
    def test_gradients_reach_every_parameter(self, cell):
        x, knobs, y = tiny_batch(4, 16)
        for knob_input in (knobs, random_knob_sequence(4, 16)):  # constant and automated knobs
            model = self.make(cell)
            pred, _ = model(x, knob_input)
            (pred - y).square().mean().backward()
            for name, p in model.named_parameters():
                assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
                assert torch.isfinite(p.grad).all(), name

    @pytest.mark.parametrize("cell", CELLS)
    def test_overfits_a_tiny_batch(self, cell):
        model = self.make(cell)
        x, knobs, y = tiny_batch()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(120):
            pred, _ = model(x, knobs)
            loss = (pred - y).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        assert min(losses[-5:]) < losses[0] / 10, (losses[0], losses[-5:])

    @pytest.mark.parametrize("cell", CELLS)
    def test_neutral_conditioning_is_the_plain_rnn(self, cell):
        """With the conditioning switched off, the model equals nn.GRU/nn.LSTM with its weights
        (checks the gate arithmetic against PyTorch's own cells)."""
        model = self.make(cell)
        with torch.no_grad():
            self.neutralise(model)
            w_ih, w_hh, b_ih, b_hh = self.plain_weights(model)
            rnn = (nn.GRU if cell == "gru" else nn.LSTM)(w_ih.shape[1], model.hidden_size, batch_first=True)
            rnn.weight_ih_l0.copy_(w_ih)
            rnn.weight_hh_l0.copy_(w_hh)
            rnn.bias_ih_l0.copy_(b_ih)
            rnn.bias_hh_l0.copy_(b_hh)
            x, knobs = torch.randn(2, 40), random_knob_sequence(2, 40)
            inputs = x[..., None] if w_ih.shape[1] == 1 else torch.cat([x[..., None], knobs], -1)
            hidden, _ = rnn(inputs)
            expected = model.output(hidden)[..., 0]
            y, _ = model(x, knobs)
        assert torch.allclose(y, expected, atol=1e-5)

    @pytest.mark.parametrize("cell", CELLS)
    def test_every_path_matches_the_papers_formula(self, cell):
        """Reference modules, fast inference and fast training path against the scheme's formula
        written in the test (float64), with weights far from neutral, constant and automated knobs."""
        model = self.make(cell)
        perturb(model)
        g = torch.Generator().manual_seed(11)
        x = torch.rand(2, 24, generator=g) * 1.6 - 0.8
        for knobs in (torch.tensor([[0.7, -0.4], [-0.9, 0.2]]), random_knob_sequence(2, 24, seed=3)):
            with torch.no_grad():
                reference_model = self.make(cell).double()  # a float64 copy: the formula's own precision
                reference_model.load_state_dict({name: p.double() for name, p in model.state_dict().items()})
                expected = self.formula(reference_model, x.double(), knobs.double()).float()
                fast_inference, _ = model(x, knobs)
                model.fast = False
                reference, _ = model(x, knobs)
                model.fast = True
            fast_training, _ = model(x, knobs)  # with autograd: the training kernels
            assert fast_training.requires_grad
            for name, y in (("reference", reference), ("fast inference", fast_inference),
                            ("fast training", fast_training.detach())):
                assert torch.allclose(y, expected, atol=2e-5), (name, (y - expected).abs().max())
            other = self.formula(reference_model, x.double(), -knobs.double()).float()
            assert (expected - other).abs().max() > 2e-3  # the knobs act: the check can see a misrouted term

    @pytest.mark.parametrize("cell", CELLS)
    def test_main_cell_init(self, cell):
        """Orthogonal recurrent blocks, zero biases except the LSTM forget gate (+1 in total)."""
        model = self.make(cell)
        w_ih, w_hh, b_ih, b_hh = self.plain_weights(model)
        hidden = model.hidden_size
        for block in w_hh.split(hidden):
            assert torch.allclose(block.T @ block, torch.eye(hidden), atol=0.15)
        bias = (b_ih + b_hh).reshape(-1, hidden)
        expected = torch.zeros_like(bias)
        if cell == "lstm":
            expected[1] = 1.0
        assert torch.allclose(bias, expected, atol=0.15)
        assert float(model.output.bias.detach()) == 0.0

    def test_seeded_init_is_deterministic_and_leaves_global_rng(self):
        torch.manual_seed(123)
        before = torch.rand(1)
        torch.manual_seed(123)
        a = self.make(seed=7)
        after = torch.rand(1)
        b, c = self.make(seed=7), self.make(seed=8)
        assert torch.equal(before, after)
        for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
            assert torch.equal(pa, pb), name
        assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))

    def test_bad_inputs_give_clear_errors(self):
        model = self.make()
        x = torch.randn(2, 10)
        with pytest.raises(ModelError, match="knobs must have shape"):
            model(x, torch.zeros(2, 3))
        with pytest.raises(ModelError, match="knobs must have shape"):
            model(x, torch.zeros(2, 9, 2))
        with pytest.raises(ModelError, match="audio must have shape"):
            model(torch.randn(2, 10, 2), torch.zeros(2, 2))
        with pytest.raises(ModelError, match="state must have shape"):
            model(x, torch.zeros(2, 2), torch.zeros(2, 5))

    def test_accepts_numpy_and_other_dtypes(self):
        import numpy as np

        model = self.make()
        x = np.random.default_rng(0).standard_normal((1, 16))
        y, _ = model(x, np.array([[0.1, 0.2]]))  # float64 NumPy in, float32 out
        y_ref, _ = model(torch.from_numpy(x).float(), torch.tensor([[0.1, 0.2]]))
        assert y.dtype == torch.float32 and torch.allclose(y, y_ref)
