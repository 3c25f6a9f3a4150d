"""``dataset.json``: the manifest of a dataset folder, and :class:`DatasetInfo`, its summary.

Every path in the manifest is relative to the dataset folder (POSIX separators), so a dataset can be
moved or copied to another machine and still load. The manifest carries no timestamp: building twice
from the same sessions with the same options gives a byte-identical folder.

Layout of a dataset folder::

    <dataset>/
      dataset.json                       this manifest
      README.md                          the dataset card
      data/train-00000-of-00002.parquet  Parquet shards, one row per (take, segment)
      data/valid-00000-of-00001.parquet
      data/test-00000-of-00001.parquet
      data/holdout-00000-of-00001.parquet   (only with --holdout)
      wav/index.csv, wav/index.parquet   WAV shards index (paths relative to wav/)
      wav/input/<session>/seg-00012.wav  input of a segment (shared by the session's takes)
      wav/target/<session>/<take>/seg-00012.wav
      .cache/<hash>/...                  the loader's memory-mapped cache (rebuilt when missing)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxcap.dataset.remote import Location, locate
from fxcap.dataset.schema import DATASET_FORMAT, DATASET_VERSION, KnobColumn
from fxcap.dataset.splits import ALL_SPLITS
from fxcap.errors import DatasetError

MANIFEST_NAME = "dataset.json"
CARD_NAME = "README.md"


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dataset_hash(files: list[dict[str, Any]]) -> str:
    """Hash of a dataset: SHA-256 over ``"<path>\\0<sha256>\\n"`` of every data file, sorted by path."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f["path"]):
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode("utf-8"))
    return digest.hexdigest()


@dataclass
class SplitInfo:
    """Size of one split: rows (take x segment), audio samples per stream, seconds, distinct takes."""

    rows: int
    samples: int
    seconds: float
    takes: int
    files: list[str] = field(default_factory=list)


@dataclass
class DatasetInfo:
    """What :func:`load_dataset_info` tells about a dataset folder (read from ``dataset.json`` only).

    ``path`` is the local folder (:class:`Path`) or, for a dataset on another filesystem, its URI
    (``s3://bucket/datasets/od3``); :attr:`location` opens either.
    """

    path: Path | str
    name: str
    device: str
    device_kind: str
    knobs: list[KnobColumn]
    """The conditioning knobs (those that vary across the takes), in the loader's ``knobs`` order."""
    sample_rate: int
    window: int
    dataset_hash: str
    splits: dict[str, SplitInfo]
    sessions: list[str]
    holdout: list[str]
    takes_used: int
    takes_skipped: int
    quality: dict[str, dict[str, float]]
    manifest: dict[str, Any]
    all_knobs: list[KnobColumn] = field(default_factory=list)
    """Every knob of the device profile (each has raw and normalized columns in the shards)."""

    @property
    def location(self) -> Location:
        """Where the dataset lives (filesystem + path), see :mod:`fxcap.dataset.remote`."""
        return locate(self.path)

    @property
    def is_local(self) -> bool:
        """True for a dataset on the local filesystem."""
        return isinstance(self.path, Path)

    @property
    def knob_names(self) -> list[str]:
        return [k.name for k in self.knobs]

    @property
    def knob_columns(self) -> list[str]:
        """Normalized knob column names, in the order of the loader's ``knobs`` tensor."""
        return [k.column for k in self.knobs]

    def shard_files(self, split: str | None = None) -> list[Path | str]:
        """Paths of the Parquet shards of one split, or of all (in split order: train, valid, test, holdout).

        Local datasets give :class:`Path` objects, others URI strings (pandas and pyarrow read both).
        """
        names = list(self.splits) if split is None else [split]
        if self.is_local:
            return [self.path / rel for name in names for rel in self.splits[name].files]
        root = self.location
        return [str(root / rel) for name in names for rel in self.splits[name].files]

    def describe(self) -> str:
        """A few lines of plain text: the summary that ``fxcap dataset info`` prints."""
        lines = [
            f"dataset   {self.name}  ({self.path})",
            f"device    {self.device} ({self.device_kind}), {self.sample_rate} Hz, window {self.window} samples",
            "knobs     " + ", ".join(f"{k.name} [{k.range_text()}]" for k in self.knobs)
            + "".join(f"; {k.name} fixed" for k in self.all_knobs if k.name not in self.knob_names),
            f"sessions  {', '.join(self.sessions)}; takes used {self.takes_used}, skipped {self.takes_skipped}",
        ]
        if self.holdout:
            lines.append(f"holdout   {'; '.join(self.holdout)}")
        for name, split in self.splits.items():
            lines.append(
                f"{name:<9} {split.rows:>6} rows  {split.takes:>3} takes  {split.seconds:9.1f} s of audio per stream"
                f"  ({len(split.files)} shard{'s' if len(split.files) != 1 else ''})"
            )
        for key, stats in self.quality.items():
            lines.append(f"{key:<21} min {stats['min']:.4g}  median {stats['median']:.4g}  max {stats['max']:.4g}")
        lines.append(f"hash      {self.dataset_hash}")
        return "\n".join(lines)


def _conditioning(data: dict[str, Any]) -> list[KnobColumn]:
    knobs = [KnobColumn.from_dict(k) for k in data["knobs"]]
    names = data.get("conditioning_knobs")
    return [k for k in knobs if k.name in names] if names else knobs


def _split_order(name: str) -> tuple[int, str]:
    return (ALL_SPLITS.index(name), name) if name in ALL_SPLITS else (len(ALL_SPLITS), name)


def read_manifest(dataset_dir: str | Path | Location) -> dict[str, Any]:
    """Read and sanity-check ``dataset.json``; a clear :class:`DatasetError` when it is missing or unusable.

    ``dataset_dir`` is a local folder or a URI (see :mod:`fxcap.dataset.remote`).
    """
    root = locate(dataset_dir)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(f"{root} is not an fxcap dataset (no {MANIFEST_NAME}); build one with `fxcap build-dataset`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is corrupt ({exc}); rebuild the dataset with `fxcap build-dataset`") from None
    if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path} is not an fxcap dataset manifest")
    if data.get("dataset_version") != DATASET_VERSION:
        raise DatasetError(
            f"{path} has dataset version {data.get('dataset_version')}, this fxcap reads version {DATASET_VERSION}; "
            "rebuild the dataset with this fxcap"
        )
    for entry in data.get("files", []):
        if Path(entry["path"]).is_absolute() or ".." in Path(entry["path"]).parts:
            raise DatasetError(f"{path} lists a file outside the dataset ({entry['path']}); rebuild the dataset")
    return data


def load_dataset_info(dataset_dir: str | Path | Location) -> DatasetInfo:
    """Summary of a dataset folder (local path or URI): knob names, sample rate, default window, dataset hash, split sizes."""
    location = locate(dataset_dir)
    root: Path | str = location.local_path if location.is_local else str(location)
    data = read_manifest(location)
    try:
        splits = {
            name: SplitInfo(
                rows=int(s["rows"]), samples=int(s["samples"]), seconds=float(s["seconds"]), takes=int(s["takes"]),
                files=list(s["files"]),
            )
            for name, s in sorted(data["splits"].items(), key=lambda item: _split_order(item[0]))
        }
        return DatasetInfo(
            path=root,
            name=str(data["name"]),
            device=str(data["device"]["name"]),
            device_kind=str(data["device"].get("kind", "effect")),
            knobs=_conditioning(data),
            all_knobs=[KnobColumn.from_dict(k) for k in data["knobs"]],
            sample_rate=int(data["sample_rate"]),
            window=int(data["window"]),
            dataset_hash=str(data["dataset_hash"]),
            splits=splits,
            sessions=[s["name"] for s in data["sessions"]],
            holdout=list(data.get("holdout", [])),
            takes_used=sum(len(s["takes_used"]) for s in data["sessions"]),
            takes_skipped=sum(len(s["takes_skipped"]) for s in data["sessions"]),
            quality=dict(data.get("quality", {})),
            manifest=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{location / MANIFEST_NAME} is missing or has a bad field ({exc!r}); rebuild the dataset") from None


info = load_dataset_info
"""Alias: ``fxcap.dataset.info(dir)`` is :func:`load_dataset_info`."""
