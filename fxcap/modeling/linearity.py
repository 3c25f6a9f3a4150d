"""Clean where the device is clean: which settings are linear, and how nonlinear a model is there.

An ESR loss hardly sees a second or third harmonic 45 dB down (about 3e-5 of the error energy), so a
model trained on it keeps a little distortion at the settings where the device has none (a drive
pedal at drive 0: ``docs/quality.md``). ``TrainConfig.linear_penalty`` adds a term that does see it,
at those settings only:

1. **Which settings are linear** (:class:`SettingLinearity`, once per run, from the training split):
   the share of each setting's target that no linear filter of its input explains,
   ``sum_f (P_yy - |P_xy|^2 / P_xx) / sum_f P_yy`` from Welch spectra (:func:`linear_residual_db`;
   the coherence-weighted residual: nonlinearity plus noise). A setting is linear when that share
   is below ``TrainConfig.linear_threshold_db``.
2. **How nonlinear the model is there** (:func:`nonlinear_part`), by one of two linearisations
   (``TrainConfig.linearisation``, :data:`LINEARISATIONS`):

   * ``"silence"``: the model's output less its own linearisation about silence,
     ``F(x) - (F(e x) - F(-e x)) / (2 e)`` with ``e`` small (:data:`LINEARISATION_SCALE`): the
     central difference cancels the even orders (DC included) and leaves the cubic and higher ones
     ``e^2`` smaller, so what remains is every order above the first. Two extra runs of the model,
     and the model must be linear down to -40 dB below the signal.
   * ``"level"``: the output less its change with the input's own level,
     ``F(x) - (F((1 + d) x) - F(x)) / d`` with :data:`LEVEL_STEP` ``d``: an order-``k`` term
     ``a x^k`` leaves ``(1 - ((1 + d)^k - 1) / d) a x^k`` (``-1.1`` times itself for ``k = 2``,
     ``-2.3`` for ``k = 3``, the DC whole), the linear one nothing. One extra run, and the model
     must be linear only about the level it is played at: a gain that changes only toward silence
     (an expander's, a make-up gain's) is left alone.
3. **The penalty** (:func:`nonlinear_log_share`): ``mean log(E[n^2] / E[target^2] + floor)`` over the
   windows of linear settings, warm-up left out, a pressure equal on every decibel of the nonlinear
   share (as ``even_penalty``), applied only where the device shows none. With
   ``TrainConfig.linear_bands`` the share is taken per log-spaced frequency band and the logs averaged
   (:func:`nonlinear_band_log_share`), so a dark setting's treble is held to its own level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import signal

from fxcap.errors import ModelError
from fxcap.modeling.setting_power import SettingTable, setting_rows
from fxcap.modeling.train_config import LINEARISATIONS

LINEARISATION_SCALE = 1e-2
"""``e`` of :func:`nonlinear_part`: the input scale of the model's linearisation (the cubic term it
leaves is ``e^2 = 1e-4`` of the model's own, float32 rounding of the difference far below that)."""

WELCH_SEGMENT = 16384
"""Samples per Welch segment of :func:`linear_residual_db` (0.34 s at 48 kHz: resolves the long
linear memory of input and output coupling filters, whose leakage would read as nonlinearity)."""

LEVEL_STEP = 0.1
"""``d`` of the ``"level"`` linearisation (:func:`nonlinear_part`): the extra run is ``1 + d`` times as
loud (+0.83 dB). The linear term cancels exactly for any ``d``; a larger one keeps float32 rounding of
the difference small (``N = (1 + 1/d) F(x) - F((1 + d) x) / d``)."""

MIN_WELCH_SEGMENT = 2048
"""Shortest Welch segment :meth:`SettingLinearity.from_split` uses (a setting with less than four of them
of training audio is not called linear)."""

LINEARITY_MAX_SAMPLES = 1 << 21
"""Samples per setting :meth:`SettingLinearity.from_split` reads at most (44 s at 48 kHz: 255 Welch segments,
enough to tell a -40 dB residual from a -25 dB one; the whole of a 3-minute capture took half a minute
per run)."""

NONLINEAR_SHARE_FLOOR = 1e-7
"""Floor (an energy ratio, -70 dB) added to the nonlinear share before its log: below it the penalty stops pushing."""


def linear_residual_db(x: np.ndarray, y: np.ndarray, segment: int = WELCH_SEGMENT) -> float:
    """The share of ``y``'s power that no linear time-invariant filter of ``x`` explains, in dB.

    ``10 log10(sum_f (P_yy - |P_xy|^2 / P_xx) / sum_f P_yy)`` with Welch estimates (Hann, half
    overlap, ``segment`` samples, each segment's mean removed): about -inf for a filtered copy of
    ``x``, the distortion-plus-noise share otherwise (``y = x + 0.1 (x^2 - 1)`` with Gaussian ``x``:
    ``0.02 / 1.02``, -17.1 dB). Needs at least one segment of audio.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ModelError(f"input and target differ in length ({x.size} and {y.size} samples)")
    if x.size < segment:
        raise ModelError(f"{x.size} samples are too few to tell a linear setting ({segment} needed); capture longer takes")
    _, pxx = signal.welch(x, nperseg=segment)
    _, pyy = signal.welch(y, nperseg=segment)
    _, pxy = signal.csd(x, y, nperseg=segment)
    total = float(pyy.sum())
    if total <= 0:
        raise ModelError("the target is silent, so its linearity is undefined; rebuild the dataset without that take")
    explained = np.abs(pxy) ** 2 / np.maximum(pxx, np.finfo(np.float64).tiny)
    residual = float(np.maximum(pyy - explained, 0.0).sum())
    return 10.0 * float(np.log10(max(residual / total, 1e-30)))


class SettingLinearity(SettingTable):
    """Whether each setting of a split is linear: ``lookup(knobs (B, K)) -> (B,)`` booleans.

    :attr:`residual_db` holds every setting's :func:`linear_residual_db` (same order as :attr:`knobs`).
    """

    unknown_hint = "train with linear_penalty 0 for knob settings that vary within a window"

    def __init__(self, knobs: np.ndarray, residual_db: np.ndarray, threshold_db: float, tolerance: float = 1e-4) -> None:
        self.residual_db = np.asarray(residual_db, dtype=np.float64)
        self.threshold_db = float(threshold_db)
        super().__init__(knobs, self.residual_db < self.threshold_db, tolerance)

    @classmethod
    def from_split(cls, dataset_dir: str | Path, threshold_db: float, split: str = "train", **cache: Any) -> "SettingLinearity":
        """The table of one split: each setting's rows joined end to end (the first
        :data:`LINEARITY_MAX_SAMPLES` of them), then :func:`linear_residual_db` with Welch segments of
        :data:`WELCH_SEGMENT` samples, or of a quarter of the audio where that is shorter (at least
        :data:`MIN_WELCH_SEGMENT`; a setting with less audio gets NaN, not linear)."""
        data, unique, inverse = setting_rows(dataset_dir, split, **cache)
        residual = []
        for setting in range(len(unique)):
            segments, samples = [], 0
            for row in np.flatnonzero(inverse == setting):
                if samples >= LINEARITY_MAX_SAMPLES:
                    break
                segments.append(data.cache.segment(row))
                samples += segments[-1].shape[1]
            audio = np.concatenate(segments, axis=1)[:, :LINEARITY_MAX_SAMPLES]
            # shorter audio: shorter Welch segments, whose leakage reads as nonlinearity (a setting is
            # then linear less often, never more); too little to tell: not linear (NaN)
            segment = min(WELCH_SEGMENT, 1 << int(np.log2(max(audio.shape[1] // 4, 1))))
            residual.append(linear_residual_db(audio[0], audio[1], segment) if segment >= MIN_WELCH_SEGMENT else np.nan)
        return cls(unique, np.array(residual), threshold_db)

    def describe(self, names: list[str] | None = None) -> str:
        """One line: how many settings are linear, with their residuals (dB)."""
        linear = [i for i in range(len(self.residual_db)) if bool(self.values[i])]
        def label(i: int) -> str:
            values = self.knobs[i].tolist()
            return ", ".join(f"{n}={v:+.2f}" for n, v in zip(names or [f"knob{k}" for k in range(len(values))], values))
        shown = "; ".join(f"{label(i)}: {self.residual_db[i]:.1f} dB" for i in linear)
        return (f"{len(linear)} of {len(self.residual_db)} settings are linear (residual below {self.threshold_db:g} dB)"
                + (f": {shown}" if shown else ""))


def nonlinear_part(model: torch.nn.Module, x: torch.Tensor, knobs: torch.Tensor, output: torch.Tensor,
                   scale: float = LINEARISATION_SCALE, about: str = "silence") -> torch.Tensor:
    """The model's output ``output = F(x)`` (from a zero state) less its linearisation, with gradients;
    every extra run from a zero state too.

    ``about="silence"``: ``output - (F(scale x) - F(-scale x)) / (2 scale)`` (two extra runs);
    ``about="level"``: ``output - (F((1 + LEVEL_STEP) x) - output) / LEVEL_STEP`` (one extra run; ``scale``
    unused). See the module's docstring for what each leaves of an order-``k`` term."""
    if about == "level":
        louder, _ = model((1.0 + LEVEL_STEP) * x, knobs)
        return output - (louder - output) / LEVEL_STEP
    if about != "silence":
        raise ModelError(f"unknown linearisation {about!r}; use one of {', '.join(LINEARISATIONS)}")
    small = torch.cat([scale * x, -scale * x])
    both, _ = model(small, torch.cat([knobs, knobs]))
    plus, minus = both[: x.shape[0]], both[x.shape[0]:]
    return output - (plus - minus) / (2.0 * scale)


def nonlinear_log_share(nonlinear: torch.Tensor, target: torch.Tensor, skip: int = 0,
                        floor: float = NONLINEAR_SHARE_FLOOR) -> torch.Tensor:
    """``log(E_t[n^2] / E_t[target^2] + floor)`` per window ``(B,)``, the first ``skip`` samples left out."""
    n = nonlinear.reshape(nonlinear.shape[0], -1)[:, skip:]
    t = target.reshape(target.shape[0], -1)[:, skip:]
    return torch.log(n.square().mean(-1) / (t.square().mean(-1) + 1e-12) + floor)


def band_edges(samples: int, bands: int) -> list[int]:
    """``[first, ..., stop)`` rfft bin edges of ``bands`` log-spaced bands over bins 1 to Nyquist of a
    ``samples``-long window (fewer when low bands would hold less than one bin each)."""
    top = samples // 2 + 1
    return sorted({int(round(v)) for v in np.geomspace(1, top, bands + 1)})


def nonlinear_band_log_share(nonlinear: torch.Tensor, target: torch.Tensor, bands: int, skip: int = 0,
                             floor: float = NONLINEAR_SHARE_FLOOR) -> torch.Tensor:
    """``mean_b log(N_b / T_b + floor)`` per window ``(B,)``: :func:`nonlinear_log_share` in each of
    ``bands`` log-spaced frequency bands (:func:`band_edges`; Hann-windowed power spectra of the window,
    the first ``skip`` samples left out), averaged. The distortion must be small against the target
    in every band, not only overall: at a dark setting, harmonics above the target's little treble
    count as much as its bass."""
    n = nonlinear.reshape(nonlinear.shape[0], -1)[:, skip:]
    t = target.reshape(target.shape[0], -1)[:, skip:]
    hann = torch.hann_window(n.shape[-1], dtype=n.dtype, device=n.device)
    pn = torch.fft.rfft(n * hann).abs().square()
    pt = torch.fft.rfft(t * hann).abs().square()
    edges = band_edges(n.shape[-1], bands)
    shares = [torch.log(pn[:, a:b].sum(-1) / (pt[:, a:b].sum(-1) + 1e-12) + floor) for a, b in zip(edges[:-1], edges[1:])]
    return torch.stack(shares, dim=-1).mean(-1)


def linear_penalty(model: torch.nn.Module, linearity: SettingLinearity, x: torch.Tensor, knobs: torch.Tensor,
                   output: torch.Tensor, target: torch.Tensor, skip: int = 0, bands: int = 0,
                   about: str = "silence") -> torch.Tensor:
    """The training term of ``TrainConfig.linear_penalty`` for one batch (before its weight): the
    :func:`nonlinear_log_share` of the windows at linear settings, summed and divided by the batch size
    (so a window counts as much as in the loss's means; 0 when no window is at a linear setting).
    ``output`` is the model's output for ``x`` from a zero state; ``bands`` > 0: the share per
    frequency band (:func:`nonlinear_band_log_share`); ``about``: the linearisation (:func:`nonlinear_part`)."""
    linear = linearity.lookup(knobs).to(torch.bool)
    if not bool(linear.any()):
        return output.new_zeros(())
    nonlinear = nonlinear_part(model, x[linear], knobs[linear], output[linear], about=about)
    if bands:
        shares = nonlinear_band_log_share(nonlinear, target[linear], bands, skip)
    else:
        shares = nonlinear_log_share(nonlinear, target[linear], skip)
    return shares.sum() / x.shape[0]
