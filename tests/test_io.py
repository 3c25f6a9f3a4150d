from pathlib import Path

import numpy as np
import pytest

from fxcap.errors import FxcapError
from fxcap.io import atomic_write, atomic_write_wav, read_wav


def test_wav_round_trip_keeps_values_beyond_full_scale(tmp_path):
    audio = np.array([0.0, 1.5, -2.25, 1e-7], dtype=np.float32)
    atomic_write_wav(tmp_path / "a.wav", audio, 48000)
    back, rate = read_wav(tmp_path / "a.wav", expected_rate=48000)
    assert rate == 48000
    np.testing.assert_array_equal(back, audio)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_read_wav_rate_mismatch_is_a_clear_error(tmp_path):
    atomic_write_wav(tmp_path / "a.wav", np.zeros(10), 44100)
    with pytest.raises(FxcapError, match="44100 Hz but 48000 Hz"):
        read_wav(tmp_path / "a.wav", expected_rate=48000)
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(FxcapError, match="cannot read audio file"):
        read_wav(tmp_path / "junk.wav")


def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, monkeypatch):
    """Durability: the data reach the disk before the rename, and the rename before the function
    returns; the temporary file is a hidden sibling (same folder, so the rename is atomic)."""
    import os
    import stat

    target = tmp_path / "f.txt"
    events, seen = [], {}
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
        events.append(("fsync", kind, info.st_ino, info.st_size))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(src), Path(dst)))
        return real_replace(src, dst)

    def writer(tmp):
        seen["tmp"] = tmp
        tmp.write_bytes(b"new data")
        seen["ino"] = tmp.stat().st_ino

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert atomic_write(target, writer) == target
    tmp = seen["tmp"]
    assert tmp.parent == target.parent and tmp.name.startswith(".f.txt.") and tmp.name.endswith(".tmp")
    assert events == [
        ("fsync", "file", seen["ino"], len(b"new data")),  # the temporary file, complete
        ("replace", tmp, target),
        ("fsync", "dir", tmp_path.stat().st_ino, tmp_path.stat().st_size),  # the folder holding the new name
    ]
    assert target.read_bytes() == b"new data" and not tmp.exists()


def test_atomic_write_creates_missing_folders(tmp_path):
    from fxcap.io import atomic_write_text

    path = atomic_write_text(tmp_path / "a" / "b" / "c.txt", "héllo")
    assert path.read_bytes() == "héllo".encode("utf-8")


def test_json_text_is_sorted_indented_strict_and_ends_with_a_newline(tmp_path):
    from fxcap.io import atomic_write_json, json_text

    assert json_text({"b": 1, "a": [1.5, "x"]}) == '{\n  "a": [\n    1.5,\n    "x"\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        json_text({"a": float("nan")})  # not valid JSON: refuse rather than write NaN
    atomic_write_json(tmp_path / "x.json", {"z": 0, "y": None})
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == '{\n  "y": null,\n  "z": 0\n}\n'


def test_wav_files_are_float32_and_mono_reads_are_one_dimensional(tmp_path):
    import soundfile as sf

    atomic_write_wav(tmp_path / "m.wav", np.array([0.1, -0.2, 0.3], dtype=np.float64), 22050)
    assert sf.info(str(tmp_path / "m.wav")).subtype == "FLOAT"
    mono, rate = read_wav(tmp_path / "m.wav")
    assert mono.dtype == np.float32 and mono.shape == (3,) and rate == 22050
    np.testing.assert_array_equal(mono, np.array([0.1, -0.2, 0.3], dtype=np.float32))
    sf.write(str(tmp_path / "pcm.wav"), np.array([0, 16384, -32768], dtype=np.int16), 8000, subtype="PCM_16")
    pcm, _ = read_wav(tmp_path / "pcm.wav")
    assert pcm.dtype == np.float32 and pcm.tolist() == [0.0, 0.5, -1.0]  # PCM scaled to full-scale floats
    atomic_write_wav(tmp_path / "s.wav", np.zeros((4, 2)), 8000)
    assert read_wav(tmp_path / "s.wav")[0].shape == (4, 2)


def test_a_writer_that_removed_its_temp_file_still_raises_its_own_error(tmp_path):
    def gone(tmp):
        tmp.unlink()
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):  # not a FileNotFoundError from the clean-up
        atomic_write(tmp_path / "f.txt", gone)
    assert list(tmp_path.iterdir()) == []
