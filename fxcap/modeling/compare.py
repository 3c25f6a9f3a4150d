"""Side-by-side comparison of evaluated runs, like the paper's tables.

Reads ``evaluation.json`` of every run folder given (or found under a runs directory), writes
``comparison.md`` and ``comparison.csv``, and marks the best value of each column (lowest error,
fewest parameters, least compute) with an asterisk in the Markdown table. Runs of the same scheme and
cell trained with different seeds are also summarised as mean ± std over seeds
(``comparison_seeds.md`` / ``.csv``, see :func:`aggregate_seeds`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from fxcap.errors import ModelError
from fxcap.io import atomic_write_text
from fxcap.modeling.schemes import scheme_names

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


def dataset_runs(runs_root: str | Path) -> list[Path]:
    """Every evaluated run in one dataset's runs folder (``<runs>/<dataset name>``), schemes in the
    registry's order (:func:`~fxcap.modeling.schemes.scheme_names`: the paper's, then schemes registered
    later; unknown names last), then by name (cell, seed)."""
    order = scheme_names()

    def key(run: Path) -> tuple[int, str]:
        scheme = run.name.split("-", 1)[0]
        return (order.index(scheme) if scheme in order else len(order), run.name)

    return sorted(find_runs(runs_root), key=key)


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
            "seed": _seed(Path(run)),
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


def _seed(run: Path) -> int | None:
    """The training seed of a run (from its ``config.json``), ``None`` when unknown."""
    try:
        seed = json.loads((run / "config.json").read_text(encoding="utf-8"))["train"]["seed"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return int(seed) if seed is not None else None


GROUP_KEYS = ["scheme", "cell"]
CONSTANT_KEYS = ["params", "gflops_per_s", "hyper_mflops_per_change"]


def aggregate_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof 1) of every metric over the seeds of each (scheme, cell).

    ``frame`` is a :func:`comparison_table`. Returns one row per (scheme, cell), in first-seen order, with
    ``seeds`` (how many runs), the constant columns (params, compute) and ``<metric>_mean`` /
    ``<metric>_std`` for every metric (std is NaN for a single run).
    """
    if frame.empty:
        raise ModelError("no run to aggregate")
    rows = []
    for key, part in frame.groupby(GROUP_KEYS, sort=False, dropna=False):
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key))
        row["seeds"] = int(len(part))
        for column in CONSTANT_KEYS:
            row[column] = part[column].iloc[0] if column in part else None
        for metric, _ in COLUMNS:
            values = pd.to_numeric(part[metric], errors="coerce")
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.notna().sum() > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def seeds_rows(aggregate: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The headers and text cells of :func:`aggregate_seeds`: "mean ± std" per metric, best mean marked with ``*``."""
    headers = ["scheme", "cell", "seeds", "params"] + [label for _, label in COLUMNS]
    best = {}
    for metric, _ in COLUMNS:
        values = pd.to_numeric(aggregate[f"{metric}_mean"], errors="coerce")
        if values.notna().any():
            best[metric] = values.min()
    rows = []
    for _, row in aggregate.iterrows():
        params = row["params"]
        cells = [str(row["scheme"]), str(row["cell"]), str(int(row["seeds"])),
                 "-" if params is None or pd.isna(params) else str(int(params))]
        for metric, _ in COLUMNS:
            mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
            if pd.isna(mean):
                cells.append("-")
                continue
            text = f"{mean:.4g} ± {std:.2g}" if pd.notna(std) else f"{mean:.4g}"
            if metric in best and mean == best[metric]:
                text += "*"
            cells.append(text)
        rows.append(cells)
    return headers, rows


def seeds_markdown(aggregate: pd.DataFrame) -> str:
    """A Markdown table of :func:`aggregate_seeds` (the cells of :func:`seeds_rows`)."""
    headers, rows = seeds_rows(aggregate)
    return ("Mean ± std over seeds (sample std; lower is better).\n\n" + _markdown_table(headers, rows)
            + "\n\n`*` best mean in column.\n")


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``| a | b |`` lines: the header, the rule and one line per row (no trailing newline)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


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


def comparison_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The headers and text cells of a :func:`comparison_table` frame; the best (lowest) value of every
    numeric column is marked with ``*``."""
    best = best_values(frame)
    rows = [[format_cell(key, row[key]) + ("*" if is_best(key, row[key], best) else "") for key, _ in TABLE_COLUMNS]
            for _, row in frame.iterrows()]
    return [label for _, label in TABLE_COLUMNS], rows


def to_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table of :func:`comparison_rows`; the best (lowest) value of every numeric column is marked with ``*``."""
    return _markdown_table(*comparison_rows(frame)) + "\n\n`*` best in column (lower is better).\n"


def fit_columns(headers: Sequence[str], rows: Sequence[Sequence[str]], priority: Sequence[str], width: int) -> list[int]:
    """Indices (in table order) of the columns that fit a terminal ``width`` characters wide, taken in
    ``priority`` order of their headers (the first always; headers not listed never).

    A column needs its widest cell or header word plus 3 characters (padding and rule), the table 1 more.
    """
    chosen, used = [], 1
    for rank, header in enumerate(priority):
        if header not in headers:
            continue
        i = list(headers).index(header)
        need = max([len(word) for word in header.split()] + [len(row[i]) for row in rows]) + 3
        if rank == 0 or used + need <= width:
            chosen.append(i)
            used += need
    return sorted(chosen)


TERMINAL_PRIORITY = ("run", "params", "ESR", "ESR (dB)", "STFT", "GFLOP/s", "L1", "LUFS", "CF (dB)", "RMS (dB)", "Transient",
                     "hyper MFLOP/change")
"""Which columns of :func:`comparison_rows` a narrow terminal keeps first (the run name says scheme, cell and seed)."""

SEEDS_TERMINAL_PRIORITY = ("scheme", "cell", "seeds", "ESR", "ESR (dB)", "STFT", "params", "L1", "LUFS", "CF (dB)", "RMS (dB)",
                           "Transient")
"""The same for :func:`seeds_rows`."""


def compare_runs(runs: list[str | Path], out_dir: str | Path, split: str = "test") -> pd.DataFrame:
    """Write ``comparison.md``/``.csv`` (every run) and ``comparison_seeds.md``/``.csv`` (mean ± std over
    seeds per scheme and cell) to ``out_dir``; return the per-run table."""
    frame = comparison_table(runs, split)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "comparison.md", to_markdown(frame))
    _write_csv(out_dir / "comparison.csv", frame)
    aggregate = aggregate_seeds(frame)
    atomic_write_text(out_dir / "comparison_seeds.md", seeds_markdown(aggregate))
    _write_csv(out_dir / "comparison_seeds.csv", aggregate)
    return frame


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    atomic_write_text(path, buffer.getvalue())
