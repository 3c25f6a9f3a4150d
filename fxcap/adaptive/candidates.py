"""The settings the next batch is chosen from: a dense grid over the swept knobs, less those already planned."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from fxcap.capture.plan import knob_axis, lhs_values
from fxcap.capture.profiles import DeviceProfile, KnobValue

DEFAULT_STEPS = 11
"""Candidate values per swept knob when none is given (a 0..10 knob in steps of 1)."""

SAME_POSITION = 1e-6
"""Two settings whose normalised swept knobs differ by less than this (in every knob) are the same setting."""


@dataclass
class Candidates:
    """Candidate settings of the swept knobs.

    Attributes:
        settings: the swept knobs' values of each candidate (panel units).
        positions: ``(C, K)`` their normalised values, in [-1, 1], in ``knob_names`` order.
        knob_names: the swept knobs.
    """

    settings: list[dict[str, KnobValue]]
    positions: np.ndarray
    knob_names: list[str]

    def __len__(self) -> int:
        return len(self.settings)

    def without(self, taken: np.ndarray) -> "Candidates":
        """The candidates that are not one of ``taken`` (``(N, K)`` normalised positions)."""
        taken = np.asarray(taken, dtype=np.float64).reshape(-1, self.positions.shape[1])
        if not len(taken):
            return self
        distance = np.abs(self.positions[:, None, :] - taken[None, :, :]).max(axis=-1).min(axis=1)
        keep = np.flatnonzero(distance > SAME_POSITION)
        return Candidates([self.settings[i] for i in keep], self.positions[keep], self.knob_names)


def candidate_grid(profile: DeviceProfile, knob_names: list[str], steps: int | dict[str, int], max_candidates: int = 256,
                   seed: int = 0) -> Candidates:
    """Every combination of ``steps`` (one number for all, or per knob name) evenly spaced values of each
    swept knob (a switch: each of its values); when that is more than ``max_candidates`` settings, a
    seeded Latin hypercube of ``max_candidates`` points instead."""
    knobs = [profile.knob(name) for name in knob_names]
    per_knob = {profile.knob(name).name: int(n) for name, n in steps.items()} if isinstance(steps, dict) else {}
    axes = [knob_axis(knob, per_knob.get(knob.name, steps if isinstance(steps, int) else DEFAULT_STEPS)) for knob in knobs]
    if int(np.prod([len(axis) for axis in axes], dtype=np.float64)) <= max_candidates:
        points = [dict(zip((k.name for k in knobs), combo)) for combo in itertools.product(*axes)]
    else:
        rng = np.random.default_rng([seed, 7])
        columns = {k.name: lhs_values(k, max_candidates, rng) for k in knobs}
        points = [{name: column[i] for name, column in columns.items()} for i in range(max_candidates)]
    positions = np.array([[k.normalize(point[k.name]) for k in knobs] for point in points], dtype=np.float64)
    return Candidates(points, positions.reshape(len(points), len(knobs)), [k.name for k in knobs])
