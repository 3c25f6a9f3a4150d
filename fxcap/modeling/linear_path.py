"""A knob-conditioned linear path beside the recurrent cell: clean where the device is clean.

Where a drive pedal is set clean, its output is a filtered copy of its input: no harmonics the
device does not make. A small RNN that must also produce the saturated settings makes even-order
products everywhere (its gates depend on the input), so a model trained only for ESR stays 20-30 dB
too distorted at the clean settings (docs/quality.md). :class:`KnobLinearPath` gives the model a
path that *cannot* distort: a linear filter whose frequency response the knobs choose, and a
knob-chosen gain on the RNN's output, so at a clean setting the model can carry the whole signal
linearly and turn the RNN down::

    y[n] = g(c) * rnn[n] + d(c) x[n] + sum_m r_m(c) s_m[n],     s_m[n] = p_m s_m[n-1] + x[n]

The poles ``p_m = exp(-1 / tau_m)`` are learned and shared by every setting (as in
:class:`fxcap.modeling.filters.LearnedIIR`); the direct gain ``d``, the residues ``r_m`` and the
RNN gain ``g`` come from a small MLP of the normalised knobs ``c``, so the filter's zeros (and so its
tone) move with the knobs. It starts silent with ``g = 1`` (the last layer is zero and ``g`` is
``1 + mlp``), so a model with the path starts equal to the one without. Training pushes the RNN out
of the settings where it is not needed with a penalty on the energy of ``g * rnn``
(``TrainConfig.nonlinear_energy_weight``; without it nothing asks the RNN to leave).

Run time: ``2 M + 1`` multiply-adds per sample for the filter, the MLP once per knob change.
Training runs the ``M`` sections as FFT convolutions (exact, in blocks with the state carried), as
:class:`~fxcap.modeling.filters.LearnedIIR` does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fxcap.errors import ModelError
from fxcap.modeling.base import make_mlp
from fxcap.modeling.filters import BLOCK, TAU_MAX, TAU_MIN

MLP_HIDDEN = (16,)
"""Hidden sizes of the MLP from the knobs to ``(g - 1, d, r_1..r_M)``."""


class KnobLinearPath(nn.Module):
    """The knob-conditioned linear path (see module doc).

    Args:
        num_knobs: ``K``, knob values per setting (normalised to [-1, 1]).
        poles: ``M``, the filter's real poles (0: a knob-chosen gain only, ``d(c) x``).
        hidden: the MLP's hidden sizes.
        tau_range: initial time constants of the poles, samples, spread log-evenly.

    ``forward(x (B, T), knobs (B, K) or (B, T, K), state (B, M) or None)`` returns
    ``(linear (B, T), rnn_gain (B, T) or (B, 1), state (B, M))``.
    """

    def __init__(self, num_knobs: int, poles: int, hidden: tuple[int, ...] = MLP_HIDDEN,
                 tau_range: tuple[float, float] = (TAU_MIN, TAU_MAX)) -> None:
        super().__init__()
        if poles < 0:
            raise ModelError(f"a linear path needs 0 or more poles, got {poles}")
        low, high = (math.log(float(t)) for t in tau_range)
        self.log_tau = nn.Parameter(torch.linspace(low, high, poles) if poles != 1 else torch.tensor([0.5 * (low + high)]))
        self.mlp = make_mlp(num_knobs, tuple(hidden), "tanh")
        self.head = nn.Linear(hidden[-1] if hidden else num_knobs, poles + 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def poles(self) -> int:
        return int(self.log_tau.numel())

    def coefficients(self, knobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rnn_gain, direct, residues)`` at ``knobs`` ``(..., K)``: shapes ``(...)``, ``(...)``, ``(..., M)``."""
        out = self.head(self.mlp(knobs))
        return 1.0 + out[..., 0], out[..., 1], out[..., 2:]

    def pole_values(self) -> torch.Tensor:
        """The poles ``p_m`` in (0, 1), float64."""
        return torch.exp(-torch.exp(-self.log_tau.double()))

    def _sections(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The section outputs ``s`` ``(B, T, M)`` of one block and the state after it (FFT convolution)."""
        steps = x.shape[-1]
        log_p = -torch.exp(-self.log_tau.double())
        n = torch.arange(steps + 1, dtype=torch.float64, device=x.device)
        powers = torch.exp(n[:, None] * log_p[None, :])  # (T+1, M): p^n
        n_fft = 1 << (2 * steps - 1).bit_length()
        spectrum = torch.fft.rfft(x.double(), n=n_fft)[:, :, None] * torch.fft.rfft(powers[:steps], n=n_fft, dim=0)[None]
        sections = torch.fft.irfft(spectrum, n=n_fft, dim=1)[:, :steps]  # (B, T, M)
        sections = sections + state.double()[:, None, :] * powers[1:][None]  # the initial state's decay
        return sections.to(x.dtype), sections[:, -1].to(x.dtype)

    def step(self, x: torch.Tensor, knobs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One sample by the recursion: ``x`` ``(B,)``, ``knobs`` ``(B, K)``, ``state`` ``(B, M)``."""
        gain, direct, residues = self.coefficients(knobs)
        leak = (1.0 - self.pole_values()).to(x.dtype)
        state = state - leak * state + x[:, None]
        return direct * x + (residues * state).sum(-1), gain, state

    def forward(self, x: torch.Tensor, knobs: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.dim() != 2:
            raise ModelError(f"a linear path takes audio of shape (batch, time), got {tuple(x.shape)}")
        if state is None:
            state = x.new_zeros(x.shape[0], self.poles)
        knobs = knobs.to(x.dtype)
        if x.shape[-1] == 1:
            y, gain, state = self.step(x[:, 0], knobs[:, 0] if knobs.dim() == 3 else knobs, state)
            return y[:, None], gain[:, None], state
        gain, direct, residues = self.coefficients(knobs)
        if knobs.dim() == 2:  # constant knobs: one row per item, broadcast over time
            gain, direct, residues = gain[:, None], direct[:, None], residues[:, None, :]
        outputs = []
        for start in range(0, x.shape[-1], BLOCK):
            block = x[:, start : start + BLOCK]
            if self.poles:
                sections, state = self._sections(block, state)
                res = residues if residues.shape[1] == 1 else residues[:, start : start + BLOCK]
                lin = (sections * res).sum(-1)
            else:
                lin = torch.zeros_like(block)
            d = direct if direct.shape[1] == 1 else direct[:, start : start + BLOCK]
            outputs.append(d * block + lin)
        linear = torch.cat(outputs, dim=-1) if outputs else x
        return linear, gain, state

    def macs_per_sample(self) -> int:
        """Multiply-adds per sample: the sections' recursions and residues, the direct gain, the RNN gain."""
        return 2 * self.poles + 2

    def macs_per_change(self) -> int:
        """Multiply-adds of the MLP, run once per knob change."""
        return sum(layer.in_features * layer.out_features for layer in self.modules() if isinstance(layer, nn.Linear))
