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
