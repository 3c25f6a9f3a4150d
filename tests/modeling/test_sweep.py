"""Training sweeps: every trial gets its run folder, failures are retried or reported, sweeps resume,
comparisons aggregate seeds; the same sweep through Ray gives the same results."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import ModelError
from fxcap.modeling.compare import aggregate_seeds, comparison_table, seeds_markdown
from fxcap.modeling.concat import ConcatRNN
from fxcap.modeling.registry import register_model
from fxcap.modeling.sweep import SWEEP_FILE, SweepConfig, run_sweep

TINY = {"window": 256, "batch_size": 2, "steps_per_epoch": 2, "max_epochs": 1, "valid_windows": 4}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweepdata")
    session = make_dummy_session(root / "session", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=2.0)
    build_dataset([session.root], root / "od3", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    return root / "od3"


def _config(dataset, runs, **kwargs):
    kwargs.setdefault("conds", ["concat", "film"])
    kwargs.setdefault("seeds", [0, 1])
    return SweepConfig(datasets=[dataset], runs_dir=runs, preset="quick", overrides={**TINY, **kwargs.pop("overrides", {})},
                       workers=kwargs.pop("workers", 1), **kwargs)


@pytest.fixture(scope="module")
def inline_sweep(dataset, tmp_path_factory):
    runs = tmp_path_factory.mktemp("inline") / "runs"
    events = []
    result = run_sweep(_config(dataset, runs), on_event=lambda kind, record: events.append((kind, record["trial"])))
    return result, runs, events


def _metrics(run_dir):
    return json.loads((run_dir / "evaluation.json").read_text())["test"]


def test_every_trial_gets_its_run_folder_and_a_record(inline_sweep):
    result, runs, events = inline_sweep
    names = sorted(p.name for p in (runs / "od3").iterdir() if p.is_dir())
    assert names == ["concat-gru-s0", "concat-gru-s1", "film-gru-s0", "film-gru-s1"]
    manifest = json.loads((runs / SWEEP_FILE).read_text())
    assert manifest["counts"] == {"pending": 0, "running": 0, "done": 4, "failed": 0}
    for record in manifest["trials"]:
        assert record["status"] == "done" and record["attempts"] == 1 and record["error"] is None
        assert record["model"]["seed"] == record["train"]["seed"] == record["seed"]
        assert record["result"]["epochs"] == 1 and record["result"]["test"]["esr"] == _metrics(runs / record["trial"])["esr"]
    assert [k for k, _ in events].count("start") == 4 and [k for k, _ in events].count("done") == 4
    assert not result.failed


def test_seeds_are_aggregated_as_mean_and_std(inline_sweep):
    result, runs, _ = inline_sweep
    frame = result.comparisons["od3"]
    assert sorted(frame["seed"]) == [0, 0, 1, 1]
    aggregate = aggregate_seeds(frame)
    assert list(aggregate["scheme"]) == ["concat", "film"] and list(aggregate["seeds"]) == [2, 2]
    for _, row in aggregate.iterrows():
        values = [_metrics(runs / "od3" / f"{row['scheme']}-gru-s{s}")["esr"] for s in (0, 1)]
        assert row["esr_mean"] == pytest.approx(np.mean(values))
        assert row["esr_std"] == pytest.approx(np.std(values, ddof=1)) and row["esr_std"] > 0  # the seeds differ
    text = (runs / "od3" / "comparison_seeds.md").read_text()
    assert text == seeds_markdown(aggregate) and "±" in text and "| concat | gru | 2 |" in text
    single = aggregate_seeds(frame[frame["seed"] == 0])
    assert single["esr_std"].isna().all() and "±" not in seeds_markdown(single).split("\n", 3)[3]
    assert len(pd.read_csv(runs / "od3" / "comparison_seeds.csv")) == 2


_FLAKY_CALLS = {"n": 0}


class FlakyRNN(ConcatRNN):
    """Concat, but its first construction in this process fails (a transient fault)."""

    def __init__(self, config):
        _FLAKY_CALLS["n"] += 1
        if _FLAKY_CALLS["n"] == 1:
            raise RuntimeError("transient fault")
        super().__init__(config)


class BrokenRNN(ConcatRNN):
    """Never builds (a permanent fault)."""

    def __init__(self, config):
        raise ValueError("cannot build this model")


@pytest.fixture
def faulty_schemes():
    """The two faulty schemes, registered for one test only (``--cond all`` elsewhere must not see them)."""
    from fxcap.modeling.schemes import unregister_scheme

    register_model("sweeptest-flaky")(FlakyRNN)
    register_model("sweeptest-broken")(BrokenRNN)
    yield
    unregister_scheme("sweeptest-flaky")
    unregister_scheme("sweeptest-broken")


def test_a_failed_trial_is_retried_and_a_persistent_failure_is_reported(dataset, tmp_path, faulty_schemes):
    config = _config(dataset, tmp_path / "runs", conds=["sweeptest-flaky", "sweeptest-broken", "concat"], seeds=[0], retries=1)
    result = run_sweep(config)
    records = {r["cond"]: r for r in result.trials}
    flaky, broken, fine = records["sweeptest-flaky"], records["sweeptest-broken"], records["concat"]
    assert flaky["status"] == "done" and flaky["attempts"] == 2
    assert [h["status"] for h in flaky["history"]] == ["failed", "done"] and "transient fault" in flaky["history"][0]["error"]
    assert broken["status"] == "failed" and broken["attempts"] == 2 and "ValueError: cannot build this model" in broken["error"]
    assert fine["status"] == "done" and fine["attempts"] == 1
    assert [t["trial"] for t in result.failed] == ["od3/sweeptest-broken-gru-s0"]
    saved = json.loads((tmp_path / "runs" / SWEEP_FILE).read_text())
    assert saved["counts"]["failed"] == 1 and saved["counts"]["done"] == 2
    assert set(result.comparisons["od3"]["scheme"]) == {"sweeptest-flaky", "concat"}  # failed trials are not compared


def test_an_interrupted_sweep_resumes_where_it_stopped(dataset, inline_sweep, tmp_path):
    _, done_runs, _ = inline_sweep
    runs = tmp_path / "runs"
    shutil.copytree(done_runs, runs)
    manifest = json.loads((runs / SWEEP_FILE).read_text())
    for record in manifest["trials"]:
        record["run_dir"] = str(runs / record["trial"])
    # film-gru-s1 was killed after its first epoch, before its evaluation; concat-gru-s1 in its first epoch
    manifest["trials"][3]["status"] = "running"
    (runs / "od3" / "film-gru-s1" / "evaluation.json").unlink()
    manifest["trials"][1]["status"] = "running"
    for name in ("state.pt", "last.safetensors", "best.safetensors", "metrics.json", "metrics.csv", "evaluation.json"):
        (runs / "od3" / "concat-gru-s1" / name).unlink()
    (runs / SWEEP_FILE).write_text(json.dumps(manifest))
    untouched = (runs / "od3" / "concat-gru-s0" / "last.safetensors").stat().st_mtime_ns

    events = []
    result = run_sweep(_config(dataset, runs), on_event=lambda kind, record: events.append((kind, record["trial"])))
    assert sorted(t for k, t in events if k == "skip") == ["od3/concat-gru-s0", "od3/film-gru-s0"]
    records = {r["trial"]: r for r in result.trials}
    assert records["od3/film-gru-s1"]["result"]["resumed"] is True
    assert records["od3/concat-gru-s1"]["result"]["resumed"] is False  # nothing finished: started afresh
    assert all(r["status"] == "done" for r in result.trials)
    assert (runs / "od3" / "concat-gru-s0" / "last.safetensors").stat().st_mtime_ns == untouched
    for name in ("concat-gru-s1", "film-gru-s1"):  # same numbers as the uninterrupted sweep
        assert _metrics(runs / "od3" / name) == _metrics(done_runs / "od3" / name)

    longer = run_sweep(_config(dataset, runs, conds=["concat"], seeds=[0], overrides={"max_epochs": 2}))
    assert longer.trials[0]["result"]["resumed"] is True and longer.trials[0]["result"]["epochs"] == 2
    assert len(json.loads((runs / "od3" / "concat-gru-s0" / "metrics.json").read_text())) == 2
    assert len(json.loads((runs / SWEEP_FILE).read_text())["trials"]) == 4  # trials of the earlier sweep are kept

    other = run_sweep(_config(dataset, runs, conds=["film"], seeds=[0], retries=0, overrides={"lr": 0.5}))
    assert other.trials[0]["status"] == "failed" and "other settings" in other.trials[0]["error"]


def test_bad_sweep_requests_are_clear_errors(dataset, tmp_path):
    with pytest.raises(ModelError, match="unknown cond"):
        _config(dataset, tmp_path, conds=["nope"])
    with pytest.raises(ModelError, match="distinct"):
        _config(dataset, tmp_path, seeds=[1, 1])
    with pytest.raises(ModelError, match="at least one dataset"):
        SweepConfig(datasets=[])
    twin = tmp_path / "elsewhere" / "od3"
    shutil.copytree(dataset, twin)
    with pytest.raises(ModelError, match="share the name"):
        run_sweep(SweepConfig(datasets=[dataset, twin], runs_dir=tmp_path / "runs"))


@pytest.mark.slow
def test_a_sweep_through_ray_gives_the_same_runs(dataset, inline_sweep, tmp_path, ray_local):
    _, inline_runs, _ = inline_sweep
    result = run_sweep(_config(dataset, tmp_path / "runs", workers=None, ray="auto"))
    assert [r["status"] for r in result.trials] == ["done"] * 4
    for record in result.trials:
        assert _metrics(tmp_path / "runs" / record["trial"]) == _metrics(inline_runs / record["trial"])
    assert comparison_table(sorted((tmp_path / "runs" / "od3").glob("*-s*")))["esr"].notna().all()
    assert ray_local.is_initialized()


@pytest.mark.slow
def test_worker_processes_report_a_failure_with_its_traceback(dataset, tmp_path):
    runs = tmp_path / "runs"
    (runs / "od3").mkdir(parents=True)
    (runs / "od3" / "concat-gru-s0").write_text("a file where the run folder should be")
    result = run_sweep(_config(dataset, runs, conds=["concat"], seeds=[0, 1], retries=0, workers=2))
    records = {r["seed"]: r for r in result.trials}
    assert records[1]["status"] == "done"
    assert records[0]["status"] == "failed" and records[0]["error"].startswith(("FileExistsError", "NotADirectoryError"))
    assert "concat-gru-s0" in records[0]["error"] and "Traceback" in records[0]["traceback"] and "train.py" in records[0]["traceback"]
