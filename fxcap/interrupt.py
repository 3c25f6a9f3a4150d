"""Ctrl-C that leaves the work resumable, and what to tell the user about it.

Code that can be interrupted in the middle of writing (a capture, an import) catches
:class:`KeyboardInterrupt`, leaves its folder in a resumable state (a session marked
``"interrupted"``) and raises :class:`Interrupted` with the command that continues it. The CLI's
``main()`` prints :func:`interrupted_message` and exits with status 130 (128 + SIGINT), as shells do.
"""

from __future__ import annotations

EXIT_INTERRUPTED = 130
"""Exit status of a command stopped by Ctrl-C (128 + SIGINT)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after the work in progress was left resumable.

    Attributes:
        resume: the command that continues the work (e.g. ``fxcap record --resume --out S``), or
            ``None`` when running the same command again is the way to go on.
    """

    def __init__(self, resume: str | None = None) -> None:
        super().__init__(resume or "")
        self.resume = resume


def interrupted_message(exc: BaseException | None = None) -> str:
    """The one line printed after Ctrl-C: nothing is lost, and how to go on."""
    resume = getattr(exc, "resume", None)
    how = f"continue with `{resume}`" if resume else "run the command again to continue"
    return f"interrupted; nothing written so far is lost; {how}"


def find_interrupt(exc: BaseException | None, depth: int = 6) -> KeyboardInterrupt | None:
    """The :class:`KeyboardInterrupt` behind ``exc`` (itself, or its cause/context chain), if any.

    Typer turns Ctrl-C into ``Exit(130)`` raised *from* the interrupt; this finds it again.
    """
    while exc is not None and depth > 0:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        exc = exc.__cause__ or exc.__context__
        depth -= 1
    return None
