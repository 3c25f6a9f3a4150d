"""How many times faster than real time a virtual-device capture runs.

Generates the default capture signal once, then times ``SimBackend.play_record`` (virtual device
plus rig: fractional latency, drift, noise, hum) for the OD-3 and the LA-2A at a few knob settings,
best of ``--repeat`` runs, split into device and rig time. Reference: the very same device code with
the JIT switched off (``NUMBA_DISABLE_JIT=1``, plain Python) on a short excerpt, run in a
subprocess; its output must match the compiled one, and the table reports the speed-up.

    python bench/capture_speed.py [--rate 48000] [--preset default] [--repeat 3]

Prints a table and writes ``bench/results/capture_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fxcap.capture.backends.sim import SimBackend  # noqa: E402
from fxcap.capture.signal import SignalConfig, generate_signal  # noqa: E402
from fxcap.capture.virtual import apply_rig, build_virtual_device  # noqa: E402
from fxcap.io import atomic_write_json  # noqa: E402

SETTINGS = (
    ("OD-3", {"drive": 0.0, "tone": 5.0, "level": 5.0}),
    ("OD-3", {"drive": 5.0, "tone": 5.0, "level": 5.0}),
    ("OD-3", {"drive": 10.0, "tone": 8.0, "level": 7.0}),
    ("LA-2A", {"peak_reduction": 30.0, "gain": 50.0, "mode": "compress"}),
    ("LA-2A", {"peak_reduction": 70.0, "gain": 60.0, "mode": "compress"}),
    ("LA-2A", {"peak_reduction": 90.0, "gain": 50.0, "mode": "limit"}),
)

REFERENCE_SECONDS = 0.1
"""Length of the excerpt the plain-Python reference processes (seconds)."""

_REFERENCE_SCRIPT = """
import sys, time, json
import numpy as np
sys.path.insert(0, {root!r})
from fxcap.capture.virtual import build_virtual_device
x = np.load({excerpt!r})
out = {{}}
for i, (name, knobs) in enumerate(json.loads({settings!r})):
    device = build_virtual_device(name, {rate})
    start = time.perf_counter()
    y = device.process(x, knobs)
    out[str(i)] = time.perf_counter() - start
    np.save({prefix!r} + str(i) + ".npy", y)
print(json.dumps(out))
"""


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def reference_run(excerpt: np.ndarray, rate: int, tmp: Path) -> dict[int, tuple[float, np.ndarray]]:
    """Per setting: plain-Python seconds for ``excerpt`` and the output it produced."""
    np.save(tmp / "excerpt.npy", excerpt)
    script = _REFERENCE_SCRIPT.format(
        root=str(ROOT), excerpt=str(tmp / "excerpt.npy"), settings=json.dumps(SETTINGS), rate=rate, prefix=str(tmp / "ref")
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return {int(i): (s, np.load(tmp / f"ref{i}.npy")) for i, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "capture_speed.json")
    args = parser.parse_args()

    gen_s, signal = best_of(1, lambda: generate_signal(SignalConfig(sample_rate=args.rate, preset=args.preset)))
    audio, duration = signal.audio, signal.duration
    # Compile (or load from numba's cache) before timing.
    for name, knobs in SETTINGS[:: len(SETTINGS) - 1]:
        SimBackend(name, args.rate, seed=0).play_record(audio[: args.rate], knobs)

    excerpt = audio[signal.layout.region("mix").start :][: int(REFERENCE_SECONDS * args.rate)]
    with tempfile.TemporaryDirectory() as tmp:
        reference = reference_run(excerpt, args.rate, Path(tmp))

    rows = []
    for index, (name, knobs) in enumerate(SETTINGS):
        backend = SimBackend(name, args.rate, seed=index)
        total_s, _ = best_of(args.repeat, lambda: backend.play_record(audio, knobs))
        device = build_virtual_device(name, args.rate)

        def device_only():
            device.reset()
            return device.process(audio, knobs)

        device_s, output = best_of(args.repeat, device_only)
        rig_s, _ = best_of(args.repeat, lambda: apply_rig(output, backend.impairments, args.rate, seed=1))
        device.reset()
        jit_excerpt = device.process(excerpt, knobs)
        ref_s, ref_out = reference[index]
        per_sample_jit = device_s / len(audio)
        per_sample_ref = ref_s / len(excerpt)
        rows.append({
            "device": name,
            "knobs": knobs,
            "capture_s": total_s,
            "capture_x_realtime": duration / total_s,
            "device_s": device_s,
            "device_x_realtime": duration / device_s,
            "rig_s": rig_s,
            "python_reference_x_realtime": 1.0 / (per_sample_ref * args.rate),
            "jit_speedup_vs_python": per_sample_ref / per_sample_jit,
            "max_abs_diff_vs_python": float(np.max(np.abs(jit_excerpt.astype(np.float64) - ref_out))),
        })

    header = f"{'device':6} {'knobs':42} {'capture s':>9} {'x RT':>7} {'device s':>8} {'rig s':>6} {'py x RT':>8} {'JIT/py':>8} {'max|diff|':>9}"
    print(f"signal: {args.preset} preset, {duration:.1f} s at {args.rate} Hz (generated in {gen_s:.2f} s)")
    print(header)
    print("-" * len(header))
    for row in rows:
        knobs = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["knobs"].items())
        print(
            f"{row['device']:6} {knobs:42} {row['capture_s']:9.3f} {row['capture_x_realtime']:7.0f} {row['device_s']:8.3f} "
            f"{row['rig_s']:6.3f} {row['python_reference_x_realtime']:8.2f} {row['jit_speedup_vs_python']:8.0f} {row['max_abs_diff_vs_python']:9.1e}"
        )
    atomic_write_json(args.out, {
        "benchmark": "capture_speed",
        "signal": {"preset": args.preset, "sample_rate": args.rate, "seconds": duration, "generate_s": gen_s},
        "repeat": args.repeat,
        "reference": f"same device code with NUMBA_DISABLE_JIT=1 on a {REFERENCE_SECONDS:g} s excerpt",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "rows": rows,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
