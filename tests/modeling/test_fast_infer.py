"""Fast inference (numba kernels) against the reference modules: equal outputs and states within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import fxcap.modeling.fast as fast
from fxcap.capture.profiles import Knob
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.fast import infer
from fxcap.modeling.fast.infer import FastRenderer, accelerate, fast_forward, knob_runs, supports
from fxcap.modeling.compute_context import compute_context
from fxcap.modeling.fast.threads import chunks
from fxcap.modeling.film import FiLMRNN
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.render import KnobSchedule, render_file
from fast_cases import CASES, guitar, make_model, ramp_and_steps, reference

TOL = 1e-5


def run_both(model, x, knobs, state=None):
    with torch.no_grad():
        with reference(model):
            expected = model(x, knobs, state)
        got = model(x, knobs, state)
    return expected, got


def assert_close(expected, got):
    assert got[0].shape == expected[0].shape and got[1].shape == expected[1].shape
    assert float((got[0] - expected[0]).abs().max()) < TOL
    assert float((got[1] - expected[1]).abs().max()) < TOL


@pytest.mark.parametrize("cond, cell", CASES)
def test_constant_knobs_batched(cond, cell):
    """Three streams at three knob settings (batched rendering) equal the reference."""
    model = make_model(cond, cell)
    x = torch.from_numpy(np.stack([guitar(2000, s) for s in (0.40, 0.45, 0.60)]))
    knobs = torch.tensor([[-1.0, 1.0], [0.25, -0.5], [0.9, 0.1]])
    expected, got = run_both(model, x, knobs)
    assert_close(expected, got)
    assert float(expected[0].abs().max()) > 0.05  # the comparison is not between silent outputs
    other, _ = run_both(model, x, knobs.flip(0))
    assert float((other[0] - expected[0]).abs().max()) > 1e-3  # and the knobs do matter


@pytest.mark.parametrize("cond, cell", CASES)
def test_knob_automation(cond, cell):
    """A ramp changing every sample and held values with jumps, from a non-zero state."""
    model = make_model(cond, cell)
    x = torch.from_numpy(np.stack([guitar(1500, 0.42), guitar(1500, 0.5)]))
    state = 0.3 * torch.randn(2, model.state_size, generator=torch.Generator().manual_seed(0))
    expected, got = run_both(model, x, ramp_and_steps(1500), state)
    assert_close(expected, got)


@pytest.mark.parametrize("cond, cell", CASES)
def test_block_streaming_mixes_with_the_reference(cond, cell):
    """Blocks alternate between the fast path and the reference, passing the flat state along."""
    model = make_model(cond, cell)
    x = torch.from_numpy(guitar(1200))[None]
    knobs = ramp_and_steps(1200, batch=1)
    with torch.no_grad(), reference(model):
        y_ref, s_ref = model(x, knobs)
    pieces, state = [], None
    with torch.no_grad():
        for i, (a, b) in enumerate(((0, 1), (1, 300), (300, 301), (301, 900), (900, 1200))):
            if i % 2:
                with reference(model):
                    piece, state = model(x[:, a:b], knobs[:, a:b], state)
            else:
                piece, state = model(x[:, a:b], knobs[:, a:b], state)
            pieces.append(piece)
    assert_close((y_ref, s_ref), (torch.cat(pieces, 1), state))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_many_streams_in_groups_and_threads(cell):
    """Nine streams on two threads: DynamicHyper runs groups of four streams plus single ones."""
    model = make_model("dynamichyper", cell)
    x = torch.from_numpy(np.stack([guitar(300, 0.4 + 0.02 * i) for i in range(9)]))
    knobs = torch.linspace(-1, 1, 18).reshape(9, 2)
    assert chunks(9, 4) == [(0, 9)]  # one thread (the modeling tests' compute context, conftest.py)
    with compute_context(threads=2):
        assert chunks(9, 4) == [(0, 4), (4, 9)] and chunks(3, 4) == [(0, 2), (2, 3)]
        expected, got = run_both(model, x, knobs)
    assert chunks(9, 4) == [(0, 9)]  # restored
    assert_close(expected, got)


@pytest.mark.parametrize("cond", ["film", "statichyper", "dynamichyper"])
def test_long_automation_is_processed_in_chunks(cond, monkeypatch):
    """With a tiny table budget the block is cut into many chunks; the result does not change."""
    model = make_model(cond, "gru")
    x = torch.from_numpy(np.stack([guitar(700), guitar(700, 0.5)]))
    knobs = ramp_and_steps(700)
    expected, _ = run_both(model, x, knobs)
    monkeypatch.setattr(infer, "MAX_TABLE_BYTES", 1)
    with torch.no_grad():
        got = model(x, knobs)
    assert_close(expected, got)


@pytest.mark.parametrize("cond", ["concat", "film", "statichyper", "dynamichyper"])
def test_sizes_that_are_not_multiples_of_four(cond):
    """Product loops have remainders (H = 5, H_hyp = 7, n_z = 3); LSTM, automation, batch 2."""
    model = make_model(cond, "lstm", hidden_size=5, film_hidden=(6,), static_hidden=(3,), dynamic_hidden=7, dynamic_nz=3)
    x = torch.from_numpy(np.stack([guitar(400), guitar(400, 0.5)]))
    expected, got = run_both(model, x, ramp_and_steps(400))
    assert_close(expected, got)


def test_knob_runs():
    knobs = np.zeros((2, 6, 1), np.float32)
    knobs[0, :, 0] = [1, 1, 2, 2, 2, 3]
    knobs[1, :, 0] = 7
    values, seg_ptr, seg_start, seg_row = knob_runs(knobs)
    assert values[:, 0].tolist() == [1, 2, 3, 7]
    assert seg_ptr.tolist() == [0, 3, 4]
    assert seg_start.tolist() == [0, 2, 5, 0]
    assert seg_row.tolist() == [0, 1, 2, 3]


def test_dispatch_and_reference_switches(monkeypatch):
    calls = []

    def spy(*args):
        calls.append(1)
        return fast_forward(*args)

    monkeypatch.setattr(fast, "fast_forward", spy)
    model = make_model("film", "gru")
    x, knobs = torch.from_numpy(guitar(64))[None], torch.zeros(1, 2)
    with torch.no_grad():
        model(x, knobs)
        assert len(calls) == 1
        model.fast = False
        model(x, knobs)
        model.fast = True
        with compute_context(reference=True):
            model(x, knobs)
        model(x, knobs)
        assert len(calls) == 2
        model.double()(x, knobs)  # float64 inference: reference
        assert len(calls) == 2


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_traced_and_counted_calls_run_the_reference():
    """Tracing and FLOP counting must see PyTorch operations, so they bypass the kernels."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model("concat", "gru")
    x, knobs = torch.from_numpy(guitar(32))[None], torch.zeros(1, 2)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, knobs)
    assert counter.get_total_flops() > 0
    with torch.no_grad():
        traced = torch.jit.trace(model, (x, knobs), check_trace=False)
        assert torch.allclose(traced(x, knobs)[0], model(x, knobs)[0], atol=TOL)


def test_unsupported_models_fall_back():
    class Custom(FiLMRNN):  # a subclass may change the math: it runs its own (reference) code
        pass

    model = Custom(ModelConfig(cond="film"))
    assert not supports(model)
    with torch.no_grad():
        y, _ = model(torch.zeros(1, 8), torch.zeros(1, 2))
    assert y.shape == (1, 8)
    plain = torch.nn.Linear(1, 1)
    assert accelerate(plain) is plain


def test_weights_changed_in_place_are_re_exported():
    model = make_model("statichyper", "gru")
    x, knobs = torch.from_numpy(guitar(200))[None], torch.tensor([[0.2, 0.3]])
    with torch.no_grad():
        before, _ = model(x, knobs)
        model.output.weight.mul_(2.0)
        after, _ = model(x, knobs)
    assert torch.allclose(after - model.output.bias, 2 * (before - model.output.bias), atol=TOL)


def test_render_file_uses_the_fast_path(tmp_path):
    model = make_model("dynamichyper", "gru")
    renderer = accelerate(model)
    assert isinstance(renderer, FastRenderer) and renderer.fast
    audio = guitar(3000)
    sf.write(tmp_path / "in.wav", audio, 48000, subtype="FLOAT")
    ranges = [Knob("drive"), Knob("tone")]
    schedule = KnobSchedule(constant={"drive": 7.0}, envelopes={"tone": (np.array([0.0, 0.06]), np.array([0.0, 10.0]))})
    render_file(model, ranges, 48000, tmp_path / "in.wav", tmp_path / "fast.wav", schedule, block=700)
    with reference(model):
        assert not accelerate(model).fast
        render_file(model, ranges, 48000, tmp_path / "in.wav", tmp_path / "ref.wav", schedule, block=700)
    fast_out, _ = sf.read(tmp_path / "fast.wav", dtype="float32")
    ref_out, _ = sf.read(tmp_path / "ref.wav", dtype="float32")
    assert len(fast_out) == 3000 and np.max(np.abs(fast_out - ref_out)) < TOL
    assert isinstance(model, ConditionedRNN)
