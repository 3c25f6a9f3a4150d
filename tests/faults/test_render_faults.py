"""Fault matrix, render: NaN/inf input, multichannel input, --out that is --in, and --block 0.

The run is an untrained Concat model (``make_dummy_run``): no training needed."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from fxcap.capture.profiles import Knob
from fxcap.modeling.testing import make_dummy_run
from tests.faults._capture_helpers import assert_one_line_error, hashes, run_fxcap, sha256, write_wav

RATE = 44100


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_dummy_run(tmp_path_factory.mktemp("runs") / "concat", "concat", "gru", 1, RATE, knobs=[Knob("drive", 0.0, 10.0, 5.0)])


def _tone(n: int = 3000) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 220 * np.arange(n) / RATE)).astype(np.float32)


def test_a_nan_or_inf_in_the_input_is_one_line_naming_the_first_bad_sample_and_nothing_is_written(run, tmp_path, capsys):
    for bad, value in ((1234, np.nan), (2999, np.inf)):
        audio = _tone()
        audio[bad] = value
        dry = write_wav(tmp_path / "dry.wav", audio, RATE)
        out = tmp_path / "wet.wav"
        out.write_bytes(b"an earlier render")
        before = hashes(tmp_path)
        assert_one_line_error(run_fxcap(capsys, "render", "-m", run, "--in", dry, "--out", out, "--block", "1000"),
                              f"{dry}: sample {bad} (at {bad / RATE:.3f} s) is {value}", "nothing was written")
        assert hashes(tmp_path) == before  # the earlier output is intact, no temporary file left


def test_stereo_input_needs_channel_or_mix(run, tmp_path, capsys):
    left, right = _tone(), 0.3 * _tone()[::-1].copy()
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), RATE)
    before = hashes(tmp_path)
    assert_one_line_error(run_fxcap(capsys, "render", "-m", run, "--in", stereo, "--out", tmp_path / "wet.wav"),
                          "has 2 channels; choose one with --channel N (1..2) or render their average with --mix")
    assert_one_line_error(run_fxcap(capsys, "render", "-m", run, "--in", stereo, "--out", tmp_path / "wet.wav", "--channel", "3"),
                          "--channel 3 does not exist")
    assert hashes(tmp_path) == before

    def rendered(path, *options):
        out = tmp_path / "out.wav"
        assert run_fxcap(capsys, "render", "-m", run, "--in", path, "--out", out, "--set", "drive=7", *options).code == 0
        return sf.read(out, dtype="float32")[0]

    assert np.array_equal(rendered(stereo, "--channel", "2"), rendered(write_wav(tmp_path / "r.wav", right, RATE)))
    mixed = write_wav(tmp_path / "m.wav", np.stack([left, right], axis=1).mean(axis=1, dtype=np.float32), RATE)
    assert np.array_equal(rendered(stereo, "--mix"), rendered(mixed))


def test_out_that_is_the_input_is_refused_also_through_another_spelling_or_a_link(run, tmp_path, capsys, monkeypatch):
    dry = write_wav(tmp_path / "dry.wav", _tone(), RATE)
    os.symlink(dry, tmp_path / "link.wav")
    os.link(dry, tmp_path / "hard.wav")
    monkeypatch.chdir(tmp_path)
    before = sha256(dry)
    for out in (dry, "./dry.wav", tmp_path / "sub" / ".." / "dry.wav", tmp_path / "link.wav", tmp_path / "hard.wav"):
        assert_one_line_error(run_fxcap(capsys, "render", "-m", run, "--in", dry, "--out", out), "is the input file", "choose another --out")
    assert sha256(dry) == before


@pytest.mark.parametrize("block", ["0", "-5"])
def test_a_block_size_that_is_not_positive_is_one_line_instead_of_a_hang(run, tmp_path, capsys, block):
    dry = write_wav(tmp_path / "dry.wav", _tone(), RATE)
    assert_one_line_error(run_fxcap(capsys, "render", "-m", run, "--in", dry, "--out", tmp_path / "wet.wav", "--block", block),
                          f"--block must be a positive number of samples (e.g. 65536), not {block}")
    assert not (tmp_path / "wet.wav").exists()
