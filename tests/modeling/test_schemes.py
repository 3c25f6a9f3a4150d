"""The scheme registry: one record per scheme, read by config, build, compute, presets, compare and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fxcap.errors import ModelError
from fxcap.modeling.concat import ConcatRNN
from fxcap.modeling.config import CONDS, ModelConfig
from fxcap.modeling.schemes import BUILTIN_SCHEMES, Scheme, get_scheme, register_scheme, scheme_for_class, scheme_names, unregister_scheme


class ToyRNN(ConcatRNN):
    """A fifth scheme for the test: Concat's maths under another class (so no fast path of its own)."""


@pytest.fixture
def toy():
    """The toy scheme, registered with one call for the test and removed afterwards."""
    scheme = register_scheme(Scheme("toyscheme", model=ToyRNN, lr={"quick": 7e-3}, batch_size={"quick": 3}, max_epochs={"quick": 4}, paper_gflops={"gru": 0.5}))
    try:
        yield scheme
    finally:
        unregister_scheme("toyscheme")


def test_builtin_records_hold_everything_about_a_scheme():
    import fxcap.modeling.fast  # noqa: F401  (attaches the fast paths)

    assert CONDS == BUILTIN_SCHEMES == ("concat", "film", "statichyper", "dynamichyper")
    assert scheme_names()[:4] == list(BUILTIN_SCHEMES)
    for name in BUILTIN_SCHEMES:
        scheme = get_scheme(name)
        assert scheme.fast_plan is not None and scheme.fast_run is not None, name
        assert scheme_for_class(scheme.model_class()) is scheme
        assert "gru" in scheme.paper_gflops
    assert get_scheme("concat").lr == {"quick": 1e-2, "default": 1e-2}
    assert get_scheme("film").lr == {} and get_scheme("film").batch_size == {} and get_scheme("film").max_epochs == {}


def test_a_fifth_scheme_is_one_registration(toy, tmp_path, monkeypatch):
    from fxcap.modeling.compare import dataset_runs
    from fxcap.modeling.compute import compute_cost, paper_gflops
    from fxcap.modeling.pipeline import PRESETS, preset_config
    from fxcap.modeling.registry import build_model, registered_models

    # config and build
    config = ModelConfig(cond="toyscheme")
    model = build_model(config)
    assert type(model) is ToyRNN and "toyscheme" in registered_models()
    assert scheme_for_class(ToyRNN) is toy and toy.fast_plan is None  # a subclass gets no fast path of its parent's
    with torch.no_grad():
        y, _ = model(torch.zeros(1, 16), torch.zeros(1, 2))
    assert y.shape == (1, 16)
    # compute and the paper's reference figure
    assert compute_cost(config, 48000)["parameters"] == compute_cost(ModelConfig(cond="concat"), 48000)["parameters"]
    assert paper_gflops()[("toyscheme", "gru")] == 0.5
    # its learning rate, batch size and epochs in a preset, the others left alone
    quick = preset_config("quick", "toyscheme")
    assert (quick.lr, quick.batch_size, quick.max_epochs) == (7e-3, 3, 4)
    assert preset_config("default", "toyscheme").lr == PRESETS["default"].lr
    assert preset_config("default", "toyscheme").batch_size == PRESETS["default"].batch_size
    assert preset_config("default", "toyscheme").max_epochs == PRESETS["default"].max_epochs
    # compare lists it after the built-ins and before unknown schemes
    for name in ("zzz-gru-s0", "toyscheme-gru-s0", "film-gru-s0", "concat-gru-s0"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "evaluation.json").write_text(json.dumps({}))
    assert [run.name for run in dataset_runs(tmp_path)] == ["concat-gru-s0", "film-gru-s0", "toyscheme-gru-s0", "zzz-gru-s0"]
    # `fxcap train --cond all` trains it too
    import fxcap.modeling.pipeline as pipeline
    from fxcap.cli import app

    seen = []

    def fake_train_models(request, console=None):
        seen.append(request.conds)
        return pipeline.TrainResults(runs=[], comparison=None, runs_root=tmp_path)

    monkeypatch.setattr(pipeline, "train_models", fake_train_models)
    result = CliRunner().invoke(app, ["train", "--cond", "all", "--no-evaluate"])
    assert result.exit_code == 0, result.output
    assert seen == [scheme_names()]  # every registered scheme (other tests may have registered more)
    assert seen[0][:4] == list(BUILTIN_SCHEMES) and "toyscheme" in seen[0]


def test_unregistered_scheme_is_refused_again(toy):
    unregister_scheme("toyscheme")
    with pytest.raises(ModelError, match="unknown conditioning scheme 'toyscheme'; choose one of concat, film"):
        ModelConfig(cond="toyscheme")


def test_a_name_cannot_be_taken_by_another_class(toy):
    class Other(ConcatRNN):
        pass

    with pytest.raises(ModelError, match="already registered to ToyRNN"):
        register_scheme(Scheme("toyscheme", model=Other))
    register_scheme(Scheme("toyscheme", model=ToyRNN, lr={"quick": 1e-3}))  # same class: the record is updated
    assert get_scheme("toyscheme").lr == {"quick": 1e-3}
