"""The adaptive knob plan: record where a quick model of the takes so far is least sure.

``fxcap record --plan adaptive --takes N`` starts from a small space-filling design
(:func:`fxcap.capture.plan.initial_design`), then, batch after batch until N settings are used, trains
a committee of tiny models on the takes recorded so far (:mod:`~fxcap.adaptive.committee`), scores a
dense grid of candidate settings by the committee's disagreement there (:mod:`~fxcap.adaptive.acquisition`)
and records the best-scored ones, spread apart. ``fxcap plan next SESSION --takes K`` does one such
batch for a capture made in several sittings.

This package sits above :mod:`fxcap.capture` and :mod:`fxcap.modeling` (it trains models on capture
sessions): the capture engine knows only the :data:`~fxcap.capture.record.PlanExtender` it is handed.

Modules: :mod:`~fxcap.adaptive.config` (the dataclass configs), :mod:`~fxcap.adaptive.training_set`
(the excerpts learnt from), :mod:`~fxcap.adaptive.committee`, :mod:`~fxcap.adaptive.acquisition`,
:mod:`~fxcap.adaptive.candidates`, :mod:`~fxcap.adaptive.planner` (the entry points). Design notes and
defaults: docs/adaptive_plan.md.
"""

from fxcap.adaptive.acquisition import ACQUISITIONS, Acquisition, disagreement, frame_disagreement, spread_picks
from fxcap.adaptive.candidates import Candidates, candidate_grid
from fxcap.adaptive.committee import committee_predictions, train_committee
from fxcap.adaptive.config import AdaptiveConfig, QuickModelConfig
from fxcap.adaptive.planner import AdaptivePlanner, Proposal, plan_next, propose
from fxcap.adaptive.training_set import TrainingSet, excerpt_pieces

__all__ = [
    "ACQUISITIONS",
    "Acquisition",
    "AdaptiveConfig",
    "AdaptivePlanner",
    "Candidates",
    "Proposal",
    "QuickModelConfig",
    "TrainingSet",
    "candidate_grid",
    "committee_predictions",
    "disagreement",
    "excerpt_pieces",
    "frame_disagreement",
    "plan_next",
    "propose",
    "spread_picks",
    "train_committee",
]
