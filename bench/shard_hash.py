"""What checking the shards' sha256 costs when the loader's cache is built (once per dataset and split).

Builds a synthetic session and dataset (:func:`fxcap.dataset.testing.make_dummy_session`, OD-3, drive x
tone grid, Parquet shards only), then measures, for the train, valid and test splits together:

- the sha256 of every shard alone (what the check adds), in seconds and MB/s of Parquet;
- building the memory-mapped caches (:func:`fxcap.dataset.open_split_cache`: shard check, decode, write),
  which includes the sha256 check; the check's share of it.

Usage: ``python bench/shard_hash.py [--seconds 180] [--drive 11] [--tone 3]``. Prints one line per figure
and writes ``bench/results/shard_hash.json``. Timings are wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxcap.dataset import BuildConfig, build_dataset, load_dataset_info, open_split_cache  # noqa: E402
from fxcap.dataset.manifest import file_sha256  # noqa: E402
from fxcap.dataset.testing import make_dummy_session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="signal length (s), 48 kHz")
    parser.add_argument("--drive", type=int, default=11, help="drive settings (0..10)")
    parser.add_argument("--tone", type=int, default=3, help="tone settings (0..10)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fxcap-shard-hash-"))
    try:
        grid = {"drive": list(np.linspace(0, 10, args.drive)), "tone": list(np.linspace(0, 10, args.tone))}
        session = make_dummy_session(work / "session", knob_grid=grid, seconds=args.seconds)
        build_dataset([session.root], work / "dataset", BuildConfig(write_wav=False))
        info = load_dataset_info(work / "dataset")
        shards = [Path(p) for split in ("train", "valid", "test") for p in info.shard_files(split)]
        megabytes = sum(p.stat().st_size for p in shards) / 1e6
        started = time.perf_counter()
        for path in shards:
            file_sha256(path)
        hashing = time.perf_counter() - started
        started = time.perf_counter()
        for split in ("train", "valid", "test"):
            open_split_cache(info, split)
        building = time.perf_counter() - started
        result = {
            "takes": args.drive * args.tone, "signal_seconds": args.seconds, "shard_megabytes": round(megabytes, 1),
            "sha256_seconds": round(hashing, 3), "sha256_mb_per_s": round(megabytes / hashing, 1),
            "cache_build_seconds": round(building, 3), "sha256_share_of_cache_build": round(hashing / building, 3),
        }
        for key, value in result.items():
            print(f"{key}: {value}")
        out = Path(__file__).parent / "results" / "shard_hash.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
