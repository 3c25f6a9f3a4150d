"""The knob-conditioned linear path (``fxcap.modeling.linear_path``) and the penalty that trains it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from fxcap.errors import ModelError
from fxcap.modeling.filters import FilteredRNN
from fxcap.modeling.linear_path import KnobLinearPath
from fxcap.modeling.losses import energy_ratio
from fxcap.modeling.registry import ModelConfig, build_model


def _random_path(poles: int = 3, seed: int = 0) -> KnobLinearPath:
    torch.manual_seed(seed)
    path = KnobLinearPath(2, poles).double()
    with torch.no_grad():
        path.head.weight.normal_(0.0, 0.5)
        path.head.bias.normal_(0.0, 0.5)
        path.log_tau.add_(0.3 * torch.randn(poles, dtype=torch.float64))
    return path


def _formula(path: KnobLinearPath, x: np.ndarray, knobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``d(c) x + sum_m r_m(c) s_m`` with ``s_m = x / (1 - p_m z^-1)`` run by scipy, and ``g(c)``, for
    knobs held constant per item; the MLP is read from the module's own layers."""
    with torch.no_grad():
        out = path.head(path.mlp(torch.from_numpy(knobs))).numpy()
    gain, direct, residues = 1.0 + out[:, 0], out[:, 1], out[:, 2:]
    poles = path.pole_values().detach().numpy()
    y = direct[:, None] * x
    for m, p in enumerate(poles):
        y = y + residues[:, m : m + 1] * lfilter([1.0], [1.0, -p], x, axis=-1)
    return y, gain


def test_the_path_equals_its_formula_over_several_blocks(monkeypatch):
    from fxcap.modeling import linear_path

    monkeypatch.setattr(linear_path, "BLOCK", 700)  # the state is carried between FFT blocks
    path = _random_path()
    x = torch.randn(2, 2000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    knobs = torch.tensor([[0.3, -0.8], [-1.0, 0.5]], dtype=torch.float64)
    linear, gain, state = path(x, knobs)
    expected, expected_gain = _formula(path, x.numpy(), knobs.numpy())
    np.testing.assert_allclose(linear.detach().numpy(), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gain.detach().numpy()[:, 0], expected_gain, rtol=1e-12)
    assert len(set(np.round(expected_gain, 6))) == 2  # the knobs choose the cell's gain
    poles = path.pole_values().detach().numpy()
    s_last = np.stack([lfilter([1.0], [1.0, -p], x.numpy(), axis=-1)[:, -1] for p in poles], axis=-1)
    np.testing.assert_allclose(state.detach().numpy(), s_last, rtol=1e-9, atol=1e-9)


def test_one_step_at_a_time_and_automation_equal_the_block_path():
    path = _random_path(seed=2)
    x = torch.randn(2, 60, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    knobs = torch.tensor([[0.1, 0.2], [-0.4, 0.9]], dtype=torch.float64)
    whole, gain, end = path(x, knobs)
    state, outputs = None, []
    for t in range(60):
        y, step_gain, state = path(x[:, t : t + 1], knobs, state)
        outputs.append(y)
    torch.testing.assert_close(torch.cat(outputs, 1), whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(state, end, rtol=0, atol=1e-12)
    # a knob that jumps half way: the same as two calls with the state carried
    moving = knobs[:, None, :].repeat(1, 60, 1)
    moving[:, 30:, 0] = 0.7
    jumped, gains, _ = path(x, moving)
    first, _, mid = path(x[:, :30], knobs)
    second, _, _ = path(x[:, 30:], moving[:, 30], mid)
    torch.testing.assert_close(jumped, torch.cat([first, second], 1), rtol=0, atol=1e-12)
    assert gains.shape == (2, 60) and not torch.equal(gains[:, 0], gains[:, -1])


@pytest.mark.parametrize("cond", ["concat", "film", "statichyper", "dynamichyper"])
def test_a_model_with_the_path_starts_equal_to_the_one_without_and_streams(cond):
    plain = build_model(ModelConfig(cond=cond, num_knobs=2, hidden_size=8, seed=5, pre_filter_poles=2))
    with_path = build_model(ModelConfig(cond=cond, num_knobs=2, hidden_size=8, seed=5, pre_filter_poles=2, linear_path=True,
                                        linear_path_poles=3))
    assert isinstance(with_path, FilteredRNN) and with_path.state_layout[-1] == ("linear", 3)
    extra = sum(p.numel() for p in with_path.linear_path.parameters())
    assert sum(p.numel() for p in with_path.parameters()) == sum(p.numel() for p in plain.parameters()) + extra
    assert with_path.cost().macs_per_sample == plain.cost().macs_per_sample + 2 * 3 + 2
    assert with_path.cost().macs_per_change == plain.cost().macs_per_change + 2 * 16 + 16 * (3 + 2)  # the MLP K -> 16 -> M + 2
    x = 0.3 * torch.randn(2, 500, generator=torch.Generator().manual_seed(6))
    knobs = torch.tensor([[0.2, -0.5], [0.9, 0.1]])
    with torch.no_grad():
        torch.testing.assert_close(with_path(x, knobs)[0], plain(x, knobs)[0], rtol=0, atol=0)
        with_path.linear_path.head.bias.copy_(torch.tensor([-0.5, 0.3, 0.1, -0.2, 0.05]))
        whole, end = with_path(x, knobs)
        a, state = with_path(x[:, :200], knobs)
        b, end2 = with_path(x[:, 200:], knobs, state)
        y, _, parts = with_path.forward_parts(x, knobs)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(end2, end, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["nonlinear"] + parts["linear"], y)
    torch.testing.assert_close(parts["nonlinear"], 0.5 * plain(x, knobs)[0].detach(), rtol=1e-4, atol=1e-6)  # g = 1 - 0.5


def test_the_path_makes_an_identity_device_exact_with_the_cell_turned_off():
    model = build_model(ModelConfig(cond="concat", num_knobs=2, hidden_size=8, linear_path=True, linear_path_poles=2))
    with torch.no_grad():  # g = 1 + (-1) = 0, d = 1, r = 0: the output is the input, whatever the cell does
        model.linear_path.head.bias.copy_(torch.tensor([-1.0, 1.0, 0.0, 0.0]))
        x = 0.5 * torch.randn(3, 400, generator=torch.Generator().manual_seed(7))
        y, _ = model(x, torch.rand(3, 2) * 2 - 1)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-7)


def test_training_the_path_learns_a_knob_dependent_filter():
    """A first-order low-pass whose corner the knob moves (500 Hz to 3.5 kHz): in 200 steps the path
    fits it (ESR 0.005 measured) where one filter for every setting cannot (0.15)."""
    from fxcap.modeling.filters import LearnedIIR

    x = torch.randn(4, 1024, generator=torch.Generator().manual_seed(8))
    knob = torch.tensor([-1.0, -0.3, 0.4, 1.0])
    poles = torch.exp(-2 * np.pi * (500 + 1500 * (knob + 1)) / 48000)
    target = torch.stack([torch.from_numpy(lfilter([1 - float(p)], [1.0, -float(p)], x[i].double().numpy())).float()
                          for i, p in enumerate(poles)])

    def fit(module, run) -> float:
        optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
        for _ in range(200):
            loss = (run() - target).square().sum() / target.square().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss.item()

    torch.manual_seed(0)
    path = KnobLinearPath(1, 4, tau_range=(1.0, 100.0))
    one_filter = LearnedIIR(4, (1.0, 100.0))
    assert fit(path, lambda: path(x, knob[:, None])[0]) < 0.01
    assert fit(one_filter, lambda: one_filter(x)[0]) > 0.1


def test_energy_ratio_by_hand():
    part = torch.tensor([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 2.0]])
    target = torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    assert float(energy_ratio(part, target)) == pytest.approx(8.0 / 20.0)
    assert float(energy_ratio(part, target, power=torch.tensor([4.0, 0.5]))) == pytest.approx((1.0 / 4.0 + 1.0 / 0.5) / 2)
    # emphasis 0.5: part rows become [-1.5, 1.5, -1.5] and [0, 0, 2], target rows [1, 1, 1] and [0.5, 0.5, 0.5]
    assert float(energy_ratio(part, target, emphasis=0.5)) == pytest.approx((3 * 2.25 + 4.0) / (3 + 0.75))


def test_the_penalty_needs_a_linear_path_and_is_added_to_the_training_loss(tiny_dataset, tmp_path):
    import json

    from fxcap.modeling.train import TrainConfig, train

    with pytest.raises(ModelError, match="model config: linear_path_poles"):
        ModelConfig(linear_path=True, linear_path_poles=-1)
    with pytest.raises(ModelError, match="nonlinear_energy_weight must be zero or positive"):
        TrainConfig(nonlinear_energy_weight=-0.1)
    one_step = dict(window=512, batch_size=4, steps_per_epoch=1, max_epochs=1, valid_windows=4)
    with pytest.raises(ModelError, match="add --linear-path"):
        train(tiny_dataset, ModelConfig(hidden_size=4, num_knobs=1), tmp_path / "none",
              TrainConfig(**one_step, nonlinear_energy_weight=0.1))
    losses = {}
    for weight in (0.0, 10.0):  # the same first batch and initial weights: only the penalty differs
        run = tmp_path / f"w{weight}"
        train(tiny_dataset, ModelConfig(hidden_size=4, num_knobs=1, linear_path=True), run,
              TrainConfig(**one_step, nonlinear_energy_weight=weight))
        losses[weight] = json.loads((run / "metrics.json").read_text())[0]["train_loss"]
    assert losses[10.0] > losses[0.0] + 1e-3  # the cell's energy (g = 1 at the start) is penalised


def test_a_model_with_the_path_exports_to_onnx_and_nothing_else(tmp_path):
    pytest.importorskip("onnxruntime")
    from fxcap.modeling.export import export_model
    from fxcap.modeling.export.common import ExportMeta

    model = build_model(ModelConfig(cond="film", hidden_size=4, linear_path=True, linear_path_poles=3))
    with torch.no_grad():
        model.linear_path.head.bias.copy_(torch.tensor([-0.5, 0.3, 0.1, -0.02, 0.01]))
        model.linear_path.head.weight[:2].normal_(0.0, 0.3, generator=torch.Generator().manual_seed(9))  # g and d move with the knobs

    meta = ExportMeta(scheme="film", cell="gru", hidden_size=4, sample_rate=48000,
                      knobs=[{"name": "drive"}, {"name": "tone"}], state_layout=list(model.state_layout),
                      model_config=model.config.to_dict())
    report = export_model(model, meta, tmp_path / "m.onnx", "onnx")
    assert report["max_abs_error"] < 1e-4
    for name in ("rtneural", "aidax", "nam"):
        with pytest.raises(ModelError, match="or a linear path.*export it as onnx"):
            export_model(model, meta, tmp_path / "m.out", name)
