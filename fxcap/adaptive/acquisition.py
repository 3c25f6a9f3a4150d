"""Where the committee is least sure: the score of each candidate setting, and a batch spread apart.

An acquisition function takes the committee's predictions at every candidate setting, an array
``(members, candidates, samples)`` (the models' outputs on the same short excerpt of the signal), and
returns one score per candidate (higher: record it sooner). It sees nothing else, so a benchmark can
compare acquisitions on the same predictions; add one to :data:`ACQUISITIONS`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fxcap.errors import CaptureError

Acquisition = Callable[[np.ndarray], np.ndarray]
"""``(members, candidates, samples)`` predictions -> ``(candidates,)`` scores (higher: more useful)."""

POWER_FLOOR = 1e-12
"""Added to the committee's mean output power (full scale 1.0) before dividing by it: a silent setting
scores 0 instead of dividing by nothing."""

FRAME = 1024
"""Samples per frame of :func:`frame_disagreement`."""


def _check(predictions: np.ndarray) -> np.ndarray:
    p = np.asarray(predictions, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[2] < 1:
        raise CaptureError(f"committee predictions must be (members >= 2, candidates, samples), not {p.shape}")
    return p


def disagreement(predictions: np.ndarray) -> np.ndarray:
    """The committee's variance, averaged over the excerpt, relative to the power of its mean output:
    ``mean_t var_m(y) / (mean_t mean_m(y)^2 + 1e-12)`` per candidate (dimensionless; like an ESR
    between the members and their consensus, so a loud and a quiet setting compare alike)."""
    p = _check(predictions)
    consensus = p.mean(axis=0)
    return p.var(axis=0).mean(axis=-1) / (np.square(consensus).mean(axis=-1) + POWER_FLOOR)


def frame_disagreement(predictions: np.ndarray) -> np.ndarray:
    """:func:`disagreement` per frame of :data:`FRAME` samples, the worst frame per candidate: a
    setting whose doubt sits in a short passage (an attack, a loud burst) is not averaged away."""
    p = _check(predictions)
    frames = max(p.shape[2] // FRAME, 1)
    usable = p[:, :, : frames * FRAME] if p.shape[2] >= FRAME else p
    shaped = usable.reshape(p.shape[0], p.shape[1], frames, -1)
    consensus = shaped.mean(axis=0)
    ratio = shaped.var(axis=0).mean(axis=-1) / (np.square(consensus).mean(axis=-1) + POWER_FLOOR)
    return ratio.max(axis=-1)


ACQUISITIONS: dict[str, Acquisition] = {"disagreement": disagreement, "frame_disagreement": frame_disagreement}
"""The acquisition functions by name (:attr:`fxcap.adaptive.config.AdaptiveConfig.acquisition`)."""


def get_acquisition(name: str) -> Acquisition:
    """The acquisition called ``name`` (a one-line :class:`CaptureError` naming the known ones)."""
    try:
        return ACQUISITIONS[name]
    except KeyError:
        raise CaptureError(f"unknown acquisition {name!r}; choose one of {', '.join(ACQUISITIONS)}") from None


def spread_picks(scores: np.ndarray, positions: np.ndarray, k: int, pool: int = 2,
                 recorded: np.ndarray | None = None) -> list[int]:
    """``k`` candidates to record, best first: the best-scored one, then, among the ``pool * k``
    best-scored, each time the one farthest (Euclidean, in ``positions``' units) from the picks so far
    and from the ``recorded`` settings when given (greedy max-min; a tie goes to the better score), so
    one batch does not pile up in one spot, nor next to a setting already recorded.

    Args:
        scores: ``(C,)`` acquisition scores (non-finite ones are never picked, nor ones of 0 or less
            while ``k`` positive ones are left).
        positions: ``(C, K)`` the candidates' normalised knob positions.
        k: settings to pick (fewer when there are fewer usable candidates).
        pool: the pool holds the ``pool * k`` best candidates.
        recorded: ``(S, K)`` normalised positions of the settings recorded so far (None: the batch's
            picks alone count).
    Returns:
        indexes into ``scores``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64).reshape(len(scores), -1)
    usable = np.flatnonzero(np.isfinite(scores))
    if np.count_nonzero(scores[usable] > 0) >= k:  # a candidate nothing speaks for is not spread to
        usable = usable[scores[usable] > 0]
    order = usable[np.argsort(-scores[usable], kind="stable")]
    candidates = list(order[: max(int(k), int(pool) * int(k))])
    if not candidates or k < 1:
        return []
    picks = [candidates.pop(0)]
    fixed = np.zeros((0, positions.shape[1])) if recorded is None else np.asarray(recorded, dtype=np.float64).reshape(-1, positions.shape[1])
    while candidates and len(picks) < k:
        distance = distance_to_nearest(positions[candidates], np.concatenate([fixed, positions[picks]]))
        picks.append(candidates.pop(int(np.argmax(distance))))  # argmax takes the first (best-scored) of equals
    return [int(i) for i in picks]


def distance_to_nearest(positions: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``(C,)`` each position's Euclidean distance to the nearest of ``others`` (``(S, K)``; inf when empty)."""
    positions = np.asarray(positions, dtype=np.float64).reshape(len(positions), -1)
    others = np.asarray(others, dtype=np.float64).reshape(-1, positions.shape[1])
    if not len(others):
        return np.full(len(positions), np.inf)
    return np.linalg.norm(positions[:, None, :] - others[None, :, :], axis=-1).min(axis=1)


def distance_factor(positions: np.ndarray, recorded: np.ndarray, power: float) -> np.ndarray:
    """``(d / max d)^power`` per candidate, ``d`` its distance to the nearest recorded setting: what
    :func:`fxcap.adaptive.planner.propose` multiplies the scores by, so the committee's doubt counts
    less next to a recorded setting (which a new take there would mostly repeat) and most in the
    widest gap. 1 everywhere for ``power`` 0 or nothing recorded."""
    distance = distance_to_nearest(positions, recorded)
    if power == 0 or not np.isfinite(distance).all() or distance.max() <= 0:
        return np.ones(len(distance))
    return (distance / distance.max()) ** power


def misfit_nearby(positions: np.ndarray, recorded: np.ndarray, misfit: np.ndarray, radius: float) -> np.ndarray:
    """Each candidate's share of the recorded settings' misfit: ``max_i misfit_i exp(-(d_i / radius)^2)``,
    ``d_i`` its distance to recorded setting ``i`` (normalised knob units). A setting the quick models
    fit badly marks its neighbourhood as worth recording; a candidate far from every such setting gets
    nothing from this term.

    Args:
        positions: ``(C, K)`` the candidates' normalised positions.
        recorded: ``(S, K)`` the recorded settings' normalised positions.
        misfit: ``(S,)`` the committee's ESR at each recorded setting.
        radius: how far a setting's misfit reaches (normalised units: 2 is a knob's whole range).
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(len(positions), -1)
    recorded = np.asarray(recorded, dtype=np.float64).reshape(len(misfit), -1)
    distance = np.linalg.norm(positions[:, None, :] - recorded[None, :, :], axis=-1)
    return (np.asarray(misfit, dtype=np.float64)[None, :] * np.exp(-np.square(distance / radius))).max(axis=1)
