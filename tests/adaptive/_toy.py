"""A toy device for the adaptive plan's tests: a plain gain everywhere but near one corner of its knob space.

``Corner`` has two knobs, drive and tone (0..10). Its output is ``0.5 x`` except where drive is high
and tone low: the weight ``w = clip((drive - 6) / 4) * clip((4 - tone) / 4)`` blends in a hard
``tanh`` saturation, fully at drive 10, tone 0. A model of it is wrong only in that corner.
"""

from __future__ import annotations

import numpy as np

from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.profiles import DeviceProfile, Knob
from fxcap.capture.signal import band_mix, wrap_program
from fxcap.capture.virtual import RigImpairments
from fxcap.capture.virtual.base import VirtualDevice

RATE = 44100
RIG = RigImpairments(latency_samples=50.0, gain_db=0.0, noise_dbfs=-100.0, drift_ppm=0.0, tail_samples=1000)
"""A rig without clock drift: the quickest takes to align."""


class Corner(VirtualDevice):
    profile = DeviceProfile("Corner", (Knob("drive", 0, 10, 5), Knob("tone", 0, 10, 5)), may_be_transparent=True)

    def reset(self) -> None:
        pass

    def _process(self, x: np.ndarray, settings: dict) -> np.ndarray:
        w = np.clip((settings["drive"] - 6) / 4, 0, 1) * np.clip((4 - settings["tone"]) / 4, 0, 1)
        return 0.5 * ((1 - w) * x + w * np.tanh(6 * x) / 2)


def in_corner(knobs: dict) -> bool:
    """Whether a setting lies in the corner quarter of the knob space (drive >= 5, tone <= 5)."""
    return knobs["drive"] >= 5 and knobs["tone"] <= 5


def tiny_signal():
    """A 6.5 s capture signal around 3 s of program material (quick to record and align)."""
    return wrap_program(band_mix(RATE, 3.0, np.random.default_rng(3)), RATE, peak_dbfs=-3.0, preset="short")


def corner_backend(**options) -> SimBackend:
    return SimBackend(Corner(RATE), impairments=RIG, seed=1, **options)
