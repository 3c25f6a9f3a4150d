"""Where the device's output changes most between neighbouring recorded settings: a doubt without models.

Every take of a session plays the same signal, so the outputs of two recorded settings compare sample
by sample. Where two neighbouring settings sound much alike, a model interpolates between them
easily; where they differ a lot (the drive knob's first quarter on an overdrive, say), the settings
between them are the ones a model is most likely to get wrong, and the next take goes there. This is
adaptive refinement of a mesh: the knob space's neighbour graph (the Gabriel graph of the recorded
settings) is refined across its edges of largest change.

No model is trained, so a round takes milliseconds, and the doubt measures the device, not the
quick models' own limits (the committee's doubt of :mod:`fxcap.adaptive.committee` is highest where
its tiny members fail, which need not be where a full model fails; docs/adaptive_plan.md).
"""

from __future__ import annotations

import numpy as np

POWER_FLOOR = 1e-12
"""Added to the mean power of two outputs (full scale 1.0) before dividing by it: two silent settings
differ by 0 instead of dividing by nothing."""

INSIDE_TOLERANCE = 1e-9
"""A third setting closer to an edge's midpoint than its half-length less this (normalised knob units)
breaks the edge (:func:`neighbour_pairs`); one on the circle keeps it (a square's sides stay edges)."""


def output_dissimilarity(outputs: np.ndarray) -> np.ndarray:
    """``(S, S)``: how much each pair of recorded outputs differs, ``sum (a - b)^2 / (sum a^2 + sum b^2) * 2``
    (an ESR of one against the other, over their mean power: symmetric, 0 on the diagonal, 2 for two
    uncorrelated outputs of equal power, 4 for one the negative of the other).

    Args:
        outputs: ``(S, n)`` the recorded settings' outputs over the same stretch of the played signal.
    """
    y = np.asarray(outputs, dtype=np.float64)
    y = y.reshape(len(y), -1)
    power = np.square(y).sum(axis=1)
    out = np.zeros((len(y), len(y)))
    for i in range(len(y)):  # differences taken directly: equal outputs give exactly 0
        squared = np.square(y[i + 1:] - y[i]).sum(axis=1)
        out[i, i + 1:] = out[i + 1:, i] = 2 * squared / (power[i] + power[i + 1:] + POWER_FLOOR)
    return out


def neighbour_pairs(positions: np.ndarray) -> list[tuple[int, int]]:
    """The Gabriel graph's edges: pairs ``(i, j)``, ``i < j``, at distinct positions, with no third
    setting strictly inside the circle (sphere) whose diameter they span: the settings a model
    interpolates between. A setting recorded twice counts once (its first index)."""
    p = np.asarray(positions, dtype=np.float64)
    p = p.reshape(len(p), -1)
    first: dict[tuple[float, ...], int] = {}
    for i, row in enumerate(p):
        first.setdefault(tuple(row.tolist()), i)
    kept = sorted(first.values())
    pairs = []
    for a, i in enumerate(kept):
        for j in kept[a + 1:]:
            middle, radius = (p[i] + p[j]) / 2, np.linalg.norm(p[i] - p[j]) / 2
            others = [k for k in kept if k not in (i, j)]
            if not others or np.linalg.norm(p[others] - middle, axis=1).min() >= radius - INSIDE_TOLERANCE:
                pairs.append((i, j))
    return pairs


def change_scores(candidates: np.ndarray, recorded: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """:func:`edge_scores` of :func:`output_dissimilarity`: the output change across each neighbour
    edge, given to the candidate nearest its middle (see there)."""
    return edge_scores(candidates, recorded, output_dissimilarity(outputs))


def edge_scores(candidates: np.ndarray, recorded: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``(C,)`` each neighbour edge's value given to the candidate nearest its middle:
    ``V_ij (1 - |c - m_ij|^2 / r_ij^2)``, ``m_ij`` and ``r_ij`` the edge's midpoint and half-length
    (the larger where one candidate is nearest the middle of several edges); 0 for every other
    candidate. One candidate per edge, so the best-scored candidates are the middles of the edges of
    the largest values (with :func:`output_dissimilarity`, those whose two ends sound most different),
    not a cluster around the middle of the largest one.

    Args:
        candidates: ``(C, K)`` normalised positions of the settings that could be recorded next.
        recorded: ``(S, K)`` normalised positions of the recorded settings.
        value: ``(S, S)`` each pair's value (only neighbours' are read).
    """
    c = np.asarray(candidates, dtype=np.float64)
    change = np.asarray(value, dtype=np.float64)
    r = np.asarray(recorded, dtype=np.float64).reshape(len(change), -1)
    c = c.reshape(len(c), r.shape[1])
    scores = np.zeros(len(c))
    for i, j in neighbour_pairs(r):
        middle, radius = (r[i] + r[j]) / 2, np.linalg.norm(r[i] - r[j]) / 2
        reach = 1 - np.square(np.linalg.norm(c - middle, axis=1) / radius)
        nearest = int(np.argmax(reach))  # the first of equally near ones
        if reach[nearest] > 0:
            scores[nearest] = max(scores[nearest], change[i, j] * reach[nearest])
    return scores
