"""What a real capture rig does to a device's output, with values the capture code is not told.

:func:`apply_rig` turns the device's output (on the playback clock) into what the interface
records: delayed by a fractional latency, scaled by the rig's gain and polarity, read by a
recording clock that may run ``drift_ppm`` fast or slow, with a noise floor and optional mains hum
added at the converter. Optional faults make a take fail its checks on purpose:

* ``"clip"``: the input gain is set too high: the recording's peak is driven
  :attr:`RigImpairments.clip_drive_db` above full scale and hard-clips at +-1.0;
* ``"dropout"``: a stretch of exact zeros (a lost buffer);
* ``"silence"``: the device's output never arrives (cable unplugged): only noise and hum.

Time model: recorded sample ``k`` is the device output at playback time
``k / (1 + drift_ppm 1e-6) - latency_samples`` (band-limited interpolation), so an event played at
sample ``p`` appears at ``(p + latency) (1 + drift)`` in the recording.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fxcap.capture.signal import pink_noise, white_noise
from fxcap.capture.virtual.dsp import fractional_delay, resample_time_axis
from fxcap.errors import CaptureError

FAULTS = ("clip", "dropout", "silence")
"""Faults :func:`apply_rig` can inject."""

NOISE_COLORS = ("white", "pink")

HUM_HARMONICS = (1.0, 0.5, 0.35, 0.2, 0.1)
"""Relative amplitudes of the mains hum's fundamental and its first harmonics."""


@dataclass(frozen=True)
class RigImpairments:
    """The rig between playback and recording. Levels are RMS dBFS; ``None`` switches a part off.

    Attributes:
        latency_samples: round-trip delay (samples, >= 0, fractional).
        gain_db: gain of the path, including the interface's input trim (dB).
        polarity: +1, or -1 for an inverting path.
        noise_dbfs: RMS of the noise floor (dBFS), or ``None`` for none.
        noise_color: ``"white"`` or ``"pink"``.
        hum_dbfs: RMS of mains hum (dBFS), or ``None`` for none.
        hum_hz: mains frequency, 50 or 60 Hz.
        drift_ppm: recording clock minus playback clock (parts per million; positive: the
            recording clock runs fast and the recording is longer).
        tail_samples: extra samples recorded after the delayed signal has ended.
        fault: one of :data:`FAULTS`, or ``None``.
        dropout_at_s: start of the dropout in the recording (seconds); ``None``: the middle.
        dropout_s: length of the dropout (seconds).
        clip_drive_db: how far above full scale a ``"clip"`` fault drives the recording's peak (dB).
    """

    latency_samples: float = 0.0
    gain_db: float = 0.0
    polarity: int = 1
    noise_dbfs: float | None = -90.0
    noise_color: str = "white"
    hum_dbfs: float | None = None
    hum_hz: float = 50.0
    drift_ppm: float = 0.0
    tail_samples: int = 0
    fault: str | None = None
    dropout_at_s: float | None = None
    dropout_s: float = 0.05
    clip_drive_db: float = 12.0

    def validate(self) -> None:
        """Raise :class:`CaptureError` naming the field that is out of range."""
        if not (math.isfinite(self.latency_samples) and self.latency_samples >= 0):
            raise CaptureError(f"rig latency must be >= 0 samples, not {self.latency_samples}")
        if self.polarity not in (1, -1):
            raise CaptureError(f"rig polarity must be +1 or -1, not {self.polarity}")
        if self.noise_color not in NOISE_COLORS:
            raise CaptureError(f"rig noise colour must be one of {', '.join(NOISE_COLORS)}, not {self.noise_color!r}")
        if self.clip_drive_db <= 0:
            raise CaptureError(f"clip fault drive must be > 0 dB above full scale, not {self.clip_drive_db}")
        if not abs(self.drift_ppm) < 1000:
            raise CaptureError(f"rig clock drift {self.drift_ppm} ppm is not plausible; use |drift| < 1000 ppm")
        if self.tail_samples < 0:
            raise CaptureError(f"rig tail must be >= 0 samples, not {self.tail_samples}")
        if self.fault is not None and self.fault not in FAULTS:
            raise CaptureError(f"unknown rig fault {self.fault!r}; choose one of: {', '.join(FAULTS)}")
        if self.dropout_s <= 0:
            raise CaptureError(f"dropout length must be > 0 s, not {self.dropout_s}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_impairments(seed: int) -> RigImpairments:
    """Realistic random rig values: latency 50..400 samples (fractional), gain -6..+3 dB, either
    polarity, noise floor -90..-70 dBFS (white or pink), mains hum half of the time (-85..-70 dBFS,
    50 or 60 Hz), clock drift 0..30 ppm, a tail of 256..4096 samples. No fault."""
    rng = np.random.default_rng([int(seed), 0x716])
    return RigImpairments(
        latency_samples=float(rng.uniform(50.0, 400.0)),
        gain_db=float(rng.uniform(-6.0, 3.0)),
        polarity=int(rng.choice([1, -1])),
        noise_dbfs=float(rng.uniform(-90.0, -70.0)),
        noise_color=str(rng.choice(NOISE_COLORS)),
        hum_dbfs=float(rng.uniform(-85.0, -70.0)) if rng.random() < 0.5 else None,
        hum_hz=float(rng.choice([50.0, 60.0])),
        drift_ppm=float(rng.uniform(0.0, 30.0)),
        tail_samples=int(rng.integers(256, 4097)),
    )


def recorded_length(n: int, impairments: RigImpairments) -> int:
    """Samples recorded for ``n`` played: the delayed signal on the recording clock, plus the tail."""
    stretch = 1.0 + impairments.drift_ppm * 1e-6
    return int(math.ceil((n + impairments.latency_samples) * stretch)) + int(impairments.tail_samples)


def hum(n: int, sample_rate: int, hz: float, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: ``hz`` and its harmonics (:data:`HUM_HARMONICS`, random phases), unit RMS.

    For a whole-number ``hz`` one second holds whole periods, so it is computed once and repeated.
    """
    period = sample_rate if float(hz).is_integer() else n
    t = np.arange(min(period, n)) / sample_rate
    block = np.zeros(len(t))
    for k, amplitude in enumerate(HUM_HARMONICS, start=1):
        block += amplitude * np.sin(2 * np.pi * k * hz * t + rng.uniform(0, 2 * np.pi))
    block /= math.sqrt(0.5 * sum(a * a for a in HUM_HARMONICS))
    return np.tile(block, -(-n // len(block)))[:n] if len(block) else block


def apply_rig(
    x: np.ndarray, impairments: RigImpairments, sample_rate: int, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """What the interface records when the device outputs ``x`` (float32, :func:`recorded_length`).

    ``seed`` drives the noise, the hum's phases and nothing else; the same seed gives the same
    recording.
    """
    impairments.validate()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 0x417])
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise CaptureError(f"the rig records mono audio of shape (n,), not {x.shape}")
    if impairments.fault == "silence":
        x = np.zeros_like(x)
    n_out = recorded_length(len(x), impairments)
    if impairments.drift_ppm == 0.0:
        recorded = fractional_delay(x, impairments.latency_samples, n_out)
    else:
        step = 1.0 / (1.0 + impairments.drift_ppm * 1e-6)
        recorded = resample_time_axis(x, -impairments.latency_samples, step, n_out)
    recorded *= impairments.polarity * 10.0 ** (impairments.gain_db / 20.0)
    if impairments.noise_dbfs is not None:
        make = pink_noise if impairments.noise_color == "pink" else white_noise
        recorded += 10.0 ** (impairments.noise_dbfs / 20.0) * make(n_out, rng)
    if impairments.hum_dbfs is not None:
        recorded += 10.0 ** (impairments.hum_dbfs / 20.0) * hum(n_out, sample_rate, impairments.hum_hz, rng)
    if impairments.fault == "clip":
        peak = float(np.max(np.abs(recorded))) if n_out else 0.0
        drive = 10.0 ** (impairments.clip_drive_db / 20.0) / peak if peak > 0 else 1.0
        recorded = np.clip(recorded * drive, -1.0, 1.0)
    elif impairments.fault == "dropout":
        length = max(int(round(impairments.dropout_s * sample_rate)), 1)
        start = n_out // 2 - length // 2 if impairments.dropout_at_s is None else int(round(impairments.dropout_at_s * sample_rate))
        start = min(max(start, 0), max(n_out - length, 0))
        recorded[start : start + length] = 0.0
    return recorded.astype(np.float32)
