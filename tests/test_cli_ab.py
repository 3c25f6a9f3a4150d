"""`fxcap ab`: the null test printed and its files written, and one-line errors for what a user gets wrong."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from fxcap.capture.profiles import LA2A, OD3
from fxcap.cli import tables
from fxcap.modeling.testing import make_dummy_run
from tests.faults._capture_helpers import assert_one_line_error, run_fxcap

RATE = 48000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_dummy_run(tmp_path_factory.mktemp("cli-ab") / "run", num_knobs=2, sample_rate=RATE,
                          knobs=[OD3.knob("drive"), OD3.knob("tone")])


def test_ab_on_the_virtual_device_prints_the_null_test_and_writes_its_files(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tables, "console", Console(width=250))
    out = tmp_path / "ab"
    outcome = run_fxcap(capsys, "ab", "--model", run, "--backend", "sim", "--knob", "drive=7", "--set", "tone=2", "--seconds", "5",
                        "--switch", "2", "--out", out)
    assert outcome.code == 0, outcome.text
    numbers = json.loads((out / "ab.json").read_text())
    assert numbers["model_knobs"] == {"drive": 7.0, "tone": 2.0} and numbers["device"] == "OD-3"
    assert f"null test: ESR {numbers['esr']:.4g}" in outcome.out and f"{numbers['difference_rms_dbfs']:.1f} dBFS RMS" in outcome.out
    assert "ab.wav: A 0-2 s, B 2-4 s, A 4-" in outcome.out
    assert {p.name for p in out.iterdir()} == {"device.wav", "model.wav", "difference.wav", "ab.wav", "ab.json"}


@pytest.mark.parametrize(
    "options, needles",
    [
        (["--set", "volume=3"], ["OD-3 has no knob 'volume'"]),
        (["--set", "drive"], ["--set expects NAME=VALUE"]),
        (["--device", "LA-2A"], ["the model's knobs (drive, tone) are not knobs of LA-2A", "drive, tone missing"]),
        (["--switch", "0"], ["--switch must be a positive"]),
        (["--backend", "tape"], ["unknown backend 'tape'"]),
        (["--input-channel", "2"], ["--input-channel apply to --backend soundcard"]),
    ],
)
def test_ab_mistakes_are_one_line_errors_and_write_nothing(run, tmp_path, capsys, options, needles):
    out = tmp_path / "ab"
    assert_one_line_error(run_fxcap(capsys, "ab", "--model", run, "--out", out, *options), *needles)
    assert not out.exists()


def test_ab_needs_a_run_folder(tmp_path, capsys):
    assert_one_line_error(run_fxcap(capsys, "ab", "--model", tmp_path / "nowhere", "--out", tmp_path / "ab"),
                          "is not a training run (no config.json)")
    la2a = make_dummy_run(tmp_path / "la2a", num_knobs=1, sample_rate=RATE, knobs=[LA2A.knob("peak_reduction")])
    assert_one_line_error(run_fxcap(capsys, "ab", "--model", la2a, "--out", tmp_path / "ab"),  # the device of an unknown dataset: OD-3
                          "the model's knobs (peak_reduction) are not knobs of OD-3")
