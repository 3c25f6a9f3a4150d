"""Catch a "take" that is the dry signal itself: a wiring or export mistake, not a recording of the device.

A DAW export of the wrong track, or a device left bypassed, gives a file equal to the test signal up
to gain and polarity (an inverted copy included). :func:`dry_copy_check` measures how far a take is
from ``±g · dry`` (the error-to-signal ratio after the best gain, at the best whole-sample lag and after
alignment) and fails the take when that is below :data:`DRY_COPY_ESR`, unless the device profile says
the device may be transparent (``may_be_transparent = true``).
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from fxcap.capture.session import CheckResult

DRY_COPY_ESR = 1e-4
"""A take this close to ``±g · dry`` (error-to-signal ratio, 1e-4 is -40 dB) is the dry signal."""


def _fit_esr(take: np.ndarray, dry: np.ndarray) -> tuple[float, float]:
    """``(esr, gain)`` of ``take`` against ``gain · dry`` with the least-squares gain (any sign)."""
    n = min(len(take), len(dry))
    y, x = np.asarray(take[:n], dtype=np.float64), np.asarray(dry[:n], dtype=np.float64)
    xx, yy = float(x @ x), float(y @ y)
    if xx <= 0.0 or yy <= 0.0:
        return float("inf"), 0.0
    gain = float(x @ y) / xx
    residual = y - gain * x
    return float(residual @ residual) / yy, gain


def _best_lag(recorded: np.ndarray, dry: np.ndarray) -> int:
    """Whole-sample lag of ``dry`` in ``recorded`` (largest absolute cross-correlation, 0 or later)."""
    corr = sps.correlate(np.asarray(recorded, dtype=np.float64), np.asarray(dry, dtype=np.float64), mode="full", method="fft")
    lags = np.arange(-len(dry) + 1, len(recorded))
    keep = lags >= 0
    return int(lags[keep][np.argmax(np.abs(corr[keep]))]) if np.any(keep) else 0


def dry_copy_esr(recorded: np.ndarray, aligned: np.ndarray, dry: np.ndarray) -> tuple[float, float]:
    """``(esr, gain)``: how close a take is to the dry signal, the smaller of the aligned take's and
    the raw recording's at its best whole-sample lag (a copy exported with another offset)."""
    lag = _best_lag(recorded, dry)
    return min(_fit_esr(aligned, dry), _fit_esr(recorded[lag:], dry))


def dry_copy_check(recorded: np.ndarray, aligned: np.ndarray, dry: np.ndarray, may_be_transparent: bool) -> CheckResult:
    """The ``dry_copy`` check: fails (error) when the take is the dry signal up to gain and polarity."""
    esr, gain = dry_copy_esr(recorded, aligned, dry)
    copy = esr < DRY_COPY_ESR
    if not copy:
        return CheckResult("dry_copy", True, esr, "", DRY_COPY_ESR, "the take differs from the dry signal")
    what = "the dry test signal inverted" if gain < 0 else "the dry test signal"
    if may_be_transparent:
        return CheckResult("dry_copy", True, esr, "", DRY_COPY_ESR,
                           f"the take equals {what} (gain aside); the profile allows a transparent device", severity="warning")
    return CheckResult(
        "dry_copy", False, esr, "", DRY_COPY_ESR,
        f"the take equals {what} (ESR {esr:.1e} after gain); the dry track was exported or the device was bypassed: "
        "export the device's track, or set may_be_transparent = true in the device profile if it can pass the signal unchanged",
    )
