"""The loader's local cache: a split's audio decoded from Parquet into memory-mappable ``.npy`` files.

Random training windows then cost one contiguous read from a memory map, never a Parquet decode.
Two kinds, chosen by :func:`open_cache`:

- :class:`SplitCache` (local datasets, no size bound): one split decoded at once into one file.
- :class:`ShardCache` (datasets on another filesystem, or any dataset with a size bound): one file per
  Parquet shard, fetched and decoded on demand the first time a window needs it (remote shards are
  downloaded, their sha256 checked against the manifest), and evicted least-recently-used first when
  every shard file under the cache folder together would exceed ``max_bytes``.

Layout (``<cache>`` is ``<dataset>/.cache`` for a local dataset and the user cache
``$FXCAP_CACHE_DIR`` / ``$XDG_CACHE_HOME/fxcap/datasets`` for a remote one, unless a cache folder is
given; the dataset hash keys it, so a rebuilt dataset never reads a stale cache)::

    <cache>/<dataset hash[:16]>/<split>/
      audio.npy     float32 (total_samples, 2): column 0 input, column 1 target, rows back to back
      offsets.npy   int64 (rows + 1,): row r is audio[offsets[r]:offsets[r + 1]]
      knobs.npy     float32 (rows, knobs): normalized knob values, dataset knob order
      rows.json     per-row facts (session, take_id, segment_index, start_sample, split, raw knobs, ...)
    <cache>/<dataset hash[:16]>/shards/<split>/
      offsets.npy, knobs.npy, rows.json   the split's index (no audio), as above, plus shard row ranges
      <shard name>.npy                     float32 (shard samples, 2): one shard's audio, present on demand

Everything is built in a temporary file or folder and renamed into place (atomic: concurrent builders,
e.g. DataLoader workers, are safe; the first rename wins); a file present under its final name is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fxcap.dataset.manifest import DatasetInfo, file_sha256, load_dataset_info
from fxcap.dataset.remote import Location
from fxcap.dataset.schema import AUDIO_COLUMNS
from fxcap.errors import DatasetError
from fxcap.io import make_temp_dir
from fxcap.locking import remove_stale

CACHE_FORMAT = 1
ROW_FACT_COLUMNS = ("session", "take_id", "take_index", "segment_index", "region", "region_kind", "start_sample",
                    "num_samples", "split", "time_split")
DEFAULT_MAX_BYTES = 8 << 30
"""Default bound of a :class:`ShardCache` folder (bytes of decoded audio); ``$FXCAP_CACHE_MAX_BYTES`` overrides it."""
TOUCH_NS = 500_000_000
"""A mapped shard file's modification time (its LRU age for other processes) is refreshed at most this often (ns)."""


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

    def windows(self, keys: np.ndarray, window: int) -> np.ndarray:
        """``(2, B, window)`` float32: input and target of the windows at ``(row, offset)`` keys (checked by the caller)."""
        out = np.empty((2, len(keys), window), dtype=np.float32)
        for b, (row, offset) in enumerate(keys):
            start = self.offsets[row] + offset
            out[:, b, :] = self.audio[start:start + window].T
        return out

    def segment(self, row: int) -> np.ndarray:
        """``(2, n)`` float32: input and target of one whole row."""
        return np.array(self.audio[self.offsets[row]:self.offsets[row + 1]].T)


def _user_cache_base() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fxcap" / "datasets"


def cache_directory(info: DatasetInfo, cache_dir: str | Path | None = None) -> Path:
    """Folder of this dataset's cache: ``<cache_dir or dataset/.cache>/<hash[:16]>``.

    When no ``cache_dir`` is given and the dataset folder is not writable (e.g. a shared read-only
    copy), the user cache (``$XDG_CACHE_HOME/fxcap/datasets`` or ``~/.cache/fxcap/datasets``) is used;
    for a dataset on another filesystem (``s3://`` ...), ``$FXCAP_CACHE_DIR`` or that user cache.
    """
    key = info.dataset_hash[:16]
    if cache_dir is not None:
        return Path(cache_dir) / key
    if not info.is_local:
        return Path(os.environ.get("FXCAP_CACHE_DIR") or _user_cache_base()) / key
    local = Path(info.path) / ".cache"
    if (local / key).is_dir() or os.access(info.path, os.W_OK):
        return local / key
    return _user_cache_base() / key


def _check_shards(info: DatasetInfo, split: str, *, verify: bool = False) -> list[Location]:
    """The split's shard locations, each checked to exist with the size the manifest lists; with ``verify``
    a local shard's sha256 is checked too (what the cache is built from: once per dataset and split)."""
    if split not in info.splits:
        raise DatasetError(f"dataset {info.path} has no split {split!r}; its splits are: {', '.join(info.splits)}")
    entries = {f["path"]: f for f in info.manifest["files"]}
    root = info.location
    shards = []
    for rel in info.splits[split].files:
        shard = root / rel
        size = shard.size()
        expected = entries.get(rel, {})
        if size is None:
            raise DatasetError(f"shard {rel} of {info.path} is missing; restore it or rebuild the dataset")
        if size != expected.get("bytes"):
            raise DatasetError(
                f"shard {rel} of {info.path} has {size} bytes, the manifest says {expected.get('bytes')}: it changed "
                "or is truncated; run `fxcap dataset validate` and rebuild the dataset"
            )
        if verify and shard.is_local:
            verify_sha256(shard.local_path, expected.get("sha256"), f"shard {rel} of {info.path}")
        shards.append(shard)
    return shards


def verify_sha256(path: Path, expected: str | None, label: str) -> None:
    """Refuse a file whose sha256 differs from ``expected`` (the manifest's; ``None``: nothing to check)."""
    if expected and file_sha256(path) != expected:
        raise DatasetError(f"{label} does not match its sha256 in dataset.json (its bytes changed after the build); "
                           "restore it or rebuild the dataset, and run `fxcap dataset validate`")


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values float32, offsets int64)`` of a list<float32> column, zero-copy where possible."""
    array = column.combine_chunks()
    offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    values = array.values.to_numpy(zero_copy_only=False)
    return values, offsets


def _parquet(shard: Location | Path) -> pq.ParquetFile:
    """Open a shard: a local path directly, a remote one through a random-access reader."""
    if isinstance(shard, Path):
        return pq.ParquetFile(shard)
    return pq.ParquetFile(shard.local_path if shard.is_local else shard.open_input())


def _read_index(info: DatasetInfo, split: str, shards: Sequence[Location]) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, list[int]]:
    """``(facts, offsets, knobs, rows per shard)`` of a split from its shards' scalar columns only (no audio)."""
    knob_cols = info.knob_columns
    raw_cols = [k.raw_column for k in info.knobs]
    facts: list[dict[str, Any]] = []
    knob_parts: list[np.ndarray] = []
    counts: list[int] = []
    for shard in shards:
        try:
            parquet = _parquet(shard)
            try:
                table = parquet.read(columns=list(ROW_FACT_COLUMNS) + knob_cols + raw_cols)
            finally:
                parquet.close()
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"cannot read the {split} shards of {info.path} ({exc}); run `fxcap dataset validate`") from None
        facts += table.select(list(ROW_FACT_COLUMNS) + raw_cols).to_pylist()
        counts.append(table.num_rows)
        knob_parts.append(np.stack([table.column(c).to_numpy().astype(np.float32) for c in knob_cols], axis=1)
                          if knob_cols else np.zeros((table.num_rows, 0), np.float32))
    lengths = np.array([f["num_samples"] for f in facts], dtype=np.int64)
    offsets = np.zeros(len(facts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    knobs = np.concatenate(knob_parts) if knob_parts else np.zeros((0, len(knob_cols)), np.float32)
    return facts, offsets, knobs, counts


def _fill_audio(parquet: pq.ParquetFile, audio: np.ndarray, offsets: np.ndarray, first_row: int, label: str) -> int:
    """Decode a shard's rows into ``audio`` (rows ``first_row``.. at ``offsets``, relative to ``audio``); returns rows read."""
    row = first_row
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=list(AUDIO_COLUMNS))
        (x, xo), (y, yo) = (_flat(table.column(c)) for c in AUDIO_COLUMNS)
        for r in range(table.num_rows):
            if row + 1 >= len(offsets):
                raise DatasetError(f"{label} holds more rows than its index; run `fxcap dataset validate`")
            a, b = offsets[row] - offsets[first_row], offsets[row + 1] - offsets[first_row]
            n = b - a
            if xo[r + 1] - xo[r] != n or yo[r + 1] - yo[r] != n:
                raise DatasetError(
                    f"{label} row {row - first_row}: input/target lengths {xo[r + 1] - xo[r]}/"
                    f"{yo[r + 1] - yo[r]} differ from num_samples {n}; run `fxcap dataset validate`"
                )
            audio[a:b, 0] = x[xo[r]:xo[r + 1]]
            audio[a:b, 1] = y[yo[r]:yo[r + 1]]
            row += 1
    return row - first_row


def _rename_into_place(tmp: Path, final: Path) -> None:
    """Atomic publish of a finished file or folder; if another process got there first, keep theirs."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():  # a failure other than "someone else finished first"
            raise
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _write_index(folder: Path, facts: list[dict[str, Any]], offsets: np.ndarray, knobs: np.ndarray, extra: dict[str, Any]) -> None:
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "knobs.npy", knobs)
    (folder / "rows.json").write_text(json.dumps({"format": CACHE_FORMAT, "rows": facts, **extra}, sort_keys=True), encoding="utf-8")


def _build(info: DatasetInfo, split: str, final: Path) -> None:
    shards = _check_shards(info, split, verify=True)
    facts, offsets, knobs, _ = _read_index(info, split, shards)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent)  # what killed builders left
    tmp = make_temp_dir(final.parent, split)
    try:
        audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), 2))
        row = 0
        for shard in shards:
            label = shard.name if not shard.is_local else str(shard.local_path.relative_to(info.path))
            try:
                parquet = _parquet(shard)
                try:
                    row += _fill_audio(parquet, audio[offsets[row]:], offsets, row, label)
                finally:
                    parquet.close()
            except (pa.ArrowException, OSError) as exc:
                raise DatasetError(f"cannot read shard {label} ({exc}); run `fxcap dataset validate`") from None
        if row != len(facts):
            raise DatasetError(f"the {split} shards hold {row} audio rows but {len(facts)} fact rows; rebuild the dataset")
        audio.flush()
        del audio
        _write_index(tmp, facts, offsets, knobs, {})
        _rename_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_split_cache(dataset_dir: str | Path | DatasetInfo, split: str, cache_dir: str | Path | None = None) -> SplitCache:
    """Open (building it first if needed) the memory-mapped cache of one whole split of a dataset."""
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


# -- shard by shard, bounded ----------------------------------------------------------------------------------


@dataclass
class CacheStats:
    """What a :class:`ShardCache` did in this process: windows served, shards fetched and evicted (bytes)."""

    windows: int = 0
    hits: int = 0
    fetched_shards: int = 0
    fetched_bytes: int = 0
    """Parquet bytes read from the dataset (downloaded for a remote one)."""
    decoded_bytes: int = 0
    """Bytes of ``.npy`` audio written into the cache."""
    evicted_shards: int = 0
    evicted_bytes: int = 0
    fetch_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_max_bytes() -> int:
    """``$FXCAP_CACHE_MAX_BYTES`` (plain bytes, or with a K/M/G suffix) or :data:`DEFAULT_MAX_BYTES`."""
    text = os.environ.get("FXCAP_CACHE_MAX_BYTES", "").strip()
    return parse_bytes(text) if text else DEFAULT_MAX_BYTES


def parse_bytes(text: str | int) -> int:
    """``"512M"`` -> 536870912; plain integers are bytes; K, M, G, T suffixes are powers of 1024."""
    if isinstance(text, int):
        return text
    value = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    scale = 1
    if value and value[-1] in "KMGT":
        scale = 1024 ** ("KMGT".index(value[-1]) + 1)
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(f"cache size {text!r} is not a size; write bytes or e.g. 512M, 8G") from None
    if number <= 0:
        raise DatasetError(f"cache size must be positive, not {text!r}")
    return int(number * scale)


@dataclass
class _Shard:
    location: Location
    file: Path
    first_row: int
    stop_row: int
    nbytes: int
    size: int
    sha256: str | None


class ShardCache:
    """One split cached shard by shard, on demand, within ``max_bytes`` (see the module docstring).

    Least recently used means: by this process's own record of its uses, and for other processes
    (DataLoader workers, other runs sharing the cache folder) by the shard files' modification times,
    which uses refresh at most every :data:`TOUCH_NS`.

    ``lengths``, ``knobs`` and ``rows`` come from the split's index (built from the shards' scalar
    columns); audio is fetched per shard when :meth:`windows` or :meth:`segment` first needs it.
    ``stats`` counts what this process did. The bound covers every shard file under the cache
    folder (all datasets sharing it); one shard must fit in it.
    """

    def __init__(self, info: DatasetInfo, split: str, cache_dir: str | Path | None = None, max_bytes: int | None = None,
                 *, check: bool = True):
        self.info = info
        self.split = split
        self.max_bytes = int(max_bytes) if max_bytes is not None else default_max_bytes()
        root = cache_directory(info, cache_dir)
        self.scope = root.parent
        self.folder = root / "shards" / split
        self.stats = CacheStats()
        shards = _check_shards(info, split) if check else [info.location / rel for rel in self._split_files()]
        self._open_index(shards)
        entries = {f["path"]: f for f in info.manifest["files"]}
        self.shards: list[_Shard] = []
        for i, (rel, shard) in enumerate(zip(self._split_files(), shards)):
            first, stop = self.shard_rows[i], self.shard_rows[i + 1]
            nbytes = int(self.offsets[stop] - self.offsets[first]) * 8
            self.shards.append(_Shard(shard, self.folder / f"{Path(rel).stem}.npy", int(first), int(stop), nbytes,
                                      int(entries[rel]["bytes"]), entries[rel].get("sha256")))
            if nbytes + 128 > self.max_bytes:
                raise DatasetError(
                    f"the cache bound ({self.max_bytes} bytes) is smaller than shard {rel} ({nbytes} bytes of audio); raise "
                    "cache_max_bytes / $FXCAP_CACHE_MAX_BYTES or rebuild the dataset with smaller shards"
                )
        self._shard_starts = np.asarray(self.shard_rows[:-1], dtype=np.int64)
        self._maps: dict[int, np.ndarray] = {}
        self._touched: dict[int, int] = {}
        self._last_use: dict[Path, int] = {}
        """Last use (ns) of each shard file by this process: exact, where file times are refreshed sparingly."""

    def _split_files(self) -> list[str]:
        if self.split not in self.info.splits:
            raise DatasetError(f"dataset {self.info.path} has no split {self.split!r}; its splits are: {', '.join(self.info.splits)}")
        return list(self.info.splits[self.split].files)

    # -- index ------------------------------------------------------------------------------------------
    def _open_index(self, shards: list[Location]) -> None:
        final = self.folder / "index"
        if not (final / "rows.json").is_file():
            if any(shard.is_local for shard in shards):  # remote shards are checked when downloaded
                _check_shards(self.info, self.split, verify=True)
            facts, offsets, knobs, counts = _read_index(self.info, self.split, shards)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                remove_stale(self.folder)
                tmp = make_temp_dir(self.folder, "index")
            except PermissionError as exc:
                raise DatasetError(f"cannot write the dataset cache under {self.folder} ({exc}); pass cache_dir= a writable folder") from None
            try:
                _write_index(tmp, facts, offsets, knobs, {"shard_rows": np.concatenate([[0], np.cumsum(counts)]).tolist()})
                _rename_into_place(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        try:
            meta = json.loads((final / "rows.json").read_text(encoding="utf-8"))
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"cache format {meta.get('format')}")
            self.rows: list[dict[str, Any]] = meta["rows"]
            self.shard_rows: list[int] = [int(v) for v in meta["shard_rows"]]
            self.offsets = np.load(final / "offsets.npy")
            self.knobs = np.load(final / "knobs.npy")
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise DatasetError(f"the dataset cache {final} is unusable ({exc}); delete it and it will be rebuilt") from None
        if len(self.rows) != len(self.offsets) - 1 or len(self.shard_rows) != len(shards) + 1 or self.shard_rows[-1] != len(self.rows):
            raise DatasetError(f"the dataset cache {final} is inconsistent; delete it and it will be rebuilt")

    @property
    def lengths(self) -> np.ndarray:
        """Samples per row (int64)."""
        return np.diff(self.offsets)

    def working_set(self) -> int | None:
        """How many of this split's shards the bound holds at once; ``None`` when it holds them all."""
        fit = max(1, self.max_bytes // max(s.nbytes + 128 for s in self.shards))
        return None if fit >= len(self.shards) else int(fit)

    # -- audio ------------------------------------------------------------------------------------------
    def _audio(self, index: int) -> np.ndarray:
        """The memory map of shard ``index`` (fetched first if no process has it cached)."""
        shard = self.shards[index]
        now = time.time_ns()
        self._last_use[shard.file] = now
        audio = self._maps.get(index)
        if audio is not None:
            if now - self._touched.get(index, 0) < TOUCH_NS:
                self.stats.hits += 1
                return audio
            try:
                os.utime(shard.file)
                self._touched[index] = now
                self.stats.hits += 1
                return audio
            except FileNotFoundError:  # evicted by another process sharing the cache: fetch it again
                del self._maps[index]
        if not shard.file.exists():
            self._fetch(shard)
            self._evict(keep=shard.file)
        else:
            self.stats.hits += 1
            _touch(shard.file)
        try:
            audio = np.load(shard.file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"the cached shard {shard.file} is unusable ({exc}); delete it and it will be fetched again") from None
        if audio.shape != (shard.nbytes // 8, 2):
            raise DatasetError(f"the cached shard {shard.file} is inconsistent; delete it and it will be fetched again")
        self._maps[index] = audio
        self._touched[index] = time.time_ns()
        return audio

    def _fetch(self, shard: _Shard) -> None:
        started = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(self.folder, shard.file.stem)
        label = shard.location.name
        try:
            source: Path | Location = shard.location
            if shard.location.is_local:
                verify_sha256(shard.location.local_path, shard.sha256, f"shard {label} of {self.info.path}")
            else:  # download once (sha256 checked) rather than many range reads
                source = tmp / "shard.parquet"
                digest = shard.location.download(source)
                if shard.sha256 and digest != shard.sha256:
                    raise DatasetError(f"shard {label} of {self.info.path} does not match its sha256 in dataset.json; "
                                       "run `fxcap dataset validate` and rebuild the dataset")
            audio = np.lib.format.open_memmap(tmp / "audio.npy", mode="w+", dtype=np.float32, shape=(shard.nbytes // 8, 2))
            try:
                parquet = _parquet(source)
                try:
                    rows = _fill_audio(parquet, audio, self.offsets, shard.first_row, label)
                finally:
                    parquet.close()
            except (pa.ArrowException, OSError) as exc:
                raise DatasetError(f"cannot read shard {label} ({exc}); run `fxcap dataset validate`") from None
            if rows != shard.stop_row - shard.first_row:
                raise DatasetError(f"shard {label} holds {rows} rows, the cache index {shard.stop_row - shard.first_row}; "
                                   "delete the cache and run `fxcap dataset validate`")
            audio.flush()
            del audio
            _rename_into_place(tmp / "audio.npy", shard.file)
        except PermissionError as exc:
            raise DatasetError(f"cannot write the dataset cache under {self.folder} ({exc}); pass cache_dir= a writable folder") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.stats.fetched_shards += 1
        self.stats.fetched_bytes += shard.size
        self.stats.decoded_bytes += shard.nbytes
        self.stats.fetch_seconds += time.perf_counter() - started

    def _evict(self, keep: Path) -> None:
        """Delete least-recently-used shard files under the cache folder until they fit ``max_bytes``."""
        files = []
        for path in self.scope.glob("*/shards/*/*.npy"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((max(stat.st_mtime_ns, self._last_use.get(path, 0)), stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            self.stats.evicted_shards += 1
            self.stats.evicted_bytes += size
        for index in [i for i in self._maps if not self.shards[i].file.exists()]:
            del self._maps[index]

    def cached_bytes(self) -> int:
        """Bytes of shard files under the cache folder now (what the bound limits)."""
        return sum(p.stat().st_size for p in self.scope.glob("*/shards/*/*.npy") if p.exists())

    def _locate(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._shard_starts, rows, side="right") - 1

    def windows(self, keys: np.ndarray, window: int) -> np.ndarray:
        """``(2, B, window)`` float32 of ``(row, offset)`` keys; shards are visited one at a time."""
        out = np.empty((2, len(keys), window), dtype=np.float32)
        shards = self._locate(keys[:, 0])
        needed = np.unique(shards)
        # mapped shards first: fetching a missing one may evict a cached one this batch still needs
        for index in sorted(needed, key=lambda i: i not in self._maps):
            audio = self._audio(int(index))
            base = self.offsets[self.shards[index].first_row]
            for b in np.flatnonzero(shards == index):
                start = self.offsets[keys[b, 0]] - base + keys[b, 1]
                out[:, b, :] = audio[start:start + window].T
        self.stats.windows += len(keys)
        return out

    def segment(self, row: int) -> np.ndarray:
        """``(2, n)`` float32: input and target of one whole row."""
        index = int(self._locate(np.array([row]))[0])
        audio = self._audio(index)
        base = self.offsets[self.shards[index].first_row]
        return np.array(audio[self.offsets[row] - base:self.offsets[row + 1] - base].T)


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def open_cache(info: DatasetInfo, split: str, cache_dir: str | Path | None = None, max_bytes: int | str | None = None,
               *, check: bool = True) -> SplitCache | ShardCache:
    """The loader's cache of one split: a :class:`SplitCache` for a local dataset without a bound,
    otherwise a :class:`ShardCache` bounded by ``max_bytes`` (default ``$FXCAP_CACHE_MAX_BYTES`` or 8 GiB)."""
    if max_bytes is None and os.environ.get("FXCAP_CACHE_MAX_BYTES"):
        max_bytes = default_max_bytes()
    if info.is_local and max_bytes is None:
        return open_split_cache(info, split, cache_dir)
    return ShardCache(info, split, cache_dir, None if max_bytes is None else parse_bytes(max_bytes), check=check)
