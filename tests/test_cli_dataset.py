import shutil

import pytest
from typer.testing import CliRunner

from fxcap.cli import app
from fxcap.dataset import load_dataset_info
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import DatasetError

runner = CliRunner()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    return make_dummy_session(base / "sessions" / "od3", knob_grid={"drive": [0.0, 5.0, 10.0]}, seconds=3.0, sample_rate=44100)


def test_build_info_and_validate(session, tmp_path):
    out = tmp_path / "ds"
    result = runner.invoke(app, ["build-dataset", str(session.root), "--out", str(out), "--segment-seconds", "0.2",
                                 "--split", "70/10/20", "--holdout", "drive=5", "--no-wav"])
    assert result.exit_code == 0, result.output
    info = load_dataset_info(out)
    assert info.holdout == ["drive=5"] and not (out / "wav").exists()
    assert info.manifest["split_config"]["train"] == pytest.approx(0.7)
    assert "holdout" in result.output and info.dataset_hash in result.output

    result = runner.invoke(app, ["dataset", "info", str(out)])
    assert result.exit_code == 0 and "OD-3" in result.output and "drive [0 .. 10]" in result.output

    result = runner.invoke(app, ["dataset", "validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in " ".join(result.output.split())  # however long the path, wherever the terminal wraps

    shard = info.shard_files("test")[0]
    shard.write_bytes(shard.read_bytes()[:100])
    result = runner.invoke(app, ["dataset", "validate", str(out)])
    assert result.exit_code == 1
    assert f"{shard.relative_to(out).as_posix()}: cannot be opened" in result.output


def test_defaults_use_the_newest_session_and_refuse_to_overwrite(session, tmp_path, monkeypatch):
    shutil.copytree(session.root.parent, tmp_path / "sessions")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build-dataset", "--segment-seconds", "0.2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "datasets" / "od-3" / "dataset.json").is_file()
    assert (tmp_path / "datasets" / "od-3" / "wav" / "index.csv").is_file()
    result = runner.invoke(app, ["build-dataset", "--segment-seconds", "0.2"])
    assert isinstance(result.exception, DatasetError) and "--force" in str(result.exception)
    result = runner.invoke(app, ["build-dataset", "--segment-seconds", "0.2", "--force", "--holdout", "drive=1"])
    assert isinstance(result.exception, DatasetError) and "no take has that setting" in str(result.exception)


def test_info_on_a_folder_that_is_not_a_dataset(tmp_path):
    result = runner.invoke(app, ["dataset", "info", str(tmp_path)])
    assert isinstance(result.exception, DatasetError) and "build-dataset" in str(result.exception)
