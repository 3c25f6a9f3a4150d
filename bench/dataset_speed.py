"""Dataset speed: shard writing and training-window reading, fxcap against plain references, in one run.

Writes a synthetic session (:func:`fxcap.dataset.testing.make_dummy_session`), then measures:

write (MB/s of input+target float32 audio, session already on disk):
  - ``build_dataset`` writing Parquet shards only, and Parquet + WAV shards (reads the session,
    splits, writes, hashes every file, writes manifest and card);
  - reference: the same rows written with ``pandas.DataFrame.to_parquet`` defaults (snappy, plain encoding).

read (random training windows of T samples, batches of B; windows/s and MB/s of input+target):
  - fxcap loader (memory-mapped cache, built once; its build time is reported separately);
  - reference "WAV": per window, open the row's input and target WAV files, seek, read T frames (soundfile);
  - reference "Parquet": per window, decode the row group holding the row (pyarrow) and slice.

Usage: ``python bench/dataset_speed.py [--seconds 90] [--quick]``. Prints a table, writes
``bench/results/dataset_speed.json``. Timings are wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset, load_dataset_info, make_dataloader  # noqa: E402
from fxcap.dataset.testing import make_dummy_session  # noqa: E402

MB = 1e6


def _audio_bytes(info) -> int:
    return 8 * sum(s.samples for s in info.splits.values())


def _best_of(repeats: int, run) -> tuple[float, object]:
    """Run ``run(i)`` ``repeats`` times; the fastest wall time (s) and its result (first runs pay warm-up)."""
    best, result = float("inf"), None
    for i in range(repeats):
        t0 = time.perf_counter()
        out = run(i)
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, result = elapsed, out
    return best, result


def bench_write(session_root: Path, work: Path, segment: float, repeats: int) -> tuple[dict, Path]:
    split = SplitConfig(segment_seconds=segment)
    results = {}
    seconds, info = _best_of(repeats, lambda i: build_dataset([session_root], work / f"parquet_only{i}", BuildConfig(split=split, write_wav=False)))
    audio = _audio_bytes(info)
    shard_bytes = sum(p.stat().st_size for p in info.shard_files())
    results["fxcap build (Parquet)"] = {"seconds": seconds, "MB_per_s": audio / MB / seconds, "output_MB": shard_bytes / MB}

    seconds, full = _best_of(repeats, lambda i: build_dataset([session_root], work / f"with_wav{i}", BuildConfig(split=split)))
    out_bytes = sum(p.stat().st_size for p in full.path.rglob("*") if p.is_file())
    results["fxcap build (Parquet + WAV)"] = {"seconds": seconds, "MB_per_s": audio / MB / seconds, "output_MB": out_bytes / MB}

    frame = pd.concat([pd.read_parquet(p) for p in info.shard_files()], ignore_index=True)
    seconds, _ = _best_of(repeats, lambda i: frame.to_parquet(work / f"reference{i}.parquet"))
    results["reference pandas.to_parquet (rows in memory)"] = {
        "seconds": seconds, "MB_per_s": audio / MB / seconds, "output_MB": (work / "reference0.parquet").stat().st_size / MB}
    results["_audio_MB"] = audio / MB
    return results, full.path


def _random_keys(lengths: np.ndarray, window: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    positions = np.maximum(lengths - window + 1, 0).astype(float)
    rows = rng.choice(len(lengths), size=count, p=positions / positions.sum())
    return np.stack([rows, rng.integers(0, lengths[rows] - window + 1)], axis=1)


def bench_read(root: Path, window: int, batch: int, budget: float, cache_dir: Path) -> dict:
    info = load_dataset_info(root)
    results = {}

    t0 = time.perf_counter()
    loader = make_dataloader(root, "train", window=window, batch_size=batch, cache_dir=cache_dir, seed=0)
    results["_cache_build_seconds"] = time.perf_counter() - t0

    windows, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        for x, y, k in loader:
            windows += x.shape[0]
            if time.perf_counter() - t0 >= budget:
                break
    seconds = time.perf_counter() - t0
    results["fxcap loader (mmap cache)"] = {"windows": windows, "seconds": seconds}

    index = pd.read_csv(root / "wav" / "index.csv")
    index = index[index["split"] == "train"].reset_index(drop=True)
    lengths = index["num_samples"].to_numpy()
    keys = _random_keys(lengths, window, 1_000_000, seed=1)
    windows, t0 = 0, time.perf_counter()
    wav = root / "wav"
    while time.perf_counter() - t0 < budget:
        for _ in range(batch):
            row, offset = keys[windows]
            out = []
            for column in ("input_path", "target_path"):
                with sf.SoundFile(wav / index.at[row, column]) as handle:
                    handle.seek(int(offset))
                    out.append(handle.read(window, dtype="float32"))
            windows += 1
    seconds = time.perf_counter() - t0
    results["reference WAV (soundfile seek/read per window)"] = {"windows": windows, "seconds": seconds}

    files = [pq.ParquetFile(p) for p in info.shard_files("train")]
    locations = []  # (file, row group, row in group) per split row
    for f_index, parquet in enumerate(files):
        for group in range(parquet.num_row_groups):
            locations += [(f_index, group, r) for r in range(parquet.metadata.row_group(group).num_rows)]
    lengths = np.array(
        [n for p in info.shard_files("train") for n in pq.read_table(p, columns=["num_samples"]).column(0).to_pylist()])
    keys = _random_keys(lengths, window, 1_000_000, seed=2)
    windows, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        row, offset = keys[windows]
        f_index, group, r = locations[row]
        table = files[f_index].read_row_group(group, columns=["input", "target"])
        x = table.column("input")[r].values.to_numpy()[offset:offset + window]
        y = table.column("target")[r].values.to_numpy()[offset:offset + window]
        assert len(x) == len(y) == window
        windows += 1
    seconds = time.perf_counter() - t0
    results["reference Parquet (decode row group per window)"] = {"windows": windows, "seconds": seconds}

    for name, r in results.items():
        if not name.startswith("_"):
            r["windows_per_s"] = r["windows"] / r["seconds"]
            r["MB_per_s"] = r["windows_per_s"] * window * 8 / MB
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the synthetic signal (s)")
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of reading per method")
    parser.add_argument("--repeats", type=int, default=2, help="builds per write method (the fastest counts)")
    parser.add_argument("--quick", action="store_true", help="20 s signal, 1 s per read method")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "dataset_speed.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.budget = 20.0, 1.0

    work = Path(tempfile.mkdtemp(prefix="fxcap-bench-"))
    try:
        grid = {"drive": [0.0, 5.0, 10.0], "tone": [2.0, 8.0]}
        session = make_dummy_session(work / "session", knob_grid=grid, seconds=args.seconds, sample_rate=args.sample_rate)
        write, dataset = bench_write(session.root, work, segment=2.0, repeats=args.repeats)
        read = bench_read(dataset, args.window, args.batch, args.budget, work / "cache")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    audio_mb = write.pop("_audio_MB")
    cache_build = read.pop("_cache_build_seconds")
    print(f"\nsession: {args.seconds:g} s signal at {args.sample_rate} Hz, {len(grid['drive']) * len(grid['tone'])} takes; "
          f"{audio_mb:.1f} MB of input+target audio in the splits; best of {args.repeats} builds\n")
    print(f"{'write':<50} {'seconds':>8} {'MB/s':>8} {'output MB':>10}")
    for name, r in write.items():
        print(f"{name:<50} {r['seconds']:8.2f} {r['MB_per_s']:8.1f} {r['output_MB']:10.1f}")
    print(f"\n{'read: random windows T=%d, B=%d (train split)' % (args.window, args.batch):<50} {'win/s':>10} {'MB/s':>8} {'fxcap is':>9}")
    fxcap_rate = read["fxcap loader (mmap cache)"]["windows_per_s"]
    for name, r in read.items():
        r["ratio_fxcap_over_this"] = fxcap_rate / r["windows_per_s"]
        print(f"{name:<50} {r['windows_per_s']:10.0f} {r['MB_per_s']:8.1f} {r['ratio_fxcap_over_this']:8.1f}x")
    print(f"\nfxcap cache build (once per dataset and split): {cache_build:.2f} s")
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "pyarrow": pa.__version__},
        "config": vars(args) | {"out": str(args.out)},
        "audio_MB": audio_mb,
        "write": write,
        "read": read,
        "cache_build_seconds": cache_build,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")

if __name__ == "__main__":
    main()
