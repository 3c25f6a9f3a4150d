"""Which knob settings the report shows: settings of the session, swept knobs, response slices.

A *setting point* is one distinct knob setting of the session with the takes recorded at it (passed,
non-reference takes; reference takes only when nothing else passed). For each swept knob the
*response slice* holds the points where every other swept knob sits at its middle captured value
(the lower of the two middle values when there is an even number), so each knob gets one curve;
when that leaves fewer than two values of the knob (a Latin-hypercube plan, for example) the slice
holds every point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from fxcap.capture.profiles import DeviceProfile, Knob, KnobValue
from fxcap.capture.session import Session
from fxcap.errors import ReportError


def format_value(value: KnobValue) -> str:
    """A knob value as the report prints it (``5``, ``7.5``, ``limit``)."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def describe(knobs: Mapping[str, KnobValue], names: Iterable[str] | None = None) -> str:
    """``"drive=5, tone=3"`` for the given knob names (default: all)."""
    names = list(knobs) if names is None else list(names)
    return ", ".join(f"{n}={format_value(knobs[n])}" for n in names)


def sort_key(knob: Knob, value: KnobValue) -> float:
    """Position of a value along a knob (switches: the index of the value)."""
    if knob.is_switch:
        assert knob.values is not None
        return float(knob.values.index(str(value)))
    return float(value)


@dataclass
class SettingPoint:
    """One distinct knob setting (every knob, validated) and the ids of the takes recorded at it."""

    knobs: dict[str, KnobValue]
    take_ids: list[str] = field(default_factory=list)

    def label(self, names: Sequence[str] | None = None) -> str:
        return describe(self.knobs, names)

    def to_dict(self) -> dict[str, Any]:
        return {"knobs": dict(self.knobs), "take_ids": list(self.take_ids)}


@dataclass
class ResponseSlice:
    """The points of one knob's response curve, ordered by that knob's value.

    ``fixed`` holds the other swept knobs' values along the curve (empty when the slice is every point).
    """

    knob: str
    fixed: dict[str, KnobValue]
    points: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"knob": self.knob, "fixed": dict(self.fixed), "points": list(self.points)}


def setting_points(session: Session) -> tuple[list[SettingPoint], list[str]]:
    """The distinct settings of the session's usable takes, in take order, and notes on takes left out."""
    profile = session.manifest.device
    takes = sorted(session.takes, key=lambda t: (t.index, t.take_id))
    passed = [t for t in takes if t.passed]
    usable = [t for t in passed if not t.is_reference] or passed
    notes = []
    failed = [t.take_id for t in takes if not t.passed]
    if failed:
        notes.append(f"takes that failed their checks are left out of the knob response and audio: {', '.join(failed)}")
    points: dict[tuple, SettingPoint] = {}
    for take in usable:
        try:
            knobs = profile.complete(take.knobs)
        except ValueError as exc:
            raise ReportError(f"session {session.root}, take {take.take_id}: {exc}; the manifest does not fit its device profile") from None
        key = tuple(knobs[k.name] for k in profile.knobs)
        points.setdefault(key, SettingPoint(knobs=knobs)).take_ids.append(take.take_id)
    return list(points.values()), notes


def swept_knobs(profile: DeviceProfile, points: Sequence[SettingPoint], plan: Mapping[str, Any] | None = None) -> list[str]:
    """Knobs that take more than one value among ``points``, in the plan's order (``knobs`` or
    ``knob_grid``), then the profile's."""
    varying = [k.name for k in profile.knobs if len({p.knobs[k.name] for p in points}) > 1]
    order: list[str] = []
    plan = plan or {}
    for name in list(plan.get("knobs") or []) + list(plan.get("knob_grid") or {}):
        try:
            canonical = profile.knob(str(name)).name
        except ValueError:
            continue
        if canonical in varying and canonical not in order:
            order.append(canonical)
    return order + [k for k in varying if k not in order]


def _distinct(profile: DeviceProfile, knob: str, points: Iterable[SettingPoint]) -> list[KnobValue]:
    values = {p.knobs[knob] for p in points}
    return sorted(values, key=lambda v: sort_key(profile.knob(knob), v))


def middle_value(profile: DeviceProfile, knob: str, points: Iterable[SettingPoint]) -> KnobValue:
    """The middle captured value of ``knob`` (the lower middle one for an even count)."""
    values = _distinct(profile, knob, points)
    return values[(len(values) - 1) // 2]


def response_slices(profile: DeviceProfile, points: Sequence[SettingPoint], swept: Sequence[str]) -> list[ResponseSlice]:
    """One :class:`ResponseSlice` per swept knob (see the module docstring)."""
    slices = []
    for knob in swept:
        others = [o for o in swept if o != knob]
        fixed = {o: middle_value(profile, o, points) for o in others}
        chosen = [i for i, p in enumerate(points) if all(p.knobs[o] == v for o, v in fixed.items())]
        if len({points[i].knobs[knob] for i in chosen}) < 2:
            chosen, fixed = list(range(len(points))), {}
        key_knobs = [profile.knob(n) for n in [knob] + others]
        chosen.sort(key=lambda i: tuple(sort_key(k, points[i].knobs[k.name]) for k in key_knobs))
        slices.append(ResponseSlice(knob=knob, fixed=fixed, points=chosen))
    return slices


def parse_setting(text: str) -> dict[str, KnobValue]:
    """``"drive=5,tone=3"`` -> ``{"drive": 5.0, "tone": 3.0}`` (non-numbers stay text: switch values)."""
    setting: dict[str, KnobValue] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ReportError(f"a knob setting looks like drive=5 or drive=5,tone=3, not {text!r}")
        try:
            setting[name.strip()] = float(value)
        except ValueError:
            setting[name.strip()] = value.strip()
    return setting


def _match(profile: DeviceProfile, points: Sequence[SettingPoint], wanted: Mapping[str, KnobValue]) -> list[int]:
    canonical: dict[str, KnobValue] = {}
    for name, value in wanted.items():
        try:
            knob = profile.knob(name)
            canonical[knob.name] = knob.validate(value)
        except ValueError as exc:
            raise ReportError(f"--at {describe(wanted)}: {exc}") from None
    matches = []
    for i, point in enumerate(points):
        if all(
            (abs(float(point.knobs[n]) - float(v)) < 1e-9) if not profile.knob(n).is_switch else point.knobs[n] == v
            for n, v in canonical.items()
        ):
            matches.append(i)
    if not matches:
        captured = "; ".join(
            f"{n}: {', '.join(format_value(v) for v in _distinct(profile, n, points))}" for n in canonical
        )
        raise ReportError(f"no usable take at {describe(canonical)}; captured values are {captured}")
    return matches


def choose_points(
    profile: DeviceProfile,
    points: Sequence[SettingPoint],
    swept: Sequence[str],
    wanted: Sequence[Mapping[str, KnobValue]] | None = None,
) -> list[int]:
    """Points shown in spectrograms and audio players.

    ``wanted``: partial settings (``{"drive": 10}``); each picks the matching point whose other swept
    knobs are nearest their middle values. Default: the minimum, middle and maximum of the first
    swept knob along its response slice (just the one point when nothing was swept).
    """
    if not points:
        return []
    middles = {k: sort_key(profile.knob(k), middle_value(profile, k, points)) for k in swept}

    def distance(i: int) -> float:
        return sum(abs(sort_key(profile.knob(k), points[i].knobs[k]) - m) for k, m in middles.items())

    chosen: list[int] = []
    if wanted:
        for setting in wanted:
            best = min(_match(profile, points, setting), key=lambda i: (distance(i), i))
            if best not in chosen:
                chosen.append(best)
        return chosen
    if not swept:
        return [0]
    first = response_slices(profile, points, swept)[0]
    knob = profile.knob(first.knob)
    values = sorted({points[i].knobs[knob.name] for i in first.points}, key=lambda v: sort_key(knob, v))
    for value in (values[0], values[(len(values) - 1) // 2], values[-1]):
        candidates = [i for i in first.points if points[i].knobs[knob.name] == value]
        best = min(candidates, key=lambda i: (distance(i), i))
        if best not in chosen:
            chosen.append(best)
    return chosen
