"""The rows of a dataset (one per take and segment, in split order) and their Arrow columns: the
scalar columns (device, split, take, knobs, alignment, quality) and the audio list columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from fxcap.capture.profiles import DeviceProfile
from fxcap.dataset.build_inputs import Take
from fxcap.dataset.schema import KnobColumn
from fxcap.dataset.splits import ALL_SPLITS, HOLDOUT_SPLIT, Segment


@dataclass
class Row:
    """One Parquet row: a take over one segment of its signal, in a split."""

    take: Take
    segment: Segment
    split: str

    @property
    def nbytes(self) -> int:
        return 8 * self.segment.num_samples  # input + target, float32


def plan_rows(takes: list[Take], segments: list[list[Segment]]) -> dict[str, list[Row]]:
    """Rows of every take over the segments of its session's signal (``segments[session_index]``)."""
    rows: dict[str, list[Row]] = {name: [] for name in ALL_SPLITS}
    for take in takes:  # already in (session, take) order
        for segment in segments[take.session_index]:
            split = HOLDOUT_SPLIT if take.held_out else segment.split
            rows[split].append(Row(take, segment, split))
    return {name: r for name, r in rows.items() if r}


def pack(rows: list[Row], limit: int) -> list[list[Row]]:
    """Greedy, order-keeping packing of rows into groups of at most ``limit`` bytes (at least one row each)."""
    groups: list[list[Row]] = [[]]
    size = 0
    for row in rows:
        if groups[-1] and size + row.nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row.nbytes
    return groups


def scalar_columns(rows: list[Row], profile: DeviceProfile, knobs: list[KnobColumn], backends: list[str], rate: int) -> dict[str, pa.Array]:
    """Every column of ``rows`` but the audio (``backends``: per session index; ``rate`` in Hz)."""
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


def audio_column(chunks: list[np.ndarray]) -> pa.ListArray:
    """A list<float32> column with one entry per chunk of samples."""
    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
    offsets = np.zeros(len(chunks) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.float32()))
