"""``build_dataset``: capture sessions -> Parquet shards, WAV shards, manifest and dataset card.

The build happens in a temporary folder beside the output, which is renamed into place at the end:
a crash or an error never leaves a half-written dataset behind (and files inside need no per-file
atomic writes). Everything written is a pure function of the sessions and the :class:`BuildConfig`:
rows are ordered by (split, session, take, segment), sessions by (creation time, folder name), writer
options are fixed and nothing carries a timestamp, so building twice gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fxcap import __version__
from fxcap.capture.layout import audio_sha256
from fxcap.capture.profiles import DeviceProfile
from fxcap.capture.session import Session, TakeRecord
from fxcap.dataset.card import render_card
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
from fxcap.dataset.wavfile import write_float_wav
from fxcap.errors import DatasetError, FxcapError
from fxcap.io import atomic_write_json, atomic_write_text

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


class _SplitWriter:
    """Writes one split's rows, in order, into its planned shards and row groups."""

    def __init__(self, root: Path, split: str, rows: list[_Row], schema: pa.Schema, config: BuildConfig, columns: Callable[[list[_Row]], dict[str, pa.Array]]):
        self.root = root
        self.split = split
        self.schema = schema
        self.columns = columns
        self.shards = _pack(rows, config.shard_bytes)
        self.row_group_bytes = config.row_group_bytes
        self.paths = [f"data/{split}-{i:05d}-of-{len(self.shards):05d}.parquet" for i in range(len(self.shards))]
        self.shard = 0
        self.writer: pq.ParquetWriter | None = None
        self.written_in_shard = 0
        self.pending: list[tuple[_Row, np.ndarray, np.ndarray]] = []
        self.pending_bytes = 0
        self.bytes_out = 0

    def add(self, row: _Row, x: np.ndarray, y: np.ndarray) -> None:
        expected = self.shards[self.shard][self.written_in_shard + len(self.pending)]
        assert expected is row, "rows must arrive in plan order"
        if self.pending and self.pending_bytes + row.nbytes > self.row_group_bytes:
            self._flush()
        self.pending.append((row, x, y))
        self.pending_bytes += row.nbytes
        if self.written_in_shard + len(self.pending) == len(self.shards[self.shard]):
            self._flush()
            self._close_shard()

    def _flush(self) -> None:
        if not self.pending:
            return
        if self.writer is None:
            path = self.root / self.paths[self.shard]
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema, **parquet_writer_kwargs(self.schema))
        rows = [p[0] for p in self.pending]
        arrays = self.columns(rows)
        arrays["input"] = _audio_column([p[1] for p in self.pending])
        arrays["target"] = _audio_column([p[2] for p in self.pending])
        table = pa.Table.from_arrays([arrays[f.name] for f in self.schema], schema=self.schema)
        self.writer.write_table(table, row_group_size=len(rows))
        self.bytes_out += sum(r.nbytes for r in rows)
        self.written_in_shard += len(rows)
        self.pending, self.pending_bytes = [], 0

    def _close_shard(self) -> None:
        assert self.writer is not None
        self.writer.close()
        self.writer = None
        self.shard += 1
        self.written_in_shard = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


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
    """Everything decided before any byte is written: sessions, takes, segments, rows per split."""

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

    @property
    def signal_sha256(self) -> str:
        """The signal's sha256, or for mixed signals a hash over theirs (in plan order)."""
        if len(self.signals) == 1:
            return str(self.signals[0]["sha256"])
        return hashlib.sha256("\n".join(str(s["sha256"]) for s in self.signals).encode("utf-8")).hexdigest()

    def columns(self, batch: list[_Row]) -> dict[str, pa.Array]:
        backends = [str(s.manifest.backend.get("name", "unknown")) for s in self.sessions]
        return _scalar_columns(batch, self.profile, self.knobs, backends, self.rate)

    def schema(self, split: str) -> pa.Schema:
        return row_schema(self.knobs, shard_metadata(
            profile=self.profile, knobs=self.knobs, sample_rate=self.rate, signal_sha256=self.signal_sha256,
            split=split, window=self.window, split_config=self.plan.config.to_dict(), holdout=self.holdout))


def conditioning_knobs(knobs: Sequence[KnobColumn], takes: Sequence[_Take]) -> list[str]:
    """The knobs whose value varies across the dataset's takes: the models' conditioning inputs.

    A knob held at one value in every take carries no information a model could learn (the
    paper's OD-3 models see DRIVE and TONE, not the fixed LEVEL); its raw and normalized columns
    are still written to every shard. If no knob varies, all knobs are kept.
    """
    varying = [k.name for k in knobs if len({str(t.knobs_raw.get(k.name)) for t in takes}) > 1]
    return varying or [k.name for k in knobs]


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


def _make_plan(sessions: Sequence[str | Path | Session], config: BuildConfig) -> _Plan:
    opened = _open_sessions(sessions)
    _check_compatible(opened, config.mixed_signals)
    profile = opened[0].manifest.device
    names = _session_names(opened)
    plan, per_session, signals = _split_signals(opened, names, config.split)
    specs = [parse_holdout(text, profile) for text in config.holdout]
    takes, skipped = _select_takes(opened, names, profile, specs, config)
    return _Plan(
        config=config, sessions=opened, names=names, profile=profile, rate=opened[0].sample_rate, plan=plan,
        knobs=knob_columns(profile), holdout=[s.text for s in specs], takes=takes, skipped=skipped,
        rows=_plan_rows(takes, per_session), window=int(config.window or default_window(profile)),
        session_segments=per_session, signals=signals,
    )


def _write_audio(p: _Plan, tmp: Path, progress: Callable[[str], None] | None) -> dict[str, _SplitWriter]:
    """Read every session's signal and every take's output once; write Parquet (and WAV) shards."""
    writers = {split: _SplitWriter(tmp, split, rows, p.schema(split), p.config, p.columns) for split, rows in p.rows.items()}
    by_take: dict[int, list[_Row]] = {}
    for split_rows in p.rows.values():
        for row in split_rows:
            by_take.setdefault(id(row.take), []).append(row)
    for index, session in enumerate(p.sessions):
        session_takes = [t for t in p.takes if t.session_index == index]
        if not session_takes:
            continue
        layout = session.layout
        signal = session.input_audio()
        if signal.ndim != 1 or len(signal) != layout.length:
            raise DatasetError(f"session {p.names[index]}: signal.wav has {signal.shape} samples, its layout says {layout.length}")
        if layout.sha256 and audio_sha256(signal) != layout.sha256:
            raise DatasetError(f"session {p.names[index]}: signal.wav does not match its recorded sha256; the session is corrupt")
        if p.config.write_wav:
            for segment in p.session_segments[index]:
                path = tmp / "wav" / _input_wav_path(p.names[index], segment)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_float_wav(path, signal[segment.start:segment.stop], p.rate)
        for take in session_takes:
            if progress is not None:
                progress(f"{take.session_name}/{take.record.take_id}")
            target = session.take_output(take.record)
            if target.ndim != 1 or len(target) != len(signal):
                raise DatasetError(
                    f"session {take.session_name}, take {take.record.take_id}: output has {target.shape} samples, "
                    f"the signal {len(signal)}; the session is corrupt (re-align or re-record the take)"
                )
            for row in by_take[id(take)]:
                seg = row.segment
                x, y = signal[seg.start:seg.stop], target[seg.start:seg.stop]
                if not np.isfinite(y).all():
                    raise DatasetError(
                        f"session {take.session_name}, take {take.record.take_id}: output has NaN/Inf samples in "
                        f"{seg.region} at {seg.start / p.rate:.3f} s; re-record the take"
                    )
                writers[row.split].add(row, x, y)
                if p.config.write_wav:
                    path = tmp / "wav" / _wav_paths(row)[1]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_float_wav(path, y, p.rate)
    for writer in writers.values():
        writer.close()
    return writers


def _file_entries(p: _Plan, tmp: Path, writers: dict[str, _SplitWriter]) -> list[dict[str, Any]]:
    """Every data file with its kind, split, rows, size and sha256, sorted by path."""
    files: list[dict[str, Any]] = []
    for split, writer in writers.items():
        for path, shard_rows in zip(writer.paths, writer.shards):
            files.append({"path": path, "kind": "parquet", "split": split, "rows": len(shard_rows)})
    if p.config.write_wav:
        files += _write_wav_index(tmp, [row for rows in p.rows.values() for row in rows], p.columns)
    for entry in files:
        entry["bytes"] = (tmp / entry["path"]).stat().st_size
        entry["sha256"] = file_sha256(tmp / entry["path"])
    if p.config.write_wav:
        files += _wav_file_entries(tmp)
    return sorted(files, key=lambda f: f["path"])


def _signal_of(p: _Plan, session_index: int) -> int:
    """Index in ``p.signals`` of the signal session ``session_index`` played."""
    name = p.names[session_index]
    return next(i for i, s in enumerate(p.signals) if name in s["sessions"])


def _manifest(p: _Plan, writers: dict[str, _SplitWriter], files: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``dataset.json`` document (see :mod:`fxcap.dataset.manifest`)."""
    splits = {}
    for split, writer in writers.items():
        rows = p.rows[split]
        samples = sum(r.segment.num_samples for r in rows)
        splits[split] = {"rows": len(rows), "samples": samples, "seconds": samples / p.rate,
                         "takes": len({id(r.take) for r in rows}), "files": list(writer.paths)}
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
) -> DatasetInfo:
    """Turn capture sessions into a dataset folder (see :mod:`fxcap.dataset.manifest` for its layout).

    Args:
        sessions: session folders (or opened :class:`Session` objects). Several are combined when they
            share the device profile, the sample rate and the test signal (sha256; different
            signals with ``config.mixed_signals``); otherwise a :class:`DatasetError` names the mismatch.
        out: the dataset folder; default ``datasets/<device>``.
        config: split, holdout and shard options.
        overwrite: replace an existing dataset at ``out`` (only a folder holding a ``dataset.json``).
        progress: called with a short message per take (for a progress display).

    Returns the new dataset's :class:`DatasetInfo`. Only takes that passed their checks are used;
    the others are listed (with the reason) in the manifest and the card.
    """
    p = _make_plan(sessions, config or BuildConfig())
    out = Path(out) if out is not None else _default_out(p.profile)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; choose a folder for --out")
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST_NAME).is_file():
            raise DatasetError(f"{out} exists and is not an fxcap dataset; choose another --out")
        if not overwrite:
            raise DatasetError(f"{out} already holds a dataset; pass --force to replace it or choose another --out")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        writers = _write_audio(p, tmp, progress)
        files = _file_entries(p, tmp, writers)
        manifest = _manifest(p, writers, files)
        atomic_write_json(tmp / MANIFEST_NAME, manifest)
        atomic_write_text(tmp / CARD_NAME, render_card(manifest))
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_dataset_info(out)


def _input_wav_path(session_name: str, segment: Segment) -> str:
    """Path (relative to ``wav/``) of a segment's input: shared by every take of the session."""
    return f"input/{session_name}/seg-{segment.index:05d}.wav"


def _wav_paths(row: _Row) -> tuple[str, str]:
    """``(input_path, target_path)`` of a row's WAV pair, relative to ``wav/``."""
    target = f"target/{row.take.session_name}/{row.take.record.take_id}/seg-{row.segment.index:05d}.wav"
    return _input_wav_path(row.take.session_name, row.segment), target


def _write_wav_index(root: Path, rows: list[_Row], columns: Callable[[list[_Row]], dict[str, pa.Array]]) -> list[dict[str, Any]]:
    """``wav/index.parquet`` and ``wav/index.csv``: the scalar columns plus ``input_path``/``target_path``.

    Rows are in the same order as the Parquet shards' rows (split, session, take, segment).
    """
    arrays = columns(rows)
    paths = [_wav_paths(row) for row in rows]
    arrays["input_path"] = pa.array([p[0] for p in paths], pa.string())
    arrays["target_path"] = pa.array([p[1] for p in paths], pa.string())
    table = pa.table(arrays)
    pq.write_table(table, root / "wav" / "index.parquet", use_dictionary=[c for c in CATEGORICAL_COLUMNS if c in table.column_names],
                   **PARQUET_WRITE_OPTIONS)
    table.to_pandas().to_csv(root / "wav" / "index.csv", index=False, lineterminator="\n")
    return [
        {"path": "wav/index.parquet", "kind": "index", "split": None, "rows": len(rows)},
        {"path": "wav/index.csv", "kind": "index", "split": None, "rows": len(rows)},
    ]


def _wav_file_entries(root: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((root / "wav").rglob("*.wav")):
        rel = path.relative_to(root).as_posix()
        entries.append({"path": rel, "kind": "wav", "split": None, "rows": None, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return entries


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
