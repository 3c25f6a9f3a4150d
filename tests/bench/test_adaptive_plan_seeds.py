"""bench/adaptive_plan.py's takes-to-reach and bench/adaptive_plan_seeds.py's combination of seeds."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from adaptive_plan import takes_to_reach  # noqa: E402
from adaptive_plan_seeds import CombineError, combine, main, merge_run  # noqa: E402

CONFIG = {"device": "od3", "budgets": [5, 9], "steps": 100, "dense": 5, "scheme": "film", "batch": 4, "epochs": 2,
          "steps_per_epoch": 50, "acquisition": "disagreement", "committee_scheme": "film", "committee_steps": 300,
          "misfit_weights": [1.0]}


def _run(seed: int, grid: dict[int, float], adaptive: dict[int, float]) -> dict:
    points = [{"plan": "grid", "takes": t, "esr_mean": e, "esr_worst": 2 * e} for t, e in grid.items()]
    points += [{"plan": "adaptive m=1", "takes": t, "esr_mean": e, "esr_worst": 2 * e} for t, e in adaptive.items()]
    return {"config": {**CONFIG, "seed": seed, "work": f"/tmp/w{seed}"}, "points": points, "device": "od3",
            "knobs": ["drive", "tone"], "wall_s": 60.0}


def test_takes_to_reach_interpolates_log_esr_between_budgets():
    # log ESR halfway between 0.4 and 0.1 is 0.2: reached halfway between 5 and 9 takes
    assert takes_to_reach([(5, 0.4), (9, 0.1)], 0.2) == (pytest.approx(7.0), "interpolated")
    assert takes_to_reach([(9, 0.1), (5, 0.05)], 0.2) == (5.0, "at or before its first point")
    assert takes_to_reach([(5, 0.4), (9, 0.3)], 0.2) == (None, "not reached")
    # the first crossing counts, not a later one
    assert takes_to_reach([(5, 0.4), (9, 0.1), (13, 0.4), (17, 0.05)], 0.2)[0] == pytest.approx(7.0)


def test_combine_takes_the_geometric_mean_over_seeds_and_reaches_the_grid_on_it():
    runs = [_run(0, {4: 0.4, 9: 0.1}, {5: 0.2, 9: 0.05}), _run(1, {4: 0.1, 9: 0.4}, {5: 0.8, 9: 0.2})]
    combined = combine(runs)
    rows = {(r["plan"], r["takes"]): r for r in combined["rows"]}
    assert rows[("grid", 9)]["per_seed"] == [0.1, 0.4]
    assert rows[("grid", 9)]["geometric_mean"] == pytest.approx(0.2)  # not the arithmetic 0.25
    assert rows[("adaptive m=1", 5)]["geometric_mean"] == pytest.approx(0.4)
    assert rows[("adaptive m=1", 9)]["geometric_mean"] == pytest.approx(0.1)
    reach = combined["reach"]
    assert reach["target_esr"] == pytest.approx(0.2) and reach["grid_takes"] == 9
    adaptive = reach["plans"]["adaptive m=1"]
    # log ESR from 0.4 (5 takes) to 0.1 (9 takes) crosses 0.2 at 7 takes
    assert adaptive["takes"] == pytest.approx(7.0) and adaptive["saved_takes"] == pytest.approx(2.0)
    assert adaptive["half_or_fewer"] is False
    assert combine(runs, "esr_worst")["reach"]["target_esr"] == pytest.approx(0.4)


def test_combine_refuses_runs_of_other_configurations_a_repeated_seed_or_missing_points():
    run0 = _run(0, {4: 0.4}, {5: 0.2})
    other = _run(1, {4: 0.4}, {5: 0.2})
    other["config"]["steps"] = 200
    with pytest.raises(CombineError, match="steps"):
        combine([run0, other])
    with pytest.raises(CombineError, match="seed given twice"):
        combine([run0, _run(0, {4: 0.4}, {5: 0.2})])
    with pytest.raises(CombineError, match="in 1 of 2 runs"):
        combine([run0, _run(1, {4: 0.4}, {5: 0.2, 9: 0.1})])
    with pytest.raises(CombineError, match="no runs"):
        combine([])
    older = _run(1, {4: 0.4}, {5: 0.2})
    run0["config"]["distance_power"] = 0.0  # a field added later, at its default: the runs still combine
    assert combine([run0, older])["seeds"] == [0, 1]
    run0["config"]["distance_power"] = 2.0
    with pytest.raises(CombineError, match="distance_power"):
        combine([run0, older])


def test_main_writes_json_and_markdown_and_refuses_unreadable_files(tmp_path, capsys):
    files = []
    for seed, esr in ((0, 0.3), (1, 0.12)):
        path = tmp_path / f"s{seed}.json"
        path.write_text(json.dumps(_run(seed, {4: esr, 9: esr / 2}, {5: esr, 9: esr / 4})))
        files.append(str(path))
    out = tmp_path / "seeds.json"
    main([*files, "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["combined"]["seeds"] == [0, 1]
    assert written["combined"]["reach"]["target_esr"] == pytest.approx(math.sqrt(0.15 * 0.06))
    text = out.with_suffix(".md").read_text()
    assert "| grid | 9 | 0.150 | 0.060 |" in text and "seed 1" in text
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read the runs"):
        main([str(bad), "--out", str(out)])


def _scored(run: dict, esr_by_drive: dict[str, dict[float, float]]) -> dict:
    """``run`` with per-setting rows: plan -> {drive: ESR} (one knob), means from them."""
    for point in run["points"]:
        rows = esr_by_drive[point["plan"]]
        point["per_setting"] = [{"drive": d, "esr": e} for d, e in rows.items()]
    return run


def test_a_run_of_other_adaptive_settings_joins_its_seed_on_the_settings_both_scored():
    main_run = _scored(_run(0, {4: 0.0}, {5: 0.0}), {"grid": {1.0: 0.1, 2.0: 0.3, 3.0: 0.5}, "adaptive m=1": {1.0: 0.2, 2.0: 0.2, 3.0: 0.2}})
    extra = _scored(_run(0, {}, {5: 0.0}), {"adaptive m=1": {2.0: 0.05, 3.0: 0.15, 4.0: 9.0}})
    extra["config"].update(distance_power=2.0, plans=["adaptive"])
    merged = merge_run(main_run, extra)
    by_plan = {p["plan"]: p for p in merged["points"]}
    assert set(by_plan) == {"grid", "adaptive m=1", "adaptive m=1, distance_power=2.0"}
    # drive 1 was captured by the other run's plan, drive 4 by this one's: both left out of every mean
    assert by_plan["grid"]["esr_mean"] == pytest.approx(0.4) and by_plan["grid"]["esr_worst"] == 0.5
    assert by_plan["adaptive m=1, distance_power=2.0"]["esr_mean"] == pytest.approx(0.1)
    assert all(p["scored"] == 2 for p in merged["points"])
    with pytest.raises(CombineError, match="same adaptive settings"):
        merge_run(main_run, _scored(_run(0, {}, {5: 0.0}), {"adaptive m=1": {2.0: 0.1}}))
    with pytest.raises(CombineError, match="seed 1"):
        merge_run(main_run, {**extra, "config": {**extra["config"], "seed": 1}})


def test_a_field_a_run_lacks_counts_at_its_default_when_runs_join():
    old = _scored(_run(0, {4: 0.0}, {5: 0.0}), {"grid": {1.0: 0.1, 2.0: 0.3}, "adaptive m=1": {1.0: 0.2, 2.0: 0.2}})
    assert "distance_power" not in old["config"] and "score_by" not in old["config"]  # written before those fields
    new = _scored(_run(0, {}, {5: 0.0}), {"adaptive m=1": {1.0: 0.05, 2.0: 0.15}})
    new["config"].update(distance_power=0.0, score_by="output_change", plans=["adaptive"])
    labels = [p["plan"] for p in merge_run(old, new)["points"]]
    assert labels[-1] == "adaptive m=1, score_by=output_change"  # distance_power 0.0 is the default: not a difference
