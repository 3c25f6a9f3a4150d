"""The one small interface every capture backend implements.

A backend plays a mono float32 signal through the device at a knob setting and returns what it
recorded, unaligned and untouched. Alignment (latency, polarity, drift, gain) and checks
(clipping, dropouts, silence, noise floor, repeatability) happen afterwards, the same way for the
virtual devices, the sound card, plugins and imported files.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fxcap.capture.budget import TakeTiming
from fxcap.capture.profiles import DeviceProfile, KnobValue

if TYPE_CHECKING:
    from fxcap.capture.probe import ProbeVerdict


@dataclass
class RawTake:
    """What one play-and-record pass produced.

    Attributes:
        played: the signal that was sent to the output, float32, shape ``(n,)``.
        recorded: what came back from the device's input channel, float32, shape ``(m,)``; ``m`` may
            differ from ``n`` (latency tail, clock drift).
        sample_rate: Hz, of both arrays.
        loopback: optional recording of a loopback input channel (interface only, no device),
            float32 ``(m,)``; lets alignment separate the interface's latency from the device's.
        events: stream problems seen while recording (``"input overflow"``, ``"output underflow"``),
            one string per event; any event means the take must be re-taken.
        info: backend-specific facts worth keeping in the manifest (device name, block size...).
    """

    played: np.ndarray
    recorded: np.ndarray
    sample_rate: int
    loopback: np.ndarray | None = None
    events: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """Plays and records through one device. Subclasses: sim (virtual devices), sound card, plugin.

    ``profile`` names the device's knobs; ``sample_rate`` is fixed for the backend's lifetime.

    Attributes:
        deterministic: the same signal at the same knobs always gives the same recording (a
            plugin): a take that fails a check is not re-taken, and when no level is given the
            engine picks one at which no planned setting clips (:mod:`fxcap.capture.level`).
        clip_advice: what to do when a recording clips (the ``output_clipping`` check's advice).
    """

    name: str = "backend"
    profile: DeviceProfile
    sample_rate: int
    deterministic: bool = False
    clip_advice: str = "lower the device's output level or the interface's input gain, then re-take"

    @abc.abstractmethod
    def play_record(self, signal: np.ndarray, knobs: dict[str, KnobValue]) -> RawTake:
        """Set the knobs (or ask the user to), play ``signal`` and record the device's output."""

    @abc.abstractmethod
    def calibration_take(self, signal: np.ndarray) -> RawTake:
        """Play ``signal`` through the interface with the device bypassed (or a loopback cable).

        Its latency and gain are the rig's own; every take of a session is referred to them, so
        all takes share one dBFS reference.
        """

    def begin_take(self, index: int, attempt: int) -> None:
        """Told before each :meth:`play_record` of the capture engine: the planned take's index (from 1)
        and the attempt (from 1). Backends that draw randomness per take (the simulator's noise) seed
        it from these, so a resumed session records exactly what an uninterrupted one would."""

    def probe_setting(self, knobs: dict[str, KnobValue]) -> "ProbeVerdict | None":
        """Play a short probe at ``knobs`` (after the knob change) and judge whether the device
        really changed (:mod:`fxcap.capture.probe`); ``None`` when the backend sets knobs itself
        and needs no probe (virtual devices, plugins)."""
        return None

    def timing(self) -> TakeTiming:
        """What a take costs besides the signal (margins, probes, knobs turned by hand), for the
        estimate of :mod:`fxcap.capture.budget`; the default: nothing (knobs set by the backend)."""
        return TakeTiming()

    def describe(self) -> dict[str, Any]:
        """Facts about the backend for the session manifest (JSON-serializable)."""
        return {"name": self.name, "sample_rate": self.sample_rate, "device": self.profile.name}

    def close(self) -> None:
        """Release the device (streams, ports, plugin instances)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
