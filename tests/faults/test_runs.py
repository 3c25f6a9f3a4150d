"""Fault matrix, training runs: dead ends before the first epoch, what ``--resume`` checks, bad options,
and ``fxcap train`` killed (SIGKILL) at chosen points. See docs/reliability.md."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.errors import ModelError
from fxcap.modeling.checkpoint import load_weights
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.sweep import SweepConfig, run_sweep
from fxcap.modeling.train import TrainConfig, train
from tests.faults.conftest import TINY_TRAIN, fxcap_process, hashes, metrics, sha, tamper

RUN = ("runs", "od3", "concat-gru-s0")
TINY = TrainConfig(window=256, batch_size=2, steps_per_epoch=2, max_epochs=1, valid_windows=4, threads=1)


def _train_args(*extra: str) -> list[str]:
    return ["train", "--dataset", "datasets/od3", "--runs", "runs", *TINY_TRAIN, *extra]


def _killed_train(workspace, epochs: int, prelude: str):
    """Run ``fxcap train --epochs EPOCHS`` as a real process that ``prelude`` makes kill itself; its run folder."""
    killed = fxcap_process(_train_args("--epochs", str(epochs)), workspace, prelude)
    assert killed.code == -9, killed.err
    return workspace.joinpath(*RUN)


def _assert_ends_like_an_uninterrupted_run(workspace, fxcap_main, epochs: int) -> None:
    """The resumed run's last weights equal, to the bit, those of the same run trained without a break."""
    reference = workspace / "runs" / "reference"
    assert fxcap_main(*_train_args("--epochs", str(epochs), "--runs", str(reference)), cwd=workspace).code == 0
    resumed, _ = load_weights(workspace.joinpath(*RUN) / "last.safetensors")
    uninterrupted, _ = load_weights(reference / "od3" / RUN[-1] / "last.safetensors")
    for name in uninterrupted:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=0)


def _no_valid_split(workspace, session):
    shutil.rmtree(workspace / "datasets" / "od3")
    build_dataset([session], workspace / "datasets" / "od3",
                  BuildConfig(split=SplitConfig(train=0.9, valid=0.0, test=0.1, segment_seconds=0.25), write_wav=False))


def _corrupt_train_shard(workspace, session):
    tamper(workspace / "datasets" / "od3" / "data" / "train-00000-of-00001.parquet")


QUICK = ["--preset", "quick", "--steps", "2", "--batch-size", "2"]


@pytest.mark.parametrize("options, setup, message", [
    (QUICK + ["--window", "100000"], None, "no segment of the train split is 100000 samples long"),
    (["--preset", "paper", "--batch-size", "5000"], None, "lower --batch-size"),
    (QUICK, _no_valid_split, "has no valid split"),
    (QUICK, _corrupt_train_shard, "does not match its sha256"),
], ids=["window-too-long", "batch-too-large", "no-valid-split", "corrupt-shard"])
def test_an_error_before_the_first_epoch_leaves_no_run_folder(workspace, fault_session, fxcap_main, options, setup, message):
    if setup is not None:
        setup(workspace, fault_session)
    result = fxcap_main("train", "--dataset", "datasets/od3", "--runs", "runs", "--cond", "concat", "--no-evaluate",
                        "--window", "256", "--epochs", "1", *options, cwd=workspace)
    result.one_line_error(message)
    assert not workspace.joinpath(*RUN).exists()  # nothing for --resume or a fresh start to trip over


def test_a_run_folder_without_a_finished_epoch_is_started_afresh_with_or_without_resume(workspace, fxcap_main, caplog):
    run = workspace.joinpath(*RUN)
    ds = workspace / "datasets" / "od3"

    def interrupt(step, steps, loss):
        raise KeyboardInterrupt  # Ctrl-C in the first epoch

    with pytest.raises(KeyboardInterrupt):
        train(ds, ModelConfig(cond="concat", num_knobs=1), run, TINY, on_step=interrupt)
    assert not (run / "config.json").exists()  # config.json is written with the first finished epoch
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text("{}")  # what an interrupted run of an earlier version left
    for extra in ([], ["--resume"]):
        result = fxcap_main(*_train_args("--epochs", "1", *extra), cwd=workspace)
        assert result.code == 0, result.err
        assert "never finished an epoch" in caplog.text and len(metrics(run)) == 1
        (run / "state.pt").unlink()  # again "interrupted before its first epoch ended"
        caplog.clear()


@pytest.mark.slow  # a real process killed, then resumed (> 10 s on a busy 2-core machine)
def test_resume_after_a_kill_between_the_weights_and_the_state_uses_the_consistent_pair(workspace, fxcap_main, caplog):
    """SIGKILL after epoch 2's last.safetensors, before its state.pt: resuming equals the uninterrupted run."""
    prelude = (
        "import os, signal\nimport fxcap.modeling.train as t\nsave = t.save_state\n"
        "def save_state(path, state):\n"
        "    if state['epoch'] == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    save(path, state)\n"
        "t.save_state = save_state\n"
    )
    run = _killed_train(workspace, 3, prelude)
    assert load_weights(run / "last.safetensors")[1]["epoch"] == 2 and torch.load(run / "state.pt")["epoch"] == 1
    config_before = sha(run / "config.json")
    result = fxcap_main(*_train_args("--epochs", "3", "--resume"), cwd=workspace)
    assert result.code == 0, result.err
    assert "last.safetensors is from epoch 2 but state.pt from epoch 1" in caplog.text
    assert sha(run / "config.json") == config_before
    _assert_ends_like_an_uninterrupted_run(workspace, fxcap_main, 3)

    # a state.pt of an earlier version (no weights of its own) with mismatched weights is refused, not resumed
    state = torch.load(run / "state.pt")
    del state["model"]
    state["epoch"] = 2
    torch.save(state, run / "state.pt")
    before = hashes(run)
    result = fxcap_main(*_train_args("--epochs", "4", "--resume"), cwd=workspace)
    result.one_line_error("last.safetensors is from epoch 3 but state.pt from epoch 2", "--force")
    assert hashes(run) == before


def test_resume_refuses_another_dataset_and_changed_settings_and_force_starts_afresh(workspace, fault_session, fxcap_main):
    run = workspace.joinpath(*RUN)
    assert fxcap_main(*_train_args("--epochs", "1"), cwd=workspace).code == 0
    before = hashes(run)

    result = fxcap_main(*_train_args("--epochs", "2", "--resume", "--lr", "0.02", "--window", "128"), cwd=workspace)
    result.one_line_error("other settings", "lr 0.01 -> 0.02", "window 256 -> 128", "--force")
    assert hashes(run) == before  # config.json still describes the run that happened

    # the sweep refuses with the same check (one function decides for train, the pipeline and the sweep)
    sweep = run_sweep(SweepConfig(datasets=[workspace / "datasets" / "od3"], conds=["concat"], runs_dir=workspace / "runs",
                                  preset="quick", retries=0, workers=1,
                                  overrides={"window": 256, "batch_size": 2, "steps_per_epoch": 2, "max_epochs": 1,
                                             "lr": 0.5, "lr_schedule": "plateau"}))
    assert sweep.trials[0]["status"] == "failed" and "lr 0.01 -> 0.5" in sweep.trials[0]["error"]
    assert hashes(run) == before

    shutil.rmtree(workspace / "datasets" / "od3")
    build_dataset([fault_session], workspace / "datasets" / "od3",
                  BuildConfig(split=SplitConfig(train=0.7, valid=0.1, test=0.2, segment_seconds=0.25), write_wav=False))
    result = fxcap_main(*_train_args("--epochs", "2", "--resume"), cwd=workspace)
    result.one_line_error("trained on another dataset", "--force")
    assert hashes(run) == before

    result = fxcap_main(*_train_args("--epochs", "1", "--force", "--lr", "0.02"), cwd=workspace)
    assert result.code == 0, result.err
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["lr"] == 0.02 and len(metrics(run)) == 1

    result = fxcap_main(*_train_args("--epochs", "2", "--resume", "--lr", "0.02"), cwd=workspace)  # a longer run resumes
    assert result.code == 0, result.err
    assert json.loads((run / "config.json").read_text())["train"]["max_epochs"] == 2 and len(metrics(run)) == 2


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "max_epochs must be positive"),
    ("--steps", "0", "steps_per_epoch must be a positive whole number"),
    ("--steps", "-3", "steps_per_epoch must be a positive whole number"),
    ("--window", "0", "window must be a positive whole number"),
    ("--batch-size", "0", "batch_size must be positive"),
    ("--lr", "-1", "lr must be positive"),
    ("--stft-weight", "-0.5", "stft_weight must be zero or positive"),
    ("--esr-weight", "-1", "esr_weight must be zero or positive"),
    ("--dc-weight", "-1", "dc_weight must be zero or positive"),
    ("--loss-skip", "-1", "loss_skip must be zero or positive"),
])
def test_bad_training_options_are_one_line_errors_before_any_work(workspace, fxcap_main, option, value, message):
    result = fxcap_main(*_train_args(option, value), cwd=workspace)
    result.one_line_error(message)
    assert not (workspace / "runs").exists()


def test_zero_never_means_default_in_the_library_either():
    for field in ("window", "steps_per_epoch", "valid_windows", "early_stop_patience", "max_skipped_steps"):
        with pytest.raises(ModelError, match=field):
            TrainConfig(**{field: 0})


@pytest.mark.slow  # a real process killed, then resumed (> 10 s on a busy 2-core machine)
def test_sigkill_after_two_epochs_then_resume_finishes_and_keeps_what_was_written(workspace, fxcap_main, caplog):
    """``fxcap train`` killed while writing epoch 3's last.safetensors: the next --resume cleans the temporary
    file, keeps epochs 1-2 as written and ends where an uninterrupted run ends."""
    prelude = (
        "import os, signal\nimport fxcap.modeling.checkpoint as c\nfrom fxcap.io import atomic_write\n"
        "write, calls = c.atomic_write_bytes, []\n"
        "def atomic_write_bytes(path, data):\n"
        "    calls.append(path.name)\n"
        "    if calls.count('last.safetensors') == 3:  # epoch 3: die halfway through the temporary file\n"
        "        def half(tmp):\n"
        "            tmp.write_bytes(data[:100])\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        return atomic_write(path, half)\n"
        "    return write(path, data)\n"
        "c.atomic_write_bytes = atomic_write_bytes\n"
    )
    run = _killed_train(workspace, 4, prelude)
    leftovers = list(run.glob(".last.safetensors.*.tmp"))
    assert len(leftovers) == 1 and (workspace / "runs" / "od3" / f".{RUN[-1]}.lock").exists()
    written = {name: sha(run / name) for name in ("config.json", "last.safetensors", "state.pt")}
    rows = metrics(run)
    assert [row["epoch"] for row in rows] == [1, 2]

    result = fxcap_main(*_train_args("--epochs", "4", "--resume"), cwd=workspace)
    assert result.code == 0, result.err
    assert not list(run.glob(".*.tmp")) and "took the lock over" in caplog.text and "leftover" in caplog.text
    assert sha(run / "config.json") == written["config.json"]
    assert metrics(run)[:2] == rows  # the finished epochs are kept as they were written
    _assert_ends_like_an_uninterrupted_run(workspace, fxcap_main, 4)
