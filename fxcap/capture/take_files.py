"""A session's files stay inside its folder, and its takes are the audio that was recorded.

Every path in a session manifest (the signal, its layout, the calibration recording, each take's
``output_file`` and ``raw_file``) is relative to the session folder; :func:`check_manifest_paths`
refuses, when the session is opened, one that is absolute, climbs out with ``..`` or leads out
through a symbolic link (a dataset must never be built from another folder's audio).

Each take's ``sha256`` is the hash of its output file as written; :func:`verify_takes` (run before a
dataset is built) refuses a take whose file changed since, and warns about takes of sessions written
before takes were hashed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fxcap.errors import SessionError

if TYPE_CHECKING:
    from fxcap.capture.session import Session, SessionManifest

CHUNK_BYTES = 1 << 20
"""Bytes per read while hashing."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _manifest_paths(manifest: "SessionManifest") -> Iterator[tuple[str, object]]:
    """``(what, path)`` of every file the manifest names."""
    yield "signal file", manifest.signal.get("file")
    yield "signal layout", manifest.signal.get("layout_file")
    if manifest.calibration.get("raw_file") is not None:
        yield "calibration recording", manifest.calibration.get("raw_file")
    for take in manifest.takes:
        yield f"take {take.take_id}", take.output_file
        yield f"take {take.take_id}", take.raw_file


def is_inside(root: Path, rel: object) -> bool:
    """True when ``rel`` is a relative path that stays inside ``root`` (``..`` and links resolved)."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or Path(rel).is_absolute():
        return False
    base = root.resolve()
    return (base / rel).resolve().is_relative_to(base)


def check_manifest_paths(root: Path, manifest: "SessionManifest") -> None:
    """Refuse a manifest that names a file outside the session folder ``root`` (one line, :class:`SessionError`)."""
    for what, rel in _manifest_paths(manifest):
        if not is_inside(root, rel):
            raise SessionError(
                f"{root / 'session.json'}: the {what} is {rel!r}, outside the session folder; a session's files must "
                "lie inside it (put the audio back in the session or re-record it)"
            )


def verify_takes(session: "Session") -> list[str]:
    """Check every take's output file against its recorded sha256.

    Raises :class:`SessionError` naming the first take whose file changed (or is missing). Returns
    warnings: takes written without a hash (older sessions), whose changes cannot be detected.
    """
    unhashed = []
    for take in session.manifest.takes:
        path = session.root / take.output_file
        if not take.sha256:
            unhashed.append(take.take_id)
            continue
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise SessionError(f"{path}: cannot read take {take.take_id} ({exc.strerror}); restore it or re-record the take") from None
        if actual != take.sha256:
            raise SessionError(
                f"{path} does not match the sha256 that session.json recorded for {take.take_id} (replaced or edited "
                "after it was recorded); restore the original file or re-record the take"
            )
    if not unhashed:
        return []
    return [
        f"{session.root}: {len(unhashed)} take(s) have no sha256 in session.json (written by an older fxcap), so a "
        f"replaced or edited take file cannot be detected ({', '.join(unhashed[:3])}{', ...' if len(unhashed) > 3 else ''})"
    ]
