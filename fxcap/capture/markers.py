"""Sync markers: short broadband chirps placed at the start and the end of the capture signal.

Cross-correlating a recording with the marker gives the latency (sub-sample, from the interpolated
correlation peak); the start and end markers together give the clock drift between the playback
and the recording clocks.
"""

from __future__ import annotations

import numpy as np

MARKER_SECONDS = 0.25
"""Length of one marker chirp (seconds)."""


def sync_marker(sample_rate: int, seconds: float = MARKER_SECONDS) -> np.ndarray:
    """A Tukey-windowed linear chirp from 100 Hz to ``min(16 kHz, 0.4 * rate)``, peak 1.0, float32.

    Linear sweeps spend equal time at every frequency, so the correlation peak is sharp and the
    estimate is not biased towards the low end.
    """
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0, f1 = 100.0, min(16000.0, 0.4 * sample_rate)
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t**2)
    chirp = np.sin(phase)
    taper = max(1, int(0.01 * sample_rate))
    window = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(taper) / taper)
    window[:taper] = ramp
    window[-taper:] = ramp[::-1]
    out = chirp * window
    return (out / np.max(np.abs(out))).astype(np.float32)
