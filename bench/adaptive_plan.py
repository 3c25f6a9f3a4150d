"""Held-out ESR against takes for three knob plans: grid, Latin hypercube and the adaptive plan.

Issue 16's question: with the same number of takes, which plan gives the better model of the device at
knob settings never captured, and does the adaptive plan reach the grid's held-out ESR with half the
takes? Measured on the virtual OD-3's drive x tone behind the virtual rig (``sim`` backend; why not the
LA-2A: :data:`DEVICES`), every capture with the ``short`` signal preset and the same rig seed:

1. **Dense held-out grid**: ``--dense`` values per swept knob (9 x 9 by default, ends included) captured
   once as its own session and made into a dataset; no model trains on it.
2. **Plans**, for each budget of takes in ``--budgets``:
   ``grid``: the square grid nearest the budget (4 takes for 5, 9 for 9, 16 for 13; a tie goes to the
   larger), each grid once; ``lhs``: a Latin hypercube of the budget; ``adaptive``: one adaptive capture
   of the largest budget (``fxcap record --plan adaptive``: the corners and centre, then ``--batch``
   settings a round), and for each smaller budget a dataset of its first takes (the later ones held out
   of training). That is exactly what an adaptive capture of the smaller budget records when the budget
   less the initial design is a multiple of the batch (5, 9, 13 with batches of 4), and the 5-take point
   is the initial design itself. ``--misfit-weight 0 1`` gives one adaptive curve per weight.
3. **One model per point**, the same recipe for every plan: ``--scheme`` (GRU cell), the ``quick``
   training preset cut to ``--steps`` optimizer steps, one thread, seed ``--seed``. It is scored on the
   dense dataset's test split (a stretch of the signal no model heard) at every dense setting that no plan
   of the run captured (the same settings for every point): mean and worst ESR over them.
4. **Takes to reach the grid**: from each curve (ESR against the takes trained on, log ESR interpolated
   linearly between budgets), the takes a plan needs to reach the grid's mean held-out ESR at the grid's
   largest budget ("not reached" when its curve never gets there).

Prints a table, writes JSON (machine and its load, configuration, every number, wall times) to
``bench/results/adaptive-plan-<device>.json`` and the markdown table to the ``.md`` beside it::

    python bench/adaptive_plan.py --tiny                               # budgets 5 and 9, 5 x 5 dense grid
    python bench/adaptive_plan.py --budgets 5 9 13 17 --steps 1000     # the comparison
    python bench/adaptive_plan.py --misfit-weight 0 1                  # an adaptive curve per misfit weight

Captures, datasets and runs go under ``--work`` (emptied at the start, so a run starts from nothing and is
deterministic given ``--seed``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from fxcap.adaptive import AdaptiveConfig, QuickModelConfig  # noqa: E402
from fxcap.adaptive.candidates import DEFAULT_STEPS  # noqa: E402
from fxcap.adaptive.config import SCORE_BY  # noqa: E402

WORK_MARK = ".adaptive-plan-bench"
"""File marking a ``--work`` folder as this benchmark's (only such a folder is emptied)."""

GRID, LHS, ADAPTIVE = "grid", "lhs", "adaptive"
PLANS = (GRID, LHS, ADAPTIVE)


@dataclass(frozen=True)
class DeviceSetup:
    """A virtual device as the benchmark sweeps it.

    Attributes:
        device: the built-in profile's name.
        knobs: the two swept knobs.
        fixed: values of unswept knobs (the rest sit at their defaults).
        window: training window (samples), as the device's recipe trains it.
    """

    device: str
    knobs: tuple[str, str]
    fixed: tuple[tuple[str, str], ...] = ()
    window: int = 2048


DEVICES = {
    "od3": DeviceSetup("OD-3", ("drive", "tone")),
}
"""The devices the benchmark sweeps. The virtual LA-2A is not one: its two continuous knobs are PEAK
REDUCTION and GAIN, and GAIN's +-15 dB make-up leaves no played level at which the whole square records
(at -3 dBFS GAIN 100 clips; at -18 dBFS GAIN 0 fails the repeatability check in the rig's noise)."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run.

    Attributes:
        device: a key of :data:`DEVICES`.
        budgets: takes asked of every plan (the grid's nearest squares, see :func:`grid_side`).
        plans: which plans to run (``grid``, ``lhs``, ``adaptive``).
        dense: values per swept knob of the held-out grid.
        scheme: conditioning scheme of the trained models (GRU cell).
        steps: optimizer steps per model (rounded up to whole epochs of ``steps_per_epoch``).
        steps_per_epoch: steps between validations (the best-validation checkpoint is scored).
        seed: the rig, the plans (Latin hypercube, shuffling, the committee) and the training.
        batch: adaptive plan: settings chosen per round.
        misfit_weights: adaptive plan: one curve per weight of the misfit term
            (:attr:`fxcap.adaptive.AdaptiveConfig.misfit_weight`).
        misfit_radius: adaptive plan: reach of a recorded setting's misfit (normalised units; a knob's range is 2).
        distance_power: adaptive plan: scores times (distance to the nearest recorded setting)^power.
        score_by: adaptive plan: a name of :data:`fxcap.adaptive.config.SCORE_BY`
            (:attr:`fxcap.adaptive.AdaptiveConfig.score_by`).
        acquisition: adaptive plan: a name of :data:`fxcap.adaptive.ACQUISITIONS`.
        pool: adaptive plan: a batch is spread over the ``pool x batch`` best-scored candidates.
        committee_steps: adaptive plan: optimizer steps of each committee member.
        committee_scheme: adaptive plan: the committee members' scheme.
        candidate_steps: adaptive plan: candidate values per swept knob.
        work: folder for the sessions, datasets and runs.
    """

    device: str = "od3"
    budgets: tuple[int, ...] = (5, 9, 13)
    plans: tuple[str, ...] = PLANS
    dense: int = 9
    scheme: str = "film"
    steps: int = 1000
    steps_per_epoch: int = 50
    seed: int = 0
    batch: int = 4
    misfit_weights: tuple[float, ...] = (AdaptiveConfig.misfit_weight,)
    misfit_radius: float = AdaptiveConfig.misfit_radius
    distance_power: float = AdaptiveConfig.distance_power
    score_by: str = AdaptiveConfig.score_by
    acquisition: str = AdaptiveConfig.acquisition
    pool: int = AdaptiveConfig.pool
    committee_steps: int = QuickModelConfig.steps
    committee_scheme: str = QuickModelConfig.scheme
    candidate_steps: int = DEFAULT_STEPS
    work: Path = ROOT / "bench" / "results" / "adaptive-plan-work"

    @property
    def setup(self) -> DeviceSetup:
        return DEVICES[self.device]

    @property
    def epochs(self) -> int:
        return max(1, math.ceil(self.steps / self.steps_per_epoch))


TINY = {"budgets": (5, 9), "steps": 300, "dense": 5}
"""``--tiny``: the configuration that checks the whole benchmark in minutes (flags given override it)."""


@dataclass
class Point:
    """One point of a curve: a plan's takes, the model trained on them and its held-out scores.

    ``asked``: the budgets this point answers (a grid answers every budget whose nearest square it is).
    Times in seconds; ``planning_s`` is what the adaptive plan spent choosing these takes' settings
    (training and scoring its committee), 0 for the other plans; an adaptive curve's ``capture_s`` (one
    capture of its largest budget) is on its last point. ``exact``: an adaptive capture of this budget
    records exactly these takes (its batches end there); otherwise they are the first takes of a larger one.
    ``same_as``: another adaptive curve's point with the same takes (the initial design every weight shares:
    the same capture, so the same model; its numbers are copied, not trained again).
    """

    plan: str
    asked: list[int]
    takes: int
    settings: list[dict[str, Any]]
    dataset: str
    capture_s: float
    dataset_s: float
    planning_s: float = 0.0
    train_s: float = 0.0
    score_s: float = 0.0
    steps: int = 0
    esr_mean: float = math.nan
    esr_worst: float = math.nan
    worst_setting: str = ""
    per_setting: list[dict[str, Any]] = field(default_factory=list)
    exact: bool = True
    same_as: str = ""


def grid_side(budget: int) -> int:
    """Values per knob of the square grid nearest ``budget`` takes (at least 2; a tie goes to the larger)."""
    low = max(2, math.isqrt(budget))
    return low + 1 if (low + 1) ** 2 - budget <= budget - low ** 2 else low


def adaptive_label(weight: float, weights: tuple[float, ...]) -> str:
    """The curve's name: ``adaptive``, or ``adaptive m=<weight>`` when several misfit weights are compared."""
    return ADAPTIVE if len(weights) == 1 else f"{ADAPTIVE} m={weight:g}"


def make_study(config: BenchConfig, out: Path, **plan: Any):
    """The recipe's :class:`Study` of the benchmark's device and signal, with ``plan`` (``plan``, ``steps``,
    ``takes``, ``batch``, ``extend``, ``holdout``)."""
    from study import Study

    setup = config.setup
    return Study(device=setup.device, knobs=list(setup.knobs), window=setup.window, out=out, quick=True,
                 fixed=dict(setup.fixed), seed=config.seed, workers=1, **{"steps": config.candidate_steps, **plan})


def swept_settings(session, knobs: tuple[str, ...]) -> list[dict[str, Any]]:
    """The swept knobs' values of ``session``'s recorded settings, in recording order (reference re-takes left out)."""
    return [{k: take.knobs[k] for k in knobs} for take in session.manifest.takes if not take.is_reference]


def setting_spec(setting: dict[str, Any]) -> str:
    """``drive=9.0,tone=10.0``: a setting as a dataset holdout spec (exact values)."""
    return ",".join(f"{name}={value!r}" for name, value in setting.items())


def capture_plan(config: BenchConfig, out: Path, **plan: Any) -> tuple[Any, Any, float]:
    """Capture a plan into ``out/session``; returns the study, the session and the capture's seconds."""
    from study import capture

    study = make_study(config, out, **plan)
    started = time.perf_counter()
    session = capture(study)
    seconds = time.perf_counter() - started
    print(f"  captured {out.relative_to(config.work)}: {len(session.manifest.takes)} takes in {seconds:.0f} s", flush=True)
    return study, session, seconds


def build(config: BenchConfig, out: Path, session_root: Path, holdout: tuple[str, ...] = ()) -> tuple[Path, float]:
    """The dataset of ``session_root`` in ``out/dataset`` (``holdout``: settings left out of training); its seconds."""
    from study import build_study_dataset

    started = time.perf_counter()
    info = build_study_dataset(make_study(config, out, holdout=holdout), [session_root])
    return Path(info.path), time.perf_counter() - started


def grid_points(config: BenchConfig) -> list[Point]:
    """One grid capture per distinct nearest square of the budgets."""
    points: list[Point] = []
    for budget in config.budgets:
        side = grid_side(budget)
        same = [p for p in points if p.takes == side * side]
        if same:
            same[0].asked.append(budget)
            continue
        out = config.work / f"grid-{side * side}"
        _, session, capture_s = capture_plan(config, out, steps=side)
        dataset, dataset_s = build(config, out, session.root)
        points.append(Point(GRID, [budget], side * side, swept_settings(session, config.setup.knobs), str(dataset), capture_s,
                            dataset_s))
    return points


def lhs_points(config: BenchConfig) -> list[Point]:
    """One Latin-hypercube capture per budget."""
    points = []
    for budget in config.budgets:
        out = config.work / f"lhs-{budget}"
        _, session, capture_s = capture_plan(config, out, plan=LHS, takes=budget)
        dataset, dataset_s = build(config, out, session.root)
        settings = swept_settings(session, config.setup.knobs)
        points.append(Point(LHS, [budget], budget, settings, str(dataset), capture_s, dataset_s))
    return points


def adaptive_config(config: BenchConfig, weight: float):
    """The adaptive plan's :class:`~fxcap.adaptive.AdaptiveConfig` for misfit weight ``weight``."""
    quick = QuickModelConfig(scheme=config.committee_scheme, steps=config.committee_steps, seed=config.seed)
    return AdaptiveConfig(quick=quick, score_by=config.score_by, acquisition=config.acquisition, pool=config.pool, misfit_weight=weight,
                          misfit_radius=config.misfit_radius, distance_power=config.distance_power)


def adaptive_points(config: BenchConfig, weight: float) -> list[Point]:
    """One adaptive capture of the largest budget; each budget's dataset trains on its first takes.

    A budget below the initial design is left out (the plan records its initial design whole).
    """
    from fxcap.adaptive import AdaptivePlanner
    from fxcap.capture.plan import ADAPTIVE_KEY

    label = adaptive_label(weight, config.misfit_weights)
    out = config.work / label.replace(" ", "-").replace("=", "")
    planner = AdaptivePlanner(adaptive_config(config, weight), steps=config.candidate_steps)
    _, session, capture_s = capture_plan(config, out, plan=ADAPTIVE, takes=max(config.budgets), batch=config.batch,
                                         extend=planner)
    settings = swept_settings(session, config.setup.knobs)
    ids = [t.take_id for t in session.manifest.takes if not t.is_reference]
    record = session.manifest.plan[ADAPTIVE_KEY]
    points = []
    for budget in sorted(set(config.budgets)):
        if budget < int(record["initial"]):
            continue
        chosen = set(ids[:budget])
        planning = sum(float(b.get("seconds", 0.0)) for b in record["batches"] if set(b["takes"]) <= chosen)
        holdout = tuple(setting_spec(s) for s in settings[budget:])
        dataset, dataset_s = build(config, out / f"takes-{budget}", session.root, holdout)
        batches_end = (budget - int(record["initial"])) % config.batch == 0 or budget >= len(settings)
        points.append(Point(label, [budget], min(budget, len(settings)), settings[:budget], str(dataset),
                            capture_s if budget == max(config.budgets) else 0.0, dataset_s, planning_s=planning,
                            exact=batches_end))
    return points


def dense_dataset(config: BenchConfig) -> tuple[Path, list[dict[str, Any]], dict[str, float]]:
    """Capture the dense held-out grid and build its dataset; returns it, its settings and the seconds spent."""
    out = config.work / f"dense-{config.dense}x{config.dense}"
    _, session, capture_s = capture_plan(config, out, steps=config.dense)
    dataset, dataset_s = build(config, out, session.root)
    return dataset, swept_settings(session, config.setup.knobs), {"capture_s": capture_s, "dataset_s": dataset_s}


def same_setting(profile, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two settings of the swept knobs are the same knob positions (normalised, within 1e-6)."""
    na, nb = profile.normalize(a), profile.normalize(b)
    return all(abs(na[k] - nb[k]) <= 1e-6 for k in a)


def train_and_score(config: BenchConfig, point: Point, dense: Path, scored: list[dict[str, Any]]) -> None:
    """Train the point's model (the same recipe for every point) and score it on the dense dataset's test
    split at the ``scored`` settings; fills the point's numbers."""
    from fxcap.dataset import load_dataset_info
    from fxcap.modeling.compute_context import compute_context
    from fxcap.modeling.evaluate import score_split
    from fxcap.modeling.pipeline import RunGrid, plan_runs, start_run
    from fxcap.modeling.train import load_run

    runs = Path(point.dataset).parent / "runs"
    grid = RunGrid(datasets=(point.dataset,), conds=(config.scheme,), seeds=(config.seed,), runs_dir=runs, preset="quick",
                   overrides={"max_epochs": config.epochs, "steps_per_epoch": config.steps_per_epoch}, threads=1)
    (spec,) = plan_runs(grid)
    started = time.perf_counter()
    start_run(spec, resume=False, force=True, evaluate=False)
    point.train_s = time.perf_counter() - started
    point.steps = config.epochs * config.steps_per_epoch

    started = time.perf_counter()
    model, _ = load_run(spec.run_dir, "best")
    knobs = config.setup.knobs
    with compute_context(threads=1):
        rows = score_split(model, dense, "test", load_dataset_info(dense).sample_rate)
    profile = _profile(config)
    kept = [{**{k: row[f"knob_{k}"] for k in knobs}, "esr": float(row["esr"])} for row in rows
            if any(same_setting(profile, {k: row[f"knob_{k}"] for k in knobs}, s) for s in scored)]
    point.score_s = time.perf_counter() - started
    point.per_setting = kept
    point.esr_mean = float(sum(r["esr"] for r in kept) / len(kept))
    worst = max(kept, key=lambda r: r["esr"])
    point.esr_worst = worst["esr"]
    point.worst_setting = ", ".join(f"{k}={worst[k]:g}" for k in knobs)


def _profile(config: BenchConfig):
    from fxcap.capture.profiles import get_profile

    return get_profile(config.setup.device)


def takes_to_reach(curve: list[tuple[int, float]], target: float) -> tuple[float | None, str]:
    """Takes a curve of ``(takes, ESR)`` needs to reach ``target`` ESR: the first crossing, log ESR
    interpolated linearly in takes between two points. Returns the takes (``None``: not reached) and how
    it was found (``"interpolated"``, ``"at or before its first point"``, ``"not reached"``)."""
    points = sorted(curve)
    if not points:
        return None, "not reached"
    if points[0][1] <= target:
        return float(points[0][0]), "at or before its first point"
    for (t0, e0), (t1, e1) in zip(points, points[1:]):
        if e1 <= target:
            share = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return t0 + share * (t1 - t0), "interpolated"
    return None, "not reached"


def reach_summary(points: list[Point], metric: str = "esr_mean") -> dict[str, Any]:
    """The target (the grid's held-out ``metric``, ``esr_mean`` or ``esr_worst``, at its largest budget) and
    the takes each plan needs to reach it."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        curves.setdefault(p.plan, []).append((p.takes, getattr(p, metric)))
    reach = reach_of_curves(curves)
    return {"metric": metric, **reach} if reach else {}


def reach_of_curves(curves: dict[str, list[tuple[int, float]]]) -> dict[str, Any]:
    """``curves`` (plan -> ``(takes, ESR)`` points): the grid's ESR at its largest budget as the target,
    and the takes each plan needs to reach it (:func:`takes_to_reach`); empty without a grid curve."""
    if not curves.get(GRID):
        return {}
    grid_takes, target = max(curves[GRID])
    out: dict[str, Any] = {"target_esr": target, "grid_takes": grid_takes, "plans": {}}
    for plan, curve in curves.items():
        takes, how = takes_to_reach(curve, target)
        out["plans"][plan] = {"takes": takes, "how": how,
                              "half_or_fewer": takes is not None and takes <= grid_takes / 2.0,
                              "saved_takes": None if takes is None else grid_takes - takes}
    return out


def table(points: list[Point]) -> str:
    """The markdown table of every point."""
    lines = ["| plan | takes asked | takes | held-out ESR mean | worst (setting) | choosing s | train s |",
             "|---|---|---|---|---|---|---|"]
    for p in points:
        asked = ", ".join(str(b) for b in p.asked) + ("" if p.exact else " (first takes)")
        lines.append(f"| {p.plan} | {asked} | {p.takes} | {p.esr_mean:.4f} | {p.esr_worst:.4f} ({p.worst_setting}) "
                     f"| {p.planning_s:.1f} | {p.train_s:.0f} |")
    return "\n".join(lines)


def reach_lines(reach: dict[str, Any], what: str = "mean held-out ESR") -> list[str]:
    """The takes-to-reach summary in words (``what``: the measure the curves show)."""
    if not reach:
        return []
    lines = [f"Takes needed to reach the grid's {what} at {reach['grid_takes']} takes "
             f"({reach['target_esr']:.4f}; log ESR interpolated between budgets):"]
    for plan, r in reach["plans"].items():
        if r["takes"] is None:
            lines.append(f"- {plan}: not reached within its largest budget")
        elif plan == GRID:
            lines.append(f"- {plan}: {r['takes']:.0f} takes")
        else:
            where = " (at or before its first point)" if r["how"] != "interpolated" else ""
            half = "half or fewer of the grid's takes" if r["half_or_fewer"] else "more than half of the grid's takes"
            lines.append(f"- {plan}: {r['takes']:.1f} takes{where}, {half}")
    return lines


def prepare_work(work: Path) -> None:
    """Empty ``work`` (only a folder this benchmark made, or an empty one) and mark it."""
    if work.exists() and any(work.iterdir()):
        if not (work / WORK_MARK).is_file():
            raise SystemExit(f"{work} is not empty and not this benchmark's work folder; give another --work")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARK).write_text("adaptive plan benchmark work folder (emptied at every run)\n")


def run(config: BenchConfig) -> dict[str, Any]:
    """Every capture, dataset, model and score of ``config``; returns the JSON-ready result."""
    import torch

    torch.set_num_threads(1)
    from quality import machine

    started, cpu_started = time.perf_counter(), time.process_time()
    host = machine()
    prepare_work(config.work)
    dense, dense_settings, dense_times = dense_dataset(config)
    points: list[Point] = []
    if GRID in config.plans:
        points += grid_points(config)
    if LHS in config.plans:
        points += lhs_points(config)
    if ADAPTIVE in config.plans:
        for weight in config.misfit_weights:
            points += adaptive_points(config, weight)
    profile = _profile(config)
    captured = [s for p in points for s in p.settings]
    scored = [s for s in dense_settings if not any(same_setting(profile, s, c) for c in captured)]
    if not scored:
        raise SystemExit("every dense setting was captured by a plan; give another --dense")
    trained: dict[str, Point] = {}
    for point in points:
        key = json.dumps(point.settings)
        twin = trained.get(key) if point.plan.startswith(ADAPTIVE) else None
        if twin is not None and twin.plan.startswith(ADAPTIVE):
            for name in ("train_s", "score_s", "steps", "esr_mean", "esr_worst", "worst_setting", "per_setting"):
                setattr(point, name, getattr(twin, name))
            point.same_as = f"{twin.plan}, {twin.takes} takes"
            continue
        train_and_score(config, point, dense, scored)
        trained[key] = point
        print(f"  {point.plan:>14} {point.takes:3d} takes: held-out ESR {point.esr_mean:.4f} (worst {point.esr_worst:.4f}), "
              f"trained {point.train_s:.0f} s", flush=True)
    reach = reach_summary(points)
    reach_worst = reach_summary(points, "esr_worst")
    return {
        "benchmark": "adaptive-plan", "config": {**asdict(config), "work": str(config.work), "epochs": config.epochs},
        "device": config.setup.device, "knobs": list(config.setup.knobs), "signal": "short", "machine": host,
        "load_average_end": os.getloadavg(),
        "dense": {"settings": len(dense_settings), "scored": len(scored),
                  "left_out": [s for s in dense_settings if s not in scored], **dense_times},
        "points": [asdict(p) for p in points], "reach": reach, "reach_worst": reach_worst, "table": table(points),
        "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(time.process_time() - cpu_started, 1),
    }


def adaptive_words(c: dict[str, Any]) -> str:
    """How the run's adaptive plan chose its settings, in words."""
    if c.get("score_by") == "output_change":
        return "scored by the change of the recorded outputs across neighbouring settings (no committee)"
    if c.get("score_by") == "leave_one_out":
        return (f"scored by the leave-one-out ESR at the ends of neighbouring settings (one {c['committee_scheme']} quick "
                f"model per recorded setting, {c['committee_steps']} steps)")
    return (f"acquisition {c['acquisition']}, misfit weight {', '.join(f'{w:g}' for w in c['misfit_weights'])}, committee "
            f"of {c['committee_scheme']} members ({c['committee_steps']} steps)")


def markdown(result: dict[str, Any]) -> str:
    """The README-ready summary: configuration, table, takes to reach the grid."""
    c, m = result["config"], result["machine"]
    lines = [
        f"Virtual {result['device']} ({' x '.join(result['knobs'])}), `short` signal; one {c['scheme']} GRU per point "
        f"({c['epochs'] * c['steps_per_epoch']} steps of the `quick` preset, one thread, seed {c['seed']}); held-out ESR on "
        f"the test split of a {c['dense']} x {c['dense']} grid captured separately, at the {result['dense']['scored']} of its "
        f"{result['dense']['settings']} settings no plan captured. Adaptive: batches of {c['batch']}, {adaptive_words(c)}. "
        f"{result['wall_s'] / 60:.1f} min wall, "
        f"{result['cpu_s'] / 60:.1f} min CPU on "
        f"{m['cpu']} (load average {m['load_average'][0]:.2f} at the start, {result['load_average_end'][0]:.2f} at the end).",
        "",
        result["table"],
        "",
        *reach_lines(result["reach"]),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, bool, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Without --tiny: budgets 5 9 13, 1000 steps, a 9 x 9 dense grid.")
    parser.add_argument("--device", choices=sorted(DEVICES), default="od3")
    parser.add_argument("--tiny", action="store_true", help="budgets 5 and 9, 300 steps, a 5 x 5 dense grid (minutes)")
    parser.add_argument("--budgets", nargs="+", type=int, default=None, help="takes asked of every plan")
    parser.add_argument("--plans", nargs="+", choices=PLANS, default=list(PLANS))
    parser.add_argument("--dense", type=int, default=None, help="values per swept knob of the held-out grid (e.g. 9 or 7)")
    parser.add_argument("--scheme", default=BenchConfig.scheme, help="conditioning scheme of the trained models")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per model (whole epochs of 50)")
    parser.add_argument("--seed", type=int, default=BenchConfig.seed)
    parser.add_argument("--batch", type=int, default=BenchConfig.batch, help="adaptive: settings chosen per round")
    parser.add_argument("--misfit-weight", nargs="+", type=float, default=list(BenchConfig.misfit_weights),
                        help="adaptive: weight of the misfit term; several values give one curve each")
    parser.add_argument("--misfit-radius", type=float, default=BenchConfig.misfit_radius,
                        help="adaptive: reach of the misfit (normalised units)")
    parser.add_argument("--distance-power", type=float, default=BenchConfig.distance_power,
                        help="adaptive: scores times (distance to the nearest recorded setting / the largest)^power")
    parser.add_argument("--score-by", choices=SCORE_BY, default=BenchConfig.score_by,
                        help="adaptive plan: the committee's doubt or the change of the recorded outputs")
    parser.add_argument("--acquisition", default=BenchConfig.acquisition,
                        help="adaptive: disagreement or frame_disagreement")
    parser.add_argument("--pool", type=int, default=BenchConfig.pool,
                        help="adaptive: a batch is spread over the pool x batch best")
    parser.add_argument("--committee-steps", type=int, default=BenchConfig.committee_steps,
                        help="adaptive: steps of each committee member")
    parser.add_argument("--committee-scheme", default=BenchConfig.committee_scheme,
                        help="adaptive: scheme of the committee members")
    parser.add_argument("--candidate-steps", type=int, default=BenchConfig.candidate_steps,
                        help="adaptive: candidate values per swept knob")
    parser.add_argument("--work", type=Path, default=None, help="folder for the sessions, datasets and runs (emptied)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/adaptive-plan-<device>[-tiny].json; the .md beside it)")
    args = parser.parse_args(argv)
    chosen = {"budgets": args.budgets, "steps": args.steps, "dense": args.dense}
    defaults = TINY if args.tiny else {}
    given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in chosen.items() if v is not None}
    fields_ = {**defaults, **given}
    if "budgets" in fields_:
        fields_["budgets"] = tuple(sorted(set(fields_["budgets"])))
    config = BenchConfig(device=args.device, plans=tuple(args.plans), scheme=args.scheme, seed=args.seed, batch=args.batch,
                         misfit_weights=tuple(args.misfit_weight), misfit_radius=args.misfit_radius,
                         distance_power=args.distance_power, score_by=args.score_by,
                         acquisition=args.acquisition, pool=args.pool, committee_steps=args.committee_steps,
                         committee_scheme=args.committee_scheme, candidate_steps=args.candidate_steps,
                         **({"work": args.work} if args.work else {}), **fields_)
    return config, args.tiny, args.out


def main(argv: list[str] | None = None) -> None:
    config, tiny, out = parse_args(argv)
    result = run(config)
    result["tiny"] = tiny
    text = ("**Tiny configuration** (`--tiny`: a check that the benchmark runs, not the comparison). " if tiny else "") + markdown(result)
    print()
    print(text)
    out = out or ROOT / "bench" / "results" / f"adaptive-plan-{config.device}{'-tiny' if tiny else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    out.with_suffix(".md").write_text(text)
    print(f"wrote {out} and {out.with_suffix('.md').name}")


if __name__ == "__main__":
    main()
