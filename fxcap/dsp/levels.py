"""Level conversions: dB <-> amplitude and power ratios, RMS and RMS in dBFS (full scale = 1.0 peak)."""

from __future__ import annotations

import numpy as np


def amp_to_db(amplitude: float | np.ndarray, floor_db: float = -240.0) -> float | np.ndarray:
    """``20 * log10(|amplitude|)`` in dB, never below ``floor_db`` (so silence gives a finite number)."""
    value = 20.0 * np.log10(np.maximum(np.abs(amplitude), 10.0 ** (floor_db / 20.0)))
    return float(value) if np.ndim(value) == 0 else value


def db_to_amp(db: float | np.ndarray) -> float | np.ndarray:
    """Amplitude ratio of a level in dB: ``10 ** (db / 20)``."""
    value = 10.0 ** (np.asarray(db, dtype=np.float64) / 20.0)
    return float(value) if np.ndim(value) == 0 else value


def power_to_db(power: float | np.ndarray, floor_db: float = -240.0) -> float | np.ndarray:
    """``10 * log10(power)`` in dB, never below ``floor_db``."""
    value = 10.0 * np.log10(np.maximum(power, 10.0 ** (floor_db / 10.0)))
    return float(value) if np.ndim(value) == 0 else value


def rms(x: np.ndarray) -> float:
    """Root-mean-square of ``x`` (0.0 for an empty array)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (full scale = 1.0 peak, so a full-scale sine reads -3.01 dBFS)."""
    return amp_to_db(rms(x))
