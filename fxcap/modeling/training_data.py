"""The data of a training run: its loaders (training windows per epoch, the fixed validation windows),
the per-setting target power of the ESR terms, and the dataset identity written to ``config.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from fxcap.dataset import DatasetInfo, make_dataloader
from fxcap.dataset.remote import location_text
from fxcap.errors import ModelError
from fxcap.modeling.linearity import SettingLinearity
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.setting_power import SettingPower
from fxcap.modeling.train_config import TrainConfig

VALID_SEED = 20_231
"""Seed of the validation windows' sample (fixed, so every epoch is scored on the same windows)."""


log = logging.getLogger("fxcap.modeling.train")


def validation_loader(dataset_dir: str | Path, window: int, config: TrainConfig, **cache: Any):
    """The validation windows: the split's grid, or with ``config.valid_windows`` a fixed random sample of it.

    The sample is the same every epoch (fixed seed, a fresh loader each time) and is drawn from the
    whole split, so every knob setting is represented; the first windows in storage order would come
    from the first one or two settings only. Training scores the first ``valid_windows`` of them.
    """
    return make_dataloader(dataset_dir, "valid", window=window, batch_size=config.batch_size, sequential=True,
                           shuffle=config.valid_windows is not None, seed=VALID_SEED, drop_last=False, **cache)


class TrainingData:
    """The loaders and loss of a run, checked before the run folder is touched: the window fits the
    segments, the batch size leaves at least one batch, the valid split exists, the shards read (their
    sha256 is checked when the cache is built); the loss comes checked (``make_loss``: the loss skip is
    shorter than the window)."""

    def __init__(self, dataset_dir: str | Path, info: DatasetInfo, window: int, config: TrainConfig, cache: dict[str, Any],
                 loss_fn: torch.nn.Module, carried_loss_fn: torch.nn.Module | None = None):
        """``window``: samples per training window; ``cache``: the loaders' cache options
        (:func:`fxcap.dataset.make_dataloader`); ``loss_fn``: the run's loss (``make_loss``);
        ``carried_loss_fn``: the loss of a window that continues the previous one's state
        (``config.tbptt_windows`` > 1: no warm-up skip; default ``loss_fn``)."""
        self.dataset_dir, self.info, self.window, self.config, self.cache = dataset_dir, info, window, config, cache
        self.loss_fn = loss_fn
        self.carried_loss_fn = carried_loss_fn if carried_loss_fn is not None else loss_fn
        for split in ("train", "valid"):
            if split not in info.splits or not info.splits[split].rows:
                raise ModelError(f"dataset {location_text(dataset_dir)} has no {split} split (its splits: "
                                 f"{', '.join(info.splits) or 'none'}); rebuild it with a {split} share, e.g. --split 60/10/30")
        self.steps_per_epoch = len(self.train_loader(0)) * config.tbptt_windows  # optimizer steps
        if self.steps_per_epoch == 0:
            raise ModelError(f"the train split has fewer than {config.batch_size} windows of {window} samples, so an epoch "
                             "would have no step; lower --batch-size or --window")
        self.valid_window = int(config.valid_window or window)
        validation_loader(dataset_dir, self.valid_window, config, **cache)
        self.train_power = self.valid_power = None
        if config.esr_per_setting and (config.esr_weight or config.dc_weight):
            # the plain target's power: one reference for the (emphasised) ESR and the DC term alike
            self.train_power = SettingPower.from_split(dataset_dir, "train", **cache)
            self.valid_power = SettingPower.from_split(dataset_dir, "valid", **cache)
        self.train_linearity = None
        if config.linear_penalty:
            self.train_linearity = SettingLinearity.from_split(dataset_dir, config.linear_threshold_db, "train", **cache)
            log.info("linear penalty: %s", self.train_linearity.describe(list(info.knob_names)))
            if not bool(self.train_linearity.values.any()):
                log.warning("note: no setting of the training split is linear (residual below %g dB), so the linear penalty "
                            "has nothing to do (--linear-penalty 0 skips looking; --linear-threshold-db moves the bar)",
                            config.linear_threshold_db)

    def train_loader(self, epoch: int):
        """The training chunks of ``epoch`` (random offsets, seeded by the run's seed and the epoch): each
        item is ``config.tbptt_windows`` consecutive windows (:meth:`windows_of` splits it), so an epoch
        of ``steps_per_epoch`` optimizer steps reads ``steps_per_epoch / tbptt_windows`` batches (rounded up)."""
        config = self.config
        chunks = -(-config.steps_per_epoch // config.tbptt_windows) if config.steps_per_epoch else None
        return make_dataloader(
            self.dataset_dir, "train", window=self.window * config.tbptt_windows, batch_size=config.batch_size, shuffle=True,
            seed=config.seed * 100003 + epoch,
            num_windows=chunks * config.batch_size if chunks else None, **self.cache,
        )

    def windows_of(self, x: torch.Tensor, y: torch.Tensor, knobs: torch.Tensor):
        """The consecutive training windows of a chunk batch, in order: ``(x, y, knobs, first)`` each
        (``first``: the window that starts from a zero state)."""
        for j in range(self.config.tbptt_windows):
            part = slice(j * self.window, (j + 1) * self.window)
            yield x[:, part], y[:, part], knobs[:, part] if knobs.dim() == 3 else knobs, j == 0

    def valid_loader(self):
        """The validation windows (``config.valid_window`` samples each, default the training window)."""
        return validation_loader(self.dataset_dir, self.valid_window, self.config, **self.cache)

    def run_config(self, model_config: ModelConfig, model: torch.nn.Module) -> dict[str, Any]:
        """The run's ``config.json``: settings and the dataset's identity."""
        info = self.info
        return {
            "model": model_config.to_dict(),
            "train": self.config.to_dict(),
            "dataset": {
                "path": location_text(self.dataset_dir),
                "hash": info.dataset_hash,
                "device": info.device,
                "knob_names": list(info.knob_names),
                "knobs": [k.knob().to_dict() for k in info.knobs],
                "sample_rate": info.sample_rate,
                "window": self.window,
            },
            "parameters": sum(p.numel() for p in model.parameters()),
        }
