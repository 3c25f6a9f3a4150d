"""Device profiles: the knobs and switches of an effect, their ranges, tapers and units.

A knob's *raw* value is what the user sets on the device (e.g. DRIVE 0-10); its *normalized* value,
in [-1, 1], is what models see. Switches take one of a few discrete values; their normalized values
are spread evenly over [-1, 1] in the order listed.

Profiles come built in (``OD-3``, ``LA-2A``) or from a TOML file::

    name = "My Fuzz"
    kind = "fuzz"
    may_be_transparent = false   # true: a take equal to the dry signal is fine (a clean boost, a buffer)
    [[knobs]]
    name = "sustain"
    min = 0
    max = 10
    default = 5
    taper = "audio"      # linear | audio | log (how the pot maps rotation to effect)
    unit = ""
    midi_cc = 20         # optional: set automatically over MIDI
    [[knobs]]
    name = "mode"
    values = ["soft", "hard"]   # a switch
    default = "soft"
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

from fxcap.errors import DeviceNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KnobValue = Union[float, str]

TAPERS = ("linear", "audio", "log")


@dataclass(frozen=True)
class Knob:
    """One control of a device: a continuous knob (``minimum``..``maximum``) or a switch (``values``).

    ``taper`` documents the pot's law; knob values are always given in the device's own scale
    (what is printed on the panel), so normalization is linear in that scale.
    """

    name: str
    minimum: float = 0.0
    maximum: float = 10.0
    default: KnobValue = 5.0
    taper: str = "linear"
    unit: str = ""
    values: tuple[str, ...] | None = None
    midi_cc: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.values is not None:
            if len(self.values) < 2:
                raise ValueError(f"switch {self.name!r} needs at least two values")
            if self.default not in self.values:
                raise ValueError(f"switch {self.name!r}: default {self.default!r} is not one of {self.values}")
        else:
            if not self.maximum > self.minimum:
                raise ValueError(f"knob {self.name!r}: max ({self.maximum}) must exceed min ({self.minimum})")
            if not self.minimum <= float(self.default) <= self.maximum:
                raise ValueError(f"knob {self.name!r}: default {self.default} outside {self.minimum}..{self.maximum}")
        if self.taper not in TAPERS:
            raise ValueError(f"knob {self.name!r}: taper must be one of {TAPERS}, not {self.taper!r}")

    @property
    def is_switch(self) -> bool:
        return self.values is not None

    def validate(self, value: KnobValue) -> KnobValue:
        """Return ``value`` in canonical form or raise ``ValueError`` naming the allowed range."""
        if self.is_switch:
            assert self.values is not None
            if str(value) not in self.values:
                raise ValueError(f"{self.name} must be one of {', '.join(self.values)}, not {value!r}")
            return str(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number in {self.minimum:g}..{self.maximum:g}, not {value!r}") from None
        if not self.minimum - 1e-9 <= number <= self.maximum + 1e-9:
            raise ValueError(f"{self.name} must be in {self.minimum:g}..{self.maximum:g}, not {number:g}")
        return min(max(number, self.minimum), self.maximum)

    def normalize(self, value: KnobValue) -> float:
        """Map a raw value to [-1, 1] (linear in the panel scale; switches evenly by index)."""
        value = self.validate(value)
        if self.is_switch:
            assert self.values is not None
            index = self.values.index(str(value))
            return -1.0 + 2.0 * index / (len(self.values) - 1)
        return -1.0 + 2.0 * (float(value) - self.minimum) / (self.maximum - self.minimum)

    def denormalize(self, normalized: float) -> KnobValue:
        """Inverse of :meth:`normalize` (switches snap to the nearest value)."""
        normalized = min(max(float(normalized), -1.0), 1.0)
        if self.is_switch:
            assert self.values is not None
            index = round((normalized + 1.0) / 2.0 * (len(self.values) - 1))
            return self.values[index]
        return self.minimum + (normalized + 1.0) / 2.0 * (self.maximum - self.minimum)

    def clock_position(self, value: KnobValue) -> str:
        """Where the pointer sits on a 300-degree pot, as a clock time ("about 1 o'clock")."""
        if self.is_switch:
            return f"position {value!r}"
        fraction = (float(value) - self.minimum) / (self.maximum - self.minimum)
        # 7 o'clock (fully CCW) .. 5 o'clock (fully CW), 300 degrees = 10 hours on the dial.
        hour = (7 + fraction * 10 - 1) % 12 + 1
        return f"about {round(hour * 2) / 2:g} o'clock"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["values"] = list(self.values) if self.values is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Knob":
        data = dict(data)
        if "min" in data:
            data["minimum"] = data.pop("min")
        if "max" in data:
            data["maximum"] = data.pop("max")
        if data.get("values") is not None:
            data["values"] = tuple(str(v) for v in data["values"])
            data.setdefault("default", data["values"][0])
            data.setdefault("minimum", 0.0)
            data.setdefault("maximum", 1.0)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"knob {data.get('name')!r}: unknown field(s) {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class DeviceProfile:
    """The controls of one device. ``name`` is how the user calls it (``--device "OD-3"``)."""

    name: str
    knobs: tuple[Knob, ...]
    kind: str = "effect"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    may_be_transparent: bool = False
    """The device may pass the signal unchanged at some settings (a clean boost, a buffer). When
    False, an imported take equal to the dry signal (polarity and gain aside) is refused as a
    wiring or export mistake (:mod:`fxcap.capture.transparency`)."""

    def __post_init__(self) -> None:
        names = [k.name for k in self.knobs]
        if len(set(names)) != len(names):
            raise ValueError(f"profile {self.name!r} has duplicate knob names: {names}")

    @property
    def knob_names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def knob(self, name: str) -> Knob:
        """The knob called ``name`` (case-insensitive, '-' and '_' and ' ' equivalent)."""
        wanted = _canon(name)
        for knob in self.knobs:
            if _canon(knob.name) == wanted:
                return knob
        raise ValueError(f"{self.name} has no knob {name!r}; its knobs are: {', '.join(self.knob_names)}")

    def defaults(self) -> dict[str, KnobValue]:
        return {k.name: k.default for k in self.knobs}

    def complete(self, settings: dict[str, KnobValue]) -> dict[str, KnobValue]:
        """Validated settings for every knob: given values, defaults for the rest."""
        result = self.defaults()
        for name, value in settings.items():
            knob = self.knob(name)
            result[knob.name] = knob.validate(value)
        return result

    def normalize(self, settings: dict[str, KnobValue]) -> dict[str, float]:
        full = self.complete(settings)
        return {k.name: k.normalize(full[k.name]) for k in self.knobs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "knobs": [k.to_dict() for k in self.knobs],
            "extra": dict(self.extra),
        } | ({"may_be_transparent": True} if self.may_be_transparent else {})  # absent when False: older dicts stay equal

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeviceProfile":
        try:
            knobs = tuple(Knob.from_dict(k) for k in data["knobs"])
            return cls(
                name=str(data["name"]),
                knobs=knobs,
                kind=str(data.get("kind", "effect")),
                description=str(data.get("description", "")),
                extra=dict(data.get("extra", {})),
                may_be_transparent=_flag(data.get("may_be_transparent", False), "may_be_transparent"),
            )
        except KeyError as exc:
            raise ValueError(f"device profile is missing the field {exc.args[0]!r}") from None


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def _canon(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


def canonical_name(name: str) -> str:
    """How knob names compare: case, ``-``, ``_`` and spaces ignored (``Peak Reduction`` is ``peak_reduction``)."""
    return _canon(name)


OD3 = DeviceProfile(
    name="OD-3",
    kind="overdrive",
    description="Boss OD-3 style overdrive: diode clipping with pre/de-emphasis, tone tilt and output level.",
    knobs=(
        Knob("level", 0.0, 10.0, 5.0, taper="audio", description="output volume"),
        Knob("tone", 0.0, 10.0, 5.0, taper="linear", description="treble tilt after the clipper"),
        Knob("drive", 0.0, 10.0, 5.0, taper="audio", description="gain into the clipper"),
    ),
)

LA2A = DeviceProfile(
    name="LA-2A",
    kind="compressor",
    description="Teletronix LA-2A style optical leveling amplifier: program-dependent attack/release.",
    knobs=(
        Knob("peak_reduction", 0.0, 100.0, 50.0, taper="linear", description="amount of gain reduction"),
        Knob("gain", 0.0, 100.0, 50.0, taper="linear", description="make-up gain"),
        Knob("mode", values=("compress", "limit"), default="compress", description="comp/limit switch"),
    ),
)

BUILTIN_PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (OD3, LA2A)}


def load_profile_toml(path: str | Path) -> DeviceProfile:
    """Read a user profile from a TOML file (format in the module docstring)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise DeviceNotFoundError(f"profile file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeviceNotFoundError(f"profile file {path} is not valid TOML: {exc}") from None
    try:
        return DeviceProfile.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise DeviceNotFoundError(f"profile file {path}: {exc}") from None


def get_profile(name_or_path: str) -> DeviceProfile:
    """A built-in profile by name (case-insensitive) or a user profile from a ``.toml`` path."""
    if name_or_path.lower().endswith(".toml"):
        return load_profile_toml(name_or_path)
    for name, profile in BUILTIN_PROFILES.items():
        if _canon(name) == _canon(name_or_path):
            return profile
    raise DeviceNotFoundError(
        f"no device profile {name_or_path!r}; built-in profiles are {', '.join(BUILTIN_PROFILES)} "
        "(or give a path to a .toml profile)"
    )
