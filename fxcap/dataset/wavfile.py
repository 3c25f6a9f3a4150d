"""A byte-deterministic 32-bit float WAV writer for the WAV shards.

libsndfile stamps the current time into the PEAK chunk of float WAV files, so the same samples written
twice differ in bytes. Dataset shards must be byte-identical for identical inputs, so this writes the
plain RIFF/WAVE layout itself: ``fmt`` (WAVE_FORMAT_IEEE_FLOAT, mono, 32 bit), ``fact``, ``data``.
Every reader of float WAV (soundfile/libsndfile, scipy, sox, DAWs) reads it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

WAVE_FORMAT_IEEE_FLOAT = 3


def float_wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """The bytes of a mono float32 WAV file holding ``audio`` (samples) at ``sample_rate`` (Hz)."""
    data = np.ascontiguousarray(audio, dtype="<f4")
    if data.ndim != 1:
        raise ValueError(f"expected mono audio (n,), got shape {data.shape}")
    frames = data.shape[0]
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHH", WAVE_FORMAT_IEEE_FLOAT, 1, int(sample_rate), int(sample_rate) * 4, 4, 32)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"fact" + struct.pack("<II", 4, frames)
    chunks += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_float_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> int:
    """Write ``audio`` to ``path`` (no temporary file: callers build inside a folder renamed at the end).

    Returns the number of bytes written.
    """
    blob = float_wav_bytes(audio, sample_rate)
    Path(path).write_bytes(blob)
    return len(blob)
