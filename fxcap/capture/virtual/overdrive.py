"""A virtual overdrive in the manner of the Boss OD-3: pre-emphasis, stateful diode clipping, tone, level.

Signal chain (digital full scale 1.0 stands for :data:`INPUT_VOLTS` volts at the input):

1. input coupling high-pass, 20 Hz;
2. drive stage (pre-emphasis): ``H(s) = 1 + G * s tau / (1 + s tau) / (1 + s tau_f)`` with
   ``1/(2 pi tau) = 300 Hz`` and a feedback-capacitor roll-off at 8 kHz: low frequencies pass at
   unity, mids and highs get ``1 + G``. ``1 + G`` follows the DRIVE pot's audio taper,
   0 dB (drive 0) to +40 dB (drive 10), 4 dB per step;
3. diode clipper, run at the capture rate (ANALOG_LATENCY: the 2x-oversampling path's minimum-phase
   half-band filters delayed the output by about 5 samples at 48 kHz, which an analogue pedal does not
   do and which a 32-unit RNN cannot reproduce on high-frequency material; the kernel still supports
   ``oversampling = 2``): a series resistor ``R`` into a capacitor
   ``C`` shunted by an asymmetric antiparallel diode pair (one silicon diode one way, two in series
   the other way, which adds even harmonics). Its ODE
   ``C dv/dt = (u - v) / R - i_d(v)`` is solved per sample (backward Euler, bracketed Newton), so the
   clipper has memory: its output depends on the capacitor's charge, not only on the input;
4. output coupling high-pass (10 Hz, removes the asymmetry's DC) and a de-emphasis low-pass (5 kHz);
5. TONE: first-order tilt around 1 kHz, treble minus bass from -12 dB (tone 0, dark) to +12 dB
   (tone 10, bright), half of it cutting one end and half boosting the other;
6. LEVEL: audio taper, -24 dB (level 0) .. 0 dB (level 10), 2.4 dB per step, times
   :data:`OUTPUT_SCALE` (level 10 at full drive peaks near -3 dBFS with a -3 dBFS input).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fxcap.capture.profiles import OD3, KnobValue
from fxcap.capture.virtual.base import VirtualDevice
from fxcap.capture.virtual.dsp import CACHE, dot_at, fo_step, halfband_minphase, highpass1, lowpass1, tilt1

INPUT_VOLTS = 0.5
"""Volts at the pedal's input for a full-scale (1.0) digital sample (a hot humbucker's peak)."""

OUTPUT_SCALE = 0.55
"""Digital full scale per volt at the clipper (before the level pot)."""

RESISTOR_OHM = 2200.0
CAPACITOR_F = 10e-9
DIODE_IS_A = 2.52e-9
"""Saturation current of one 1N4148-type silicon diode (A)."""
DIODE_NVT_V = 1.752 * 0.02585
"""Emission coefficient times thermal voltage of one diode (V)."""

PRE_EMPHASIS_HZ = 300.0
FEEDBACK_ROLLOFF_HZ = 8000.0
DEEMPHASIS_HZ = 5000.0
TONE_TILT_HZ = 1000.0


def drive_gain_db(drive: float) -> float:
    """Mid-band gain of the drive stage (dB): 4 dB per step, 0 dB at drive 0, +40 dB at drive 10."""
    return 4.0 * drive


def tone_tilt_db(tone: float) -> float:
    """Tilt of the tone control (dB, treble minus bass): -12 at 0 (dark), 0 at 5, +12 at 10 (bright)."""
    return 2.4 * (tone - 5.0)


def level_gain_db(level: float) -> float:
    """Output attenuation of the level pot (dB): -24 at 0, -12 at 5, 0 at 10."""
    return -2.4 * (10.0 - level)


@njit(cache=CACHE, fastmath=True, inline="always")
def _limited_exp(a: float) -> tuple[float, float]:  # pragma: no cover - jitted
    """``exp(a)`` and its derivative, continued linearly beyond ``e^60`` so Newton's trial points cannot overflow."""
    if a < 60.0:
        e = math.exp(a)
        return e, e
    top = math.exp(60.0)
    return top * (1.0 + a - 60.0), top


@njit(cache=CACHE, fastmath=True, inline="always")
def _diode_current(v: float) -> tuple[float, float]:  # pragma: no cover - jitted
    """Current (A) through the asymmetric diode pair at voltage ``v`` and its derivative (S)."""
    ea, da = _limited_exp(v / DIODE_NVT_V)
    eb, db = _limited_exp(-v / (2.0 * DIODE_NVT_V))
    current = DIODE_IS_A * (ea - eb)
    slope = DIODE_IS_A * (da + 0.5 * db) / DIODE_NVT_V
    return current, slope


@njit(cache=CACHE, fastmath=True)
def _clip(u: float, v_prev: float, dt_c: float, g_r: float) -> float:  # pragma: no cover - jitted
    """Backward-Euler step of ``C dv/dt = (u - v) g_r - i_d(v)``; ``dt_c = T / C`` (s/F)."""
    k = dt_c * g_r
    rhs = v_prev + k * u
    bound = abs(v_prev) + k * abs(u) + 1e-9
    lo = -bound
    hi = bound
    v = v_prev
    if v < lo or v > hi:
        v = 0.0
    for _ in range(60):
        i_d, di = _diode_current(v)
        g = v * (1.0 + k) + dt_c * i_d - rhs
        if g > 0.0:
            hi = v
        elif g < 0.0:
            lo = v
        else:
            return v
        v_new = v - g / (1.0 + k + dt_c * di)
        if v_new < lo or v_new > hi:
            v_new = 0.5 * (lo + hi)
        if abs(v_new - v) < 1e-9:
            return v_new
        v = v_new
    return v


CLIPPER_TABLE_SIZE = 8192
CLIPPER_TABLE_SPAN_V = 300.0
CLIPPER_TABLE_SCALE_V = 1.0


def _diode_current_np(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized :func:`_diode_current` (no linear continuation needed: arguments are clipped)."""
    ea = np.exp(np.minimum(v / DIODE_NVT_V, 700.0))
    eb = np.exp(np.minimum(-v / (2.0 * DIODE_NVT_V), 700.0))
    return DIODE_IS_A * (ea - eb), DIODE_IS_A * (ea + 0.5 * eb) / DIODE_NVT_V


def clipper_table(dt_c: float, g_r: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Tabulate the clipper's implicit step.

    A backward-Euler step solves ``v (1 + k) + (T/C) i_d(v) = r`` with ``r = v_prev + k u`` and
    ``k = T / (R C)``: its solution ``v = phi(r)`` depends on ``r`` alone, so it is solved once here
    (bisection to machine precision) on a grid uniform in ``w = r / (scale + |r|)`` (dense where the diodes bend, sparse where
    ``phi`` is nearly logarithmic) and evaluated per
    sample by cubic Hermite interpolation with the exact slopes (error < 1e-9 V). Returns the values
    and the slopes ``dv/dw`` at the nodes, the first node's ``w`` and the inverse node spacing.
    """
    k = dt_c * g_r
    w_max = CLIPPER_TABLE_SPAN_V / (CLIPPER_TABLE_SCALE_V + CLIPPER_TABLE_SPAN_V)
    w = np.linspace(-w_max, w_max, CLIPPER_TABLE_SIZE)
    r = CLIPPER_TABLE_SCALE_V * w / (1.0 - np.abs(w))
    lo = -np.abs(r) / (1.0 + k) - 1e-12  # i_d(v) has the sign of v, so |v| <= |r| / (1 + k)
    hi = -lo
    for _ in range(120):
        mid = 0.5 * (lo + hi)
        above = mid * (1.0 + k) + dt_c * _diode_current_np(mid)[0] - r > 0.0
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    v = 0.5 * (lo + hi)
    dr_dw = CLIPPER_TABLE_SCALE_V / (1.0 - np.abs(w)) ** 2
    slope = dr_dw / (1.0 + k + dt_c * _diode_current_np(v)[1])
    return v, slope, float(w[0]), float(1.0 / (w[1] - w[0]))


@njit(cache=CACHE, fastmath=True, inline="always")
def _clip_lookup(
    u: float, v_prev: float, dt_c: float, g_r: float, values: np.ndarray, slopes: np.ndarray, w0: float, inv_dw: float
) -> float:  # pragma: no cover - jitted
    """The clipper step from :func:`clipper_table`, or by Newton outside the table's range."""
    r = v_prev + dt_c * g_r * u
    pos = (r / (CLIPPER_TABLE_SCALE_V + abs(r)) - w0) * inv_dw
    j = int(pos)
    if pos < 0.0 or j >= values.shape[0] - 1:
        return _clip(u, v_prev, dt_c, g_r)
    t = pos - j
    t1 = 1.0 - t
    dw = 1.0 / inv_dw
    return (
        (1.0 + 2.0 * t) * t1 * t1 * values[j]
        + t * t1 * t1 * dw * slopes[j]
        + t * t * (3.0 - 2.0 * t) * values[j + 1]
        - t * t * t1 * dw * slopes[j + 1]
    )


@njit(cache=CACHE, fastmath=True)
def _overdrive_kernel(
    x: np.ndarray, coefs: np.ndarray, params: np.ndarray, up_even: np.ndarray, up_odd: np.ndarray, down_taps: np.ndarray,
    values: np.ndarray,
    slopes: np.ndarray, state: np.ndarray, up_hist: np.ndarray, down_hist: np.ndarray,
) -> np.ndarray:  # pragma: no cover - jitted
    """The whole chain for one block.

    ``coefs`` rows: input HP, pre-emphasis HP, feedback LP, output HP, de-emphasis LP, tone tilt.
    ``params``: drive G, input volts, dt/C, 1/R, output gain, oversampling factor (1 or 2), and
    the clipper table's first node and inverse spacing (``values``/``slopes``: :func:`clipper_table`).
    ``state``: filter memories at 0..11, capacitor voltage at 12, history positions at 13 and 14.
    2x resampling: ``up_even``/``up_odd`` are the polyphase branches of the interpolation FIR and
    ``down_taps`` the decimation FIR, both time-reversed so each dot product runs forward over a
    history. The histories are double-length ring buffers (each sample is written twice, ``L``
    apart), so the newest ``L`` samples are always contiguous.
    """
    gain_g = params[0]
    volts = params[1]
    dt_c = params[2]
    g_r = params[3]
    out_gain = params[4]
    factor = int(params[5])
    w0 = params[6]
    inv_dw = params[7]
    n_up = up_hist.shape[0] // 2
    n_down = down_hist.shape[0] // 2
    v = state[12]
    up_pos = int(state[13])
    down_pos = int(state[14])
    n = x.shape[0]
    out = np.zeros(n)
    for i in range(n):
        s = fo_step(coefs, 0, state, 0, x[i])
        hp = fo_step(coefs, 1, state, 2, s)
        u = (s + gain_g * fo_step(coefs, 2, state, 4, hp)) * volts
        if factor == 1:
            v = _clip_lookup(u, v, dt_c, g_r, values, slopes, w0, inv_dw)
            y = v
        else:
            # Polyphase 2x interpolation: even taps give the first new sample, odd taps the second.
            up_pos += 1
            if up_pos == n_up:
                up_pos = 0
            up_hist[up_pos] = u
            up_hist[up_pos + n_up] = u
            first = up_pos + 1  # oldest of the newest n_up inputs, contiguous up to up_pos + n_up
            even = dot_at(up_even, up_hist, first)
            odd = dot_at(up_odd, up_hist, first)
            for phase in range(2):
                v = _clip_lookup(2.0 * (even if phase == 0 else odd), v, dt_c, g_r, values, slopes, w0, inv_dw)
                down_pos += 1
                if down_pos == n_down:
                    down_pos = 0
                down_hist[down_pos] = v
                down_hist[down_pos + n_down] = v
            # Decimate: filter the doubled-rate clipper output at its newest sample.
            y = dot_at(down_taps, down_hist, down_pos + 1)
        y = fo_step(coefs, 3, state, 6, y)
        y = fo_step(coefs, 4, state, 8, y)
        y = fo_step(coefs, 5, state, 10, y)
        out[i] = y * out_gain
    state[12] = v
    state[13] = up_pos
    state[14] = down_pos
    return out


class OD3Overdrive(VirtualDevice):
    """Virtual OD-3: knobs ``level``, ``tone``, ``drive`` (0..10). See the module docstring."""

    profile = OD3

    def __init__(self, sample_rate: int) -> None:
        fir = halfband_minphase()
        branch = (len(fir) + 1) // 2
        padded = np.zeros(2 * branch)
        padded[: len(fir)] = fir
        self._up_taps = (np.ascontiguousarray(padded[0::2][::-1]), np.ascontiguousarray(padded[1::2][::-1]))
        self._down_taps = np.ascontiguousarray(fir[::-1])
        super().__init__(sample_rate)
        self.oversampling = 1  # see ANALOG_LATENCY note in the module docstring
        fs_inner = self.sample_rate * self.oversampling
        self._dt_c = 1.0 / (fs_inner * CAPACITOR_F)
        self._values, self._slopes, self._w0, self._inv_dw = clipper_table(self._dt_c, 1.0 / RESISTOR_OHM)

    def reset(self) -> None:
        self._state = np.zeros(15)
        self._up_hist = np.zeros(2 * len(self._up_taps[0]))
        self._down_hist = np.zeros(2 * len(self._down_taps))

    def _coefficients(self, tone: float) -> np.ndarray:
        fs = self.sample_rate
        return np.stack([
            highpass1(20.0, fs),
            highpass1(PRE_EMPHASIS_HZ, fs),
            lowpass1(FEEDBACK_ROLLOFF_HZ, fs),
            highpass1(10.0, fs),
            lowpass1(DEEMPHASIS_HZ, fs),
            tilt1(TONE_TILT_HZ, tone_tilt_db(tone), fs),
        ])

    def _process(self, x: np.ndarray, settings: dict[str, KnobValue]) -> np.ndarray:
        drive = float(settings["drive"])
        params = np.array([
            10.0 ** (drive_gain_db(drive) / 20.0) - 1.0,
            INPUT_VOLTS,
            self._dt_c,
            1.0 / RESISTOR_OHM,
            OUTPUT_SCALE * 10.0 ** (level_gain_db(float(settings["level"])) / 20.0),
            float(self.oversampling),
            self._w0,
            self._inv_dw,
        ])
        return _overdrive_kernel(
            x, self._coefficients(float(settings["tone"])), params, self._up_taps[0], self._up_taps[1], self._down_taps, self._values,
            self._slopes, self._state, self._up_hist, self._down_hist,
        )
