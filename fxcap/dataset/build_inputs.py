"""What goes into a dataset build: the sessions (opened, checked alike, named), the takes chosen from
them (with their knob values, holdout flag and quality figures) and the split plan of their signals.

Used by :mod:`fxcap.dataset.build_plan`; nothing here writes a file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from fxcap.capture.profiles import DeviceProfile
from fxcap.capture.session import Session, TakeRecord
from fxcap.capture.take_files import verify_takes
from fxcap.dataset.holdout import HoldoutSpec, describe_setting
from fxcap.dataset.schema import KnobColumn
from fxcap.dataset.splits import Segment, SplitConfig, SplitPlan, plan_splits
from fxcap.errors import DatasetError

log = logging.getLogger(__name__)


NOISE_FLOOR_CHECKS = ("noise_floor",)
"""Names of the take checks whose ``value`` is the noise floor (dBFS)."""


REPEATABILITY_CHECKS = ("repeatability",)
"""Names of the take checks whose ``value`` is the repeatability ESR (validation copy A vs B)."""


@dataclass
class Take:
    """A take chosen for the dataset, with everything its rows need."""

    session_index: int
    session_name: str
    record: TakeRecord
    knobs_raw: dict[str, Any]
    knobs_norm: dict[str, float]
    held_out: bool
    noise_floor_dbfs: float | None
    repeatability_esr: float | None


def open_sessions(sessions: Sequence[str | Path | Session]) -> list[Session]:
    """Open the sessions (each once, their take files verified), ordered by creation time and folder name."""
    if not sessions:
        raise DatasetError("no session given; pass one or more session folders (fxcap build-dataset SESSION...)")
    opened = [s if isinstance(s, Session) else Session.open(s) for s in sessions]
    for session in opened:  # a take replaced after it was recorded is refused, an unhashed one said
        for warning in verify_takes(session):
            log.warning("%s", warning)
    roots = [s.root.resolve() for s in opened]
    if len(set(roots)) != len(roots):
        raise DatasetError("the same session was given twice; list each session folder once")
    return sorted(opened, key=lambda s: (s.manifest.created_at, s.root.name, str(s.root)))


def check_compatible(sessions: list[Session], mixed_signals: bool = False) -> None:
    """Refuse sessions that cannot form one dataset: another device, sample rate or (unless ``mixed_signals``) signal."""
    first = sessions[0]
    for other in sessions[1:]:
        a, b = first.root.name, other.root.name
        if first.manifest.device.to_dict() != other.manifest.device.to_dict():
            raise DatasetError(
                f"cannot combine sessions {a} and {b}: different devices or knob definitions "
                f"({first.manifest.device.name} vs {other.manifest.device.name}); build one dataset per device"
            )
        if first.sample_rate != other.sample_rate:
            raise DatasetError(
                f"cannot combine sessions {a} and {b}: different sample rates ({first.sample_rate} vs "
                f"{other.sample_rate} Hz); record them at one rate"
            )
        if not mixed_signals and first.manifest.signal.get("sha256") != other.manifest.signal.get("sha256"):
            raise DatasetError(
                f"cannot combine sessions {a} and {b}: they played different test signals (signal sha256 "
                f"{str(first.manifest.signal.get('sha256'))[:12]} vs {str(other.manifest.signal.get('sha256'))[:12]}); "
                "record them with the same signal preset and program material (or, for a dataset of different "
                "dry/wet files, allow it: BuildConfig(mixed_signals=True))"
            )


def session_names(sessions: list[Session]) -> list[str]:
    """The sessions' names in the dataset: their folder names, made unique with ``~2``, ``~3``..."""
    names: list[str] = []
    for session in sessions:
        base = session.root.name or "session"
        name, n = base, 2
        while name in names:
            name, n = f"{base}~{n}", n + 1
        names.append(name)
    return names


def _check_value(record: TakeRecord, names: Iterable[str]) -> float | None:
    for name in names:
        check = record.check(name)
        if check is not None and check.value is not None and math.isfinite(check.value):
            return float(check.value)
    return None


def _failure_reason(record: TakeRecord) -> str:
    failed = [c for c in record.checks if not c.passed and c.severity == "error"]
    return "; ".join(f"{c.name}: {c.message or 'failed'}" for c in failed) or "failed its checks"


def select_takes(
    sessions: list[Session], names: list[str], profile: DeviceProfile, specs: list[HoldoutSpec], include_reference: bool
) -> tuple[list[Take], list[list[dict[str, str]]]]:
    """The takes that go into the dataset (those that passed their checks; reference takes if
    ``include_reference``), and per session the skipped ones with the reason.

    Raises :class:`DatasetError` when no take is left, a holdout matches no take, or every take is held out.
    """
    takes: list[Take] = []
    skipped: list[list[dict[str, str]]] = []
    for index, (session, name) in enumerate(zip(sessions, names)):
        skipped.append([])
        for record in sorted(session.takes, key=lambda r: (r.index, r.take_id)):
            if not record.passed:
                skipped[-1].append({"take_id": record.take_id, "reason": _failure_reason(record)})
                log.warning("session %s: skipping take %s (%s)", name, record.take_id, _failure_reason(record))
                continue
            if record.is_reference and not include_reference:
                skipped[-1].append({"take_id": record.take_id, "reason": "reference take (include_reference is off)"})
                continue
            try:
                raw = profile.complete(record.knobs)
            except ValueError as exc:
                raise DatasetError(f"session {name}, take {record.take_id}: {exc}") from None
            takes.append(
                Take(
                    session_index=index,
                    session_name=name,
                    record=record,
                    knobs_raw=raw,
                    knobs_norm=profile.normalize(raw),
                    held_out=any(spec.matches(profile, raw) for spec in specs),
                    noise_floor_dbfs=_check_value(record, NOISE_FLOOR_CHECKS),
                    repeatability_esr=_check_value(record, REPEATABILITY_CHECKS),
                )
            )
    if not takes:
        raise DatasetError("no take passed its checks in the given session(s); re-record or fix the rig first")
    for spec in specs:
        if not any(spec.matches(profile, t.knobs_raw) for t in takes):
            present = sorted({describe_setting(profile, t.knobs_raw) for t in takes})
            raise DatasetError(f"--holdout {spec.text}: no take has that setting; settings present: {'; '.join(present)}")
    if all(t.held_out for t in takes):
        raise DatasetError("--holdout holds out every take; nothing would be left to train on")
    return takes, skipped


def split_signals(sessions: list[Session], names: list[str], config: SplitConfig) -> tuple[SplitPlan, list[list[Segment]], list[dict[str, Any]]]:
    """One split plan per distinct signal (sessions in order), segment indices numbered across them.

    Returns the combined plan (every segment), each session's segments, and per signal its sha256,
    sessions and segment index range.
    """
    plans: dict[str, SplitPlan] = {}
    signals: list[dict[str, Any]] = []
    per_session: list[list[Segment]] = []
    offset = 0
    for session, name in zip(sessions, names):
        layout = session.layout
        key = layout.sha256 or str(session.manifest.signal.get("sha256"))
        if key not in plans:
            try:
                plan = plan_splits(layout, config)
            except DatasetError as exc:
                raise DatasetError(f"session {name}: {exc}") from None
            segments = [dataclasses.replace(seg, index=seg.index + offset) for seg in plan.segments]
            plans[key] = dataclasses.replace(plan, segments=segments)
            signals.append({"sha256": key, "sessions": [], "first_segment": offset, "segments": len(segments),
                            "source": layout.source, "seconds": layout.length / layout.sample_rate})
            offset += len(segments)
        next(s for s in signals if s["sha256"] == key)["sessions"].append(name)
        per_session.append(plans[key].segments)
    first = plans[signals[0]["sha256"]]
    combined = SplitPlan(
        config=first.config,
        sample_rate=first.sample_rate,
        segments=[seg for plan in plans.values() for seg in plan.segments],
        dropped_samples=sum(plan.dropped_samples for plan in plans.values()),
        excluded_regions=list(dict.fromkeys(r for plan in plans.values() for r in plan.excluded_regions)),
    )
    return combined, per_session, signals


def conditioning_knobs(knobs: Sequence[KnobColumn], takes: Sequence[Take]) -> list[str]:
    """The knobs whose value varies across the dataset's takes: the models' conditioning inputs.

    A knob held at one value in every take carries no information a model could learn (the
    paper's OD-3 models see DRIVE and TONE, not the fixed LEVEL); its raw and normalized columns
    are still written to every shard. If no knob varies, all knobs are kept.
    """
    varying = [k.name for k in knobs if len({str(t.knobs_raw.get(k.name)) for t in takes}) > 1]
    return varying or [k.name for k in knobs]
