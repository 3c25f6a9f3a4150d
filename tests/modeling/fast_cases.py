"""Shared helpers of the fast-path tests: models with strong conditioning and guitar-like audio."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from fxcap.dataset.testing import make_dummy_signal
from fxcap.modeling.registry import ModelConfig, build_model
from fxcap.modeling.schemes import BUILTIN_SCHEMES


CONDS = BUILTIN_SCHEMES
CELLS = ("gru", "lstm")
CASES = [(cond, cell) for cond in CONDS for cell in CELLS]

_AUDIO: dict[int, np.ndarray] = {}


def guitar(length: int, start: float = 0.40) -> np.ndarray:
    """``length`` samples of the dummy capture signal's program region (decaying harmonic notes, 48 kHz)."""
    if 48000 not in _AUDIO:
        _AUDIO[48000] = make_dummy_signal(48000, 1.0, seed=3).audio
    audio = _AUDIO[48000]
    begin = int(start * len(audio))
    return np.ascontiguousarray(audio[begin : begin + length])


def make_model(cond: str, cell: str, strength: float = 0.1, **config) -> torch.nn.Module:
    """A built model whose weights are perturbed by seeded noise (``strength``), so the knobs matter
    far more than at init (where hypernetwork heads are deliberately small)."""
    model = build_model(ModelConfig(cond=cond, cell=cell, seed=1, **config))
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(strength * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


@contextmanager
def reference(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` on its reference PyTorch path inside the block."""
    model.fast = False
    try:
        yield model
    finally:
        model.fast = True


def ramp_and_steps(steps: int, batch: int = 2) -> torch.Tensor:
    """Knob automation ``(batch, steps, 2)``: row 0 ramps (a new value every sample), the others hold
    values for a while and jump."""
    t = torch.linspace(0, 1, steps)
    rows = [torch.stack([2 * t - 1, 0.8 - 1.2 * t], dim=-1)]
    generator = torch.Generator().manual_seed(5)
    for _ in range(batch - 1):
        levels = torch.rand(5, 2, generator=generator) * 2 - 1
        rows.append(levels[torch.div(torch.arange(steps) * 5, steps, rounding_mode="floor")])
    return torch.stack(rows)
