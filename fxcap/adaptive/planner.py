"""Choosing the next settings: train the committee on what is recorded, score the candidates, spread a batch.

Three entry points, from arrays to the command line:

* :func:`propose`: a training set and candidate positions in, the picks and every candidate's score
  out; nothing read or written (what a benchmark calls in its loop);
* :class:`AdaptivePlanner`: the same for a session (its recorded takes, its plan's knobs and
  candidate grid, the settings already planned left out), returning a
  :class:`~fxcap.capture.plan.PlanBatch`; the capture engine calls it whenever an adaptive plan has
  used its stored settings (``fxcap record --plan adaptive``, ``--resume``);
* :func:`plan_next`: ``fxcap plan next``: the planner's batch appended to a session's plan, for the
  next ``fxcap record --resume`` to record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fxcap.adaptive.acquisition import Acquisition, distance_factor, get_acquisition, misfit_nearby, spread_picks
from fxcap.adaptive.candidates import DEFAULT_STEPS, Candidates, candidate_grid
from fxcap.adaptive.committee import committee_misfit, committee_predictions, leave_one_out_error, train_committee
from fxcap.adaptive.config import SCORE_BY, AdaptiveConfig
from fxcap.adaptive.output_change import change_scores, edge_scores
from fxcap.adaptive.training_set import TrainingSet
from fxcap.capture.plan import ADAPTIVE_KEY, PlanBatch, PlannedTake, append_batch
from fxcap.capture.profiles import DeviceProfile
from fxcap.capture.record import planned_takes, resume_command
from fxcap.capture.session import Session
from fxcap.errors import CaptureError, SessionError
from fxcap.locking import folder_lock

IMPORTED_BACKENDS = ("import", "signaltrain")
"""Sessions made from files: nothing records the settings a plan would add to them."""


@dataclass
class Proposal:
    """What :func:`propose` chose.

    Attributes:
        picks: indexes of the chosen candidates, in the order to record them.
        scores: ``(C,)`` every candidate's score: the acquisition's plus the weighted misfit term
            (times the distance factor with ``AdaptiveConfig.distance_power``); without a committee
            (``score_by`` ``output_change`` or ``leave_one_out``), the edges' values given to their
            middles (:func:`~fxcap.adaptive.output_change.edge_scores`).
        seconds: wall-clock time of training and scoring.
        disagreement: ``(C,)`` the acquisition's part of the scores (None without a committee).
        misfit: ``(S,)`` the committee's ESR at each recorded setting of the training set (with
            ``leave_one_out``: each one's leave-one-out ESR; None by output change).
    """

    picks: list[int]
    scores: np.ndarray
    seconds: float
    disagreement: np.ndarray | None = None
    misfit: np.ndarray | None = None


def propose(data: TrainingSet, candidates: np.ndarray, k: int, config: AdaptiveConfig | None = None,
            acquisition: Acquisition | None = None) -> Proposal:
    """Train the committee on ``data``, score every candidate and pick ``k`` spread apart (with
    ``config.score_by`` ``output_change``: no committee, the middles of the ``k`` neighbour edges
    whose recorded outputs differ most; ``leave_one_out``: of the ``k`` edges whose ends the other
    takes predict worst).

    Args:
        data: the recorded settings' excerpts.
        candidates: ``(C, K)`` normalised positions of the swept knobs (the settings already recorded
            left out by the caller).
        k: settings to pick.
        config: the committee and the choice (default :class:`AdaptiveConfig`).
        acquisition: overrides ``config.acquisition`` (any function of the committee's predictions).
    """
    config = config or AdaptiveConfig()
    started = time.perf_counter()
    if config.score_by in ("output_change", "leave_one_out"):
        misfit = None
        if config.score_by == "output_change":
            scores = change_scores(candidates, data.knobs, data.score_targets)
        else:
            misfit = leave_one_out_error(data, config.quick)
            scores = edge_scores(candidates, data.knobs, (misfit[:, None] + misfit[None, :]) / 2)
        picks = spread_picks(scores, candidates, k, pool=1, recorded=data.knobs)  # one candidate per edge: spread already
        return Proposal(picks, scores, time.perf_counter() - started, misfit=misfit)
    models = train_committee(data, config.quick)
    predictions = committee_predictions(models, data, candidates, config.quick)
    acquired = np.asarray((acquisition or get_acquisition(config.acquisition))(predictions), dtype=np.float64)
    misfit = committee_misfit(models, data, config.quick)
    scores = acquired + config.misfit_weight * misfit_nearby(candidates, data.knobs, misfit, config.misfit_radius)
    if not np.isfinite(scores).all():
        raise CaptureError("the committee's scores are not finite (a quick model diverged); lower the quick model's "
                           "learning rate")
    spaced = config.distance_power > 0
    if spaced:
        scores = scores * distance_factor(candidates, data.knobs, config.distance_power)
    picks = spread_picks(scores, candidates, k, config.pool, recorded=data.knobs if spaced else None)
    return Proposal(picks, scores, time.perf_counter() - started, acquired, misfit)


def swept_knob_names(plan: dict[str, Any], profile: DeviceProfile) -> list[str]:
    """The plan's swept knobs, as the profile names them (a one-line error when it sweeps none)."""
    try:
        names = [profile.knob(str(name)).name for name in plan.get("knobs") or []]
    except ValueError as exc:
        raise SessionError(f"the session's plan names a knob its profile lacks: {exc}") from None
    if not names:
        raise CaptureError("the session's plan sweeps no knob, so there is no setting to choose; record a new session "
                           "with --knob")
    return names


def candidate_steps(plan: dict[str, Any]) -> int | dict[str, int]:
    """The candidate grid's density: an adaptive plan's ``steps``; for a grid plan, its steps doubled less
    one (the grid and the midpoints between its values); otherwise :data:`DEFAULT_STEPS`."""
    steps = plan.get("steps", DEFAULT_STEPS)
    if plan.get("kind") == "adaptive":
        return steps
    if plan.get("kind") == "grid":
        return {k: 2 * int(v) - 1 for k, v in steps.items()} if isinstance(steps, dict) else 2 * int(steps) - 1
    return DEFAULT_STEPS


class AdaptivePlanner:
    """Chooses the next settings of a session's plan (the capture engine's
    :data:`~fxcap.capture.record.PlanExtender`).

    Args:
        config: the committee and the choice; the committee's seed is the plan's ``seed``.
        steps: the candidate grid's values per swept knob (default :func:`candidate_steps` of the plan).
        acquisition: overrides ``config.acquisition``.
        score_by: overrides ``config.score_by``; None: what the session's last batch was chosen by
            (a resumed capture goes on as it began), ``config.score_by`` for its first batch.
    """

    def __init__(self, config: AdaptiveConfig | None = None, steps: int | None = None,
                 acquisition: Acquisition | None = None, score_by: str | None = None) -> None:
        base = config or AdaptiveConfig()
        self.config = base if score_by is None else replace(base, score_by=score_by)
        self.steps = steps
        self.acquisition = acquisition
        self.follow_session = score_by is None
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
            raise CaptureError(f"--steps must be 2 or more (candidate values per swept knob), not {steps!r}")

    def __call__(self, session: Session) -> PlanBatch:
        """The next batch of the session's adaptive plan (its ``batch`` size)."""
        return self.choose(session, int((session.manifest.plan.get(ADAPTIVE_KEY) or {}).get("batch") or 1))

    def candidates(self, session: Session) -> Candidates:
        """The candidate settings of ``session``'s swept knobs that its plan does not hold yet."""
        plan, profile = session.manifest.plan, session.manifest.device
        names = swept_knob_names(plan, profile)
        grid = candidate_grid(profile, names, self.steps or candidate_steps(plan), self.config.max_candidates,
                              int(plan.get("seed", 0)))
        taken = [[profile.normalize(t.knobs)[name] for name in names] for t in planned_takes(session)]
        return grid.without(np.array(taken, dtype=np.float64))

    def choose(self, session: Session, k: int) -> PlanBatch:
        """``k`` new settings for ``session`` (fewer when fewer candidates are left), each complete (the
        unswept knobs as the plan fixed them), with its score and the record of how they were chosen."""
        plan, profile = session.manifest.plan, session.manifest.device
        names = swept_knob_names(plan, profile)
        candidates = self.candidates(session)
        if not len(candidates):
            raise CaptureError(f"every candidate setting of {', '.join(names)} is in the plan already; choose from a denser "
                               "grid (--steps)")
        config = replace(self.config, quick=replace(self.config.quick, seed=int(plan.get("seed", self.config.quick.seed))))
        chosen_by = [b.get("score_by") for b in (plan.get(ADAPTIVE_KEY) or {}).get("batches") or []]
        if self.follow_session and chosen_by and chosen_by[-1] in SCORE_BY:
            config = replace(config, score_by=chosen_by[-1])
        data = TrainingSet.from_session(session, names, config.quick.excerpt_seconds, config.quick.score_seconds)
        if len({tuple(row) for row in data.knobs.tolist()}) < 2:
            raise CaptureError(f"{session.root} holds one recorded setting; the committee needs at least 2 to learn how "
                               "the knobs act")
        proposal = propose(data, candidates.positions, k, config, self.acquisition)
        base = profile.complete(plan.get("fixed") or {})
        settings = [profile.complete({**base, **candidates.settings[i]}) for i in proposal.picks]
        details = {
            "trained_on": data.take_ids,
            "candidates": len(candidates),
            "score_median": float(np.median(proposal.scores)),
            **({} if proposal.misfit is None else
               {"leave_one_out" if config.score_by == "leave_one_out" else "misfit":
                {take: float(value) for take, value in zip(data.take_ids, proposal.misfit)}}),
            "seconds": round(proposal.seconds, 2),
            **config.to_dict(),
        }
        if self.acquisition is not None:
            details["acquisition"] = getattr(self.acquisition, "__name__", repr(self.acquisition))
        return PlanBatch(settings, [float(proposal.scores[i]) for i in proposal.picks], details)


def _unrecorded(session: Session) -> list[PlannedTake]:
    recorded = {t.index for t in session.manifest.takes}
    return [t for t in planned_takes(session) if t.index not in recorded]


def check_extendable(session: Session) -> None:
    """One-line errors for a session ``fxcap plan next`` cannot add settings to: made from files, sweeping
    no knob, or with planned takes not recorded yet."""
    if session.manifest.backend.name in IMPORTED_BACKENDS:
        raise CaptureError(f"{session.root} was imported from files; fxcap plan next adds settings for `fxcap record "
                           "--resume` to record, so it needs a session recorded with fxcap record")
    swept_knob_names(session.manifest.plan, session.manifest.device)
    waiting = _unrecorded(session)
    if waiting:
        ids = ", ".join(t.take_id for t in waiting[:3]) + (", ..." if len(waiting) > 3 else "")
        raise SessionError(f"{session.root} has {len(waiting)} planned takes not recorded yet ({ids}); record them first "
                           f"with `{resume_command(session)}`")


def plan_next(path: str | Path, takes: int, config: AdaptiveConfig | None = None, steps: int | None = None,
              planner: AdaptivePlanner | None = None) -> tuple[Session, list[PlannedTake]]:
    """``fxcap plan next``: choose ``takes`` settings from ``path``'s recorded takes and append them to its
    plan (the session's lock held), so that ``fxcap record --resume`` records them.

    The session is marked ``interrupted`` (its plan holds takes not recorded) and its checks across takes
    are cleared (they are run again when the resumed capture finishes). ``planner`` (default
    ``AdaptivePlanner(config, steps)``) chooses them. Returns the session and the new
    planned takes.
    """
    if isinstance(takes, bool) or not isinstance(takes, int) or takes < 1:
        raise CaptureError(f"--takes must be 1 or more (settings to add), not {takes!r}")
    planner = planner or AdaptivePlanner(config, steps)
    path = Path(path)
    Session.open(path)  # a one-line error for a folder that is not a session, before the lock file is made
    with folder_lock(path, "plan next"):
        session = Session.open(path)
        check_extendable(session)
        batch = planner.choose(session, takes)
        settings = sum(1 for t in session.manifest.plan.get("takes") or [] if not t.get("is_reference"))
        added = append_batch(session.manifest.plan, batch, budget=settings + len(batch.settings))
        session.manifest.status = "interrupted"
        session.manifest.session_checks = None
        session.manifest.notes.append(
            f"fxcap plan next added {len(added)} settings ({added[0].take_id}..{added[-1].take_id}); record them with "
            f"`{resume_command(session)}`"
        )
        session.save()
    return session, added
