"""Learned linear filters around the recurrent cell: long linear memory a 32-unit RNN does not learn.

A real pedal's clean sound has a long linear memory: the input and output coupling capacitors make
high-passes near 10-20 Hz (time constants of 400-800 samples at 48 kHz), which shift the phase of
every low note. A small RNN trained on 2048-sample windows does not learn such slow dynamics, so it
is wrong by several percent of ESR where the device is nearly linear. :class:`LearnedIIR` is a
learnable filter with exactly that kind of memory, cheap at run time, and :class:`FilteredRNN` puts
one before and one after any conditioned RNN.

:class:`LearnedIIR` is the *parallel form* of an IIR filter with ``M`` real poles::

    y[n] = d x[n] + sum_k r_k s_k[n],     s_k[n] = p_k s_k[n-1] + x[n],     p_k = exp(-1 / tau_k)

(``tau_k`` in samples, learned on a log scale; ``d`` and the residues ``r_k`` learned). Any real-pole
IIR filter of order ``M`` with distinct poles is such a sum; first-order high-passes, low-passes and
shelves are ``M = 1``. It is initialised as the identity (``d = 1``, ``r = 0``), with time constants
spread log-evenly from :data:`TAU_MIN` to :data:`TAU_MAX` samples, so a filtered model starts out
equal to the plain one. Run time: ``2 M + 1`` multiply-adds per sample and ``M`` state values.

Training evaluates the filter as one FFT convolution with its impulse response
``h[0] = d + sum r_k``, ``h[n] = sum r_k p_k^n`` plus the decay of the initial state, which is exact
(to float rounding) and differentiable in the poles; long inputs are processed in blocks of
:data:`BLOCK` samples with the state carried over, so the result equals the sample-by-sample
recursion for any length.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fxcap.errors import ModelError
from fxcap.modeling.base import audio_batch
from fxcap.modeling.knob_gain import KnobGain

TAU_MIN = 1.0
"""Shortest initial time constant of a learned pole, samples."""

TAU_MAX = 8000.0
"""Longest initial time constant of a learned pole, samples (a 6 Hz corner at 48 kHz)."""

BLOCK = 1 << 15
"""Samples per FFT block (longer inputs are filtered block by block, state carried)."""


class LearnedIIR(nn.Module):
    """A learnable real-pole IIR filter in parallel form (see module doc).

    Args:
        poles: ``M``, the number of first-order sections (filter order).
        tau_range: initial time constants of the poles, samples, spread log-evenly (min, max).

    ``forward(x (B, T), state (B, M) or None) -> (y (B, T), state (B, M))``; the state is the
    sections' ``s_k`` after the last sample.
    """

    def __init__(self, poles: int, tau_range: tuple[float, float] = (TAU_MIN, TAU_MAX)) -> None:
        super().__init__()
        if poles < 1:
            raise ModelError(f"a learned filter needs at least one pole, got {poles}")
        low, high = (math.log(float(t)) for t in tau_range)
        self.log_tau = nn.Parameter(torch.linspace(low, high, poles) if poles > 1 else torch.tensor([0.5 * (low + high)]))
        self.residues = nn.Parameter(torch.zeros(poles))
        self.direct = nn.Parameter(torch.ones(()))

    @property
    def poles(self) -> int:
        """``M``, the number of sections."""
        return int(self.residues.numel())

    def pole_values(self) -> torch.Tensor:
        """The poles ``p_k = exp(-1 / tau_k)`` in (0, 1), float64."""
        return torch.exp(-torch.exp(-self.log_tau.double()))

    def _block(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = x.shape[-1]
        log_p = -torch.exp(-self.log_tau.double())  # (M,)
        n = torch.arange(steps + 1, dtype=torch.float64, device=x.device)
        powers = torch.exp(n[:, None] * log_p[None, :])  # (T+1, M): p^n
        residues = self.residues.double()
        impulse = powers[:steps] @ residues  # sum_k r_k p_k^n
        impulse = torch.cat([impulse[:1] + self.direct.double(), impulse[1:]])
        n_fft = 1 << (2 * steps - 1).bit_length()
        xd = x.double()
        y = torch.fft.irfft(torch.fft.rfft(xd, n=n_fft) * torch.fft.rfft(impulse, n=n_fft), n=n_fft)[:, :steps]
        state = state.double()
        y = y + (state * residues) @ powers[1:].T  # the initial state's decay: r_k p_k^(n+1) s_k
        # s_k[T-1] = p_k^T s_k[-1] + sum_m p_k^(T-1-m) x[m]
        new_state = state * powers[steps] + xd @ powers[:steps].flip(0)
        return y.to(x.dtype), new_state.to(x.dtype)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample by the recursion itself: ``x`` ``(B,)``, ``state`` ``(B, M)`` -> ``(y (B,), state')``
        (``s_k <- s_k - (1 - p_k) s_k + x``, ``y = d x + sum_k r_k s_k``).

        What a real-time host runs (and what the ONNX export traces); equals :meth:`forward` on one sample.
        """
        # s - (1 - p) s rather than p s: (1 - p) keeps full relative precision in float32, where a pole
        # near 1 rounded to float32 would move a long time constant by up to 0.1 %
        leak = (1.0 - self.pole_values()).to(x.dtype)  # computed in float64: exact enough, and ONNX-exportable
        state = state - leak * state + x[:, None]
        return self.direct.to(x.dtype) * x + state @ self.residues.to(x.dtype), state

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2:
            raise ModelError(f"a learned filter takes audio of shape (batch, time), got {tuple(x.shape)}")
        if state is None:
            state = x.new_zeros(x.shape[0], self.poles)
        if x.shape[-1] == 1:  # one sample (a step-by-step host, the ONNX export's traced step): the recursion
            y, state = self.step(x[:, 0], state)
            return y[:, None], state
        outputs = []
        for start in range(0, x.shape[-1], BLOCK):
            y, state = self._block(x[:, start : start + BLOCK], state)
            outputs.append(y)
        if not outputs:
            return x, state
        return torch.cat(outputs, dim=-1), state

    def macs_per_sample(self) -> int:
        """Multiply-adds per sample of the recursion: ``p_k s_k`` and ``r_k s_k`` per section, ``d x``."""
        return 2 * self.poles + 1


EVEN_SHARE_FLOOR = 1e-7
"""Floor of :meth:`FilteredRNN.even_log_share` (an energy ratio: -70 dB): below it the pressure fades."""


class FilteredRNN(nn.Module):
    """A conditioned RNN between two learned linear filters, optionally with knob-dependent gains:
    ``post(g_out(c) * rnn(g_in(c) * pre(x), c))``.

    Built by :func:`fxcap.modeling.registry.build_model` when ``ModelConfig.pre_filter_poles`` or
    ``post_filter_poles`` is non-zero or ``knob_gains`` is set; otherwise the plain model is built
    (the paper's). The interface is the conditioned RNN's (``model(x, knobs, state) -> (y, state)``,
    see :mod:`fxcap.modeling.base`); the flat state is the RNN's followed by the pre- and post-filter
    sections (:attr:`state_layout`; the gains have no state). The filters do not depend on the knobs;
    the gains (:class:`~fxcap.modeling.knob_gain.KnobGain`) do, and only scale the signal.

    With ``even_gain`` the cell runs on the signal and on its negation (one batch of twice the size)
    and its output becomes ``(F[x] - F[-x]) / 2 + e(c) (F[x] + F[-x]) / 2``: the odd-order part as it
    is, the even-order part (second harmonics, DC) scaled by a knob gain ``e``; the state then holds
    both runs' cell states (the second under names ending in ``_inverted``).
    """

    def __init__(self, core: nn.Module, pre_poles: int, post_poles: int, knob_gains: bool = False, even_gain: bool = False) -> None:
        super().__init__()
        self.core = core
        self.config = core.config
        self.pre_filter = LearnedIIR(pre_poles) if pre_poles else None
        self.post_filter = LearnedIIR(post_poles) if post_poles else None
        self.gain_in = KnobGain(core.num_knobs) if knob_gains else None
        self.gain_out = KnobGain(core.num_knobs) if knob_gains else None
        self.even_gain = KnobGain(core.num_knobs) if even_gain else None
        self.last_even: torch.Tensor | None = None  # the last training forward pass's even part (even_log_share)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("cell", "hidden_size", "num_knobs", "gates", "output"):
                return getattr(self._modules["core"], name)
            raise

    @property
    def state_layout(self) -> list[tuple[str, int]]:
        """The RNN's state parts, then ``pre`` and ``post`` (the filters' sections), where present."""
        layout = list(self.core.state_layout)
        if self.even_gain is not None:  # the cell's state for the inverted input
            layout += [(f"{name}_inverted", width) for name, width in self.core.state_layout]
        for name, part in (("pre", self.pre_filter), ("post", self.post_filter)):
            if part is not None:
                layout.append((name, part.poles))
        return layout

    @property
    def state_size(self) -> int:
        return sum(width for _, width in self.state_layout)

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        ref = self.core.output.weight
        return torch.zeros(batch, self.state_size, device=device or ref.device, dtype=dtype or ref.dtype)

    def split_state(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(state.split([width for _, width in self.state_layout], dim=-1))

    def forward(self, x: torch.Tensor, knobs: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ref = self.core.output.weight
        x, shape = audio_batch(x, ref)
        if state is None:
            state = self.init_state(x.shape[0])
        state = torch.as_tensor(state).to(device=ref.device, dtype=ref.dtype)
        if state.shape != (x.shape[0], self.state_size):
            raise ModelError(
                f"state must have shape ({x.shape[0]}, {self.state_size}) for this model, got {tuple(state.shape)}; "
                "pass the state returned by the previous call, or None"
            )
        knobs = torch.as_tensor(knobs).to(device=ref.device, dtype=ref.dtype)
        core_size = self.core.state_size * (2 if self.even_gain is not None else 1)
        core_state, filter_state = state[:, :core_size], state[:, core_size:]
        parts: list[torch.Tensor] = []
        offset = 0
        if self.pre_filter is not None:
            x, pre_state = self.pre_filter(x, filter_state[:, offset : offset + self.pre_filter.poles])
            offset += self.pre_filter.poles
            parts.append(pre_state)
        if self.gain_in is not None:
            x = self.gain_in(x, knobs)
        if self.even_gain is None:
            y, core_state = self.core(x, knobs, core_state)
        else:
            y, core_state = self._parity_split(x, knobs, core_state)
        if self.gain_out is not None:
            y = self.gain_out(y, knobs)
        if self.post_filter is not None:
            y, post_state = self.post_filter(y, filter_state[:, offset : offset + self.post_filter.poles])
            parts.append(post_state)
        return y.reshape(shape), torch.cat([core_state, *parts], dim=-1)

    def _parity_split(self, x: torch.Tensor, knobs: torch.Tensor, core_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``odd + e(c) * even`` of the cell run on ``x`` and on ``-x`` (one batch of ``2 B``), with
        ``odd = (F[x] - F[-x]) / 2`` and ``even = (F[x] + F[-x]) / 2``; the state is both runs' states."""
        batch = x.shape[0]
        normal, inverted = core_state.chunk(2, dim=-1)
        both, state = self.core(torch.cat([x, -x]), torch.cat([knobs, knobs]), torch.cat([normal, inverted]))
        plus, minus = both[:batch], both[batch:]
        even = self.even_gain(0.5 * (plus + minus), knobs)
        self.last_even = even if torch.is_grad_enabled() else None  # for the training penalty (even_log_share)
        return 0.5 * (plus - minus) + even, torch.cat([state[:batch], state[batch:]], dim=-1)

    def even_log_share(self, target: torch.Tensor, floor: float = EVEN_SHARE_FLOOR) -> torch.Tensor:
        """``mean_b log(E_t[even^2] / E_t[target^2] + floor)`` of the last forward pass (with gradients):
        the even-order part's energy share of each window, in nats, floored at ``floor`` (an energy
        ratio). Its gradient is the same on every decibel of the share, so it keeps pushing a small
        even part down where the error does not hold it up."""
        if self.last_even is None:
            raise ModelError("even_log_share needs a forward pass with gradients of a model with an even gain first")
        even = self.last_even.reshape(target.shape[0], -1)
        share = even.square().mean(-1) / (target.reshape(target.shape[0], -1).square().mean(-1) + 1e-12)
        return torch.log(share + floor).mean()

    def cost(self):
        """The RNN's cost (twice with the even gain) plus the filters' recursions and the gains
        (multiply-adds per sample)."""
        from dataclasses import replace

        cost = self.core.cost()
        extra = sum(f.macs_per_sample() for f in (self.pre_filter, self.post_filter, self.gain_in, self.gain_out) if f is not None)
        if self.even_gain is not None:  # the second run of the cell, the two half-sums and the gain
            extra += cost.macs_per_sample + 2 + self.even_gain.macs_per_sample()
        return replace(cost, macs_per_sample=cost.macs_per_sample + extra)
