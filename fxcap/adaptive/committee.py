"""The committee: a few tiny Concat GRUs trained quickly on the takes so far, and their outputs at
candidate settings.

Each member differs only by its seed (initial weights and training windows); trained on the same
takes, the members agree where the takes pin the device down and drift apart where they do not.
Training runs in memory (no dataset, no run folder): a few hundred Adam steps on windows of the
excerpt, the loss an ESR per setting (each window's squared error over its own setting's target
power, so a quiet setting counts as much as a loud one).
"""

from __future__ import annotations

import numpy as np
import torch

from fxcap.adaptive.config import QuickModelConfig
from fxcap.adaptive.training_set import TrainingSet
from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.compute_context import compute_context
from fxcap.modeling.inference import run_blocks
from fxcap.modeling.losses import PooledESRLoss
from fxcap.modeling.registry import ModelConfig, build_model
from fxcap.modeling.schedule import cosine_factor

WARMUP_FRACTION = 8
"""The first ``window // 8`` samples of a training window (and of a scored piece) are the model's warm-up:
left out of the loss and of the scores."""

POWER_FLOOR = 1e-10
"""Lowest per-setting target power (full scale 1.0) the loss divides by."""


def _windows(data: TrainingSet, window: int) -> tuple[list[tuple[int, int]], int]:
    """The pieces a window fits in, and the window (cut to the longest piece when every piece is shorter)."""
    longest = max(b - a for a, b in data.pieces)
    window = min(window, longest)
    return [(a, b) for a, b in data.pieces if b - a >= window], window


def train_member(data: TrainingSet, config: QuickModelConfig, member: int) -> ConditionedRNN:
    """Train committee member ``member`` (seed ``config.seed + member``) on ``data``; returns the model
    in eval mode. Raises :class:`ModelError` when the loss stops being finite."""
    seed = config.seed + member
    rng = np.random.default_rng([seed, 104_729])
    model = build_model(ModelConfig(cond=config.scheme, cell="gru", num_knobs=data.knobs.shape[1], hidden_size=config.hidden_size,
                                    film_hidden=(config.knob_hidden,), static_hidden=(config.knob_hidden,), seed=seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = PooledESRLoss()
    pieces, window = _windows(data, config.window)
    skip = window // WARMUP_FRACTION
    inputs = torch.from_numpy(data.inputs)
    targets = torch.from_numpy(data.targets)
    knobs = torch.from_numpy(data.knobs)
    power = torch.from_numpy(np.maximum(np.square(data.targets, dtype=np.float64).mean(axis=1), POWER_FLOOR))
    lengths = np.array([b - a - window + 1 for a, b in pieces], dtype=np.float64)
    model.train()
    for step in range(config.steps):
        rows = rng.integers(data.settings, size=config.batch_size)
        chosen = rng.choice(len(pieces), size=config.batch_size, p=lengths / lengths.sum())
        starts = [pieces[c][0] + int(rng.integers(lengths[c])) for c in chosen]
        index = torch.as_tensor(np.array(starts)[:, None] + np.arange(window)[None, :])
        x, y = inputs[index], targets[torch.as_tensor(rows)[:, None], index]
        pred, _ = model(x, knobs[rows])
        loss = loss_fn(pred[:, skip:], y[:, skip:], power=power[rows])
        if not torch.isfinite(loss):
            raise ModelError(f"a quick model of the committee diverged at step {step + 1}; lower its learning rate "
                             f"(now {config.lr:g})")
        for group in optimizer.param_groups:
            group["lr"] = config.lr * cosine_factor(step, config.steps, 0, 0.1)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return model


def train_committee(data: TrainingSet, config: QuickModelConfig) -> list[ConditionedRNN]:
    """``config.members`` models, each from its own seed, on ``config.threads`` threads."""
    with compute_context(threads=config.threads):
        return [train_member(data, config, member) for member in range(config.members)]


def score_warmup(config: QuickModelConfig, piece: int) -> int:
    """Samples at the start of a scored piece of ``piece`` samples left out (the models' warm-up)."""
    return min(config.window, piece) // WARMUP_FRACTION


def scored_targets(data: TrainingSet, config: QuickModelConfig) -> np.ndarray:
    """``(S, samples)``: the recorded settings' outputs where :func:`committee_predictions` scores."""
    return np.concatenate([data.score_targets[:, a + score_warmup(config, b - a):b] for a, b in data.score_pieces], axis=1)


def committee_misfit(models: list[ConditionedRNN], data: TrainingSet, config: QuickModelConfig) -> np.ndarray:
    """``(S,)``: the committee's mean ESR at each recorded setting, on the score excerpt (how badly the
    quick models fit what they were trained on: large where the device is hard to model)."""
    predictions = committee_predictions(models, data, data.knobs, config).astype(np.float64)
    targets = scored_targets(data, config).astype(np.float64)
    power = np.maximum(np.square(targets).sum(axis=-1), POWER_FLOOR)
    return (np.square(predictions - targets[None]).sum(axis=-1) / power[None]).mean(axis=0)


def committee_predictions(models: list[ConditionedRNN], data: TrainingSet, candidates: np.ndarray,
                          config: QuickModelConfig) -> np.ndarray:
    """Every member's output on the score excerpt at every candidate setting.

    Args:
        models: the committee.
        data: its training set (the score excerpt is ``data.score_input``).
        candidates: ``(C, K)`` normalised knob positions (the swept knobs, in the training set's order).
    Returns:
        ``(members, C, samples)`` float32: each piece run from a zero state, its warm-up
        (``window // 8`` samples, at most an eighth of the piece) left out.
    """
    positions = torch.as_tensor(np.asarray(candidates, dtype=np.float32).reshape(len(candidates), -1))
    if positions.shape[1] != data.knobs.shape[1]:
        raise ModelError(f"candidates have {positions.shape[1]} knobs, the committee {data.knobs.shape[1]}")
    out = []
    with compute_context(threads=config.threads):
        for model in models:
            parts = []
            for a, b in data.score_pieces:
                skip = score_warmup(config, b - a)
                x = torch.from_numpy(data.score_input[a:b]).expand(len(positions), -1).contiguous()
                y, _ = run_blocks(model, x, positions)
                parts.append(y[:, skip:].numpy())
            out.append(np.concatenate(parts, axis=1))
    return np.stack(out).astype(np.float32)


def leave_one_out_error(data: TrainingSet, config: QuickModelConfig) -> np.ndarray:
    """``(S,)``: for each recorded setting, the ESR there (score excerpt) of one quick model (member 0's
    seed) trained on every other recorded setting: how badly the rest of the takes predict it. A
    setting recorded more than once is left out whole, and every row of it gets the same error."""
    positions = [tuple(row) for row in data.knobs.tolist()]
    error = np.zeros(data.settings)
    targets = scored_targets(data, config).astype(np.float64)
    with compute_context(threads=config.threads):
        for position in dict.fromkeys(positions):
            rows = np.array([p == position for p in positions])
            model = train_member(data.subset(~rows), config, 0)
            first = int(np.argmax(rows))
            predicted = committee_predictions([model], data, data.knobs[first:first + 1], config)[0, 0].astype(np.float64)
            target = targets[first]
            error[rows] = np.square(predicted - target).sum() / max(float(np.square(target).sum()), POWER_FLOOR)
    return error
