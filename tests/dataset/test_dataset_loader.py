import pickle
import shutil

import numpy as np
import pytest
import torch

from fxcap.dataset import SequenceDataset, WindowDataset, load_dataset_info, make_dataloader
from fxcap.dataset import cache as cache_module
from fxcap.errors import DatasetError


def _batches(loader):
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_batches_have_the_documented_shapes_and_types(built):
    loader = make_dataloader(built, "train", window=1024, batch_size=4)
    x, y, knobs = next(iter(loader))
    assert x.shape == y.shape == (4, 1024) and knobs.shape == (4, 2)  # the two knobs the dummy grid sweeps
    assert x.dtype == y.dtype == knobs.dtype == torch.float32
    assert float(knobs.abs().max()) <= 1.0
    assert loader.dataset.knob_names == ["tone", "drive"]
    assert loader.dataset.window == 1024
    assert make_dataloader(built, "train").dataset.window == load_dataset_info(built).window == 2048


def test_random_windows_are_reproducible_and_change_every_epoch(built):
    a = make_dataloader(built, "train", window=512, batch_size=8, seed=1)
    b = make_dataloader(built, "train", window=512, batch_size=8, seed=1)
    first_a, first_b = _batches(a), _batches(b)
    assert all(torch.equal(p, q) for u, v in zip(first_a, first_b) for p, q in zip(u, v))
    second_a = _batches(a)
    assert not torch.equal(first_a[0][0], second_a[0][0])
    other = _batches(make_dataloader(built, "train", window=512, batch_size=8, seed=2))
    assert not torch.equal(first_a[0][0], other[0][0])
    sampler = a.sampler
    keys = [k for batch in sampler for k in batch]
    offsets = {o for _, o in keys}
    assert any(o % 512 for o in offsets)  # not on the grid
    assert all(0 <= o <= sampler.lengths[r] - 512 for r, o in keys)
    assert len(keys) == len(a.dataset) // 8 * 8  # drop_last while shuffling


def test_sequential_windows_cover_the_grid_once_without_overlap(built):
    loader = make_dataloader(built, "test", window=1000, batch_size=5, shuffle=False, sequential=True)
    dataset = loader.dataset
    keys = [k for batch in loader.sampler for k in batch]
    expected = [(r, k * 1000) for r, n in enumerate(dataset.lengths) for k in range(n // 1000)]
    assert keys == expected and len(keys) == len(dataset)
    total = sum(x.shape[0] for x, _, _ in loader)
    assert total == len(expected)  # last partial batch kept without shuffle
    x0, y0, k0 = dataset[0]
    xs, ys, ks = SequenceDataset(built, "test")[0]
    assert torch.equal(x0, xs[:1000]) and torch.equal(y0, ys[:1000]) and torch.equal(k0, ks)
    shuffled = make_dataloader(built, "test", window=1000, batch_size=5, shuffle=True, sequential=True, seed=4)
    shuffled_keys = [k for batch in shuffled.sampler for k in batch]
    assert len(shuffled_keys) == len(expected) // 5 * 5 == len(set(shuffled_keys))
    assert set(shuffled_keys) <= set(expected) and shuffled_keys != expected[: len(shuffled_keys)]


def test_window_dataset_indexing_forms(built):
    dataset = WindowDataset(built, "valid", window=256)
    row, offset = dataset.grid_key(3)
    by_index, by_key = dataset[3], dataset[(row, offset)]
    assert all(torch.equal(a, b) for a, b in zip(by_index, by_key))
    x, _, _ = dataset[[(row, offset), (0, 0)]]
    assert torch.equal(x[0], by_key[0])
    with pytest.raises(IndexError):
        dataset[(0, int(dataset.lengths[0]))]
    with pytest.raises(IndexError):
        dataset.grid_key(len(dataset))


def test_clear_errors_for_bad_requests(built):
    with pytest.raises(DatasetError, match="no split 'holdout'"):
        make_dataloader(built, "holdout")
    with pytest.raises(DatasetError, match="smaller window"):
        make_dataloader(built, "train", window=10**7)
    with pytest.raises(DatasetError, match="not an fxcap dataset"):
        make_dataloader(built / "data", "train")


def test_cache_is_built_once_keyed_by_hash_and_reused(built, tmp_path, monkeypatch):
    make_dataloader(built, "train", cache_dir=tmp_path / "c")
    info = load_dataset_info(built)
    folder = tmp_path / "c" / info.dataset_hash[:16] / "train"
    assert (folder / "audio.npy").is_file()
    stamp = (folder / "audio.npy").stat().st_mtime_ns
    assert not list((tmp_path / "c" / info.dataset_hash[:16]).glob(".*tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("cache rebuilt")

    monkeypatch.setattr(cache_module, "_build", fail)
    x, _, _ = next(iter(make_dataloader(built, "train", cache_dir=tmp_path / "c", window=64, batch_size=2)))
    assert (folder / "audio.npy").stat().st_mtime_ns == stamp and x.shape == (2, 64)
    audio = np.load(folder / "audio.npy", mmap_mode="r")
    assert isinstance(audio, np.memmap) and audio.shape[1] == 2


def test_read_only_dataset_uses_the_user_cache(built, tmp_path, monkeypatch):
    copy = tmp_path / "ds"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns(".cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache_module.os, "access", lambda path, mode: False)  # as if the folder were read-only
    info = load_dataset_info(copy)
    key = info.dataset_hash[:16]
    assert cache_module.cache_directory(info) == tmp_path / "xdg" / "fxcap" / "datasets" / key
    make_dataloader(copy, "valid", window=64)
    assert (tmp_path / "xdg" / "fxcap" / "datasets" / key / "valid" / "audio.npy").is_file()
    (copy / ".cache" / key).mkdir(parents=True)  # a cache shipped with the folder is used as it is
    assert cache_module.cache_directory(info) == copy / ".cache" / key


def test_changed_shard_is_refused(built, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns(".cache"))
    shard = load_dataset_info(copy).shard_files("train")[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated"):
        make_dataloader(copy, "train")


def test_datasets_pickle_without_their_memory_maps(built):
    dataset = SequenceDataset(built, "valid")
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._cache is None
    assert all(torch.equal(a, b) for a, b in zip(clone[1], dataset[1]))
    assert len(pickle.dumps(dataset)) < 100_000


def test_worker_processes_give_the_same_batches(built):
    serial = _batches(make_dataloader(built, "train", window=512, batch_size=8, seed=5))
    parallel = _batches(make_dataloader(built, "train", window=512, batch_size=8, seed=5, num_workers=2))
    assert len(serial) == len(parallel)
    assert all(torch.equal(p, q) for u, v in zip(serial, parallel) for p, q in zip(u, v))
