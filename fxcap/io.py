"""Crash-safe file writes: write to a temporary file in the same folder, fsync, then rename.

A reader never sees a half-written file: after a crash either the old file or the new one exists.
Temporary names carry the writer's PID (``.<name>.<PID>.<random>.tmp``), so the leftovers of a killed
writer can be told from those of a live one (:func:`fxcap.locking.remove_stale`), and files get the
mode the umask gives (as ``open`` would), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


TEMP_NAME_CHARS = 120
"""At most this many characters of the target's name go into a temporary name (a legal 255-character
name must not give an illegal temporary one)."""

TEMP_PATTERN = re.compile(r"^\..*\.(?P<pid>\d+)\.[^.]+\.tmp$")
"""Names of the temporary files and folders made here (:func:`temp_prefix` + random + ``.tmp``)."""


def temp_prefix(name: str) -> str:
    """``.<name>.<PID>.``: the start of a temporary name for ``name`` (see :data:`TEMP_PATTERN`)."""
    return f".{name[:TEMP_NAME_CHARS]}.{os.getpid()}."


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where it can be, else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(parent: str | os.PathLike, name: str) -> Path:
    """A new, empty temporary folder in ``parent`` for building ``name`` (mode as the umask gives)."""
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(name), suffix=".tmp", dir=parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` to fill a temporary file, fsync it and rename it to ``path``.

    The temporary file lives beside ``path`` (same file system, so the rename is atomic) and is
    removed if ``writer`` raises. The file gets the mode the umask gives (0644 with umask 022).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any) -> str:
    """``obj`` as indented, key-sorted JSON with a final newline (stable text for equal objects)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON (stable bytes for equal objects)."""
    return atomic_write_text(path, json_text(obj))


def atomic_write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Atomically write ``audio`` (frames, or frames x channels) as a 32-bit float WAV file.

    Float WAV keeps values beyond +-1.0 (a pedal's output may exceed full scale) without loss.
    """
    data = np.asarray(audio, dtype=np.float32)

    def write(tmp: Path) -> None:
        sf.write(tmp, data, int(sample_rate), subtype="FLOAT", format="WAV")

    return atomic_write(path, write)


def read_wav(path: str | os.PathLike, expected_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a WAV/FLAC/AIFF file as float32 (frames, or frames x channels) and its rate in Hz.

    Raises :class:`fxcap.errors.FxcapError` with a one-line message for an unreadable file or a
    sample-rate mismatch.
    """
    from fxcap.errors import FxcapError

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise FxcapError(f"cannot read audio file {path}: {exc}; check that it exists and is a WAV/FLAC/AIFF file") from exc
    if expected_rate is not None and int(rate) != int(expected_rate):
        raise FxcapError(
            f"{path} is at {rate} Hz but {expected_rate} Hz is needed; resample it first (e.g. sox in.wav -r {expected_rate} out.wav)"
        )
    return data, int(rate)
