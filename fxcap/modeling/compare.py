"""Side-by-side comparison of evaluated runs, like the paper's tables.

Reads ``evaluation.json`` of every run folder given (or found under a runs directory), writes
``comparison.md`` and ``comparison.csv``, and marks the best value of each column (lowest error,
fewest parameters, least compute) with an asterisk in the Markdown table.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from fxcap.errors import ModelError
from fxcap.io import atomic_write_text

COLUMNS = [
    ("l1", "L1"),
    ("esr", "ESR"),
    ("esr_db", "ESR (dB)"),
    ("mrstft", "STFT"),
    ("lufs_diff", "LUFS"),
    ("crest_factor_diff_db", "CF (dB)"),
    ("rms_diff_db", "RMS (dB)"),
    ("transient", "Transient"),
]


def find_runs(root: str | Path) -> list[Path]:
    """Run folders (those with an ``evaluation.json``) under ``root``, sorted by path."""
    return sorted(p.parent for p in Path(root).glob("**/evaluation.json"))


def comparison_table(runs: list[str | Path], split: str = "test") -> pd.DataFrame:
    """One row per run: scheme, cell, parameters, compute and the mean metrics of ``split``."""
    rows = []
    for run in runs:
        path = Path(run) / "evaluation.json"
        if not path.is_file():
            raise ModelError(f"{run} has not been evaluated; run `fxcap evaluate --model {run}` first")
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path} is corrupt ({exc}); evaluate the run again") from None
        scores = data.get(split)
        if scores is None:
            continue
        compute = data.get("compute", {})
        row = {
            "run": Path(run).name,
            "scheme": data["model"].get("cond"),
            "cell": data["model"].get("cell"),
            "params": data.get("parameters"),
            "gflops_per_s": compute.get("gflops_per_second"),
            "hyper_mflops_per_change": compute.get("hyper_mflops_per_change"),
        }
        for key, _ in COLUMNS:
            row[key] = scores.get(key)
        rows.append(row)
    if not rows:
        raise ModelError(f"no run has scores for the {split!r} split")
    return pd.DataFrame(rows)


TABLE_COLUMNS = [
    ("run", "run"),
    ("scheme", "scheme"),
    ("cell", "cell"),
    ("params", "params"),
    ("gflops_per_s", "GFLOP/s"),
    ("hyper_mflops_per_change", "hyper MFLOP/change"),
] + COLUMNS
"""``(key, label)`` of every column of the comparison table, in display order."""

TEXT_COLUMNS = ("run", "scheme", "cell")
"""Columns that are labels, not figures (never marked best)."""


def best_values(frame: pd.DataFrame) -> dict[str, float]:
    """The best (lowest) value of every numeric column of a :func:`comparison_table` frame."""
    best = {}
    for key, _ in TABLE_COLUMNS:
        if key in TEXT_COLUMNS or key not in frame:
            continue
        values = pd.to_numeric(frame[key], errors="coerce")
        if values.notna().any():
            best[key] = float(values.min())
    return best


def format_cell(key: str, value: Any) -> str:
    """How a table cell reads: parameters as integers, other figures to 4 significant digits, ``-`` if missing."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and pd.notna(value):
        return f"{int(value)}" if key == "params" else f"{value:.4g}"
    return "-" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def is_best(key: str, value: Any, best: dict[str, float]) -> bool:
    """Whether ``value`` is the best of its column (see :func:`best_values`)."""
    return (key in best and isinstance(value, (int, float)) and not isinstance(value, bool) and pd.notna(value)
            and float(value) == best[key])


def to_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table; the best (lowest) value of every numeric column is marked with ``*``."""
    best = best_values(frame)
    lines = ["| " + " | ".join(label for _, label in TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for _, row in frame.iterrows():
        cells = [format_cell(key, row[key]) + ("*" if is_best(key, row[key], best) else "") for key, _ in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n`*` best in column (lower is better).\n"


def compare_runs(runs: list[str | Path], out_dir: str | Path, split: str = "test") -> pd.DataFrame:
    """Write ``comparison.md`` and ``comparison.csv`` to ``out_dir`` and return the table."""
    frame = comparison_table(runs, split)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "comparison.md", to_markdown(frame))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    atomic_write_text(out_dir / "comparison.csv", buffer.getvalue())
    return frame
