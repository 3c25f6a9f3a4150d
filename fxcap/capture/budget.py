"""How long a capture will take: one estimate for the plan preview, the progress bar and the question
asked before a very long capture.

:func:`estimate_capture` adds up what every planned take costs, in seconds:

* **audio**: the signal's length plus what the backend plays or records around it on every pass
  (:class:`TakeTiming`: a sound card's pre-roll and tail, a plugin's tail), plus the knob probe a
  sound card plays before each take; the calibration (bypass) take; the reference re-takes of the
  plan (they are planned takes); for a deterministic backend whose level is picked, the level search
  (one pass per distinct setting at least, :mod:`fxcap.capture.level`);
* **knob changes**: for every knob the user turns by hand (a manual knob setter), ``knob_change_seconds``
  each time its value changes from one take to the next (every knob before the first take), and one
  change each to switch the device into bypass for the calibration take and back. Backends that set
  their knobs themselves (the virtual devices, plugins, MIDI-mapped knobs) cost none.

Re-takes of takes that fail a check cannot be known beforehand and are not counted.

A grid of many settings multiplies quickly (``--steps 100000`` is days of audio): past
:data:`MAX_UNASKED_SECONDS` of audio or :data:`MAX_UNASKED_TAKES` takes, :func:`confirm_capture`
shows the estimate and asks (``confirm``, a yes/no prompt when the user is at a terminal) or refuses
in one line unless the user said yes beforehand (``--yes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from fxcap.capture.plan import PlannedTake
from fxcap.capture.profiles import KnobValue
from fxcap.errors import CaptureError

MAX_UNASKED_SECONDS = 2 * 3600.0
"""Longest capture (seconds of played audio) that starts without asking."""

MAX_UNASKED_TAKES = 200
"""Most takes a capture may plan without asking."""

DEFAULT_KNOB_CHANGE_SECONDS = 10.0
"""Seconds a player needs to turn one knob by hand and confirm (``--knob-change-seconds``)."""


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 minutes``, ``3.5 hours``: a duration as a person says it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


@dataclass(frozen=True)
class TakeTiming:
    """What a backend costs on top of the signal (see :meth:`fxcap.capture.backends.base.Backend.timing`).

    Attributes:
        margin_seconds: audio played or recorded on every pass besides the signal (seconds: a sound
            card's pre-roll and tail, a plugin's tail).
        probe_seconds: audio of the knob probe played before every take, margins included (seconds;
            0: no probe).
        manual_knobs: the knobs the user turns by hand (empty: the backend sets every knob itself).
        manual_bypass: the user switches the device into bypass for the calibration take (and back).
        realtime: the backend plays in real time (a sound card), so audio seconds are wall-clock
            seconds; a virtual device or a plugin computes faster (or slower) than that.
    """

    margin_seconds: float = 0.0
    probe_seconds: float = 0.0
    manual_knobs: tuple[str, ...] = ()
    manual_bypass: bool = False
    realtime: bool = False


@dataclass(frozen=True)
class TakeCost:
    """One planned take in the estimate.

    Attributes:
        take: the planned take.
        audio_seconds: the signal with the backend's margins, plus the probe before it (seconds).
        turned: the hand-set knobs whose value changes before this take (every one before the first).
        knob_seconds: the time to turn them (seconds).
    """

    take: PlannedTake
    audio_seconds: float
    turned: tuple[str, ...] = ()
    knob_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.audio_seconds + self.knob_seconds


@dataclass(frozen=True)
class CaptureEstimate:
    """A capture's cost, take by take (see the module docstring).

    Attributes:
        signal_seconds: the capture signal's length (seconds).
        takes: the planned takes still to record, in order, with their cost.
        calibration_seconds: audio of the calibration take (0 when it is recorded already).
        bypass_seconds: time to switch bypass in and out by hand for the calibration take.
        level_seconds: audio of the level search before the capture (a lower bound; 0: none).
        realtime: the audio plays in real time (see :class:`TakeTiming`).
    """

    signal_seconds: float
    takes: tuple[TakeCost, ...] = ()
    calibration_seconds: float = 0.0
    bypass_seconds: float = 0.0
    level_seconds: float = 0.0
    realtime: bool = False

    @property
    def reference_takes(self) -> int:
        """Re-takes of the reference setting among the planned takes."""
        return sum(1 for cost in self.takes if cost.take.is_reference)

    @property
    def take_audio_seconds(self) -> float:
        """Audio of the planned takes, reference re-takes and probes included (seconds)."""
        return sum(cost.audio_seconds for cost in self.takes)

    @property
    def audio_seconds(self) -> float:
        """Every second of audio played: level search, calibration take and planned takes."""
        return self.level_seconds + self.calibration_seconds + self.take_audio_seconds

    @property
    def knob_seconds(self) -> float:
        """Time spent turning knobs and switching bypass by hand (seconds)."""
        return self.bypass_seconds + sum(cost.knob_seconds for cost in self.takes)

    @property
    def knob_changes(self) -> int:
        """Knob turns by hand over the capture (bypass switches not counted)."""
        return sum(len(cost.turned) for cost in self.takes)

    @property
    def seconds(self) -> float:
        """The whole capture: audio and knob changes (seconds)."""
        return self.audio_seconds + self.knob_seconds

    @property
    def setup_seconds(self) -> float:
        """What comes before the first planned take: level search, calibration take, bypass switches."""
        return self.level_seconds + self.calibration_seconds + self.bypass_seconds

    def remaining_seconds(self, calibrated: bool, done_takes: int) -> float:
        """The estimate of what is left once the calibration take (``calibrated``) and the first
        ``done_takes`` of :attr:`takes` are recorded (seconds)."""
        left = sum(cost.seconds for cost in self.takes[done_takes:])
        return left + (0.0 if calibrated else self.setup_seconds)

    @property
    def needs_confirmation(self) -> bool:
        return self.audio_seconds > MAX_UNASKED_SECONDS or len(self.takes) > MAX_UNASKED_TAKES

    def describe(self) -> str:
        """One line: ``25 takes of a 29.2 s signal: about 13 minutes of audio``, plus the knob changes."""
        text = f"{len(self.takes)} takes of a {self.signal_seconds:.1f} s signal: about {format_duration(self.audio_seconds)} of audio"
        if self.knob_seconds:
            text += f" and {format_duration(self.knob_seconds)} of knob changes by hand"
        return text


def _turned(previous: dict[str, KnobValue] | None, knobs: dict[str, KnobValue], manual: Sequence[str]) -> tuple[str, ...]:
    return tuple(name for name in manual if previous is None or previous.get(name) != knobs.get(name))


def estimate_capture(
    takes: Sequence[PlannedTake],
    signal_seconds: float,
    timing: TakeTiming | None = None,
    knob_change_seconds: float = DEFAULT_KNOB_CHANGE_SECONDS,
    calibrate: bool = True,
    level_passes: int = 0,
) -> CaptureEstimate:
    """The estimate of recording ``takes`` (in order) with a ``signal_seconds`` long signal.

    Args:
        takes: the planned takes still to record (reference re-takes included, as planned).
        signal_seconds: the capture signal's length (seconds).
        timing: the backend's costs (:meth:`~fxcap.capture.backends.base.Backend.timing`; ``None``: none).
        knob_change_seconds: seconds to turn one hand-set knob (or switch bypass) and confirm.
        calibrate: the calibration take is still to record.
        level_passes: passes of the signal the level search plays (0: no search).
    """
    timing = timing or TakeTiming()
    one_pass = signal_seconds + timing.margin_seconds
    costs = []
    previous: dict[str, KnobValue] | None = None
    for take in takes:
        turned = _turned(previous, take.knobs, timing.manual_knobs)
        costs.append(TakeCost(take, one_pass + timing.probe_seconds, turned, len(turned) * knob_change_seconds))
        previous = take.knobs
    return CaptureEstimate(
        signal_seconds=float(signal_seconds),
        takes=tuple(costs),
        calibration_seconds=one_pass if calibrate else 0.0,
        bypass_seconds=2 * knob_change_seconds if calibrate and timing.manual_bypass else 0.0,
        level_seconds=level_passes * one_pass,
        realtime=timing.realtime,
    )


def distinct_settings(takes: Sequence[PlannedTake]) -> int:
    """How many different knob settings ``takes`` hold (what the level search plays at least once)."""
    seen: list[dict[str, KnobValue]] = []
    for take in takes:
        if take.knobs not in seen:
            seen.append(take.knobs)
    return len(seen)


@dataclass
class CapturePace:
    """The remaining time of a running capture, from its estimate and the clock.

    The estimate says how much of the capture each step is; the pace is the time spent per
    estimated second so far, so a sound card that plays in real time with quick hands stays near the
    estimate, and a virtual device (computed faster than real time) is extrapolated from its own speed.
    """

    estimate: CaptureEstimate
    calibrated: bool = False
    done_takes: int = 0
    done_seconds: float = field(default=0.0, init=False)

    def calibration_done(self) -> None:
        if not self.calibrated:
            self.calibrated = True
            self.done_seconds += self.estimate.setup_seconds

    def take_done(self) -> None:
        if self.done_takes < len(self.estimate.takes):
            self.done_seconds += self.estimate.takes[self.done_takes].seconds
        self.done_takes += 1

    def remaining(self, elapsed: float) -> float | None:
        """Seconds left after ``elapsed`` seconds of this run (``None``: unknown yet: nothing done and
        the backend does not play in real time)."""
        left = self.estimate.remaining_seconds(self.calibrated, self.done_takes)
        if self.done_seconds > 0:
            return left * elapsed / self.done_seconds
        return left if self.estimate.realtime else None


def confirm_capture(estimate: CaptureEstimate, yes: bool = False, confirm: Callable[[str], bool] | None = None) -> None:
    """Let a capture start, or raise :class:`CaptureError` (one line, the estimate and what to do).

    Args:
        estimate: the planned capture.
        yes: the user agreed beforehand (``--yes``).
        confirm: asks the user a yes/no question (``None``: nobody to ask, e.g. not a terminal).
    """
    if yes or not estimate.needs_confirmation:
        return
    limits = f"more than {format_duration(MAX_UNASKED_SECONDS)} or {MAX_UNASKED_TAKES} takes"
    if confirm is not None and confirm(f"this capture is {estimate.describe()} ({limits}); start it?"):
        return
    raise CaptureError(
        f"this capture is {estimate.describe()} ({limits}); pass --yes to start it, or plan fewer takes (--steps, --takes)"
    )
