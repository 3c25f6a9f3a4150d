"""Knob probes: a short burst after each knob change shows whether the device really changed.

With knobs set by hand, the commonest capture mistake is a knob left where it was (or turned to
the wrong value). Before each take, a short probe (seeded noise, a loud half and a quiet half 20 dB
lower, so level, tone and level-dependent behaviour such as drive or compression all show) is
played through the device; its response is summarized as band levels (1/3 octave, dB) per half,
a *fingerprint*. :class:`ProbeMonitor` compares each new fingerprint with those of the settings
probed before:

* within ``match_db`` of the previous setting's -> "did not change" (knob forgotten);
* within ``match_db`` of another earlier setting -> "sounds like that setting" (wrong knob/value);
* the same setting probed again (the reference) differing by more than ``drift_db`` from its first
  probe -> the device drifted (battery, temperature, a knob knocked).

Distances are mean absolute differences of the fingerprints in dB; bands more than
``floor_db`` below the loudest band are clamped, so the noise floor does not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fxcap.capture.align import estimate_delay
from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.knob_setters import InputFunction, OutputFunction, format_knob_value
from fxcap.capture.profiles import DeviceProfile, KnobValue
from fxcap.errors import CaptureError


@dataclass
class ProbeConfig:
    """Probe signal and verdict thresholds.

    Attributes:
        seconds: probe length (both halves), seconds.
        peak_dbfs: peak of the loud half, dBFS; the quiet half is 20 dB lower.
        bands_per_octave: resolution of the fingerprint.
        min_hz: lowest band edge, Hz (the highest is ``min(16 kHz, 0.45 x rate)``).
        match_db: a response closer than this to another setting's counts as the same response.
        drift_db: a repeated setting further than this from its first probe counts as drift.
        floor_db: bands this far below the loudest band are clamped (noise floor).
        seed: seeds the probe noise (the same probe every time).
    """

    seconds: float = 0.5
    peak_dbfs: float = -6.0
    bands_per_octave: int = 3
    min_hz: float = 60.0
    match_db: float = 0.5
    drift_db: float = 1.0
    floor_db: float = 60.0
    seed: int = 1234


QUIET_DB = -20.0
"""Level of the probe's quiet half relative to its loud half, dB."""


def probe_signal(sample_rate: int, config: ProbeConfig | None = None) -> np.ndarray:
    """The probe: seeded white noise, loud half (peak ``peak_dbfs``) then quiet half (-20 dB), 5 ms fades; float32."""
    config = config or ProbeConfig()
    half = int(config.seconds * sample_rate / 2)
    rng = np.random.default_rng(config.seed)
    noise = rng.standard_normal(2 * half)
    fade = max(1, int(0.005 * sample_rate))
    ramp = np.sin(0.5 * np.pi * np.arange(fade) / fade) ** 2
    envelope = np.ones(half)
    envelope[:fade], envelope[-fade:] = ramp, ramp[::-1]
    out = noise * np.concatenate([envelope, envelope * 10 ** (QUIET_DB / 20)])
    out *= 10 ** (config.peak_dbfs / 20) / np.max(np.abs(out[:half]))
    return out.astype(np.float32)


def _lag(recorded: np.ndarray, played: np.ndarray) -> int:
    """Where ``played`` starts in ``recorded`` (0 .. len difference, whole samples): the aligner's
    cross-correlation delay (:func:`fxcap.capture.align.estimate_delay`) rounded."""
    span = max(len(recorded) - len(played), 0)
    if not np.any(recorded):
        return 0
    delay, _, _ = estimate_delay(played, recorded, (0, span))
    return int(min(max(round(delay), 0), span)) if np.isfinite(delay) else 0


def fingerprint(take: RawTake, config: ProbeConfig | None = None) -> np.ndarray:
    """Band levels (dB) of the response to each probe half, concatenated: shape ``(2 * bands,)``."""
    config = config or ProbeConfig()
    rate = take.sample_rate
    played = np.asarray(take.played, dtype=np.float64)
    recorded = np.asarray(take.recorded, dtype=np.float64)
    half = len(played) // 2
    lag = _lag(recorded, played)
    trim = int(0.01 * rate)
    top = min(16000.0, 0.45 * rate)
    edges = config.min_hz * 2.0 ** (np.arange(0, np.log2(top / config.min_hz) * config.bands_per_octave + 1) / config.bands_per_octave)
    levels = []
    for start in (0, half):
        segment = recorded[lag + start + trim : lag + start + half - trim]
        if len(segment) < 2 * trim:
            raise CaptureError("the probe recording is too short; lengthen the probe (ProbeConfig.seconds)")
        power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)))) ** 2
        freqs = np.fft.rfftfreq(len(segment), 1 / rate)
        bands = [power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])]
        levels.append(10 * np.log10(np.asarray(bands) / len(segment) + 1e-20))
    return np.concatenate(levels)


def distance_db(a: np.ndarray, b: np.ndarray, floor_db: float = 60.0) -> float:
    """Mean absolute difference of two fingerprints, dB, ignoring bands below the noise floor."""
    floor = max(float(a.max()), float(b.max())) - floor_db
    return float(np.mean(np.abs(np.maximum(a, floor) - np.maximum(b, floor))))


@dataclass
class ProbeVerdict:
    """What a probe says about a setting.

    Attributes:
        knobs: the setting the device should have.
        warnings: one sentence per problem (empty: the device responds as a new setting should).
        nearest: the closest other setting probed before, and its distance in dB.
        drift_db: distance from the first probe of this same setting, if it was probed before.
    """

    knobs: dict[str, KnobValue]
    warnings: list[str] = field(default_factory=list)
    nearest: tuple[dict[str, KnobValue], float] | None = None
    drift_db: float | None = None

    @property
    def ok(self) -> bool:
        return not self.warnings


def _key(knobs: dict[str, KnobValue]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, v if isinstance(v, str) else round(float(v), 9)) for k, v in knobs.items()))


class ProbeMonitor:
    """Keeps the fingerprint of every probed setting and judges each new probe against them."""

    def __init__(self, profile: DeviceProfile, sample_rate: int, config: ProbeConfig | None = None) -> None:
        self.profile = profile
        self.config = config or ProbeConfig()
        self.signal = probe_signal(sample_rate, self.config)
        self._first: dict[tuple, np.ndarray] = {}
        self._settings: dict[tuple, dict[str, KnobValue]] = {}
        self._previous: tuple | None = None

    def _describe(self, claimed: dict[str, KnobValue], other: dict[str, KnobValue]) -> str:
        """``DRIVE 6, TONE 3``: the knobs where ``other`` differs from ``claimed``, at their ``other`` values."""
        return ", ".join(
            f"{name.upper()} {format_knob_value(self.profile.knob(name), other[name])}" for name in self._changed(claimed, other)
        )

    def judge(self, knobs: dict[str, KnobValue], take: RawTake) -> ProbeVerdict:
        """Judge the probe ``take`` (``play_record(monitor.signal, knobs)``) and remember it."""
        knobs = self.profile.complete(knobs)
        key = _key(knobs)
        fp = fingerprint(take, self.config)
        verdict = ProbeVerdict(knobs=knobs)
        distances = {
            other: distance_db(fp, first, self.config.floor_db) for other, first in self._first.items() if other != key
        }
        if distances:
            nearest = min(distances, key=distances.__getitem__)
            verdict.nearest = (self._settings[nearest], distances[nearest])
            if distances[nearest] < self.config.match_db:
                other = self._settings[nearest]
                what = self._describe(knobs, other)
                if nearest == self._previous:
                    verdict.warnings.append(
                        f"the device sounds as it did at the previous setting ({what}): was "
                        + " and ".join(f"{k.upper()} really set to {format_knob_value(self.profile.knob(k), knobs[k])}" for k in self._changed(knobs, other))
                        + "?"
                    )
                else:
                    verdict.warnings.append(f"the device sounds like the earlier setting {what}; check the knobs")
        if key in self._first:
            verdict.drift_db = distance_db(fp, self._first[key], self.config.floor_db)
            if verdict.drift_db > self.config.drift_db:
                verdict.warnings.append(
                    f"the same setting now responds {verdict.drift_db:.1f} dB differently than when first probed: "
                    "the device drifted (battery, temperature) or a knob moved"
                )
        if verdict.ok:  # a doubtful response must not become the reference for this setting
            self._first.setdefault(key, fp)
            self._settings.setdefault(key, knobs)
            self._previous = key
        return verdict

    def _changed(self, claimed: dict[str, KnobValue], other: dict[str, KnobValue]) -> list[str]:
        return [k.name for k in self.profile.knobs if claimed.get(k.name) != other.get(k.name)]


def confirm_setting(
    backend: Backend,
    monitor: ProbeMonitor,
    knobs: dict[str, KnobValue],
    input_fn: InputFunction = input,
    output_fn: OutputFunction = print,
    tries: int = 3,
) -> ProbeVerdict:
    """Probe ``knobs`` on ``backend`` (the knob setter asks for changes first); on a warning, show
    it and ask the user to check the knobs, then probe again, up to ``tries`` probes. Answering
    ``keep`` accepts the setting as it is (a knob that legitimately changes little)."""
    verdict = ProbeVerdict(knobs=dict(knobs))
    for attempt in range(1, tries + 1):
        take = backend.play_record(monitor.signal, knobs)
        if take.events:
            output_fn(f"probe had stream problems ({'; '.join(take.events)}); probing again")
            continue
        verdict = monitor.judge(knobs, take)
        if verdict.ok:
            return verdict
        for warning in verdict.warnings:
            output_fn(f"warning: {warning}")
        if attempt == tries:
            break
        try:
            answer = input_fn("Check the knobs, then press Enter to probe again (or type 'keep' to record as is) ")
        except EOFError:
            answer = "keep"
        if answer.strip().lower() == "keep":
            return verdict
    raise CaptureError(
        f"the device's response did not match the setting after {tries} probes ({'; '.join(verdict.warnings) or 'stream problems'}); "
        "check the cables and knobs, then continue with `fxcap record --resume`"
    )
