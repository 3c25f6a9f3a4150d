"""A small stateful effect for the JACK pedal tests (the pedal process imports it by module path).

tanh clipper (drive) into a one-pole lowpass (tone) and an output gain (level): state carries
across blocks, so a block-wise run equals one run over the whole signal, sample for sample.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


class TanhLowpass:
    """OD-3 knobs: drive 0..10 (0..24 dB into tanh), tone 0..10 (lowpass 500 Hz..12 kHz), level 0..10."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros(1)

    def process(self, block: np.ndarray, knobs: dict) -> np.ndarray:
        gain = 10 ** (float(knobs["drive"]) * 2.4 / 20)
        cutoff = 500.0 * (24.0 ** (float(knobs["tone"]) / 10))
        a = np.exp(-2 * np.pi * cutoff / self.sample_rate)
        clipped = np.tanh(gain * block.astype(np.float64))
        filtered, self.state = lfilter([1 - a], [1, -a], clipped, zi=self.state)
        return (filtered * float(knobs["level"]) / 5.0).astype(np.float32)


def build(sample_rate: int) -> TanhLowpass:
    return TanhLowpass(sample_rate)
