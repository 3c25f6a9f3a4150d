"""Learning-rate and loss-weight schedules of training, and the clock of a time budget.

:func:`cosine_factor` (warm-up, then a half cosine over the steps), :func:`cosine_at` (the half cosine
at a share of the way), :func:`ramp` (a linear warm-up of a loss weight) and :class:`TrainingClock`
(seconds spent training, across resumes, against a budget).
"""

from __future__ import annotations

import math
import time
from typing import Callable


def cosine_factor(step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based) of ``total_steps``: linear
    warm-up from ``1 / warmup_steps`` to 1 over the first ``warmup_steps`` steps, then a half cosine
    from 1 down to ``min_factor`` at the last step (and ``min_factor`` beyond it)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    return cosine_at(min(1.0, (step - warmup_steps) / span), min_factor)


def cosine_at(progress: float, min_factor: float = 0.0) -> float:
    """The half cosine from 1 (``progress`` 0) down to ``min_factor`` (``progress`` 1 and beyond)."""
    progress = min(1.0, max(0.0, progress))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ramp(step: int, warmup_steps: int) -> float:
    """``min(1, step / warmup_steps)`` (1 without a warm-up)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


class TrainingClock:
    """Seconds spent training a run (epochs' wall time, validation included), across resumes.

    With a time budget the cosine schedule follows whichever is further along, the steps or the
    clock (:meth:`fraction` of the budget), so a run that cannot finish its steps within the budget still anneals
    its rate to the floor by the end of the budget.
    """

    def __init__(self, budget_s: float | None, spent_s: float = 0.0, now: Callable[[], float] = time.perf_counter) -> None:
        """``budget_s``: the budget in seconds (``None``: none); ``spent_s``: seconds spent before (a resumed run);
        ``now``: the clock read, in seconds."""
        self.budget_s, self.spent_s, self.now = budget_s, float(spent_s), now
        self._epoch_started: float | None = None

    def start_epoch(self) -> None:
        self._epoch_started = self.now()

    def end_epoch(self) -> float:
        """Add the epoch's seconds to the total and return them."""
        seconds = self.now() - self._epoch_started if self._epoch_started is not None else 0.0
        self.spent_s += seconds
        self._epoch_started = None
        return seconds

    def elapsed(self) -> float:
        """Seconds spent so far, the running epoch included."""
        running = self.now() - self._epoch_started if self._epoch_started is not None else 0.0
        return self.spent_s + running

    def fraction(self) -> float:
        """Share of the budget used (0 without a budget)."""
        return self.elapsed() / self.budget_s if self.budget_s else 0.0

    def exhausted(self) -> bool:
        return bool(self.budget_s) and self.spent_s >= self.budget_s
