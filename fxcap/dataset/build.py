"""``build_dataset``: capture sessions -> Parquet shards, WAV shards, manifest and dataset card.

The build happens in a temporary folder beside the output, which is renamed into place at the end:
a crash or an error never leaves a half-written dataset behind (and files inside need no per-file
atomic writes). Everything written is a pure function of the sessions and the :class:`BuildConfig`:
rows are ordered by (split, session, take, segment), sessions by (creation time, folder name), writer
options are fixed and nothing carries a timestamp, so building twice gives byte-identical files.

The work is planned first (every row's split, shard and row group), then done as independent tasks:
one per session (checks, input WAVs) and one per Parquet shard (its rows' audio, read by sample range,
and their target WAVs). Tasks run in this process, in worker processes or as Ray tasks
(:mod:`fxcap.parallel`); each writes its own files, so the bytes never depend on where they ran.
The output may be any filesystem of :mod:`fxcap.dataset.remote` (``s3://``, ``gs://``, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import posixpath
import shutil
import statistics
import tempfile
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from fxcap import __version__
from fxcap.capture.layout import audio_sha256
from fxcap.capture.profiles import DeviceProfile
from fxcap.capture.session import Session, TakeRecord
from fxcap.capture.take_files import verify_takes
from fxcap.dataset.card import render_card
from fxcap.dataset.completeness import check_complete
from fxcap.dataset.holdout import HoldoutSpec, describe_setting, parse_holdout
from fxcap.dataset.manifest import CARD_NAME, MANIFEST_NAME, dataset_hash, file_sha256, load_dataset_info, DatasetInfo
from fxcap.dataset.schema import (
    DATASET_FORMAT,
    CATEGORICAL_COLUMNS,
    DATASET_VERSION,
    PARQUET_WRITE_OPTIONS,
    ROW_GROUP_BYTES,
    KnobColumn,
    default_window,
    knob_columns,
    parquet_writer_kwargs,
    row_schema,
    shard_metadata,
)
from fxcap.dataset.splits import ALL_SPLITS, HOLDOUT_SPLIT, Segment, SplitConfig, SplitPlan, plan_splits
from fxcap.dataset.remote import Location, locate
from fxcap.dataset.wavfile import float_wav_bytes
from fxcap.errors import DatasetError, FxcapError
from fxcap.io import atomic_write_json, atomic_write_text, json_text, read_wav
from fxcap.locking import building_pattern, folder_lock, pid_alive, remove_stale
from fxcap.parallel import TaskRunner, task_runner, unwrap_error

log = logging.getLogger(__name__)

NOISE_FLOOR_CHECKS = ("noise_floor",)
"""Names of the take checks whose ``value`` is the noise floor (dBFS)."""
REPEATABILITY_CHECKS = ("repeatability",)
"""Names of the take checks whose ``value`` is the repeatability ESR (validation copy A vs B)."""


@dataclass(frozen=True)
class BuildConfig:
    """Options of :func:`build_dataset`.

    Attributes:
        split: how the signal is cut into train/valid/test segments.
        holdout: knob settings to hold out (``"drive=5"``, ``"drive=5,tone=3"``), see :mod:`fxcap.dataset.holdout`.
        window: default training window (samples) stored in the dataset; ``None``: by device kind
            (8192 for compressors, 2048 otherwise).
        write_wav: also write the WAV shards (doubles the disk space; Parquet alone suffices for fxcap).
        include_reference: keep the session's reference takes (repeats of the reference setting).
        shard_bytes: maximum audio bytes per Parquet shard (a shard holds at least one row).
        row_group_bytes: target audio bytes per Parquet row group.
        name: dataset name (default: the device name).
        mixed_signals: combine sessions that played different signals (e.g. a dry/wet dataset
            imported as one session per input file, :mod:`fxcap.capture.signaltrain`). Each signal
            is split along time on its own, so no stretch of any input is in two splits; segment
            indices are numbered across all signals. Off: sessions must share one signal.
        allow_incomplete: build from sessions that stopped before their plan was done (with a warning;
            the manifest lists their missing takes). Off: such a session is refused
            (:mod:`fxcap.dataset.completeness`).
    """

    split: SplitConfig = field(default_factory=SplitConfig)
    holdout: tuple[str, ...] = ()
    window: int | None = None
    write_wav: bool = True
    include_reference: bool = True
    shard_bytes: int = 256 << 20
    row_group_bytes: int = ROW_GROUP_BYTES
    name: str | None = None
    mixed_signals: bool = False
    allow_incomplete: bool = False

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 1:
            raise DatasetError(f"window must be a positive number of samples, not {self.window}")
        if self.shard_bytes < 1 or self.row_group_bytes < 1:
            raise DatasetError("shard and row-group sizes must be positive")


@dataclass
class _Take:
    """A take chosen for the dataset, with everything its rows need."""

    session_index: int
    session_name: str
    record: TakeRecord
    knobs_raw: dict[str, Any]
    knobs_norm: dict[str, float]
    held_out: bool
    noise_floor_dbfs: float | None
    repeatability_esr: float | None


@dataclass
class _Row:
    take: _Take
    segment: Segment
    split: str

    @property
    def nbytes(self) -> int:
        return 8 * self.segment.num_samples  # input + target, float32


# -- sessions ------------------------------------------------------------------------------------------


def _open_sessions(sessions: Sequence[str | Path | Session]) -> list[Session]:
    if not sessions:
        raise DatasetError("no session given; pass one or more session folders (fxcap build-dataset SESSION...)")
    opened = [s if isinstance(s, Session) else Session.open(s) for s in sessions]
    for session in opened:  # a take replaced after it was recorded is refused, an unhashed one said
        for warning in verify_takes(session):
            log.warning("%s", warning)
    roots = [s.root.resolve() for s in opened]
    if len(set(roots)) != len(roots):
        raise DatasetError("the same session was given twice; list each session folder once")
    return sorted(opened, key=lambda s: (s.manifest.created_at, s.root.name, str(s.root)))


def _check_compatible(sessions: list[Session], mixed_signals: bool = False) -> None:
    first = sessions[0]
    for other in sessions[1:]:
        a, b = first.root.name, other.root.name
        if first.manifest.device.to_dict() != other.manifest.device.to_dict():
            raise DatasetError(
                f"cannot combine sessions {a} and {b}: different devices or knob definitions "
                f"({first.manifest.device.name} vs {other.manifest.device.name}); build one dataset per device"
            )
        if first.sample_rate != other.sample_rate:
            raise DatasetError(
                f"cannot combine sessions {a} and {b}: different sample rates ({first.sample_rate} vs "
                f"{other.sample_rate} Hz); record them at one rate"
            )
        if not mixed_signals and first.manifest.signal.get("sha256") != other.manifest.signal.get("sha256"):
            raise DatasetError(
                f"cannot combine sessions {a} and {b}: they played different test signals (signal sha256 "
                f"{str(first.manifest.signal.get('sha256'))[:12]} vs {str(other.manifest.signal.get('sha256'))[:12]}); "
                "record them with the same signal preset and program material (or, for a dataset of different "
                "dry/wet files, allow it: BuildConfig(mixed_signals=True))"
            )


def _session_names(sessions: list[Session]) -> list[str]:
    names: list[str] = []
    for session in sessions:
        base = session.root.name or "session"
        name, n = base, 2
        while name in names:
            name, n = f"{base}~{n}", n + 1
        names.append(name)
    return names


def _check_value(record: TakeRecord, names: Iterable[str]) -> float | None:
    for name in names:
        check = record.check(name)
        if check is not None and check.value is not None and math.isfinite(check.value):
            return float(check.value)
    return None


def _failure_reason(record: TakeRecord) -> str:
    failed = [c for c in record.checks if not c.passed and c.severity == "error"]
    return "; ".join(f"{c.name}: {c.message or 'failed'}" for c in failed) or "failed its checks"


def _select_takes(
    sessions: list[Session], names: list[str], profile: DeviceProfile, specs: list[HoldoutSpec], config: BuildConfig
) -> tuple[list[_Take], list[list[dict[str, str]]]]:
    takes: list[_Take] = []
    skipped: list[list[dict[str, str]]] = []
    for index, (session, name) in enumerate(zip(sessions, names)):
        skipped.append([])
        for record in sorted(session.takes, key=lambda r: (r.index, r.take_id)):
            if not record.passed:
                skipped[-1].append({"take_id": record.take_id, "reason": _failure_reason(record)})
                log.warning("session %s: skipping take %s (%s)", name, record.take_id, _failure_reason(record))
                continue
            if record.is_reference and not config.include_reference:
                skipped[-1].append({"take_id": record.take_id, "reason": "reference take (include_reference is off)"})
                continue
            try:
                raw = profile.complete(record.knobs)
            except ValueError as exc:
                raise DatasetError(f"session {name}, take {record.take_id}: {exc}") from None
            takes.append(
                _Take(
                    session_index=index,
                    session_name=name,
                    record=record,
                    knobs_raw=raw,
                    knobs_norm=profile.normalize(raw),
                    held_out=any(spec.matches(profile, raw) for spec in specs),
                    noise_floor_dbfs=_check_value(record, NOISE_FLOOR_CHECKS),
                    repeatability_esr=_check_value(record, REPEATABILITY_CHECKS),
                )
            )
    if not takes:
        raise DatasetError("no take passed its checks in the given session(s); re-record or fix the rig first")
    for spec in specs:
        if not any(spec.matches(profile, t.knobs_raw) for t in takes):
            present = sorted({describe_setting(profile, t.knobs_raw) for t in takes})
            raise DatasetError(f"--holdout {spec.text}: no take has that setting; settings present: {'; '.join(present)}")
    if all(t.held_out for t in takes):
        raise DatasetError("--holdout holds out every take; nothing would be left to train on")
    return takes, skipped


# -- rows and shards ------------------------------------------------------------------------------------


def _plan_rows(takes: list[_Take], segments: list[list[Segment]]) -> dict[str, list[_Row]]:
    """Rows of every take over the segments of its session's signal (``segments[session_index]``)."""
    rows: dict[str, list[_Row]] = {name: [] for name in ALL_SPLITS}
    for take in takes:  # already in (session, take) order
        for segment in segments[take.session_index]:
            split = HOLDOUT_SPLIT if take.held_out else segment.split
            rows[split].append(_Row(take, segment, split))
    return {name: r for name, r in rows.items() if r}


def _pack(rows: list[_Row], limit: int) -> list[list[_Row]]:
    """Greedy, order-keeping packing of rows into groups of at most ``limit`` bytes (at least one row each)."""
    groups: list[list[_Row]] = [[]]
    size = 0
    for row in rows:
        if groups[-1] and size + row.nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row.nbytes
    return groups


def _scalar_columns(rows: list[_Row], profile: DeviceProfile, knobs: list[KnobColumn], backends: list[str], rate: int) -> dict[str, pa.Array]:
    cols: dict[str, Any] = {
        "device": [profile.name] * len(rows),
        "backend": [backends[r.take.session_index] for r in rows],
        "sample_rate": pa.array([rate] * len(rows), pa.int32()),
        "split": [r.split for r in rows],
        "time_split": [r.segment.split for r in rows],
        "session": [r.take.session_name for r in rows],
        "take_id": [r.take.record.take_id for r in rows],
        "take_index": pa.array([r.take.record.index for r in rows], pa.int32()),
        "segment_index": pa.array([r.segment.index for r in rows], pa.int32()),
        "region": [r.segment.region for r in rows],
        "region_kind": [r.segment.kind for r in rows],
        "start_sample": pa.array([r.segment.start for r in rows], pa.int64()),
        "start_seconds": pa.array([r.segment.start / rate for r in rows], pa.float64()),
        "num_samples": pa.array([r.segment.num_samples for r in rows], pa.int32()),
    }
    for knob in knobs:
        raw = [r.take.knobs_raw[knob.name] for r in rows]
        cols[knob.raw_column] = pa.array([str(v) for v in raw] if knob.is_switch else [float(v) for v in raw],
                                         pa.string() if knob.is_switch else pa.float64())
        cols[knob.column] = pa.array([r.take.knobs_norm[knob.name] for r in rows], pa.float32())
    al = [r.take.record.alignment for r in rows]
    cols["latency_samples"] = pa.array([float(a.latency_samples) for a in al], pa.float64())
    cols["gain_db"] = pa.array([float(a.gain_db) for a in al], pa.float64())
    cols["polarity"] = pa.array([int(a.polarity) for a in al], pa.int8())
    cols["drift_ppm"] = pa.array([float(a.drift_ppm) for a in al], pa.float64())
    cols["noise_floor_dbfs"] = pa.array([r.take.noise_floor_dbfs for r in rows], pa.float64())
    cols["repeatability_esr"] = pa.array([r.take.repeatability_esr for r in rows], pa.float64())
    return {k: (v if isinstance(v, pa.Array) else pa.array(v, pa.string())) for k, v in cols.items()}


def _audio_column(chunks: list[np.ndarray]) -> pa.ListArray:
    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
    offsets = np.zeros(len(chunks) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.float32()))



# -- write tasks (run here, in worker processes or as Ray tasks) ------------------------------------------

AUTO_PARALLEL_BYTES = 1 << 30
"""With ``workers=None``, builds with at least this much audio (bytes, input + target) use worker processes.

Below it a single process is as fast: starting workers costs about a second, and one process already
keeps about two cores busy (pyarrow compresses on its own threads)."""

BUILDING_MARKER = ".fxcap-building"
"""Object written first (and removed last) when building into an object store: marks an unfinished build."""


@dataclass(frozen=True)
class _Source:
    """Where one row's audio comes from: local session files and a sample range (picklable)."""

    session: str
    take_id: str
    signal: str
    output: str
    start: int
    stop: int
    region: str
    wav_rel: str | None
    """Dataset path of the row's target WAV, when WAV shards are written."""


@dataclass
class _ShardTask:
    """One Parquet shard: its row groups' scalar columns and audio sources."""

    rel: str
    split: str
    schema: pa.Schema
    groups: list[tuple[dict[str, pa.Array], list[_Source]]]
    rate: int


@dataclass
class _SessionTask:
    """One session's checks (signal length and sha256, take output lengths) and its input WAVs."""

    name: str
    signal: str
    length: int
    sha256: str | None
    rate: int
    outputs: list[tuple[str, str]]
    input_wavs: list[tuple[str, int, int]]


def _entry(rel: str, kind: str, nbytes: int, sha256: str, split: str | None = None, rows: int | None = None) -> dict[str, Any]:
    return {"path": rel, "kind": kind, "split": split, "rows": rows, "bytes": int(nbytes), "sha256": sha256}


def _put_file(root: Location, rel: str, write: Callable[[Path], None]) -> tuple[int, str]:
    """Have ``write(path)`` produce ``root/rel``; returns ``(bytes, sha256)``.

    Locally it writes in place (inside the build folder); elsewhere into a scratch file that is then uploaded.
    """
    target = root / rel
    if root.is_local:
        path = target.local_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        return path.stat().st_size, file_sha256(path)
    with tempfile.TemporaryDirectory(prefix="fxcap-shard-") as scratch:
        path = Path(scratch) / posixpath.basename(rel)
        write(path)
        size, digest = path.stat().st_size, file_sha256(path)
        target.upload(path)
    return size, digest


def _put_bytes(root: Location, rel: str, blob: bytes) -> tuple[int, str]:
    """Write ``blob`` to ``root/rel``; returns ``(bytes, sha256)``."""
    target = root / rel
    if root.is_local:
        target.local_path.parent.mkdir(parents=True, exist_ok=True)
        target.local_path.write_bytes(blob)
    else:
        target.write_bytes(blob)
    return len(blob), hashlib.sha256(blob).hexdigest()


class _AudioReader:
    """Reads sample ranges of session audio files, keeping the last few open (rows come in take order)."""

    def __init__(self, rate: int, keep: int = 4):
        self.rate = rate
        self.keep = keep
        self.open: dict[str, sf.SoundFile] = {}

    def read(self, path: str, start: int, stop: int) -> np.ndarray:
        handle = self.open.pop(path, None)
        if handle is None:
            try:
                handle = sf.SoundFile(path)
            except (RuntimeError, sf.LibsndfileError, OSError) as exc:
                raise FxcapError(f"cannot read audio file {path}: {exc}; check that it exists and is a WAV/FLAC/AIFF file") from None
            if handle.samplerate != self.rate:
                handle.close()
                raise FxcapError(f"{path} is at {handle.samplerate} Hz but {self.rate} Hz is needed; the session is corrupt")
        self.open[path] = handle
        while len(self.open) > self.keep:
            self.open.pop(next(iter(self.open))).close()
        try:
            handle.seek(start)
            return handle.read(stop - start, dtype="float32", always_2d=False)
        except (RuntimeError, sf.LibsndfileError, OSError) as exc:
            raise FxcapError(f"cannot read samples {start}..{stop} of {path}: {exc}; the file is truncated or damaged: "
                             "re-record or re-import that take") from None

    def close(self) -> None:
        for handle in self.open.values():
            handle.close()
        self.open.clear()


def _write_shard(task: _ShardTask, root_uri: str) -> list[dict[str, Any]]:
    """Write one Parquet shard (and its rows' target WAVs) under ``root_uri``; returns their file entries."""
    root = locate(root_uri)
    reader = _AudioReader(task.rate)
    wavs: list[dict[str, Any]] = []

    def write(path: Path) -> None:
        with pq.ParquetWriter(path, task.schema, **parquet_writer_kwargs(task.schema)) as writer:
            for scalars, sources in task.groups:
                xs, ys = [], []
                for src in sources:
                    x = reader.read(src.signal, src.start, src.stop)
                    y = reader.read(src.output, src.start, src.stop)
                    if y.ndim != 1 or len(y) != src.stop - src.start or len(x) != len(y):
                        raise DatasetError(
                            f"session {src.session}, take {src.take_id}: output has {y.shape} samples at {src.start}..{src.stop}; "
                            "the session is corrupt (re-align or re-record the take)")
                    if not np.isfinite(y).all():
                        raise DatasetError(
                            f"session {src.session}, take {src.take_id}: output has NaN/Inf samples in "
                            f"{src.region} at {src.start / task.rate:.3f} s; re-record the take"
                        )
                    xs.append(x)
                    ys.append(y)
                    if src.wav_rel is not None:
                        size, digest = _put_bytes(root, src.wav_rel, float_wav_bytes(y, task.rate))
                        wavs.append(_entry(src.wav_rel, "wav", size, digest))
                arrays = dict(scalars)
                arrays["input"] = _audio_column(xs)
                arrays["target"] = _audio_column(ys)
                table = pa.Table.from_arrays([arrays[f.name] for f in task.schema], schema=task.schema)
                writer.write_table(table, row_group_size=len(sources))

    try:
        size, digest = _put_file(root, task.rel, write)
    finally:
        reader.close()
    rows = sum(len(sources) for _, sources in task.groups)
    return [_entry(task.rel, "parquet", size, digest, split=task.split, rows=rows)] + wavs


def _audio_shape(path: str, rate: int) -> tuple[int, ...]:
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise FxcapError(f"cannot read audio file {path}: {exc}; check that it exists and is a WAV/FLAC/AIFF file") from None
    if int(info.samplerate) != rate:
        raise FxcapError(f"{path} is at {info.samplerate} Hz but {rate} Hz is needed; resample it first (e.g. sox in.wav -r {rate} out.wav)")
    return (int(info.frames),) if info.channels == 1 else (int(info.frames), int(info.channels))


def _check_session(task: _SessionTask, root_uri: str) -> list[dict[str, Any]]:
    """Check a session's signal and take outputs; write its input WAVs. Returns their file entries."""
    root = locate(root_uri)
    signal, _ = read_wav(task.signal, expected_rate=task.rate)
    if signal.ndim != 1 or len(signal) != task.length:
        raise DatasetError(f"session {task.name}: signal.wav has {signal.shape} samples, its layout says {task.length}")
    if task.sha256 and audio_sha256(signal) != task.sha256:
        raise DatasetError(f"session {task.name}: signal.wav does not match its recorded sha256; the session is corrupt")
    for take_id, output in task.outputs:
        shape = _audio_shape(output, task.rate)
        if len(shape) != 1 or shape[0] != len(signal):
            raise DatasetError(
                f"session {task.name}, take {take_id}: output has {shape} samples, the signal {len(signal)}; the session "
                "is corrupt (re-align or re-record the take)"
            )
    entries = []
    for rel, start, stop in task.input_wavs:
        size, digest = _put_bytes(root, rel, float_wav_bytes(signal[start:stop], task.rate))
        entries.append(_entry(rel, "wav", size, digest))
    return entries


# -- the build --------------------------------------------------------------------------------------------


def _stats(values: list[float | None]) -> dict[str, float] | None:
    clean = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not clean:
        return None
    return {"min": min(clean), "median": float(statistics.median(clean)), "max": max(clean), "count": len(clean)}


def _default_out(profile: DeviceProfile) -> Path:
    slug = "".join(ch if ch.isalnum() else "-" for ch in profile.name.lower()).strip("-") or "device"
    return Path("datasets") / slug


@dataclass
class _Plan:
    """Everything decided before any byte is written: sessions, takes, segments, rows per split and shard."""

    config: BuildConfig
    sessions: list[Session]
    names: list[str]
    profile: DeviceProfile
    rate: int
    plan: SplitPlan
    knobs: list[KnobColumn]
    holdout: list[str]
    takes: list[_Take]
    skipped: list[list[dict[str, str]]]
    rows: dict[str, list[_Row]]
    window: int
    session_segments: list[list[Segment]]
    signals: list[dict[str, Any]]
    missing: list[list[str]]

    def __post_init__(self) -> None:
        self.shards = {split: _pack(rows, self.config.shard_bytes) for split, rows in self.rows.items()}
        self.shard_paths = {split: [f"data/{split}-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
                            for split, shards in self.shards.items()}

    @property
    def signal_sha256(self) -> str:
        """The signal's sha256, or for mixed signals a hash over theirs (in plan order)."""
        if len(self.signals) == 1:
            return str(self.signals[0]["sha256"])
        return hashlib.sha256("\n".join(str(s["sha256"]) for s in self.signals).encode("utf-8")).hexdigest()

    @property
    def audio_bytes(self) -> int:
        return sum(row.nbytes for rows in self.rows.values() for row in rows)

    def columns(self, batch: list[_Row]) -> dict[str, pa.Array]:
        backends = [str(s.manifest.backend.get("name", "unknown")) for s in self.sessions]
        return _scalar_columns(batch, self.profile, self.knobs, backends, self.rate)

    def schema(self, split: str) -> pa.Schema:
        return row_schema(self.knobs, shard_metadata(
            profile=self.profile, knobs=self.knobs, sample_rate=self.rate, signal_sha256=self.signal_sha256,
            split=split, window=self.window, split_config=self.plan.config.to_dict(), holdout=self.holdout))

    def _source(self, row: _Row) -> _Source:
        session = self.sessions[row.take.session_index]
        return _Source(
            session=row.take.session_name, take_id=row.take.record.take_id,
            signal=str(session.root / session.manifest.signal["file"]), output=str(session.root / row.take.record.output_file),
            start=row.segment.start, stop=row.segment.stop, region=row.segment.region,
            wav_rel=f"wav/{_wav_paths(row)[1]}" if self.config.write_wav else None,
        )

    def shard_tasks(self) -> list[_ShardTask]:
        """One task per Parquet shard; row groups packed exactly as a sequential writer would."""
        tasks = []
        for split, shards in self.shards.items():
            schema = self.schema(split)
            for rel, rows in zip(self.shard_paths[split], shards):
                groups = [(self.columns(group), [self._source(r) for r in group]) for group in _pack(rows, self.config.row_group_bytes)]
                tasks.append(_ShardTask(rel=rel, split=split, schema=schema, groups=groups, rate=self.rate))
        return tasks

    def session_tasks(self) -> list[_SessionTask]:
        """One task per session that has takes in the dataset."""
        tasks = []
        for index, session in enumerate(self.sessions):
            takes = [t for t in self.takes if t.session_index == index]
            if not takes:
                continue
            layout = session.layout
            wavs = [(f"wav/{_input_wav_path(self.names[index], s)}", s.start, s.stop) for s in self.session_segments[index]] \
                if self.config.write_wav else []
            tasks.append(_SessionTask(
                name=self.names[index], signal=str(session.root / session.manifest.signal["file"]), length=layout.length,
                sha256=layout.sha256, rate=self.rate,
                outputs=[(t.record.take_id, str(session.root / t.record.output_file)) for t in takes], input_wavs=wavs,
            ))
        return tasks


def _split_signals(sessions: list[Session], names: list[str], config: SplitConfig) -> tuple[SplitPlan, list[list[Segment]], list[dict[str, Any]]]:
    """One split plan per distinct signal (sessions in order), segment indices numbered across them.

    Returns the combined plan (every segment), each session's segments, and per signal its sha256,
    sessions and segment index range.
    """
    plans: dict[str, SplitPlan] = {}
    signals: list[dict[str, Any]] = []
    per_session: list[list[Segment]] = []
    offset = 0
    for session, name in zip(sessions, names):
        layout = session.layout
        key = layout.sha256 or str(session.manifest.signal.get("sha256"))
        if key not in plans:
            try:
                plan = plan_splits(layout, config)
            except DatasetError as exc:
                raise DatasetError(f"session {name}: {exc}") from None
            segments = [dataclasses.replace(seg, index=seg.index + offset) for seg in plan.segments]
            plans[key] = dataclasses.replace(plan, segments=segments)
            signals.append({"sha256": key, "sessions": [], "first_segment": offset, "segments": len(segments),
                            "source": layout.source, "seconds": layout.length / layout.sample_rate})
            offset += len(segments)
        next(s for s in signals if s["sha256"] == key)["sessions"].append(name)
        per_session.append(plans[key].segments)
    first = plans[signals[0]["sha256"]]
    combined = SplitPlan(
        config=first.config,
        sample_rate=first.sample_rate,
        segments=[seg for plan in plans.values() for seg in plan.segments],
        dropped_samples=sum(plan.dropped_samples for plan in plans.values()),
        excluded_regions=list(dict.fromkeys(r for plan in plans.values() for r in plan.excluded_regions)),
    )
    return combined, per_session, signals


def conditioning_knobs(knobs: Sequence[KnobColumn], takes: Sequence[_Take]) -> list[str]:
    """The knobs whose value varies across the dataset's takes: the models' conditioning inputs.

    A knob held at one value in every take carries no information a model could learn (the
    paper's OD-3 models see DRIVE and TONE, not the fixed LEVEL); its raw and normalized columns
    are still written to every shard. If no knob varies, all knobs are kept.
    """
    varying = [k.name for k in knobs if len({str(t.knobs_raw.get(k.name)) for t in takes}) > 1]
    return varying or [k.name for k in knobs]


def _make_plan(sessions: Sequence[str | Path | Session], config: BuildConfig) -> _Plan:
    opened = _open_sessions(sessions)
    _check_compatible(opened, config.mixed_signals)
    profile = opened[0].manifest.device
    names = _session_names(opened)
    missing = check_complete(opened, names, config.allow_incomplete)
    plan, per_session, signals = _split_signals(opened, names, config.split)
    specs = [parse_holdout(text, profile) for text in config.holdout]
    takes, skipped = _select_takes(opened, names, profile, specs, config)
    return _Plan(
        config=config, sessions=opened, names=names, profile=profile, rate=opened[0].sample_rate, plan=plan,
        knobs=knob_columns(profile), holdout=[s.text for s in specs], takes=takes, skipped=skipped,
        rows=_plan_rows(takes, per_session), window=int(config.window or default_window(profile)),
        session_segments=per_session, signals=signals, missing=missing,
    )


def _runner(p: _Plan, root: Location, tasks: int, workers: int | None, ray: str | None) -> TaskRunner:
    if root.process_local or tasks <= 1:
        return TaskRunner()
    if ray:
        return task_runner(ray=ray)
    if workers is None:
        workers = (os.cpu_count() or 1) if p.audio_bytes >= AUTO_PARALLEL_BYTES else 1
    return task_runner(max(1, min(int(workers), tasks)))


def _run_tasks(p: _Plan, root: Location, workers: int | None, ray: str | None,
               progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Write every shard and WAV file under ``root`` (in parallel where asked); their file entries."""
    jobs: list[tuple[Callable[..., list[dict[str, Any]]], Any, str]] = [
        (_check_session, t, f"{t.name}: signal and {len(t.outputs)} take(s) checked") for t in p.session_tasks()
    ] + [(_write_shard, t, f"{t.rel} ({sum(len(s) for _, s in t.groups)} rows)") for t in p.shard_tasks()]
    entries: list[dict[str, Any]] = []
    with _runner(p, root, len(jobs), workers, ray) as runner:
        futures = {runner.submit(fn, task, str(root)): label for fn, task, label in jobs}
        try:
            for future in as_completed(futures):
                try:
                    entries += future.result()
                except BrokenProcessPool:
                    raise DatasetError("a worker process died while writing the dataset (out of memory?); "
                                       "build again with fewer --workers") from None
                except BaseException as exc:
                    raise unwrap_error(exc) from None
                if progress is not None:
                    progress(futures[future])
        except BaseException:
            for future in futures:
                runner.cancel(future)
            raise
    return entries


def _write_files(p: _Plan, root: Location, workers: int | None, ray: str | None,
                 progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Every data file with its kind, split, rows, size and sha256, sorted by path."""
    files = _run_tasks(p, root, workers, ray, progress)
    if p.config.write_wav:
        files += _write_wav_index(root, [row for rows in p.rows.values() for row in rows], p.columns)
    return sorted(files, key=lambda f: f["path"])


def _signal_of(p: _Plan, session_index: int) -> int:
    """Index in ``p.signals`` of the signal session ``session_index`` played."""
    name = p.names[session_index]
    return next(i for i, s in enumerate(p.signals) if name in s["sessions"])


def _manifest(p: _Plan, files: list[dict[str, Any]]) -> dict[str, Any]:
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
                "backend": s.manifest.backend,
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
            :data:`AUTO_PARALLEL_BYTES` of audio, else this process only. The bytes never depend on it.
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
    p = _make_plan(sessions, config or BuildConfig())
    dest = locate(out if out is not None else _default_out(p.profile))
    if not dest.is_local:
        return _build_remote(p, dest, overwrite, progress, workers, ray)
    out = dest.local_path
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; choose a folder for --out")
    with folder_lock(out, "build-dataset"):  # one builder per --out: a second one stops here
        _recover_interrupted(out)
        if out.exists() and any(out.iterdir()):
            if not (out / MANIFEST_NAME).is_file():
                raise DatasetError(f"{out} exists and is not an fxcap dataset; choose another --out")
            if not overwrite:
                raise DatasetError(f"{out} already holds a dataset; pass --force to replace it or choose another --out")
        tmp = out.parent / f".{out.name}.building-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            files = _write_files(p, locate(tmp), workers, ray, progress)
            manifest = _manifest(p, files)
            atomic_write_json(tmp / MANIFEST_NAME, manifest)
            atomic_write_text(tmp / CARD_NAME, render_card(manifest))
            _move_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return load_dataset_info(out)


def _build_remote(p: _Plan, dest: Location, overwrite: bool, progress: Callable[[str], None] | None,
                  workers: int | None, ray: str | None) -> DatasetInfo:
    """Build into an object store (see :func:`build_dataset`): data files first, ``dataset.json`` last."""
    if dest.is_file():
        raise DatasetError(f"{dest} is a file; choose a folder for --out")
    before = dest.files()
    if MANIFEST_NAME in before and not overwrite:
        raise DatasetError(f"{dest} already holds a dataset; pass --force to replace it or choose another --out")
    if before and MANIFEST_NAME not in before:
        if BUILDING_MARKER not in before:
            raise DatasetError(f"{dest} exists and is not an fxcap dataset; choose another --out")
        if not overwrite:
            raise DatasetError(f"{dest} holds an unfinished build; pass --force to replace it or choose another --out")
    (dest / BUILDING_MARKER).write_text("an fxcap dataset build is writing here; dataset.json is written last\n")
    (dest / MANIFEST_NAME).delete()  # unpublish the old dataset before its files are replaced
    files = _write_files(p, dest, workers, ray, progress)
    manifest = _manifest(p, files)
    (dest / CARD_NAME).write_text(render_card(manifest))
    (dest / MANIFEST_NAME).write_text(json_text(manifest))
    keep = {f["path"] for f in files} | {MANIFEST_NAME, CARD_NAME}
    for rel in sorted(set(before) - keep):
        if not rel.startswith(".cache/") and rel != BUILDING_MARKER:
            (dest / rel).delete()  # left over from the replaced dataset
    (dest / BUILDING_MARKER).delete()
    return load_dataset_info(dest)


def _input_wav_path(session_name: str, segment: Segment) -> str:
    """Path (relative to ``wav/``) of a segment's input: shared by every take of the session."""
    return f"input/{session_name}/seg-{segment.index:05d}.wav"


def _wav_paths(row: _Row) -> tuple[str, str]:
    """``(input_path, target_path)`` of a row's WAV pair, relative to ``wav/``."""
    target = f"target/{row.take.session_name}/{row.take.record.take_id}/seg-{row.segment.index:05d}.wav"
    return _input_wav_path(row.take.session_name, row.segment), target


def _write_wav_index(root: Location, rows: list[_Row], columns: Callable[[list[_Row]], dict[str, pa.Array]]) -> list[dict[str, Any]]:
    """``wav/index.parquet`` and ``wav/index.csv``: the scalar columns plus ``input_path``/``target_path``.

    Rows are in the same order as the Parquet shards' rows (split, session, take, segment).
    """
    arrays = columns(rows)
    paths = [_wav_paths(row) for row in rows]
    arrays["input_path"] = pa.array([p[0] for p in paths], pa.string())
    arrays["target_path"] = pa.array([p[1] for p in paths], pa.string())
    table = pa.table(arrays)
    entries = []
    size, digest = _put_file(root, "wav/index.parquet", lambda path: pq.write_table(
        table, path, use_dictionary=[c for c in CATEGORICAL_COLUMNS if c in table.column_names], **PARQUET_WRITE_OPTIONS))
    entries.append(_entry("wav/index.parquet", "index", size, digest, rows=len(rows)))
    csv = table.to_pandas().to_csv(index=False, lineterminator="\n").encode("utf-8")
    size, digest = _put_bytes(root, "wav/index.csv", csv)
    entries.append(_entry("wav/index.csv", "index", size, digest, rows=len(rows)))
    return entries


def _recover_interrupted(out: Path) -> None:
    """Clean what a killed build into ``out`` left beside it (its ``.building-PID`` folder); a dataset it had
    moved aside (``.old-PID``) but not yet replaced is moved back first. Call it holding ``out``'s lock."""
    if not out.exists():
        for old in sorted(out.parent.glob(f".{out.name}.old-*")):
            pid = old.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)) and (old / MANIFEST_NAME).is_file():
                os.replace(old, out)
                log.warning("note: moved back the dataset an interrupted build had set aside: %s", out)
                break
    remove_stale(out.parent, (building_pattern(out.name),))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished build folder to ``out``, replacing an old dataset only once the new one is complete."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError as exc:
        if old is not None:
            os.replace(old, out)
        raise FxcapError(f"cannot move the new dataset into {out}: {exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
