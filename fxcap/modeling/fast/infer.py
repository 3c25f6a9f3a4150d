"""Fast inference: run a model's recurrence in the numba kernels, with the reference's state layout.

:func:`fast_forward` is the engine (inputs already checked by the model's ``forward``), what
``model(x, knobs, state)`` runs under ``torch.no_grad()``. Knobs are cut into runs of constant values
per stream; the hypernetwork (FiLM's MLP, StaticHyper's weight generation, the knob part of
Concat's input and of DynamicHyper's hyper cell) runs once per run, so constant knobs cost it once
per call (and once per file: the tables of the last constant setting are kept), and automation costs
it once per knob change. Long automated blocks are processed in chunks so the per-run tables stay
within :data:`MAX_TABLE_BYTES`. A batch of streams (e.g. many knob settings) is split over
``torch.get_num_threads()`` threads.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.compute_context import reference_forced as context_reference
from fxcap.modeling.fast.plans import Plan, make_plan
from fxcap.modeling.fast.threads import chunks, parallel

MAX_TABLE_BYTES = 8 << 20
"""Upper bound of the per-run tables built at once under knob automation (bytes)."""

_PLANS: "weakref.WeakKeyDictionary[ConditionedRNN, tuple[Any, Plan | None]]" = weakref.WeakKeyDictionary()


def _weights_key(model: ConditionedRNN) -> tuple:
    """Changes whenever a parameter is replaced or modified in place (optimizer step, load_state_dict, a
    user's ``parameter.add_()``). PyTorch's per-tensor version counter (``Tensor._version``, the counter
    autograd uses to detect in-place changes) is the only cheap signal that sees every in-place change,
    including those made outside fxcap; a counter of fxcap's own, bumped by fxcap's optimizer steps,
    would miss the others and serve a stale plan (a silently wrong output)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def plan_for(model: ConditionedRNN) -> Plan | None:
    """The exported weights of ``model`` (cached until its parameters change), or ``None`` if unsupported."""
    key = _weights_key(model)
    cached = _PLANS.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    plan = make_plan(model)
    _PLANS[model] = (key, plan)
    return plan


def reference_forced(model: torch.nn.Module) -> bool:
    """True when ``model.fast`` is False or the compute context asks for the reference path
    (:func:`fxcap.modeling.compute_context.compute_context`, ``FXCAP_REFERENCE``)."""
    return context_reference() or not getattr(model, "fast", True)


def supports(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a fast inference path (a built-in scheme with float32 CPU weights)."""
    if not isinstance(model, ConditionedRNN):
        return False
    weight = model.output.weight
    return weight.dtype == torch.float32 and weight.device.type == "cpu" and plan_for(model) is not None


def knob_runs(knobs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of constant knob values of ``knobs`` ``(B, T, K)``, stream by stream.

    Returns ``(values (U, K), seg_ptr (B+1,), seg_start (U,), seg_row (U,))``: stream ``b`` has runs
    ``seg_ptr[b] .. seg_ptr[b+1]-1``; run ``s`` starts at step ``seg_start[s]`` with knobs ``values[s]``.
    """
    batch, steps, _ = knobs.shape
    starts = np.ones((batch, steps), dtype=bool)
    starts[:, 1:] = np.any(knobs[:, 1:] != knobs[:, :-1], axis=-1)
    rows, times = np.nonzero(starts)
    seg_ptr = np.zeros(batch + 1, dtype=np.int64)
    np.cumsum(starts.sum(axis=1), out=seg_ptr[1:])
    values = np.ascontiguousarray(knobs[rows, times])
    return values, seg_ptr, times.astype(np.int64), np.arange(len(rows), dtype=np.int64)


def _constant_tables(plan: Plan, knobs: torch.Tensor) -> tuple[np.ndarray, ...]:
    key = (tuple(knobs.shape), knobs.numpy().tobytes())
    cached = getattr(plan, "_constant", None)
    if cached is None or cached[0] != key:
        cached = (key, plan.tables(knobs))
        plan._constant = cached
    return cached[1]


def fast_forward(
    model: ConditionedRNN, x: torch.Tensor, knobs: torch.Tensor, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on checked inputs: ``x`` ``(B, T)``, knobs ``(B, K)`` or ``(B, T, K)``, ``state``
    ``(B, state_size)`` or ``None`` (zero state), float32 CPU tensors. Returns ``(y (B, T),
    new_state)``, equal to the reference module's within about 1e-6 (float32 rounding and the kernels'
    tanh approximation). ``model(x, knobs, state)`` under ``torch.no_grad()`` checks its inputs and
    calls this.

    Raises ``ValueError`` for a model without a fast path (see :func:`supports`).
    """
    plan = plan_for(model)
    if plan is None:
        raise ValueError(f"{type(model).__name__} has no fast path; call the model itself")
    batch, steps = x.shape
    if state is None:
        state = model.init_state(batch)
    x_np = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
    state_np = np.array(state.detach().numpy(), dtype=np.float32, order="C", copy=True)
    y = np.empty_like(x_np)
    knobs = knobs.detach()
    parts = chunks(batch, plan.group)
    if knobs.dim() == 2:
        tables = _constant_tables(plan, knobs.contiguous())
        seg_ptr = np.arange(batch + 1, dtype=np.int64)
        seg_start = np.zeros(batch, np.int64)
        parallel(lambda _, lo, hi: plan.run(x_np, y, state_np, seg_ptr, seg_start, seg_ptr[:-1], tables, lo, hi), parts)
        return torch.from_numpy(y), torch.from_numpy(state_np)
    knobs_np = knobs.numpy()
    chunk = max(16, MAX_TABLE_BYTES // (plan.row_bytes * batch))
    for t0 in range(0, steps, chunk):
        t1 = min(steps, t0 + chunk)
        values, seg_ptr, seg_start, seg_row = knob_runs(knobs_np[:, t0:t1])
        tables = plan.tables(torch.from_numpy(values))
        x_part, y_part = np.ascontiguousarray(x_np[:, t0:t1]), np.empty((batch, t1 - t0), dtype=np.float32)
        parallel(lambda _, lo, hi: plan.run(x_part, y_part, state_np, seg_ptr, seg_start, seg_row, tables, lo, hi), parts)
        y[:, t0:t1] = y_part
    return torch.from_numpy(y), torch.from_numpy(state_np)


class FastRenderer:
    """``model`` for rendering: same call, ``renderer(x, knobs, state=None) -> (y, state)``, always
    without autograd, on the fast path when the model has one (else the reference module).

    The model's weights are exported once and re-exported only when they change.
    """

    def __init__(self, model: ConditionedRNN) -> None:
        self.model = model

    @property
    def fast(self) -> bool:
        """Whether calls run the numba kernels (``False``: the reference module)."""
        return supports(self.model) and not reference_forced(self.model)

    def __call__(self, x: Any, knobs: Any, state: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.model(x, knobs, state)


def accelerate(model: torch.nn.Module) -> torch.nn.Module | FastRenderer:
    """A callable with the model's signature that renders on the fast path when available.

    Returns a :class:`FastRenderer` for fxcap's built-in models and ``model`` itself otherwise.
    """
    return FastRenderer(model) if isinstance(model, ConditionedRNN) else model
