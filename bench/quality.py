"""Model quality against training time: every scheme, several seeds, on a virtual device.

What a player hears, measured: for each conditioning scheme and seed, train with a preset (each model
in its own process, one thread, so a 2-core machine trains two at once), then score

* test ESR (mean over knob settings; a stretch of input never heard in training), held-out ESR
  (knob settings never heard in training), the worst single setting, with the grade in words;
* the knob response at every captured setting against the device: THD and gain of the 1 kHz
  calibration tone (the report's measures; "clean where the device is clean");
* learning curves: validation loss against optimizer steps and wall time (from each run's metrics).

Prints a table and writes JSON (machine, budget, seeds, every number) to ``bench/results/``::

    python bench/quality.py --device od3 --preset default --seeds 0 1          # the README table
    python bench/quality.py --device od3 --preset quick --seeds 0 --workers 2  # minutes
    python bench/quality.py --device la2a --preset default --seeds 0

The virtual OD-3 study is the recipe's: a 5 x 5 DRIVE x TONE grid with the default (3-minute) test
signal behind the virtual rig, drive=5,tone=5 and drive=2.5,tone=7.5 held out. The capture and the
dataset are made once under ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT))

SCHEMES = ("concat", "film", "statichyper", "dynamichyper")


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def make_study(device: str, work: Path, quick_signal: bool, seed: int):
    """The recipe's study (capture settings, held-out settings) for ``device``."""
    if device == "od3":
        from od3 import od3_study

        return od3_study(work, quick=quick_signal, seed=seed)
    from la2a import la2a_study

    return la2a_study(work, quick=quick_signal, seed=seed)


def prepare(study) -> Path:
    """Capture (or reuse) the session and build (or reuse) the dataset; returns the dataset folder."""
    from study import build_study_dataset, capture

    dataset = study.out / "dataset"
    if (dataset / "dataset.json").is_file():
        return dataset
    session = capture(study)
    return Path(build_study_dataset(study, [session.root]).path)


def refuse_other_settings(run_dir: Path, config: Any, model: Any) -> None:
    """Exit with a message naming every training or model setting in which the run folder's
    ``config.json`` differs from this job's (the resumable ones too: a finished run is reported as is,
    not trained on with a longer schedule)."""
    from fxcap.modeling.run_folder import read_run_config, setting_changes

    changed = setting_changes(read_run_config(run_dir) or {}, model.to_dict(), config.to_dict(), ignore=())
    if changed:
        raise SystemExit(f"{run_dir} was trained with other settings ({'; '.join(changed)}): move it away or "
                         "give another --work, so that its numbers are not reported as this configuration's")


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one scheme/seed in this process (one thread); returns its numbers."""
    import torch

    torch.set_num_threads(1)
    from fxcap.dataset import load_dataset_info
    from fxcap.modeling.evaluate import current_evaluation, evaluate_run
    from fxcap.modeling.pipeline import preset_model_options, preset_config
    from fxcap.modeling.registry import ModelConfig
    from fxcap.modeling.train import train

    run_dir = Path(job["run_dir"])
    config = preset_config(job["preset"], job["cond"], job["overrides"], seed=job["seed"])
    config = config.for_device(load_dataset_info(job["dataset"]).device_kind)  # as train() decides it
    model = ModelConfig(cond=job["cond"], num_knobs=job["num_knobs"],
                        **{**preset_model_options(job["preset"]), **job["model_overrides"], "seed": job["seed"]})
    started = time.perf_counter()
    resume = (run_dir / "state.pt").exists()
    if resume:
        refuse_other_settings(run_dir, config, model)
    summary = current_evaluation(run_dir) if resume else None
    if summary is None:
        result = train(job["dataset"], model, run_dir, config, resume=resume)
        recoveries, stop_reason = result.recoveries, result.stop_reason
    else:
        recoveries, stop_reason = [], "finished earlier"
    train_s = time.perf_counter() - started
    summary = summary or evaluate_run(run_dir)
    history = json.loads((run_dir / "metrics.json").read_text())
    steps_per_epoch = config.steps_per_epoch
    curve = [{"step": row["epoch"] * steps_per_epoch if steps_per_epoch else row["epoch"],
              "seconds": round(sum(r["seconds"] for r in history[: i + 1]), 2), "valid_loss": row["valid_loss"]}
             for i, row in enumerate(history)]
    return {"cond": job["cond"], "seed": job["seed"], "run_dir": str(run_dir), "train_wall_s": round(train_s, 1),
            "train_s": round(sum(r["seconds"] for r in history), 1), "steps": curve[-1]["step"] if curve else 0,
            "parameters": summary["parameters"], "compute": summary["compute"], "test": summary.get("test"),
            "holdout": summary.get("holdout"), "test_worst_setting": summary.get("test_worst_setting"),
            "recoveries": recoveries, "stop_reason": stop_reason, "curve": curve}


def knob_response(session_dir: Path, runs: list[Path]) -> dict[str, Any]:
    """THD and gain of the calibration tone at every captured setting: device and each run. A model's
    THD error is :func:`fxcap.report.measure.thd_error_db`: where the device's THD is its recording's
    noise (within 3 dB of its floor), only a model THD above the device's counts."""
    from fxcap.capture.session import Session
    from fxcap.report.measure import thd_error_db
    from fxcap.report.response import analyse
    from fxcap.report.runs import load_report_runs
    from fxcap.report.selection import setting_points

    session = Session.open(session_dir)
    points, _ = setting_points(session)
    response, _, notes = analyse(session, points, [], [], load_report_runs(runs))
    settings = [p.knobs for p in points]
    out = {"settings": settings, "device": response.device, "models": {}, "notes": notes}
    for label, rows in response.models.items():
        thd_err = [thd_error_db(m["thd_db"], d["thd_db"], d.get("thd_floor_db")) for m, d in zip(rows, response.device)
                   if m["thd_db"] is not None and d["thd_db"] is not None]
        gain_err = [abs(m["gain_db"] - d["gain_db"]) for m, d in zip(rows, response.device)
                    if m["gain_db"] is not None and d["gain_db"] is not None]
        out["models"][label] = {"rows": rows, "thd_err_max_db": max(thd_err) if thd_err else None,
                                "gain_err_max_db": max(gain_err) if gain_err else None,
                                "thd_within_6db": sum(e <= 6.0 for e in thd_err), "gain_within_0_5db": sum(e <= 0.5 for e in gain_err),
                                "settings": len(rows)}
    return out


def _clean_setting(knobs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in knobs.items())


def print_table(results: list[dict[str, Any]], response: dict[str, Any] | None) -> str:
    from fxcap.modeling.metrics import esr_grade

    lines = ["| scheme | seed | params | steps | train s | test ESR | grade | held-out ESR | worst setting ESR (where) "
             "| THD err max dB | gain err max dB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        test, held = r["test"] or {}, r["holdout"] or {}
        resp = (response or {}).get("models", {}).get(Path(r["run_dir"]).name, {})
        lines.append(
            f"| {r['cond']} | {r['seed']} | {r['parameters']} | {r['steps']} | {r['train_s']:.0f} | {test.get('esr', math.nan):.4f} "
            f"| {esr_grade(test.get('esr', math.nan))} | {held.get('esr', math.nan):.4f} | {test.get('esr_worst', math.nan):.4f} "
            f"({r['test_worst_setting']}) | {_fmt(resp.get('thd_err_max_db'))} | {_fmt(resp.get('gain_err_max_db'))} |"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("od3", "la2a"), default="od3")
    parser.add_argument("--preset", default="default", help="training preset (fxcap.modeling.pipeline.PRESETS)")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--workers", type=int, default=2, help="models trained at once (one thread each)")
    parser.add_argument("--short-signal", action="store_true", help="capture with the short test signal (the quick recipe's)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the capture, dataset and runs (reused)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/quality-<device>-<preset>.json)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field of the preset (repeatable), e.g. --set max_epochs=20")
    parser.add_argument("--time-budget", type=float, default=20.0,
                        help="training time budget per model in minutes (0: none; the issue's goal is 20 on one core)")
    parser.add_argument("--model-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a ModelConfig field (repeatable), e.g. --model-set post_filter_poles=0")
    args = parser.parse_args(argv)

    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    model_overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.model_set)}
    signal = "short" if args.short_signal else "default"
    work = args.work or ROOT / "bench" / "results" / f"quality-{args.device}-{signal}"
    study = make_study(args.device, work, args.short_signal, seed=0)
    started = time.perf_counter()
    dataset = prepare(study)
    prepare_s = time.perf_counter() - started

    from fxcap.dataset import load_dataset_info

    info = load_dataset_info(dataset)
    tag = args.preset + "".join(f"-{k}{v}" for k, v in {**overrides, **model_overrides}.items())
    if args.time_budget > 0 and "time_budget_s" not in overrides:
        overrides = {**overrides, "time_budget_s": args.time_budget * 60.0}
        tag += f"-budget{args.time_budget:g}m"
    jobs = [{"cond": cond, "seed": seed, "preset": args.preset, "overrides": overrides, "model_overrides": model_overrides,
             "dataset": str(dataset), "num_knobs": len(info.knob_names),
             "run_dir": str(work / "runs" / tag / f"{cond}-gru-s{seed}")} for seed in args.seeds for cond in args.schemes]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(train_one, jobs))
    train_wall = time.perf_counter() - started
    response = knob_response(work / "session", [Path(r["run_dir"]) for r in results]) if (work / "session").is_dir() else None

    table = print_table(results, response)
    print(f"\n{args.device} quality, preset {args.preset} {overrides or ''}{model_overrides or ''}, dataset {dataset}")
    print(table)
    if response is not None:
        drive0 = [i for i, s in enumerate(response["settings"]) if s.get("drive") == 0]
        for i in drive0:
            device_thd = response["device"][i]["thd_db"]
            models = ", ".join(f"{label.split('-')[0]} {m['rows'][i]['thd_db']:.1f}" for label, m in response["models"].items()
                               if m["rows"][i]["thd_db"] is not None)
            print(f"THD at {_clean_setting(response['settings'][i])}: device {device_thd:.1f} dB; models {models}")
    print(f"prepare {prepare_s:.0f} s, training and evaluation {train_wall:.0f} s wall with {args.workers} workers")

    out = args.out or ROOT / "bench" / "results" / f"quality-{args.device}-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": args.device, "preset": args.preset, "overrides": overrides,
                               "model_overrides": model_overrides, "seeds": args.seeds, "workers": args.workers,
                               "machine": machine(), "dataset": str(dataset), "dataset_hash": info.dataset_hash,
                               "prepare_s": prepare_s, "train_wall_s": train_wall, "results": results,
                               "knob_response": response, "table": table}, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
