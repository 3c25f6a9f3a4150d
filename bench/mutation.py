"""Mutation testing of the modeling pipeline with mutmut: do the tests catch small bugs?

mutmut makes many small edits ("mutants") of a module: a ``<`` turned into ``<=``, a constant changed,
an argument dropped, ``"train"`` turned into ``"XXtrainXX"``... and runs the tests that call the mutated
function on each. A mutant that no test fails on *survived*: either the tests miss a bug of that shape,
or the edit changes nothing observable (an *equivalent* mutant). Far too slow for the default test run
(each mutant is a pytest run), so it runs here, one module at a time, on a copy of the project: the
working tree (default) or a git revision (``--rev``), so runs can be compared before and after a change
of the tests.

    pip install -e ".[mutation]"
    nice -n 10 taskset -c 1 python bench/mutation.py metrics io           # some modules
    python bench/mutation.py --rev 5d631fe --label before metrics         # the tests of a past commit
    python bench/mutation.py --label after --recheck tree train           # only tree's survivors, new tests
    python bench/mutation.py --sample 300 export                          # 300 random mutants (hours -> an hour)
    python bench/mutation.py --list                                       # the modules and their tests

For each module it writes ``bench/results/mutation/<label>/<module>.json`` (counts by status and the
survival rate) and ``<module>-survivors.txt`` (every surviving mutant as a diff), and prints one summary
line. Survival rate = (survived + no tests) / all mutants checked; a timeout counts as killed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mutation"

MODULES: dict[str, tuple[list[str], list[str]]] = {
    # name: (files to mutate, test files/ids that exercise them; missing ones are left out)
    "io": (["fxcap/io.py"], ["tests/test_io.py"]),
    "metrics": (["fxcap/modeling/metrics.py"], ["tests/modeling/test_metrics.py"]),
    "losses": (["fxcap/modeling/losses.py"], ["tests/modeling/test_losses.py"]),
    "render": (["fxcap/modeling/render.py"], ["tests/modeling/test_render.py", "tests/modeling/test_train.py::test_evaluate_compare_and_render"]),  # before 2026-12: the render checks lived there
    "evaluate": (["fxcap/modeling/evaluate.py"], ["tests/modeling/test_evaluate.py", "tests/modeling/test_train.py::test_evaluate_compare_and_render",
                                                "tests/modeling/test_train.py::test_evaluate_and_compare",
                                                "tests/modeling/test_train.py::test_batched_scoring_equals_one_segment_at_a_time"]),
    # (tests that run fxcap in a subprocess cannot see mutmut's mutants: they are deselected)
    "train": (["fxcap/modeling/train.py"], ["tests/modeling/test_train.py", "tests/modeling/test_train_internals.py", "tests/modeling/test_even_gain.py",
                                          "tests/modeling/test_compute_context.py", "tests/modeling/test_run_specs.py",
                                          "tests/faults/test_runs.py",
                                          "--deselect=tests/faults/test_runs.py::test_resume_after_a_kill_between_the_weights_and_the_state_uses_the_consistent_pair",
                                          "--deselect=tests/faults/test_runs.py::test_sigkill_after_two_epochs_then_resume_finishes_and_keeps_what_was_written"]),
    "export": (["fxcap/modeling/export/*"], ["tests/modeling/test_export.py", "tests/modeling/test_export_plugins.py", "tests/modeling/test_export_cells_numpy.py",
                                            "tests/modeling/test_even_gain.py",
                                            "--deselect=tests/modeling/test_export_plugins.py::test_console_script_refusal_is_one_line"]),
    "rtneural": (["fxcap/modeling/export/rtneural.py"], ["tests/modeling/test_export.py"]),  # a part of "export"
    "film": (["fxcap/modeling/film.py"], ["tests/modeling/test_film.py", "tests/modeling/test_compute.py"]),
    "statichyper": (["fxcap/modeling/static_hyper.py"], ["tests/modeling/test_static_hyper.py", "tests/modeling/test_compute.py"]),
    "dynamichyper": (["fxcap/modeling/dynamic_hyper.py"], ["tests/modeling/test_dynamic_hyper.py", "tests/modeling/test_compute.py"]),
}

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests"}


def export_tree(rev: str | None, dest: Path) -> None:
    """The project at ``rev`` (``git archive``), or the working tree's tracked and unignored files."""
    dest.mkdir(parents=True)
    if rev:
        data = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
        return
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def configure(tree: Path, files: list[str], tests: list[str]) -> list[str]:
    """Append a ``[tool.mutmut]`` section to the copy's pyproject; returns the tests kept."""
    def exists(test: str) -> bool:
        if test.startswith("-"):  # a pytest option (--deselect=...), kept as it is
            return True
        path, _, name = test.partition("::")
        return (tree / path).is_file() and (not name or f"def {name}(" in (tree / path).read_text())

    kept = [t for t in tests if exists(t)]
    if not kept:
        raise SystemExit(f"none of {tests} exists in this tree")
    section = "\n[tool.mutmut]\n" + "\n".join([
        'source_paths = ["fxcap/"]',
        f"only_mutate = {json.dumps(files)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(kept)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:xdist", "-q", "-x"]',  # mutmut traces tests in its own process
        "use_git_change_detection = false",
    ]) + "\n"
    with open(tree / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(section)
    return kept


def statuses(tree: Path) -> dict[str, str]:
    """Status of every mutant, from mutmut's per-file ``.meta`` records."""
    from mutmut.stats import status_by_exit_code

    result = {}
    for meta in (tree / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            result[name] = status_by_exit_code[code]
    return result


def survivor_names(label: str, module: str) -> list[str]:
    """The surviving mutants of an earlier run (``<label>/<module>-survivors.txt``, one ``# name: status``
    header per mutant)."""
    path = RESULTS / label / f"{module}-survivors.txt"
    if not path.is_file():
        raise SystemExit(f"no earlier run of {module} under {RESULTS / label} (run it first, or drop --recheck)")
    return [line[2:].split(":")[0] for line in path.read_text().splitlines() if line.startswith("# ") and "__mutmut_" in line]


def wilson_interval(survived: int, checked: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a survival rate measured on a random sample of mutants."""
    if not checked:
        return (0.0, 1.0)
    rate, n = survived / checked, checked
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def scaled_estimate(still_surviving: int, rechecked: int, earlier_survivors: int, checked: int) -> dict:
    """What still survives in a random sample of ``rechecked`` of an earlier run's ``earlier_survivors``,
    scaled up to all of them: estimated survivors and survival rate over ``checked`` mutants, with the
    rate's 95 % interval."""
    low, high = wilson_interval(still_surviving, rechecked)
    share = still_surviving / rechecked if rechecked else None
    return {"earlier_survivors": earlier_survivors, "rechecked": rechecked, "still_surviving": still_surviving,
            "survivors": None if share is None else round(earlier_survivors * share),
            "survival_rate": None if share is None else round(earlier_survivors * share / checked, 4),
            "survival_rate_95": [round(earlier_survivors * low / checked, 4), round(earlier_survivors * high / checked, 4)]}


def sample_mutants(work: Path, env: dict[str, str], size: int, seed: int) -> tuple[list[str], int]:
    """Generate every mutant of the copy (a run whose pattern matches none), then draw ``size`` of them
    at random (``seed``); returns the names drawn and how many there are in all."""
    subprocess.run([sys.executable, "-m", "mutmut", "run", "no-mutant-has-this-name"], cwd=work, env=env, capture_output=True, text=True)
    names = sorted(statuses(work))
    if not names:
        raise SystemExit(f"mutmut made no mutants in {work} (see its log: run without --sample)")
    return sorted(random.Random(seed).sample(names, min(size, len(names)))), len(names)


def run_module(name: str, rev: str | None, label: str, max_children: int, only: list[str] | None = None,
               recheck: str | None = None, sample: int | None = None, seed: int = 0) -> dict:
    """Mutate one module and run its tests on every mutant (``only``: the mutants matching these patterns;
    ``recheck``: only the survivors of the run labelled so, every other mutant counted as killed there:
    tests added since cannot revive a killed mutant, so the sum is the whole module's result;
    ``sample``: a random sample of this many mutants, for modules whose whole run takes hours: the
    summary then gives the rate's 95 % interval)."""
    earlier = None
    if recheck:
        earlier = json.loads((RESULTS / recheck / f"{name}.json").read_text())
        only = survivor_names(recheck, name)
        if not only:
            raise SystemExit(f"{name}: no survivors in {recheck} to check again")
        if sample and sample < len(only):  # a random sample of the survivors: the rate becomes an estimate
            only = sorted(random.Random(seed).sample(only, sample))
    files, tests = MODULES[name]
    work = RESULTS / label / f"{name}-tree"
    shutil.rmtree(work, ignore_errors=True)
    export_tree(rev, work)
    kept = configure(work, files, tests)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    total = None
    sampled_survivors = earlier["survivors"] if earlier and sample and sample < earlier["survivors"] else None
    if sample and not recheck:
        only, total = sample_mutants(work, env, sample, seed)
    done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *(only or [])], cwd=work,
                          env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    (RESULTS / label / f"{name}-mutmut.log").write_text(done.stdout[-20000:] + "\n--- stderr ---\n" + done.stderr[-20000:])
    found = statuses(work)
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    if earlier is not None:
        missing = sorted(set(only) - set(found))
        if missing:
            raise SystemExit(f"{name}: {len(missing)} survivors of {recheck} are not mutants of this tree (e.g. {missing[0]}): "
                             "the module changed since; run it whole")
        found = {k: s for k, s in found.items() if k in set(only)}  # this run's verdict on the earlier survivors
        counts = {s: sum(1 for v in found.values() if v == s) for s in set(found.values())}
        counts["killed"] = counts.get("killed", 0) + earlier["checked"] - len(found)
    checked = sum(n for s, n in counts.items() if s in KILLED | SURVIVED)
    survivors = sorted(k for k, s in found.items() if s in SURVIVED)
    estimate = None
    if sampled_survivors:
        rechecked = sum(1 for v in found.values() if v in KILLED | SURVIVED)
        estimate = scaled_estimate(len(survivors), rechecked, sampled_survivors, earlier["checked"])
        counts = {"killed": earlier["checked"] - (estimate["survivors"] or 0), "survived (estimated)": estimate["survivors"] or 0}
        checked = earlier["checked"]
    lines = []
    for mutant in survivors:
        shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=work, env=env, capture_output=True, text=True)
        lines.append(shown.stdout.rstrip() + "\n")
    (RESULTS / label / f"{name}-survivors.txt").write_text("\n".join(lines))
    summary = {
        "module": name, "files": files, "tests": kept, "rev": rev or "working tree", "recheck_of": recheck,
        "only": None if recheck or sample else only, "sample": sample or (earlier.get("sample") if earlier else None),
        "sample_seed": seed if sample else (earlier.get("sample_seed") if earlier else None),
        "mutants": earlier["mutants"] if earlier else (total or len(found)),
        "checked": checked, "counts": counts, "survivors": estimate["survivors"] if estimate else len(survivors),
        "survival_rate": (estimate["survival_rate"] if estimate else round(len(survivors) / checked, 4)) if checked else None,
        "survival_rate_95": (estimate["survival_rate_95"] if estimate else
                             wilson_interval(len(survivors), checked) if (earlier or {}).get("sample") or sample else None),
        "estimate_from_a_sample_of_survivors": estimate,
        "seconds": round(seconds, 1), "mutmut_exit": done.returncode,
    }
    (RESULTS / label / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all): {', '.join(MODULES)}")
    parser.add_argument("--rev", help="git revision to test (default: the working tree)")
    parser.add_argument("--label", help="results folder name (default: the revision, or 'tree')")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant runs (default 1)")
    parser.add_argument("--only", nargs="+", metavar="PATTERN",
                        help="check only the mutants whose names match (fnmatch, e.g. 'fxcap.modeling.train.x_train__mutmut_??')")
    parser.add_argument("--recheck", metavar="LABEL",
                        help="check only the survivors of the run labelled LABEL (after adding tests); the summary "
                             "counts LABEL's other mutants as killed")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="check a random sample of N mutants per module (with --recheck: of the earlier survivors); "
                             "the rate then comes with its 95 %% interval")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample's draw (default 0)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests, then exit")
    args = parser.parse_args()
    if args.list:
        for name, (files, tests) in MODULES.items():
            print(f"{name}: {', '.join(files)} <- {', '.join(tests)}")
        return
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    label = args.label or args.rev or "tree"
    (RESULTS / label).mkdir(parents=True, exist_ok=True)
    for name in args.modules or list(MODULES):
        s = run_module(name, args.rev, label, args.max_children, args.only, args.recheck, args.sample, args.seed)
        rate = "n/a" if s["survival_rate"] is None else f"{100 * s['survival_rate']:.1f} %"
        if s["survival_rate_95"]:
            low, high = s["survival_rate_95"]
            estimate = s["estimate_from_a_sample_of_survivors"]
            source = (f"{estimate['rechecked']} of {estimate['earlier_survivors']} earlier survivors checked again" if estimate
                      else f"a sample of {s['mutants']} mutants")
            rate += f", 95 % interval {100 * low:.1f}-{100 * high:.1f} % ({source})"
        print(f"{name}: {s['checked']} mutants checked, {s['survivors']} survive ({rate}) in {s['seconds']:.0f} s; "
              f"{RESULTS / label / (name + '-survivors.txt')}", flush=True)


if __name__ == "__main__":
    main()
