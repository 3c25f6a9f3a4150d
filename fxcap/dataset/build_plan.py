"""The plan of a dataset build: everything decided before any byte is written.

:func:`make_plan` opens and checks the sessions, chooses the takes, splits the signals and assigns
every row its split, Parquet shard and row group (:class:`BuildPlan`), from the options of
:class:`BuildConfig`. The plan then describes the write tasks (:mod:`fxcap.dataset.build_tasks`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from fxcap.capture.profiles import DeviceProfile
from fxcap.capture.session import Session
from fxcap.dataset.build_inputs import Take, check_compatible, open_sessions, select_takes, session_names, split_signals
from fxcap.dataset.build_tasks import SessionTask, ShardTask, Source
from fxcap.dataset.columns import Row, pack, plan_rows, scalar_columns
from fxcap.dataset.completeness import check_complete
from fxcap.dataset.holdout import parse_holdout
from fxcap.dataset.schema import ROW_GROUP_BYTES, KnobColumn, default_window, knob_columns, row_schema, shard_metadata
from fxcap.dataset.splits import Segment, SplitConfig, SplitPlan
from fxcap.dataset.wav_index import input_wav_path, wav_paths
from fxcap.errors import DatasetError


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
class BuildPlan:
    """Everything decided before any byte is written: sessions, takes, segments, rows per split and shard."""

    config: BuildConfig
    sessions: list[Session]
    names: list[str]
    profile: DeviceProfile
    rate: int
    plan: SplitPlan
    knobs: list[KnobColumn]
    holdout: list[str]
    takes: list[Take]
    skipped: list[list[dict[str, str]]]
    rows: dict[str, list[Row]]
    window: int
    session_segments: list[list[Segment]]
    signals: list[dict[str, Any]]
    missing: list[list[str]]

    def __post_init__(self) -> None:
        self.shards = {split: pack(rows, self.config.shard_bytes) for split, rows in self.rows.items()}
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

    def columns(self, batch: list[Row]) -> dict[str, pa.Array]:
        backends = [s.manifest.backend.name for s in self.sessions]
        return scalar_columns(batch, self.profile, self.knobs, backends, self.rate)

    def schema(self, split: str) -> pa.Schema:
        return row_schema(self.knobs, shard_metadata(
            profile=self.profile, knobs=self.knobs, sample_rate=self.rate, signal_sha256=self.signal_sha256,
            split=split, window=self.window, split_config=self.plan.config.to_dict(), holdout=self.holdout))

    def _source(self, row: Row) -> Source:
        session = self.sessions[row.take.session_index]
        return Source(
            session=row.take.session_name, take_id=row.take.record.take_id,
            signal=str(session.root / session.manifest.signal["file"]), output=str(session.root / row.take.record.output_file),
            start=row.segment.start, stop=row.segment.stop, region=row.segment.region,
            wav_rel=f"wav/{wav_paths(row)[1]}" if self.config.write_wav else None,
        )

    def shard_tasks(self) -> list[ShardTask]:
        """One task per Parquet shard; row groups packed exactly as a sequential writer would."""
        tasks = []
        for split, shards in self.shards.items():
            schema = self.schema(split)
            for rel, rows in zip(self.shard_paths[split], shards):
                groups = [(self.columns(group), [self._source(r) for r in group]) for group in pack(rows, self.config.row_group_bytes)]
                tasks.append(ShardTask(rel=rel, split=split, schema=schema, groups=groups, rate=self.rate))
        return tasks

    def session_tasks(self) -> list[SessionTask]:
        """One task per session that has takes in the dataset."""
        tasks = []
        for index, session in enumerate(self.sessions):
            takes = [t for t in self.takes if t.session_index == index]
            if not takes:
                continue
            layout = session.layout
            wavs = [(f"wav/{input_wav_path(self.names[index], s)}", s.start, s.stop) for s in self.session_segments[index]] \
                if self.config.write_wav else []
            tasks.append(SessionTask(
                name=self.names[index], signal=str(session.root / session.manifest.signal["file"]), length=layout.length,
                sha256=layout.sha256, rate=self.rate,
                outputs=[(t.record.take_id, str(session.root / t.record.output_file)) for t in takes], input_wavs=wavs,
            ))
        return tasks


def make_plan(sessions: Sequence[str | Path | Session], config: BuildConfig) -> BuildPlan:
    """Open, check and plan a build of ``sessions`` (raises :class:`DatasetError` on what cannot be built)."""
    opened = open_sessions(sessions)
    check_compatible(opened, config.mixed_signals)
    profile = opened[0].manifest.device
    names = session_names(opened)
    missing = check_complete(opened, names, config.allow_incomplete)
    plan, per_session, signals = split_signals(opened, names, config.split)
    specs = [parse_holdout(text, profile) for text in config.holdout]
    takes, skipped = select_takes(opened, names, profile, specs, config.include_reference)
    return BuildPlan(
        config=config, sessions=opened, names=names, profile=profile, rate=opened[0].sample_rate, plan=plan,
        knobs=knob_columns(profile), holdout=[s.text for s in specs], takes=takes, skipped=skipped,
        rows=plan_rows(takes, per_session), window=int(config.window or default_window(profile)),
        session_segments=per_session, signals=signals, missing=missing,
    )
