"""How long a capture will take, and a confirmation before a very long one starts.

A grid of many settings multiplies quickly (``--steps 100000`` is days of audio): past
:data:`MAX_UNASKED_SECONDS` of audio or :data:`MAX_UNASKED_TAKES` takes, :func:`confirm_capture`
shows the estimate and asks (``confirm``, a yes/no prompt when the user is at a terminal) or refuses
in one line unless the user said yes beforehand (``--yes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fxcap.errors import CaptureError

MAX_UNASKED_SECONDS = 2 * 3600.0
"""Longest capture (seconds of played audio) that starts without asking."""

MAX_UNASKED_TAKES = 200
"""Most takes a capture may plan without asking."""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


@dataclass(frozen=True)
class CaptureEstimate:
    """A capture's size: ``takes`` planned takes of a ``signal_seconds`` long signal, plus the calibration take."""

    takes: int
    signal_seconds: float

    @property
    def seconds(self) -> float:
        """Seconds of audio played, calibration take included (re-takes not counted)."""
        return (self.takes + 1) * self.signal_seconds

    @property
    def needs_confirmation(self) -> bool:
        return self.seconds > MAX_UNASKED_SECONDS or self.takes > MAX_UNASKED_TAKES

    def describe(self) -> str:
        return f"{self.takes} takes of a {self.signal_seconds:.1f} s signal: about {_duration(self.seconds)} of audio"


def confirm_capture(estimate: CaptureEstimate, yes: bool = False, confirm: Callable[[str], bool] | None = None) -> None:
    """Let a capture start, or raise :class:`CaptureError` (one line, the estimate and what to do).

    Args:
        estimate: the planned capture.
        yes: the user agreed beforehand (``--yes``).
        confirm: asks the user a yes/no question (``None``: nobody to ask, e.g. not a terminal).
    """
    if yes or not estimate.needs_confirmation:
        return
    limits = f"more than {_duration(MAX_UNASKED_SECONDS)} or {MAX_UNASKED_TAKES} takes"
    if confirm is not None and confirm(f"this capture is {estimate.describe()} ({limits}); start it?"):
        return
    raise CaptureError(
        f"this capture is {estimate.describe()} ({limits}); pass --yes to start it, or plan fewer takes (--steps, --takes)"
    )
