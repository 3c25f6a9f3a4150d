"""The settings of the adaptive plan: the committee's quick models and how the next settings are chosen.

Defaults and why: docs/adaptive_plan.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fxcap.errors import CaptureError

SCORE_BY = ("committee", "output_change", "leave_one_out")
"""How an adaptive plan scores a candidate setting (:attr:`AdaptiveConfig.score_by`)."""


def _positive(owner: str, name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or not value > 0:
        raise CaptureError(f"{owner}: {name} must be a positive {'number' if kind is float else 'integer'}, not {value!r}")


@dataclass(frozen=True)
class QuickModelConfig:
    """The committee of quick models trained between batches of an adaptive capture.

    Every member is a tiny Concat GRU (:mod:`fxcap.modeling.concat`) trained from its own seed (its
    weights and its windows) on the same excerpt of every recorded take; where they disagree, the
    takes so far do not pin the device down.

    Attributes:
        members: models in the committee (at least 2: one model cannot disagree with itself).
        scheme: the conditioning scheme of the members (:mod:`fxcap.modeling.schemes`).
        hidden_size: the GRU's hidden size.
        knob_hidden: the hidden size of the knobs' MLP (FiLM, StaticHyper; Concat has none).
        steps: optimizer steps per member (Adam, half-cosine learning-rate decay).
        batch_size: windows per step (drawn over every recorded setting).
        window: samples per training window; the first ``window // 8`` are warm-up, left out of the loss.
        lr: Adam's peak learning rate.
        excerpt_seconds: seconds of each take trained on (pieces of the signal's trainable regions:
            sweeps, noise, program).
        score_seconds: seconds of the signal the committee is run on at every candidate setting.
        threads: threads of PyTorch and of the fast path's kernels while training and scoring.
        seed: seed of the first member (member ``m`` uses ``seed + m``).
    """

    members: int = 3
    scheme: str = "film"
    hidden_size: int = 8
    knob_hidden: int = 8
    steps: int = 300
    batch_size: int = 8
    window: int = 2048
    lr: float = 5e-3
    excerpt_seconds: float = 3.0
    score_seconds: float = 0.5
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("members", "hidden_size", "knob_hidden", "steps", "batch_size", "window", "threads"):
            _positive("quick model", name, getattr(self, name))
        for name in ("lr", "excerpt_seconds", "score_seconds"):
            _positive("quick model", name, getattr(self, name), float)
        if self.members < 2:
            raise CaptureError(f"quick model: the committee needs at least 2 members to disagree, not {self.members}")
        if self.window < 16:
            raise CaptureError(f"quick model: window must be at least 16 samples, not {self.window}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuickModelConfig":
        """Read :meth:`to_dict`'s output (unknown keys are left out: a newer fxcap's record)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class AdaptiveConfig:
    """How the next settings of an adaptive plan are chosen.

    Attributes:
        score_by: ``committee``: the disagreement of a committee of quick models trained on the takes
            so far (the fields below); ``output_change``: no model, the settings between the
            neighbouring recorded ones whose outputs differ most
            (:mod:`fxcap.adaptive.output_change`: a batch of ``k`` is the middles of the ``k`` edges
            of most change; ``quick``, ``acquisition``, ``pool``, ``misfit_*`` and ``distance_power``
            unused); ``leave_one_out``: the same edges, each valued by the mean of its two ends'
            leave-one-out error (one quick model per recorded setting, trained on the others:
            :func:`fxcap.adaptive.committee.leave_one_out_error`; ``quick`` used, ``members`` not).
        quick: the committee (:class:`QuickModelConfig`).
        acquisition: the score of a candidate setting from the committee's outputs there, a name of
            :data:`fxcap.adaptive.acquisition.ACQUISITIONS`.
        max_candidates: most candidate settings scored; a candidate grid larger than this (many knobs)
            is replaced by a Latin hypercube of this many points.
        pool: a batch of ``k`` settings is spread over the ``pool * k`` best-scored candidates
            (greedy max-min distance, :func:`fxcap.adaptive.acquisition.spread_picks`).
        misfit_weight: weight of the misfit term added to the acquisition's score: the committee's ESR
            at the recorded settings, spread to the candidates near them
            (:func:`fxcap.adaptive.acquisition.misfit_nearby`; 0: the acquisition alone).
        misfit_radius: how far a recorded setting's misfit reaches (normalised knob units; a knob's
            range is 2).
        distance_power: the scores are multiplied by ``(d / max d)^distance_power``, ``d`` a
            candidate's distance to the nearest recorded setting
            (:func:`fxcap.adaptive.acquisition.distance_factor`), and a batch is spread away from the
            recorded settings too; 0: neither (the scores alone, the batch spread from its own picks).
    """

    quick: QuickModelConfig = field(default_factory=QuickModelConfig)
    score_by: str = "committee"
    acquisition: str = "disagreement"
    max_candidates: int = 256
    pool: int = 2
    misfit_weight: float = 1.0
    misfit_radius: float = 0.5
    distance_power: float = 0.0

    def __post_init__(self) -> None:
        from fxcap.adaptive.acquisition import get_acquisition

        get_acquisition(self.acquisition)  # a one-line error naming the known ones
        if self.score_by not in SCORE_BY:
            raise CaptureError(f"adaptive plan: score_by must be one of {', '.join(SCORE_BY)}, not {self.score_by!r}")
        _positive("adaptive plan", "max_candidates", self.max_candidates)
        _positive("adaptive plan", "pool", self.pool)
        _positive("adaptive plan", "misfit_radius", self.misfit_radius, float)
        for name in ("misfit_weight", "distance_power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise CaptureError(f"adaptive plan: {name} must be 0 or more, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"quick_model": self.quick.to_dict(), "score_by": self.score_by, "acquisition": self.acquisition, "max_candidates": self.max_candidates,
                "pool": self.pool, "misfit_weight": self.misfit_weight, "misfit_radius": self.misfit_radius,
                "distance_power": self.distance_power}
