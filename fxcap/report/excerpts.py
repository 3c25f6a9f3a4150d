"""Which stretches of the capture signal the report analyses and plays.

The device's audio is the session's aligned take output (continuous over the whole signal); a model
is run on each excerpt separately, from a zero state, starting ``preroll`` samples before the
measured stretch so that its state has settled when the measurement starts. Three kinds:

* ``tone``: the steady part of the calibration tone (its first 20 % and last 10 % are skipped:
  fades and settling), for gain and harmonic distortion;
* ``program``: short chunks spread evenly over every program region (all trainable regions when
  the signal has none), for the gain reduction of loud against quiet material;
* ``listen``: one contiguous stretch of program material for spectrograms and audio players,
  taken from the dataset's test split when the dataset was built from this signal (material no
  model was trained on), else from the longest program region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fxcap.capture.layout import TRAINABLE_KINDS, Region, SignalLayout
from fxcap.errors import ReportError


@dataclass(frozen=True)
class ExcerptConfig:
    """How much of the signal is analysed (seconds).

    Attributes:
        tone_seconds: most of the calibration tone measured.
        analysis_seconds: program material for the gain-reduction measure, in all.
        chunk_seconds: length of each program chunk.
        audio_seconds: length of the listening excerpt (spectrograms and audio players).
        preroll_seconds: audio a model hears before each measured stretch.
    """

    tone_seconds: float = 1.0
    analysis_seconds: float = 4.0
    chunk_seconds: float = 0.5
    audio_seconds: float = 3.0
    preroll_seconds: float = 0.1

    def __post_init__(self) -> None:
        for name in ("tone_seconds", "analysis_seconds", "chunk_seconds", "audio_seconds"):
            if not getattr(self, name) > 0:
                raise ReportError(f"{name} must be a positive number of seconds, not {getattr(self, name)}")
        if self.preroll_seconds < 0:
            raise ReportError(f"preroll_seconds must not be negative, not {self.preroll_seconds}")


@dataclass(frozen=True)
class Excerpt:
    """Measured stretch ``[start, stop)`` of the signal (samples); models run from ``preroll_start``."""

    name: str
    role: str  # "tone" | "program" | "listen"
    start: int
    stop: int
    preroll_start: int
    description: str = ""

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def preroll(self) -> int:
        """Samples a model hears before the measured stretch."""
        return self.start - self.preroll_start

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "start": self.start, "stop": self.stop,
                "preroll_start": self.preroll_start, "description": self.description}


def _excerpt(name: str, role: str, start: int, stop: int, preroll: int, description: str = "") -> Excerpt:
    return Excerpt(name, role, int(start), int(stop), int(max(0, start - preroll)), description)


def tone_excerpt(layout: SignalLayout, config: ExcerptConfig = ExcerptConfig()) -> Excerpt | None:
    """The steady part of the first calibration region (at most ``tone_seconds``); None if there is none."""
    regions = layout.of_kind("calibration")
    if not regions:
        return None
    region = regions[0]
    start = region.start + int(0.2 * region.length)
    stop = min(region.stop - int(0.1 * region.length), start + int(round(config.tone_seconds * layout.sample_rate)))
    if stop - start < 16:
        return None
    preroll = int(round(config.preroll_seconds * layout.sample_rate))
    return _excerpt(region.name, "tone", start, stop, preroll, f"steady part of the {region.name} tone")


def _material_regions(layout: SignalLayout) -> list[Region]:
    program = [r for r in layout.of_kind("program") if r.length > 0]
    return program or [r for r in layout.regions if r.kind in TRAINABLE_KINDS and r.length > 0]


def program_excerpts(layout: SignalLayout, config: ExcerptConfig = ExcerptConfig()) -> list[Excerpt]:
    """Chunks of ``chunk_seconds`` spread evenly over every program region, ``analysis_seconds`` in all
    (shared equally between regions; a region shorter than its share is used whole)."""
    regions = _material_regions(layout)
    if not regions:
        return []
    rate = layout.sample_rate
    chunk = max(1, int(round(config.chunk_seconds * rate)))
    share = int(round(config.analysis_seconds * rate / len(regions)))
    preroll = int(round(config.preroll_seconds * rate))
    excerpts = []
    for region in regions:
        if region.length <= share:
            excerpts.append(_excerpt(region.name, "program", region.start, region.stop, preroll))
            continue
        count = max(1, share // chunk)
        size = share // count
        spacing = (region.length - size) / max(count - 1, 1)
        for i in range(count):
            start = region.start + int(round(i * spacing)) if count > 1 else region.start
            excerpts.append(_excerpt(f"{region.name}#{i + 1}", "program", start, start + size, preroll))
    return excerpts


def _test_runs(dataset_manifest: dict[str, Any]) -> list[tuple[int, int, str]]:
    """Contiguous stretches ``(start, stop, region)`` of the dataset's test segments, in signal order."""
    segments = sorted(
        (s for s in dataset_manifest.get("plan", {}).get("segments", []) if s.get("split") == "test"),
        key=lambda s: int(s["start"]),
    )
    runs: list[list[Any]] = []
    for seg in segments:
        start, stop = int(seg["start"]), int(seg["start"]) + int(seg["num_samples"])
        if runs and runs[-1][1] == start and runs[-1][3] == seg.get("kind"):
            runs[-1][1] = stop
        else:
            runs.append([start, stop, seg.get("region", ""), seg.get("kind")])
    program = [r for r in runs if r[3] == "program"]
    return [(r[0], r[1], r[2]) for r in (program or runs)]


def listening_excerpt(
    layout: SignalLayout, config: ExcerptConfig = ExcerptConfig(), dataset_manifest: dict[str, Any] | None = None
) -> Excerpt:
    """One contiguous stretch of at most ``audio_seconds`` for spectrograms and audio players.

    From the longest stretch of test segments of ``dataset_manifest`` when its signal is this
    layout's (same sha256), else from the longest program region, else from the whole signal.
    """
    rate = layout.sample_rate
    wanted = max(1, int(round(config.audio_seconds * rate)))
    preroll = int(round(config.preroll_seconds * rate))
    signal_sha = (dataset_manifest or {}).get("signal", {}).get("sha256")
    if dataset_manifest is not None and signal_sha and signal_sha == layout.sha256:
        runs = _test_runs(dataset_manifest)
        if runs:
            start, stop, region = max(runs, key=lambda r: r[1] - r[0])
            return _excerpt("listen", "listen", start, min(stop, start + wanted), preroll,
                            f"{region}, from the dataset's test split (not used for training)")
    regions = _material_regions(layout)
    if regions:
        region = max(regions, key=lambda r: r.length)
        return _excerpt("listen", "listen", region.start, min(region.stop, region.start + wanted), preroll,
                        f"{region.name} ({region.kind} material)")
    return _excerpt("listen", "listen", 0, min(layout.length, wanted), preroll, "start of the signal")
