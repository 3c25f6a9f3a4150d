"""Training losses, auraloss-style: each a small ``nn.Module`` with stated shapes and units.

All losses take ``(pred, target)`` of equal shape with time on the last axis: ``(T,)``, ``(B, T)``
or ``(B, C, T)``; a model output of shape ``(B, T, 1)`` is also accepted (the trailing singleton
channel is dropped). Leading axes are flattened into one batch axis. Audio is in linear full-scale
units (1.0 = 0 dBFS). Every loss returns a scalar tensor averaged over the batch.

The paper's recipe (released code): ``CombinedLoss(l1_weight=1, stft_weight=0.1, pre_emphasis=True)``
= L1 + 0.1 * multi-resolution STFT, both on signals filtered by ``(1 - z^-1) / (1 - 0.995 z^-1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from fxcap.errors import ModelError

STFT_FFT_SIZES: tuple[int, ...] = (2048, 512, 128, 32)
"""The paper's MRSTFT resolutions (hop = n / 4, Hann window)."""


def as_batch_time(x: torch.Tensor) -> torch.Tensor:
    """Reshape audio to ``(N, T)``: time last, leading axes flattened; ``(B, T, 1)`` -> ``(B, T)``."""
    if x.dim() == 3 and x.shape[-1] == 1 and x.shape[1] != 1:
        x = x[..., 0]
    if x.dim() == 1:
        return x[None]
    return x.reshape(-1, x.shape[-1])


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ModelError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return as_batch_time(pred), as_batch_time(target)


class PreEmphasis(nn.Module):
    """Pre-emphasis filter applied along time (zero initial state), shape-preserving.

    ``kind="hp"`` (default, the released code's): ``H(z) = (1 - z^-1) / (1 - pole z^-1)``, pole 0.995:
    a first-order high-pass (-3 dB near ``(1 - pole) * fs / (2 pi)``, 38 Hz at 48 kHz) that removes
    DC and is flat above it. Computed exactly (up to float rounding) as a linear convolution with the
    filter's impulse response ``h[0] = 1, h[n] = (pole - 1) pole^(n-1)`` truncated to the signal
    length, via FFT, so it is differentiable and runs on any device.

    ``kind="fir"``: ``H(z) = 1 - coefficient z^-1`` (coefficient 0.95), the common speech-style
    first-difference emphasis (Wright & Valimaki).
    """

    def __init__(self, kind: str = "hp", coefficient: float | None = None) -> None:
        super().__init__()
        if kind not in ("hp", "fir"):
            raise ModelError(f"pre-emphasis kind must be 'hp' or 'fir', got {kind!r}")
        self.kind = kind
        self.coefficient = float(coefficient if coefficient is not None else (0.995 if kind == "hp" else 0.95))
        if not 0.0 <= self.coefficient < 1.0:
            raise ModelError(f"pre-emphasis coefficient must be in [0, 1), got {self.coefficient}")

    def impulse_response(self, length: int, device: torch.device | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The first ``length`` taps of the filter's impulse response."""
        a = self.coefficient
        h = torch.zeros(length, device=device, dtype=torch.float64)
        h[0] = 1.0
        if self.kind == "fir":
            if length > 1:
                h[1] = -a
        elif length > 1:
            n = torch.arange(length - 1, device=device, dtype=torch.float64)
            h[1:] = (a - 1.0) * a**n
        return h.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: audio with time on the last axis (or ``(B, T, 1)``); returns the filtered audio, same shape."""
        shape = x.shape
        flat = as_batch_time(x)
        steps = flat.shape[-1]
        if self.kind == "fir":
            out = flat.clone()
            out[:, 1:] = flat[:, 1:] - self.coefficient * flat[:, :-1]
            return out.reshape(shape)
        n_fft = 1 << (2 * steps - 1).bit_length()
        spectrum = torch.fft.rfft(flat, n=n_fft)
        response = torch.fft.rfft(self.impulse_response(steps, flat.device, flat.dtype), n=n_fft)
        return torch.fft.irfft(spectrum * response, n=n_fft)[:, :steps].reshape(shape)


class L1Loss(nn.Module):
    """Mean absolute error ``mean |pred - target|`` (full-scale units)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = _check_pair(pred, target)
        return (pred - target).abs().mean()


class ESRLoss(nn.Module):
    """Error-to-signal ratio ``sum (pred - target)^2 / (sum target^2 + eps)`` per item, averaged
    over the batch (dimensionless; Wright et al., 2019)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = _check_pair(pred, target)
        error = (pred - target).square().sum(-1)
        return (error / (target.square().sum(-1) + self.eps)).mean()


class PooledESRLoss(nn.Module):
    """Error-to-signal ratio pooled over the batch: ``sum (pred - target)^2 / (sum target^2 + eps)``,
    both sums over every item and sample (dimensionless).

    The training loss of most RNN pedal models (Wright et al., 2019, with a DC term and a first-order
    pre-emphasis). Pooling over the batch keeps a window of near-silence (a gap in the test signal,
    a decaying note) from dividing by almost nothing, which a per-window ratio does; each window then
    counts in proportion to its energy, as in the evaluation's per-setting ESR.

    ``emphasis``: coefficient ``a`` of the pre-emphasis ``1 - a z^-1`` applied to both signals first
    (0: none; 0.85 is common for guitar effects: it weighs the upper mids, where the ear is sensitive).
    """

    def __init__(self, emphasis: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__()
        if not 0.0 <= emphasis < 1.0:
            raise ModelError(f"ESR pre-emphasis coefficient must be in [0, 1), got {emphasis}")
        self.emphasis, self.eps = float(emphasis), eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, power: torch.Tensor | None = None) -> torch.Tensor:
        """The ratio; with ``power`` ``(N,)`` (a reference mean power per item, e.g. of its knob setting's
        target, emphasised like the signals) each item's mean squared error is divided by its own
        reference and the ratios averaged: ``mean_i (mean_t e_i^2 / power_i)``."""
        pred, target = _check_pair(pred, target)
        if self.emphasis:
            pred = pred[:, 1:] - self.emphasis * pred[:, :-1]
            target = target[:, 1:] - self.emphasis * target[:, :-1]
        if power is not None:
            return ((pred - target).square().mean(-1) / power.to(pred.dtype)).mean()
        return (pred - target).square().sum() / (target.square().sum() + self.eps)


class DCLoss(nn.Module):
    """DC error relative to the signal energy: ``mean_items (mean_t (pred - target))^2 / (mean target^2 + eps)``
    (Wright et al., 2019): penalises an offset that the ESR of a pre-emphasised signal cannot see."""

    def __init__(self, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, power: torch.Tensor | None = None) -> torch.Tensor:
        """The DC error; with ``power`` ``(N,)`` each item's squared mean error is divided by its own reference."""
        pred, target = _check_pair(pred, target)
        if power is not None:
            return ((pred - target).mean(-1).square() / power.to(pred.dtype)).mean()
        return (pred - target).mean(-1).square().mean() / (target.square().mean() + self.eps)


class STFTLoss(nn.Module):
    """Single-resolution STFT loss (Yamamoto et al., 2020; auraloss ``STFTLoss``).

    Magnitudes ``|STFT|`` with a Hann window of ``n_fft`` samples, hop ``hop`` (default ``n_fft // 4``),
    centred frames (reflect padding); ``|S| = sqrt(max(re^2 + im^2, eps))``. Terms, each per item
    and averaged over the batch:

    * spectral convergence (``w_sc``): ``||S_t - S_p||_F / ||S_t||_F`` — the linear-magnitude term;
    * log magnitude (``w_log_mag``): ``mean |log S_t - log S_p|``;
    * plain linear magnitude (``w_lin_mag``, off by default): ``mean |S_t - S_p|``.

    The signal must have at least ``n_fft`` samples (see :class:`MultiResolutionSTFTLoss`).
    """

    def __init__(
        self,
        n_fft: int = 2048,
        hop: int | None = None,
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.n_fft = int(n_fft)
        self.hop = int(hop or max(1, n_fft // 4))
        self.w_sc, self.w_log_mag, self.w_lin_mag, self.eps = w_sc, w_log_mag, w_lin_mag, eps

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, T)`` audio -> ``(N, n_fft // 2 + 1, frames)`` magnitudes."""
        window = torch.hann_window(self.n_fft, device=x.device, dtype=x.dtype)
        spec = torch.stft(x, self.n_fft, self.hop, window=window, center=True, pad_mode="reflect", return_complex=True)
        return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=self.eps))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = _check_pair(pred, target)
        if target.shape[-1] < self.n_fft:
            raise ModelError(f"STFT loss with n_fft={self.n_fft} needs at least {self.n_fft} samples, got {target.shape[-1]}")
        p, t = self.magnitude(pred), self.magnitude(target)
        loss = pred.new_zeros(())
        if self.w_sc:
            sc = torch.linalg.norm((t - p).flatten(1), dim=1) / torch.linalg.norm(t.flatten(1), dim=1)
            loss = loss + self.w_sc * sc.mean()
        if self.w_log_mag:
            loss = loss + self.w_log_mag * (torch.log(t) - torch.log(p)).abs().mean()
        if self.w_lin_mag:
            loss = loss + self.w_lin_mag * (t - p).abs().mean()
        return loss


class MultiResolutionSTFTLoss(nn.Module):
    """Mean of :class:`STFTLoss` over FFT sizes (default 2048, 512, 128, 32; hop n/4; Hann).

    Signals shorter than a resolution's FFT size skip that resolution (the mean is over the
    resolutions used), so short windows still train; a signal shorter than the smallest FFT size
    raises :class:`~fxcap.errors.ModelError`.
    """

    def __init__(
        self,
        fft_sizes: tuple[int, ...] = STFT_FFT_SIZES,
        hop_sizes: tuple[int, ...] | None = None,
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
    ) -> None:
        super().__init__()
        hop_sizes = hop_sizes or tuple(max(1, n // 4) for n in fft_sizes)
        if len(hop_sizes) != len(fft_sizes):
            raise ModelError("give one hop size per FFT size")
        self.losses = nn.ModuleList(
            STFTLoss(n, h, w_sc=w_sc, w_log_mag=w_log_mag, w_lin_mag=w_lin_mag) for n, h in zip(fft_sizes, hop_sizes)
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        steps = as_batch_time(pred).shape[-1]
        used = [loss for loss in self.losses if loss.n_fft <= steps]
        if not used:
            smallest = min(loss.n_fft for loss in self.losses)
            raise ModelError(f"signals of {steps} samples are shorter than the smallest STFT size ({smallest})")
        return torch.stack([loss(pred, target) for loss in used]).mean()


class CombinedLoss(nn.Module):
    """``l1_weight * L1 + stft_weight * MRSTFT + esr_weight * ESR + dc_weight * DC``.

    L1 and MRSTFT see the signals after the ``pre_emphasis`` filter when it is on (the released code's
    ``(1 - z^-1)/(1 - 0.995 z^-1)``; ``pre_emphasis_kind="fir"`` selects ``1 - 0.95 z^-1``); the ESR
    term has its own first-order emphasis ``1 - esr_emphasis z^-1`` (:class:`PooledESRLoss`) and the DC
    term sees the plain signals. ``skip`` samples at the start of every window are left out of every
    term: each training window starts from a zero state, which the device never had, so its first
    samples cannot be predicted (the device's slow filters and the clipper's charge remember what came
    before). Defaults follow the released code: ``L1 + 0.1 * MRSTFT`` with pre-emphasis, nothing skipped.
    """

    def __init__(
        self,
        l1_weight: float = 1.0,
        stft_weight: float = 0.1,
        pre_emphasis: bool = True,
        pre_emphasis_kind: str = "hp",
        fft_sizes: tuple[int, ...] = STFT_FFT_SIZES,
        esr_weight: float = 0.0,
        dc_weight: float = 0.0,
        esr_emphasis: float = 0.0,
        skip: int = 0,
    ) -> None:
        super().__init__()
        weights = {"l1_weight": l1_weight, "stft_weight": stft_weight, "esr_weight": esr_weight, "dc_weight": dc_weight}
        for name, value in weights.items():
            if not float(value) >= 0.0:
                raise ModelError(f"loss weight {name} must be zero or positive, got {value}")
        if not any(float(v) for v in weights.values()):
            raise ModelError("every loss weight is zero: give at least one term a positive weight")
        if int(skip) < 0:
            raise ModelError(f"the loss skip must be zero or a positive number of samples, got {skip}")
        self.l1_weight, self.stft_weight = float(l1_weight), float(stft_weight)
        self.esr_weight, self.dc_weight, self.skip = float(esr_weight), float(dc_weight), int(skip)
        self.pre_emphasis = PreEmphasis(pre_emphasis_kind) if pre_emphasis else None
        self.l1 = L1Loss()
        self.stft = MultiResolutionSTFTLoss(fft_sizes)
        self.esr = PooledESRLoss(esr_emphasis)
        self.dc = DCLoss()

    def terms(self, pred: torch.Tensor, target: torch.Tensor, power: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The unweighted terms ``{"l1", "stft", "esr", "dc"}`` (a term with weight 0 is 0, not computed);
        ``power`` ``(N,)``: per-item reference power of the ESR and DC terms (see :class:`PooledESRLoss`)."""
        if pred.shape != target.shape:
            raise ModelError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        pred, target = as_batch_time(pred), as_batch_time(target)
        if self.skip:
            if pred.shape[-1] <= self.skip:
                raise ModelError(f"windows of {pred.shape[-1]} samples are not longer than the loss skip ({self.skip}); "
                                 "use a longer --window or a shorter --loss-skip")
            pred, target = pred[:, self.skip :], target[:, self.skip :]
        zero = pred.new_zeros(())
        out = {"esr": self.esr(pred, target, power) if self.esr_weight else zero,
               "dc": self.dc(pred, target, power) if self.dc_weight else zero}
        if self.pre_emphasis is not None and (self.l1_weight or self.stft_weight):
            pred, target = self.pre_emphasis(pred), self.pre_emphasis(target)
        out["l1"] = self.l1(pred, target) if self.l1_weight else zero
        out["stft"] = self.stft(pred, target) if self.stft_weight else zero
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor, stft_scale: float = 1.0,
                power: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted sum; ``stft_scale`` multiplies the STFT weight (the training warm-up's ramp);
        ``power``: per-item reference power of the ESR and DC terms."""
        terms = self.terms(pred, target, power)
        return (self.l1_weight * terms["l1"] + self.stft_weight * stft_scale * terms["stft"]
                + self.esr_weight * terms["esr"] + self.dc_weight * terms["dc"])
