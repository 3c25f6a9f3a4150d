"""Parallel shard writes: one process, worker processes and Ray tasks write the same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fxcap.dataset import build_dataset, validate
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import DatasetError


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    a = make_dummy_session(root / "a", knob_grid={"drive": [0.0, 10.0], "tone": [2.0, 8.0]}, seconds=3.0)
    b = make_dummy_session(root / "b", knob_grid={"drive": [5.0]}, seconds=3.0, backend="sim")
    return [a.root, b.root]


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_identical(a, b):
    assert a.dataset_hash == b.dataset_hash
    files_a, files_b = _files(a.path), _files(b.path)
    assert files_a.keys() == files_b.keys()
    assert all(files_a[k] == files_b[k] for k in files_a)


@pytest.fixture(scope="module")
def serial(two_sessions, tmp_path_factory):
    """Built in this process, with several shards and row groups per split."""
    from fxcap.dataset import BuildConfig, SplitConfig

    config = BuildConfig(split=SplitConfig(segment_seconds=0.25), shard_bytes=150_000, row_group_bytes=40_000)
    return build_dataset(two_sessions, tmp_path_factory.mktemp("serial") / "ds", config, workers=1), config


def test_two_worker_processes_write_the_same_bytes(two_sessions, serial, tmp_path):
    reference, config = serial
    assert len(reference.splits["train"].files) > 1
    messages = []
    parallel = build_dataset(two_sessions, tmp_path / "ds", config, workers=2, progress=messages.append)
    _assert_identical(reference, parallel)
    assert sorted(m.split(" ")[0] for m in messages if m.startswith("data/")) == sorted(
        f for s in reference.splits.values() for f in s.files)
    assert [p for p in validate(parallel.path) if p.severity == "error"] == []


def _rehash_take(session: Path, take_id: str) -> None:
    """Record the current bytes of ``take_id``'s output in ``session.json``."""
    from fxcap.capture.take_files import file_sha256

    manifest = json.loads((session / "session.json").read_text())
    for take in manifest["takes"]:
        if take["take_id"] == take_id:
            take["sha256"] = file_sha256(session / take["output_file"])
    (session / "session.json").write_text(json.dumps(manifest))


def test_a_failing_worker_fails_the_build_with_its_message(two_sessions, serial, tmp_path):
    _, config = serial
    broken = tmp_path / "broken"
    shutil.copytree(two_sessions[1], broken)
    output = broken / "takes" / "take-0001" / "output.wav"
    audio, rate = sf.read(output, dtype="float32")
    audio[len(audio) * 3 // 10] = np.nan  # inside the sweep region (trainable)
    sf.write(output, audio, rate, subtype="FLOAT")
    _rehash_take(broken, "take-0001")  # a take recorded with a NaN, not one edited afterwards (that the hash catches)
    with pytest.raises(DatasetError, match="NaN/Inf samples"):
        build_dataset([two_sessions[0], broken], tmp_path / "out", config, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # no half-written dataset, no temporary folder


@pytest.mark.slow
def test_ray_tasks_write_the_same_bytes(two_sessions, serial, tmp_path, ray_local):
    reference, config = serial
    _assert_identical(reference, build_dataset(two_sessions, tmp_path / "ds", config, ray="auto"))
    assert ray_local.is_initialized()  # a Ray instance started by the caller stays up
