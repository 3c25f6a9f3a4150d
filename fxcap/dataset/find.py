"""Find built datasets in a folder: the newest one is the default of ``fxcap train`` and ``fxcap report``."""

from __future__ import annotations

from pathlib import Path

from fxcap.errors import DatasetError


def datasets_newest_first(base: str | Path = "datasets") -> list[Path]:
    """The dataset folders directly under ``base`` (those holding a ``dataset.json``), the most
    recently built first (by the time of their ``dataset.json``); empty when ``base`` is not a folder."""
    base = Path(base)
    if not base.is_dir():
        return []
    found = sorted(base.glob("*/dataset.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [path.parent for path in found]


def newest_dataset(base: str | Path = "datasets") -> Path:
    """The most recently built dataset folder under ``base``; :class:`DatasetError` when there is none."""
    found = datasets_newest_first(base)
    if not found:
        raise DatasetError(f"no dataset under {base}/; build one with `fxcap build-dataset` or pass --dataset")
    return found[0]
