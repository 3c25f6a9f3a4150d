"""Evaluation metrics (lower is better), with precise definitions.

Every function takes mono signals ``pred`` (the model's output ŷ) and ``target`` (the device's
output y) of equal length ``T`` samples: NumPy arrays or torch tensors of shape ``(T,)`` (``(T, 1)``
and ``(1, T)`` are accepted), in linear full-scale units (1.0 = 0 dBFS). Computations use float64.

================  ===========================================================================
``l1``            ``mean |ŷ - y|`` (full-scale units)
``esr``           ``Σ(ŷ - y)² / Σy²`` (energy ratio; a silent target uses ``Σy² + 1e-12``)
``esr_db``        ``10·log10(esr)`` dB (floored at -120 dB)
``mrstft``        multi-resolution STFT distance of :mod:`fxcap.modeling.losses` (FFT 2048, 512, 128,
                  32; hop n/4; Hann; spectral convergence + mean abs. log-magnitude difference,
                  averaged over the resolutions that fit in ``T``)
``stft_2048``     the same with the single FFT size 2048 (NaN when ``T < 2048``)
``lufs_diff``     ``|L(ŷ) - L(y)|`` LU, ``L`` = ITU-R BS.1770-4 integrated loudness (pyloudnorm), see
                  :func:`lufs` for short and silent signals
``rms_diff_db``   ``|RMS_dB(ŷ) - RMS_dB(y)|``, ``RMS_dB = 20·log10(sqrt(mean x²))`` dBFS
``crest_factor_diff_db``  ``|CF_dB(ŷ) - CF_dB(y)|``, ``CF_dB = 20·log10(max|x| / RMS)`` dB
``transient``     MRSTFT distance between the transient (percussive) parts of ŷ and y, see
                  :func:`transient_error`
================  ===========================================================================

All decibel values are true decibels (20·log10 of an amplitude ratio); the released code's natural
logarithm (values 2.303x too small) is not used. Amplitudes are floored at 1e-10 (-200 dBFS) so a
silent signal gives a finite RMS and a crest factor of 0 dB.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyloudnorm
import torch
from scipy.signal import istft, stft

from fxcap.dsp.esr import esr as shared_esr
from fxcap.dsp.levels import rms
from fxcap.errors import ModelError
from fxcap.modeling.losses import STFT_FFT_SIZES, MultiResolutionSTFTLoss
from fxcap.modeling.running_median import running_median

AMPLITUDE_FLOOR = 1e-10
"""Smallest amplitude used in dB conversions (-200 dBFS)."""

LUFS_FLOOR = -70.0
"""Loudness reported for signals below BS.1770's absolute gate (including digital silence), LUFS."""

LUFS_BLOCK_S = 0.4
"""BS.1770 gating block length in seconds."""

TRANSIENT_FFT_SECONDS = 1024 / 48000
"""Analysis window of the transient separation, in seconds (1024 samples at 48 kHz)."""

TRANSIENT_MEDIAN_BINS = 17
"""Median-filter length (bins across frequency, frames across time) of the transient separation."""


def as_mono(x: Any, name: str = "signal") -> np.ndarray:
    """A 1-D float64 copy of ``x`` (array or tensor of shape ``(T,)``, ``(T, 1)`` or ``(1, T)``)."""
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ModelError(f"{name} must be a mono signal of shape (T,), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ModelError(f"{name} contains NaN or infinite samples")
    return arr


def _pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_mono(pred, "prediction"), as_mono(target, "target")
    if p.shape != t.shape:
        raise ModelError(f"prediction and target lengths differ: {p.shape[0]} vs {t.shape[0]} samples")
    if p.size == 0:
        raise ModelError("cannot score empty signals")
    return p, t


def l1(pred: Any, target: Any) -> float:
    """Mean absolute error ``mean |ŷ - y|``."""
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t)))


def esr(pred: Any, target: Any) -> float:
    """Error-to-signal ratio ``Σ(ŷ - y)² / (Σy² + 1e-12)`` of checked mono signals (:func:`fxcap.dsp.esr.esr`)."""
    return shared_esr(*_pair(pred, target))


ESR_GRADES: tuple[tuple[float, str], ...] = (
    (0.01, "great"),
    (0.035, "not bad"),
    (0.1, "might sound OK"),
    (0.3, "probably will not sound great"),
)
"""Upper ESR bounds and the words capture tools commonly print for them (NAM's trainer uses these bands)."""


def esr_grade(value: float) -> str:
    """The grade of an ESR in words: ``great`` (< 0.01), ``not bad`` (< 0.035), ``might sound OK`` (< 0.1),
    ``probably will not sound great`` (< 0.3), else ``poor``; ``n/a`` for a missing (NaN) value."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    for bound, words in ESR_GRADES:
        if value < bound:
            return words
    return "poor"


def correlation(pred: Any, target: Any) -> float:
    """Pearson correlation of prediction and target (-1 .. 1; 0 where either is constant).

    Not an error (higher is better) and not in the comparison tables: a diagnostic. A negative
    value means the model learned an inverted output, which the STFT metrics cannot see.
    """
    p, t = _pair(pred, target)
    p, t = p - p.mean(), t - t.mean()
    scale = math.sqrt(float(np.sum(p**2)) * float(np.sum(t**2)))
    return float(np.sum(p * t) / scale) if scale > 0 else 0.0


def esr_db(pred: Any, target: Any) -> float:
    """ESR in decibels, ``10·log10(esr)`` (an energy ratio), floored at -120 dB."""
    return 10.0 * math.log10(max(esr(pred, target), 1e-12))


def mrstft(pred: Any, target: Any, fft_sizes: tuple[int, ...] = STFT_FFT_SIZES) -> float:
    """Multi-resolution STFT distance (see :class:`fxcap.modeling.losses.MultiResolutionSTFTLoss`).

    Computed in float32 (the models' own precision): about three times faster than float64 on a CPU,
    and the distance differs by about 1e-5 relative (tested).
    """
    p, t = _pair(pred, target)
    loss = MultiResolutionSTFTLoss(fft_sizes)
    with torch.no_grad():
        return float(loss(torch.from_numpy(p).float()[None], torch.from_numpy(t).float()[None]))


def stft_2048(pred: Any, target: Any) -> float:
    """Single-resolution STFT distance with FFT size 2048 (NaN for signals shorter than 2048 samples)."""
    p, t = _pair(pred, target)
    return mrstft(p, t, (2048,)) if p.size >= 2048 else float("nan")


def lufs(x: Any, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (pyloudnorm, K-weighting, gated 400 ms blocks).

    Signals shorter than one 400 ms block are measured as a single block spanning the whole signal
    (K-weighted mean square, ``-0.691 + 10·log10(z)``, same gating). Results below the absolute gate,
    including digital silence (-inf), are reported as :data:`LUFS_FLOOR` (-70 LUFS).
    """
    arr = as_mono(x)
    if arr.size == 0:
        raise ModelError("cannot measure the loudness of an empty signal")
    block = LUFS_BLOCK_S
    if arr.size < LUFS_BLOCK_S * sample_rate:
        block = float(np.nextafter(arr.size / sample_rate, 0.0))
    value = pyloudnorm.Meter(sample_rate, block_size=block).integrated_loudness(arr)
    return float(max(value, LUFS_FLOOR)) if np.isfinite(value) else LUFS_FLOOR


def lufs_diff(pred: Any, target: Any, sample_rate: int) -> float:
    """``|L(ŷ) - L(y)|`` in LU (see :func:`lufs`)."""
    p, t = _pair(pred, target)
    return abs(lufs(p, sample_rate) - lufs(t, sample_rate))


def rms_db(x: Any) -> float:
    """RMS level ``20·log10(sqrt(mean x²))`` in dBFS (amplitude floored at 1e-10)."""
    return 20.0 * math.log10(max(rms(as_mono(x)), AMPLITUDE_FLOOR))


def crest_factor_db(x: Any) -> float:
    """Crest factor ``20·log10(peak / RMS)`` in dB (both floored at 1e-10; silence gives 0 dB)."""
    arr = as_mono(x)
    peak = max(float(np.max(np.abs(arr))), AMPLITUDE_FLOOR)
    return 20.0 * math.log10(peak / max(rms(arr), AMPLITUDE_FLOOR))


def rms_diff_db(pred: Any, target: Any) -> float:
    """``|RMS_dB(ŷ) - RMS_dB(y)|`` in dB."""
    p, t = _pair(pred, target)
    return abs(rms_db(p) - rms_db(t))


def crest_factor_diff_db(pred: Any, target: Any) -> float:
    """``|CF_dB(ŷ) - CF_dB(y)|`` in dB."""
    p, t = _pair(pred, target)
    return abs(crest_factor_db(p) - crest_factor_db(t))


def transient_fft_size(sample_rate: int, length: int) -> int:
    """FFT size of the transient separation: the power of two nearest ``TRANSIENT_FFT_SECONDS *
    sample_rate`` (1024 at 44.1/48 kHz), at least 64, at most the largest power of two <= ``length``."""
    size = 1 << max(6, round(math.log2(TRANSIENT_FFT_SECONDS * sample_rate)))
    while size > length and size > 2:
        size //= 2
    return size


def percussive_part(x: Any, sample_rate: int, kernel: int = TRANSIENT_MEDIAN_BINS) -> np.ndarray:
    """The transient (percussive) part of ``x`` by median-filtering HPSS (Fitzgerald, DAFx 2010).

    1. STFT ``S`` (Hann window of :func:`transient_fft_size` samples, hop = window / 4);
    2. ``H`` = median of ``|S|`` over ``kernel`` frames along time (steady, harmonic energy);
       ``P`` = median of ``|S|`` over ``kernel`` bins along frequency (broadband, transient energy);
    3. soft (Wiener, power 2) mask ``M = P² / (P² + H²)``;
    4. inverse STFT of ``M·S``, trimmed to ``len(x)`` samples.
    """
    arr = as_mono(x)
    n_fft = transient_fft_size(sample_rate, arr.size)
    hop = max(1, n_fft // 4)
    _, _, spec = stft(arr, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    mag = np.abs(spec)
    harmonic = running_median(mag, kernel, axis=1)
    percussive = running_median(mag, kernel, axis=0)
    mask = percussive**2 / (percussive**2 + harmonic**2 + 1e-20)
    _, out = istft(mask * spec, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    out = out[: arr.size]
    return np.pad(out, (0, arr.size - out.size))


def transient_error(pred: Any, target: Any, sample_rate: int) -> float:
    """Transient error: ``mrstft(percussive_part(ŷ), percussive_part(y))``.

    Each signal's transient part is separated on its own (:func:`percussive_part`: median-filtering
    harmonic-percussive separation with a soft mask), then the two transient parts are compared
    with the multi-resolution STFT distance used everywhere else (:func:`mrstft`). It is 0 for
    identical signals and grows when attacks are smeared, delayed, missing or added, while it is
    largely insensitive to errors in steady tones (those go to the harmonic part).
    """
    p, t = _pair(pred, target)
    return mrstft(percussive_part(p, sample_rate), percussive_part(t, sample_rate))


def score_all(pred: Any, target: Any, sample_rate: int) -> dict[str, float]:
    """Every metric of this module: keys ``l1, esr, esr_db, mrstft, stft_2048, lufs_diff,
    crest_factor_diff_db, rms_diff_db, transient, correlation`` (signals of at least 32 samples)."""
    p, t = _pair(pred, target)
    if p.size < min(STFT_FFT_SIZES):
        raise ModelError(f"scoring needs at least {min(STFT_FFT_SIZES)} samples, got {p.size}")
    return {
        "l1": l1(p, t),
        "esr": esr(p, t),
        "esr_db": esr_db(p, t),
        "mrstft": mrstft(p, t),
        "stft_2048": stft_2048(p, t),
        "lufs_diff": lufs_diff(p, t, sample_rate),
        "crest_factor_diff_db": crest_factor_diff_db(p, t),
        "rms_diff_db": rms_diff_db(p, t),
        "transient": transient_error(p, t, sample_rate),
        "correlation": correlation(p, t),
    }
