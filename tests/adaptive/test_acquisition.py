"""The adaptive plan's pieces without training: the acquisition, the batch spreading, the misfit term,
the candidates and the excerpts."""

import math

import numpy as np
import pytest

from fxcap.adaptive import ACQUISITIONS, candidate_grid, disagreement, excerpt_pieces, frame_disagreement, spread_picks
from fxcap.adaptive.acquisition import distance_factor, distance_to_nearest, misfit_nearby
from fxcap.adaptive.config import AdaptiveConfig, QuickModelConfig
from fxcap.capture.profiles import LA2A, OD3
from fxcap.errors import CaptureError
from tests.adaptive._toy import tiny_signal


def _committee(spreads, levels=None, samples=4096, members=3):
    """Hand-made predictions: candidate c is a sine at ``levels[c]`` plus member noise of ``spreads[c]`` (relative)."""
    rng = np.random.default_rng(0)
    levels = np.ones(len(spreads)) if levels is None else np.asarray(levels)
    base = np.sin(np.arange(samples) * 0.05)
    out = np.empty((members, len(spreads), samples))
    for c, (spread, level) in enumerate(zip(spreads, levels)):
        out[:, c] = level * (base + spread * rng.standard_normal((members, samples)))
    return out


def test_the_candidate_the_committee_disagrees_on_most_ranks_first():
    scores = disagreement(_committee([0.01, 0.3, 0.05, 0.0]))
    assert list(np.argsort(-scores)) == [1, 2, 0, 3]
    assert scores[3] == pytest.approx(0.0, abs=1e-12)


def test_disagreement_is_relative_to_the_output_power():
    """The same relative spread scores alike at any level; the same absolute spread scores lower when loud."""
    one = _committee([0.1])
    relative = disagreement(np.concatenate([one, 0.01 * one], axis=1))
    assert relative[0] == pytest.approx(relative[1], rel=1e-6)  # (the power floor, 1e-12, aside)
    loud = _committee([0.0, 0.0], levels=[1.0, 0.1])
    loud += 0.01 * np.random.default_rng(1).standard_normal(loud.shape)  # one absolute spread for both
    assert np.argmax(disagreement(loud)) == 1


def test_frame_disagreement_finds_doubt_confined_to_one_passage():
    predictions = _committee([0.02, 0.0])
    predictions[:, 1, 1024:2048] += np.random.default_rng(2).standard_normal((3, 1024))  # one frame in doubt
    assert np.argmax(frame_disagreement(predictions)) == 1
    assert set(ACQUISITIONS) >= {"disagreement", "frame_disagreement"}


def test_acquisitions_refuse_a_committee_of_one():
    with pytest.raises(CaptureError, match="members >= 2"):
        disagreement(np.zeros((1, 3, 10)))


def test_a_batch_starts_at_the_best_and_is_spread_apart():
    positions = np.array([[0.0, 0.0], [0.05, 0.0], [0.0, 0.05], [1.0, 1.0], [-1.0, -1.0], [0.5, 0.5]])
    scores = np.array([1.0, 0.99, 0.98, 0.5, 0.4, 0.1])
    assert spread_picks(scores, positions, 1) == [0]
    picks = spread_picks(scores, positions, 2, pool=3)  # pool: 0, 1, 2, 3, 4, 5 -> the farthest from 0
    assert picks[0] == 0 and picks[1] in (3, 4)
    assert spread_picks(scores, positions, 3, pool=2) == [0, 3, 4]
    scores[3] = np.nan
    assert 3 not in spread_picks(scores, positions, 6, pool=2)
    assert len(spread_picks(scores, positions, 10)) == 5


def test_a_batch_spread_from_the_recorded_settings_does_not_sit_next_to_them():
    positions = np.array([[0.0, 0.0], [0.95, 0.95], [-1.0, 0.0], [0.5, -0.5]])
    scores = np.array([1.0, 0.9, 0.8, 0.7])
    assert spread_picks(scores, positions, 2, pool=2) == [0, 1]  # the farthest from pick 0 alone
    recorded = np.array([[1.0, 1.0]])  # pick 1 would repeat it: the farthest from picks and recorded is 2
    assert spread_picks(scores, positions, 2, pool=2, recorded=recorded) == [0, 2]
    assert spread_picks(scores, positions, 2, pool=2, recorded=np.zeros((0, 2))) == [0, 1]


def test_the_distance_factor_favours_the_widest_gap():
    recorded = np.array([[-1.0, -1.0], [1.0, 1.0]])
    positions = np.array([[-0.9, -1.0], [1.0, -1.0], [0.0, 0.0]])
    # distances 0.1, 2 and sqrt(2): relative to the largest, to the power
    np.testing.assert_allclose(distance_factor(positions, recorded, 2.0), [0.0025, 1.0, 0.5])
    np.testing.assert_allclose(distance_factor(positions, recorded, 1.0), [0.05, 1.0, math.sqrt(0.5)])
    np.testing.assert_array_equal(distance_factor(positions, recorded, 0.0), np.ones(3))
    np.testing.assert_array_equal(distance_factor(positions, np.zeros((0, 2)), 2.0), np.ones(3))
    np.testing.assert_allclose(distance_to_nearest(positions, recorded), [0.1, 2.0, math.sqrt(2)])


def test_misfit_reaches_the_neighbours_of_a_badly_fit_setting():
    candidates = np.array([[0.9, -0.9], [0.0, 0.0], [-0.9, 0.9]])
    recorded = np.array([[1.0, -1.0], [-1.0, 1.0]])
    nearby = misfit_nearby(candidates, recorded, np.array([0.2, 0.01]), radius=0.5)
    assert np.argmax(nearby) == 0 and nearby[1] < 0.01 * nearby[0]


def test_candidates_leave_out_planned_settings_and_fall_back_to_a_hypercube():
    grid = candidate_grid(OD3, ["drive", "tone"], 5)
    assert len(grid) == 25 and grid.positions.min() == -1 and grid.positions.max() == 1
    rest = grid.without(np.array([[-1.0, -1.0], [0.0, 0.0]]))
    assert len(rest) == 23 and {"drive": 0.0, "tone": 0.0} not in rest.settings and {"drive": 5.0, "tone": 5.0} not in rest.settings
    switched = candidate_grid(LA2A, ["peak_reduction", "mode"], 3)
    assert sorted({s["mode"] for s in switched.settings}) == ["compress", "limit"] and len(switched) == 6
    many = candidate_grid(OD3, ["drive", "tone", "level"], 11, max_candidates=50)
    assert len(many) == 50 and sorted(int(s["drive"] / 10 * 50) for s in many.settings) == list(range(50))


def test_excerpts_come_from_trainable_regions_only():
    layout = tiny_signal().layout
    trainable = [(r.start, r.stop) for r in layout.regions if r.trainable]
    for seconds in (0.3, 1.0, 60.0):
        pieces = excerpt_pieces(layout, seconds)
        assert sum(b - a for a, b in pieces) <= max(seconds * layout.sample_rate, sum(b - a for a, b in trainable))
        assert all(any(s <= a and b <= e for s, e in trainable) for a, b in pieces)


@pytest.mark.parametrize("make, match", [
    (lambda: QuickModelConfig(members=1), "at least 2 members"),
    (lambda: QuickModelConfig(steps=0), "steps must be a positive integer"),
    (lambda: AdaptiveConfig(acquisition="random"), "unknown acquisition 'random'"),
    (lambda: AdaptiveConfig(misfit_weight=-1), "misfit_weight"),
    (lambda: AdaptiveConfig(distance_power=-0.5), "distance_power must be 0 or more"),
])
def test_configs_refuse_meaningless_values(make, match):
    with pytest.raises(CaptureError, match=match):
        make()


def test_propose_with_a_distance_power_leaves_the_neighbours_of_recorded_settings(monkeypatch):
    from types import SimpleNamespace

    from fxcap.adaptive import planner

    recorded = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    candidates = np.array([[0.9, 1.0], [-1.0, 0.0], [1.0, -1.0], [-0.9, -1.0]])
    # the committee doubts most right next to two recorded corners
    doubt = np.array([1.0, 0.3, 0.2, 0.9])
    monkeypatch.setattr(planner, "train_committee", lambda data, quick: None)
    monkeypatch.setattr(planner, "committee_predictions", lambda models, data, cands, quick: None)
    monkeypatch.setattr(planner, "committee_misfit", lambda models, data, quick: np.zeros(len(recorded)))
    data = SimpleNamespace(knobs=recorded)
    plain = planner.propose(data, candidates, 2, AdaptiveConfig(misfit_weight=0.0), acquisition=lambda p: doubt)
    assert plain.picks == [0, 3]  # the two near-repeats of recorded corners
    spaced = planner.propose(data, candidates, 2, AdaptiveConfig(misfit_weight=0.0, distance_power=2.0), acquisition=lambda p: doubt)
    # distances 0.1, 1, 1.41, 0.1: the factor (d / 1.41)^2 makes the open corner (1, -1) first, then (-1, 0)
    assert spaced.picks == [2, 1]
    np.testing.assert_allclose(spaced.scores, doubt * distance_factor(candidates, recorded, 2.0))
