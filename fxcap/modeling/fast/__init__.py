"""The fast path of every built-in model: numba kernels for inference and training.

The reference modules (:mod:`fxcap.modeling.concat` etc.) stay the readable definition and the test
oracle; ``model(x, knobs, state)`` dispatches here (:func:`dispatch`) unless the reference is forced:

* under ``torch.no_grad()`` (rendering, evaluation): :func:`~fxcap.modeling.fast.infer.fast_forward`,
  the whole recurrence and output layer in one numba kernel per call;
* with autograd (training): a custom ``torch.autograd.Function`` per scheme whose forward and
  backward (BPTT) through time are numba kernels (:mod:`fxcap.modeling.fast.autograd`); everything
  outside the recurrence (hypernetwork MLPs, input products, output layer, loss) stays PyTorch.

Force the reference with ``model.fast = False`` on one model, or for every model with
``compute_context(reference=True)`` (:mod:`fxcap.modeling.compute_context`; ``FXCAP_REFERENCE=1`` in the
environment sets it for the whole process). The fast path needs CPU weights, float32 (training also float64,
with exact activations, for ``gradcheck``); anything else runs the reference, and so does any call
made while PyTorch traces, exports, compiles or counts operations (``torch.jit.trace``, ONNX export,
``torch.compile``, ``FlopCounterMode``), which cannot see numba.

Kernels are compiled on first use for each model size (a few seconds each) and cached on disk by
numba, so later processes start in well under a second; the cache is keyed to all of this folder's
sources (:mod:`fxcap.numba_cache`), so a kernel never runs machine code compiled from older helpers.

Public API: :func:`accelerate`, :class:`FastRenderer`, :func:`fast_forward`, :func:`supports`,
:func:`reference_forced`.

Importing this package attaches the plans and runs to the built-in schemes' records
(:mod:`fxcap.modeling.schemes`) and installs :func:`dispatch` as the dispatcher
``ConditionedRNN.forward`` calls; :mod:`fxcap.modeling.registry` imports it, so every model
``build_model`` builds runs here.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from fxcap.modeling.compute_context import REFERENCE_ENV
from fxcap.modeling.fast import autograd
from fxcap.modeling.fast.infer import FastRenderer, accelerate, fast_forward, reference_forced, supports
from fxcap.modeling.schemes import install_accelerator

__all__ = ["REFERENCE_ENV", "FastRenderer", "accelerate", "dispatch", "fast_forward", "reference_forced", "supports"]


def _needs_grad(model: torch.nn.Module, *tensors: torch.Tensor) -> bool:
    if not torch.is_grad_enabled():
        return False
    return any(t.requires_grad for t in tensors) or any(p.requires_grad for p in model.parameters())


def _observed(*tensors: torch.Tensor) -> bool:
    """True while PyTorch records or re-interprets the operations (tracing, ONNX export, torch.compile,
    a dispatch mode such as the FLOP counter, tensor subclasses such as fake tensors): the numba
    kernels are invisible to it, so the reference must run."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return True
    if torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None:
        return True
    return any(type(t) is not torch.Tensor for t in tensors)


def dispatch(model, x: torch.Tensor, knobs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(y, new_state)`` from the fast path for checked inputs (see ``ConditionedRNN.forward``), or
    ``None`` when the reference must run (forced, unsupported model, dtype or device, or operations
    being traced/exported/counted).

    Without autograd: :func:`fast_forward` (float32). With autograd: the training Functions (float32,
    and float64 so ``gradcheck`` can check them through the model).
    """
    if reference_forced(model) or x.device.type != "cpu" or _observed(x, knobs, state):
        return None
    if not _needs_grad(model, x, knobs, state):
        if x.dtype != torch.float32 or not supports(model):
            return None
        return fast_forward(model, x, knobs, state)
    if x.dtype not in (torch.float32, torch.float64) or not autograd.has_fast_run(model):
        return None
    hidden, parts = autograd.fast_run(model, x.unsqueeze(-1), knobs, model.split_state(state))
    return model.output(hidden)[..., 0], torch.cat(parts, dim=-1)


install_accelerator(dispatch)
