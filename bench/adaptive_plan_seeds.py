"""Issue 16's three-plan curve over several seeds: combines runs of ``bench/adaptive_plan.py``.

One run of ``adaptive_plan.py`` trains one model per point from one seed, and the spread between two
seeds of one point is as large as the differences between plans. This script takes runs that differ
only in ``--seed`` (each seed re-captures the plans: the Latin hypercube, the adaptive committee and the
virtual rig all take it) and reports, for every plan and number of takes, each seed's mean held-out ESR
and their geometric mean (the mean of log ESR, so one bad seed does not swamp the others), then the
takes each plan needs to reach the grid's geometric-mean ESR at its largest budget, on the
geometric-mean curves (log ESR interpolated linearly between budgets, as in ``adaptive_plan.py``)::

    python bench/adaptive_plan.py --budgets 5 9 13 --steps 2500 --seed 0 --out s0.json   # one per seed
    python bench/adaptive_plan_seeds.py s0.json s1.json s2.json --out bench/results/adaptive-plan-od3-seeds.json
    python bench/adaptive_plan_seeds.py s0.json s1.json --with d0.json d1.json   # + curves of other adaptive settings

Each seed scores its models at the dense settings that none of *its* plans captured, so the held-out
settings differ a little between seeds (always 72 of the 81 of a 9 x 9 grid with budgets 5, 9, 13).

Prints the table and writes JSON (every seed's numbers and the combined curve) and the markdown beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from adaptive_plan import BenchConfig, reach_lines, reach_of_curves  # noqa: E402

VARYING = ("seed", "work")
"""Configuration fields allowed to differ between the runs combined (everything else must agree)."""


class CombineError(ValueError):
    """The runs cannot be combined (different configurations, a seed twice, no runs)."""


def filled(config: dict[str, Any]) -> dict[str, Any]:
    """A run's configuration with every field of :class:`BenchConfig` it lacks (it was written before
    the field existed) at the default it had then; tuples as the lists JSON reads back."""
    defaults = {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
                for f in fields(BenchConfig) if f.default is not MISSING}
    return {**defaults, **config}


def check_runs(runs: list[dict[str, Any]]) -> list[int]:
    """The seeds of ``runs``, in order; raises :class:`CombineError` unless they share one configuration."""
    if not runs:
        raise CombineError("no runs to combine: give the JSON files written by bench/adaptive_plan.py")
    names = set().union(*(r["config"] for r in runs)) - set(VARYING)
    shared = [{k: v for k, v in filled(r["config"]).items() if k in names} for r in runs]
    for i, other in enumerate(shared[1:], start=1):
        if other != shared[0]:
            differ = sorted(k for k in set(other) | set(shared[0]) if other.get(k) != shared[0].get(k))
            raise CombineError(f"run {i + 1} differs from the first in {', '.join(differ)}: combine runs that differ only in --seed")
    seeds = [int(r["config"]["seed"]) for r in runs]
    if len(set(seeds)) != len(seeds):
        raise CombineError(f"seed given twice ({seeds}): combine runs of different seeds")
    return seeds


CURVE_FIELDS = ("plans", "misfit_weights")
"""Configuration fields that only choose which curves a run has (a run merged in may differ in them)."""


def _setting_key(row: dict[str, Any]) -> tuple:
    return tuple(sorted((k, v) for k, v in row.items() if k != "esr"))


def merge_run(run: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``run`` with the curves of ``extra`` (a run of the same seed with other adaptive settings) added,
    labelled by the settings they differ in (``adaptive m=1, distance_power=2``); every point's mean and
    worst held-out ESR are then taken over the dense settings both runs scored (each run leaves out
    what its own plans captured), so the curves compare on the same settings."""
    if run["config"]["seed"] != extra["config"]["seed"]:
        raise CombineError(f"a run of seed {extra['config']['seed']} cannot join the run of seed {run['config']['seed']}")
    ignored = set(VARYING) | set(CURVE_FIELDS)
    mine, theirs = filled(run["config"]), filled(extra["config"])
    differ = sorted(k for k in set(mine) | set(theirs) if k not in ignored and mine.get(k) != theirs.get(k))
    if not differ:
        raise CombineError("the run merged in has the same adaptive settings: give it to the seeds' list instead")
    suffix = ", ".join(f"{k}={theirs.get(k)}" for k in differ)
    common = set.intersection(*({_setting_key(r) for r in p["per_setting"]} for p in run["points"] + extra["points"]))
    if not common:
        raise CombineError("the two runs scored no dense setting in common")
    points = []
    for point, label in [(p, p["plan"]) for p in run["points"]] + [(p, f"{p['plan']}, {suffix}") for p in extra["points"]]:
        kept = [r for r in point["per_setting"] if _setting_key(r) in common]
        points.append({**point, "plan": label, "esr_mean": sum(r["esr"] for r in kept) / len(kept),
                       "esr_worst": max(r["esr"] for r in kept), "scored": len(kept)})
    return {**run, "points": points}


def geometric_mean(values: list[float]) -> float:
    """``exp(mean(log(values)))`` of positive values."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def combine(runs: list[dict[str, Any]], metric: str = "esr_mean") -> dict[str, Any]:
    """Per plan and takes, each seed's ``metric`` and their geometric mean; the takes each plan needs
    to reach the grid's geometric mean at the grid's largest budget, on the geometric-mean curves."""
    seeds = check_runs(runs)
    curves: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        for point in run["points"]:
            curves.setdefault(point["plan"], {}).setdefault(int(point["takes"]), []).append(float(point[metric]))
    rows = []
    for plan, by_takes in curves.items():
        for takes in sorted(by_takes):
            values = by_takes[takes]
            if len(values) != len(runs):
                raise CombineError(f"{plan} at {takes} takes is in {len(values)} of {len(runs)} runs: combine runs of the same budgets")
            rows.append({"plan": plan, "takes": takes, "per_seed": values, "geometric_mean": geometric_mean(values),
                         "min": min(values), "max": max(values)})
    curves = {plan: [(r["takes"], r["geometric_mean"]) for r in rows if r["plan"] == plan] for plan in curves}
    return {"metric": metric, "seeds": seeds, "rows": rows, "reach": reach_of_curves(curves)}


def markdown(combined: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """The table (a column per seed, then the geometric mean and the spread) and the takes to reach the grid."""
    seeds = combined["seeds"]
    c = runs[0]["config"]
    wall = sum(r["wall_s"] for r in runs) / 60
    lines = [
        f"Virtual {runs[0]['device']} ({' x '.join(runs[0]['knobs'])}), `short` signal, seeds {', '.join(map(str, seeds))}; "
        f"one {c['scheme']} GRU per point and seed ({c['epochs'] * c['steps_per_epoch']} steps of the `quick` preset, "
        f"one thread); mean held-out ESR at the settings of a {c['dense']} x {c['dense']} grid no plan of that seed "
        f"captured. Adaptive: batches of {c['batch']}, acquisition {c['acquisition']}, committee of "
        f"{c['committee_scheme']} members ({c['committee_steps']} steps). {wall:.0f} min wall in all.",
        "",
        "| plan | takes | " + " | ".join(f"seed {s}" for s in seeds) + " | geometric mean | range |",
        "|---|---:|" + "---:|" * len(seeds) + "---:|---|",
    ]
    for r in combined["rows"]:
        lines.append(f"| {r['plan']} | {r['takes']} | " + " | ".join(f"{v:.3f}" for v in r["per_seed"])
                     + f" | **{r['geometric_mean']:.3f}** | {r['min']:.3f}-{r['max']:.3f} |")
    if combined["reach"]:
        lines += ["", *reach_lines(combined["reach"], "geometric-mean held-out ESR")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="JSON files of bench/adaptive_plan.py, one per seed")
    parser.add_argument("--with", dest="extra", nargs="+", type=Path, default=[],
                        help="runs of other adaptive settings (one per seed, e.g. --distance-power 2 --plans adaptive): "
                             "their curves join the same seed's run, every mean taken over the settings both scored")
    parser.add_argument("--metric", choices=("esr_mean", "esr_worst"), default="esr_mean")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "adaptive-plan-od3-seeds.json",
                        help="JSON file (the .md beside it)")
    args = parser.parse_args(argv)
    try:
        runs = [json.loads(p.read_text(encoding="utf-8")) for p in args.runs]
        for path in args.extra:
            extra = json.loads(path.read_text(encoding="utf-8"))
            same_seed = [i for i, r in enumerate(runs) if r["config"]["seed"] == extra["config"]["seed"]]
            if not same_seed:
                raise CombineError(f"{path} is of seed {extra['config']['seed']}, which none of the runs has")
            runs[same_seed[0]] = merge_run(runs[same_seed[0]], extra)
        combined = combine(runs, args.metric)
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise SystemExit(f"cannot read the runs ({exc}): give the JSON files written by bench/adaptive_plan.py") from None
    except CombineError as exc:
        raise SystemExit(str(exc)) from None
    text = markdown(combined, runs)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "adaptive-plan-seeds", "runs": [str(p) for p in args.runs],
                                    "combined": combined, "per_run": runs}, indent=1, default=str))
    args.out.with_suffix(".md").write_text(text)
    print(f"wrote {args.out} and {args.out.with_suffix('.md').name}")


if __name__ == "__main__":
    main()
