"""ModelConfig and the model registry."""

from __future__ import annotations

import json

import pytest
import torch

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.concat import ConcatRNN
from fxcap.modeling.config import CONDS, ModelConfig
from fxcap.modeling.registry import build_model, register_model, registered_models


def test_every_scheme_is_registered():
    assert set(CONDS) <= set(registered_models())
    for cond in CONDS:
        for cell in ("gru", "lstm"):
            model = build_model(ModelConfig(cond=cond, cell=cell))
            assert isinstance(model, ConditionedRNN) and model.config.cond == cond


def test_config_round_trips_through_json():
    config = ModelConfig(cond="dynamichyper", cell="lstm", num_knobs=3, dynamic_hidden=8, dynamic_nz=8, seed=5)
    data = json.loads(json.dumps(config.to_dict()))
    assert ModelConfig.from_dict(data) == config
    assert isinstance(data["film_hidden"], list)
    model_a, model_b = build_model(config), build_model(data)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(a, b)


def test_nz_default_depends_on_cell():
    assert ModelConfig(cell="gru").nz == 12
    assert ModelConfig(cell="lstm").nz == 6
    assert ModelConfig(cell="lstm", dynamic_nz=9).nz == 9
    assert ModelConfig(cell="lstm").to_dict()["dynamic_nz"] is None  # stays "the cell's default"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cond": "flim"}, "unknown conditioning scheme 'flim'"),
        ({"cell": "rnn"}, "unknown cell 'rnn'"),
        ({"num_knobs": 0}, "num_knobs must be a positive integer"),
        ({"mlp_activation": "swish"}, "unknown mlp_activation"),
        ({"film_hidden": []}, "film_hidden must be a non-empty list"),
        ({"dynamic_nz": 0}, "dynamic_nz must be a positive integer"),
    ],
)
def test_bad_config_values_are_refused(kwargs, message):
    with pytest.raises(ModelError, match=message):
        ModelConfig(**kwargs)


def test_unknown_fields_are_refused():
    with pytest.raises(ModelError, match="unknown field"):
        ModelConfig.from_dict({"cond": "film", "hiden": 3})
    with pytest.raises(ModelError, match="JSON object"):
        ModelConfig.from_dict(["film"])


def test_register_model_extends_the_registry():
    @register_model("concat-test-variant")
    class Variant(ConcatRNN):
        pass

    model = build_model(ModelConfig(cond="concat-test-variant"))
    assert type(model) is Variant
    with pytest.raises(ModelError, match="already registered"):
        register_model("concat-test-variant")(ConcatRNN)


def test_activation_option_changes_the_mlp():
    model = build_model(ModelConfig(cond="film", mlp_activation="relu"))
    assert any(isinstance(m, torch.nn.ReLU) for m in model.film)
