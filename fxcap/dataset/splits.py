"""Splitting a capture signal along time into train/valid/test segments.

Only the trainable regions of the signal (:data:`fxcap.capture.layout.TRAINABLE_KINDS`: sweep, noise,
program) are used; sync markers, the calibration tone, silence, gaps and both validation copies are left
out. The same plan is applied to every take of every session, so a stretch of input audio lands in
exactly one split whatever the knob setting: no input is seen in training and scored in testing.

Two modes:

``interleaved`` (default)
    Every trainable region is cut into segments of about ``segment_seconds``; segments are then dealt
    to the splits in timeline order, each going to the split furthest below its share (in samples).
    Every split thus draws from every kind of material (sweep, noise, each program part) in the
    requested proportions, e.g. ``T E T T V E T E T T`` for 60/10/30.

``contiguous``
    The concatenated trainable timeline is cut once at the requested fractions (the paper's "first
    60 % / next 10 % / last 30 %"); each piece is then cut into segments. Simpler to reason about, but
    the splits hear different material.

Segments never straddle a region boundary or a split boundary. Pieces shorter than
``min_segment_seconds`` (slivers at region ends) are dropped and counted in :attr:`SplitPlan.dropped_samples`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fxcap.capture.layout import TRAINABLE_KINDS, Region, SignalLayout
from fxcap.errors import DatasetError

SPLITS = ("train", "valid", "test")
"""The time splits, in order."""

HOLDOUT_SPLIT = "holdout"
"""The split that takes whose knob setting is held out go to (all their segments)."""

ALL_SPLITS = SPLITS + (HOLDOUT_SPLIT,)

SPLIT_MODES = ("interleaved", "contiguous")


@dataclass(frozen=True)
class SplitConfig:
    """How to cut the trainable timeline.

    Attributes:
        train, valid, test: fractions of the trainable samples (each >= 0, summing to 1).
        segment_seconds: target segment length (seconds); one Parquet row per (take, segment).
        min_segment_seconds: pieces shorter than this (seconds) are dropped.
        mode: ``"interleaved"`` or ``"contiguous"`` (see the module docstring).
    """

    train: float = 0.6
    valid: float = 0.1
    test: float = 0.3
    segment_seconds: float = 2.0
    min_segment_seconds: float = 0.1
    mode: str = "interleaved"

    def __post_init__(self) -> None:
        fractions = self.fractions
        if any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
            raise DatasetError(
                f"split fractions must be >= 0 and sum to 1, got train={self.train} valid={self.valid} "
                f"test={self.test}; e.g. --split 60/10/30"
            )
        if self.train <= 0:
            raise DatasetError("the train split must get a positive fraction of the audio; e.g. --split 60/10/30")
        if not self.segment_seconds > 0:
            raise DatasetError(f"segment length must be positive, got {self.segment_seconds} s")
        if not 0 <= self.min_segment_seconds <= self.segment_seconds:
            raise DatasetError(
                f"minimum segment length ({self.min_segment_seconds} s) must be between 0 and the segment "
                f"length ({self.segment_seconds} s)"
            )
        if self.mode not in SPLIT_MODES:
            raise DatasetError(f"split mode must be one of {', '.join(SPLIT_MODES)}, not {self.mode!r}")

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SplitConfig":
        return cls(**data)

    @classmethod
    def parse_fractions(cls, text: str, **kwargs: Any) -> "SplitConfig":
        """``"60/10/30"`` (percent, summing to 100) or ``"0.6/0.1/0.3"`` (fractions, summing to 1) -> config.

        Shares that sum to anything else (``90/20/30``) are refused, not rescaled: they are a typo more
        often than a ratio."""
        parts = text.replace(",", "/").split("/")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise DatasetError(f"--split must look like 60/10/30 (train/valid/test), not {text!r}") from None
        if len(values) != 3 or any(not v >= 0 for v in values):
            raise DatasetError(f"--split must be three non-negative numbers train/valid/test, not {text!r}")
        total = sum(values)
        if abs(total - 100.0) <= 1e-6:
            values = [v / 100.0 for v in values]
        elif abs(total - 1.0) > 1e-6:
            raise DatasetError(f"--split {text} sums to {total:g}; give percentages that sum to 100 (e.g. 60/10/30) "
                               "or fractions that sum to 1")
        return cls(train=values[0], valid=values[1], test=values[2], **kwargs)


@dataclass(frozen=True)
class Segment:
    """A stretch ``[start, start + num_samples)`` of the signal (samples) in one region and one split.

    ``index`` numbers the segments along the signal (0, 1, ...); it is the same for every take.
    """

    index: int
    region: str
    kind: str
    start: int
    num_samples: int
    split: str

    @property
    def stop(self) -> int:
        return self.start + self.num_samples

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SplitPlan:
    """The segments of one signal, in signal order, with their split."""

    config: SplitConfig
    sample_rate: int
    segments: list[Segment]
    dropped_samples: int = 0
    excluded_regions: list[str] = field(default_factory=list)

    def of_split(self, split: str) -> list[Segment]:
        return [s for s in self.segments if s.split == split]

    def samples(self, split: str) -> int:
        return sum(s.num_samples for s in self.segments if s.split == split)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "sample_rate": self.sample_rate,
            "dropped_samples": self.dropped_samples,
            "excluded_regions": list(self.excluded_regions),
            "segments": [s.to_dict() for s in self.segments],
        }


def _cut(start: int, stop: int, target: int) -> list[tuple[int, int]]:
    """Cut ``[start, stop)`` into ``round(length / target)`` (at least one) near-equal pieces."""
    length = stop - start
    count = max(1, int(round(length / target)))
    bounds = [start + (length * i) // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def plan_splits(layout: SignalLayout, config: SplitConfig = SplitConfig()) -> SplitPlan:
    """Cut the trainable regions of ``layout`` into segments and give each a split.

    Deterministic: depends only on the layout's regions, its sample rate and ``config``.
    Raises :class:`DatasetError` if the layout has no trainable audio or a non-empty split gets none.
    """
    rate = layout.sample_rate
    target = max(1, int(round(config.segment_seconds * rate)))
    minimum = max(1, int(round(config.min_segment_seconds * rate)))
    regions: list[Region] = sorted((r for r in layout.regions if r.kind in TRAINABLE_KINDS and r.length > 0), key=lambda r: r.start)
    excluded = [r.name for r in layout.regions if r.kind not in TRAINABLE_KINDS]
    if not regions:
        raise DatasetError(
            "the session's signal has no trainable region (sweep, noise or program); record it with a full test signal"
        )
    for a, b in zip(regions, regions[1:]):
        if b.start < a.stop:
            raise DatasetError(f"signal layout regions {a.name!r} and {b.name!r} overlap; the layout file is corrupt")

    pieces: list[tuple[Region, int, int, str | None]] = []
    if config.mode == "contiguous":
        total = sum(r.length for r in regions)
        fractions = config.fractions
        cum, edges = 0.0, []
        for name in SPLITS:
            cum += fractions[name]
            edges.append((name, int(round(cum * total))))
        position = 0  # position on the trainable timeline
        for region in regions:
            r_start = position
            position += region.length
            for index, (name, edge) in enumerate(edges):
                lo = 0 if index == 0 else edges[index - 1][1]
                a, b = max(lo, r_start), min(edge, position)
                if b > a:
                    pieces.append((region, region.start + a - r_start, region.start + b - r_start, name))
    else:
        pieces = [(r, r.start, r.stop, None) for r in regions]

    dropped = 0
    cut: list[tuple[Region, int, int, str | None]] = []
    for region, start, stop, split in pieces:
        for a, b in _cut(start, stop, target):
            if b - a < minimum:
                dropped += b - a
            else:
                cut.append((region, a, b, split))

    assigned = {name: 0 for name in SPLITS}
    segments: list[Segment] = []
    for index, (region, a, b, split) in enumerate(cut):
        if split is None:
            total_after = sum(assigned.values()) + (b - a)
            split = max(SPLITS, key=lambda s: (config.fractions[s] * total_after - assigned[s], -SPLITS.index(s)))
        assigned[split] += b - a
        segments.append(Segment(index=index, region=region.name, kind=region.kind, start=a, num_samples=b - a, split=split))

    plan = SplitPlan(config=config, sample_rate=rate, segments=segments, dropped_samples=dropped, excluded_regions=excluded)
    for name in SPLITS:
        if config.fractions[name] > 0 and plan.samples(name) == 0:
            raise DatasetError(
                f"the {name} split got no audio: the signal's trainable part ({sum(r.length for r in regions) / rate:.2f} s) "
                f"is too short for {len(cut)} segment(s) of {config.segment_seconds:g} s; use a shorter --segment-seconds"
            )
    return plan
