"""What the ``fxcap`` commands print: the two consoles and the rich tables built from the library's results.

Every command prints through :data:`console` (stdout) and :data:`err_console` (stderr), read as
attributes of this module at call time (a test may replace them, e.g. with a narrower console). The
tables are built directly from the rows the library returns: the comparison tables from
:func:`fxcap.modeling.compare.comparison_rows` / :func:`~fxcap.modeling.compare.seeds_rows`, the same
cells that ``comparison.md`` holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def knob_summary(profile: Any) -> str:
    """A device profile's knobs in one line: ``drive 0-10, mode (A/B)``."""
    return ", ".join(
        f"{k.name} ({'/'.join(k.values)})" if k.is_switch else f"{k.name} {k.minimum:g}-{k.maximum:g}" for k in profile.knobs
    )


def print_devices(listing: Any, sound_cards: bool) -> None:
    """``fxcap devices``: the profiles, the plugin built-ins and (``sound_cards``) the audio interfaces."""
    table = Table(title="Device profiles (--device)")
    for column in ("profile", "kind", "virtual (--backend sim)", "knobs"):
        table.add_column(column)
    for profile in listing.profiles:
        table.add_row(profile.name, profile.kind, "yes" if profile.name in listing.virtual else "-", knob_summary(profile))
    console.print(table)
    if listing.plugins:
        console.print("pedalboard built-in effects (--backend plugin:NAME): " + ", ".join(listing.plugins), highlight=False)
    else:
        console.print(f"pedalboard built-in effects: none ({listing.plugins_note})", highlight=False)
    if not sound_cards:
        return
    if not listing.interfaces:
        console.print(f"sound cards: none ({listing.interfaces_note})", highlight=False)
        return
    table = Table(title="Sound cards (--backend soundcard:NAME)")
    for column in ("#", "name", "host API", "in", "out", "rates (Hz)"):
        table.add_column(column, justify="right" if column in ("#", "in", "out") else "left")
    for i in listing.interfaces:
        table.add_row(str(i.index), i.name, i.hostapi, str(i.max_input_channels), str(i.max_output_channels),
                      ", ".join(str(r) for r in i.supported_rates) or "-")
    console.print(table)


def print_signal_layout(signal: Any, out: Path) -> None:
    """``fxcap signal``: the regions of the written capture signal, with start and end in seconds."""
    table = Table(title=f"{out} ({signal.duration:.1f} s at {signal.sample_rate} Hz, version {signal.layout.version})")
    for column in ("region", "kind", "start (s)", "end (s)"):
        table.add_column(column)
    for region in signal.layout.regions:
        start, stop = region.seconds(signal.sample_rate)
        table.add_row(region.name, region.kind, f"{start:.3f}", f"{stop:.3f}")
    console.print(table)


def print_preflight(report: Any, title: str) -> None:
    """``fxcap check``: one row per pre-flight check, and whether the rig is ready."""
    table = Table(title=title)
    for column in ("check", "value", "status", "what it means / what to do"):
        table.add_column(column)
    styles = {"ok": "green", "FIX": "red", "-": "dim"}
    for row in report.to_rows():
        table.add_row(row["check"], row["value"], f"[{styles[row['status']]}]{row['status']}[/]", row["message"])
    console.print(table)
    console.print("[green]ready to record[/]" if report.ok else "[red]fix the items marked FIX, then run fxcap check again[/]")


# -- the take table of a session -------------------------------------------------------------------

SUMMARY_COLUMNS = (
    ("take", "take"), ("knobs", "knobs"), ("latency_samples", "latency\n(smp)"), ("gain_db", "gain\n(dB)"),
    ("drift_ppm", "drift\n(ppm)"), ("noise_floor_dbfs", "noise\n(dBFS)"), ("repeatability_esr_db", "repeat\n(dB ESR)"),
    ("attempts", "tries"), ("status", "ok"),
)
"""``(session_summary key, header)`` of the take table; every column but the knobs keeps its full width."""

NO_BYPASS_GAIN = "n/a (no bypass take)"


def _summary_cells(row: dict, gain_measured: bool) -> list[str]:
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    return [
        row["take"].removeprefix("take-") + (" ref" if row["reference"] else ""),
        ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row["settings"].values()),
        fmt(row["latency_samples"], ".2f"),
        fmt(row["gain_db"], "+.2f") if gain_measured else "n/a",
        fmt(row["drift_ppm"], "+.1f"),
        fmt(row["noise_floor_dbfs"], ".1f"),
        fmt(row["repeatability_esr_db"], ".1f"),
        str(row["attempts"]),
        row["status"],
    ]


def print_session_summary(session: Any) -> None:
    """``fxcap record`` / ``fxcap import``: one row per take (alignment, levels, tries), then the session-wide checks."""
    from fxcap.capture.record import has_gain_reference, session_summary

    rows = session_summary(session)
    gain_measured = has_gain_reference(session)
    cells = [_summary_cells(row, gain_measured) for row in rows]
    table = Table(title=f"{session.root}: {len(rows)} takes of {session.manifest.device.name} ({session.manifest.status})",
                  caption=None if gain_measured else f"gain: {NO_BYPASS_GAIN}, levels as recorded (import with --bypass to measure it)")
    for i, (key, header) in enumerate(SUMMARY_COLUMNS):
        if key == "knobs":  # the knob names head the column; the only column that wraps, the figures are never cut
            table.add_column(", ".join(rows[0]["settings"]) if rows else header, overflow="fold", ratio=1)
            continue
        width = max([len(line) for line in header.split("\n")] + [len(c[i]) for c in cells])
        table.add_column(header, justify="left" if key == "take" else "right", no_wrap=True, min_width=width)
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)
    for check in session.manifest.session_checks or []:
        style = "green" if check.passed else ("yellow" if check.severity == "warning" else "red")
        console.print(f"[{style}]{check.name}[/]: {check.message}")


# -- comparison tables -----------------------------------------------------------------------------


def print_fitted(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], priority: tuple[str, ...],
                 written: Optional[Path], left: tuple[str, ...]) -> None:
    """A table with the columns that fit the terminal (taken in ``priority`` order); the others are
    named, with ``written``, the file that holds every column. ``left``: the label columns."""
    from fxcap.modeling.compare import fit_columns

    keep = fit_columns(headers, rows, priority, console.width)
    table = Table(title=title)
    for i in keep:
        table.add_column(headers[i], justify="left" if headers[i] in left else "right", no_wrap=headers[i] in left)
    for row in rows:
        table.add_row(*[row[i] for i in keep])
    console.print(table)
    hidden = [h for i, h in enumerate(headers) if i not in keep]
    if hidden and written is not None:
        console.print(f"more columns ({', '.join(hidden)}) in {written}", highlight=False, markup=False)


def print_comparison(frame: Any, written: Optional[Path] = None) -> None:
    """The per-run comparison, narrowed to the terminal's width (``written``: the comparison.md with every column)."""
    if frame is None:
        return
    from fxcap.modeling.compare import TERMINAL_PRIORITY, comparison_rows

    headers, rows = comparison_rows(frame)
    print_fitted("Test-split comparison (lower is better, * best)", headers, rows, TERMINAL_PRIORITY, written,
                 ("run", "scheme", "cell"))


def print_seeds(frame: Any, title: str = "Mean ± std over seeds (lower is better, * best mean)",
                written: Optional[Path] = None) -> None:
    """Mean ± std over the seeds of every (scheme, cell) of a comparison frame, narrowed to the terminal."""
    from fxcap.modeling.compare import SEEDS_TERMINAL_PRIORITY, aggregate_seeds, seeds_rows

    headers, rows = seeds_rows(aggregate_seeds(frame))
    print_fitted(title, headers, rows, SEEDS_TERMINAL_PRIORITY, written, ("scheme", "cell"))
