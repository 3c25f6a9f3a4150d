"""Fault matrix, concurrent writers: one writer per session, dataset and run folder (a lock file with the
writer's PID and host); stale locks of dead writers are taken over with a note. See docs/reliability.md."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

import fxcap.locking as locking
from fxcap.errors import FolderLockedError
from fxcap.locking import folder_lock, lock_path
from tests.faults.conftest import TINY_TRAIN, hashes, process_env, sha

HOLDER = (
    "import sys, time\nfrom fxcap.locking import folder_lock\n"
    "folder_lock(sys.argv[1], sys.argv[2]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n"
)


@contextmanager
def held_lock(folder: Path, command: str):
    """Another process holding the lock of ``folder``; yields its PID."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), command], stdout=subprocess.PIPE, text=True,
                            env=process_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _writers(workspace: Path, session: Path) -> dict[str, tuple[Path, list[str]]]:
    """Each writer: the folder it writes and its ``fxcap`` command line."""
    return {
        "build-dataset": (workspace / "datasets" / "od3", ["build-dataset", str(session), "--out", "datasets/od3", "--force",
                                                           "--segment-seconds", "0.25", "--no-wav"]),
        "train": (workspace / "runs" / "od3" / "concat-gru-s0",
                  ["train", "--dataset", "datasets/od3", "--runs", "runs", *TINY_TRAIN, "--epochs", "1"]),
        "record --resume": (session, ["record", "--resume", "--out", str(session)]),
    }


@pytest.mark.parametrize("writer", ["build-dataset", "train", "record --resume"])
def test_a_second_writer_stops_with_one_line_naming_the_pid_that_holds_the_folder(workspace, fault_session, fxcap_main, writer):
    session = workspace / "sessions" / "s"
    shutil.copytree(fault_session, session)
    folder, args = _writers(workspace, session)[writer]
    before = hashes(workspace)
    with held_lock(folder, writer) as pid:
        result = fxcap_main(*args, cwd=workspace)
        result.one_line_error(f"{folder.name} is in use by fxcap {writer} (PID {pid} on {socket.gethostname()}", f"kill {pid}")
    kept = lambda files: {k: v for k, v in files.items() if ".cache" not in k and not k.endswith(".lock")}  # noqa: E731
    assert kept(hashes(workspace)) == kept(before)  # the refused writer wrote nothing


def test_two_builds_into_one_out_at_once_do_not_both_succeed(workspace, fault_session):
    """Two real processes race for one --out (no --force): one builds, the other stops; nothing is lost."""
    other = workspace / "sessions" / "other"
    shutil.copytree(fault_session, other)
    procs = [subprocess.Popen([sys.executable, "-m", "fxcap.cli", "build-dataset", str(s), "--out", "new", "--segment-seconds",
                               "0.25", "--no-wav"], cwd=workspace, stderr=subprocess.PIPE, text=True, env=process_env())
             for s in (fault_session, other)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    err = next(err for code, err in results if code == 1)
    assert "Traceback" not in err and ("is in use by fxcap build-dataset" in err or "already holds a dataset" in err), err
    manifest = json.loads((workspace / "new" / "dataset.json").read_text())
    assert all(sha(workspace / "new" / f["path"]) == f["sha256"] for f in manifest["files"])  # one complete dataset
    assert not list(workspace.glob(".new.*"))


def test_a_stale_lock_of_a_dead_writer_is_taken_over_with_a_note(workspace, fault_session):
    dead = _dead_pid()
    lock = lock_path(workspace / "new")
    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "command": "build-dataset",
                                "started": "2000-01-01T00:00:00Z"}))
    proc = subprocess.run([sys.executable, "-m", "fxcap.cli", "build-dataset", str(fault_session), "--out", "new",
                           "--segment-seconds", "0.25", "--no-wav"], cwd=workspace, capture_output=True, text=True,
                          env=process_env())
    assert proc.returncode == 0, proc.stderr
    assert f"was locked by fxcap build-dataset (PID {dead}" in proc.stderr and "took the lock over" in proc.stderr
    assert not lock.exists() and (workspace / "new" / "dataset.json").is_file()


def test_the_lock_without_flock_is_a_pid_file_whose_dead_writer_is_stale(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(locking, "fcntl", None)
    folder = tmp_path / "run"
    with folder_lock(folder, "train"):
        with folder_lock(folder, "train"):  # the same process again: nested, not refused
            pass
        assert lock_path(folder).exists()
    assert not lock_path(folder).exists()
    with held_lock(tmp_path / "other", "train") as pid:  # a live holder (flock in its process, PID in the file)
        with pytest.raises(FolderLockedError, match=f"PID {pid}"):
            folder_lock(tmp_path / "other", "train").acquire()
    lock_path(folder).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "command": "train",
                                             "started": "2000-01-01T00:00:00Z"}))
    with folder_lock(folder, "train") as lock:
        assert lock.stale is not None and "took the lock over" in caplog.text
