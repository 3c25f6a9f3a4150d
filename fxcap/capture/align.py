"""Alignment: map a raw recording onto the played signal's time axis and level.

Every take (and the calibration take) is aligned the same way:

1. **Markers.** The played sync markers (``sync_start`` and ``sync_end`` regions) are found in the
   recording by FFT cross-correlation (:func:`estimate_delay`); the peak is refined to a fraction of
   a sample by Newton iterations on the band-limited (Fourier-interpolated) correlation, which is
   exact for band-limited signals (no parabolic-fit bias). The sign of the peak gives the polarity.
2. **Drift.** The start and end marker latencies give the clock drift
   ``(L_end - L_start) / (distance between markers)``, in ppm (positive: the recording clock runs
   fast). When it would move the end of the signal by more than
   :attr:`AlignConfig.drift_threshold_samples`, the recording is resampled to remove it (a linear
   time warp pivoting on the start marker). The marker latencies are then re-measured on the
   warped recording and the warp refined, which removes the range-Doppler bias a chirp marker
   shows under time scaling.
3. **Latency.** Removed as a fractional delay (windowed-sinc interpolation). With a calibration
   (bypass/loopback) take, the *calibration's* latency is used, so the device's own phase response
   never biases the alignment; the take's own marker latency is only recorded (``latency_offset``
   tells how far the device's markers sit from the rig's, a buffer slip shows up there).
4. **Level and polarity.** The calibration's polarity is applied and its gain divided out, so all
   takes of a session share one dBFS reference (a take is never normalized by itself).

Latencies are in samples at the marker *centre*: ``recorded(n + latency) ~ played(n)`` there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft
from scipy.signal import hilbert

from fxcap.capture.backends.base import RawTake
from fxcap.dsp.levels import amp_to_db, db_to_amp, rms_dbfs
from fxcap.dsp.resample import warp_linear
from fxcap.capture.layout import Region, SignalLayout
from fxcap.capture.session import Alignment
from fxcap.errors import CaptureError

WEIGHTINGS = ("plain", "phat")


@dataclass
class AlignConfig:
    """How alignment searches, interpolates and decides.

    Attributes:
        max_latency_s: largest rig latency searched for (seconds).
        min_latency_s: smallest (may be slightly negative for imported, pre-trimmed files).
        max_drift_ppm: largest clock drift searched for at the end marker (ppm).
        drift_threshold_samples: resample to remove drift when it accumulates to more than this
            many samples between the start and end markers (0.05 samples is about 0.1 ppm for a
            3-minute signal at 48 kHz; below it the drift is at the noise level of the estimate).
        weighting: cross-correlation weighting, ``"plain"`` (matched filter, best in white noise)
            or ``"phat"`` (phase transform, whitened; robust to coloured devices and hum).
        band_hz: frequency band used by the correlation ``(low, high)`` in Hz; ``None`` uses the
            bins where the marker has energy (within ``band_db`` of its spectral peak).
        band_db: see ``band_hz`` (dB below the marker's spectral peak).
        refine_iterations: drift/latency refinement passes on the warped marker neighbourhoods.
        min_marker_corr: normalized marker correlation below which a marker counts as not found.
        edge_skip: fraction of a calibration-tone region skipped at each end (fades, settling).
        silence_skip: fraction of a silence region skipped at its start (device tails) and end.
    """

    max_latency_s: float = 1.0
    min_latency_s: float = -0.01
    max_drift_ppm: float = 1000.0
    drift_threshold_samples: float = 0.05
    weighting: str = "plain"
    band_hz: tuple[float, float] | None = None
    band_db: float = 40.0
    refine_iterations: int = 3
    min_marker_corr: float = 0.15
    edge_skip: float = 0.1
    silence_skip: tuple[float, float] = (0.25, 0.05)

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise CaptureError(f"unknown correlation weighting {self.weighting!r}; use one of {', '.join(WEIGHTINGS)}")
        if self.max_latency_s <= self.min_latency_s:
            raise CaptureError("max_latency_s must be larger than min_latency_s")


@dataclass
class Calibration:
    """What the bypass/loopback take says about the rig (interface + cables, no device).

    Attributes:
        latency_samples: rig latency at the start marker centre (samples, fractional).
        gain_db: rig gain, recorded over played level of the calibration tone (dB).
        polarity: +1, or -1 when the rig inverts.
        drift_ppm: clock drift of the recording relative to playback (ppm; positive: recording fast).
        noise_floor_dbfs: RMS of the silent stretch after gain removal (dBFS, played-signal scale);
            None when the signal has no silent stretch.
        marker_corr: normalized correlation of the start marker (1.0 is a perfect copy).
        extra: anything else worth keeping (end-marker latency, whether drift was corrected...).
    """

    latency_samples: float
    gain_db: float
    polarity: int
    drift_ppm: float
    noise_floor_dbfs: float | None
    marker_corr: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        return cls(
            latency_samples=float(data["latency_samples"]),
            gain_db=float(data["gain_db"]),
            polarity=int(data["polarity"]),
            drift_ppm=float(data["drift_ppm"]),
            noise_floor_dbfs=None if data.get("noise_floor_dbfs") is None else float(data["noise_floor_dbfs"]),
            marker_corr=float(data.get("marker_corr", 1.0)),
            extra=dict(data.get("extra", {})),
        )


# -- delay estimation ------------------------------------------------------------------------
def estimate_delay(
    reference: np.ndarray,
    recorded: np.ndarray,
    search: tuple[float, float] | None = None,
    *,
    weighting: str = "plain",
    band_hz: tuple[float, float] | None = None,
    sample_rate: float | None = None,
    band_db: float = 40.0,
) -> tuple[float, float, int]:
    """Where ``reference`` occurs in ``recorded``: ``recorded[n] ~ a * reference[n - delay]``.

    Args:
        reference: the template (e.g. the played marker), shape ``(k,)``.
        recorded: the signal to search, shape ``(m,)``.
        search: ``(lo, hi)`` range of delays to consider, in samples; default every delay at
            which the template overlaps ``recorded``.
        weighting: ``"plain"`` cross-correlation or ``"phat"`` (whitened cross-spectrum).
        band_hz: correlation band ``(low, high)`` in Hz (needs ``sample_rate``); default: the
            bins where the reference has energy within ``band_db`` dB of its spectral peak.

    Returns:
        ``(delay, peak_corr, polarity)``: the delay in samples (fractional, refined on the
        band-limited correlation to ~1e-6 samples of numerical precision), the correlation at the
        peak normalized to [0, 1] (1: a scaled, delayed copy), and the sign of ``a`` (+1 or -1).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}")
    ref = np.asarray(reference, dtype=np.float64)
    rec = np.asarray(recorded, dtype=np.float64)
    k, m = len(ref), len(rec)
    if k == 0 or m == 0:
        raise ValueError("estimate_delay: empty reference or recording")
    lo, hi = (-(k - 1), m - 1) if search is None else search
    lo_i, hi_i = max(int(np.ceil(lo)), -(k - 1)), min(int(np.floor(hi)), m - 1)
    if hi_i < lo_i:
        raise ValueError(f"estimate_delay: search range {search} is outside the recording")
    size = next_fast_len(m + k, real=True)
    ref_spec = rfft(ref, size)
    cross = rfft(rec, size) * np.conj(ref_spec)
    cross[-1] = 0.0  # the Nyquist bin has no defined phase for fractional delays
    mask = _band_mask(np.abs(ref_spec), size, band_hz, sample_rate, band_db)
    if weighting == "phat":
        cross = np.where(mask, cross / np.maximum(np.abs(cross), 1e-30), 0.0)
    else:
        cross = np.where(mask, cross, 0.0)
    corr = irfft(cross, size)
    lags = np.arange(lo_i, hi_i + 1)
    values = corr[lags % size]
    best = int(np.argmax(np.abs(values)))
    polarity = 1 if values[best] >= 0 else -1
    delay = _refine_peak(cross, size, float(lags[best]), polarity)
    delay = float(np.clip(delay, lo_i - 0.5, hi_i + 0.5))
    peak = polarity * _corr_at(cross, size, delay)[0]
    if weighting == "phat":
        norm = 2.0 * np.count_nonzero(mask) / size
    else:  # Parseval over the band (the mask never holds DC or Nyquist)
        ref_energy = 2.0 * np.sum(np.abs(ref_spec[mask]) ** 2) / size
        start = int(round(delay))
        window = rec[max(start, 0) : max(start + k, 0)]
        norm = np.sqrt(ref_energy * max(float(np.sum(window * window)), 1e-30))
    return delay, float(np.clip(peak / max(norm, 1e-30), 0.0, 1.0)), polarity


def _band_mask(
    ref_mag: np.ndarray, size: int, band_hz: tuple[float, float] | None, sample_rate: float | None, band_db: float
) -> np.ndarray:
    """Boolean mask over rfft bins: the band the correlation listens to (never DC or Nyquist)."""
    if band_hz is not None:
        if not sample_rate:
            raise ValueError("band_hz needs sample_rate")
        freqs = np.arange(len(ref_mag)) * sample_rate / size
        mask = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    else:
        mask = ref_mag >= ref_mag.max() * 10.0 ** (-band_db / 20.0)
    mask[0] = False
    mask[-1] = False
    return mask


def _corr_at(cross: np.ndarray, size: int, tau: float) -> tuple[float, float, float]:
    """Band-limited correlation and its first two derivatives at fractional lag ``tau``.

    ``c(tau) = (2/N) * sum_k Re(C_k exp(i w_k tau))`` over the rfft bins (DC and Nyquist are
    zero), i.e. the exact Fourier interpolation of the circular correlation sequence.
    """
    w = 2.0 * np.pi * np.arange(len(cross)) / size
    terms = cross * np.exp(1j * w * tau)
    scale = 2.0 / size
    value = scale * float(np.sum(terms.real))
    first = -scale * float(np.sum(w * terms.imag))
    second = -scale * float(np.sum(w * w * terms.real))
    return value, first, second


def _refine_peak(cross: np.ndarray, size: int, tau0: float, polarity: int) -> float:
    """Newton iterations from the integer peak to the maximum of ``polarity * c(tau)``."""
    tau = tau0
    for _ in range(30):
        _, first, second = _corr_at(cross, size, tau)
        first, second = polarity * first, polarity * second
        step = -first / second if second < 0 else np.sign(first) * 0.25
        step = float(np.clip(step, -0.5, 0.5))
        tau += step
        if abs(step) < 1e-7:
            break
    if abs(tau - tau0) > 1.0:  # diverged to a neighbouring lobe: keep the integer peak
        return tau0
    return tau


# -- markers and drift --------------------------------------------------------------------------
@dataclass
class _Timing:
    """``recorded(centre + latency + (n - centre) * (1 + drift)) ~ played(n)``."""

    latency: float
    drift: float  # ratio - 1 (not ppm)
    centre: float  # start-marker centre in played samples


@dataclass
class _MarkerFit:
    latency_start: float
    latency_end: float
    corr_start: float
    corr_end: float
    polarity: int
    raw_drift_ppm: float
    timing: _Timing
    drift_corrected: bool
    residual_samples: float  # end-marker misalignment left after the final timing (samples)
    found: bool  # both markers found (correlation >= AlignConfig.min_marker_corr)


def _marker_regions(layout: SignalLayout) -> tuple[Region, Region]:
    starts, ends = layout.of_kind("sync_start"), layout.of_kind("sync_end")
    if not starts or not ends:
        raise CaptureError(
            "signal layout has no sync_start/sync_end markers; regenerate the signal with `fxcap signal`"
        )
    return starts[0], ends[0]


def _centre(region: Region) -> float:
    return (region.start + region.stop - 1) / 2.0


def _locate(
    template: np.ndarray,
    recorded: np.ndarray,
    position: int,
    lo: float,
    hi: float,
    config: AlignConfig,
    sample_rate: int,
) -> tuple[float, float, int]:
    """Latency (samples) of ``template``, played at ``position``, in ``recorded``; searched in [lo, hi].

    Returns ``(latency, corr, polarity)``; reads zeros outside ``recorded``, so a recording that
    is too short gives a low correlation instead of an exception.
    """
    w0 = position + int(np.floor(lo)) - 1
    w1 = position + len(template) + int(np.ceil(hi)) + 1
    window = np.zeros(w1 - w0)
    a, b = max(w0, 0), min(w1, len(recorded))
    if b > a:
        window[a - w0 : b - w0] = recorded[a:b]
    if not np.any(window):
        return (lo + hi) / 2.0, 0.0, 1
    base = position - w0  # delay of the template in ``window`` at zero latency
    delay, corr, polarity = estimate_delay(
        template,
        window,
        (base + lo, base + hi),
        weighting=config.weighting,
        band_hz=config.band_hz,
        sample_rate=sample_rate,
        band_db=config.band_db,
    )
    return delay - base, corr, polarity


def _measure_warped(
    played: np.ndarray,
    recorded: np.ndarray,
    region: Region,
    timing: _Timing,
    config: AlignConfig,
    sample_rate: int,
) -> tuple[float, float, int]:
    """Residual latency of a marker in the recording warped by ``timing`` (samples of the played axis)."""
    pad = 8
    first = region.start - pad
    start = timing.centre + timing.latency + (first - timing.centre) * (1.0 + timing.drift)
    segment = warp_linear(recorded, start, 1.0 + timing.drift, region.length + 2 * pad)
    return _locate(played[region.start : region.stop], segment, pad, -3.0, 3.0, config, sample_rate)


def _fit_markers(raw: RawTake, layout: SignalLayout, config: AlignConfig) -> _MarkerFit:
    """Find both markers, estimate drift, and refine the timing on the warped recording."""
    fs = layout.sample_rate
    played = np.asarray(raw.played, dtype=np.float64)
    recorded = np.asarray(raw.recorded, dtype=np.float64)
    start_region, end_region = _marker_regions(layout)
    centre = _centre(start_region)
    distance = _centre(end_region) - centre
    start_marker = played[start_region.start : start_region.stop]
    end_marker = played[end_region.start : end_region.stop]
    lat_s, corr_s, pol = _locate(
        start_marker, recorded, start_region.start, config.min_latency_s * fs, config.max_latency_s * fs, config, fs
    )
    reach = config.max_drift_ppm * 1e-6 * distance + 4.0
    lat_e, corr_e, pol_e = _locate(end_marker, recorded, end_region.start, lat_s - reach, lat_s + reach, config, fs)
    if pol_e != pol:
        corr_e = 0.0
    found_s, found_e = corr_s >= config.min_marker_corr, corr_e >= config.min_marker_corr
    raw_drift = (lat_e - lat_s) / distance if (found_s and found_e) else 0.0
    timing = _Timing(latency=lat_s, drift=0.0, centre=centre)
    corrected = found_s and found_e and abs(lat_e - lat_s) > config.drift_threshold_samples
    residual = lat_e - lat_s if found_e else float("nan")
    if corrected:
        timing.drift = raw_drift
        for _ in range(max(1, config.refine_iterations)):
            res_s, corr_s, _ = _measure_warped(played, recorded, start_region, timing, config, fs)
            res_e, corr_e, _ = _measure_warped(played, recorded, end_region, timing, config, fs)
            timing.latency += res_s * (1.0 + timing.drift)
            timing.drift = (1.0 + timing.drift) * (1.0 + (res_e - res_s) / distance) - 1.0
            residual = res_e - res_s
            if abs(res_s) < 1e-4 and abs(res_e - res_s) < 1e-4:
                break
    return _MarkerFit(
        latency_start=lat_s,
        latency_end=lat_e,
        corr_start=corr_s if found_s else 0.0,
        corr_end=corr_e if found_e else 0.0,
        polarity=pol,
        raw_drift_ppm=raw_drift * 1e6,
        timing=timing,
        drift_corrected=bool(corrected),
        residual_samples=float(residual),
        found=bool(found_s and found_e),
    )


def _apply_timing(recorded: np.ndarray, timing: _Timing, latency: float, length: int) -> np.ndarray:
    """``out[n] = recorded(centre + latency + (n - centre) * (1 + drift))`` for ``n < length``."""
    step = 1.0 + timing.drift
    start = timing.centre + latency - timing.centre * step
    return warp_linear(np.asarray(recorded, dtype=np.float64), start, step, length)


def _validate(raw: RawTake, layout: SignalLayout) -> None:
    if raw.sample_rate != layout.sample_rate:
        raise CaptureError(
            f"take recorded at {raw.sample_rate} Hz but the signal is {layout.sample_rate} Hz; "
            "record at the signal's sample rate"
        )
    if len(raw.played) != layout.length:
        raise CaptureError(
            f"take played {len(raw.played)} samples but the signal layout has {layout.length}; "
            "the take does not belong to this signal"
        )
    if np.ndim(raw.recorded) != 1 or len(raw.recorded) == 0:
        raise CaptureError("the recording is empty or not mono; record one input channel")


def _finite_or_none(value: float) -> float | None:
    """JSON-safe: the manifest is written with ``allow_nan=False``."""
    return float(value) if np.isfinite(value) else None


def _interior(region: Region, skip_start: float, skip_end: float) -> slice:
    """The part of ``region`` left after skipping the given fractions at its start and end."""
    n = region.length
    return slice(region.start + int(n * skip_start), region.stop - int(n * skip_end))


def _tone_gain(played: np.ndarray, aligned: np.ndarray, region: slice) -> float:
    """Recorded/played amplitude ratio over ``region`` by quadrature projection (linear).

    Projects the recording onto the played tone and its Hilbert transform (Hann-windowed), so
    uncorrelated noise and hum average out and a small phase shift of the rig does not matter.
    """
    p = played[region].astype(np.float64)
    r = aligned[region].astype(np.float64)
    window = np.hanning(len(p))
    q = np.imag(hilbert(p)) * window
    p = p * window
    r = r * window
    energy = 0.5 * (float(np.dot(p, p)) + float(np.dot(q, q)))
    if energy <= 0:
        return 0.0
    return float(np.hypot(np.dot(r, p), np.dot(r, q)) / energy)


def silence_slices(layout: SignalLayout, config: AlignConfig | None = None) -> list[slice]:
    """The parts of the silence regions used to measure a noise floor (tails skipped)."""
    config = config or AlignConfig()
    return [_interior(r, *config.silence_skip) for r in layout.of_kind("silence")]


def noise_floor_dbfs(aligned: np.ndarray, layout: SignalLayout, config: AlignConfig | None = None) -> float:
    """RMS of ``aligned`` over the silence regions (dBFS); ``nan`` when the layout has none."""
    parts = [aligned[s] for s in silence_slices(layout, config)]
    if not parts:
        return float("nan")
    return rms_dbfs(np.concatenate(parts))


# -- public entry points ---------------------------------------------------------------------------
def measure_calibration(raw: RawTake, layout: SignalLayout, config: AlignConfig | None = None) -> Calibration:
    """Measure the rig from a bypass/loopback take: latency, drift, polarity, gain, noise floor.

    Latency and drift come from the sync markers; gain from the calibration tone (after removing
    latency, drift and polarity); the noise floor from the silent stretch (after gain removal).
    Raises :class:`CaptureError` when the markers or the tone cannot be found.
    """
    config = config or AlignConfig()
    _validate(raw, layout)
    fit = _fit_markers(raw, layout, config)
    if not fit.found:
        raise CaptureError(
            f"calibration take: sync markers not found (correlation {min(fit.corr_start, fit.corr_end):.2f}); "
            "check the loopback/bypass cable and the levels, then re-run the calibration"
        )
    tones = layout.of_kind("calibration")
    if not tones:
        raise CaptureError("signal layout has no calibration tone; regenerate the signal with `fxcap signal`")
    aligned = fit.polarity * _apply_timing(raw.recorded, fit.timing, fit.timing.latency, layout.length)
    played = np.asarray(raw.played, dtype=np.float64)
    tone = _interior(tones[0], config.edge_skip, config.edge_skip)
    gain = _tone_gain(played, aligned, tone)
    floor_raw = noise_floor_dbfs(aligned, layout, config)
    tone_level = rms_dbfs(aligned[tone])
    if gain <= 0 or (np.isfinite(floor_raw) and tone_level - floor_raw < 20.0):
        raise CaptureError(
            f"calibration take: the calibration tone is not above the noise floor ({tone_level:.1f} dBFS vs "
            f"{floor_raw:.1f} dBFS); check the loopback/bypass cable and the interface gain"
        )
    gain_db = amp_to_db(gain)
    return Calibration(
        latency_samples=float(fit.timing.latency),
        gain_db=float(gain_db),
        polarity=int(fit.polarity),
        drift_ppm=float(fit.timing.drift * 1e6 if fit.drift_corrected else fit.raw_drift_ppm),
        noise_floor_dbfs=float(floor_raw - gain_db) if np.isfinite(floor_raw) else None,
        marker_corr=float(min(fit.corr_start, fit.corr_end)),
        extra={
            "marker_latency_start": float(fit.latency_start),
            "marker_latency_end": float(fit.latency_end),
            "drift_corrected": fit.drift_corrected,
            "residual_samples": _finite_or_none(fit.residual_samples),
            "tone_level_dbfs": float(tone_level),
            "sample_rate": int(layout.sample_rate),
        },
    )


def align_take(
    raw: RawTake,
    layout: SignalLayout,
    calibration: Calibration | None = None,
    config: AlignConfig | None = None,
) -> tuple[np.ndarray, Alignment]:
    """Align a take onto the played signal: exactly ``layout.length`` float32 samples.

    Drift is measured from the take's own markers and resampled away when significant. Latency
    removed is the calibration's (the take's own marker latency when ``calibration`` is None);
    polarity and gain are the calibration's (without one: the take's own polarity, gain 0 dB).
    Never raises for bad audio: a take whose markers are missing is aligned with the best guess
    and ``extra["markers_found"] = False`` so the checks reject it.
    """
    config = config or AlignConfig()
    _validate(raw, layout)
    fit = _fit_markers(raw, layout, config)
    take_latency = float(fit.timing.latency)
    if calibration is not None:
        latency, polarity, gain_db = calibration.latency_samples, calibration.polarity, calibration.gain_db
    else:
        latency, polarity, gain_db = take_latency, fit.polarity, 0.0
    aligned = _apply_timing(raw.recorded, fit.timing, latency, layout.length)
    aligned *= polarity / db_to_amp(gain_db)
    drift_ppm = fit.timing.drift * 1e6 if fit.drift_corrected else fit.raw_drift_ppm
    alignment = Alignment(
        latency_samples=float(latency),
        gain_db=float(gain_db),
        polarity=int(polarity),
        drift_ppm=float(drift_ppm),
        drift_corrected=fit.drift_corrected,
        marker_latency_start=float(fit.latency_start),
        marker_latency_end=float(fit.latency_end),
        extra={
            "markers_found": fit.found,
            "marker_corr_start": float(fit.corr_start),
            "marker_corr_end": float(fit.corr_end),
            "take_polarity": int(fit.polarity),
            "take_latency": take_latency,
            "latency_offset": float(take_latency - latency),
            "residual_samples": _finite_or_none(fit.residual_samples),
        },
    )
    return aligned.astype(np.float32), alignment
