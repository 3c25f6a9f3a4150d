"""The adaptive plan end to end on a toy device: where it records, what the manifest keeps, and resume."""

import numpy as np
import pytest

from fxcap.adaptive import AdaptiveConfig, AdaptivePlanner, QuickModelConfig
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.record import record_session, resume_session
from fxcap.capture.session import Session
from fxcap.errors import CaptureError
from tests.adaptive._toy import corner_backend, in_corner, tiny_signal

QUICK = QuickModelConfig(steps=150, window=1024, excerpt_seconds=1.5, score_seconds=0.3)
"""A committee small enough for a test (the default trains 300 steps on 3 s per setting)."""

ROUGH = QuickModelConfig(steps=5, window=512, excerpt_seconds=0.5, score_seconds=0.2)
"""A committee for tests of the mechanics only (its choices are near random)."""


@pytest.fixture(scope="module")
def signal():
    return tiny_signal()


def _plan(takes, batch=3, steps=9):
    config = PlanConfig(knobs=["drive", "tone"], kind="adaptive", takes=takes, steps=steps, batch=batch)
    return plan_to_dict(config, make_plan(corner_backend().profile, config))


def _swept(take):
    return (take["knobs"]["drive"], take["knobs"]["tone"])


def test_the_adaptive_plan_records_most_new_takes_where_the_device_is_hard(tmp_path, signal):
    events = []
    session = record_session(tmp_path / "s", corner_backend(), signal, _plan(11), extend=AdaptivePlanner(AdaptiveConfig(quick=QUICK)),
                             observer=lambda event, data: events.append((event, data)))
    assert session.manifest.status == "complete" and len(session.takes) == 11
    plan = session.manifest.plan
    chosen = [t for t in plan["takes"] if t.get("origin") == "adaptive"]
    assert len(chosen) == 6 and [t["batch"] for t in chosen] == [1, 1, 1, 2, 2, 2]
    share = np.mean([in_corner(t["knobs"]) for t in chosen])
    assert share >= 0.6, [_swept(t) for t in chosen]  # a random or space-filling choice puts 25 % there
    settings = [_swept(t) for t in plan["takes"]]
    assert len(set(settings)) == len(settings)  # never a setting twice
    # the manifest says how each batch was chosen, and the takes recorded match the plan
    assert [b["trained_on"] for b in plan["adaptive"]["batches"]] == [
        [f"take-{i:04d}" for i in range(1, 6)], [f"take-{i:04d}" for i in range(1, 9)]]
    assert all(t["score"] > 0 for t in chosen) and plan["adaptive"]["batches"][0]["quick_model"]["steps"] == 150
    assert [_swept(t.__dict__) for t in session.takes] == settings
    totals = [data["total"] for event, data in events if event == "plan"]
    assert totals[0] == 11 and [e for e, _ in events].count("choosing") == 2


def test_a_batch_is_spread_apart(tmp_path, signal):
    session = record_session(tmp_path / "s", corner_backend(), signal, _plan(9, batch=4),
                             extend=AdaptivePlanner(AdaptiveConfig(quick=ROUGH)))
    batch = np.array([[t["knobs"]["drive"], t["knobs"]["tone"]] for t in session.manifest.plan["takes"] if t.get("batch") == 1])
    gaps = np.linalg.norm(batch[:, None] - batch[None], axis=-1)[np.triu_indices(4, 1)]
    assert gaps.min() > 10 / 8  # no two picks side by side on the 9 x 9 candidate grid


class Spy(AdaptivePlanner):
    """A planner that counts its calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def __call__(self, session):
        self.calls.append(len(session.manifest.takes))
        return super().__call__(session)


def test_resume_records_the_stored_choices_before_choosing_more(tmp_path, signal):
    lost = lambda call, knobs: "lost" if call == 7 else None  # noqa: E731  (take 7: the second of batch 1)
    with pytest.raises(CaptureError, match="--resume"):
        record_session(tmp_path / "s", corner_backend(fault_plan=lost), signal, _plan(10),
                       extend=AdaptivePlanner(AdaptiveConfig(quick=ROUGH)))
    stopped = Session.open(tmp_path / "s")
    stored = [dict(t) for t in stopped.manifest.plan["takes"]]
    assert len(stored) == 8 and len(stopped.takes) == 6  # batch 1 (takes 6-8) stored before take 6 was recorded
    with pytest.raises(CaptureError, match="no planner"):
        resume_session(tmp_path / "s", corner_backend())
    spy = Spy(AdaptiveConfig(quick=ROUGH))
    session = resume_session(tmp_path / "s", corner_backend(), extend=spy)
    assert session.manifest.status == "complete" and len(session.takes) == 10
    assert session.manifest.plan["takes"][:8] == stored  # nothing decided twice
    assert spy.calls == [8]  # one new batch, chosen after the stored takes were recorded
    assert [t.knobs for t in session.takes] == [t["knobs"] for t in session.manifest.plan["takes"]]
