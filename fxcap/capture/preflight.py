"""Pre-flight check of a rig before a capture: levels, round-trip latency and the calibration take.

:func:`run_preflight` records what a capture would record first, with the short signal:

1. the calibration (bypass/loopback) take: round-trip latency (samples and ms), rig gain,
   polarity, clock drift and its checks;
2. one take through the device at a setting (default: the profile's defaults; pass the loudest
   setting you plan, e.g. ``drive=10``): signal present (dB above the noise floor), headroom (how far
   the recording's peak stays below 0 dBFS, clipping), output level, the noise floor (dBFS at the
   interface's input) and the take's checks.

Every item says what it measured and, when it is not fine, what to do. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fxcap.capture.align import Calibration
from fxcap.capture.backends.base import Backend
from fxcap.dsp.levels import amp_to_db
from fxcap.capture.layout import TestSignal
from fxcap.capture.profiles import KnobValue
from fxcap.capture.record import RecordConfig, evaluate_calibration, evaluate_take
from fxcap.errors import CaptureError


@dataclass
class PreflightConfig:
    """Thresholds of the pre-flight verdicts (dB, dBFS).

    Attributes:
        min_headroom_db: the recording's peak must stay at least this far below 0 dBFS.
        low_peak_dbfs: a recording peaking below this is too quiet (raise the input gain).
        record: alignment and check options (the engine's; its noise-floor limit applies).
    """

    min_headroom_db: float = 1.0
    low_peak_dbfs: float = -30.0
    record: RecordConfig = field(default_factory=RecordConfig)


@dataclass
class PreflightItem:
    """One line of the pre-flight table: ``ok`` is True, False (fix it) or None (information)."""

    name: str
    value: str
    ok: bool | None
    message: str


@dataclass
class PreflightReport:
    """The pre-flight result: the items in order and the measured calibration (None if it failed)."""

    items: list[PreflightItem]
    calibration: Calibration | None
    knobs: dict[str, KnobValue]

    @property
    def ok(self) -> bool:
        return all(item.ok is not False for item in self.items)

    def item(self, name: str) -> PreflightItem:
        return next(i for i in self.items if i.name == name)

    def to_rows(self) -> list[dict[str, Any]]:
        return [{"check": i.name, "value": i.value, "status": {True: "ok", False: "FIX", None: "-"}[i.ok], "message": i.message}
                for i in self.items]


def _failed(checks: list[Any]) -> list[Any]:
    return [c for c in checks if c.severity == "error" and not c.passed]


def _calibration_items(backend: Backend, signal: TestSignal, config: PreflightConfig) -> tuple[list[PreflightItem], Calibration | None]:
    raw = backend.calibration_take(signal.audio)
    rate = signal.sample_rate
    try:
        calibration, checks = evaluate_calibration(raw, signal, config.record)
    except CaptureError as exc:
        return [PreflightItem("calibration take", "failed", False, str(exc))], None
    items = [
        PreflightItem("round-trip latency", f"{calibration.latency_samples:.2f} samples ({calibration.latency_samples / rate * 1e3:.2f} ms)",
                      None, "interface + cables, measured from the sync markers (removed from every take)"),
        PreflightItem("rig gain", f"{calibration.gain_db:+.2f} dB, polarity {calibration.polarity:+d}", None,
                      "output to input level with the device bypassed (every take is referred to it)"),
        PreflightItem("clock drift", f"{calibration.drift_ppm:+.2f} ppm",
                      abs(calibration.drift_ppm) <= config.record.checks.drift_warn_ppm,
                      "playback and recording clocks agree" if abs(calibration.drift_ppm) <= config.record.checks.drift_warn_ppm
                      else "playback and recording run on different clocks: use one interface for both"),
    ]
    failed = _failed(checks)
    items.append(PreflightItem("calibration take", "passed" if not failed else "failed", not failed,
                               "bypass/loopback take passed every check" if not failed
                               else "; ".join(f"{c.name}: {c.message}" for c in failed)))
    return items, calibration


def run_preflight(
    backend: Backend, signal: TestSignal, knobs: dict[str, KnobValue] | None = None, config: PreflightConfig | None = None
) -> PreflightReport:
    """Record the calibration take and one device take and judge the rig (see the module docstring)."""
    config = config or PreflightConfig()
    if signal.sample_rate != backend.sample_rate:
        raise CaptureError(f"the signal is at {signal.sample_rate} Hz but the backend runs at {backend.sample_rate} Hz; use --rate")
    setting = backend.profile.complete(dict(knobs or {}))
    items, calibration = _calibration_items(backend, signal, config)

    raw = backend.play_record(signal.audio, setting)
    result = evaluate_take(raw, signal, calibration, config.record)
    recorded = np.asarray(raw.recorded, dtype=np.float64)
    peak_db = amp_to_db(float(np.max(np.abs(recorded)))) if recorded.size else -240.0
    headroom = -peak_db
    clipping = next(c for c in result.checks if c.name == "output_clipping")
    silence = next(c for c in result.checks if c.name == "silence")
    noise = next(c for c in result.checks if c.name == "noise_floor")
    gain_db = calibration.gain_db if calibration is not None else 0.0

    items.append(PreflightItem("signal present", "-" if silence.value is None else f"{silence.value:.1f} dB above the noise floor",
                               silence.passed, silence.message))
    head_ok = clipping.passed and headroom >= config.min_headroom_db
    items.append(PreflightItem(
        "headroom", f"{headroom:.1f} dB (peak {peak_db:+.1f} dBFS)", head_ok,
        "the recording stays below full scale" if head_ok else
        (clipping.message if not clipping.passed else f"less than {config.min_headroom_db:g} dB below full scale: lower the input gain"),
    ))
    loud_ok = peak_db >= config.low_peak_dbfs
    items.append(PreflightItem(
        "output level", f"peak {peak_db:+.1f} dBFS", loud_ok,
        "level is usable" if loud_ok else f"quieter than {config.low_peak_dbfs:g} dBFS: raise the input gain or the device's level",
    ))
    if noise.value is None:
        items.append(PreflightItem("noise floor", "-", None, noise.message))
    else:
        at_input = noise.value + gain_db
        items.append(PreflightItem("noise floor", f"{at_input:.1f} dBFS at the input ({noise.value:.1f} dBFS signal scale)",
                                   noise.passed, noise.message))
    failed = result.failed
    items.append(PreflightItem("device take", "passed" if not failed else "failed", not failed,
                               "the take passed every check" if not failed else "; ".join(f"{c.name}: {c.message}" for c in failed)))
    return PreflightReport(items=items, calibration=calibration, knobs=setting)
