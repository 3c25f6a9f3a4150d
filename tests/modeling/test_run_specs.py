"""One orchestrator for ``fxcap train`` and ``fxcap sweep`` (fxcap.modeling.pipeline): the same request expands
into the same run specs and run folders, and both start every run through ``start_run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fxcap.modeling.pipeline as pipeline
import fxcap.modeling.sweep as sweep
from fxcap.dataset import load_dataset_info
from fxcap.dataset.remote import locate
from fxcap.errors import ModelError
from fxcap.modeling.pipeline import RunGrid, RunOutcome, RunSpec, TrainRequest, plan_runs, train_models
from fxcap.modeling.sweep import SweepConfig, run_sweep
from fxcap.modeling.train import RunResult

TINY = {"window": 256, "batch_size": 2, "steps_per_epoch": 2, "max_epochs": 1, "valid_windows": 4}


@pytest.fixture
def dataset(tiny_dataset):
    """The modeling tests' tiny dataset (conftest), named ``dataset``: its runs go to ``<runs>/dataset``."""
    return tiny_dataset


def _requests(dataset, runs, seed=3):
    train = TrainRequest(conds=["film", "concat"], dataset=dataset, runs_dir=runs, preset="quick", seed=seed, evaluate=False,
                         overrides=dict(TINY), model_overrides={"hidden_size": 8})
    swept = SweepConfig(datasets=[dataset], conds=["film", "concat"], seeds=[seed], runs_dir=runs, preset="quick",
                        overrides=dict(TINY), model_overrides={"hidden_size": 8}, workers=1, retries=0)
    return train, swept


def test_train_and_sweep_expand_the_same_request_into_the_same_runs(dataset, tmp_path):
    train, swept = _requests(dataset, tmp_path / "runs")
    by_train = plan_runs(train.grid(locate(dataset)))
    by_sweep = plan_runs(swept.grid())
    runs = tmp_path / "runs" / "dataset"
    assert [s.run_dir for s in by_train] == [s.run_dir for s in by_sweep] == [runs / "film-gru-s3", runs / "concat-gru-s3"]
    assert [s.key for s in by_sweep] == ["dataset/film-gru-s3", "dataset/concat-gru-s3"]
    assert [s.to_dict() for s in by_train] == [s.to_dict() for s in by_sweep]
    assert [s.model.seed for s in by_train] == [3, 3]  # the seed seeds the initial weights too, in both commands
    film, concat = by_train
    assert (film.train.seed, film.train.max_epochs, film.model.hidden_size, film.model.num_knobs) == (3, 1, 8, 1)
    assert concat.train.lr == pipeline.preset_config("quick", "concat").lr != film.train.lr  # the scheme's own rate
    assert film.dataset_hash == load_dataset_info(dataset).dataset_hash and film.dataset == str(dataset)
    assert not runs.exists()  # planning touches no run folder


def test_the_grid_order_is_datasets_cells_schemes_seeds_and_specs_travel_as_plain_data(dataset, tmp_path):
    grid = RunGrid(datasets=(dataset,), conds=("concat", "film"), cells=("gru", "lstm"), seeds=(0, 1), runs_dir=tmp_path,
                   preset="quick", overrides=TINY, threads=2)
    specs = plan_runs(grid)
    assert [s.run_dir.name for s in specs] == [f"{c}-{cell}-s{s}" for cell in ("gru", "lstm") for c in ("concat", "film")
                                               for s in (0, 1)]
    assert all(s.train.threads == 2 and s.model.seed == s.train.seed for s in specs)
    plain = json.loads(json.dumps(specs[5].to_dict()))  # what a worker process or a Ray task receives
    assert RunSpec.from_dict(plain) == specs[5]


def test_a_bad_setting_or_colliding_datasets_fail_before_any_run(dataset, tmp_path):
    with pytest.raises(ModelError, match="unknown preset"):
        plan_runs(RunGrid(datasets=(dataset,), conds=("concat",), preset="fast"))
    with pytest.raises(ModelError, match="lr_schedule"):
        plan_runs(RunGrid(datasets=(dataset,), conds=("concat",), overrides={"lr_schedule": "linear"}))
    twin = tmp_path / "elsewhere" / "dataset"
    twin.parent.mkdir()
    twin.symlink_to(dataset, target_is_directory=True)
    with pytest.raises(ModelError, match="share the name 'dataset'"):
        plan_runs(RunGrid(datasets=(dataset, twin), conds=("concat",)))


def test_train_and_sweep_start_every_run_through_start_run(dataset, tmp_path, monkeypatch):
    """Both commands hand the same specs to ``start_run``; train with its --resume/--force, the sweep resuming."""
    started: dict[str, list] = {"train": [], "sweep": []}

    def recorder(who):
        def start_run(spec, *, resume, force=False, evaluate=True, console=None, cache=None):
            started[who].append((spec, resume, force, evaluate))
            result = RunResult(run_dir=spec.run_dir, epochs=1, best_valid_loss=0.5, stopped_early=False)
            return RunOutcome(spec, result, {"test": {"esr": 0.25}} if evaluate else None)
        return start_run

    monkeypatch.setattr(pipeline, "start_run", recorder("train"))
    monkeypatch.setattr(sweep, "start_run", recorder("sweep"))
    train, swept = _requests(dataset, tmp_path / "runs")
    train.resume, train.force = False, True
    results = train_models(train)
    outcome = run_sweep(swept)

    assert results.runs == [spec.run_dir for spec, *_ in started["train"]]
    assert [s for s, *_ in started["train"]] == [s for s, *_ in started["sweep"]]
    assert [(r, f, e) for _, r, f, e in started["train"]] == [(False, True, False)] * 2
    assert [(r, f, e) for _, r, f, e in started["sweep"]] == [(True, False, True)] * 2
    assert [t["run_dir"] for t in outcome.trials] == [str(s.run_dir) for s, *_ in started["sweep"]]
    assert [t["result"]["test"] for t in outcome.trials] == [{"esr": 0.25}] * 2
    assert results.comparison is None and not outcome.comparisons  # nothing evaluated on disk: nothing compared
    assert all(isinstance(p, Path) for p in results.runs)
