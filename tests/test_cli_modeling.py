"""The train / evaluate / compare / render commands on a tiny synthetic dataset."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from typer.testing import CliRunner

import fxcap
from fxcap.capture.profiles import Knob
from fxcap.cli import app
from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session
from fxcap.modeling.train import load_run

runner = CliRunner()


def test_train_all_compare_and_render(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_dummy_session(tmp_path / "sessions" / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], tmp_path / "datasets" / "od3", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    args = ["train", "--cond", "all", "--preset", "quick", "--epochs", "1", "--steps", "2", "--batch-size", "2", "--window", "256",
            "--stft-warmup", "1", "--lr-schedule", "plateau"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for cond in ("concat", "film", "statichyper", "dynamichyper"):
        assert (tmp_path / "runs" / "od3" / f"{cond}-gru-s0" / "evaluation.json").is_file()
    assert "dynamichyper" in result.output and "ESR" in result.output

    result = runner.invoke(app, ["compare", "--runs", "runs"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "comparison.md").is_file()

    dry = (0.5 * np.sin(2 * np.pi * 220 * np.arange(4410) / 44100)).astype(np.float32)  # not silence
    sf.write(tmp_path / "dry.wav", dry, 44100, subtype="FLOAT")
    run = "runs/od3/concat-gru-s0"
    model, config = load_run(run)
    drive = Knob.from_dict(config["dataset"]["knobs"][0])
    constant = torch.full((1, 1), drive.normalize(7))
    ramp = torch.from_numpy(drive.normalize(0) + (drive.normalize(10) - drive.normalize(0)) * np.arange(4410) / 4410)
    for options, knobs in ((["--set", "drive=7"], constant), (["--automate", "drive:0:10"], ramp.float()[None, :, None])):
        result = runner.invoke(app, ["render", "--model", run, "--in", "dry.wav", "--out", "wet.wav", *options])
        assert result.exit_code == 0, result.output
        wet, _ = sf.read(tmp_path / "wet.wav", dtype="float32")
        with torch.no_grad():
            expected = model(torch.from_numpy(dry)[None], knobs)[0][0].numpy()
        np.testing.assert_allclose(wet, expected, atol=1e-5)  # the ramp runs 0 -> 10 over the file

    result = runner.invoke(app, ["evaluate", "--model", run])
    assert result.exit_code == 0 and "ESR" in result.output


def test_user_errors_are_one_line_with_exit_1(tmp_path):
    """The console script turns FxcapError into one red line and status 1 (no traceback)."""
    code = "import sys; sys.argv=['fxcap','render','--model','nowhere','--in','a.wav','--out','b.wav']; from fxcap.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(Path(fxcap.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "not a training run" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-c", code.replace("'render'", "'render','--bogus'")], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 2  # usage error


def test_train_rejects_an_unknown_schedule_before_any_work(tmp_path):
    code = "import sys; sys.argv=['fxcap','train','--lr-schedule','linear']; from fxcap.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(Path(fxcap.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "lr_schedule must be one of plateau, cosine" in proc.stderr


def test_every_run_of_a_dataset_is_compared_and_tables_fit_80_columns(tmp_path, monkeypatch):
    from rich.console import Console

    from fxcap.cli import tables

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tables, "console", Console(width=80))
    session = make_dummy_session(tmp_path / "sessions" / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], tmp_path / "datasets" / "dist", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    tiny = ["--preset", "quick", "--epochs", "1", "--steps", "2", "--batch-size", "2", "--window", "256", "--runs", "runs/x"]
    for cond in ("film", "concat"):  # the later run must not drop the earlier one from comparison.md
        result = runner.invoke(app, ["train", "--cond", cond, *tiny])
        assert result.exit_code == 0, result.output
        assert f"run folder: runs/x/dist/{cond}-gru-s0" in result.output  # <--runs>/<dataset name>/<run>
    assert "comparison of every run of this dataset: runs/x/dist/comparison.md" in result.output
    table = (tmp_path / "runs" / "x" / "dist" / "comparison.md").read_text()
    assert "| concat-gru-s0 |" in table and "| film-gru-s0 |" in table
    assert table.index("concat-gru-s0") < table.index("film-gru-s0")  # the paper's scheme order

    result = runner.invoke(app, ["compare", "--runs", "runs/x/dist"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.output
    header = next(line for line in lines if "run" in line and "params" in line)
    assert all(label in header for label in ("ESR", "STFT")) and "concat-gru-s0" in result.output
    assert "more columns (" in result.output and "runs/x/dist/comparison.md" in " ".join(result.output.split())


def test_train_with_state_carried_over_windows_and_long_validation_windows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_dummy_session(tmp_path / "sessions" / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], tmp_path / "datasets" / "d", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    result = runner.invoke(app, ["train", "--cond", "concat", "--preset", "quick", "--epochs", "1", "--steps", "2", "--batch-size", "2",
                                 "--window", "256", "--tbptt-windows", "2", "--valid-window", "1024", "--no-evaluate"])
    assert result.exit_code == 0, result.output
    _, config = load_run("runs/d/concat-gru-s0")
    assert (config["train"]["tbptt_windows"], config["train"]["valid_window"], config["train"]["window"]) == (2, 1024, 256)
    result = runner.invoke(app, ["train", "--cond", "concat", "--tbptt-windows", "0", "--force"])
    assert result.exit_code == 1 and "tbptt_windows must be" in str(result.exception)


def test_train_with_knob_gains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_dummy_session(tmp_path / "sessions" / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], tmp_path / "datasets" / "d", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    tiny = ["--preset", "quick", "--epochs", "1", "--steps", "2", "--batch-size", "2", "--window", "256", "--no-evaluate"]
    result = runner.invoke(app, ["train", "--cond", "concat", *tiny, "--runs", "plain"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--cond", "concat", *tiny, "--knob-gains", "--runs", "gains"])
    assert result.exit_code == 0, result.output
    plain, plain_config = load_run("plain/d/concat-gru-s0")
    gained, config = load_run("gains/d/concat-gru-s0")
    assert config["model"]["knob_gains"] is True and plain_config["model"]["knob_gains"] is False
    assert config["parameters"] == plain_config["parameters"] + 2 * (1 + 1)  # one knob: w and b, in and out
    assert gained.gain_in is not None and float(gained.gain_in.weight.abs().sum()) > 0  # trained, not left at 1
    result = runner.invoke(app, ["train", "--cond", "concat", *tiny, "--even-penalty", "0.1", "--runs", "nope"])
    assert result.exit_code == 1 and "--even-gain" in str(result.exception)
    result = runner.invoke(app, ["train", "--cond", "concat", *tiny, "--even-gain", "--even-penalty", "0.001", "--runs", "even"])
    assert result.exit_code == 0, result.output
    split, config = load_run("even/d/concat-gru-s0")
    assert config["model"]["even_gain"] is True and plain_config["model"]["even_gain"] is False
    assert config["train"]["even_penalty"] == 0.001 and plain_config["train"]["even_penalty"] == 0.0
    assert config["parameters"] == plain_config["parameters"] + (1 + 1)
    assert split.even_gain is not None and float(split.even_gain.weight.abs().sum()) > 0
    result = runner.invoke(app, ["train", "--cond", "concat", *tiny, "--linear-penalty", "0.01", "--linear-threshold-db", "-20",
                                 "--linear-bands", "6", "--linearisation", "level", "--runs", "linear"])
    assert result.exit_code == 0, result.output
    _, config = load_run("linear/d/concat-gru-s0")
    assert config["train"]["linear_penalty"] == 0.01 and config["train"]["linear_threshold_db"] == -20.0
    assert config["train"]["linear_bands"] == 6 and config["train"]["linearisation"] == "level"
    assert plain_config["train"]["linear_penalty"] == 0.0
