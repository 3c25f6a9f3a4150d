"""Mean target power per knob setting: what the loss divides by to weigh every setting alike.

The evaluation averages the ESR over knob settings, each setting counting the same. A loss pooled
over the batch counts each window by its energy instead, so a quiet setting (the OD-3 at drive 0,
tone 0 sits 30 dB below drive 10) hardly counts and stays the worst one. Dividing each window's
squared error by the mean power of *its setting's* target makes the loss an unbiased estimate of
the mean-over-settings ESR the evaluation reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fxcap.dataset.loader import WindowDataset
from fxcap.errors import ModelError


def emphasised(x: np.ndarray, emphasis: float) -> np.ndarray:
    """``x`` filtered by ``1 - emphasis z^-1`` (its first sample dropped), as the ESR loss sees it."""
    x = np.asarray(x, dtype=np.float64)
    return x[1:] - emphasis * x[:-1] if emphasis else x


def setting_rows(dataset_dir: str | Path, split: str = "train", **cache: Any) -> tuple[WindowDataset, np.ndarray, np.ndarray]:
    """A split's rows grouped by knob setting: ``(data, settings (S, K), setting of every row (rows,))``
    (normalised knob vectors, rounded to 6 decimals so that one setting's rows share one vector)."""
    data = WindowDataset(dataset_dir, split, **cache)
    keys = np.round(np.asarray(data.knobs, dtype=np.float64), 6)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    return data, unique, inverse.reshape(-1)


class SettingTable:
    """A table from knob vectors (normalised, ``(K,)``) to one value per setting.

    ``lookup(knobs (B, K)) -> (B,)`` finds each row's setting (the nearest stored vector, which must
    match within ``tolerance``; a window of a setting the table does not know is an error, whose
    message ends with :attr:`unknown_hint`).
    """

    unknown_hint = "train with esr_per_setting off for knob settings that vary within a window"
    """What to do about a window of a setting the table does not know (the end of the error message)."""

    def __init__(self, knobs: np.ndarray, values: np.ndarray, tolerance: float = 1e-4) -> None:
        self.knobs = torch.as_tensor(np.asarray(knobs, dtype=np.float32))
        self.values = torch.as_tensor(np.asarray(values))
        self.tolerance = tolerance

    def lookup(self, knobs: torch.Tensor) -> torch.Tensor:
        """The value ``(B,)`` of the setting of every row of ``knobs`` ``(B, K)``."""
        knobs = torch.as_tensor(knobs, dtype=torch.float32)
        if knobs.dim() == 3:  # automation: the setting in force at the first sample
            knobs = knobs[:, 0]
        distance, index = torch.cdist(knobs, self.knobs).min(dim=1)
        if bool((distance > self.tolerance).any()):
            row = int(torch.argmax(distance))
            raise ModelError(f"knob setting {knobs[row].tolist()} is not one of the training split's settings; {self.unknown_hint}")
        return self.values[index]


class SettingPower(SettingTable):
    """The mean target power (float64) of every setting: ``lookup(knobs (B, K)) -> (B,)``."""

    def __init__(self, knobs: np.ndarray, power: np.ndarray, tolerance: float = 1e-4) -> None:
        super().__init__(knobs, np.asarray(power, dtype=np.float64), tolerance)
        self.power = self.values
        if not bool((self.power > 0).all()):
            raise ModelError("a knob setting of the training split has a silent target; rebuild the dataset without "
                             "that take (its ESR is undefined)")

    @classmethod
    def from_split(cls, dataset_dir: str | Path, split: str = "train", emphasis: float = 0.0, **cache: Any) -> "SettingPower":
        """The table of one split of a dataset (targets filtered by ``1 - emphasis z^-1`` first)."""
        data, unique, inverse = setting_rows(dataset_dir, split, **cache)
        energy = np.zeros(len(unique))
        count = np.zeros(len(unique))
        for row in range(len(inverse)):
            target = emphasised(data.cache.segment(row)[1], emphasis)
            energy[inverse[row]] += float(np.dot(target, target))
            count[inverse[row]] += target.size
        if (count == 0).any():
            raise ModelError(f"the {split} split has a knob setting without audio; rebuild the dataset")
        return cls(unique, energy / count)
