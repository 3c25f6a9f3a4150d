"""Fault matrix, datasets: tampered shards, an existing --out, a build killed midway, incomplete sessions,
a truncated take, split shares, the mode of written files. See docs/reliability.md."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from fxcap.dataset import load_dataset_info
from fxcap.dataset.build_tasks import AudioReader
from fxcap.errors import FxcapError
from fxcap.io import atomic_write_text, make_temp_dir
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.train import TrainConfig, train
from tests.faults.conftest import fxcap_process, hashes, tamper

BUILD = ["--segment-seconds", "0.25", "--no-wav"]


def test_a_shard_changed_in_place_is_refused_by_training_and_evaluation(workspace, fxcap_main):
    """Bytes changed, size unchanged: the manifest's sha256 is checked when the cache is built."""
    dataset = workspace / "datasets" / "od3"
    run = workspace / "run"
    train(dataset, ModelConfig(cond="concat", num_knobs=1), run,
          TrainConfig(window=256, batch_size=2, steps_per_epoch=2, max_epochs=1, valid_windows=4))
    before = hashes(run)
    tamper(dataset / "data" / "test-00000-of-00001.parquet")
    result = fxcap_main("evaluate", "--model", run, cwd=workspace)
    result.one_line_error("shard data/test-00000-of-00001.parquet", "does not match its sha256", "rebuild the dataset")
    assert hashes(run) == before and not (run / "evaluation.json").exists()

    shutil.rmtree(dataset / ".cache")  # the train split is read afresh: refused too
    tamper(dataset / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(FxcapError, match="train-00000-of-00001.parquet .* does not match its sha256"):
        train(dataset, ModelConfig(cond="concat", num_knobs=1), workspace / "run2", TrainConfig(window=256, batch_size=2))
    assert not (workspace / "run2").exists()


def test_a_second_build_into_an_existing_dataset_is_refused_and_the_first_is_intact(workspace, fault_session, fxcap_main):
    dataset = workspace / "datasets" / "od3"
    before = hashes(dataset)
    result = fxcap_main("build-dataset", fault_session, "--out", dataset, *BUILD, cwd=workspace)
    result.one_line_error("already holds a dataset", "--force")
    assert hashes(dataset) == before and not list(dataset.parent.glob(".od3.*"))


def test_a_build_killed_midway_keeps_the_old_dataset_and_the_next_build_cleans_up(workspace, fault_session, fxcap_main, caplog):
    dataset = workspace / "datasets" / "od3"
    before = hashes(dataset)
    prelude = (
        "import os, signal\nimport fxcap.dataset.build as b\nwrite, calls = b.write_shard, []\n"
        "def _write_shard(task, root):\n"
        "    calls.append(task.rel)\n"
        "    if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)  # the first shard is written\n"
        "    return write(task, root)\n"
        "b.write_shard = _write_shard\n"
    )
    args = ["build-dataset", str(fault_session), "--out", "datasets/od3", "--force", *BUILD]
    killed = fxcap_process(args, workspace, prelude)
    assert killed.code == -9, killed.err
    assert hashes(dataset) == before  # the dataset being replaced is untouched
    leftovers = sorted(p.name for p in dataset.parent.glob(".od3.*"))
    assert leftovers[0].startswith(".od3.building-") and leftovers[1] == ".od3.lock"

    result = fxcap_main(*args, cwd=workspace)
    assert result.code == 0, result.err
    assert not list(dataset.parent.glob(".od3.*"))  # the stale build folder and lock are gone
    assert "took the lock over" in caplog.text and "leftover" in caplog.text
    assert load_dataset_info(dataset).dataset_hash == json.loads(
        (workspace / "datasets" / "od3" / "dataset.json").read_text())["dataset_hash"]
    assert hashes(dataset) == before  # the same sessions and options: the same bytes


def _incomplete(session_dir, planned: int = 9) -> None:
    manifest = json.loads((session_dir / "session.json").read_text())
    knobs = manifest["takes"][0]["knobs"]
    manifest["plan"]["takes"] = [{"index": i, "knobs": knobs, "is_reference": False} for i in range(planned)]
    manifest["status"] = "running"  # stopped after its 2 takes
    (session_dir / "session.json").write_text(json.dumps(manifest))


def test_a_session_stopped_after_2_of_9_takes_is_refused_unless_allowed(tmp_path, fault_session, fxcap_main, caplog):
    session = tmp_path / "sessions" / "s"
    shutil.copytree(fault_session, session)
    _incomplete(session)
    before = hashes(session)
    result = fxcap_main("build-dataset", session, "--out", tmp_path / "ds", *BUILD, cwd=tmp_path)
    result.one_line_error("session s is incomplete", "7 of its 9 planned takes were never recorded",
                          "take-0002", "take-0008", f"fxcap record --resume --out {session}", "--allow-incomplete")
    assert not (tmp_path / "ds").exists()

    result = fxcap_main("build-dataset", session, "--out", tmp_path / "ds", "--allow-incomplete", *BUILD, cwd=tmp_path)
    assert result.code == 0, result.err
    assert "7 of its 9 planned takes were never recorded" in caplog.text
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert manifest["sessions"][0]["takes_missing"] == [f"take-{i:04d}" for i in range(2, 9)]
    assert hashes(session) == before


def test_a_truncated_take_is_a_one_line_error_naming_it(tmp_path, fault_session, fxcap_main):
    session = tmp_path / "s"
    shutil.copytree(fault_session, session)
    wav = session / "takes" / "take-0002" / "output.wav"
    with open(wav, "r+b") as handle:
        handle.truncate(wav.stat().st_size // 2)
    result = fxcap_main("build-dataset", session, "--out", tmp_path / "ds", *BUILD, cwd=tmp_path)
    line = result.one_line_error("take-0002")  # the take's hash, the session's check or the shard writer's reader
    assert any(reason in line for reason in ("does not match the sha256", "the session is corrupt", "the file is truncated or damaged"))
    assert not (tmp_path / "ds").exists()
    # the shard writer's reader (it may run before the session's check, in another worker)
    with pytest.raises(FxcapError, match=r"cannot read samples 60000\.\.61000 of .*take-0002/output.wav: .*truncated") as error:
        AudioReader(44100).read(str(wav), 60000, 61000)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("split", ["90/20/30", "8/1/1", "0.5/0.2/0.2"])
def test_split_shares_that_do_not_sum_to_100_are_refused_not_rescaled(tmp_path, fault_session, fxcap_main, split):
    result = fxcap_main("build-dataset", fault_session, "--out", tmp_path / "ds", "--split", split, *BUILD, cwd=tmp_path)
    result.one_line_error(f"--split {split} sums to", "sum to 100")
    assert not (tmp_path / "ds").exists()


def test_files_written_atomically_honour_the_umask(tmp_path, fault_session):
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        assert stat.S_IMODE(make_temp_dir(tmp_path, "cache").stat().st_mode) == 0o755
        build_dataset([fault_session], tmp_path / "ds", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ds").rglob("*") if p.is_file()}
        assert set(modes.values()) == {0o644}, modes  # dataset.json and README.md too: another user can read them
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)
