"""A virtual optical compressor in the manner of the Teletronix LA-2A.

Per sample:

1. Side chain: the input plus a first-order high-pass (2 kHz) copy of it (the LA-2A's HF emphasis:
   treble is compressed a little harder), rectified into a light level that rises within
   :data:`LIGHT_ATTACK_S` and falls within :data:`LIGHT_RELEASE_S` (the electroluminescent panel).
2. Gain computer (dB): threshold set by PEAK REDUCTION, ``10 - 0.45 * peak_reduction`` dBFS
   (0: never compresses; 100: -35 dBFS), soft knee; ratio 3:1 with a 10 dB knee in ``compress``
   mode, 30:1 (practically infinite) with a 4 dB knee in ``limit`` mode.
3. The photocell, two states in dB of gain reduction:
   ``fast`` follows the target with a program-dependent attack (about 10 ms; faster for bigger
   overshoots, down to about 3 ms) and releases with :data:`FAST_RELEASE_S` (60 ms);
   ``slow`` charges from ``fast`` with :data:`CHARGE_S` (so only sustained compression builds it) and
   releases with a time constant from 1 s (lightly charged) to 5 s (charged by 12 dB or more).
   Gain reduction is ``max(fast, slow / 2)``: after a short burst the cell recovers in about 60 ms;
   after long, hard compression about half the reduction releases fast and the rest over seconds.
4. Output: input times the gain reduction times GAIN, ``0.3 * (gain - 50)`` dB (-15..+15 dB).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fxcap.capture.profiles import LA2A, KnobValue
from fxcap.capture.virtual.base import VirtualDevice
from fxcap.capture.virtual.dsp import CACHE, fo_step, highpass1

LIGHT_ATTACK_S = 0.0005
LIGHT_RELEASE_S = 0.02
ATTACK_S = 0.010
FAST_RELEASE_S = 0.060
CHARGE_S = 1.0
SLOW_RELEASE_MIN_S = 1.0
SLOW_RELEASE_MAX_S = 5.0
SLOW_FULL_DB = 12.0
"""Charge of the slow state (dB) at which its release reaches :data:`SLOW_RELEASE_MAX_S`."""
SIDECHAIN_HF_HZ = 2000.0

MODES = {"compress": (3.0, 10.0), "limit": (30.0, 4.0)}
"""Ratio and knee width (dB) of each position of the mode switch."""


def threshold_dbfs(peak_reduction: float) -> float:
    """Compression threshold (dBFS of the side chain) for a PEAK REDUCTION setting (0..100)."""
    return 10.0 - 0.45 * peak_reduction


def makeup_gain_db(gain: float) -> float:
    """Output gain (dB) for a GAIN setting (0..100): -15 .. +15 dB, 0 dB at 50."""
    return 0.3 * (gain - 50.0)


@njit(cache=CACHE, fastmath=True)
def _coef(seconds: float, sample_rate: float) -> float:  # pragma: no cover - jitted
    return 1.0 - math.exp(-1.0 / (seconds * sample_rate))


@njit(cache=CACHE, fastmath=True)
def _compressor_kernel(x: np.ndarray, hp: np.ndarray, params: np.ndarray, state: np.ndarray) -> np.ndarray:  # pragma: no cover - jitted
    """``params``: sample rate, threshold dBFS, ratio, knee dB, output gain (linear).
    ``state``: HF filter at 0..1, light at 2, fast at 3, slow at 4."""
    fs = params[0]
    threshold = params[1]
    slope = 1.0 - 1.0 / params[2]
    knee = params[3]
    out_gain = params[4]
    light_up = _coef(LIGHT_ATTACK_S, fs)
    light_down = _coef(LIGHT_RELEASE_S, fs)
    fast_down = _coef(FAST_RELEASE_S, fs)
    charge = _coef(CHARGE_S, fs)
    light = state[2]
    fast = state[3]
    slow = state[4]
    n = x.shape[0]
    out = np.zeros(n)
    for i in range(n):
        s = x[i] + fo_step(hp, 0, state, 0, x[i])
        a = abs(s)
        light += (a - light) * (light_up if a > light else light_down)
        over = 20.0 * math.log10(light + 1e-12) - threshold
        if over <= -0.5 * knee:
            target = 0.0
        elif over >= 0.5 * knee:
            target = slope * over
        else:
            target = slope * (over + 0.5 * knee) ** 2 / (2.0 * knee)
        if target > fast:
            fast += (target - fast) * _coef(ATTACK_S / (1.0 + (target - fast) / 10.0), fs)
        else:
            fast += (target - fast) * fast_down
        if fast > slow:
            slow += (fast - slow) * charge
        else:
            fill = slow / SLOW_FULL_DB
            if fill > 1.0:
                fill = 1.0
            slow += (fast - slow) * _coef(SLOW_RELEASE_MIN_S + (SLOW_RELEASE_MAX_S - SLOW_RELEASE_MIN_S) * fill, fs)
        reduction = fast if fast > 0.5 * slow else 0.5 * slow
        out[i] = x[i] * out_gain * math.exp(-reduction * (math.log(10.0) / 20.0))
    state[2] = light
    state[3] = fast
    state[4] = slow
    return out


class LA2ACompressor(VirtualDevice):
    """Virtual LA-2A: knobs ``peak_reduction`` (0..100), ``gain`` (0..100), ``mode`` (compress/limit)."""

    profile = LA2A

    def reset(self) -> None:
        self._state = np.zeros(5)

    def gain_reduction_db(self) -> float:
        """Current gain reduction of the photocell (dB, >= 0)."""
        return float(max(self._state[3], 0.5 * self._state[4]))

    def _process(self, x: np.ndarray, settings: dict[str, KnobValue]) -> np.ndarray:
        ratio, knee = MODES[str(settings["mode"])]
        params = np.array([
            float(self.sample_rate),
            threshold_dbfs(float(settings["peak_reduction"])),
            ratio,
            knee,
            10.0 ** (makeup_gain_db(float(settings["gain"])) / 20.0),
        ])
        return _compressor_kernel(x, highpass1(SIDECHAIN_HF_HZ, self.sample_rate)[None, :], params, self._state)
