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


# -- the plan preview of `fxcap record --dry-run` ---------------------------------------------------

PREVIEW_ROWS = 200
"""Most takes the plan preview lists one by one (the rest are counted)."""


def _preview_setting(preview: Any, cost: Any) -> str:
    """A take's setting: the knobs turned by hand in the prompts' words (``DRIVE to 6 (about 1 o'clock)``),
    else the knob values."""
    from fxcap.capture.knob_setters import knob_instruction
    from fxcap.capture.record import describe_knobs

    if cost.turned:
        return "turn " + ", ".join(knob_instruction(preview.profile.knob(name), cost.take.knobs[name]) for name in cost.turned)
    if preview.timing.manual_knobs:
        return "(knobs as before)"
    return describe_knobs(cost.take.knobs)


def print_capture_preview(preview: Any) -> None:
    """``fxcap record --dry-run``: the takes in order (knob positions in words for knobs set by hand)
    and the estimated time: audio per take, knob changes, total."""
    estimate = preview.estimate
    table = Table(title=f"Plan: {len(estimate.takes)} takes of {preview.profile.name} (nothing is played with --dry-run)")
    for column in ("take", "setting", "audio (s)", "knobs (s)"):
        table.add_column(column, justify="right" if "(s)" in column else "left")
    if estimate.level_seconds:
        table.add_row("level", "signal level search (at least one pass per setting)", f"{estimate.level_seconds:.1f}", "")
    if estimate.calibration_seconds:
        bypass = "switch the device to bypass, then back on" if estimate.bypass_seconds else "device bypassed"
        table.add_row("calibration", bypass, f"{estimate.calibration_seconds:.1f}", f"{estimate.bypass_seconds:.0f}")
    for cost in estimate.takes[:PREVIEW_ROWS]:
        name = cost.take.take_id + (" (reference)" if cost.take.is_reference else "")
        table.add_row(name, _preview_setting(preview, cost), f"{cost.audio_seconds:.1f}", f"{cost.knob_seconds:.0f}")
    if len(estimate.takes) > PREVIEW_ROWS:
        rest = estimate.takes[PREVIEW_ROWS:]
        table.add_row(f"... {len(rest)} more", "", f"{sum(c.audio_seconds for c in rest):.1f}", f"{sum(c.knob_seconds for c in rest):.0f}")
    console.print(table)
    from fxcap.capture.budget import format_duration

    def seconds(value: float) -> str:
        return f"{value:.0f} s" + (f" ({format_duration(value)})" if value >= 120 else "")

    per_take = estimate.takes[0].audio_seconds if estimate.takes else estimate.signal_seconds
    margin = preview.timing.margin_seconds
    probe = preview.timing.probe_seconds
    lines = [
        f"audio per take: {per_take:.1f} s (signal {estimate.signal_seconds:.1f} s"
        + (f" + {margin:.2f} s pre-roll/tail" if margin else "") + (f" + {probe:.2f} s knob probe" if probe else "") + ")",
        f"audio: {seconds(estimate.audio_seconds)}: "
        + (f"level search {estimate.level_seconds:.0f} s, " if estimate.level_seconds else "")
        + f"calibration take {estimate.calibration_seconds:.1f} s, {len(estimate.takes)} takes"
        + (f" incl. {estimate.reference_takes} reference re-takes" if estimate.reference_takes else ""),
        f"knob changes by hand: {estimate.knob_changes} turns"
        + (" and 2 bypass switches" if estimate.bypass_seconds else "")
        + f", {seconds(estimate.knob_seconds)}"
        if preview.timing.manual_knobs or estimate.bypass_seconds else "knob changes by hand: none (the backend sets the knobs)",
        f"total: about {format_duration(estimate.seconds)}"
        + ("" if estimate.realtime else " of audio; the virtual device or plugin computes it, usually faster than real time")
        + " (re-takes of failed takes not included)",
    ]
    for line in lines:
        console.print(line, highlight=False, markup=False)


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


def ab_lines(numbers: dict[str, Any]) -> list[str]:
    """``fxcap ab``: the null test, the levels beside it, the evaluation at this setting and the switch times."""
    setting = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in numbers["model_knobs"].items())
    lines = [
        f"A/B of {numbers['run']} against {numbers['device']} at {setting}: {numbers['seconds']:.1f} s of {numbers['passage']}",
        f"null test: ESR {numbers['esr']:.4g} ({numbers['esr_db']:.1f} dB); difference {numbers['difference_rms_dbfs']:.1f} dBFS RMS, "
        f"{numbers['difference_peak_dbfs']:.1f} dBFS peak",
        f"levels: device {numbers['device_rms_dbfs']:.1f} dBFS RMS ({numbers['device_peak_dbfs']:.1f} peak), "
        f"model {numbers['model_rms_dbfs']:.1f} dBFS RMS ({numbers['model_peak_dbfs']:.1f} peak)",
    ]
    for row in numbers.get("evaluation", []):
        lines.append(f"the run's evaluation at this setting ({row['split']} split): ESR {row['esr']:.4g}")
    for problem in numbers["take"]["failed_checks"]:
        lines.append(f"warning: the device's take failed a check, compared anyway: {problem}")
    switches = ", ".join(f"{s['source']} {s['start_s']:g}-{s['end_s']:.3g} s" for s in numbers["switches"])
    lines.append(f"ab.wav: {switches}")
    return lines
