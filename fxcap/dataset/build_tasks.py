"""The write tasks of a dataset build, run in this process, in worker processes or as Ray tasks:
one per session (:func:`check_session`: its signal and take lengths, its input WAVs) and one per
Parquet shard (:func:`write_shard`: its rows' audio, read by sample range, and their target WAVs).

A task is a picklable description (:class:`SessionTask`, :class:`ShardTask`) plus the URI of the
folder to write under; it returns the manifest entries of the files it wrote (:func:`file_entry`).
"""

from __future__ import annotations

import hashlib
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from fxcap.capture.layout import audio_sha256
from fxcap.dataset.columns import audio_column
from fxcap.dataset.manifest import file_sha256
from fxcap.dataset.remote import Location, locate
from fxcap.dataset.schema import parquet_writer_kwargs
from fxcap.dataset.wavfile import float_wav_bytes
from fxcap.errors import DatasetError, FxcapError
from fxcap.io import read_wav


@dataclass(frozen=True)
class Source:
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
class ShardTask:
    """One Parquet shard: its row groups' scalar columns and audio sources."""

    rel: str
    split: str
    schema: pa.Schema
    groups: list[tuple[dict[str, pa.Array], list[Source]]]
    rate: int


@dataclass
class SessionTask:
    """One session's checks (signal length and sha256, take output lengths) and its input WAVs."""

    name: str
    signal: str
    length: int
    sha256: str | None
    rate: int
    outputs: list[tuple[str, str]]
    input_wavs: list[tuple[str, int, int]]


def file_entry(rel: str, kind: str, nbytes: int, sha256: str, split: str | None = None, rows: int | None = None) -> dict[str, Any]:
    """The manifest entry of a written file (``nbytes``: its size; ``sha256``: its hex digest)."""
    return {"path": rel, "kind": kind, "split": split, "rows": rows, "bytes": int(nbytes), "sha256": sha256}


def put_file(root: Location, rel: str, write: Callable[[Path], None]) -> tuple[int, str]:
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


def put_bytes(root: Location, rel: str, blob: bytes) -> tuple[int, str]:
    """Write ``blob`` to ``root/rel``; returns ``(bytes, sha256)``."""
    target = root / rel
    if root.is_local:
        target.local_path.parent.mkdir(parents=True, exist_ok=True)
        target.local_path.write_bytes(blob)
    else:
        target.write_bytes(blob)
    return len(blob), hashlib.sha256(blob).hexdigest()


class AudioReader:
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


def write_shard(task: ShardTask, root_uri: str) -> list[dict[str, Any]]:
    """Write one Parquet shard (and its rows' target WAVs) under ``root_uri``; returns their file entries."""
    root = locate(root_uri)
    reader = AudioReader(task.rate)
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
                        size, digest = put_bytes(root, src.wav_rel, float_wav_bytes(y, task.rate))
                        wavs.append(file_entry(src.wav_rel, "wav", size, digest))
                arrays = dict(scalars)
                arrays["input"] = audio_column(xs)
                arrays["target"] = audio_column(ys)
                table = pa.Table.from_arrays([arrays[f.name] for f in task.schema], schema=task.schema)
                writer.write_table(table, row_group_size=len(sources))

    try:
        size, digest = put_file(root, task.rel, write)
    finally:
        reader.close()
    rows = sum(len(sources) for _, sources in task.groups)
    return [file_entry(task.rel, "parquet", size, digest, split=task.split, rows=rows)] + wavs


def _audio_shape(path: str, rate: int) -> tuple[int, ...]:
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise FxcapError(f"cannot read audio file {path}: {exc}; check that it exists and is a WAV/FLAC/AIFF file") from None
    if int(info.samplerate) != rate:
        raise FxcapError(f"{path} is at {info.samplerate} Hz but {rate} Hz is needed; resample it first (e.g. sox in.wav -r {rate} out.wav)")
    return (int(info.frames),) if info.channels == 1 else (int(info.frames), int(info.channels))


def check_session(task: SessionTask, root_uri: str) -> list[dict[str, Any]]:
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
        size, digest = put_bytes(root, rel, float_wav_bytes(signal[start:stop], task.rate))
        entries.append(file_entry(rel, "wav", size, digest))
    return entries
