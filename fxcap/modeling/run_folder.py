"""How a training run starts in its folder: afresh, resumed, or refused, and what resuming checks.

One function, :func:`plan_run_start`, decides for :func:`fxcap.modeling.train.train` (so ``fxcap train``,
the pipeline and sweeps decide alike):

- an empty or missing folder, or one that never finished an epoch (no ``state.pt``: a run interrupted or
  failed in its first epoch), starts afresh; what such a folder held is cleared, with a note;
- ``force`` starts afresh whatever the folder holds (its files are replaced);
- a finished epoch without ``resume`` is refused (continue with ``--resume``, replace with ``--force``);
- ``resume`` continues only the same run: the same dataset (hash) and the same settings, except the
  :data:`RESUMABLE_FIELDS`; otherwise it is refused with the changed settings named.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxcap.errors import ModelError
from fxcap.io import TEMP_PATTERN
from fxcap.modeling.config import ModelConfig
from fxcap.modeling.train_config import TrainConfig

log = logging.getLogger(__name__)

RESUMABLE_FIELDS = ("max_epochs", "time_budget_s", "threads")
"""TrainConfig fields a resumed run may change (train longer or for more time, another CPU share); any other
change is refused."""

STATE_NAME = "state.pt"
CONFIG_NAME = "config.json"
FRESH_HINT = ("start it afresh with --force (fxcap train; a sweep: delete the folder), which replaces its checkpoints, "
              "or train into another run folder")


def normalized(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(data))


def setting_changes(saved: dict[str, Any], model: dict[str, Any], train: dict[str, Any],
                    ignore: tuple[str, ...] = RESUMABLE_FIELDS) -> list[str]:
    """What differs between a run's saved ``config.json`` and the ``model`` / ``train`` settings asked for,
    as ``"lr 0.001 -> 0.01"`` items (training fields in ``ignore`` left out: by default the
    :data:`RESUMABLE_FIELDS`, so empty means resumable; ``ignore=()`` compares every field).

    A setting that a run folder written by an older fxcap lacks counts as that setting's default (the
    option did not exist, so the run trained as the default does)."""
    changes = []
    defaults = {"model": ModelConfig().to_dict(), "train": TrainConfig().to_dict()}
    for section, wanted, skip in (("model", model, ()), ("train", train, ignore)):
        old, new = normalized({**defaults[section], **(saved.get(section) or {})}), normalized(wanted)
        for key in sorted(set(old) | set(new)):
            if key in skip or old.get(key) == new.get(key):
                continue
            changes.append(f"{'model ' if section == 'model' else ''}{key} {old.get(key, 'unset')} -> {new.get(key, 'unset')}")
    return changes


def read_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's ``config.json``, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class RunStart:
    """What :func:`plan_run_start` decided: resume (``True``) or start afresh; ``note`` says what was cleared."""

    resume: bool
    note: str | None = None


RUN_FILES = frozenset({CONFIG_NAME, STATE_NAME, "metrics.json", "metrics.csv", "best.safetensors", "last.safetensors",
                       "failed.json", "evaluation.json", "evaluation_per_knob.csv"})
"""What training, the pipeline and evaluation write into a run folder: all that starting afresh removes."""


def _clear(run_dir: Path) -> None:
    """Remove a run's files from its folder; refuse (touching nothing) when it holds anything else."""
    entries = list(run_dir.iterdir())
    foreign = sorted(p.name for p in entries if p.name not in RUN_FILES and not TEMP_PATTERN.match(p.name))
    if foreign:
        raise ModelError(f"{run_dir} holds files that are not a training run's ({', '.join(foreign[:4])}); "
                         "train into another run folder, or move them away")
    for path in entries:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def plan_run_start(run_dir: str | Path, model: dict[str, Any], train: dict[str, Any], dataset_hash: str, *,
                   resume: bool, force: bool = False) -> RunStart:
    """Decide how a run starts in ``run_dir`` (see the module docstring); clears the folder when it starts
    afresh over an earlier attempt. Raises :class:`ModelError` (one line, what to do) when refused.

    Call it while holding the folder's lock (:func:`fxcap.locking.folder_lock`).
    """
    run_dir = Path(run_dir)
    held = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if not (run_dir / STATE_NAME).is_file():
        if held:
            _clear(run_dir)
            return RunStart(False, f"{run_dir} never finished an epoch (no {STATE_NAME}); starting it afresh")
        return RunStart(False, f"nothing to resume in {run_dir}; starting a new run" if resume else None)
    saved = read_run_config(run_dir)
    epochs = _epochs(run_dir)
    if force:
        _clear(run_dir)
        return RunStart(False, f"--force: starting {run_dir} afresh (its {epochs} finished epoch(s) are replaced)")
    if not resume:
        raise ModelError(f"{run_dir} already holds a run ({epochs} finished epoch(s)); continue it with --resume, "
                         "or " + FRESH_HINT)
    if saved is None:
        raise ModelError(f"{run_dir}/{CONFIG_NAME} is missing or corrupt, so the run cannot be checked for resuming; "
                         + FRESH_HINT)
    old_hash = (saved.get("dataset") or {}).get("hash")
    if old_hash is not None and old_hash != dataset_hash:
        raise ModelError(f"{run_dir} was trained on another dataset (hash {str(old_hash)[:12]}, now {dataset_hash[:12]}): "
                         "the dataset changed or is another one; " + FRESH_HINT)
    changes = setting_changes(saved, model, train)
    if changes:
        raise ModelError(f"{run_dir} holds a run with other settings ({'; '.join(changes)}); resume it with its own "
                         "settings, or " + FRESH_HINT)
    return RunStart(True)


def _epochs(run_dir: Path) -> int | str:
    """Finished epochs of a run folder (from ``metrics.json``), or ``"some"`` when unreadable."""
    try:
        return len(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return "some"
