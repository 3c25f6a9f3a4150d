"""Fixed knob settings for snapshot exports: which settings, their names, and the ESR a run measured there.

A snapshot format (NAM's ``.nam``) holds a model at one knob setting. The settings come from
``--set NAME=VALUE`` (one file), ``--at drive=7,tone=4`` (repeatable: a pack) or ``--grid N`` (a pack
of ``N`` evenly spaced values of every continuous knob not fixed by ``--set``, every position of
every switch). Values are panel units (what render's ``--set`` takes); knobs left out sit at their
default, as in ``fxcap render``.

The test ESR of a setting comes from the run's ``evaluation_per_knob.csv`` (written by
``fxcap evaluate``): the row of the ``test`` split (else ``holdout``) at exactly that setting, and
only when ``evaluation.json`` says the same checkpoint was scored.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fxcap.capture.profiles import Knob
from fxcap.errors import ModelError
from fxcap.modeling.render import parse_settings

MAX_PACK = 1000
"""Most settings one pack may hold (a typo in ``--grid`` should not write a million files)."""

ESR_SPLITS = ("test", "holdout")
"""Splits searched for a setting's ESR, in order of preference."""


@dataclass(frozen=True)
class Snapshot:
    """One fixed knob setting.

    Attributes:
        values: every knob's panel value (switch position name), in the model's knob order.
        normalized: the same setting normalized to [-1, 1] (what the model takes).
        test_esr: the run's ESR at this setting (``None`` when not measured there).
        esr_split: the split ``test_esr`` comes from (``test`` or ``holdout``).
    """

    values: dict[str, Any]
    normalized: tuple[float, ...]
    test_esr: float | None = None
    esr_split: str | None = None

    @property
    def label(self) -> str:
        """``"drive=7 tone=4"``."""
        return " ".join(f"{name}={format_value(value)}" for name, value in self.values.items())

    @property
    def slug(self) -> str:
        """``"drive=7_tone=4"``: the label as a file-name part (characters other than letters, digits,
        ``.``, ``=``, ``+`` and ``-`` become ``-``)."""
        return "_".join(re.sub(r"[^A-Za-z0-9.=+-]", "-", f"{name}={format_value(value)}") for name, value in self.values.items())


def format_value(value: Any) -> str:
    """A panel value as written in labels and file names: ``7``, ``2.5``, ``soft``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def make_snapshot(knobs: list[Knob], settings: dict[str, Any]) -> Snapshot:
    """The snapshot at ``settings`` (knob name -> panel value; knobs left out at their default)."""
    values: dict[str, Any] = {}
    normalized = []
    for knob in knobs:
        raw = settings.get(knob.name, knob.default)
        try:
            value = knob.validate(raw)
            normalized.append(knob.normalize(value))
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        values[knob.name] = value if knob.is_switch else float(value)
    return Snapshot(values=values, normalized=tuple(normalized))


def grid_values(knob: Knob, steps: int) -> list[Any]:
    """``steps`` evenly spaced panel values from minimum to maximum (6 significant digits), or every switch position."""
    if knob.is_switch:
        return list(knob.values or ())
    return [float(f"{v:.6g}") for v in np.linspace(knob.minimum, knob.maximum, steps)]


def plan_snapshots(knobs: list[Knob], settings: list[str] | None = None, at: list[str] | None = None, grid: int | None = None) -> list[Snapshot]:
    """The settings an export writes: ``settings`` (``NAME=VALUE`` items) alone give one snapshot;
    each ``at`` (``"drive=7,tone=4"``) adds one, on top of ``settings``; ``grid`` spans every knob not
    fixed by ``settings``. :class:`ModelError` for an empty request, a bad value or too many settings.
    """
    fixed = parse_settings(list(settings or []), knobs)
    if grid is not None and at:
        raise ModelError("give either --grid or --at, not both")
    if grid is not None:
        if grid < 2:
            raise ModelError(f"--grid needs at least 2 values per knob (minimum and maximum), not {grid}")
        axes = [[fixed[k.name]] if k.name in fixed else grid_values(k, grid) for k in knobs]
        count = int(np.prod([len(axis) for axis in axes])) if axes else 1
        if count > MAX_PACK:
            raise ModelError(f"--grid {grid} over {len(knobs)} knobs makes {count} settings (at most {MAX_PACK}); use a smaller --grid or fix knobs with --set")
        return [make_snapshot(knobs, dict(zip([k.name for k in knobs], combo))) for combo in itertools.product(*axes)]
    if at:
        if len(at) > MAX_PACK:
            raise ModelError(f"{len(at)} --at settings (at most {MAX_PACK})")
        return [make_snapshot(knobs, {**fixed, **parse_settings(_split(item), knobs, "--at")}) for item in at]
    return [make_snapshot(knobs, fixed)]


def _split(item: str) -> list[str]:
    parts = [part for part in item.split(",") if part.strip()]
    if not parts:
        raise ModelError(f"--at expects NAME=VALUE[,NAME=VALUE...] (e.g. drive=7,tone=4), not {item!r}")
    return parts


# -- the ESR a run measured at a setting ---------------------------------------------------------


def with_test_esr(snapshots: list[Snapshot], knobs: list[Knob], run_dir: str | Path, checkpoint: str) -> list[Snapshot]:
    """``snapshots`` with ``test_esr``/``esr_split`` filled from the run's evaluation where it scored that
    setting with the same checkpoint (unchanged otherwise)."""
    rows = _evaluation_rows(Path(run_dir), checkpoint)
    if rows is None:
        return list(snapshots)
    out = []
    for snap in snapshots:
        found = _esr_at(rows, snap, knobs)
        out.append(replace(snap, test_esr=found[0], esr_split=found[1]) if found else snap)
    return out


def _evaluation_rows(run_dir: Path, checkpoint: str) -> pd.DataFrame | None:
    table, summary = run_dir / "evaluation_per_knob.csv", run_dir / "evaluation.json"
    if not table.is_file():
        return None
    try:
        scored = json.loads(summary.read_text(encoding="utf-8")).get("checkpoint", "best") if summary.is_file() else "best"
        rows = pd.read_csv(table)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None  # an unreadable evaluation only costs the ESR entry, not the export
    if scored != checkpoint or "esr" not in rows.columns or "split" not in rows.columns:
        return None
    return rows


def _esr_at(rows: pd.DataFrame, snap: Snapshot, knobs: list[Knob]) -> tuple[float, str] | None:
    mask = np.ones(len(rows), dtype=bool)
    for knob in knobs:
        column = f"knob_{knob.name}"
        if column not in rows.columns:
            return None
        value = snap.values[knob.name]
        if knob.is_switch:
            mask &= rows[column].astype(str).to_numpy() == str(value)
        else:
            cells = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=np.float64)
            mask &= np.abs(cells - float(value)) <= 1e-6 * (knob.maximum - knob.minimum)
    for split in ESR_SPLITS:
        hit = rows[mask & (rows["split"] == split).to_numpy()]
        if len(hit):
            esr = float(hit["esr"].iloc[0])
            return (esr, split) if np.isfinite(esr) else None
    return None
