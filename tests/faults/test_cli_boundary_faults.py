"""Fault matrix, CLI boundary: OS and libsndfile errors, odd --out paths and Ctrl-C end as one line.

Every test runs ``fxcap`` through ``main()`` in this process and checks the exit status, the single
``error:`` line (no traceback) and that files written before are intact.
"""

from __future__ import annotations

import errno
import os

import pytest
import soundfile as sf

from fxcap import numba_cache
from tests.faults._capture_helpers import assert_one_line_error, hashes, program_wav, run_fxcap, sha256


@pytest.fixture
def program(tmp_path):
    return program_wav(tmp_path / "in")


def test_out_that_is_a_folder_a_file_or_under_a_file_is_refused_in_one_line(tmp_path, program, capsys):
    existing = tmp_path / "kept.wav"
    existing.write_bytes(b"earlier work")
    before = hashes(tmp_path)
    folder = tmp_path / "a_folder.wav"
    folder.mkdir()
    assert_one_line_error(run_fxcap(capsys, "signal", "--signal", program, "--out", folder), str(folder), "is a folder")
    assert_one_line_error(run_fxcap(capsys, "signal", "--signal", program, "--out", existing / "x.wav"),
                          f"{existing} is a file, not a folder")
    assert_one_line_error(run_fxcap(capsys, "record", "--signal", program, "--out", existing), f"--out {existing} is a file")
    assert_one_line_error(run_fxcap(capsys, "record", "--signal", program, "--out", existing / "session"),
                          f"{existing} is a file, not a folder")
    assert_one_line_error(run_fxcap(capsys, "signal", "--signal", program, "--out", tmp_path / ("n" * 256 + ".wav")),
                          "more than the 255", "shorter name")
    assert hashes(tmp_path) == before and list(folder.iterdir()) == []


def test_out_in_a_folder_this_user_cannot_write_is_refused_in_one_line(tmp_path, program, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode))
    assert_one_line_error(run_fxcap(capsys, "record", "--signal", program, "--out", locked / "session"),
                          str(locked), "permission denied", "choose a folder you can write to")
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize(
    ("code", "needle"),
    [(errno.ENOSPC, "no space left on the disk"), (errno.EACCES, "permission denied"), (errno.EISDIR, "is a folder"),
     (errno.ENOTDIR, "a part of the path is a file"), (errno.ENAMETOOLONG, "too long"), (errno.EROFS, "read-only")],
)
def test_os_errors_while_writing_become_one_line_with_the_path_and_the_fix(tmp_path, program, capsys, monkeypatch, code, needle):
    out = tmp_path / "signal.wav"
    assert run_fxcap(capsys, "signal", "--signal", program, "--out", out).code == 0
    before = hashes(tmp_path)
    real_write = sf.write

    def failing_write(file, data, *args, **kwargs):  # half the file reaches the disk, then the error
        real_write(file, data[: len(data) // 2], *args, **kwargs)
        raise OSError(code, os.strerror(code), str(file))

    monkeypatch.setattr("fxcap.io.sf.write", failing_write)
    line = assert_one_line_error(run_fxcap(capsys, "signal", "--signal", program, "--out", out), needle)
    assert str(tmp_path) in line  # the path is named
    assert hashes(tmp_path) == before  # the earlier signal is intact and no temporary file is left


def test_libsndfile_errors_become_one_line(tmp_path, capsys, monkeypatch):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00 definitely not audio")

    def save_signal(*_args, **_kwargs):  # a libsndfile error escaping the library code
        sf.SoundFile(str(garbage))

    monkeypatch.setattr("fxcap.capture.signal.save_signal", save_signal)
    monkeypatch.setattr("fxcap.capture.signal.generate_signal", lambda config: None)
    before = sha256(garbage)
    outcome = run_fxcap(capsys, "signal", "--out", tmp_path / "x.wav")
    assert_one_line_error(outcome, "audio file error", "garbage.wav")
    assert sha256(garbage) == before


def test_ctrl_c_exits_130_with_one_line_saying_nothing_is_lost(tmp_path, program, capsys, monkeypatch):
    out = tmp_path / "signal.wav"
    assert run_fxcap(capsys, "signal", "--signal", program, "--out", out).code == 0
    before = hashes(tmp_path)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fxcap.capture.signal.save_signal", interrupted)
    assert_one_line_error(run_fxcap(capsys, "signal", "--signal", program, "--out", out),
                          "interrupted; nothing written so far is lost; run the command again", code=130)
    assert hashes(tmp_path) == before


def test_an_unwritable_numba_cache_folder_means_no_disk_cache_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(numba_cache, "_writable", lambda path, private=False: False)
    assert numba_cache.cache_folder(numba_cache.__file__) is None
    assert numba_cache.cache_sources(tmp_path / "kernels.py") is False
    monkeypatch.setattr(numba_cache.tempfile, "gettempdir", lambda: str(tmp_path / "no" / "such"))
    assert numba_cache._private_temp_root() is None


def test_a_legal_file_name_of_up_to_255_bytes_is_written(tmp_path, program, capsys):
    out = tmp_path / ("n" * 250 + ".wav")  # 254 bytes; its layout file .json is 255
    outcome = run_fxcap(capsys, "signal", "--signal", program, "--out", out)
    assert outcome.code == 0, outcome.text
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
