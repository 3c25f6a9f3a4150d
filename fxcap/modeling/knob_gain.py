"""A learned gain that depends on the knobs: how a drive or level knob scales the signal.

``gain(c) = exp(w . c + b)`` for normalised knob values ``c`` (``K`` of them, in [-1, 1]): ``K + 1``
parameters, one multiply per sample at run time (with constant knobs the exponential is taken once
per call; with automated knobs once per sample).
:class:`~fxcap.modeling.filters.FilteredRNN` puts one before the recurrent cell and one after it when
``ModelConfig.knob_gains`` is set.

Why: a drive knob is a gain in front of a clipper. Schemes whose knobs scale the cell's input weights
(FiLM, the hypernetworks) can express that, but Concat's knobs only add to the cell's
pre-activations: to be clean at low drive it has to push its gates towards saturation, which
distorts, and it keeps the same signal level in the cell at every setting. An input gain that follows
the knobs lets the cell see a small signal at low drive (where it is nearly linear) and a large one at
high drive; the output gain restores the level. Measured in ``docs/quality.md``.

Both gains start at exactly 1 (``w = 0``, ``b = 0``), so a model with gains starts out equal to one
without.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KnobGain(nn.Module):
    """``x * exp(w . c + b)`` with ``c`` constant ``(B, K)`` or per sample ``(B, T, K)``, ``x`` ``(B, T)``."""

    def __init__(self, num_knobs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, num_knobs))
        """``w``: natural-log gain per unit of each normalised knob, ``(1, K)``."""
        self.bias = nn.Parameter(torch.zeros(1))
        """``b``: natural-log gain at the knobs' centre (all 0)."""

    def gain(self, knobs: torch.Tensor) -> torch.Tensor:
        """The linear gain at ``knobs``: ``(B,)`` for constant knobs, ``(B, T)`` per sample."""
        return torch.exp(F.linear(knobs, self.weight, self.bias))[..., 0]

    def forward(self, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        gain = self.gain(knobs)
        return x * (gain[:, None] if gain.dim() == 1 else gain)

    def macs_per_sample(self) -> int:
        """Multiplies per sample: one (the gain itself is a function of the knobs alone)."""
        return 1
