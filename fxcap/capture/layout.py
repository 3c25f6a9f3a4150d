"""The layout of a capture signal: which stretch of samples is what.

Stored beside the signal as JSON so that alignment, checks and dataset building know where the
sync markers, the calibration tone, the silent stretch, the program material and the two copies of
the validation segment are.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REGION_KINDS = (
    "sync_start",  # sync marker at the start (latency)
    "sync_end",  # sync marker at the end (latency at the end -> clock drift)
    "calibration",  # steady sine tone (gain, level check)
    "silence",  # nothing played: the noise floor of the rig and device
    "sweep",  # log sine sweep
    "noise",  # noise burst
    "program",  # musical material (notes, chords, bass, drums, level steps, bursts)
    "validation",  # the validation segment; appears twice with identical input (repeatability)
    "gap",  # short silence between regions (lets the device's memory settle)
)

TRAINABLE_KINDS = ("sweep", "noise", "program")
"""Region kinds whose audio may be used to train models. Validation copies are excluded: both hold
the same input, so putting them in different splits would leak."""


@dataclass(frozen=True)
class Region:
    """A named stretch ``[start, stop)`` of the signal, in samples."""

    name: str
    kind: str
    start: int
    stop: int
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in REGION_KINDS:
            raise ValueError(f"region {self.name!r}: unknown kind {self.kind!r}")
        if not 0 <= self.start <= self.stop:
            raise ValueError(f"region {self.name!r}: bad bounds {self.start}..{self.stop}")

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def trainable(self) -> bool:
        return self.kind in TRAINABLE_KINDS

    def seconds(self, sample_rate: int) -> tuple[float, float]:
        """``(start, stop)`` in seconds."""
        return self.start / sample_rate, self.stop / sample_rate


@dataclass
class SignalLayout:
    """Everything about a capture signal except its samples.

    ``sha256`` is the hash of the float32 little-endian samples; it identifies the exact signal a
    session played.
    """

    version: str
    sample_rate: int
    length: int
    peak_dbfs: float
    preset: str
    regions: list[Region]
    sha256: str = ""
    source: str = "builtin"  # "builtin" or the file name of the user's program material
    extra: dict[str, Any] = field(default_factory=dict)

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(f"signal layout has no region {name!r}")

    def of_kind(self, kind: str) -> list[Region]:
        return [r for r in self.regions if r.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for item in data["regions"]:
            item["start_s"] = item["start"] / self.sample_rate
            item["stop_s"] = item["stop"] / self.sample_rate
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SignalLayout":
        """Rebuild a layout; ``ValueError`` (with what is wrong) for anything that is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("regions"), list):
            raise ValueError("expected an object with a list of regions")
        data = dict(data)
        regions = []
        for item in data.pop("regions"):
            if not isinstance(item, dict) or not all(isinstance(item.get(k), int) for k in ("start", "stop")):
                raise ValueError(f"region {item!r} needs whole-number start and stop samples")
            item = {k: v for k, v in item.items() if k not in ("start_s", "stop_s")}
            regions.append(Region(**item))
        for name in ("sample_rate", "length"):
            if not isinstance(data.get(name), int) or data[name] <= 0:
                raise ValueError(f"{name} must be a positive whole number, not {data.get(name)!r}")
        return cls(regions=regions, **data)

    @classmethod
    def from_json(cls, text: str) -> "SignalLayout":
        return cls.from_dict(json.loads(text))


def read_layout(path: str | os.PathLike, fix: str) -> SignalLayout:
    """Read a layout JSON file; an unreadable or invalid one is a one-line :class:`FxcapError` naming
    the file and ending with ``fix`` (what to do)."""
    from fxcap.errors import FxcapError

    try:
        return SignalLayout.from_json(Path(path).read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FxcapError(f"{path} is not a valid signal layout ({exc}); {fix}") from None
    except OSError as exc:
        raise FxcapError(f"{path}: cannot read the signal layout ({exc.strerror}); {fix}") from None


def audio_sha256(audio: np.ndarray) -> str:
    """SHA-256 of the samples as float32 little-endian bytes."""
    return hashlib.sha256(np.ascontiguousarray(audio, dtype="<f4").tobytes()).hexdigest()


@dataclass
class TestSignal:
    """A capture signal: mono float32 samples plus their layout."""

    __test__ = False  # not a pytest test class

    audio: np.ndarray
    layout: SignalLayout

    @property
    def sample_rate(self) -> int:
        return self.layout.sample_rate

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.audio) / self.layout.sample_rate
