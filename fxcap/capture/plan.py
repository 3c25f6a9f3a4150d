"""Knob plans: which settings to record, in which order, with reference re-takes.

A plan is computed once and stored in full in the session manifest (``plan["takes"]``), so a
resumed capture continues the exact same list whatever the random seed or the code version.

Kinds:
    ``grid``: every combination of evenly spaced values of the swept knobs (one knob = a sweep).
    ``lhs``:  a Latin-hypercube plan of ``takes`` settings: each swept knob's range is cut into
              ``takes`` equal strata and every stratum is used exactly once (centre of the stratum
              plus a seeded jitter), so few takes still cover every knob evenly.
Switches take each of their values in turn. Unswept knobs sit at their defaults or at ``fixed``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fxcap.capture.profiles import DeviceProfile, Knob, KnobValue

PLAN_KINDS = ("grid", "lhs")


@dataclass(frozen=True)
class PlannedTake:
    """One planned take: its position, full knob setting and whether it re-takes the reference."""

    index: int
    knobs: dict[str, KnobValue]
    is_reference: bool = False

    @property
    def take_id(self) -> str:
        return f"take-{self.index:04d}"


@dataclass
class PlanConfig:
    """How to build a plan.

    Attributes:
        knobs: names of the knobs to sweep (in the profile's terms).
        steps: values per swept knob for ``grid`` (an int for all, or per-knob dict).
        kind: ``grid`` or ``lhs``.
        takes: number of settings for ``lhs``.
        fixed: values for unswept knobs (the rest sit at their defaults).
        shuffle: record in a random (seeded) order, so slow device drift does not correlate with
            a knob.
        reference_every: re-take the reference setting (defaults + fixed) first, after every N
            takes and last (0: never). The reference re-takes measure device drift.
        seed: for ``lhs`` and ``shuffle``.
    """

    knobs: list[str] = field(default_factory=list)
    steps: int | dict[str, int] = 11
    kind: str = "grid"
    takes: int = 16
    fixed: dict[str, KnobValue] = field(default_factory=dict)
    shuffle: bool = False
    reference_every: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _grid_values(config: PlanConfig, knob: Knob) -> list[KnobValue]:
    if knob.is_switch:
        assert knob.values is not None
        return list(knob.values)
    values = np.linspace(knob.minimum, knob.maximum, _steps_for(config, knob))
    return [round(float(v), 6) for v in values]


def _lhs_values(knob: Knob, n: int, rng: np.random.Generator) -> list[KnobValue]:
    if knob.is_switch:
        assert knob.values is not None
        values = [knob.values[i % len(knob.values)] for i in range(n)]
        return [values[i] for i in rng.permutation(n)]
    strata = (np.arange(n) + rng.uniform(0.0, 1.0, n)) / n
    strata = strata[rng.permutation(n)]
    return [round(float(knob.minimum + s * (knob.maximum - knob.minimum)), 4) for s in strata]


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

    settings: list[dict[str, KnobValue]]
    if not swept:
        settings = [dict(base)]
    elif config.kind == "grid":
        axes = [_grid_values(config, k) for k in swept]
        settings = [dict(base, **{k.name: v for k, v in zip(swept, combo)}) for combo in itertools.product(*axes)]
    else:
        if config.takes < 1:
            raise ValueError(f"an lhs plan needs at least 1 take, not {config.takes}")
        columns = {k.name: _lhs_values(k, config.takes, rng) for k in swept}
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
    return [PlannedTake(index=i + 1, knobs=k, is_reference=ref) for i, (k, ref) in enumerate(ordered)]


def plan_to_dict(config: PlanConfig, takes: list[PlannedTake]) -> dict[str, Any]:
    """The manifest's ``plan`` entry: the config and the full list of takes."""
    return {
        **config.to_dict(),
        "takes": [{"index": t.index, "knobs": t.knobs, "is_reference": t.is_reference} for t in takes],
    }


def plan_from_dict(data: dict[str, Any]) -> list[PlannedTake]:
    """Rebuild the planned takes stored in a manifest."""
    return [PlannedTake(index=int(t["index"]), knobs=dict(t["knobs"]), is_reference=bool(t["is_reference"])) for t in data["takes"]]


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
