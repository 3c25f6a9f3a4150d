"""The error-to-signal ratio (ESR): the energy of the error relative to the energy of the target.

``esr(estimate, target) = sum((estimate - target)**2) / (sum(target**2) + ESR_EPSILON)``, linear (0 is
perfect; 1 is an error as loud as the target). The one definition fxcap uses everywhere: the model
metrics (:func:`fxcap.modeling.metrics.esr`, which also validates its inputs), the capture checks
(repeatability of two passes) and the synthetic sessions of :mod:`fxcap.dataset.testing`. The
epsilon only matters for a silent target (it keeps the ratio finite); for any audible target it
changes the value by less than one part in 1e9.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ESR_EPSILON = 1e-12
"""Added to the target's energy so a silent target gives a finite ratio."""


def esr(estimate: Any, target: Any) -> float:
    """Error-to-signal ratio of ``estimate`` against ``target`` (same shape; any float dtype, computed
    in float64): ``sum((estimate - target)**2) / (sum(target**2) + ESR_EPSILON)``."""
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if e.shape != t.shape:
        raise ValueError(f"esr: shapes differ, estimate {e.shape} vs target {t.shape}")
    return float(np.sum((e - t) ** 2) / (np.sum(t * t) + ESR_EPSILON))
