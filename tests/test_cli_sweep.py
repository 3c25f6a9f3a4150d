"""``fxcap sweep`` and the URI options of the dataset commands."""

import json

from typer.testing import CliRunner

from fxcap.cli import app
from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import FxcapError

runner = CliRunner()


def test_build_info_and_validate_take_uris(tmp_path):
    session = make_dummy_session(tmp_path / "s", knob_grid={"drive": [0.0, 10.0]}, seconds=2.0, sample_rate=44100)
    uri = "memory://fxcap-cli-tests/od3"
    result = runner.invoke(app, ["build-dataset", str(session.root), "--out", uri, "--segment-seconds", "0.25", "--no-wav",
                                 "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"({uri})" in result.output
    result = runner.invoke(app, ["dataset", "info", uri])
    assert result.exit_code == 0 and "drive [0 .. 10]" in result.output
    result = runner.invoke(app, ["dataset", "validate", uri])
    assert result.exit_code == 0 and "0 error(s)" in result.output


def test_sweep_trains_every_seed_and_prints_mean_and_std(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session = make_dummy_session(tmp_path / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], tmp_path / "datasets" / "od3", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    args = ["sweep", "--dataset", "datasets/od3", "--cond", "concat", "--seeds", "2", "--workers", "1", "--preset", "quick",
            "--epochs", "1", "--steps", "2", "--batch-size", "2", "--window", "256"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "done    od3/concat-gru-s1" in result.output and "±" in result.output
    manifest = json.loads((tmp_path / "runs" / "sweep.json").read_text())
    assert [t["status"] for t in manifest["trials"]] == ["done", "done"]

    result = runner.invoke(app, args)  # everything finished: nothing runs again
    assert result.exit_code == 0 and result.output.count("skip") == 2

    result = runner.invoke(app, ["compare", "--runs", "runs/od3"])
    assert result.exit_code == 0, result.output
    assert "±" in result.output and "seeds" in result.output
    assert (tmp_path / "runs" / "od3" / "comparison_seeds.md").is_file()

    result = runner.invoke(app, ["sweep", "--dataset", "datasets/od3", "--cond", "nope"])
    assert result.exit_code == 1 and isinstance(result.exception, FxcapError) and "unknown cond" in str(result.exception)
