"""Fast training (autograd Functions with numba BPTT) against autograd through the reference modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

import fxcap.modeling.fast.autograd as fast_autograd
from fxcap.modeling.compute_context import compute_context
from fast_cases import CASES, guitar, make_model, ramp_and_steps, reference

SMALL = dict(hidden_size=3, film_hidden=(4,), static_hidden=(3,), dynamic_hidden=4, dynamic_nz=2)
"""Tiny sizes for float64 gradcheck (every parameter element is perturbed)."""


def loss_and_grads(model, x, knobs, state):
    """Loss on the output and the final state; gradients of parameters, initial state and knobs."""
    state = state.clone().requires_grad_()
    knobs = knobs.clone().requires_grad_()
    model.zero_grad()
    y, final = model(x, knobs, state)
    target = torch.tanh(4 * x)
    loss = (y - target).abs().mean() + 0.5 * final.square().mean()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    grads["<state>"], grads["<knobs>"] = state.grad, knobs.grad
    return y.detach(), final.detach(), grads


@pytest.mark.parametrize("automation", [False, True], ids=["constant", "automation"])
@pytest.mark.parametrize("cond, cell", CASES)
def test_gradients_equal_the_reference(cond, cell, automation):
    model = make_model(cond, cell)
    x = torch.from_numpy(np.stack([guitar(150, s) for s in (0.4, 0.5, 0.6)]))
    knobs = ramp_and_steps(150, batch=3) if automation else torch.tensor([[-0.8, 0.6], [0.1, -0.2], [0.7, 0.9]])
    state = 0.3 * torch.randn(3, model.state_size, generator=torch.Generator().manual_seed(1))
    with reference(model):
        y_ref, s_ref, g_ref = loss_and_grads(model, x, knobs, state)
    y, s, g = loss_and_grads(model, x, knobs, state)
    assert float((y - y_ref).abs().max()) < 1e-5 and float((s - s_ref).abs().max()) < 1e-5
    assert g.keys() == g_ref.keys()
    for name, ref in g_ref.items():
        scale = float(ref.abs().max())
        assert scale > 0, name
        assert float((g[name] - ref).abs().max()) <= 1e-4 * scale, name


@pytest.mark.parametrize("automation", [False, True], ids=["constant", "automation"])
@pytest.mark.parametrize("cond, cell", CASES)
def test_gradcheck_float64(cond, cell, automation):
    """torch.autograd.gradcheck of the whole model (fast path, float64 kernels) w.r.t. every
    parameter, the initial state and the knobs."""
    model = make_model(cond, cell, strength=0.3, **SMALL).double()
    steps = 5
    x = torch.from_numpy(guitar(steps).astype(np.float64))[None].repeat(2, 1)
    x[1] = x[1].flip(0)
    knobs = (ramp_and_steps(steps).double() if automation else torch.tensor([[0.3, -0.4], [-0.7, 0.5]], dtype=torch.float64))
    state = 0.2 * torch.randn(2, model.state_size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    names = [name for name, _ in model.named_parameters()]
    calls = []
    original = fast_autograd.fast_run

    def counted(*args):
        calls.append(1)
        return original(*args)

    def f(state, knobs, *params):
        y, final = functional_call(model, dict(zip(names, params)), (x, knobs, state))
        return y, final

    inputs = (state.requires_grad_(), knobs.requires_grad_()) + tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    fast_autograd.fast_run = counted
    try:
        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    finally:
        fast_autograd.fast_run = original
    assert calls  # the checked function ran the fast path


@pytest.mark.parametrize("cond", ["film", "dynamichyper"])
def test_threads_split_the_batch(cond):
    """Two threads (each a part of the batch, own gradient buffers) give the one-thread result."""
    model = make_model(cond, "lstm")
    x = torch.from_numpy(np.stack([guitar(100, s) for s in (0.4, 0.45, 0.5, 0.55, 0.6)]))
    knobs = torch.rand(5, 2, generator=torch.Generator().manual_seed(4)) * 2 - 1
    state = torch.zeros(5, model.state_size)
    _, _, one = loss_and_grads(model, x, knobs, state)
    with compute_context(threads=2):
        _, _, two = loss_and_grads(model, x, knobs, state)
    for name in one:
        assert torch.allclose(one[name], two[name], rtol=1e-5, atol=1e-7), name


def test_training_dispatches_to_the_fast_functions(monkeypatch):
    calls = []
    original = fast_autograd.fast_run
    monkeypatch.setattr(fast_autograd, "fast_run", lambda *a: calls.append(1) or original(*a))
    model = make_model("statichyper", "gru")
    x, knobs = torch.from_numpy(guitar(40))[None], torch.zeros(1, 2)
    model(x, knobs)[0].sum().backward()
    assert len(calls) == 1
    with compute_context(reference=True):
        model(x, knobs)[0].sum().backward()
    assert len(calls) == 1
    with pytest.raises(ValueError, match="no fast training path"):
        original(torch.nn.Linear(1, 1), x[..., None], knobs, ())


def test_inputs_modified_in_place_before_backward_raise():
    """The Functions read their inputs again in backward: autograd's in-place check guards them."""
    from fxcap.modeling.fast.autograd import CellRecurrence

    g = torch.Generator().manual_seed(0)
    hidden_size = 32  # the paper's GRU: its kernels are compiled for the other tests too
    gx = torch.randn(1, 6, 3 * hidden_size, generator=g, requires_grad=True)
    c = torch.zeros(1, 3 * hidden_size, requires_grad=True)
    whT = (0.3 * torch.randn(1, hidden_size, 3 * hidden_size, generator=g)).requires_grad_()
    h0 = torch.zeros(1, hidden_size)
    row, wrow = np.zeros((1, 6), np.int64), np.zeros(1, np.int64)
    hidden, _, _ = CellRecurrence.apply(gx, None, c * 1.0, whT * 1.0, h0, h0, row, wrow, False)
    hidden.sum().backward()  # fine
    w = whT * 1.0
    hidden, _, _ = CellRecurrence.apply(gx, None, c * 1.0, w, h0, h0, row, wrow, False)
    with torch.no_grad():
        w.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        hidden.sum().backward()

