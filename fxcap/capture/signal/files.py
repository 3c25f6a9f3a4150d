"""The capture signal on disk: a float32 WAV and its layout JSON beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fxcap.capture.layout import TestSignal, audio_sha256, read_layout
from fxcap.errors import FxcapError
from fxcap.io import atomic_write_json, atomic_write_wav, read_wav
from fxcap.outpaths import check_out_file


def layout_path(path: str | Path) -> Path:
    """Where the layout JSON of the signal WAV ``path`` lives: beside it, ``.json`` suffix."""
    return Path(path).with_suffix(".json")


def save_signal(signal: TestSignal, path: str | Path) -> Path:
    """Write ``signal`` as a float32 WAV at ``path`` and its layout beside it (both atomically)."""
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise FxcapError(f"signal file {path} must end in .wav")
    check_out_file(path)
    atomic_write_wav(path, signal.audio, signal.sample_rate)
    atomic_write_json(layout_path(path), signal.layout.to_dict())
    return path


def load_signal(path: str | Path) -> TestSignal:
    """Read a signal written by :func:`save_signal`; checks its layout and hash match the samples."""
    path = Path(path)
    meta = layout_path(path)
    if not meta.exists():
        raise FxcapError(f"{meta} is missing; a capture signal needs its layout beside it (regenerate it with `fxcap signal`)")
    layout = read_layout(meta, "regenerate it with `fxcap signal`")
    audio, rate = read_wav(path, expected_rate=layout.sample_rate)
    if audio.ndim != 1:
        raise FxcapError(f"{path} has {audio.shape[1]} channels; a capture signal is mono")
    if len(audio) != layout.length or audio_sha256(audio) != layout.sha256:
        raise FxcapError(f"{path} does not match its layout {meta.name} (edited or truncated?); regenerate it with `fxcap signal`")
    return TestSignal(audio=np.ascontiguousarray(audio, dtype=np.float32), layout=layout)
