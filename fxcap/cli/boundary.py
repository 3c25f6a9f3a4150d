"""The CLI's last line of defence: every error a user can meet becomes one line and an exit status.

:func:`run_cli` runs the Typer app and translates what escapes it:

* :class:`fxcap.errors.FxcapError` (the project's own one-line errors): status 1;
* :class:`OSError` and its kinds (permission denied, a file where a folder is needed, a full disk,
  a name too long...): one line with the path and the fix (:func:`describe_os_error`), status 1;
* libsndfile errors (``soundfile.LibsndfileError``, or a ``RuntimeError`` raised inside
  ``soundfile``): one line naming the audio file, status 1;
* Ctrl-C: ``interrupted; nothing written so far is lost; continue with ...``, status 130.

Usage errors stay Typer's own (usage text, status 2). Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Any, Callable, Sequence

from fxcap.errors import FxcapError
from fxcap.interrupt import EXIT_INTERRUPTED, find_interrupt, interrupted_message

_FIXES: dict[int, str] = {
    errno.EACCES: "permission denied; choose a place you can write to (e.g. another --out) or fix its permissions",
    errno.EPERM: "operation not permitted; choose a place you own (e.g. another --out) or fix its permissions",
    errno.EROFS: "the file system is read-only; choose a writable place (e.g. another --out)",
    errno.ENOSPC: "no space left on the disk; free some space or choose another disk (--out); files written before are intact",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another disk (--out); files written before are intact",
    errno.ENAMETOOLONG: "a file name is too long (at most 255 bytes per name); choose a shorter name",
    errno.EISDIR: "it is a folder, not a file; give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "it already exists (a file where a folder is needed?); choose another path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENOTEMPTY: "the folder is not empty; choose another path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer workers",
    errno.EIO: "input/output error; check the disk and the cable",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an :class:`OSError`: what failed, on which path, and what to do."""
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(os.fsdecode(p) if isinstance(p, (bytes, os.PathLike)) else str(p) for p in paths)
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _FIXES.get(exc.errno or -1, f"{reason.rstrip('.')}; check the path and try again")
    return f"{where}: {fix}" if where else fix


def is_soundfile_error(exc: BaseException) -> bool:
    """True for libsndfile's errors (a ``LibsndfileError``, or a ``RuntimeError`` raised in ``soundfile``)."""
    try:
        import soundfile as sf
    except ImportError:  # pragma: no cover - soundfile is a dependency
        return False
    if isinstance(exc, getattr(sf, "LibsndfileError", ())):
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    return isinstance(exc, RuntimeError) and bool(frames) and os.path.basename(frames[-1].filename) == "soundfile.py"


def describe_soundfile_error(exc: BaseException) -> str:
    """One line for a libsndfile error, naming the file when libsndfile did."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"audio file error: {text}; check that the file exists, is complete and is a WAV/FLAC/AIFF file, and that its folder is writable"


def run_cli(
    app: Callable[..., Any],
    args: Sequence[str] | None = None,
    print_error: Callable[[str], None] | None = None,
    print_interrupted: Callable[[str], None] | None = None,
) -> int:
    """Run ``app`` (a Typer app) on ``args`` (default ``sys.argv[1:]``) and return the exit status.

    ``print_error`` prints an error's line (default: ``error: ...`` on stderr), ``print_interrupted``
    the line after Ctrl-C (default: as it is, on stderr).
    """
    say = print_error or (lambda line: print(f"error: {line}", file=sys.stderr))
    notice = print_interrupted or (lambda line: print(line, file=sys.stderr))
    try:
        app(args=None if args is None else list(args), prog_name="fxcap")
    except SystemExit as exc:
        interrupt = find_interrupt(exc.__context__)
        if exc.code == EXIT_INTERRUPTED and interrupt is not None:
            notice(interrupted_message(interrupt))
            return EXIT_INTERRUPTED
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt as exc:  # before Typer took over (imports)
        notice(interrupted_message(exc))
        return EXIT_INTERRUPTED
    except FxcapError as exc:
        say(str(exc))
        return 1
    except OSError as exc:
        say(describe_os_error(exc))
        return 1
    except RuntimeError as exc:
        if not is_soundfile_error(exc):
            raise
        say(describe_soundfile_error(exc))
        return 1
    return 0
