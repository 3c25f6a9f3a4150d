"""Knob plans: which settings to record, in which order, with reference re-takes.

A plan is computed once and stored in full in the session manifest (``plan["takes"]``), so a
resumed capture continues the exact same list whatever the random seed or the code version.

Kinds:
    ``grid``: every combination of evenly spaced values of the swept knobs (one knob = a sweep).
    ``lhs``:  a Latin-hypercube plan of ``takes`` settings: each swept knob's range is cut into
              ``takes`` equal strata and every stratum is used exactly once (centre of the stratum
              plus a seeded jitter), so few takes still cover every knob evenly.
    ``adaptive``: starts from a small space-filling design (:func:`initial_design`: the corners and
              the centre for one or two swept knobs, ``2 x knobs`` Latin-hypercube points for more)
              and grows, a batch at a time, up to ``takes`` settings: what to record next is decided
              from the takes recorded so far (:mod:`fxcap.adaptive`), then appended to the stored
              list (:func:`append_batch`) before it is recorded. ``steps`` is then the density of
              the candidate grid the next settings are chosen from.
Switches take each of their values in turn. Unswept knobs sit at their defaults or at ``fixed``.

An adaptive plan's manifest entry holds, beside the takes (each with its ``origin``: ``initial`` or
``adaptive``, and for an adaptive one its ``batch`` and ``score``), ``plan["adaptive"]``: the
``budget`` of settings, the ``batch`` size, the ``initial`` design's size and one record per
batch chosen (``batches``: what it was trained on and how it chose, see :class:`PlanBatch`).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fxcap.capture.profiles import DeviceProfile, Knob, KnobValue

PLAN_KINDS = ("grid", "lhs", "adaptive")

ADAPTIVE_KEY = "adaptive"
"""Where a growing plan keeps its budget and the record of its batches: ``plan["adaptive"]``."""


@dataclass(frozen=True)
class PlannedTake:
    """One planned take: its position, full knob setting and whether it re-takes the reference.

    An adaptive plan's takes also say where they came from: ``origin`` ``"initial"`` (the
    space-filling start) or ``"adaptive"`` (chosen from the takes before it), the ``batch`` that
    chose it (from 1) and its ``score`` (the acquisition's value, e.g. the committee's normalised
    disagreement). Other plans leave the three at ``None``.
    """

    index: int
    knobs: dict[str, KnobValue]
    is_reference: bool = False
    origin: str | None = None
    batch: int | None = None
    score: float | None = None

    @property
    def take_id(self) -> str:
        return f"take-{self.index:04d}"


@dataclass
class PlanConfig:
    """How to build a plan.

    Attributes:
        knobs: names of the knobs to sweep (in the profile's terms).
        steps: values per swept knob for ``grid`` (an int for all, or per-knob dict).
        kind: ``grid``, ``lhs`` or ``adaptive``.
        takes: number of settings for ``lhs``; for ``adaptive`` the budget of settings, the
            initial design included.
        fixed: values for unswept knobs (the rest sit at their defaults).
        shuffle: record in a random (seeded) order, so slow device drift does not correlate with
            a knob.
        reference_every: re-take the reference setting (defaults + fixed) first, after every N
            takes and last (0: never). The reference re-takes measure device drift.
        seed: for ``lhs``, ``shuffle`` and the committee of an ``adaptive`` plan.
        batch: ``adaptive``: settings chosen per round (one model training per round).
    """

    knobs: list[str] = field(default_factory=list)
    steps: int | dict[str, int] = 11
    kind: str = "grid"
    takes: int = 16
    fixed: dict[str, KnobValue] = field(default_factory=dict)
    shuffle: bool = False
    reference_every: int = 0
    seed: int = 0
    batch: int = 3

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.kind != "adaptive":  # the other plans' entries stay as they were
            data.pop("batch")
        return data


def _steps_for(config: PlanConfig, knob: Knob) -> int:
    steps = config.steps[knob.name] if isinstance(config.steps, dict) else config.steps
    if steps < 2:
        raise ValueError(f"{knob.name}: at least 2 steps are needed for a sweep, not {steps}")
    return int(steps)


def check_plan_config(config: PlanConfig) -> None:
    """Refuse values that cannot mean anything (``ValueError``); a 0 never stands for a default."""
    steps = config.steps.values() if isinstance(config.steps, dict) else [config.steps]
    for value in steps:
        if not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"at least 2 steps are needed for a sweep (--steps: settings per swept knob), not {value!r}")
    if not isinstance(config.takes, (int, np.integer)) or config.takes < 1:
        raise ValueError(f"--takes must be 1 or more, not {config.takes!r}")
    if not isinstance(config.reference_every, (int, np.integer)) or config.reference_every < 0:
        raise ValueError(f"--reference-every must be 0 (never) or a number of takes, not {config.reference_every!r}")
    if config.kind == "adaptive":
        if not isinstance(config.batch, (int, np.integer)) or config.batch < 1:
            raise ValueError(f"--batch must be 1 or more (settings chosen per round), not {config.batch!r}")
        if config.reference_every:
            raise ValueError("--reference-every is not available with --plan adaptive (its plan grows batch by batch); "
                             "record the reference re-takes with a grid or lhs plan")


def _grid_values(config: PlanConfig, knob: Knob) -> list[KnobValue]:
    return knob_axis(knob, _steps_for(config, knob))


def knob_axis(knob: Knob, steps: int) -> list[KnobValue]:
    """A grid's values of one knob: ``steps`` evenly spaced values over its range (6 decimals), or
    every value of a switch."""
    if knob.is_switch:
        assert knob.values is not None
        return list(knob.values)
    values = np.linspace(knob.minimum, knob.maximum, steps)
    return [round(float(v), 6) for v in values]


def lhs_values(knob: Knob, n: int, rng: np.random.Generator) -> list[KnobValue]:
    """One knob's column of an ``n``-point Latin hypercube: every one of ``n`` equal strata once (its
    centre plus a seeded jitter, 4 decimals), in random order; a switch's values in turn, shuffled."""
    if knob.is_switch:
        assert knob.values is not None
        values = [knob.values[i % len(knob.values)] for i in range(n)]
        return [values[i] for i in rng.permutation(n)]
    strata = (np.arange(n) + rng.uniform(0.0, 1.0, n)) / n
    strata = strata[rng.permutation(n)]
    return [round(float(knob.minimum + s * (knob.maximum - knob.minimum)), 4) for s in strata]


def _ends(knob: Knob) -> list[KnobValue]:
    if knob.is_switch:
        assert knob.values is not None
        return [knob.values[0], knob.values[-1]]
    return [float(knob.minimum), float(knob.maximum)]


def _centre(knob: Knob) -> KnobValue:
    if knob.is_switch:
        assert knob.values is not None
        return knob.values[len(knob.values) // 2]
    return round(float(knob.minimum + knob.maximum) / 2.0, 6)


def initial_design(swept: list[Knob], rng: np.random.Generator) -> list[dict[str, KnobValue]]:
    """The space-filling start of an adaptive plan: the swept knobs' values only (no duplicates).

    One or two knobs: every corner of the range (each knob at its minimum and maximum; a switch at its
    first and last value) and the centre: 3 settings for one knob, 5 for two. Three or more knobs
    (8 or more corners would be most of a small budget): ``2 x knobs`` Latin-hypercube points.
    """
    if len(swept) <= 2:
        points = [dict(zip((k.name for k in swept), combo)) for combo in itertools.product(*(_ends(k) for k in swept))]
        points.append({k.name: _centre(k) for k in swept})
    else:
        n = 2 * len(swept)
        columns = {k.name: lhs_values(k, n, rng) for k in swept}
        points = [{name: column[i] for name, column in columns.items()} for i in range(n)]
    unique: list[dict[str, KnobValue]] = []
    for point in points:
        if point not in unique:
            unique.append(point)
    return unique


def make_plan(profile: DeviceProfile, config: PlanConfig) -> list[PlannedTake]:
    """The ordered list of takes for ``config`` on ``profile`` (validated; clear ``ValueError``s)."""
    check_plan_config(config)
    if config.kind not in PLAN_KINDS:
        raise ValueError(f"plan kind must be one of {', '.join(PLAN_KINDS)}, not {config.kind!r}")
    swept = [profile.knob(name) for name in config.knobs]
    if len({k.name for k in swept}) != len(swept):
        raise ValueError("a knob is swept twice")
    fixed = {profile.knob(name).name: value for name, value in config.fixed.items()}
    clash = set(fixed) & {k.name for k in swept}
    if clash:
        raise ValueError(f"{', '.join(sorted(clash))} cannot be both swept and fixed")
    base = profile.complete(fixed)
    rng = np.random.default_rng(config.seed)
    if config.kind == "adaptive" and not swept:
        raise ValueError("--plan adaptive chooses settings of the swept knobs: give at least one --knob")

    settings: list[dict[str, KnobValue]]
    if not swept:
        settings = [dict(base)]
    elif config.kind == "grid":
        axes = [_grid_values(config, k) for k in swept]
        settings = [dict(base, **{k.name: v for k, v in zip(swept, combo)}) for combo in itertools.product(*axes)]
    elif config.kind == "adaptive":
        settings = [dict(base, **point) for point in initial_design(swept, rng)]
        if config.takes <= len(settings):
            raise ValueError(
                f"--plan adaptive starts with {len(settings)} settings ({_design_words(swept)}); give --takes "
                f"{len(settings) + 1} or more, or use --plan lhs for {config.takes}"
            )
    else:
        if config.takes < 1:
            raise ValueError(f"an lhs plan needs at least 1 take, not {config.takes}")
        columns = {k.name: lhs_values(k, config.takes, rng) for k in swept}
        settings = [dict(base, **{name: col[i] for name, col in columns.items()}) for i in range(config.takes)]

    settings = [profile.complete(s) for s in settings]
    if config.shuffle:
        settings = [settings[i] for i in rng.permutation(len(settings))]

    ordered: list[tuple[dict[str, KnobValue], bool]] = []
    every = int(config.reference_every)
    for i, setting in enumerate(settings):
        if every and i % every == 0:
            ordered.append((dict(base), True))
        ordered.append((setting, False))
    if every:
        ordered.append((dict(base), True))
    origin = "initial" if config.kind == "adaptive" and swept else None
    return [PlannedTake(index=i + 1, knobs=k, is_reference=ref, origin=origin) for i, (k, ref) in enumerate(ordered)]


def _design_words(swept: list[Knob]) -> str:
    names = ", ".join(k.name for k in swept)
    return f"the corners and centre of {names}" if len(swept) <= 2 else f"Latin-hypercube points of {names}"


def _take_entry(take: PlannedTake) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": take.index, "knobs": take.knobs, "is_reference": take.is_reference}
    for name in ("origin", "batch", "score"):  # only adaptive plans have them: other entries stay as they were
        if getattr(take, name) is not None:
            entry[name] = getattr(take, name)
    return entry


def plan_to_dict(config: PlanConfig, takes: list[PlannedTake]) -> dict[str, Any]:
    """The manifest's ``plan`` entry: the config and the full list of takes (an adaptive plan: also its
    budget and the record of its batches, ``plan["adaptive"]``)."""
    data = {**config.to_dict(), "takes": [_take_entry(t) for t in takes]}
    if config.kind == "adaptive":
        data[ADAPTIVE_KEY] = {"budget": int(config.takes), "batch": int(config.batch), "initial": len(takes), "batches": []}
    return data


def plan_from_dict(data: dict[str, Any]) -> list[PlannedTake]:
    """Rebuild the planned takes stored in a manifest."""
    return [
        PlannedTake(
            index=int(t["index"]), knobs=dict(t["knobs"]), is_reference=bool(t["is_reference"]), origin=t.get("origin"),
            batch=None if t.get("batch") is None else int(t["batch"]), score=None if t.get("score") is None else float(t["score"]),
        )
        for t in data["takes"]
    ]


@dataclass
class PlanBatch:
    """Settings chosen for the next round of a growing plan, and how they were chosen.

    Attributes:
        settings: complete knob settings (every knob of the profile), in the order to record them.
        scores: the acquisition's score of each setting (same order).
        details: what the manifest keeps about the choice (the takes it was trained on, the number
            of candidates, the acquisition, the quick model's settings, seconds spent...); JSON-ready.
    """

    settings: list[dict[str, KnobValue]]
    scores: list[float]
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.settings) != len(self.scores):
            raise ValueError(f"a plan batch needs one score per setting ({len(self.settings)} settings, {len(self.scores)} scores)")


def budget_left(plan: dict[str, Any]) -> int:
    """Settings a growing plan may still add (0 for a plan that does not grow, or has used its budget)."""
    adaptive = plan.get(ADAPTIVE_KEY)
    if not adaptive:
        return 0
    settings = sum(1 for t in plan.get("takes") or [] if not t.get("is_reference"))
    return max(int(adaptive.get("budget", 0)) - settings, 0)


def append_batch(plan: dict[str, Any], batch: PlanBatch, *, budget: int | None = None) -> list[PlannedTake]:
    """Append ``batch`` to the stored ``plan`` (in place) and return its new planned takes.

    The takes get the next indexes, ``origin="adaptive"``, the batch number and their scores;
    ``plan["adaptive"]["batches"]`` gets the batch's record (its details and take ids). A plan that
    was not adaptive gets an ``adaptive`` entry. ``budget``: raise the plan's budget of settings to
    at least this many (``fxcap plan next`` asks for takes beyond it).
    """
    adaptive = plan.setdefault(ADAPTIVE_KEY, {"budget": 0, "batch": len(batch.settings), "initial": len(plan.get("takes") or []),
                                              "batches": []})
    number = len(adaptive["batches"]) + 1
    start = max((int(t["index"]) for t in plan.get("takes") or []), default=0) + 1
    new = [PlannedTake(index=start + i, knobs=dict(knobs), origin="adaptive", batch=number, score=float(score))
           for i, (knobs, score) in enumerate(zip(batch.settings, batch.scores))]
    plan.setdefault("takes", []).extend(_take_entry(t) for t in new)
    adaptive["batches"].append({"batch": number, "takes": [t.take_id for t in new], **batch.details})
    if budget is not None:
        adaptive["budget"] = max(int(adaptive.get("budget", 0)), int(budget))
    return new


def parse_settings(items: list[str], profile: DeviceProfile) -> dict[str, KnobValue]:
    """Parse ``["tone=5", "mode=limit"]`` into validated knob values (clear ``ValueError`` otherwise)."""
    result: dict[str, KnobValue] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects NAME=VALUE (e.g. tone=5), not {item!r}")
        name, value = item.split("=", 1)
        knob = profile.knob(name)
        result[knob.name] = knob.validate(value if knob.is_switch else _number(value, knob))
    return result


def _number(text: str, knob: Knob) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{knob.name} must be a number in {knob.minimum:g}..{knob.maximum:g}, not {text!r}") from None
