"""Check an output path before anything is computed: a clear one-line error instead of an OS error later.

:func:`check_out_dir` (a folder to create or fill) and :func:`check_out_file` (a file to write)
refuse, naming the path and the fix: a name longer than 255 bytes, a file where a folder is needed
(or the other way round), a path under a file, and a place this user cannot write to. A full disk
can only be found while writing; the CLI's boundary (:mod:`fxcap.cli.boundary`) words that one.
"""

from __future__ import annotations

import os
from pathlib import Path

from fxcap.errors import FxcapError

NAME_MAX_BYTES = 255
"""Longest file or folder name most file systems take (bytes, UTF-8)."""


def _check_names(path: Path, option: str) -> None:
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX_BYTES:
            raise FxcapError(
                f"{option} {path}: the name {part[:40]}... is {len(os.fsencode(part))} bytes long, more than "
                f"the {NAME_MAX_BYTES} a file system takes; choose a shorter name"
            )


def _existing_ancestor(path: Path) -> Path:
    """The nearest part of ``path`` (itself or a parent) that exists."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_parent(path: Path, option: str) -> None:
    """The folder that will hold ``path`` can be made and written to."""
    ancestor = _existing_ancestor(path.parent if str(path.parent) else Path("."))
    if not ancestor.is_dir():
        raise FxcapError(f"{option} {path}: {ancestor} is a file, not a folder, so nothing can be made under it; choose another {option}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise FxcapError(f"{option} {path}: cannot write in {ancestor} (permission denied); choose a folder you can write to")


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse an output folder that cannot be used (see the module docstring); return it as a :class:`Path`."""
    path = Path(path)
    _check_names(path, option)
    if os.path.lexists(path) and not path.is_dir():
        raise FxcapError(f"{option} {path} is a file, not a folder; choose another {option} (or move the file away)")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise FxcapError(f"{option} {path}: cannot write in this folder (permission denied); choose a folder you can write to")
        return path
    _check_parent(path, option)
    return path


def check_out_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse an output file path that cannot be written (see the module docstring); return it as a :class:`Path`."""
    path = Path(path)
    _check_names(path, option)
    if path.is_dir():
        raise FxcapError(f"{option} {path} is a folder; give a file name (e.g. {path / 'out.wav'})")
    _check_parent(path, option)
    return path
