"""Signal measurements for the knob-response curves: gain, harmonic distortion, gain reduction, spectra.

All functions take mono float arrays in full-scale units (1.0 = 0 dBFS) and compute in float64.

==========================  ==================================================================================
:func:`gain_db`             ``20·log10(RMS(out) / RMS(in))`` dB over the same stretch of samples
:func:`tone_frequency`      frequency (Hz) of the strongest spectral peak of a steady tone
:func:`thd_db`              total harmonic distortion of a steady tone: ``10·log10(Σ_{h≥2} P_h / P_1)`` dB
                            (Blackman-Harris window, power summed over ±4 bins around each harmonic)
:func:`thd_noise_floor_db`  what :func:`thd_db` reads from noise alone (the same bands, between the harmonics)
:func:`thd_error_db`        how far a model's THD is from the device's, by the device's noise floor
:func:`thd_and_floor_db`    both THD figures from one spectrum (what the knob response uses)
:func:`compression_db`      gain reduction of loud against quiet material: median per-frame gain of the
                            quietest quarter of frames minus that of the loudest tenth (dB; 0 for a
                            linear device, positive when loud passages are turned down)
:func:`spectrogram_db`      magnitude spectrogram in dBFS (Hann window)
==========================  ==================================================================================
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import stft
from scipy.signal.windows import blackmanharris

from fxcap.dsp.levels import rms as levels_rms

AMPLITUDE_FLOOR = 1e-10
"""Smallest amplitude used in dB conversions (-200 dBFS)."""

HARMONIC_HALF_WIDTH = 4
"""Bins summed on each side of a harmonic's bin: the main lobe of the 4-term Blackman-Harris window."""

THD_FLOOR_DB = -200.0
"""Lowest THD reported (dB): a mathematically pure sine would otherwise read about -290 dB."""

MAX_HARMONIC = 10
"""Highest harmonic counted by :func:`thd_db` (fewer when they pass the Nyquist frequency)."""

FRAME_SECONDS = 0.02
"""Frame length (s) of the level analysis behind :func:`compression_db`."""

LEVEL_RANGE_DB = 50.0
"""Frames more than this far (dB) below the loudest input frame are ignored by :func:`compression_db`."""


def _mono(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def rms(x: np.ndarray) -> float:
    """Root-mean-square value of ``x`` flattened (0.0 for an empty array; :func:`fxcap.dsp.levels.rms`)."""
    return levels_rms(_mono(x))


def gain_db(x_in: np.ndarray, x_out: np.ndarray) -> float:
    """Gain in dB from ``x_in`` to ``x_out``: ``20·log10(RMS(out) / RMS(in))`` (amplitudes floored at 1e-10)."""
    return 20.0 * math.log10(max(rms(x_out), AMPLITUDE_FLOOR) / max(rms(x_in), AMPLITUDE_FLOOR))


def _power_spectrum(x: np.ndarray) -> np.ndarray:
    x = _mono(x)
    window = blackmanharris(x.size, sym=False)
    return np.abs(np.fft.rfft(x * window)) ** 2


def tone_frequency(x: np.ndarray, sample_rate: int) -> float:
    """Frequency (Hz) of the strongest peak of ``x``'s spectrum, refined by parabolic interpolation
    of the log power around the peak bin (accurate to a small fraction of a bin for a steady tone)."""
    x = _mono(x)
    if x.size < 16:
        raise ValueError(f"a tone needs at least 16 samples to be measured, got {x.size}")
    power = _power_spectrum(x - x.mean())
    power[0] = 0.0
    k = int(np.argmax(power))
    offset = 0.0
    if 0 < k < power.size - 1:
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-300)
        denominator = a - 2 * b + c
        offset = 0.5 * (a - c) / denominator if denominator != 0 else 0.0
    return (k + offset) * sample_rate / x.size


def _band_power(power: np.ndarray, bin_position: float) -> float:
    centre = int(round(bin_position))
    lo, hi = max(centre - HARMONIC_HALF_WIDTH, 1), min(centre + HARMONIC_HALF_WIDTH + 1, power.size)
    return float(np.sum(power[lo:hi])) if hi > lo else 0.0


def _harmonic_ratios_db(x: np.ndarray, sample_rate: int, fundamental_hz: float, max_harmonic: int,
                        offsets: tuple[float, ...]) -> tuple[float, ...]:
    """``10·log10(Σ_h P(h + offset) / P_1)`` over ``h = 2..max_harmonic`` whose band lies below Nyquist,
    for each offset, from one spectrum."""
    x = _mono(x)
    bin_hz = sample_rate / max(x.size, 1)
    if fundamental_hz <= 0 or fundamental_hz / bin_hz < 2 * HARMONIC_HALF_WIDTH + 1:
        raise ValueError(
            f"{x.size} samples cannot resolve a {fundamental_hz:.0f} Hz tone at {sample_rate} Hz "
            f"(needs at least {int(math.ceil((2 * HARMONIC_HALF_WIDTH + 1) * sample_rate / max(fundamental_hz, 1e-9)))})"
        )
    power = _power_spectrum(x - x.mean())
    fundamental = _band_power(power, fundamental_hz / bin_hz)
    orders = [h for h in range(2, max_harmonic + 1) if h * fundamental_hz / bin_hz + HARMONIC_HALF_WIDTH < power.size - 1]
    if fundamental <= 0:
        return tuple(float("nan") for _ in offsets)
    return tuple(
        max(10.0 * math.log10(max(sum(_band_power(power, (h + offset) * fundamental_hz / bin_hz) for h in orders), 1e-300)
                              / fundamental), THD_FLOOR_DB)
        for offset in offsets
    )


def thd_db(x: np.ndarray, sample_rate: int, fundamental_hz: float, max_harmonic: int = MAX_HARMONIC) -> float:
    """Total harmonic distortion of a steady tone at ``fundamental_hz``, in dB relative to the fundamental.

    ``10·log10(Σ P_h / P_1)`` over harmonics ``h = 2..max_harmonic`` whose band (±4 bins) lies below
    the Nyquist frequency; ``P_h`` is the windowed power summed over ±4 bins around ``h·f0``.
    A pure sine reads :data:`THD_FLOOR_DB` (-200 dB); a sine with a 3rd harmonic at 10 % amplitude, -20 dB.
    Raises ``ValueError`` when ``x`` is too short to resolve the fundamental from DC and its 2nd harmonic.
    """
    return _harmonic_ratios_db(x, sample_rate, fundamental_hz, max_harmonic, (0.0,))[0]


def thd_noise_floor_db(x: np.ndarray, sample_rate: int, fundamental_hz: float, max_harmonic: int = MAX_HARMONIC) -> float:
    """What :func:`thd_db` would read from ``x``'s noise alone: the same bands, each moved half a
    fundamental up (centred on ``(h + 1/2)·f0``, between the harmonics), relative to the fundamental (dB).

    A recording's THD near this floor is its noise, not its distortion: the device's harmonics
    there are unresolved, and all the measurement says is that they are no louder.
    """
    return _harmonic_ratios_db(x, sample_rate, fundamental_hz, max_harmonic, (0.5,))[0]


def thd_and_floor_db(x: np.ndarray, sample_rate: int, fundamental_hz: float, max_harmonic: int = MAX_HARMONIC) -> tuple[float, float]:
    """:func:`thd_db` and :func:`thd_noise_floor_db` of ``x`` from one spectrum."""
    thd, floor = _harmonic_ratios_db(x, sample_rate, fundamental_hz, max_harmonic, (0.0, 0.5))
    return thd, floor


THD_RESOLVED_DB = 3.0
"""A THD reading counts as resolved from the noise when it is at least this far (dB) above its
:func:`thd_noise_floor_db`: the harmonics then carry at least as much power as the noise in their bands."""


def thd_error_db(model_db: float, device_db: float, device_floor_db: float | None = None,
                 resolved_db: float = THD_RESOLVED_DB) -> float:
    """How far a model's THD is from the device's (dB, never negative): ``|model - device|`` where the
    device's THD is resolved from its noise floor, else only the excess ``max(model - device, 0)``
    (the device's harmonics lie at or below its noise, so a cleaner model is no error)."""
    if device_floor_db is not None and device_db < device_floor_db + resolved_db:
        return max(model_db - device_db, 0.0)
    return abs(model_db - device_db)


def frame_levels_db(x: np.ndarray, sample_rate: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level (dBFS, floored at -200) of consecutive non-overlapping frames of ``frame_seconds``;
    a last partial frame is dropped."""
    x = _mono(x)
    frame = max(1, int(round(frame_seconds * sample_rate)))
    count = x.size // frame
    if count == 0:
        return np.zeros(0)
    mean_square = np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1)
    return 20.0 * np.log10(np.maximum(np.sqrt(mean_square), AMPLITUDE_FLOOR))


def compression_db(levels_in: np.ndarray, levels_out: np.ndarray) -> float | None:
    """Gain reduction (dB) of loud against quiet material from matched frame levels (dBFS).

    Frames whose input is within :data:`LEVEL_RANGE_DB` of the loudest input frame are kept; the
    result is the median gain (out - in) of the kept frames at or below the 25th input-level
    percentile minus the median gain of those at or above the 90th. ``None`` when fewer than 8
    frames are usable or the kept input spans less than 6 dB (the material has no dynamics to judge).
    """
    levels_in, levels_out = np.asarray(levels_in, np.float64), np.asarray(levels_out, np.float64)
    if levels_in.shape != levels_out.shape:
        raise ValueError(f"frame level arrays differ in length: {levels_in.size} vs {levels_out.size}")
    if levels_in.size == 0:
        return None
    keep = levels_in >= levels_in.max() - LEVEL_RANGE_DB
    if int(keep.sum()) < 8:
        return None
    lin, lout = levels_in[keep], levels_out[keep]
    quiet_edge, loud_edge = np.percentile(lin, 25), np.percentile(lin, 90)
    if loud_edge - quiet_edge < 6.0:
        return None
    gain = lout - lin
    return float(np.median(gain[lin <= quiet_edge]) - np.median(gain[lin >= loud_edge]))


def spectrogram_db(x: np.ndarray, sample_rate: int, n_fft: int = 1024, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frequencies Hz, times s, magnitude dBFS (freq x time))`` with a Hann window, hop ``n_fft/4``
    (longer when needed to stay within ``max_frames`` frames).

    Scaled so that a full-scale sine reads about 0 dBFS at its bin (floored at -200 dBFS).
    """
    x = _mono(x)
    n_fft = int(min(n_fft, max(16, 1 << int(math.log2(max(x.size, 16))))))
    hop = n_fft // 4
    if max_frames is not None and max_frames > 0:
        hop = min(n_fft, max(hop, int(math.ceil((x.size - n_fft) / max_frames))))
    freqs, times, spec = stft(x, fs=sample_rate, window="hann", nperseg=n_fft, noverlap=n_fft - hop,
                              boundary=None, padded=False)
    magnitude = np.abs(spec) * 2.0  # scipy scales by the window sum; x2 for the one-sided spectrum
    return freqs, times, 20.0 * np.log10(np.maximum(magnitude, AMPLITUDE_FLOOR))
