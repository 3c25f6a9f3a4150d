"""The loader's local cache: one split's audio decoded once from Parquet into memory-mappable ``.npy`` files.

Random training windows then cost one contiguous read from a memory map, never a Parquet decode.
Layout (``<cache>`` is ``<dataset>/.cache`` unless a cache folder is given; the dataset hash keys it,
so a rebuilt dataset never reads a stale cache)::

    <cache>/<dataset hash[:16]>/<split>/
      audio.npy     float32 (total_samples, 2): column 0 input, column 1 target, rows back to back
      offsets.npy   int64 (rows + 1,): row r is audio[offsets[r]:offsets[r + 1]]
      knobs.npy     float32 (rows, knobs): normalized knob values, dataset knob order
      rows.json     per-row facts (session, take_id, segment_index, start_sample, split, raw knobs, ...)

A cache is built in a temporary folder and renamed into place (atomic: concurrent builders are safe,
the first rename wins); a folder present under the final name is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fxcap.dataset.manifest import DatasetInfo, load_dataset_info
from fxcap.dataset.schema import AUDIO_COLUMNS
from fxcap.errors import DatasetError

CACHE_FORMAT = 1
ROW_FACT_COLUMNS = ("session", "take_id", "take_index", "segment_index", "region", "region_kind", "start_sample",
                    "num_samples", "split", "time_split")


@dataclass
class SplitCache:
    """An opened cache of one split (arrays are read-only memory maps)."""

    directory: Path
    audio: np.ndarray
    offsets: np.ndarray
    knobs: np.ndarray
    rows: list[dict[str, Any]]

    @property
    def lengths(self) -> np.ndarray:
        """Samples per row (int64)."""
        return np.diff(self.offsets)


def _user_cache_base() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fxcap" / "datasets"


def cache_directory(info: DatasetInfo, cache_dir: str | Path | None = None) -> Path:
    """Folder of this dataset's cache: ``<cache_dir or dataset/.cache>/<hash[:16]>``.

    When no ``cache_dir`` is given and the dataset folder is not writable (e.g. a shared read-only
    copy), the user cache (``$XDG_CACHE_HOME/fxcap/datasets`` or ``~/.cache/fxcap/datasets``) is used.
    """
    key = info.dataset_hash[:16]
    if cache_dir is not None:
        return Path(cache_dir) / key
    local = info.path / ".cache"
    if (local / key).is_dir() or os.access(info.path, os.W_OK):
        return local / key
    return _user_cache_base() / key


def _check_shards(info: DatasetInfo, split: str) -> list[Path]:
    if split not in info.splits:
        raise DatasetError(f"dataset {info.path} has no split {split!r}; its splits are: {', '.join(info.splits)}")
    sizes = {f["path"]: f["bytes"] for f in info.manifest["files"]}
    paths = []
    for rel in info.splits[split].files:
        path = info.path / rel
        if not path.is_file():
            raise DatasetError(f"shard {rel} of {info.path} is missing; restore it or rebuild the dataset")
        if path.stat().st_size != sizes.get(rel):
            raise DatasetError(
                f"shard {rel} of {info.path} has {path.stat().st_size} bytes, the manifest says {sizes.get(rel)}: it changed "
                "or is truncated; run `fxcap dataset validate` and rebuild the dataset"
            )
        paths.append(path)
    return paths


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values float32, offsets int64)`` of a list<float32> column, zero-copy where possible."""
    array = column.combine_chunks()
    offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    values = array.values.to_numpy(zero_copy_only=False)
    return values, offsets


def _build(info: DatasetInfo, split: str, final: Path) -> None:
    shards = _check_shards(info, split)
    knob_cols = info.knob_columns
    raw_cols = [k.raw_column for k in info.knobs]
    facts: list[dict[str, Any]] = []
    try:
        tables = [pq.read_table(p, columns=list(ROW_FACT_COLUMNS) + knob_cols + raw_cols) for p in shards]
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"cannot read the {split} shards of {info.path} ({exc}); run `fxcap dataset validate`") from None
    for table in tables:
        facts += table.select(list(ROW_FACT_COLUMNS) + raw_cols).to_pylist()
    lengths = np.array([f["num_samples"] for f in facts], dtype=np.int64)
    offsets = np.zeros(len(facts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    knobs = np.stack([np.concatenate([t.column(c).to_numpy() for t in tables]).astype(np.float32) for c in knob_cols], axis=1) \
        if knob_cols else np.zeros((len(facts), 0), np.float32)

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".tmp", dir=final.parent))
    try:
        audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), 2))
        row = 0
        for path in shards:
            try:
                parquet = pq.ParquetFile(path)
                for group in range(parquet.num_row_groups):
                    table = parquet.read_row_group(group, columns=list(AUDIO_COLUMNS))
                    (x, xo), (y, yo) = (_flat(table.column(c)) for c in AUDIO_COLUMNS)
                    for r in range(table.num_rows):
                        n = lengths[row]
                        if xo[r + 1] - xo[r] != n or yo[r + 1] - yo[r] != n:
                            raise DatasetError(
                                f"{path.relative_to(info.path)} row {row}: input/target lengths {xo[r + 1] - xo[r]}/"
                                f"{yo[r + 1] - yo[r]} differ from num_samples {n}; run `fxcap dataset validate`"
                            )
                        audio[offsets[row]:offsets[row + 1], 0] = x[xo[r]:xo[r + 1]]
                        audio[offsets[row]:offsets[row + 1], 1] = y[yo[r]:yo[r + 1]]
                        row += 1
            except (pa.ArrowException, OSError) as exc:
                raise DatasetError(f"cannot read shard {path.relative_to(info.path)} ({exc}); run `fxcap dataset validate`") from None
        if row != len(facts):
            raise DatasetError(f"the {split} shards hold {row} audio rows but {len(facts)} fact rows; rebuild the dataset")
        audio.flush()
        del audio
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "knobs.npy", knobs)
        (tmp / "rows.json").write_text(json.dumps({"format": CACHE_FORMAT, "rows": facts}, sort_keys=True), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # a failure other than "someone else finished first"
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_split_cache(dataset_dir: str | Path | DatasetInfo, split: str, cache_dir: str | Path | None = None) -> SplitCache:
    """Open (building it first if needed) the memory-mapped cache of one split of a dataset."""
    info = dataset_dir if isinstance(dataset_dir, DatasetInfo) else load_dataset_info(dataset_dir)
    final = cache_directory(info, cache_dir) / split
    if not final.is_dir():
        try:
            _build(info, split, final)
        except PermissionError as exc:
            raise DatasetError(f"cannot write the dataset cache under {final.parent} ({exc}); pass cache_dir= a writable folder") from None
    else:
        _check_shards(info, split)
    try:
        meta = json.loads((final / "rows.json").read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"cache format {meta.get('format')}")
        cache = SplitCache(
            directory=final,
            audio=np.load(final / "audio.npy", mmap_mode="r"),
            offsets=np.load(final / "offsets.npy"),
            knobs=np.load(final / "knobs.npy"),
            rows=meta["rows"],
        )
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DatasetError(f"the dataset cache {final} is unusable ({exc}); delete it and it will be rebuilt") from None
    if len(cache.rows) != len(cache.offsets) - 1 or cache.audio.shape[0] != cache.offsets[-1]:
        raise DatasetError(f"the dataset cache {final} is inconsistent; delete it and it will be rebuilt")
    return cache
