import numpy as np
import pytest

from fxcap.capture.plan import PlanConfig, make_plan, parse_settings, plan_from_dict, plan_to_dict
from fxcap.capture.profiles import LA2A, OD3


def test_single_knob_sweep_has_evenly_spaced_values_and_defaults():
    takes = make_plan(OD3, PlanConfig(knobs=["drive"], steps=11, fixed={"tone": 7}))
    assert [t.knobs["drive"] for t in takes] == pytest.approx(np.linspace(0, 10, 11))
    assert all(t.knobs["tone"] == 7 and t.knobs["level"] == 5 for t in takes)
    assert [t.index for t in takes] == list(range(1, 12))
    assert takes[0].take_id == "take-0001"


def test_grid_of_two_knobs_and_per_knob_steps():
    takes = make_plan(OD3, PlanConfig(knobs=["drive", "tone"], steps={"drive": 5, "tone": 3}))
    pairs = {(t.knobs["drive"], t.knobs["tone"]) for t in takes}
    assert len(takes) == 15 and len(pairs) == 15


def test_switch_takes_all_values():
    takes = make_plan(LA2A, PlanConfig(knobs=["peak_reduction", "mode"], steps=3))
    assert sorted({t.knobs["mode"] for t in takes}) == ["compress", "limit"]
    assert len(takes) == 6


def test_lhs_covers_every_stratum_once_and_is_seeded():
    config = PlanConfig(knobs=["drive", "tone"], kind="lhs", takes=8, seed=3)
    takes = make_plan(OD3, config)
    for name in ("drive", "tone"):
        strata = sorted(int(t.knobs[name] / 10 * 8) for t in takes)
        assert strata == list(range(8))
    assert make_plan(OD3, config) == takes
    assert make_plan(OD3, PlanConfig(knobs=["drive", "tone"], kind="lhs", takes=8, seed=4)) != takes


def test_reference_retakes_and_shuffle():
    takes = make_plan(OD3, PlanConfig(knobs=["drive"], steps=6, reference_every=3, shuffle=True, seed=1))
    refs = [t for t in takes if t.is_reference]
    assert len(takes) == 6 + 3 and len(refs) == 3
    assert takes[0].is_reference and takes[-1].is_reference
    assert all(t.knobs == OD3.defaults() for t in refs)
    swept = [t.knobs["drive"] for t in takes if not t.is_reference]
    assert sorted(swept) == pytest.approx(np.linspace(0, 10, 6)) and swept != sorted(swept)


def test_plan_round_trips_through_manifest_dict():
    config = PlanConfig(knobs=["drive"], steps=4, reference_every=2)
    takes = make_plan(OD3, config)
    assert plan_from_dict(plan_to_dict(config, takes)) == takes


@pytest.mark.parametrize(
    "config, message",
    [
        (PlanConfig(knobs=["fuzz"]), "no knob 'fuzz'"),
        (PlanConfig(knobs=["drive"], steps=1), "at least 2 steps"),
        (PlanConfig(knobs=["drive"], fixed={"drive": 3}), "both swept and fixed"),
        (PlanConfig(knobs=["drive"], kind="sobol"), "grid, lhs"),
        (PlanConfig(fixed={"tone": 12}), "0..10"),
    ],
)
def test_bad_plans_give_clear_errors(config, message):
    with pytest.raises(ValueError, match=message):
        make_plan(OD3, config)


def test_parse_settings():
    assert parse_settings(["tone=5", "Level=2.5"], OD3) == {"tone": 5.0, "level": 2.5}
    assert parse_settings(["mode=limit"], LA2A) == {"mode": "limit"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_settings(["tone"], OD3)
    with pytest.raises(ValueError, match="must be a number"):
        parse_settings(["tone=loud"], OD3)
