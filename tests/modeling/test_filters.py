"""Learned linear filters (``fxcap.modeling.filters``): exact against the recursion they stand for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from fxcap.errors import ModelError
from fxcap.modeling import filters as F
from fxcap.modeling.registry import ModelConfig, build_model


def _random_filter(poles: int, seed: int = 0) -> F.LearnedIIR:
    torch.manual_seed(seed)
    f = F.LearnedIIR(poles)
    with torch.no_grad():
        f.residues.copy_(torch.randn(poles))
        f.direct.fill_(0.7)
        f.log_tau.add_(0.3 * torch.randn(poles))
    return f


def _scipy_reference(f: F.LearnedIIR, x: np.ndarray) -> np.ndarray:
    """The same filter as a sum of first-order recursions, run by scipy: ``d x + sum_k r_k / (1 - p_k z^-1) x``."""
    p = f.pole_values().detach().numpy()
    r = f.residues.detach().double().numpy()
    y = float(f.direct.detach()) * x
    for pk, rk in zip(p, r):
        y = y + rk * lfilter([1.0], [1.0, -pk], x, axis=-1)
    return y


def test_filter_equals_the_recursion_over_several_blocks(monkeypatch):
    monkeypatch.setattr(F, "BLOCK", 1000)  # 4.5 blocks: the state is carried between FFT blocks
    f = _random_filter(4)
    x = torch.randn(2, 4500, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y, state = f(x)
    expected = _scipy_reference(f, x.numpy())
    assert np.max(np.abs(y.detach().numpy() - expected)) < 1e-9 * np.max(np.abs(expected))
    # the state is each section's s_k after the last sample
    p = f.pole_values().detach().numpy()
    s_last = np.stack([lfilter([1.0], [1.0, -pk], x.numpy(), axis=-1)[:, -1] for pk in p], axis=-1)
    np.testing.assert_allclose(state.detach().numpy(), s_last, rtol=1e-9, atol=1e-9)


def test_streamed_blocks_equal_one_call():
    f = _random_filter(3, seed=2)
    x = torch.randn(3, 3000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    whole, _ = f(x)
    a, state = f(x[:, :1234])
    b, _ = f(x[:, 1234:], state)
    torch.testing.assert_close(torch.cat([a, b], dim=1), whole, rtol=0, atol=1e-10)


def test_a_new_filter_is_the_identity_and_learns_a_high_pass():
    f = F.LearnedIIR(2)
    x = torch.randn(1, 2048, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(f(x)[0], x)
    # a 20 Hz high-pass at 48 kHz (time constant ~380 samples): one pole, residue -(1 - p)
    target = torch.from_numpy(lfilter([1.0, -1.0], [1.0, -np.exp(-2 * np.pi * 20 / 48000)], x.double().numpy())).float()
    optimizer = torch.optim.Adam(f.parameters(), lr=0.05)
    for _ in range(300):
        loss = (f(x)[0] - target).square().mean() / target.square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 1e-3


@pytest.mark.parametrize("cond", ["concat", "film", "statichyper", "dynamichyper"])
def test_filtered_model_starts_equal_to_the_plain_one_and_streams(cond):
    plain = build_model(ModelConfig(cond=cond, num_knobs=2, seed=5))
    filtered = build_model(ModelConfig(cond=cond, num_knobs=2, seed=5, pre_filter_poles=3, post_filter_poles=2))
    assert isinstance(filtered, F.FilteredRNN)
    extra = (2 * 3 + 1) + (2 * 2 + 1)
    assert sum(p.numel() for p in filtered.parameters()) == sum(p.numel() for p in plain.parameters()) + extra
    assert filtered.cost().macs_per_sample == plain.cost().macs_per_sample + extra
    x = 0.3 * torch.randn(2, 600, generator=torch.Generator().manual_seed(6))
    knobs = torch.tensor([[0.2, -0.5], [0.9, 0.1]])
    with torch.no_grad():
        torch.testing.assert_close(filtered(x, knobs)[0], plain(x, knobs)[0], rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            filtered.pre_filter.residues.fill_(-0.01)
            filtered.post_filter.residues.fill_(0.02)
        whole, end = filtered(x, knobs)
        a, state = filtered(x[:, :250], knobs)
        b, end2 = filtered(x[:, 250:], knobs, state)
    assert state.shape == (2, plain.state_size + 5)
    torch.testing.assert_close(torch.cat([a, b], dim=1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(end2, end, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(whole, plain(x, knobs)[0].detach(), atol=1e-3)  # the filters act


def test_bad_filter_settings_are_one_line_errors():
    with pytest.raises(ModelError, match="pre_filter_poles"):
        ModelConfig(pre_filter_poles=-1)
    with pytest.raises(ModelError, match="at least one pole"):
        F.LearnedIIR(0)
    f = F.FilteredRNN(build_model(ModelConfig(hidden_size=4)), 1, 1)
    with pytest.raises(ModelError, match="state must have shape"):
        f(torch.zeros(1, 10), torch.zeros(1, 2), torch.zeros(1, 3))


def test_one_step_equals_the_fft_path():
    f = _random_filter(3, seed=7)
    x = torch.randn(2, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    whole, end = f(x)
    state, outputs = None, []
    for t in range(50):
        y, state = f(x[:, t : t + 1], state)
        outputs.append(y)
    torch.testing.assert_close(torch.cat(outputs, dim=1), whole, rtol=0, atol=1e-10)
    torch.testing.assert_close(state, end, rtol=0, atol=1e-10)


def test_a_filtered_model_exports_to_onnx_and_nothing_else(tmp_path):
    pytest.importorskip("onnxruntime")
    from fxcap.modeling.export import export_model
    from fxcap.modeling.export.common import ExportMeta

    model = build_model(ModelConfig(cond="film", pre_filter_poles=2, post_filter_poles=2, knob_gains=True))
    with torch.no_grad():  # realistic filters: a few dB of low-frequency shelf (an extreme gain amplifies float32 rounding)
        model.pre_filter.residues.copy_(torch.tensor([-0.3, 1e-4]))
        model.post_filter.residues.copy_(torch.tensor([0.2, -1e-4]))
    meta = ExportMeta(scheme="film", cell="gru", hidden_size=32, sample_rate=48000,
                      knobs=[{"name": "drive"}, {"name": "tone"}], state_layout=list(model.state_layout),
                      model_config=model.config.to_dict())
    report = export_model(model, meta, tmp_path / "m.onnx", "onnx")
    assert report["max_abs_error"] < 1e-4 and report["graph"] == "scan"
    for name in ("rtneural", "aidax", "nam"):
        with pytest.raises(ModelError, match="learned input/output filters.*export it as onnx") as error:
            export_model(model, meta, tmp_path / "m.out", name)
        assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
