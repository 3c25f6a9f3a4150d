"""``build_dataset``: capture sessions -> Parquet shards, WAV shards, manifest and dataset card.

Everything written is a pure function of the sessions and the :class:`BuildConfig`: rows are ordered by
(split, session, take, segment), sessions by (creation time, folder name), writer options are fixed and
nothing carries a timestamp, so building twice gives byte-identical files.

The build reads top to bottom in four steps, one module each:

1. plan (:mod:`fxcap.dataset.build_plan`, with :mod:`~fxcap.dataset.build_inputs` and
   :mod:`~fxcap.dataset.columns`): open and check the sessions, choose the takes, split the signals and
   give every row its split, shard and row group;
2. write (:mod:`fxcap.dataset.build_tasks`, run by :mod:`fxcap.dataset.runner`): independent tasks, one
   per session (checks, input WAVs) and one per Parquet shard (its rows' audio, read by sample range, and
   their target WAVs), in this process, in worker processes or as Ray tasks; plus the WAV index
   (:mod:`fxcap.dataset.wav_index`);
3. describe: the manifest (``dataset.json``, below) and the dataset card;
4. publish (:mod:`fxcap.dataset.publish`): locally in a temporary folder renamed into place, on an
   object store (``s3://``, ``gs://``, ... see :mod:`fxcap.dataset.remote`) with ``dataset.json`` last,
   so a crash or an error never leaves a half-written dataset that readers would take for complete.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from fxcap import __version__
from fxcap.capture.profiles import DeviceProfile
from fxcap.capture.session import Session
from fxcap.dataset.build_inputs import NOISE_FLOOR_CHECKS, REPEATABILITY_CHECKS, conditioning_knobs
from fxcap.dataset.build_plan import BuildConfig, BuildPlan, make_plan
from fxcap.dataset.build_tasks import check_session, write_shard
from fxcap.dataset.holdout import describe_setting
from fxcap.dataset.manifest import DatasetInfo, dataset_hash, load_dataset_info
from fxcap.dataset.publish import BUILDING_MARKER, publish_local, publish_remote
from fxcap.dataset.remote import Location, locate
from fxcap.dataset.runner import AUTO_PARALLEL_BYTES, Job, run_jobs
from fxcap.dataset.schema import DATASET_FORMAT, DATASET_VERSION
from fxcap.dataset.wav_index import write_wav_index

__all__ = [
    "AUTO_PARALLEL_BYTES",
    "BUILDING_MARKER",
    "NOISE_FLOOR_CHECKS",
    "REPEATABILITY_CHECKS",
    "BuildConfig",
    "build_dataset",
    "conditioning_knobs",
]


def build_dataset(
    sessions: Sequence[str | Path | Session],
    out: str | Path | None = None,
    config: BuildConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
    ray: str | None = None,
) -> DatasetInfo:
    """Turn capture sessions into a dataset folder (see :mod:`fxcap.dataset.manifest` for its layout).

    Args:
        sessions: session folders (or opened :class:`Session` objects). Several are combined when they
            share the device profile, the sample rate and the test signal (sha256; different
            signals with ``config.mixed_signals``); otherwise a :class:`DatasetError` names the mismatch.
        out: the dataset folder: a local path or a URI (``s3://bucket/datasets/od3``, ``gs://...``,
            ``file://...``, ``memory://...``; see :mod:`fxcap.dataset.remote`); default ``datasets/<device>``.
        config: split, holdout and shard options.
        overwrite: replace an existing dataset at ``out`` (only a folder holding a ``dataset.json``).
        progress: called with a short message per finished task (a session checked, a shard written).
        workers: processes writing shards in parallel; ``None``: one per CPU core for builds of at least
            :data:`~fxcap.dataset.runner.AUTO_PARALLEL_BYTES` of audio, else this process only. The bytes never depend on it.
        ray: write shards as Ray tasks on the cluster at this address (``"auto"``, ``"HOST:PORT"``, or
            ``"local"`` for a Ray instance on this machine); the sessions and ``out`` must be reachable from
            its nodes (shared storage or an object store).

    Returns the new dataset's :class:`DatasetInfo`. Only takes that passed their checks are used;
    the others are listed (with the reason) in the manifest and the card.

    Locally the build happens in a temporary folder renamed into place at the end. On an object store
    (no rename there) files are written under their final names and ``dataset.json`` is written last, so
    readers see the complete new dataset or none; an interrupted build leaves a ``.fxcap-building`` marker
    and can be replaced with ``overwrite=True``.
    """
    p = make_plan(sessions, config or BuildConfig())

    def write(root: Location) -> dict[str, Any]:
        return _manifest(p, _write_files(p, root, workers, ray, progress))

    dest = locate(out if out is not None else _default_out(p.profile))
    if dest.is_local:
        return load_dataset_info(publish_local(dest.local_path, overwrite, write))
    return load_dataset_info(publish_remote(dest, overwrite, write))


def _run_tasks(p: BuildPlan, root: Location, workers: int | None, ray: str | None,
               progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Write every shard and WAV file under ``root`` (in parallel where asked); their file entries."""
    jobs: list[Job] = [
        (check_session, t, f"{t.name}: signal and {len(t.outputs)} take(s) checked") for t in p.session_tasks()
    ] + [(write_shard, t, f"{t.rel} ({sum(len(s) for _, s in t.groups)} rows)") for t in p.shard_tasks()]
    return run_jobs(jobs, root, workers, ray, p.audio_bytes, progress)


def _write_files(p: BuildPlan, root: Location, workers: int | None, ray: str | None,
                 progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Every data file with its kind, split, rows, size and sha256, sorted by path."""
    files = _run_tasks(p, root, workers, ray, progress)
    if p.config.write_wav:
        files += write_wav_index(root, [row for rows in p.rows.values() for row in rows], p.columns)
    return sorted(files, key=lambda f: f["path"])



def _signal_of(p: BuildPlan, session_index: int) -> int:
    """Index in ``p.signals`` of the signal session ``session_index`` played."""
    name = p.names[session_index]
    return next(i for i, s in enumerate(p.signals) if name in s["sessions"])



def _manifest(p: BuildPlan, files: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``dataset.json`` document (see :mod:`fxcap.dataset.manifest`)."""
    splits = {}
    for split, rows in p.rows.items():
        samples = sum(r.segment.num_samples for r in rows)
        splits[split] = {"rows": len(rows), "samples": samples, "seconds": samples / p.rate,
                         "takes": len({id(r.take) for r in rows}), "files": list(p.shard_paths[split])}
    takes = p.takes
    quality = {
        "noise_floor_dbfs": _stats([t.noise_floor_dbfs for t in takes]),
        "repeatability_esr": _stats([t.repeatability_esr for t in takes]),
        "latency_samples": _stats([t.record.alignment.latency_samples for t in takes]),
        "drift_ppm": _stats([t.record.alignment.drift_ppm for t in takes]),
    }
    first = p.sessions[0].manifest
    signal = {k: first.signal.get(k) for k in ("sha256", "version", "preset", "source", "length_samples")}
    mixed = len(p.signals) > 1
    if mixed:
        signal = {"sha256": p.signal_sha256, "mixed": True, "count": len(p.signals),
                  "seconds": sum(s["seconds"] for s in p.signals)}
    return {
        "format": DATASET_FORMAT,
        "dataset_version": DATASET_VERSION,
        "fxcap_version": __version__,
        "name": p.config.name or p.profile.name,
        "device": p.profile.to_dict(),
        "sample_rate": p.rate,
        "window": p.window,
        "signal": signal,
        "knobs": [k.to_dict() for k in p.knobs],
        "conditioning_knobs": conditioning_knobs(p.knobs, p.takes),
        "split_config": p.plan.config.to_dict(),
        "holdout": p.holdout,
        "plan": {**p.plan.to_dict(), **({"signals": p.signals} if mixed else {})},
        "sessions": [
            {
                "name": p.names[i],
                "created_at": s.manifest.created_at,
                "status": s.manifest.status,
                "backend": s.manifest.backend.to_dict(),
                **({"signal_sha256": p.signals[_signal_of(p, i)]["sha256"]} if mixed else {}),
                "takes_used": [t.record.take_id for t in takes if t.session_index == i],
                "takes_skipped": p.skipped[i],
                **({"takes_missing": p.missing[i]} if p.missing[i] else {}),
            }
            for i, s in enumerate(p.sessions)
        ],
        "takes": [
            {
                "session": t.session_name,
                "take_id": t.record.take_id,
                "index": t.record.index,
                "knobs": t.knobs_raw,
                "knobs_normalized": t.knobs_norm,
                "setting": describe_setting(p.profile, t.knobs_raw),
                "held_out": t.held_out,
                "is_reference": t.record.is_reference,
                "latency_samples": float(t.record.alignment.latency_samples),
                "gain_db": float(t.record.alignment.gain_db),
                "drift_ppm": float(t.record.alignment.drift_ppm),
                "noise_floor_dbfs": t.noise_floor_dbfs,
                "repeatability_esr": t.repeatability_esr,
            }
            for t in takes
        ],
        "quality": {key: stats for key, stats in quality.items() if stats is not None},
        "splits": splits,
        "wav_index": "wav/index.csv" if p.config.write_wav else None,
        "files": files,
        "dataset_hash": dataset_hash(files),
    }



def _stats(values: list[float | None]) -> dict[str, float] | None:
    clean = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not clean:
        return None
    return {"min": min(clean), "median": float(statistics.median(clean)), "max": max(clean), "count": len(clean)}



def _default_out(profile: DeviceProfile) -> Path:
    slug = "".join(ch if ch.isalnum() else "-" for ch in profile.name.lower()).strip("-") or "device"
    return Path("datasets") / slug
