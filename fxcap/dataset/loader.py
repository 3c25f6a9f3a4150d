"""Training and evaluation loaders: ``(input, target, knobs)`` windows or whole segments as torch tensors.

Reads through the memory-mapped cache (:mod:`fxcap.dataset.cache`), built once per split from the
Parquet shards of a local dataset, or filled shard by shard, on demand and within a size bound, for a
dataset on another filesystem (``s3://...``, see :mod:`fxcap.dataset.remote`). Usable by any training loop::

    loader = make_dataloader("datasets/od-3", "train", window=2048, batch_size=16)
    for x, y, knobs in loader:       # (B, T), (B, T), (B, K) float32; knobs normalized to [-1, 1]
        ...

Window offsets:

- training (``shuffle=True``, ``sequential=False``): random windows, every valid window position of
  the split equally likely; an epoch has as many windows as the split has non-overlapping ones.
- ``sequential=True`` (or ``shuffle=False``): the non-overlapping grid ``0, T, 2T, ...`` of every
  segment (a tail shorter than ``T`` is left out); ``shuffle`` then only permutes their order.

Randomness comes from ``numpy.random.default_rng([seed, epoch])`` in the sampler (main process), so a
run is reproducible whatever ``num_workers`` is; the epoch advances each time the loader is iterated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fxcap.dataset.cache import ShardCache, SplitCache, open_cache
from fxcap.dataset.manifest import DatasetInfo, load_dataset_info
from fxcap.errors import DatasetError

WindowKey = tuple[int, int]
"""``(row, offset)``: a window starting ``offset`` samples into row ``row`` of the split."""


class _CachedSplit:
    """Shared base: lazily opened cache (memory maps are reopened in each worker, never pickled)."""

    def __init__(self, dataset_dir: str | Path, split: str, cache_dir: str | Path | None = None,
                 cache_max_bytes: int | str | None = None):
        self.info: DatasetInfo = load_dataset_info(dataset_dir)
        self.split = split
        self.cache_dir = cache_dir
        self.cache_max_bytes = cache_max_bytes
        self._cache: SplitCache | ShardCache | None = open_cache(self.info, split, cache_dir, cache_max_bytes)
        self.lengths = self._cache.lengths
        self.knobs = np.asarray(self._cache.knobs)
        self.rows = self._cache.rows

    @property
    def cache(self) -> SplitCache | ShardCache:
        """The opened cache (reopened after unpickling in a worker, without re-checking the shards)."""
        if self._cache is None:
            self._cache = open_cache(self.info, self.split, self.cache_dir, self.cache_max_bytes, check=False)
        return self._cache

    @property
    def knob_names(self) -> list[str]:
        return self.info.knob_names

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state


class WindowDataset(_CachedSplit, Dataset):
    """Fixed-length windows of one split.

    ``dataset[(row, offset)]`` is one window, ``dataset[i]`` the ``i``-th window of the
    non-overlapping grid, ``dataset[[keys...]]`` a whole batch at once (what :func:`make_dataloader`
    uses): ``(input (B, T), target (B, T), knobs (B, K))`` float32 tensors. Single items have no
    batch dimension.
    """

    def __init__(self, dataset_dir: str | Path, split: str, window: int | None = None, cache_dir: str | Path | None = None,
                 cache_max_bytes: int | str | None = None):
        super().__init__(dataset_dir, split, cache_dir, cache_max_bytes)
        self.window = int(window or self.info.window)
        if self.window < 1:
            raise DatasetError(f"window must be at least 1 sample, not {self.window}")
        self.grid_counts = self.lengths // self.window
        if int(self.grid_counts.sum()) == 0:
            raise DatasetError(
                f"no segment of the {split} split is {self.window} samples long (longest: {int(self.lengths.max(initial=0))}); "
                "use a smaller window or rebuild with longer --segment-seconds"
            )
        self._grid_starts = np.concatenate([[0], np.cumsum(self.grid_counts)])

    def __len__(self) -> int:
        """Number of non-overlapping windows (the grid)."""
        return int(self._grid_starts[-1])

    def grid_key(self, index: int) -> WindowKey:
        """``(row, offset)`` of the ``index``-th grid window."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range 0..{len(self) - 1}")
        row = int(np.searchsorted(self._grid_starts, index, side="right") - 1)
        return row, int(index - self._grid_starts[row]) * self.window

    def grid_keys(self) -> np.ndarray:
        """All grid windows as an ``(N, 2)`` int64 array of ``(row, offset)``, in row order."""
        rows = np.repeat(np.arange(len(self.grid_counts)), self.grid_counts)
        offsets = (np.arange(len(rows)) - self._grid_starts[rows]) * self.window
        return np.stack([rows, offsets], axis=1).astype(np.int64)

    def fetch(self, keys: Sequence[WindowKey] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch: ``(input (B, T), target (B, T), knobs (B, K))`` float32 for ``(row, offset)`` keys."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, 2)
        window = self.window
        for row, offset in keys:
            if not 0 <= offset <= self.lengths[row] - window:
                raise IndexError(f"window at offset {offset} does not fit row {row} ({self.lengths[row]} samples)")
        out = self.cache.windows(keys, window)
        return torch.from_numpy(out[0]), torch.from_numpy(out[1]), torch.from_numpy(self.knobs[keys[:, 0]].copy())

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(key, (list, np.ndarray)):
            return self.fetch(key)
        if isinstance(key, tuple):
            x, y, k = self.fetch([key])
        else:
            x, y, k = self.fetch([self.grid_key(int(key))])
        return x[0], y[0], k[0]


class SequenceDataset(_CachedSplit, Dataset):
    """Whole segments of one split, for evaluation and streaming: ``dataset[i]`` is
    ``(input (n,), target (n,), knobs (K,))`` float32 for row ``i``; :meth:`row` tells where it comes from."""

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"segment {index} out of range 0..{len(self) - 1}")
        segment = self.cache.segment(index)
        return torch.from_numpy(segment[0]), torch.from_numpy(segment[1]), torch.from_numpy(self.knobs[index].copy())

    def row(self, index: int) -> dict[str, Any]:
        """Facts of segment ``index``: session, take_id, segment_index, start_sample, num_samples, raw knobs..."""
        return dict(self.rows[index])


class WindowBatchSampler(Sampler):
    """Yields batches (lists of ``(row, offset)``) for a :class:`WindowDataset`.

    Args:
        dataset: the windows' dataset (its lengths, window and grid).
        batch_size: windows per batch.
        random_offsets: draw offsets at random (training) instead of the non-overlapping grid.
        shuffle: permute the grid windows each epoch (only without ``random_offsets``).
        seed: base seed; epoch ``e`` uses ``default_rng([seed, e])``.
        drop_last: leave out a last, incomplete batch.
        num_windows: windows per epoch with random offsets (default: the grid size).
        shard_groups: ``(first row of every shard, shards per group)``: order each shuffled epoch's windows
            by random groups of that many shards (windows shuffled within a group), so a cache that holds
            one group at a time fetches every shard once per epoch. The epoch's windows are the same.
    """

    def __init__(self, dataset: WindowDataset, batch_size: int, *, random_offsets: bool, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, num_windows: int | None = None,
                 shard_groups: tuple[Sequence[int], int] | None = None):
        if batch_size < 1:
            raise DatasetError(f"batch_size must be at least 1, not {batch_size}")
        self.lengths = dataset.lengths
        self.window = dataset.window
        self.grid = dataset.grid_keys()
        self.batch_size = batch_size
        self.random_offsets = random_offsets
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_windows = int(num_windows) if num_windows is not None else len(self.grid)
        positions = np.maximum(self.lengths - self.window + 1, 0).astype(np.float64)
        self.row_weights = positions / positions.sum()
        self.shard_groups = (np.asarray(shard_groups[0], dtype=np.int64), int(shard_groups[1])) if shard_groups else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration draws (it then advances by one per iteration)."""
        self.epoch = int(epoch)

    def _keys(self, rng: np.random.Generator) -> np.ndarray:
        if self.random_offsets:
            rows = rng.choice(len(self.lengths), size=self.num_windows, p=self.row_weights)
            offsets = rng.integers(0, self.lengths[rows] - self.window + 1)
            return np.stack([rows, offsets], axis=1)
        return self.grid[rng.permutation(len(self.grid))] if self.shuffle else self.grid

    def _grouped(self, keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        starts, per_group = self.shard_groups
        shard = np.searchsorted(starts, keys[:, 0], side="right") - 1
        rank = np.empty(len(starts), dtype=np.int64)
        rank[rng.permutation(len(starts))] = np.arange(len(starts))
        return keys[np.lexsort((rng.random(len(keys)), rank[shard] // per_group))]

    def __iter__(self) -> Iterator[list[WindowKey]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        keys = self._keys(rng)
        if self.shard_groups is not None and (self.random_offsets or self.shuffle):
            keys = self._grouped(keys, rng)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield [(int(r), int(o)) for r, o in batch]

    def __len__(self) -> int:
        total = self.num_windows if self.random_offsets else len(self.grid)
        return total // self.batch_size if self.drop_last else -(-total // self.batch_size)


def _shard_groups(cache: SplitCache | ShardCache) -> tuple[list[int], int] | None:
    """``(first row of every shard, shards per group)`` when a bounded cache cannot hold the whole split."""
    if not isinstance(cache, ShardCache):
        return None
    per_group = cache.working_set()
    return None if per_group is None else ([s.first_row for s in cache.shards], per_group)


def _pass_through(batch: Any) -> Any:
    return batch


def make_dataloader(
    dataset_dir: str | Path,
    split: str,
    window: int | None = None,
    batch_size: int = 16,
    shuffle: bool = True,
    sequential: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool | None = None,
    cache_dir: str | Path | None = None,
    num_windows: int | None = None,
    cache_max_bytes: int | str | None = None,
) -> DataLoader:
    """A DataLoader of ``(input (B, T), target (B, T), knobs (B, K))`` float32 batches of one split.

    Args:
        dataset_dir: a folder written by :func:`fxcap.dataset.build_dataset`: a local path or a URI
            (``s3://bucket/datasets/od3``, ``gs://...``, ``file://...``).
        split: ``"train"``, ``"valid"``, ``"test"`` or ``"holdout"``.
        window: ``T`` in samples; default the dataset's (2048 for OD-3-like, 8192 for LA-2A-like).
        batch_size: windows per batch.
        shuffle: random order (with ``sequential=False``: random offsets too).
        sequential: non-overlapping grid windows instead of random offsets.
        seed: base seed of the window draws (reproducible; the epoch advances per iteration).
        num_workers: DataLoader worker processes (0: load in the main process; the cache is fast).
        drop_last: leave out a last incomplete batch; default: when shuffling.
        cache_dir: where the memory-mapped cache lives (default ``<dataset>/.cache``; for a remote
            dataset ``$FXCAP_CACHE_DIR`` or ``~/.cache/fxcap/datasets``).
        num_windows: windows per epoch with random offsets (default: the number of grid windows).
        cache_max_bytes: bound of the cache (bytes, or ``"512M"``, ``"8G"``): shards are then cached one by
            one on demand and evicted least-recently-used first. Default: ``$FXCAP_CACHE_MAX_BYTES``,
            else unbounded whole-split caches for a local dataset and 8 GiB for a remote one. When the
            bound cannot hold the whole split, shuffled epochs visit the shards in random groups that fit
            it (windows shuffled within a group; see :class:`WindowBatchSampler`): the same windows as
            with room for the split, each shard fetched once per epoch, but batches mix fewer shards.

    ``loader.dataset`` is the :class:`WindowDataset` (knob names, window, dataset info);
    ``loader.batch_sampler``-like control is on ``loader.sampler`` (:class:`WindowBatchSampler`, with ``set_epoch``).
    """
    dataset = WindowDataset(dataset_dir, split, window=window, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes)
    sampler = WindowBatchSampler(
        dataset,
        batch_size,
        random_offsets=shuffle and not sequential,
        shuffle=shuffle,
        seed=seed,
        drop_last=shuffle if drop_last is None else drop_last,
        num_windows=num_windows,
        shard_groups=_shard_groups(dataset.cache),
    )
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=_pass_through,
        persistent_workers=num_workers > 0,
    )
