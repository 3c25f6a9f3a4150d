"""Holding out whole knob settings, to measure how a model interpolates to settings it never saw.

A holdout spec is ``"knob=value"`` or several joined by commas (``"drive=5,tone=3"``: all must match).
A take is held out when it matches any of the specs. Held-out takes go entirely to the ``holdout``
split (every segment of them, whatever its time split; the time split is kept in the ``time_split``
column so that "unseen knob *and* unseen input" is ``split == "holdout" and time_split == "test"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from fxcap.capture.profiles import DeviceProfile, KnobValue
from fxcap.errors import DatasetError


@dataclass(frozen=True)
class HoldoutSpec:
    """Knob settings that must all match for a take to be held out. ``text`` is the spec as given."""

    text: str
    values: tuple[tuple[str, KnobValue], ...]

    def matches(self, profile: DeviceProfile, knobs: Mapping[str, KnobValue]) -> bool:
        """Whether a take with raw knob values ``knobs`` matches every condition of this spec."""
        full = profile.complete(dict(knobs))
        for name, wanted in self.values:
            knob = profile.knob(name)
            have = full[knob.name]
            if knob.is_switch:
                if str(have) != str(wanted):
                    return False
            elif abs(float(have) - float(wanted)) > 1e-6 * (knob.maximum - knob.minimum):
                return False
        return True


def parse_holdout(text: str, profile: DeviceProfile) -> HoldoutSpec:
    """Parse ``"drive=5"`` or ``"drive=5,tone=3"`` against ``profile``'s knobs (clear error otherwise)."""
    values: list[tuple[str, KnobValue]] = []
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        if not sep or not name.strip() or not raw.strip():
            raise DatasetError(f"--holdout must look like knob=value (e.g. drive=5), not {text!r}")
        try:
            knob = profile.knob(name.strip())
            value = knob.validate(raw.strip())
        except ValueError as exc:
            raise DatasetError(f"--holdout {text!r}: {exc}") from None
        values.append((knob.name, value))
    return HoldoutSpec(text=text, values=tuple(values))


def describe_setting(profile: DeviceProfile, knobs: Mapping[str, KnobValue]) -> str:
    """``"level=5 tone=5 drive=7.5"``: a knob setting in the profile's knob order."""
    full = profile.complete(dict(knobs))
    return " ".join(f"{k.name}={full[k.name]:g}" if not k.is_switch else f"{k.name}={full[k.name]}" for k in profile.knobs)
