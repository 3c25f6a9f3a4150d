"""The interface of a built-in virtual device: a stateful, knob-controlled audio processor."""

from __future__ import annotations

import abc
from typing import Mapping

import numpy as np

from fxcap.capture.profiles import DeviceProfile, KnobValue
from fxcap.errors import CaptureError

MIN_RATE = 22050
MAX_RATE = 192000


class VirtualDevice(abc.ABC):
    """A virtual effect: ``process`` turns a mono stream into the device's output.

    The device keeps its internal state (filter memories, capacitor voltages, the compressor's
    light cell) between calls, so processing a stream in blocks gives the same samples as processing
    it in one go; :meth:`reset` returns it to rest (silence for a long time). Knob values are in the
    units of :attr:`profile` (e.g. OD-3 drive 0..10); missing knobs take their defaults.
    """

    profile: DeviceProfile

    def __init__(self, sample_rate: int) -> None:
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or not MIN_RATE <= int(sample_rate) <= MAX_RATE:
            raise CaptureError(f"virtual {self.profile.name} cannot run at {sample_rate} Hz; use {MIN_RATE}..{MAX_RATE} Hz (e.g. 48000)")
        self.sample_rate = int(sample_rate)
        self.reset()

    @property
    def name(self) -> str:
        """The device's name, as in its profile (``"OD-3"``)."""
        return self.profile.name

    def settings(self, knobs: Mapping[str, KnobValue] | None = None) -> dict[str, KnobValue]:
        """Every knob's value: ``knobs`` validated, defaults for the rest (raises :class:`CaptureError`)."""
        try:
            return self.profile.complete(dict(knobs or {}))
        except ValueError as exc:
            raise CaptureError(f"virtual {self.name}: {exc}") from None

    def process(self, x: np.ndarray, knobs: Mapping[str, KnobValue] | None = None) -> np.ndarray:
        """Run ``x`` (mono, shape ``(n,)``, full scale 1.0) through the device; returns float32 ``(n,)``."""
        settings = self.settings(knobs)
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise CaptureError(f"virtual {self.name} takes mono audio of shape (n,), not {x.shape}")
        if not np.all(np.isfinite(x)):
            raise CaptureError(f"virtual {self.name}: input contains NaN or infinite samples")
        return self._process(x, settings).astype(np.float32)

    @abc.abstractmethod
    def _process(self, x: np.ndarray, settings: dict[str, KnobValue]) -> np.ndarray:
        """Process float64 ``x`` at complete, validated ``settings``; update the state; return float64."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Clear all internal state (as after a long silence)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sample_rate={self.sample_rate})"
