"""Training: truncated-BPTT windows, L1 + multi-resolution STFT loss, Adam with plateau halving,
early stopping on the validation split, gradient clipping, exact resume.

A run folder holds::

    config.json          TrainConfig + ModelConfig + dataset identity (path, hash, knobs, rate)
    metrics.csv/.json    one row per epoch (train loss, valid loss, lr, seconds)
    best.safetensors     weights with the lowest validation loss
    last.safetensors     weights after the last finished epoch
    state.pt             optimizer, scheduler, RNG and early-stopping state (for --resume)

Every file is written atomically at the end of each epoch, so an interrupted run resumes from the
last finished epoch and reproduces the uninterrupted run exactly (same seeds, same windows).
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from fxcap.dataset import load_dataset_info, make_dataloader
from fxcap.dataset.remote import location_text
from fxcap.errors import ModelError
from fxcap.io import atomic_write_text
from fxcap.modeling.checkpoint import load_state, load_weights, save_json, save_state, save_weights
from fxcap.modeling.losses import CombinedLoss
from fxcap.modeling.registry import ModelConfig, build_model

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    """Training options (defaults follow the paper's recipe, scaled for a CPU where noted).

    Attributes:
        window: BPTT window in samples (None: the dataset's default, 2048 / 8192).
        batch_size: windows per step (paper: 80).
        steps_per_epoch: optimizer steps per epoch (random windows); None = one pass over the
            training audio divided by ``window * batch_size``.
        max_epochs: upper bound on epochs.
        lr: Adam learning rate.
        lr_patience / lr_factor: halve the rate when the validation loss has not improved for
            ``lr_patience`` epochs.
        early_stop_patience: stop when the validation loss has not improved for this many epochs.
        grad_clip: max gradient norm.
        l1_weight / stft_weight / pre_emphasis: the loss (released code: 1, 0.1, on).
        valid_windows: cap on validation windows per epoch (None: all).
        seed: seeds initialisation and window sampling.
        threads: torch intra-op threads (0: leave torch's default). One thread is the default: a
            32-unit RNN gains little from more, and OpenMP threads spin badly when the cores are
            shared (measured 30x slower steps with 2 threads on 2 busy cores).
    """

    window: int | None = None
    batch_size: int = 16
    steps_per_epoch: int | None = None
    max_epochs: int = 50
    lr: float = 1e-3
    lr_patience: int = 2
    lr_factor: float = 0.5
    early_stop_patience: int = 6
    grad_clip: float = 3.0
    l1_weight: float = 1.0
    stft_weight: float = 0.1
    pre_emphasis: bool = True
    valid_windows: int | None = 64
    seed: int = 0
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """What :func:`train` returns: the run folder, epochs done, best validation loss."""

    run_dir: Path
    epochs: int
    best_valid_loss: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def _evaluate_loss(model: torch.nn.Module, loader, loss_fn: torch.nn.Module, limit: int | None) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y, knobs in loader:
            pred, _ = model(x, knobs)
            total += float(loss_fn(pred, y)) * x.shape[0]
            count += x.shape[0]
            if limit is not None and count >= limit:
                break
    model.train()
    if count == 0:
        raise ModelError("the validation split is empty; rebuild the dataset with a non-zero valid fraction")
    return total / count


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    save_json(run_dir / "metrics.json", history)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0].keys()))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "metrics.csv", buffer.getvalue())


def train(
    dataset_dir: str | Path,
    model_config: ModelConfig,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    *,
    cache_dir: str | Path | None = None,
    cache_max_bytes: int | str | None = None,
) -> RunResult:
    """Train one model on ``dataset_dir`` into ``run_dir`` (see the module docstring).

    ``dataset_dir`` is a local folder or a URI (``s3://...``); ``cache_dir`` and ``cache_max_bytes``
    go to :func:`fxcap.dataset.make_dataloader` (where and how much audio is cached locally).
    ``model_config.num_knobs`` must equal the dataset's knob count. ``on_epoch(row)`` is called
    after every epoch, ``on_step(step, steps_per_epoch, loss)`` after every optimizer step.
    """
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    info = load_dataset_info(dataset_dir)
    if model_config.num_knobs != len(info.knob_names):
        raise ModelError(
            f"the model expects {model_config.num_knobs} knobs but the dataset has {len(info.knob_names)} "
            f"({', '.join(info.knob_names)})"
        )
    window = int(config.window or info.window)
    if config.threads:
        torch.set_num_threads(config.threads)

    state_path = run_dir / "state.pt"
    if resume and not state_path.exists():
        raise ModelError(f"{run_dir} has no state.pt to resume from; start it without --resume")
    if not resume and (run_dir / "config.json").exists():
        raise ModelError(f"{run_dir} already holds a run; use --resume to continue it or choose another run folder")
    run_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    model = build_model(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.lr_factor, patience=config.lr_patience)
    loss_fn = CombinedLoss(l1_weight=config.l1_weight, stft_weight=config.stft_weight, pre_emphasis=config.pre_emphasis)

    history: list[dict[str, Any]] = []
    best, since_best, start_epoch = math.inf, 0, 0
    if resume:
        state = load_state(state_path)
        weights, _ = load_weights(run_dir / "last.safetensors")
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        best, since_best, start_epoch = float(state["best"]), int(state["since_best"]), int(state["epoch"])
        history = list(state["history"])
    else:
        save_json(
            run_dir / "config.json",
            {
                "model": model_config.to_dict(),
                "train": config.to_dict(),
                "dataset": {
                    "path": location_text(dataset_dir),
                    "hash": info.dataset_hash,
                    "device": info.device,
                    "knob_names": list(info.knob_names),
                    "knobs": [k.knob().to_dict() for k in info.knobs],
                    "sample_rate": info.sample_rate,
                    "window": window,
                },
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )

    cache = {"cache_dir": cache_dir, "cache_max_bytes": cache_max_bytes}
    valid_loader = make_dataloader(dataset_dir, "valid", window=window, batch_size=config.batch_size, shuffle=False, sequential=True,
                                   **cache)
    stopped_early = since_best >= config.early_stop_patience
    epoch = start_epoch
    while epoch < config.max_epochs and not stopped_early:
        started = time.perf_counter()
        train_loader = make_dataloader(
            dataset_dir,
            "train",
            window=window,
            batch_size=config.batch_size,
            shuffle=True,
            seed=config.seed * 100003 + epoch,
            num_windows=config.steps_per_epoch * config.batch_size if config.steps_per_epoch else None,
            **cache,
        )
        model.train()
        total, steps = 0.0, 0
        n_steps = len(train_loader)
        for x, y, knobs in train_loader:
            pred, _ = model(x, knobs)
            loss = loss_fn(pred, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += loss.item()
            steps += 1
            if on_step is not None:
                on_step(steps, n_steps, loss.item())
        if steps == 0:
            raise ModelError("the training split gave no windows; use a shorter --window or a longer capture")
        valid = _evaluate_loss(model, valid_loader, loss_fn, config.valid_windows)
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
            "train_loss": total / steps,
            "valid_loss": valid,
            "best_valid_loss": best,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - started, 3),
        }
        history.append(row)
        save_weights(run_dir / "last.safetensors", model, {"epoch": epoch, "valid_loss": valid})
        _write_history(run_dir, history)
        save_state(
            state_path,
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "best": best,
                "since_best": since_best,
                "epoch": epoch,
                "history": history,
            },
        )
        if on_epoch is not None:
            on_epoch(row)
    return RunResult(run_dir=run_dir, epochs=epoch, best_valid_loss=best, stopped_early=stopped_early, history=history)


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

