"""The even-order gain (``ModelConfig.even_gain``): the cell run on ``x`` and ``-x``, its even part scaled."""

from __future__ import annotations

import math

import pytest
import torch

from fxcap.errors import ModelError
from fxcap.modeling.filters import FilteredRNN
from fxcap.modeling.registry import ModelConfig, build_model

SCHEMES = ["concat", "film", "statichyper", "dynamichyper"]


def _audio(steps: int = 400, seed: int = 4) -> torch.Tensor:
    return 0.4 * torch.randn(2, steps, generator=torch.Generator().manual_seed(seed))


def _set_even_gain(model: FilteredRNN, weight: list[float], bias: float) -> None:
    with torch.no_grad():
        model.even_gain.weight.copy_(torch.tensor([weight]))
        model.even_gain.bias.fill_(bias)


@pytest.mark.parametrize("cond", SCHEMES)
def test_a_model_with_the_even_gain_starts_equal_to_one_without_and_streams(cond):
    plain = build_model(ModelConfig(cond=cond, num_knobs=2, seed=3, pre_filter_poles=2, post_filter_poles=2)).eval()
    split = build_model(ModelConfig(cond=cond, num_knobs=2, seed=3, pre_filter_poles=2, post_filter_poles=2, even_gain=True)).eval()
    assert sum(p.numel() for p in split.parameters()) == sum(p.numel() for p in plain.parameters()) + (2 + 1)
    core_macs = plain.core.cost().macs_per_sample
    assert split.cost().macs_per_sample == plain.cost().macs_per_sample + core_macs + 3  # a second run of the cell
    assert split.state_size == plain.state_size + plain.core.state_size
    x, knobs = _audio(), torch.tensor([[0.3, -0.6], [-1.0, 1.0]])
    with torch.no_grad():
        y_plain, _ = plain(x, knobs)
        y_split, state = split(x, knobs)
        first, mid = split(x[:, :150], knobs)
        second, end = split(x[:, 150:], knobs, mid)
    torch.testing.assert_close(y_split, y_plain, rtol=0, atol=1e-6)  # odd + even = the cell's own output
    torch.testing.assert_close(torch.cat([first, second], dim=1), y_split, rtol=0, atol=1e-6)
    torch.testing.assert_close(end, state, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cond", ["concat", "film"])
def test_the_output_is_the_odd_part_plus_the_gained_even_part(cond):
    """Against the formula, from two runs of the bare cell, and the gain ``exp(w . c + b)`` by hand."""
    model = build_model(ModelConfig(cond=cond, num_knobs=2, seed=5, even_gain=True)).eval()
    _set_even_gain(model, [1.5, -0.5], -0.7)
    x = _audio(seed=8)
    knobs = torch.tensor([[0.2, -0.6], [-1.0, 0.4]])
    with torch.no_grad():
        plus, _ = model.core(x, knobs)
        minus, _ = model.core(-x, knobs)
        y, _ = model(x, knobs)
    gain = torch.tensor([math.exp(1.5 * 0.2 - 0.5 * -0.6 - 0.7), math.exp(1.5 * -1.0 - 0.5 * 0.4 - 0.7)])[:, None]
    expected = 0.5 * (plus - minus) + gain * 0.5 * (plus + minus)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)
    assert float((y - plus).abs().max()) > 1e-3  # the gain is not 1: the test can tell the parts apart


def test_with_the_even_gain_at_zero_the_model_is_odd_and_its_harmonics_are_odd():
    """``e = 0``: ``y(-x) = -y(x)`` exactly, so a sine comes out with no 2nd harmonic (and no DC)."""
    model = build_model(ModelConfig(cond="concat", num_knobs=1, seed=2, pre_filter_poles=2, post_filter_poles=2, even_gain=True))
    model.eval()
    _set_even_gain(model, [0.0], -80.0)
    knobs = torch.tensor([[0.5]])
    t = torch.arange(4800) / 48000
    x = 0.8 * torch.sin(2 * math.pi * 1000 * t)[None]
    with torch.no_grad():
        y, _ = model(x, knobs)
        y_neg, _ = model(-x, knobs)
        y_plain, _ = model.core(x, knobs)
    torch.testing.assert_close(y_neg, -y, rtol=0, atol=1e-6)
    spectrum = torch.fft.rfft(y[0, 2400:] * torch.hann_window(2400)).abs()
    plain_spectrum = torch.fft.rfft(y_plain[0, 2400:] * torch.hann_window(2400)).abs()
    bin_hz = 48000 / 2400
    h1, h2 = spectrum[int(1000 / bin_hz)], spectrum[int(2000 / bin_hz)]
    assert float(h2 / h1) < 1e-4 < float(plain_spectrum[int(2000 / bin_hz)] / plain_spectrum[int(1000 / bin_hz)])


def test_the_even_gain_trains_and_every_export_refuses_it_in_one_line(tmp_path):
    from fxcap.modeling.export import export_model, formats_for
    from fxcap.modeling.export.common import ExportMeta

    model = build_model(ModelConfig(cond="film", num_knobs=2, seed=1, even_gain=True))
    x, knobs = _audio(200), torch.tensor([[0.3, -0.6], [-1.0, 1.0]])
    y, _ = model(x, knobs)
    y.square().mean().backward()
    assert model.even_gain.bias.grad is not None and float(model.even_gain.bias.grad.abs()) > 0
    assert formats_for(model) == []
    meta = ExportMeta(scheme="film", cell="gru", hidden_size=32, sample_rate=48000,
                      knobs=[{"name": "drive"}, {"name": "tone"}], state_layout=list(model.state_layout),
                      model_config=model.config.to_dict())
    for fmt in ("onnx", "rtneural", "nam", "aidax"):
        with pytest.raises(ModelError, match="even_gain") as caught:
            export_model(model, meta, tmp_path / f"m.{fmt}", fmt)
        assert "\n" not in str(caught.value)


def test_even_log_share_is_the_log_energy_share_of_the_last_even_part():
    model = build_model(ModelConfig(cond="concat", num_knobs=2, seed=6, even_gain=True))
    _set_even_gain(model, [0.0, 0.0], -1.0)
    x, knobs = _audio(300, seed=9), torch.tensor([[0.3, -0.6], [-1.0, 1.0]])
    target = 0.5 * _audio(300, seed=10)
    with pytest.raises(ModelError, match="forward pass"):
        model.even_log_share(target)
    model(x, knobs)
    with torch.no_grad():
        plus, _ = model.core(x, knobs)
        minus, _ = model.core(-x, knobs)
    even = math.exp(-1.0) * 0.5 * (plus + minus)
    share = even.square().mean(-1) / target.square().mean(-1)
    expected = torch.log(share + 1e-7).mean()
    torch.testing.assert_close(model.even_log_share(target).detach(), expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        model(x, knobs)  # a pass without gradients keeps nothing to penalise
    with pytest.raises(ModelError, match="forward pass"):
        model.even_log_share(target)


def test_the_even_penalty_turns_the_even_part_down_and_needs_an_even_gain(tiny_dataset, tmp_path):
    from fxcap.modeling.train import TrainConfig, load_run, train

    config = TrainConfig(window=512, batch_size=4, steps_per_epoch=10, max_epochs=2, valid_windows=8, lr=2e-2, threads=1)
    with pytest.raises(ModelError, match="--even-gain"):
        train(tiny_dataset, ModelConfig(cond="concat", num_knobs=1), tmp_path / "plain", TrainConfig(**{**config.to_dict(), "even_penalty": 0.1}))
    assert not (tmp_path / "plain").exists()  # refused before the run folder was made
    with pytest.raises(ModelError, match="even_penalty must be zero or positive"):
        TrainConfig(even_penalty=-1.0)
    shares = {}
    x, target = _audio(1024, seed=11)[:1], 0.4 * _audio(1024, seed=11)[:1]
    for penalty in (0.0, 0.5):
        run = tmp_path / f"p{penalty}"
        train(tiny_dataset, ModelConfig(cond="concat", num_knobs=1, even_gain=True), run, TrainConfig(**{**config.to_dict(), "even_penalty": penalty}))
        model, _ = load_run(run, "last")
        model(x, torch.zeros(1, 1))
        shares[penalty] = float(model.even_log_share(target).detach())
    # 20 steps from the same seed and windows: without the penalty in the loss the two runs would be identical
    assert shares[0.5] < shares[0.0] - 0.2  # nats: the penalty took the even part's share down
