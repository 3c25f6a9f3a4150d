"""What the committee learns from: a few seconds of the signal and of every recorded take.

The excerpt is made of pieces of the signal's trainable regions (sweeps, noise, program; never the
markers, the calibration tone or the validation copies), spread over them so a few seconds still hold
every kind of material. The committee is scored on a shorter excerpt chosen the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from fxcap.capture.layout import SignalLayout
from fxcap.capture.session import Session
from fxcap.errors import CaptureError

MIN_PIECE_SECONDS = 0.1
"""Shortest piece of a region an excerpt takes (s): shorter pieces would be mostly the models' warm-up."""

Pieces = list[tuple[int, int]]
"""``[start, stop)`` sample ranges."""


def excerpt_pieces(layout: SignalLayout, seconds: float) -> Pieces:
    """Pieces of the trainable regions adding up to at most ``seconds`` of the signal.

    Every trainable region when they are shorter than ``seconds`` in all; otherwise ``n`` regions spread
    evenly over the signal's list (``n`` as many pieces of :data:`MIN_PIECE_SECONDS` as fit), each cut
    to its centred share ``seconds / n`` (a region shorter than its share is taken whole).
    """
    regions = [r for r in layout.regions if r.trainable and r.length > 0]
    if not regions:
        raise CaptureError("the session's signal has no trainable region (sweeps, noise, program) to learn from")
    want = int(round(seconds * layout.sample_rate))
    if want >= sum(r.length for r in regions):
        return [(r.start, r.stop) for r in regions]
    count = int(min(len(regions), max(1, want // max(1, int(MIN_PIECE_SECONDS * layout.sample_rate)))))
    chosen = sorted({int(i) for i in np.linspace(0, len(regions) - 1, count).round()})
    share = want // len(chosen)
    pieces = []
    for i in chosen:
        region = regions[i]
        length = min(region.length, share)
        start = region.start + (region.length - length) // 2
        pieces.append((start, start + length))
    return pieces


def _cut(audio: np.ndarray, pieces: Pieces) -> np.ndarray:
    return np.concatenate([np.asarray(audio[a:b], dtype=np.float32) for a, b in pieces])


def _offsets(pieces: Pieces) -> Pieces:
    """The pieces' ranges inside their concatenation."""
    out, at = [], 0
    for a, b in pieces:
        out.append((at, at + b - a))
        at += b - a
    return out


@dataclass
class TrainingSet:
    """The committee's data, in memory.

    Attributes:
        inputs: ``(n,)`` float32, the excerpt of the played signal (pieces laid end to end).
        targets: ``(S, n)`` float32, each recorded setting's aligned output over the same excerpt.
        knobs: ``(S, K)`` float32, each setting's swept knobs, normalised to [-1, 1].
        pieces: the pieces' ``[start, stop)`` ranges in ``inputs`` (a training window never crosses one).
        score_input: ``(m,)`` float32, the excerpt the committee is scored on.
        score_pieces: its pieces' ranges in ``score_input`` (each run from a zero state).
        score_targets: ``(S, m)`` float32, each setting's output over the score excerpt (the committee's
            misfit at the recorded settings is measured there).
        sample_rate: Hz.
        take_ids: the takes the targets come from (what the manifest records as "trained on").
    """

    inputs: np.ndarray
    targets: np.ndarray
    knobs: np.ndarray
    pieces: Pieces
    score_input: np.ndarray
    score_pieces: Pieces
    score_targets: np.ndarray
    sample_rate: int
    take_ids: list[str]

    def __post_init__(self) -> None:
        self.targets = np.atleast_2d(np.asarray(self.targets, dtype=np.float32))
        self.knobs = np.asarray(self.knobs, dtype=np.float32).reshape(len(self.targets), -1)
        if self.targets.shape[1] != len(self.inputs):
            raise CaptureError(f"the targets have {self.targets.shape[1]} samples but the input {len(self.inputs)}")
        if len(self.targets) < 1:
            raise CaptureError("the committee needs at least one recorded setting to learn from")

    @property
    def settings(self) -> int:
        return len(self.targets)

    def subset(self, rows: np.ndarray) -> "TrainingSet":
        """The same excerpts with only the recorded settings ``rows`` (indexes or a boolean mask)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=int)
        return TrainingSet(inputs=self.inputs, targets=self.targets[rows], knobs=self.knobs[rows], pieces=self.pieces,
                           score_input=self.score_input, score_pieces=self.score_pieces,
                           score_targets=self.score_targets[rows], sample_rate=self.sample_rate,
                           take_ids=[self.take_ids[i] for i in rows])

    @classmethod
    def from_signal(cls, audio: np.ndarray, layout: SignalLayout, outputs: Iterable[np.ndarray], knobs: np.ndarray,
                    excerpt_seconds: float, score_seconds: float, take_ids: list[str] | None = None) -> "TrainingSet":
        """From a whole signal, its layout and each setting's whole aligned output (read one at a time:
        only the excerpt is kept), ``knobs`` ``(S, K)`` normalised. What a benchmark calls with a
        virtual device's outputs."""
        pieces = excerpt_pieces(layout, excerpt_seconds)
        score = excerpt_pieces(layout, score_seconds)
        cuts = [(_cut(output, pieces), _cut(output, score)) for output in outputs]
        ids = take_ids if take_ids is not None else [f"setting-{i + 1}" for i in range(len(cuts))]
        return cls(inputs=_cut(audio, pieces), targets=np.stack([c[0] for c in cuts]), knobs=knobs, pieces=_offsets(pieces),
                   score_input=_cut(audio, score), score_pieces=_offsets(score),
                   score_targets=np.stack([c[1] for c in cuts]), sample_rate=layout.sample_rate, take_ids=ids)

    @classmethod
    def from_session(cls, session: Session, knob_names: list[str], excerpt_seconds: float, score_seconds: float) -> "TrainingSet":
        """Every non-reference take of ``session`` (its kept takes all passed their checks), with the
        normalised values of ``knob_names``. Several takes of one setting are all kept."""
        takes = [t for t in session.manifest.takes if not t.is_reference]
        if not takes:
            raise CaptureError(f"{session.root} holds no recorded setting yet to learn from")
        knobs = np.array([[t.knobs_normalized[name] for name in knob_names] for t in takes], dtype=np.float32)
        return cls.from_signal(session.input_audio(), session.layout, (session.take_output(t) for t in takes), knobs,
                               excerpt_seconds, score_seconds, [t.take_id for t in takes])
