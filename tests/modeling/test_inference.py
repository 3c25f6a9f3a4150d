"""The block-inference helper gives exactly (bit for bit) what the loops it replaced gave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fxcap.modeling.fast import accelerate
from fxcap.modeling.inference import run_blocks, stream_blocks
from fxcap.modeling.registry import ModelConfig, build_model


def _model(cond: str):
    # the paper's sizes: the compiled kernels are the ones the other tests and a real run use
    return build_model(ModelConfig(cond=cond, cell="gru", num_knobs=2)).eval()


def _audio(steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(np.arange(steps) * 0.07) + 0.1 * rng.standard_normal(steps)).astype(np.float32)


def _old_report_loop(model, x, knobs, block, batch):
    """The loop of ``fxcap.report.runs.render`` before the helper (the oracle)."""
    out = np.empty((knobs.shape[0], x.size), dtype=np.float32)
    with torch.no_grad():
        for first in range(0, knobs.shape[0], batch):
            k = torch.from_numpy(knobs[first : first + batch])
            state = None
            for start in range(0, x.size, block):
                chunk = torch.from_numpy(x[start : start + block])[None].expand(k.shape[0], -1)
                y, state = model(chunk, k, state)
                out[first : first + k.shape[0], start : start + chunk.shape[1]] = y.reshape(k.shape[0], -1).numpy()
    return out


@pytest.mark.parametrize("cond", ["concat", "dynamichyper"])
@pytest.mark.parametrize("fast", [True, False])
def test_report_excerpts_are_bit_identical(cond, fast):
    from fxcap.report.runs import render

    model = _model(cond)
    model.fast = fast
    x = _audio(300)
    knobs = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    expected = _old_report_loop(model, x, knobs, block=64, batch=2)
    assert np.array_equal(render(model, x, knobs, block=64, batch=2), expected)


@pytest.mark.parametrize("cond", ["film", "statichyper"])
def test_blocks_with_automation_match_the_old_streaming_loop(cond):
    """render_file's loop: knob automation per block, the state carried, through the fast renderer."""
    model = accelerate(_model(cond))
    x = torch.from_numpy(_audio(250))[None]
    ramp = torch.from_numpy(np.linspace(-1, 1, 500, dtype=np.float32).reshape(1, 250, 2))
    expected, state = [], None
    with torch.no_grad():
        for start in range(0, 250, 60):
            y, state = model(x[:, start : start + 60], ramp[:, start : start + 60], state)
            expected.append(y)
    got, final = run_blocks(model, x, ramp, block=60)
    assert torch.equal(got, torch.cat(expected, dim=1)) and torch.equal(final, state)


def test_one_call_and_streamed_blocks():
    model = _model("concat")
    x, knobs = torch.from_numpy(_audio(120))[None], torch.zeros(1, 2)
    with torch.no_grad():
        expected, state = model(x, knobs)
    got, final = run_blocks(model, x, knobs)  # block None: one call, as evaluate and the export self-test did
    assert torch.equal(got, expected) and torch.equal(final, state)
    parts = list(stream_blocks(model, [(x[:, :50], knobs), (x[:, 50:], knobs)]))
    assert [p[0].shape[1] for p in parts] == [50, 70]
    assert torch.is_grad_enabled()  # the helper leaves the caller's grad mode alone between blocks
    empty, _ = run_blocks(model, x[:, :0], knobs, block=16)
    assert empty.shape == (1, 0)
