"""Model speed: fxcap's fast path against the PyTorch references, inference and training, in one run.

For every conditioning scheme (Concat, FiLM, StaticHyper, DynamicHyper) and cell (GRU, LSTM) at the
paper's sizes (H = 32, 2 knobs), on the same machine in the same run:

inference (batch 1, one thread, 48 kHz, guitar-like audio; x real time = audio seconds / wall seconds):
  - **step loop**: the straightforward per-step PyTorch loop (the released code's style: a Python loop
    over samples calling the cell, written below with the model's own weights), constant knobs;
  - ``nn.GRU``/``nn.LSTM``: PyTorch's fused RNN over ``[x; c]`` (what Concat's reference runs);
  - **reference**: the fxcap module's readable PyTorch path (``model.fast = False``);
  - **fast**: fxcap's numba path (the default); constant knobs and knob automation (a ramp of both
    knobs, a new value at every sample: the worst case for the hypernetworks);
  - batched rendering: the fast path at batch 1, 4 and 16 (a different knob setting per stream).

training (samples/s, batch 16 x 2048; one step = forward, L1 loss, backward): step loop,
  ``nn.GRU``/``nn.LSTM``, reference module, fast path, each with two threads (as specified) and one;
  the table gives the two-thread figures and ratios, plus ratios of the better of one and two threads
  (on a busy machine PyTorch's per-operation threading can be much slower with two). Methods are timed
  in rounds so that each gets its best moment of a shared machine.

Outputs of the step loop and the fast path are checked against the reference module before timing.
Usage: ``python bench/speed.py [--cells gru,lstm] [--quick]``. Prints tables, writes
``bench/results/speed.json`` and ``bench/SPEED.md``. Timings are wall-clock best-of-N on whatever
machine runs it; on a shared machine they are noisy, the ratios (same run) less so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxcap.dataset.testing import make_dummy_signal  # noqa: E402
from fxcap.modeling.cells import cell_update  # noqa: E402
from fxcap.modeling.registry import ModelConfig, build_model  # noqa: E402
from fxcap.modeling.schemes import BUILTIN_SCHEMES  # noqa: E402

RATE = 48000
CONDS = BUILTIN_SCHEMES
ROOT = Path(__file__).resolve().parent


# -- the straightforward per-step PyTorch loop (the baseline) -----------------------------------------


def step_loop(model: nn.Module, x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
    """``model``'s prediction for ``x`` ``(B, T)`` at constant ``knobs`` ``(B, K)``, computed the plain
    way: a Python loop over samples, each step computing its products from the model's weights."""
    cond, cell = model.config.cond, model.cell
    batch, steps = x.shape
    hidden = model.hidden_size
    state = tuple(torch.zeros(batch, hidden) for _ in range(1 if cell == "gru" else 2))
    outputs = []
    if cond == "concat":
        rnn = model.rnn
        for t in range(steps):
            gx = F.linear(torch.cat([x[:, t : t + 1], knobs], dim=-1), rnn.weight_ih_l0, rnn.bias_ih_l0)
            gh = F.linear(state[0], rnn.weight_hh_l0, rnn.bias_hh_l0)
            state = cell_update(cell, gx, gh, state)
            outputs.append(state[0])
    elif cond == "film":
        rnn = model.rnn
        a_x, s_x, a_h, s_h = model.modulation(knobs).split(model.gates * hidden, dim=-1)
        for t in range(steps):
            gx = a_x * F.linear(x[:, t : t + 1], rnn.weight_ih, rnn.bias_ih) + s_x
            gh = a_h * F.linear(state[0], rnn.weight_hh, rnn.bias_hh) + s_h
            state = cell_update(cell, gx, gh, state)
            outputs.append(state[0])
    elif cond == "statichyper":
        w_x, w_h, b_x, b_h = model.generate(knobs)
        for t in range(steps):
            gx = torch.bmm(w_x, x[:, t, None, None])[..., 0] + b_x
            gh = torch.bmm(w_h, state[0][..., None])[..., 0] + b_h
            state = cell_update(cell, gx, gh, state)
            outputs.append(state[0])
    else:
        rnn, hyper_rnn = model.rnn, model.hyper_rnn
        hyper = tuple(torch.zeros(batch, model.hyper_size) for _ in state)
        for t in range(steps):
            hyp_gx = F.linear(torch.cat([state[0], knobs], dim=-1), hyper_rnn.weight_ih, hyper_rnn.bias_ih)
            hyp_gh = F.linear(hyper[0], hyper_rnn.weight_hh, hyper_rnn.bias_hh)
            hyper = cell_update(cell, hyp_gx, hyp_gh, hyper)
            z = model.hyper_to_z(hyper[0]).reshape(batch, 3 * model.gates, model.nz)
            d = torch.einsum("bkn,knh->bkh", z, model.z_to_d).reshape(batch, 3, model.gates * hidden)
            gx = (1 + d[:, 0]) * F.linear(x[:, t : t + 1], rnn.weight_ih) + rnn.bias_ih + d[:, 2]
            gh = (1 + d[:, 1]) * F.linear(state[0], rnn.weight_hh) + rnn.bias_hh
            state = cell_update(cell, gx, gh, state)
            outputs.append(state[0])
    return model.output(torch.stack(outputs, dim=1))[..., 0]


def plain_rnn(model: nn.Module) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], list[nn.Parameter]]:
    """PyTorch's fused ``nn.GRU``/``nn.LSTM`` over ``[x; c]`` with a linear output (Concat's reference):
    ``(run(x, knobs) -> y, parameters)``."""
    rnn = (nn.GRU if model.cell == "gru" else nn.LSTM)(1 + model.num_knobs, model.hidden_size, batch_first=True)
    head = nn.Linear(model.hidden_size, 1)

    def run(x: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([x[..., None], knobs[:, None, :].expand(-1, x.shape[1], -1)], dim=-1)
        return head(rnn(inputs)[0])[..., 0]

    return run, list(rnn.parameters()) + list(head.parameters())


# -- timing -------------------------------------------------------------------------------------------


def best_time(run: Callable[[], object], repeats: int, budget: float) -> tuple[float, float]:
    """Fastest wall time and fastest process CPU time (s) of ``run()`` over up to ``repeats`` runs,
    stopping once ``budget`` s of wall time are spent. On a shared machine the CPU time is the steadier
    figure for one thread (it does not count time the process waited for a core)."""
    wall, cpu, spent = float("inf"), float("inf"), 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        elapsed, used = time.perf_counter() - t0, time.process_time() - c0
        wall, cpu, spent = min(wall, elapsed), min(cpu, used), spent + elapsed
        if spent > budget:
            break
    return wall, cpu


def guitar(seconds: float, streams: int = 1) -> torch.Tensor:
    """``(streams, seconds * 48000)`` of guitar-like test audio (the dummy capture signal's notes)."""
    audio = make_dummy_signal(RATE, max(2.0, 4 * seconds), seed=7).audio
    n = int(seconds * RATE)
    start = int(0.38 * len(audio))
    rows = [np.roll(audio, -start - 4001 * i)[:n] for i in range(streams)]
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def realtime(run: Callable[[torch.Tensor], object], quick: bool, probe: float = 0.02) -> tuple[float, float]:
    """x real time of ``run(x)`` at batch 1 by wall time and by CPU time: probes a short signal, then
    times one of about 0.3 s of work (many short repeats: the best of them is the least disturbed)."""
    x = guitar(probe)
    run(x)
    wall, _ = best_time(lambda: run(x), 2, 1.0)
    seconds = float(np.clip(probe * 0.3 / wall, probe, 1.0))
    x = guitar(seconds)
    wall, cpu = best_time(lambda: run(x), 5 if quick else 15, 2.0 if quick else 6.0)
    return seconds / wall, seconds / cpu


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# -- sections -----------------------------------------------------------------------------------------


def bench_inference(cond: str, cell: str, quick: bool) -> dict:
    torch.set_num_threads(1)
    model = build_model(ModelConfig(cond=cond, cell=cell)).eval()
    knobs = torch.tensor([[0.4, -0.3]])

    def ramp(steps: int) -> torch.Tensor:
        t = torch.linspace(-1, 1, steps)
        return torch.stack([t, -0.5 * t], dim=-1)[None]

    def reference(x, k):
        model.fast = False
        try:
            return model(x, k)
        finally:
            model.fast = True

    with torch.no_grad():
        x = guitar(0.05)
        ref, _ = reference(x, knobs)
        ref_auto, _ = reference(x, ramp(x.shape[1]))
        checks = {
            "step_loop_max_abs_diff": max_abs(step_loop(model, x, knobs), ref),
            "fast_max_abs_diff": max_abs(model(x, knobs)[0], ref),
            "fast_automation_max_abs_diff": max_abs(model(x, ramp(x.shape[1]))[0], ref_auto),
        }
        rnn, _ = plain_rnn(model)
        timed = {
            "step_loop": realtime(lambda x: step_loop(model, x, knobs), quick),
            "torch_rnn": realtime(lambda x: rnn(x, knobs), quick),
            "reference": realtime(lambda x: reference(x, knobs), quick),
            "reference_automation": realtime(lambda x: reference(x, ramp(x.shape[1])), quick),
            "fast": realtime(lambda x: model(x, knobs), quick, probe=0.5),
            "fast_automation": realtime(lambda x: model(x, ramp(x.shape[1])), quick, probe=0.2),
        }
        out = {name: wall for name, (wall, _) in timed.items()}
        out["cpu_time"] = {name: cpu for name, (_, cpu) in timed.items()}
        batched = {}
        for batch in (1, 4, 16):
            xb = guitar(0.25 if quick else 0.5, batch)
            kb = torch.linspace(-1, 1, batch)[:, None].repeat(1, 2)
            model(xb[:, :100], kb)
            wall, cpu = best_time(lambda: model(xb, kb), 3 if quick else 7, 3.0)
            audio = batch * xb.shape[1] / RATE
            batched[batch] = {"x_realtime_total": audio / wall, "x_realtime_total_cpu": audio / cpu}
    out["batched"] = batched
    out["checks"] = checks
    return out


def bench_training(cond: str, cell: str, quick: bool) -> dict:
    torch.set_num_threads(2)
    batch, steps = 16, 2048
    model = build_model(ModelConfig(cond=cond, cell=cell))
    generator = torch.Generator().manual_seed(0)
    x = guitar(steps / RATE, batch)
    y = torch.tanh(4 * x)
    knobs = torch.rand(batch, 2, generator=generator) * 2 - 1
    rnn, rnn_params = plain_rnn(model)

    def step(predict: Callable[[], torch.Tensor], params) -> None:
        for p in params:
            p.grad = None
        (predict() - y).abs().mean().backward()

    def reference() -> torch.Tensor:
        model.fast = False
        try:
            return model(x, knobs)[0]
        finally:
            model.fast = True

    # gradients of the fast path against the reference (relative to the largest reference gradient)
    step(reference, model.parameters())
    ref_grads = [p.grad.clone() for p in model.parameters()]
    step(lambda: model(x, knobs)[0], model.parameters())
    grad_diff = max(max_abs(p.grad, g) / float(g.abs().max()) for p, g in zip(model.parameters(), ref_grads))

    runs = {
        "step_loop": (lambda: step_loop(model, x, knobs), model.parameters),
        "torch_rnn": (lambda: rnn(x, knobs), lambda: rnn_params),
        "reference": (reference, model.parameters),
        "fast": (lambda: model(x, knobs)[0], model.parameters),
    }
    # Rounds: every method and thread count is timed once per round, so the repeats of each are spread
    # over the whole measurement and each gets its chance at a quiet moment of a shared machine.
    rates: dict[str, dict[int, float]] = {name: {} for name in runs}
    for _ in range(2 if quick else 4):
        for name, (predict, params) in runs.items():
            repeats = 1 if name in ("step_loop", "reference") else 3
            for threads in (1, 2):
                torch.set_num_threads(threads)
                wall, _ = best_time(lambda: step(predict, params()), repeats, 10.0)
                rates[name][threads] = max(rates[name].get(threads, 0.0), batch * steps / wall)
    torch.set_num_threads(2)
    # as specified: two threads; "best": the better of one and two threads (PyTorch's per-operation
    # threads suffer most on a busy machine, so this is the conservative comparison for the baselines)
    out: dict = {name: max(r.values()) for name, r in rates.items()}
    out["two_threads"] = {name: r[2] for name, r in rates.items()}
    out["threads"] = rates
    out["checks"] = {"fast_grad_max_rel_diff": grad_diff}
    return out


# -- report -------------------------------------------------------------------------------------------


def machine() -> dict:
    """CPU (lscpu's model name, family/model, caches), core count, versions and the load average."""
    fields = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines()) if v}
    except OSError:
        pass
    caches = ", ".join(f"{name} {fields[name]}" for name in ("L1d cache", "L2 cache", "L3 cache") if name in fields)
    return {
        "cpu": fields.get("Model name") or platform.processor(),
        "cpu_details": f"family {fields.get('CPU family', '?')} model {fields.get('Model', '?')}, "
        f"{'AVX-512' if 'avx512f' in fields.get('Flags', '') else 'no AVX-512'}, {caches}",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": __import__("numba").__version__,
        "load_average": os.getloadavg(),
    }


def tables(results: dict) -> list[str]:
    lines = []
    add = lines.append
    add("Inference, batch 1, one thread, 48 kHz (x real time; higher is better)")
    add("")
    add("| model | step loop | nn.GRU/LSTM | reference | reference, automation | **fast** | **fast, automation** "
        "| fast / step loop | fast / reference | fast, by CPU time |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, r in results["inference"].items():
        add(f"| {key} | {r['step_loop']:.2f} | {r['torch_rnn']:.1f} | {r['reference']:.2f} | {r['reference_automation']:.2f} "
            f"| **{r['fast']:.0f}** | **{r['fast_automation']:.1f}** | {r['fast'] / r['step_loop']:.0f}x "
            f"| {r['fast'] / r['reference']:.0f}x | {r['cpu_time']['fast']:.0f} |")
    add("")
    add("Batched rendering, fast path, one thread (x real time summed over streams)")
    add("")
    add("| model | batch 1 | batch 4 | batch 16 | 16 vs 1 | 16 vs 1, by CPU time |")
    add("|---|---:|---:|---:|---:|---:|")
    for key, r in results["inference"].items():
        b = {int(k): v["x_realtime_total"] for k, v in r["batched"].items()}
        c = {int(k): v["x_realtime_total_cpu"] for k, v in r["batched"].items()}
        add(f"| {key} | {b[1]:.0f} | {b[4]:.0f} | {b[16]:.0f} | {b[16] / b[1]:.2f}x | {c[16] / c[1]:.2f}x |")
    add("")
    add("Training, batch 16 x 2048 (samples/s; forward + L1 loss + backward), two threads as specified, and the")
    add("better of one and two threads (\"best\": on a busy machine PyTorch's per-operation threading can be much")
    add("slower with two, so this is the conservative comparison)")
    add("")
    add("| model | step loop | nn.GRU/LSTM | reference | **fast** | fast / step loop | fast / reference | fast / nn.GRU/LSTM "
        "| fast / step loop, best | fast / reference, best | fast / nn.GRU/LSTM, best |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, r in results["training"].items():
        two = r["two_threads"]
        add(f"| {key} | {two['step_loop']:.0f} | {two['torch_rnn']:.0f} | {two['reference']:.0f} | **{two['fast']:.0f}** "
            f"| {two['fast'] / two['step_loop']:.1f}x | {two['fast'] / two['reference']:.1f}x | {two['fast'] / two['torch_rnn']:.1f}x "
            f"| {r['fast'] / r['step_loop']:.1f}x | {r['fast'] / r['reference']:.1f}x | {r['fast'] / r['torch_rnn']:.1f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="gru,lstm", help="comma-separated cells (gru, lstm)")
    parser.add_argument("--conds", default=",".join(CONDS), help="comma-separated schemes")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter signals")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models' rows of bench/results/speed.json (re-measure some rows only)")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite bench/SPEED.md from bench/results/speed.json (no measurement)")
    args = parser.parse_args()
    out_dir = ROOT / "results"
    if args.report:
        write_report(json.loads((out_dir / "speed.json").read_text()))
        return
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results: dict = {"machine": machine(), "started": started, "inference": {}, "training": {}}
    if args.merge and (out_dir / "speed.json").exists():
        previous = json.loads((out_dir / "speed.json").read_text())
        results.update(inference=previous["inference"], training=previous["training"])
        results["started"] = f"{previous['started']} (rows re-measured {started})"
    for cell in args.cells.split(","):
        for cond in args.conds.split(","):
            key = f"{cond}-{cell}"
            print(f"inference {key} ...", flush=True)
            results["inference"][key] = bench_inference(cond, cell, args.quick)
            if not args.skip_training:
                print(f"training  {key} ...", flush=True)
                results["training"][key] = bench_training(cond, cell, args.quick)
    results["machine"]["load_average_end"] = os.getloadavg()
    out_dir.mkdir(exist_ok=True)
    (out_dir / "speed.json").write_text(json.dumps(results, indent=2))
    write_report(results, args.quick)


def write_report(results: dict, quick: bool = False) -> None:
    """Print the tables and write them, with the machine, to ``bench/SPEED.md``."""
    lines = tables(results)
    print("\n".join(lines))
    m = results["machine"]
    header = [
        "# Model speed (bench/speed.py)",
        "",
        f"Machine: {m['cpu']} ({m.get('cpu_details', '')}), {m['cores']} cores shared with other jobs (load average "
        f"{m['load_average'][0]:.1f} at start, {m['load_average_end'][0]:.1f} at end), Python {m['python']}, "
        f"torch {m['torch']}, numba {m['numba']}. Run {results['started']}{' (--quick)' if quick else ''}.",
        "Wall-clock best of N; on a shared machine the absolute numbers are noisy, the ratios (same run) less so.",
        "\"by CPU time\" divides by the process's CPU time instead (one thread: what one core delivers when",
        "it is not shared).",
        "step loop = the straightforward per-step PyTorch loop (released-code style); reference = fxcap's readable",
        "PyTorch modules (`model.fast = False`); fast = the default numba path. Automation = both knobs ramping,",
        "a new value every sample. Output checks (max abs vs reference) are in bench/results/speed.json.",
        "",
    ]
    (ROOT / "SPEED.md").write_text("\n".join(header + lines) + "\n")

if __name__ == "__main__":
    main()
