"""The model-free doubt: how different neighbouring recorded settings sound, and where that sends the next takes."""

import numpy as np
import pytest

from fxcap.adaptive import AdaptiveConfig, AdaptivePlanner, TrainingSet, propose
from fxcap.adaptive.output_change import change_scores, neighbour_pairs, output_dissimilarity
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.record import record_session, resume_session
from fxcap.capture.session import Session
from fxcap.errors import CaptureError
from tests.adaptive._toy import corner_backend, in_corner, tiny_signal

SQUARE = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0]], dtype=float)
"""The initial design of two knobs: corners and centre."""


def test_dissimilarity_of_known_pairs():
    x = np.random.default_rng(0).standard_normal((2, 48000))
    d = output_dissimilarity(np.stack([x[0], x[0], -x[0], 0.5 * x[0], x[1]]))
    assert d.shape == (5, 5) and np.allclose(d, d.T) and np.allclose(np.diag(d), 0)
    assert d[0, 1] == pytest.approx(0, abs=1e-12)
    assert d[0, 2] == pytest.approx(4)  # the negative: (2a)^2 over the mean power a^2
    assert d[0, 3] == pytest.approx(2 * 0.25 / 1.25)  # half the level: (a/2)^2 / ((a^2 + a^2/4) / 2)
    assert d[0, 4] == pytest.approx(2, abs=0.03)  # two independent noises of equal power
    assert output_dissimilarity(np.zeros((2, 10)))[0, 1] == 0  # silence against silence


def test_neighbours_are_the_gabriel_graph():
    assert neighbour_pairs(SQUARE) == [(0, 1), (0, 2), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]  # no diagonal
    line = np.array([[0.0], [1.0], [-1.0], [0.5]])
    assert neighbour_pairs(line) == [(0, 2), (0, 3), (1, 3)]  # only adjacent values
    twice = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    assert neighbour_pairs(twice) == [(0, 2)]  # a setting recorded twice counts once


def test_the_middle_of_the_edge_of_most_change_scores_highest():
    x = np.random.default_rng(1).standard_normal(4000)
    outputs = np.stack([x, x, x, np.tanh(4 * x), x])  # only the corner (1, 1) sounds different
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9)), -1).reshape(-1, 2)
    scores = change_scores(grid, SQUARE, outputs)
    change = output_dissimilarity(outputs)[3, 4]
    best = grid[np.flatnonzero(scores == scores.max())]
    assert {tuple(p) for p in best} == {(0.5, 0.5), (1.0, 0.0), (0.0, 1.0)}  # the middles of (1, 1)'s three edges
    assert scores.max() == pytest.approx(change)
    far = [i for i, p in enumerate(grid) if p[0] < 0 and p[1] < 0]
    assert np.all(scores[far] == 0)  # the edges there join settings that sound alike


def test_propose_by_output_change_trains_no_model(monkeypatch):
    from fxcap.adaptive import planner

    monkeypatch.setattr(planner, "train_committee", lambda *a, **k: pytest.fail("a committee was trained"))
    x = np.random.default_rng(2).standard_normal(2000).astype(np.float32)
    targets = np.stack([x, x, x, np.tanh(4 * x), x])
    data = TrainingSet(inputs=x, targets=targets, knobs=SQUARE, pieces=[(0, 2000)], score_input=x[:500],
                       score_pieces=[(0, 500)], score_targets=targets[:, :500], sample_rate=44100, take_ids=list("abcde"))
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9)), -1).reshape(-1, 2)
    grid = grid[np.linalg.norm(grid[:, None] - SQUARE[None], axis=-1).min(axis=1) > 0]
    proposal = propose(data, grid, 3, AdaptiveConfig(score_by="output_change"))
    assert proposal.misfit is None and proposal.disagreement is None
    picked = {tuple(grid[i]) for i in proposal.picks}
    assert picked == {(0.5, 0.5), (1.0, 0.0), (0.0, 1.0)}


def test_config_refuses_an_unknown_score():
    with pytest.raises(CaptureError, match="score_by must be one of committee, output_change, leave_one_out"):
        AdaptiveConfig(score_by="guess")


def _plan(takes, batch=3):
    config = PlanConfig(knobs=["drive", "tone"], kind="adaptive", takes=takes, steps=9, batch=batch)
    return plan_to_dict(config, make_plan(corner_backend().profile, config))


def test_a_capture_scored_by_output_change_records_where_the_device_changes_and_resumes_so(tmp_path):
    signal = tiny_signal()
    lost = lambda call, knobs: "lost" if call == 10 else None  # noqa: E731  (take 9: the first of batch 2)
    with pytest.raises(CaptureError, match="--resume"):
        record_session(tmp_path / "s", corner_backend(fault_plan=lost), signal, _plan(11),
                       extend=AdaptivePlanner(score_by="output_change"))
    # resumed with a planner left to follow the session: batch 2 is chosen by the output change too
    session = resume_session(tmp_path / "s", corner_backend(), extend=AdaptivePlanner())
    plan = session.manifest.plan
    assert session.manifest.status == "complete" and len(session.takes) == 11
    assert [b["score_by"] for b in plan["adaptive"]["batches"]] == ["output_change", "output_change"]
    assert "misfit" not in plan["adaptive"]["batches"][0]
    chosen = [t for t in plan["takes"] if t.get("origin") == "adaptive"]
    assert len(chosen) == 6 and np.mean([in_corner(t["knobs"]) for t in chosen]) >= 0.6  # 25 % by chance
    assert Session.open(tmp_path / "s").manifest.status == "complete"


def test_leave_one_out_error_is_large_where_the_others_do_not_predict_a_setting():
    from fxcap.adaptive.committee import leave_one_out_error
    from fxcap.adaptive.config import QuickModelConfig

    rng = np.random.default_rng(4)
    x = (0.3 * rng.standard_normal(6000)).astype(np.float32)
    outputs = np.stack([0.5 * x, 0.5 * x, 0.5 * x, np.tanh(6 * x) / 2, 0.5 * x])  # only (1, 1) saturates
    data = TrainingSet(inputs=x, targets=outputs, knobs=SQUARE, pieces=[(0, 6000)], score_input=x[:2000],
                       score_pieces=[(0, 2000)], score_targets=outputs[:, :2000], sample_rate=44100, take_ids=list("abcde"))
    quick = QuickModelConfig(steps=60, window=512, hidden_size=4, knob_hidden=4)
    error = leave_one_out_error(data, quick)
    assert error.shape == (5,) and np.argmax(error) == 3  # nothing else recorded saturates
    assert error[3] > 3 * np.median(error)
    twice = data.subset(np.array([0, 1, 2, 3, 4, 4]))  # the centre recorded twice: left out whole, one error for both
    again = leave_one_out_error(twice, quick)
    assert again[4] == again[5]
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9)), -1).reshape(-1, 2)
    grid = grid[np.linalg.norm(grid[:, None] - SQUARE[None], axis=-1).min(axis=1) > 0]
    proposal = propose(data, grid, 3, AdaptiveConfig(quick=quick, score_by="leave_one_out"))
    assert {tuple(grid[i]) for i in proposal.picks} == {(0.5, 0.5), (1.0, 0.0), (0.0, 1.0)}  # the edges of (1, 1)
    np.testing.assert_allclose(proposal.misfit, error)
