"""The capture signal's configuration: sample rates, region lengths and levels per preset, and
:class:`SignalConfig` (what :func:`fxcap.capture.signal.generate_signal` builds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxcap.errors import FxcapError

SIGNAL_VERSION = "1.0"
"""Version of the signal recipe; bumped whenever the bytes generated for a given config change."""

SUPPORTED_RATES = (44100, 48000, 88200, 96000)
"""Sample rates (Hz) the signal can be generated at."""

CALIBRATION_HZ = 1000.0
"""Frequency of the calibration tone (Hz)."""

CALIBRATION_LEVEL_DB = -6.0
"""Peak of the calibration tone relative to the signal's peak (dB)."""

SWEEP_F1 = 20.0
"""Start frequency of the sine sweeps (Hz); they end at :func:`sweep_stop_hz`."""

FADE_SECONDS = 0.005
"""Raised-cosine fade at the edges of tones, sweeps and noise bursts (seconds)."""

DEFAULT_PEAK_DBFS = -3.0
"""Default peak of the whole signal (dBFS): leaves headroom for the interface's converters."""


def sweep_stop_hz(sample_rate: int) -> float:
    """End frequency of the sine sweeps: 20 kHz, or 0.45 of the sample rate if that is lower (Hz)."""
    return min(20000.0, 0.45 * sample_rate)


@dataclass(frozen=True)
class _Preset:
    """Region lengths (seconds) and levels (dB re peak) of one preset."""

    settle_s: float
    calibration_s: float
    silence_s: float
    validation_s: float
    sweep_s: float
    sweep_levels_db: tuple[float, ...]
    noise_s: float
    noise_levels_db: tuple[float, ...]
    plucks_s: float
    chords_s: float
    bass_s: float
    drums_s: float
    mix_s: float
    steps: tuple[tuple[float, float], ...]  # (level dB re peak, seconds)
    bursts_s: float
    tail_s: float


PRESETS: dict[str, _Preset] = {
    "short": _Preset(
        settle_s=0.15,
        calibration_s=0.5,
        silence_s=0.75,
        validation_s=2.0,
        sweep_s=2.0,
        sweep_levels_db=(-12.0, 0.0),
        noise_s=0.5,
        noise_levels_db=(-20.0, 0.0),
        plucks_s=2.5,
        chords_s=2.0,
        bass_s=1.5,
        drums_s=1.5,
        mix_s=2.0,
        steps=((-30.0, 0.4), (0.0, 0.6), (-30.0, 0.6), (-10.0, 0.4), (0.0, 0.4), (-10.0, 0.6)),
        bursts_s=2.0,
        tail_s=0.25,
    ),
    "default": _Preset(
        settle_s=0.4,
        calibration_s=1.0,
        silence_s=1.5,
        validation_s=6.0,
        sweep_s=6.0,
        sweep_levels_db=(-20.0, -10.0, 0.0),
        noise_s=1.5,
        noise_levels_db=(-30.0, -20.0, -10.0, 0.0),
        plucks_s=25.0,
        chords_s=25.0,
        bass_s=15.0,
        drums_s=15.0,
        mix_s=30.0,
        steps=(
            (-30.0, 1.0), (0.0, 1.5), (-30.0, 1.5), (-10.0, 1.0), (0.0, 1.0), (-10.0, 1.5),
            (-30.0, 2.0), (0.0, 0.5), (-20.0, 1.0),
        ),
        bursts_s=10.0,
        tail_s=0.5,
    ),
}


@dataclass(frozen=True)
class SignalConfig:
    """How to generate the capture signal.

    Attributes:
        sample_rate: Hz; one of :data:`SUPPORTED_RATES`.
        preset: ``"default"`` (about 3 minutes) or ``"short"`` (about 30 s, for tests and quick runs).
        peak_dbfs: peak of the whole signal (dBFS), in [-40, 0].
        seed: seeds every random choice (notes, noise); same seed, same signal.
    """

    sample_rate: int = 48000
    preset: str = "default"
    peak_dbfs: float = DEFAULT_PEAK_DBFS
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`FxcapError` naming the allowed values if a field is out of range."""
        check_sample_rate(self.sample_rate)
        if self.preset not in PRESETS:
            raise FxcapError(f"unknown signal preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        _check_peak(self.peak_dbfs)
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise FxcapError(f"signal seed must be a non-negative integer, not {self.seed!r}")


def check_sample_rate(sample_rate: int) -> int:
    """Return ``sample_rate`` as int or raise :class:`FxcapError` if the signal cannot be made at it."""
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or int(sample_rate) not in SUPPORTED_RATES:
        raise FxcapError(
            f"sample rate {sample_rate} Hz is not supported; use one of "
            f"{', '.join(str(r) for r in SUPPORTED_RATES)} Hz"
        )
    return int(sample_rate)


def _check_peak(peak_dbfs: float) -> float:
    try:
        value = float(peak_dbfs)
    except (TypeError, ValueError):
        raise FxcapError(f"peak level must be a number in dBFS (-40..0), not {peak_dbfs!r}") from None
    if not -40.0 <= value <= 0.0:
        raise FxcapError(f"peak level {value:g} dBFS is outside -40..0 dBFS; pick e.g. -3")
    return value
