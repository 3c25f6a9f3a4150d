"""Run a model over audio in blocks, the hidden state carried from one block to the next.

The one loop behind evaluation (:mod:`fxcap.modeling.evaluate`), rendering (:mod:`fxcap.modeling.render`),
the report's excerpts (:mod:`fxcap.report.runs`) and the export self-test
(:mod:`fxcap.modeling.export.common`). Blocks cost nothing in accuracy: a model's output over blocks
equals its output over the whole signal, since ``model(x, knobs, state)`` continues from ``state``
(see :mod:`fxcap.modeling.base`). Everything runs without autograd.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch

Model = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``model(x, knobs, state) -> (y, state)``: a conditioned RNN, or the fast renderer wrapping one."""


def stream_blocks(model: Model, blocks: Iterable[tuple[Any, Any]], state: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For each ``(x, knobs)`` of ``blocks`` (``x`` ``(B, T_i)``, knobs ``(B, K)`` or ``(B, T_i, K)``), in
    order, yield ``(y, state)``: the model's output for the block, ``(B, T_i)``, and the state after it.
    The first block starts from ``state`` (``None``: zero state)."""
    for x, knobs in blocks:
        with torch.no_grad():  # per call: the consumer's code between blocks keeps its own grad mode
            y, state = model(x, knobs, state)
        yield y, state


def run_blocks(
    model: Model, x: torch.Tensor, knobs: torch.Tensor, block: int | None = None, state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model`` over ``x`` ``(B, T)`` under ``knobs`` (``(B, K)`` constant, or ``(B, T, K)``), ``block``
    samples at a time (``None``: one call); returns ``(y (B, T), final state)``."""
    steps = x.shape[1]
    size = steps if block is None else max(int(block), 1)
    varying = knobs.dim() == 3

    def blocks() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, max(steps, 1), size):
            stop = min(start + size, steps)
            yield x[:, start:stop], (knobs[:, start:stop] if varying else knobs)

    outputs = []
    for y, state in stream_blocks(model, blocks(), state):
        outputs.append(y.reshape(x.shape[0], -1))
    return (outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)), state
