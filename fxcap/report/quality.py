"""Capture quality per take, read from a session's manifest (alignment figures and check results)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fxcap.capture.profiles import KnobValue
from fxcap.capture.session import Session, TakeRecord


@dataclass
class TakeQuality:
    """The quality figures of one take.

    Attributes:
        latency_samples: delay removed by the alignment (samples).
        noise_floor_dbfs: RMS level of the silent stretch of the aligned output (dBFS), if measured.
        repeatability_db: ESR between the two validation copies, in dB (``10·log10``), if measured.
        drift_ppm: clock drift of the recording against playback (ppm).
        gain_db: rig gain removed by the alignment (dB).
        failed_checks: names of the error-severity checks that failed.
    """

    take_id: str
    index: int
    knobs: dict[str, KnobValue]
    is_reference: bool
    passed: bool
    latency_samples: float
    noise_floor_dbfs: float | None
    repeatability_db: float | None
    drift_ppm: float
    gain_db: float
    attempts: int
    failed_checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def repeatability_db(take: TakeRecord) -> float | None:
    """The take's repeatability as ESR in dB: the check's value when its unit is dB, else
    ``10·log10`` of a linear ESR (older sessions and the testing helper store the ratio)."""
    check = take.check("repeatability")
    if check is None or _finite(check.value) is None:
        return None
    value = float(check.value)  # type: ignore[arg-type]
    if check.unit.strip().lower() == "db":
        return value
    return 10.0 * math.log10(max(value, 1e-30))


def take_quality(take: TakeRecord) -> TakeQuality:
    """The :class:`TakeQuality` of one take record."""
    noise = take.check("noise_floor")
    return TakeQuality(
        take_id=take.take_id,
        index=int(take.index),
        knobs=dict(take.knobs),
        is_reference=bool(take.is_reference),
        passed=take.passed,
        latency_samples=float(take.alignment.latency_samples),
        noise_floor_dbfs=_finite(noise.value) if noise is not None else None,
        repeatability_db=repeatability_db(take),
        drift_ppm=float(take.alignment.drift_ppm),
        gain_db=float(take.alignment.gain_db),
        attempts=int(take.attempts),
        failed_checks=[c.name for c in take.checks if not c.passed and c.severity == "error"],
    )


def capture_quality(session: Session) -> list[TakeQuality]:
    """One :class:`TakeQuality` per take of ``session``, in take order (failed and reference takes included)."""
    return [take_quality(t) for t in sorted(session.takes, key=lambda t: (t.index, t.take_id))]
