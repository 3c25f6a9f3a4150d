"""One writer per folder: lock files for session, dataset and run folders, and the cleanup of what dead
writers left behind.

A writer (``fxcap record``, ``record --resume``, ``import``, ``build-dataset``, ``train``) holds the lock of
the folder it writes for as long as it writes. The lock is a file beside the folder,
``<parent>/.<name>.lock`` (beside, not inside: a dataset folder is replaced by a rename, and a run folder
may not exist yet), holding the writer's PID, host, command and start time as JSON. The writer also holds
an exclusive ``flock`` on it, which the operating system drops when the process dies however it dies:

- a second writer finds the ``flock`` taken and stops with a one-line error naming the PID that holds it;
- a lock file whose writer died (SIGKILL, power loss) is *stale*: its ``flock`` is free, so the next writer
  takes it over and logs a note naming the dead PID;
- where ``flock`` is unavailable, a lock file whose PID is not running on this host counts as stale.

Temporary files and folders carry their writer's PID in their names (:func:`fxcap.io.temp_prefix`, the
dataset builder's ``.<name>.building-<PID>``); :func:`remove_stale` deletes those of dead processes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Pattern

from fxcap.errors import FolderLockedError
from fxcap.io import TEMP_PATTERN

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: PID files only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of ``folder``: ``<parent>/.<name>.lock``."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs on this host (one we may not signal counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. an out-of-range PID
        return False
    return True


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock: PID, host name, command and start time (ISO 8601, UTC)."""

    pid: int
    host: str
    command: str
    started: str

    def describe(self) -> str:
        return f"fxcap {self.command} (PID {self.pid} on {self.host}, since {self.started})"

    @classmethod
    def me(cls, command: str) -> "LockHolder":
        return cls(os.getpid(), socket.gethostname(), command, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @classmethod
    def parse(cls, text: str) -> "LockHolder | None":
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "command": self.command, "started": self.started}) + "\n"


_HELD: dict[Path, int] = {}
"""Locks this process holds: lock file -> nesting depth (a nested lock of the same folder is a no-op)."""


class FolderLock:
    """The lock of one folder for one writer; use as a context manager (see the module docstring).

    ``stale`` is the holder of a stale lock this one took over (``None`` when the lock was free).
    """

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self.command = command
        self.stale: LockHolder | None = None
        self._fd: int | None = None

    # -- acquiring ------------------------------------------------------------------------------------------
    def acquire(self) -> "FolderLock":
        """Take the lock; :class:`FolderLockedError` (one line, naming the holder's PID) if another writer has it."""
        if self.path in _HELD:
            _HELD[self.path] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = LockHolder.me(self.command)
        if fcntl is None or not self._acquire_flock(me):
            self._acquire_pid_file(me)
        _HELD[self.path] = 1
        if self.stale is not None:
            log.warning("note: %s was locked by %s, which has stopped; took the lock over", self.folder, self.stale.describe())
        return self

    def _busy(self, holder: LockHolder | None) -> FolderLockedError:
        who = holder.describe() if holder is not None else "another fxcap process"
        pid = f" (kill {holder.pid})" if holder is not None else ""
        return FolderLockedError(f"{self.folder} is in use by {who}; wait for it to finish or stop it{pid}, then try again")

    def _acquire_flock(self, me: LockHolder) -> bool:
        """Take the lock with ``flock``; ``False`` when this filesystem has no ``flock`` (use a PID file)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = LockHolder.parse(_read(fd))
                os.close(fd)
                raise self._busy(holder) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    return False
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it between our open and our flock: lock the new file
                os.close(fd)
                continue
            previous = LockHolder.parse(_read(fd))
            if previous is not None and previous.pid != me.pid:
                self.stale = previous
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.to_json().encode("utf-8"), 0)
            self._fd = fd
            return True

    def _acquire_pid_file(self, me: LockHolder) -> None:
        """Take the lock as an exclusively created PID file (no ``flock``); a dead PID on this host is stale."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = LockHolder.parse(self.path.read_text(encoding="utf-8", errors="replace")) if self.path.exists() else None
                if holder is None or holder.host != me.host or pid_alive(holder.pid):
                    raise self._busy(holder) from None
                self.stale = holder
                self.path.unlink(missing_ok=True)
                continue
            os.write(fd, me.to_json().encode("utf-8"))
            self._fd = fd
            return
        raise self._busy(None)

    # -- releasing ------------------------------------------------------------------------------------------
    def release(self) -> None:
        """Give the lock back (the lock file is removed while still locked, then closed)."""
        depth = _HELD.get(self.path, 0)
        if depth > 1:
            _HELD[self.path] = depth - 1
            return
        _HELD.pop(self.path, None)
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def folder_lock(folder: str | os.PathLike, command: str) -> FolderLock:
    """``with folder_lock(run_dir, "train"): ...``: hold the lock of ``folder`` (see :class:`FolderLock`)."""
    return FolderLock(folder, command)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
    except OSError:
        return ""


def remove_stale(folder: str | os.PathLike, patterns: Iterable[Pattern[str]] = (TEMP_PATTERN,), *,
                 recursive: bool = False) -> list[Path]:
    """Delete the files and folders in ``folder`` whose names match one of ``patterns`` and carry the PID
    (named group ``pid``) of a process no longer running; returns what was deleted (logged as a note).

    Default: the temporary files of :func:`fxcap.io.atomic_write` left by a killed writer. With
    ``recursive`` the subfolders are searched too.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = folder.rglob(".*") if recursive else folder.glob(".*")
    removed = []
    for path in sorted(entries):
        pid = _stale_pid(path.name, patterns)
        if pid is None or pid_alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.warning("note: removed %d leftover(s) of interrupted fxcap runs in %s: %s", len(removed), folder,
                    ", ".join(p.name for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
    return removed


def _stale_pid(name: str, patterns: Iterable[Pattern[str]]) -> int | None:
    for pattern in patterns:
        match = pattern.match(name)
        if match:
            return int(match.group("pid"))
    return None


def building_pattern(name: str) -> Pattern[str]:
    """Names of the scratch folders ``.<name>.building-<PID>`` / ``.<name>.old-<PID>`` of a dataset build into ``name``."""
    return re.compile(rf"^\.{re.escape(name)}\.(?:building|old)-(?P<pid>\d+)$")
