"""Knob-dependent gains (``fxcap.modeling.knob_gain``) around the recurrent cell."""

from __future__ import annotations

import math

import pytest
import torch

from fxcap.modeling.filters import FilteredRNN
from fxcap.modeling.knob_gain import KnobGain
from fxcap.modeling.registry import ModelConfig, build_model


def _set(gain: KnobGain, weight: list[float], bias: float) -> None:
    with torch.no_grad():
        gain.weight.copy_(torch.tensor([weight]))
        gain.bias.fill_(bias)


def test_gain_is_exp_of_a_linear_function_of_the_knobs_constant_and_per_sample():
    gain = KnobGain(2)
    _set(gain, [0.5, -1.5], 0.25)
    x = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]])
    knobs = torch.tensor([[0.2, -0.6], [-1.0, 1.0]])
    expected = [math.exp(0.5 * 0.2 - 1.5 * -0.6 + 0.25), math.exp(0.5 * -1.0 - 1.5 * 1.0 + 0.25)]
    with torch.no_grad():
        torch.testing.assert_close(gain(x, knobs), x * torch.tensor(expected)[:, None])
        ramp = torch.stack([torch.linspace(-1, 1, 3), torch.zeros(3)], dim=-1)[None].repeat(2, 1, 1)  # (2, 3, 2)
        per_sample = torch.tensor([math.exp(0.5 * v + 0.25) for v in (-1.0, 0.0, 1.0)])
        torch.testing.assert_close(gain(x, ramp), x * per_sample)


@pytest.mark.parametrize("cond", ["concat", "statichyper"])
def test_a_model_with_gains_starts_equal_to_one_without_and_applies_them_around_the_cell(cond):
    plain = build_model(ModelConfig(cond=cond, num_knobs=2, seed=3))
    gained = build_model(ModelConfig(cond=cond, num_knobs=2, seed=3, knob_gains=True))
    assert isinstance(gained, FilteredRNN) and gained.pre_filter is None and gained.post_filter is None
    assert sum(p.numel() for p in gained.parameters()) == sum(p.numel() for p in plain.parameters()) + 2 * (2 + 1)
    assert gained.cost().macs_per_sample == plain.cost().macs_per_sample + 2
    x = 0.3 * torch.randn(2, 400, generator=torch.Generator().manual_seed(4))
    knobs = torch.tensor([[0.3, -0.9], [-0.4, 0.8]])
    with torch.no_grad():
        torch.testing.assert_close(gained(x, knobs)[0], plain(x, knobs)[0])
        _set(gained.gain_in, [0.0, 1.2], -1.0)  # the input level follows the second knob
        _set(gained.gain_out, [0.3, -0.2], 0.5)
        g_in = torch.exp(knobs[:, 1] * 1.2 - 1.0)[:, None]
        g_out = torch.exp(0.3 * knobs[:, 0] - 0.2 * knobs[:, 1] + 0.5)[:, None]
        expected = g_out * plain(g_in * x, knobs)[0]
        torch.testing.assert_close(gained(x, knobs)[0], expected, rtol=1e-5, atol=1e-6)


def test_gains_follow_automated_knobs_sample_by_sample():
    gained = build_model(ModelConfig(cond="film", num_knobs=2, seed=1, knob_gains=True))
    _set(gained.gain_in, [1.5, 0.0], 0.0)
    _set(gained.gain_out, [-1.0, 0.0], 0.0)
    steps = 300
    ramp = torch.stack([torch.linspace(-1, 1, steps), torch.full((steps,), 0.4)], dim=-1)[None]
    x = 0.2 * torch.randn(1, steps, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = gained(x, ramp)[0]
        inner = gained.core(x * torch.exp(1.5 * ramp[..., 0]), ramp)[0]
        torch.testing.assert_close(y, inner * torch.exp(-ramp[..., 0]), rtol=1e-5, atol=1e-6)


def test_gains_are_trained():
    gained = build_model(ModelConfig(cond="concat", num_knobs=2, seed=1, knob_gains=True))
    x = 0.2 * torch.randn(2, 200, generator=torch.Generator().manual_seed(2))
    y, _ = gained(x, torch.tensor([[0.5, -0.5], [-0.5, 0.5]]))
    (y - 2 * x).square().mean().backward()
    assert float(gained.gain_in.weight.grad.abs().sum()) > 0 and float(gained.gain_out.bias.grad.abs()) > 0
