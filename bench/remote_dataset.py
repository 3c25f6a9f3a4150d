"""Datasets on an S3 object store: build to it, validate it, stream it into the loader's cache, in one run.

Starts a moto S3 server on 127.0.0.1 in its own process (fake credentials, nothing leaves the machine), writes synthetic
sessions (:func:`fxcap.dataset.testing.make_dummy_session`), then measures:

write (MB/s of input+target float32 audio):
  - ``build_dataset`` into a local folder (reference) and into ``s3://``, each with 1 process and with
    ``--workers`` processes (shards are written locally, hashed and uploaded by each worker);
  - reference: the local build's files uploaded as they are with ``pyarrow.fs.copy_files``.

read:
  - shard fetch into the loader cache (download + sha256 check + decode to .npy), MB/s of Parquet bytes;
    reference: a plain download of the same objects (``pyarrow.fs.copy_files``);
  - random training windows (T, B) from the warm shard cache of the S3 dataset, against the local
    dataset's whole-split cache; and with a cache bound of half the training split from a cold cache
    (shards visited in groups that fit the bound, evicted and fetched again every epoch);
  - ``validate`` (every byte hashed, every row checked) on S3 and locally.

Usage: ``python bench/remote_dataset.py [--seconds 60] [--quick]``. Prints a table and writes
``bench/results/remote_dataset.json``. Timings are wall-clock on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset, make_dataloader, validate  # noqa: E402
from fxcap.dataset.remote import clear_filesystem_cache, locate  # noqa: E402
from fxcap.dataset.testing import make_dummy_session  # noqa: E402

MB = 1e6
BUCKET = "fxcap-bench"


class S3Server:
    """A moto S3 server in its own process on 127.0.0.1 (so it does not share this process's GIL), with
    fake credentials in this process's environment (inherited by build workers). Stopped by :meth:`stop`."""

    def __init__(self) -> None:
        try:
            import boto3
            import moto.server  # noqa: F401
        except ImportError:
            sys.exit("this benchmark needs a local S3 server: pip install 'moto[server]'")
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                          AWS_EC2_METADATA_DISABLED="true")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    sys.exit("the moto S3 server did not start")
                time.sleep(0.2)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        clear_filesystem_cache()
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _timed(run):
    t0 = time.perf_counter()
    out = run()
    return time.perf_counter() - t0, out


def _audio_bytes(info) -> int:
    return 8 * sum(s.samples for s in info.splits.values())


def _windows(loader, budget: float) -> tuple[int, float]:
    windows, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        for x, _, _ in loader:
            windows += x.shape[0]
            if time.perf_counter() - t0 >= budget:
                break
    return windows, time.perf_counter() - t0


def bench(args, work: Path) -> dict:
    grid = {"drive": [0.0, 5.0, 10.0], "tone": [2.0, 8.0]}
    sessions = [make_dummy_session(work / f"session{i}", knob_grid=grid, seconds=args.seconds, seed=0).root for i in range(args.sessions)]
    config = BuildConfig(split=SplitConfig(segment_seconds=2.0), shard_bytes=args.shard_mb << 20)
    s3 = f"s3://{BUCKET}"
    write: dict[str, dict] = {}

    seconds, local = _timed(lambda: build_dataset(sessions, work / "local", config, workers=1))
    audio = _audio_bytes(local)
    total = sum(f["bytes"] for f in local.manifest["files"])
    write["fxcap build -> local folder (1 process)"] = {"seconds": seconds}
    seconds, _ = _timed(lambda: build_dataset(sessions, work / "local-parallel", config, workers=args.workers))
    write[f"fxcap build -> local folder ({args.workers} processes)"] = {"seconds": seconds}
    seconds, _ = _timed(lambda: build_dataset(sessions, f"{s3}/ds-w1", config, workers=1))
    write["fxcap build -> s3:// (1 process)"] = {"seconds": seconds}
    seconds, remote = _timed(lambda: build_dataset(sessions, f"{s3}/ds", config, workers=args.workers))
    write[f"fxcap build -> s3:// ({args.workers} processes)"] = {"seconds": seconds}
    assert remote.dataset_hash == local.dataset_hash, "the S3 build differs from the local one"
    fs = locate(s3).fs
    seconds, _ = _timed(lambda: pafs.copy_files(str(local.path), f"{BUCKET}/plain-upload", source_filesystem=pafs.LocalFileSystem(),
                                                destination_filesystem=fs))
    write["reference: upload the local build (pyarrow copy_files)"] = {"seconds": seconds}
    for r in write.values():
        r["audio_MB_per_s"] = audio / MB / r["seconds"]
        r["files_MB_per_s"] = total / MB / r["seconds"]

    read: dict[str, dict] = {}
    shards = remote.shard_files()
    fs = locate(s3).fs
    shard_bytes = sum(f["bytes"] for f in remote.manifest["files"] if f["kind"] == "parquet")
    def download(i: int) -> None:
        (work / f"download{i}").mkdir()
        pafs.copy_files(f"{BUCKET}/ds/data", str(work / f"download{i}"), source_filesystem=fs,
                        destination_filesystem=pafs.LocalFileSystem())

    seconds = min(_timed(lambda: download(i))[0] for i in range(2))  # best of 2
    read["reference: download every shard (pyarrow copy_files, best of 2)"] = {"seconds": seconds, "MB_per_s": shard_bytes / MB / seconds}

    fetch = {}
    for split in remote.splits:
        loader = make_dataloader(remote.path, split, window=args.window, batch_size=args.batch, cache_dir=work / "cache",
                                 cache_max_bytes="64G", sequential=True, shuffle=False)
        cache = loader.dataset.cache
        for index in range(len(cache.shards)):
            cache._audio(index)
        fetch[split] = cache.stats
    fetched = sum(s.fetched_bytes for s in fetch.values())
    fetch_seconds = sum(s.fetch_seconds for s in fetch.values())
    read["fxcap shard fetch (download + sha256 + decode)"] = {
        "seconds": fetch_seconds, "MB_per_s": fetched / MB / fetch_seconds,
        "decoded_MB": sum(s.decoded_bytes for s in fetch.values()) / MB}

    windows = {}
    draws = dict(window=args.window, batch_size=args.batch, seed=0)
    local_loader = make_dataloader(local.path, "train", cache_dir=work / "local-cache", **draws)
    windows["local dataset, whole-split cache (reference)"] = _windows(local_loader, args.budget)
    warm = make_dataloader(remote.path, "train", cache_dir=work / "cache", cache_max_bytes="64G", **draws)
    windows["s3 dataset, warm shard cache"] = _windows(warm, args.budget)
    train_audio = 8 * remote.splits["train"].samples
    bound = max(train_audio // 2, max(s.nbytes for s in warm.dataset.cache.shards) + 256)
    small = make_dataloader(remote.path, "train", cache_dir=work / "small-cache", cache_max_bytes=bound, **draws)
    windows[f"s3 dataset, cache bound {bound / MB:.0f} MB (half the train split)"] = _windows(small, args.budget)
    small_stats = small.dataset.cache.stats.to_dict()
    reference_rate = windows["local dataset, whole-split cache (reference)"][0] / windows["local dataset, whole-split cache (reference)"][1]
    window_rows = {}
    for name, (count, seconds) in windows.items():
        rate = count / seconds
        window_rows[name] = {"windows": count, "seconds": seconds, "windows_per_s": rate, "MB_per_s": rate * args.window * 8 / MB,
                             "ratio_to_local": rate / reference_rate}

    seconds_s3, problems_s3 = _timed(lambda: validate(remote.path))
    seconds_local, problems_local = _timed(lambda: validate(local.path))
    assert problems_s3 == problems_local
    return {
        "sizes": {"sessions": args.sessions, "takes": args.sessions * 6, "audio_MB": audio / MB, "files_MB": total / MB,
                  "parquet_MB": shard_bytes / MB, "files": len(remote.manifest["files"]), "shards": len(shards),
                  "dataset_hash": remote.dataset_hash},
        "write": write,
        "read": read,
        "windows": window_rows,
        "small_cache_stats": small_stats,
        "validate": {"s3_seconds": seconds_s3, "local_seconds": seconds_local,
                     "s3_MB_per_s": total / MB / seconds_s3, "local_MB_per_s": total / MB / seconds_local},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each synthetic session's signal (s)")
    parser.add_argument("--sessions", type=int, default=2, help="sessions (6 takes each)")
    parser.add_argument("--shard-mb", type=int, default=8, help="shard size (MiB of audio)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the parallel build")
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of window reading per loader")
    parser.add_argument("--quick", action="store_true", help="20 s sessions, 1 s per loader")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "remote_dataset.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.budget = 20.0, 1.0

    server = S3Server()
    work = Path(tempfile.mkdtemp(prefix="fxcap-bench-remote-"))
    try:
        report = bench(args, work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    sizes = report["sizes"]
    print(f"\n{sizes['sessions']} sessions x 6 takes of {args.seconds:g} s at 48 kHz: {sizes['audio_MB']:.1f} MB of input+target audio; "
          f"dataset {sizes['files_MB']:.1f} MB in {sizes['files']} files ({sizes['shards']} Parquet shards, {sizes['parquet_MB']:.1f} MB)\n")
    print(f"{'write':<58} {'seconds':>8} {'audio MB/s':>11} {'files MB/s':>11}")
    for name, r in report["write"].items():
        print(f"{name:<58} {r['seconds']:8.2f} {r['audio_MB_per_s']:11.1f} {r['files_MB_per_s']:11.1f}")
    print(f"\n{'read shards from s3://':<58} {'seconds':>8} {'MB/s':>11}")
    for name, r in report["read"].items():
        print(f"{name:<58} {r['seconds']:8.2f} {r['MB_per_s']:11.1f}")
    print(f"\n{'random windows T=%d, B=%d (train split)' % (args.window, args.batch):<58} {'win/s':>8} {'MB/s':>11} {'vs local':>9}")
    for name, r in report["windows"].items():
        print(f"{name:<58} {r['windows_per_s']:8.0f} {r['MB_per_s']:11.1f} {r['ratio_to_local']:8.2f}x")
    stats = report["small_cache_stats"]
    print(f"  (small bound: {stats['fetched_shards']} shard fetches, {stats['evicted_shards']} evictions for {stats['windows']} windows)")
    v = report["validate"]
    print(f"\nvalidate: s3 {v['s3_seconds']:.2f} s ({v['s3_MB_per_s']:.1f} MB/s), local {v['local_seconds']:.2f} s ({v['local_MB_per_s']:.1f} MB/s)")
    report["machine"] = {"platform": platform.platform(), "python": platform.python_version(), "pyarrow": pa.__version__,
                         "cpus": os.cpu_count(), "server": "moto.server on 127.0.0.1 (its own process)"}
    report["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
