"""Numba's on-disk cache, keyed to every source file a kernel can inline.

Numba invalidates a cached kernel only when the file that *defines* it changes; a kernel that
inlines helpers from another module (the fast path's kernels inline :mod:`fxcap.modeling.fast.ops`,
the virtual devices inline :mod:`fxcap.capture.virtual.dsp`) would otherwise keep running machine
code compiled from the helpers' old source after they were edited. :func:`cache_sources` registers
a folder: every numba function defined in a ``.py`` file of that folder is then cached with a source
stamp that is the SHA-256 of *all* the folder's ``.py`` files (names and bytes), so editing any of
them recompiles every kernel of the folder on its next use.

Where the cache lives, first that is writable: ``NUMBA_CACHE_DIR`` (numba's own setting), the
folder's ``__pycache__``, numba's per-user cache folder (``~/.cache/numba``), a private
``fxcap-numba-<uid>`` folder in the temporary folder. When none is writable, :func:`cache_sources`
returns False and the kernels compile without a disk cache (each process compiles again) instead
of failing.

The hook is a numba cache *locator* (the mechanism numba uses to choose a cache folder and a source
stamp) placed first in numba's list; functions outside the registered folders keep numba's locators.

**One process compiles, the others wait and load.** Processes started together on a cold cache (the
workers of a sweep, of a parallel dataset build, of the test suite) would each compile the same
kernel at the same time, seconds of CPU apiece. For functions cached through this module, a cache
miss takes an exclusive lock file for that kernel and signature (``<kernel>-<hash>.lock`` beside the
cache files, ``fcntl.flock``) before compiling and releases it once the machine code is saved; a
process that finds the lock taken waits, then loads what the first one saved. A process that exits
releases its locks (the operating system drops them); a compilation that raises keeps its lock until
its process exits, so a waiter gives up after :data:`COMPILE_WAIT_S` and compiles on its own. Where
locks are unavailable (no ``fcntl``, a read-only folder) nothing waits.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

from numba.core import caching, config

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process compile lock
    fcntl = None

COMPILE_WAIT_S = 300.0
"""Longest wait for another process's compilation of the same kernel, seconds (then compile here)."""

_CacheImpl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
_Locator = caching._CacheLocator

_FOLDERS: set[str] = set()
"""Registered folders (real paths)."""


def sources_hash(folder: str | os.PathLike) -> str:
    """SHA-256 (hex) of the names and bytes of every ``.py`` file directly in ``folder``, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _stamped_hash(folder: str, stamps: tuple) -> str:  # memoised on (name, mtime, size) of every file
    return sources_hash(folder)


def folder_stamp(folder: str) -> str:
    """:func:`sources_hash` of ``folder``, re-read only when a file's name, time or size changes."""
    stamps = tuple(
        (p.name, st.st_mtime_ns, st.st_size) for p in sorted(Path(folder).glob("*.py")) for st in (p.stat(),)
    )
    return _stamped_hash(folder, stamps)


def _writable(path: str, private: bool = False) -> bool:
    """Create ``path`` if needed and check that a file can be written in it (numba's own test)."""
    try:
        os.makedirs(path, mode=0o700 if private else 0o777, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _private_temp_root() -> str | None:
    """``<tmp>/fxcap-numba-<uid>``, owned by this user and closed to others (a cache is code)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = os.path.join(tempfile.gettempdir(), f"fxcap-numba-{uid}")
    if not _writable(root, private=True):
        return None
    try:
        info = os.lstat(root)
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != uid) or info.st_mode & 0o022:
        return None  # someone else's folder, or writable by others: do not load code from it
    return root


def cache_folder_candidates(source_file: str) -> list[str]:
    """Where a kernel defined in ``source_file`` may be cached, in order of preference."""
    subpath = _Locator.get_suitable_cache_subpath(source_file)
    candidates = []
    if config.CACHE_DIR:
        candidates.append(os.path.join(config.CACHE_DIR, subpath))
    candidates.append(os.path.join(os.path.dirname(source_file), "__pycache__"))
    try:
        from numba.misc.appdirs import AppDirs

        candidates.append(os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, subpath))
    except Exception:  # pragma: no cover - numba without its appdirs copy
        pass
    return candidates


def cache_folder(source_file: str) -> str | None:
    """The first writable cache folder for kernels defined in ``source_file`` (None: no disk cache)."""
    for candidate in cache_folder_candidates(source_file):
        if _writable(candidate):
            return candidate
    root = _private_temp_root()
    if root is not None:
        path = os.path.join(root, _Locator.get_suitable_cache_subpath(source_file))
        if _writable(path, private=True):
            return path
    return None


class SourceFolderLocator(_Locator):
    """Numba cache locator for functions defined in a registered folder (see the module docstring)."""

    def __init__(self, py_func, py_file: str, folder: str, cache_path: str) -> None:
        self._lineno = py_func.__code__.co_firstlineno
        self._folder = folder
        self._cache_path = cache_path

    def ensure_cache_path(self) -> None:
        os.makedirs(self._cache_path, exist_ok=True)

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return folder_stamp(self._folder)

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.isfile(py_file):
            return None
        path = os.path.realpath(py_file)
        folder = os.path.dirname(path)
        if folder not in _FOLDERS:
            return None
        cache_path = cache_folder(path)
        return None if cache_path is None else cls(py_func, path, folder, cache_path)


def _lock_file(cache, sig, codegen) -> str:
    """The lock file of one kernel (closure values included) and signature, beside its cache files."""
    digest = hashlib.sha256(repr(cache._index_key(sig, codegen)).encode()).hexdigest()[:16]
    return os.path.join(cache._cache_path, f"{cache._impl.filename_base}{digest}.lock")


def _acquire(path: str, wait_s: float) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``path``; None after ``wait_s`` seconds
    or where the lock cannot be taken at all."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        except OSError:
            break
    os.close(fd)
    return None


def _release(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_HELD: dict[tuple[int, object], int] = {}
"""Locks held for compilations under way in this process, by ``(id(cache), signature)``."""

_load_overload = caching.FunctionCache.load_overload
_save_overload = caching.FunctionCache.save_overload


def _load_or_lock(self, sig, target_context):
    """``FunctionCache.load_overload``; on a miss for a registered folder's kernel, wait for the
    compile lock and look again (another process may just have saved it). Returning None with the
    lock held lets numba compile; :func:`_save_and_unlock` releases it."""
    data = _load_overload(self, sig, target_context)
    if data is not None or not isinstance(self._impl.locator, SourceFolderLocator) or not self._enabled:
        return data
    if (id(self), sig) in _HELD:  # an earlier compilation here failed before saving: the lock is ours
        return None
    fd = _acquire(_lock_file(self, sig, target_context.codegen()), COMPILE_WAIT_S)
    if fd is None:
        return None
    data = _load_overload(self, sig, target_context)
    if data is not None:
        _release(fd)
        return data
    _HELD[(id(self), sig)] = fd
    return None


def _save_and_unlock(self, sig, data):
    try:
        _save_overload(self, sig, data)
    finally:
        fd = _HELD.pop((id(self), sig), None)
        if fd is not None:
            _release(fd)


def _install() -> None:
    locators = _CacheImpl._locator_classes
    if SourceFolderLocator not in locators:
        locators.insert(0, SourceFolderLocator)
    caching.FunctionCache.load_overload = _load_or_lock
    caching.FunctionCache.save_overload = _save_and_unlock


def cache_sources(module_file: str | os.PathLike) -> bool:
    """Key the numba cache of every function defined in ``module_file``'s folder to all the folder's
    sources (see the module docstring). Returns the value to pass as ``cache=`` to ``njit``: True when
    a writable cache folder exists, False when the kernels must compile without a disk cache."""
    path = os.path.realpath(module_file)
    _FOLDERS.add(os.path.dirname(path))
    _install()
    return cache_folder(path) is not None
