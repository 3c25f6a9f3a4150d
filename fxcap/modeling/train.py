"""Training: truncated-BPTT windows, L1 + multi-resolution STFT loss, Adam with plateau halving (the
paper's) or a per-step cosine schedule (for fixed step budgets), early stopping on the validation
split, gradient clipping, exact resume.

A run folder holds::

    config.json          TrainConfig + ModelConfig + dataset identity (path, hash, knobs, rate)
    metrics.csv/.json    one row per epoch (train loss, valid loss, lr, seconds, skipped steps)
    best.safetensors     weights with the lowest validation loss
    last.safetensors     weights after the last finished epoch
    state.pt             optimizer, scheduler, RNG and early-stopping state and the weights that go with
                         them (for --resume)

Every file is written atomically at the end of each epoch, ``state.pt`` last (``config.json`` with the
first epoch), so an interrupted run resumes from the last finished epoch and reproduces the
uninterrupted run exactly (same seeds, same windows). How a run starts in a folder that already holds
something (resume, refuse, start afresh) is :mod:`fxcap.modeling.run_folder`'s decision.

The options are :class:`~fxcap.modeling.train_config.TrainConfig`, the learning-rate schedules and the
time budget's clock are in :mod:`fxcap.modeling.schedule`, the loaders in :mod:`fxcap.modeling.training_data`
(all re-exported here); this module holds the loop, the loss and the run folder's files.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from fxcap.dataset import load_dataset_info
from fxcap.errors import ModelError, TrainingDivergedError
from fxcap.io import atomic_write_text
from fxcap.locking import folder_lock, remove_stale
from fxcap.modeling.checkpoint import load_state, load_weights, save_json, save_state, save_weights
from fxcap.modeling.compute_context import ComputeContext, in_compute_context
from fxcap.modeling.linearity import linear_penalty
from fxcap.modeling.losses import CombinedLoss
from fxcap.modeling.registry import ModelConfig, build_model
from fxcap.modeling.run_folder import FRESH_HINT, normalized, plan_run_start, read_run_config
from fxcap.modeling.schedule import TrainingClock, cosine_at, cosine_factor, ramp
from fxcap.modeling.setting_power import SettingPower
from fxcap.modeling.train_config import LR_SCHEDULES, TrainConfig
from fxcap.modeling.training_data import VALID_SEED, TrainingData, validation_loader

__all__ = [  # the training API; the options, schedules and loaders are defined in the modules above
    "LOSS_SKIP_FRACTION",
    "LR_SCHEDULES",
    "VALID_SEED",
    "RunResult",
    "TrainConfig",
    "TrainingClock",
    "cosine_at",
    "cosine_factor",
    "load_run",
    "loss_skip_for",
    "make_loss",
    "train",
    "validation_loader",
]

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """What :func:`train` returns: the run folder, epochs done, best validation loss, one line per
    recovery from a divergence (empty when the run never diverged), and whether it resumed an earlier run."""

    run_dir: Path
    epochs: int
    best_valid_loss: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[str] = field(default_factory=list)
    stop_reason: str = "max_epochs"
    """Why training ended: ``max_epochs`` (all epochs ran), ``early_stop`` or ``time_budget``."""
    resumed: bool = False


LOSS_SKIP_FRACTION = 8
"""``loss_skip=None`` leaves out the first ``window // LOSS_SKIP_FRACTION`` samples of every window."""


def loss_skip_for(config: TrainConfig, window: int) -> int:
    """The samples left out at the start of every ``window``-sample window (see ``TrainConfig.loss_skip``)."""
    return window // LOSS_SKIP_FRACTION if config.loss_skip is None else int(config.loss_skip)


def make_loss(config: TrainConfig, window: int) -> CombinedLoss:
    """The training (and validation) loss that ``config`` describes, for windows of ``window`` samples."""
    skip = loss_skip_for(config, window)
    if skip >= window:
        raise ModelError(f"the loss skip ({skip} samples) must be shorter than the window ({window}); "
                         "lower --loss-skip or use a longer --window")
    return CombinedLoss(
        l1_weight=config.l1_weight, stft_weight=config.stft_weight, pre_emphasis=config.pre_emphasis,
        esr_weight=config.esr_weight, dc_weight=config.dc_weight, esr_emphasis=config.esr_emphasis, skip=skip,
    )


class _Diverged(Exception):
    """Raised inside an epoch when the run diverged; ``reason`` says how (one line)."""

    def __init__(self, reason: str, error: ModelError) -> None:
        super().__init__(reason)
        self.reason, self.error = reason, error


def _diverged(bad_steps: int, epoch: int, lr: float) -> ModelError:
    return TrainingDivergedError(
        f"training diverged: {bad_steps} steps in a row had a non-finite loss or gradient (epoch {epoch}); "
        f"train again with a lower learning rate (now {lr:g}, e.g. --lr {lr / 3:.2g}); the best weights so far stay in "
        "best.safetensors"
    )


def _evaluate_loss(model: torch.nn.Module, loader, loss_fn: torch.nn.Module, limit: int | None,
                   power: SettingPower | None = None) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y, knobs in loader:
            pred, _ = model(x, knobs)
            total += float(loss_fn(pred, y, power=power.lookup(knobs) if power is not None else None)) * x.shape[0]
            count += x.shape[0]
            if limit is not None and count >= limit:
                break
    model.train()
    if count == 0:
        raise ModelError("the validation split is empty; rebuild the dataset with a non-zero valid fraction")
    return total / count


def _snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Copies of the model, optimizer and scheduler states (what a recovery from a divergence goes back to)."""
    return copy.deepcopy({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})


def _restore(snapshot: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(copy.deepcopy(snapshot["optimizer"]))
    scheduler.load_state_dict(copy.deepcopy(snapshot["scheduler"]))


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    save_json(run_dir / "metrics.json", history)
    buffer = io.StringIO()
    fieldnames = list(dict.fromkeys(key for row in history for key in row))  # rows of an older version lack new keys
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "metrics.csv", buffer.getvalue())


@in_compute_context(lambda config=None, **_: ComputeContext(threads=(config or TrainConfig()).threads or None))
def train(
    dataset_dir: str | Path,
    model_config: ModelConfig,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    *,
    force: bool = False,
    cache_dir: str | Path | None = None,
    cache_max_bytes: int | str | None = None,
) -> RunResult:
    """Train one model on ``dataset_dir`` into ``run_dir`` (see the module docstring).

    ``dataset_dir`` is a local folder or a URI (``s3://...``); ``cache_dir`` and ``cache_max_bytes``
    go to :func:`fxcap.dataset.make_dataloader` (where and how much audio is cached locally).
    ``model_config.num_knobs`` must equal the dataset's knob count. ``on_epoch(row)`` is called
    after every epoch, ``on_step(step, steps_per_epoch, loss)`` after every optimizer step.

    Everything that can be checked (settings, knobs, window against the segments, batch size, the
    splits, the shards' sha256) is checked before the run folder is touched. The run then holds the
    folder's lock (:mod:`fxcap.locking`) and starts as :func:`fxcap.modeling.run_folder.plan_run_start`
    decides: ``resume`` continues the same run (same dataset and settings, else refused), ``force``
    starts afresh, a folder that never finished an epoch is started afresh (with a note).
    ``config.json`` is written with the first finished epoch, so it never describes a run that did not happen.
    """
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    info = load_dataset_info(dataset_dir)
    config = config.for_device(info.device_kind)  # what the config leaves to the device's kind, decided (and so stored)
    if config.even_penalty and not model_config.even_gain:  # before the run folder is touched
        raise ModelError("even_penalty needs a model with an even gain: train with --even-gain (or set even_penalty to 0)")
    if model_config.num_knobs != len(info.knob_names):
        raise ModelError(
            f"the model expects {model_config.num_knobs} knobs but the dataset has {len(info.knob_names)} "
            f"({', '.join(info.knob_names)})"
        )
    window = int(config.window or info.window)
    data = TrainingData(dataset_dir, info, window, config, {"cache_dir": cache_dir, "cache_max_bytes": cache_max_bytes},
                        make_loss(config, window), make_loss(replace(config, loss_skip=0), window))
    with folder_lock(run_dir, "train"):
        remove_stale(run_dir)
        start = plan_run_start(run_dir, model_config.to_dict(), config.to_dict(), info.dataset_hash, resume=resume, force=force)
        if start.note:
            log.warning("note: %s", start.note)
        return _train(data, model_config, run_dir, config, start.resume, on_epoch, on_step)


def _resume_weights(run_dir: Path, state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights that belong to ``state``: its own copy, or ``last.safetensors`` when the epochs agree.

    A run stopped between writing ``last.safetensors`` and ``state.pt`` leaves weights one epoch ahead of
    the optimizer state; the state's own copy of the weights (written with it, atomically) is then used.
    """
    epoch = int(state["epoch"])
    try:
        _, meta = load_weights(run_dir / "last.safetensors")
        last_epoch = meta.get("epoch")
    except ModelError:
        last_epoch = None
    if "model" in state:
        if last_epoch != epoch:
            log.warning("note: %s/last.safetensors is from epoch %s but state.pt from epoch %d (the run stopped between "
                        "the two writes); resuming from epoch %d with the weights saved in state.pt", run_dir, last_epoch,
                        epoch, epoch)
        return state["model"]
    if last_epoch != epoch:
        raise ModelError(f"{run_dir}/last.safetensors is from epoch {last_epoch} but state.pt from epoch {epoch} (the run "
                         "stopped between the two writes), so they cannot be resumed together; " + FRESH_HINT)
    return load_weights(run_dir / "last.safetensors")[0]


def _train(data: TrainingData, model_config: ModelConfig, run_dir: Path, config: TrainConfig, resume: bool,
           on_epoch: EpochCallback | None, on_step: Callable[[int, int, float], None] | None) -> RunResult:
    """The training loop of :func:`train`, in a run folder it holds the lock of."""
    state_path = run_dir / "state.pt"
    loss_fn = data.loss_fn
    model = build_model(model_config if model_config.seed is not None else replace(model_config, seed=config.seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    lr_scale = [1.0]  # lowered by each recovery from a divergence (the cosine schedule reads it)
    recoveries: list[str] = []
    clock = TrainingClock(config.time_budget_s, now=lambda: time.perf_counter())  # this module's clock (tests replace it)
    cosine = config.lr_schedule == "cosine"
    if cosine:
        total_steps = max(1, data.steps_per_epoch * config.max_epochs)

        def lr_factor(step: int) -> float:
            factor = cosine_factor(step, total_steps, config.warmup_steps, config.lr_min_factor)
            if clock.budget_s and step >= config.warmup_steps:
                factor = min(factor, cosine_at(clock.fraction(), config.lr_min_factor))
            return lr_scale[0] * factor

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.lr_factor, patience=config.lr_patience)

    history: list[dict[str, Any]] = []
    best, since_best, start_epoch = math.inf, 0, 0
    run_config = data.run_config(model_config, model)
    pending_config: dict[str, Any] | None = run_config  # written with the first finished epoch
    if resume:
        state = load_state(state_path)
        model.load_state_dict(_resume_weights(run_dir, state))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        best, since_best, start_epoch = float(state["best"]), int(state["since_best"]), int(state["epoch"])
        history = list(state["history"])
        lr_scale[0] = float(state.get("lr_scale", 1.0))
        recoveries = list(state.get("recoveries", []))
        clock.spent_s = float(state.get("train_seconds", sum(row.get("seconds", 0.0) for row in history)))
        if normalized(read_run_config(run_dir)) == normalized(run_config):
            pending_config = None  # unchanged (a longer run rewrites its max_epochs)

    train_power, valid_power = data.train_power, data.valid_power
    skip = loss_skip_for(config, data.window)
    stopped_early = since_best >= config.early_stop_patience
    epoch = start_epoch

    def run_epoch(epoch: int) -> tuple[float, int, int, float]:
        """Train one epoch and score it: (summed train loss, finite steps, skipped steps, valid loss)."""
        train_loader = data.train_loader(epoch)
        model.train()
        total, steps, counted, skipped, bad_in_a_row = 0.0, 0, 0, 0, 0
        n_steps = len(train_loader) * config.tbptt_windows
        for chunk_x, chunk_y, chunk_knobs in train_loader:
            state = None  # each chunk of tbptt_windows consecutive windows starts from a zero state
            for x, y, knobs, first in data.windows_of(chunk_x, chunk_y, chunk_knobs):
                power = train_power.lookup(knobs) if train_power is not None else None
                pred, state = model(x, knobs, state)
                state = state.detach()  # truncated back-propagation: the gradient stops at the window's start
                window_loss = loss_fn if first else data.carried_loss_fn  # a carried state needs no warm-up skip
                loss = window_loss(pred, y, stft_scale=ramp(epoch * n_steps + steps, config.stft_warmup_steps), power=power)
                if config.even_penalty:
                    loss = loss + config.even_penalty * model.even_log_share(y)
                if config.linear_penalty and first:  # after even_log_share: the linearisation runs replace its even part
                    loss = loss + config.linear_penalty * linear_penalty(model, data.train_linearity, x, knobs, pred, y, skip,
                                                                     config.linear_bands, config.linearisation)
                optimizer.zero_grad(set_to_none=True)
                value = loss.item()
                finite = math.isfinite(value)
                if finite:
                    loss.backward()
                    finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)))
                if finite:
                    optimizer.step()
                    total += value
                    counted += 1
                    bad_in_a_row = 0
                else:  # exploding gradients overflowed: skip this step, as mixed-precision loss scaling does
                    optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    bad_in_a_row += 1
                    if bad_in_a_row >= config.max_skipped_steps:
                        raise _Diverged(f"{bad_in_a_row} steps in a row had a non-finite loss or gradient",
                                        _diverged(bad_in_a_row, epoch + 1, optimizer.param_groups[0]["lr"]))
                if cosine:
                    scheduler.step()
                steps += 1
                if on_step is not None:
                    on_step(steps, n_steps, value)
        if steps == 0:
            raise ModelError("the training split gave no windows; use a shorter --window or a longer capture")
        if counted == 0:
            raise _Diverged("no step had a finite loss", _diverged(skipped, epoch + 1, optimizer.param_groups[0]["lr"]))
        valid = _evaluate_loss(model, data.valid_loader(), loss_fn, config.valid_windows,
                               valid_power)
        if not math.isfinite(valid):
            raise _Diverged("the validation loss was not finite", TrainingDivergedError(
                f"the validation loss is not finite after epoch {epoch + 1}: the model diverged; lower the learning "
                f"rate (now {optimizer.param_groups[0]['lr']:g}) and start again (the last finite epoch is kept in {run_dir})"
            ))
        return total, counted, skipped, valid

    good = _snapshot(model, optimizer, scheduler)
    recovered_now = 0
    while epoch < config.max_epochs and not stopped_early and not clock.exhausted():
        clock.start_epoch()
        try:
            total, counted, skipped, valid = run_epoch(epoch)
        except _Diverged as event:
            clock.end_epoch()
            if len(recoveries) >= config.max_recoveries:
                raise event.error from None
            _restore(good, model, optimizer, scheduler)
            lr_scale[0] *= config.recovery_lr_factor
            for group, base in zip(optimizer.param_groups, getattr(scheduler, "base_lrs", [None] * len(optimizer.param_groups))):
                group["lr"] = (base * scheduler.lr_lambdas[0](scheduler.last_epoch) if cosine else group["lr"] * config.recovery_lr_factor)
            recoveries.append(
                f"epoch {epoch + 1} diverged ({event.reason}); went back to the weights after epoch {epoch} and lowered the "
                f"learning rate {1 / config.recovery_lr_factor:.3g}x (now {optimizer.param_groups[0]['lr']:.3g})"
            )
            recovered_now += 1
            continue
        if not cosine:
            scheduler.step(valid)
        epoch += 1
        improved = valid < best
        if improved:
            best, since_best = valid, 0
            save_weights(run_dir / "best.safetensors", model, {"epoch": epoch, "valid_loss": valid})
        else:
            since_best += 1
        stopped_early = since_best >= config.early_stop_patience
        row = {
            "epoch": epoch,
            "train_loss": total / counted,
            "valid_loss": valid,
            "best_valid_loss": best,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(clock.end_epoch(), 3),
            "skipped_steps": skipped,
            "recoveries": recovered_now,
        }
        recovered_now = 0
        history.append(row)
        save_weights(run_dir / "last.safetensors", model, {"epoch": epoch, "valid_loss": valid})
        _write_history(run_dir, history)
        if pending_config is not None:
            save_json(run_dir / "config.json", pending_config)
            pending_config = None
        save_state(  # last: a run folder with a state.pt has finished an epoch (run_folder.plan_run_start)
            state_path,
            {
                "model": model.state_dict(),  # the weights that go with this state, whatever last.safetensors holds
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "best": best,
                "since_best": since_best,
                "epoch": epoch,
                "history": history,
                "lr_scale": lr_scale[0],
                "recoveries": recoveries,
                "train_seconds": clock.spent_s,
            },
        )
        good = _snapshot(model, optimizer, scheduler)
        if on_epoch is not None:
            on_epoch(row)
    if stopped_early:
        stop_reason = "early_stop"
    elif clock.exhausted() and epoch < config.max_epochs:
        stop_reason = "time_budget"
    else:
        stop_reason = "max_epochs"
    return RunResult(run_dir=run_dir, epochs=epoch, best_valid_loss=best, stopped_early=stopped_early, history=history,
                     recoveries=recoveries, stop_reason=stop_reason, resumed=resume)


def load_run(run_dir: str | Path, which: str = "best") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of a run folder (``which``: ``best`` or ``last``) and its config.json."""
    import json

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{run_dir} is not a training run (no config.json); train one with `fxcap train`")
    try:
        run_config = json.loads(config_path.read_text(encoding="utf-8"))
        model_config = ModelConfig.from_dict(run_config["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{config_path} is corrupt ({exc!r})") from None
    model = build_model(model_config)
    weights, _ = load_weights(run_dir / f"{which}.safetensors")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ModelError(f"{run_dir}/{which}.safetensors does not fit the model in config.json: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, run_config

