"""The WAV shards' names (a segment's input, shared by the session's takes; a row's target) and
their index, ``wav/index.parquet`` and ``wav/index.csv``."""

from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from fxcap.dataset.build_tasks import file_entry, put_bytes, put_file
from fxcap.dataset.columns import Row
from fxcap.dataset.remote import Location
from fxcap.dataset.schema import CATEGORICAL_COLUMNS, PARQUET_WRITE_OPTIONS
from fxcap.dataset.splits import Segment


def input_wav_path(session_name: str, segment: Segment) -> str:
    """Path (relative to ``wav/``) of a segment's input: shared by every take of the session."""
    return f"input/{session_name}/seg-{segment.index:05d}.wav"


def wav_paths(row: Row) -> tuple[str, str]:
    """``(input_path, target_path)`` of a row's WAV pair, relative to ``wav/``."""
    target = f"target/{row.take.session_name}/{row.take.record.take_id}/seg-{row.segment.index:05d}.wav"
    return input_wav_path(row.take.session_name, row.segment), target


def write_wav_index(root: Location, rows: list[Row], columns: Callable[[list[Row]], dict[str, pa.Array]]) -> list[dict[str, Any]]:
    """``wav/index.parquet`` and ``wav/index.csv``: the scalar columns plus ``input_path``/``target_path``.

    Rows are in the same order as the Parquet shards' rows (split, session, take, segment).
    """
    arrays = columns(rows)
    paths = [wav_paths(row) for row in rows]
    arrays["input_path"] = pa.array([p[0] for p in paths], pa.string())
    arrays["target_path"] = pa.array([p[1] for p in paths], pa.string())
    table = pa.table(arrays)
    entries = []
    size, digest = put_file(root, "wav/index.parquet", lambda path: pq.write_table(
        table, path, use_dictionary=[c for c in CATEGORICAL_COLUMNS if c in table.column_names], **PARQUET_WRITE_OPTIONS))
    entries.append(file_entry("wav/index.parquet", "index", size, digest, rows=len(rows)))
    csv = table.to_pandas().to_csv(index=False, lineterminator="\n").encode("utf-8")
    size, digest = put_bytes(root, "wav/index.csv", csv)
    entries.append(file_entry("wav/index.csv", "index", size, digest, rows=len(rows)))
    return entries
