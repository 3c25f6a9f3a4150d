"""The capture side of the adaptive plan: its space-filling start, its budget and the batches appended to it."""

import pytest

from fxcap.capture.plan import PlanBatch, PlanConfig, append_batch, budget_left, make_plan, plan_from_dict, plan_to_dict
from fxcap.capture.profiles import LA2A, OD3


def _adaptive(knobs, takes=12, **kwargs):
    return PlanConfig(knobs=knobs, kind="adaptive", takes=takes, **kwargs)


def test_two_knobs_start_at_the_corners_and_the_centre():
    takes = make_plan(OD3, _adaptive(["drive", "tone"], fixed={"level": 7}))
    assert {(t.knobs["drive"], t.knobs["tone"]) for t in takes} == {(0, 0), (0, 10), (10, 0), (10, 10), (5, 5)}
    assert all(t.knobs["level"] == 7 and t.origin == "initial" and t.score is None for t in takes)
    assert [t.knobs["drive"] for t in make_plan(OD3, _adaptive(["drive"]))] == [0.0, 10.0, 5.0]


def test_three_knobs_start_with_a_latin_hypercube():
    takes = make_plan(OD3, _adaptive(["drive", "tone", "level"], seed=2))
    assert len(takes) == 6
    for name in ("drive", "tone", "level"):
        assert sorted(int(t.knobs[name] / 10 * 6) for t in takes) == list(range(6))


def test_a_switch_takes_its_end_values_in_the_corners():
    takes = make_plan(LA2A, _adaptive(["peak_reduction", "mode"]))
    assert {t.knobs["mode"] for t in takes} == {"compress", "limit"} and len(takes) == 5


@pytest.mark.parametrize("config, match", [
    (_adaptive(["drive", "tone"], takes=5), "starts with 5 settings .*--takes 6"),
    (_adaptive([]), "at least one --knob"),
    (_adaptive(["drive"], reference_every=2), "--reference-every is not available"),
    (_adaptive(["drive"], batch=0), "--batch must be 1 or more"),
])
def test_adaptive_plans_refuse_what_cannot_work(config, match):
    with pytest.raises(ValueError, match=match):
        make_plan(OD3, config)


def test_batches_append_after_the_stored_takes_and_use_the_budget():
    config = _adaptive(["drive", "tone"], takes=8, batch=2)
    plan = plan_to_dict(config, make_plan(OD3, config))
    assert plan["adaptive"] == {"budget": 8, "batch": 2, "initial": 5, "batches": []} and budget_left(plan) == 3
    added = append_batch(plan, PlanBatch([OD3.complete({"drive": 7.5}), OD3.complete({"tone": 2.5})], [0.3, 0.2],
                                         {"trained_on": ["take-0001"]}))
    assert [t.index for t in added] == [6, 7] and all(t.origin == "adaptive" and t.batch == 1 for t in added)
    assert budget_left(plan) == 1 and plan["adaptive"]["batches"] == [{"batch": 1, "takes": ["take-0006", "take-0007"],
                                                                      "trained_on": ["take-0001"]}]
    assert plan_from_dict(plan)[-2:] == added and [t.score for t in added] == [0.3, 0.2]
    append_batch(plan, PlanBatch([OD3.complete({"drive": 1.0})] * 3, [0.1] * 3), budget=10)
    assert plan["adaptive"]["budget"] == 10 and budget_left(plan) == 0


def test_other_plans_keep_their_manifest_entry():
    config = PlanConfig(knobs=["drive"], steps=3)
    plan = plan_to_dict(config, make_plan(OD3, config))
    assert "batch" not in plan and "adaptive" not in plan and budget_left(plan) == 0
    assert set(plan["takes"][0]) == {"index", "knobs", "is_reference"}


def test_a_batch_needs_one_score_per_setting():
    with pytest.raises(ValueError, match="one score per setting"):
        PlanBatch([OD3.defaults()], [])
