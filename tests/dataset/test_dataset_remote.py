"""Datasets on other filesystems: a local S3 server (moto, 127.0.0.1), memory:// and file:// URIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fxcap.dataset import BuildConfig, SequenceDataset, SplitConfig, build_dataset, load_dataset_info, make_dataloader, validate
from fxcap.dataset.cache import ShardCache, SplitCache, parse_bytes
from fxcap.dataset.remote import is_uri, locate
from fxcap.errors import DatasetError
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.train import TrainConfig, train

SHARD_BYTES = 120_000
"""Small shards (a few 0.25 s rows at 48 kHz each): several per split, so the cache works shard by shard."""


def _config(**kwargs) -> BuildConfig:
    return BuildConfig(split=SplitConfig(segment_seconds=0.25), **kwargs)


@pytest.fixture(scope="module")
def local_and_remote(s3_server, dummy_session, tmp_path_factory):
    """The same dataset built locally and into ``s3://fxcap-test/ds`` (several shards per split)."""
    config = _config(shard_bytes=SHARD_BYTES)
    local = build_dataset([dummy_session.root], tmp_path_factory.mktemp("local") / "ds", config)
    remote = build_dataset([dummy_session.root], f"{s3_server}/ds", config)
    return local, remote


def _batches(loader, limit=None):
    out = []
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        out.append(tuple(t.clone() for t in batch))
    return out


def test_s3_build_is_byte_identical_to_the_local_build(local_and_remote):
    local, remote = local_and_remote
    assert remote.path == "s3://fxcap-test/ds" and not remote.is_local and local.is_local
    assert remote.dataset_hash == local.dataset_hash
    assert len(remote.splits["train"].files) > 2
    remote_files = remote.location.files()
    local_files = {p.relative_to(local.path).as_posix(): p for p in local.path.rglob("*") if p.is_file() and ".cache" not in p.parts}
    assert set(remote_files) == set(local_files)  # no marker or temporary object left behind
    for rel, path in local_files.items():
        assert (remote.location / rel).read_bytes() == path.read_bytes(), rel
    assert all(is_uri(p) and p.startswith("s3://fxcap-test/ds/data/") for p in remote.shard_files("train"))


def test_s3_info_and_validate(local_and_remote, s3_server):
    local, remote = local_and_remote
    info = load_dataset_info(f"{s3_server}/ds")
    assert info.describe().replace(str(remote.path), "X") == local.describe().replace(str(local.path), "X")
    assert validate(f"{s3_server}/ds") == validate(local.path)
    with pytest.raises(DatasetError, match="not an fxcap dataset"):
        load_dataset_info(f"{s3_server}/nothing-here")


def test_s3_damage_is_found_by_validate_and_the_loader(local_and_remote, s3_server, dummy_session, tmp_path):
    local, _ = local_and_remote
    uri = f"{s3_server}/damaged"
    root = locate(uri)
    for rel in local.location.files():
        if not rel.startswith(".cache/"):
            (root / rel).write_bytes((local.location / rel).read_bytes())
    shard = local.splits["valid"].files[0]
    data = bytearray((root / shard).read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    (root / shard).write_bytes(bytes(data))
    problems = validate(uri)
    assert any(p.check == "files" and p.file == shard and "sha256" in p.message for p in problems)
    with pytest.raises(DatasetError, match="sha256"):
        SequenceDataset(uri, "valid", cache_dir=tmp_path)[0]
    (root / shard).write_bytes(bytes(data[:-100]))
    with pytest.raises(DatasetError, match="truncated"):
        make_dataloader(uri, "valid", cache_dir=tmp_path / "other")
    with pytest.raises(DatasetError, match="--force"):
        build_dataset([dummy_session.root], uri, _config(shard_bytes=SHARD_BYTES))


def test_s3_loader_fills_a_bounded_cache_shard_by_shard(local_and_remote, tmp_path):
    local, remote = local_and_remote
    shard_audio = max(ShardCache(remote, "train", tmp_path / "probe", 1 << 30).shards, key=lambda s: s.nbytes).nbytes
    bound = 2 * shard_audio + 256
    draws = dict(window=512, batch_size=4, seed=7, num_windows=60)
    loader = make_dataloader(remote.path, "train", cache_dir=tmp_path / "c", cache_max_bytes=bound, **draws)
    cache = loader.dataset.cache
    assert isinstance(cache, ShardCache) and cache.stats.fetched_shards == 0  # nothing fetched before a window needs it
    assert cache.working_set() == 2 < len(cache.shards)
    keys = [key for batch in loader.sampler for key in batch]
    loader.sampler.set_epoch(0)
    local_loader = make_dataloader(local.path, "train", **draws)
    assert sorted(keys) == sorted(key for batch in local_loader.sampler for key in batch)  # the same windows, grouped by shard
    got = []
    for batch in loader:
        got.append(batch)
        assert cache.cached_bytes() <= bound
    expected = local_loader.dataset.fetch(keys)
    assert all(torch.equal(torch.cat([b[i] for b in got]), expected[i]) for i in range(3))
    touched = {int(s) for s in cache._locate(np.array([k[0] for k in keys]))}
    assert cache.stats.fetched_shards == len(touched) > 2 and cache.stats.evicted_shards > 0  # each shard fetched once
    assert cache.stats.windows == len(keys)

    roomy = make_dataloader(remote.path, "train", cache_dir=tmp_path / "big", cache_max_bytes="64M", **{**draws, "num_windows": 400})
    assert roomy.dataset.cache.working_set() is None
    unbounded = _batches(make_dataloader(local.path, "train", **{**draws, "num_windows": 400}))
    assert all(torch.equal(p, q) for u, v in zip(_batches(roomy), unbounded) for p, q in zip(u, v))  # same batches, same order
    _batches(roomy)
    stats = roomy.dataset.cache.stats
    assert stats.fetched_shards == len(roomy.dataset.cache.shards) and stats.evicted_shards == 0  # fetched once, then reused
    with pytest.raises(DatasetError, match="smaller than shard"):
        make_dataloader(remote.path, "train", cache_dir=tmp_path / "tiny", cache_max_bytes=shard_audio // 2)


def test_remote_segments_equal_local_ones_and_workers_reopen_the_cache(local_and_remote, tmp_path):
    local, remote = local_and_remote
    a, b = SequenceDataset(local.path, "test"), SequenceDataset(remote.path, "test", cache_dir=tmp_path, cache_max_bytes="1G")
    assert len(a) == len(b) and a.rows == b.rows
    for i in range(len(a)):
        assert all(torch.equal(p, q) for p, q in zip(a[i], b[i]))
    serial = _batches(make_dataloader(remote.path, "valid", window=256, batch_size=2, cache_dir=tmp_path, cache_max_bytes="1G"))
    parallel = _batches(make_dataloader(remote.path, "valid", window=256, batch_size=2, cache_dir=tmp_path, cache_max_bytes="1G",
                                        num_workers=2))
    assert all(torch.equal(p, q) for u, v in zip(serial, parallel) for p, q in zip(u, v))


@pytest.mark.slow
def test_training_from_s3_equals_training_from_the_local_copy(local_and_remote, tmp_path):
    local, remote = local_and_remote
    tiny = TrainConfig(window=512, batch_size=4, steps_per_epoch=3, max_epochs=1, valid_windows=8, threads=1)
    model = ModelConfig(cond="concat", cell="gru", num_knobs=len(local.knob_names))
    train(local.path, model, tmp_path / "local", tiny)
    train(remote.path, model, tmp_path / "remote", tiny, cache_dir=tmp_path / "cache", cache_max_bytes="64M")
    config = json.loads((tmp_path / "remote" / "config.json").read_text())
    assert config["dataset"]["path"] == "s3://fxcap-test/ds" and config["dataset"]["hash"] == remote.dataset_hash
    assert (tmp_path / "local" / "last.safetensors").read_bytes() == (tmp_path / "remote" / "last.safetensors").read_bytes()

    bound = 600_000  # a few shards: train and valid shards take turns in the cache
    result = train(remote.path, model, tmp_path / "bounded", tiny, cache_dir=tmp_path / "small", cache_max_bytes=bound)
    assert np.isfinite(result.best_valid_loss)
    assert sum(p.stat().st_size for p in (tmp_path / "small").rglob("*.npy") if p.parent.name != "index") <= bound
    summary = evaluate_run(tmp_path / "bounded", cache_dir=tmp_path / "small", cache_max_bytes=bound)
    assert summary["dataset_hash"] == remote.dataset_hash and np.isfinite(summary["test"]["esr"])


def test_rebuilding_into_s3_replaces_the_old_files(s3_server, dummy_session):
    uri = f"{s3_server}/rebuilt"
    first = build_dataset([dummy_session.root], uri, _config(shard_bytes=SHARD_BYTES, write_wav=False))
    with pytest.raises(DatasetError, match="--force"):
        build_dataset([dummy_session.root], uri, _config(write_wav=False))
    second = build_dataset([dummy_session.root], uri, _config(write_wav=False), overwrite=True)
    assert second.dataset_hash != first.dataset_hash
    listed = {f["path"] for f in second.manifest["files"]} | {"dataset.json", "README.md"}
    assert set(locate(uri).files()) == listed  # the old, smaller shards are gone
    assert validate(uri) == [p for p in validate(uri) if p.severity == "warning"]

    unfinished = locate(f"{s3_server}/unfinished")
    (unfinished / ".fxcap-building").write_text("x")
    (unfinished / "data/train-00000-of-00009.parquet").write_bytes(b"partial")
    with pytest.raises(DatasetError, match="unfinished build"):
        build_dataset([dummy_session.root], str(unfinished), _config(write_wav=False))
    build_dataset([dummy_session.root], str(unfinished), _config(write_wav=False), overwrite=True)
    assert "data/train-00000-of-00009.parquet" not in unfinished.files() and ".fxcap-building" not in unfinished.files()

    foreign = locate(f"{s3_server}/foreign")
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an fxcap dataset"):
        build_dataset([dummy_session.root], str(foreign), _config(), overwrite=True)


def test_memory_and_file_uris(dummy_session, small_config, tmp_path):
    info = build_dataset([dummy_session.root], "memory://fxcap-tests/ds", small_config(write_wav=False), workers=2)
    assert info.path == "memory://fxcap-tests/ds"
    assert [p for p in validate("memory://fxcap-tests/ds") if p.severity == "error"] == []
    x, y, knobs = next(iter(make_dataloader("memory://fxcap-tests/ds", "train", window=256, batch_size=2, cache_dir=tmp_path)))
    assert x.shape == (2, 256) and knobs.shape == (2, 2)  # tone and drive vary; level is fixed

    local = build_dataset([dummy_session.root], f"file://{tmp_path}/viauri", small_config(write_wav=False))
    assert local.is_local and local.path == tmp_path / "viauri" and local.dataset_hash == info.dataset_hash
    assert isinstance(make_dataloader(f"file://{tmp_path}/viauri", "valid", window=256).dataset.cache, SplitCache)


def test_location_names_and_sizes():
    loc = locate("memory://bucket/datasets/od3")
    assert loc.name == "od3" and str(loc / "data/x.parquet") == "memory://bucket/datasets/od3/data/x.parquet"
    assert str(loc.parent) == "memory://bucket/datasets"
    assert not is_uri("C:\\data") and not is_uri("datasets/od3") and is_uri("gs://b/x")
    assert parse_bytes("512M") == 512 << 20 and parse_bytes("8G") == 8 << 30 and parse_bytes("1000") == 1000
    with pytest.raises(DatasetError, match="not a size"):
        parse_bytes("lots")
    with pytest.raises(DatasetError, match="no filesystem"):
        locate("nosuchscheme://bucket/x")
