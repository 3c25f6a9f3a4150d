"""The report's figures: one function per figure, each returning PNG bytes (matplotlib, Agg backend).

Colours are consistent across figures: the device is black, each model keeps the colour given in
``colors`` (see :func:`model_colors`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from fxcap.capture.profiles import Knob
from fxcap.errors import ReportError
from fxcap.report.measure import spectrogram_db
from fxcap.report.quality import TakeQuality
from fxcap.report.response import MEASURES, KnobResponse, Listening
from fxcap.report.selection import describe, format_value, sort_key

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

DEFAULT_DPI = 100
"""Dots per inch of every figure (a 11-inch-wide figure is 1100 pixels wide)."""

DEVICE_COLOR = "black"
MIN_SPAN_DB = 2.0
"""Smallest y range (dB) of a knob-response panel."""
SPECTROGRAM_FRAMES = 300
"""Most time frames per spectrogram panel (the hop grows for long excerpts; keeps figures light)."""

SPECTROGRAM_RANGE_DB = 100.0
"""Dynamic range of the spectrogram colour scale (dB below the loudest bin of the figure)."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the installation
        raise ReportError("the report needs matplotlib; install it with `pip install fxcap[report]`") from None
    return plt


def _png(fig: "Figure", dpi: int) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def model_colors(labels: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per model label (matplotlib's tab10 cycle, then tab20)."""
    plt = _pyplot()
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20").colors[1::2])
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


# -- capture quality ----------------------------------------------------------------------------------

QUALITY_PANELS = (
    ("latency_samples", "latency (samples)"),
    ("noise_floor_dbfs", "noise floor (dBFS)"),
    ("repeatability_db", "repeatability ESR (dB)"),
    ("drift_ppm", "drift (ppm)"),
    ("gain_db", "rig gain (dB)"),
)


def capture_quality_figure(takes: Sequence[TakeQuality], dpi: int = DEFAULT_DPI) -> bytes:
    """Five panels over the take index (latency, noise floor, repeatability, drift, rig gain) and a legend.

    Reference takes are orange diamonds, takes that failed a check red crosses, the others blue dots.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, grid = plt.subplots(2, 3, figsize=(12, 5.6))
    axes = grid.ravel()
    index = np.array([t.index for t in takes], dtype=float)
    kinds = {
        "take": np.array([not t.is_reference and t.passed for t in takes], dtype=bool),
        "reference take": np.array([t.is_reference and t.passed for t in takes], dtype=bool),
        "failed take": np.array([not t.passed for t in takes], dtype=bool),
    }
    styles = {"take": dict(marker="o", color="tab:blue", s=22), "reference take": dict(marker="D", color="tab:orange", s=34),
              "failed take": dict(marker="x", color="tab:red", s=40)}
    for ax, (key, label) in zip(axes, QUALITY_PANELS):
        values = np.array([np.nan if getattr(t, key) is None else float(getattr(t, key)) for t in takes])
        ax.plot(index, values, color="0.75", linewidth=0.8, zorder=1)
        for kind, mask in kinds.items():
            if mask.any():
                ax.scatter(index[mask], values[mask], label=kind, zorder=2, **styles[kind])
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("take index", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
        if not np.isfinite(values).any():
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="0.5")
    legend_ax = axes[len(QUALITY_PANELS)]
    legend_ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        legend_ax.legend(handles, labels, loc="center", fontsize=10, frameon=False)
    fig.suptitle("Capture quality per take", fontsize=12)
    fig.tight_layout()
    return _png(fig, dpi)


# -- knob response --------------------------------------------------------------------------------------


def knob_response_figure(
    response: KnobResponse,
    slice_index: int,
    knob: Knob,
    measures: Sequence[str],
    colors: Mapping[str, Any],
    dpi: int = DEFAULT_DPI,
) -> bytes:
    """One panel per measure: the value along ``knob`` for the device (black) and every model.

    Points of the slice are joined by lines when the other swept knobs are held fixed (or none
    exist), and shown as markers only when the slice mixes settings of several knobs.
    """
    plt = _pyplot()
    part = response.slices[slice_index]
    points = [response.points[i] for i in part.points]
    x = np.array([sort_key(knob, p.knobs[knob.name]) for p in points], dtype=float)
    swept_others = len({tuple(sorted((k, str(v)) for k, v in p.knobs.items() if k != knob.name)) for p in points}) > 1
    linestyle = "none" if swept_others else "-"
    fig, axes = plt.subplots(1, len(measures), figsize=(5.6 * len(measures), 3.9), squeeze=False)
    for ax, key in zip(axes[0], measures):
        series = [("device", response.device, DEVICE_COLOR, "o", 2.2)] + [
            (label, rows, colors.get(label, "tab:gray"), "s", 1.4) for label, rows in response.models.items()
        ]
        drawn = False
        for label, rows, color, marker, width in series:
            y = np.array([np.nan if rows[i][key] is None else rows[i][key] for i in part.points], dtype=float)
            if np.isfinite(y).any():
                ax.plot(x, y, linestyle=linestyle, marker=marker, color=color, linewidth=width,
                        markersize=6 if label == "device" else 4, label=label, zorder=3 if label == "device" else 2)
                drawn = True
        low, high = ax.get_ylim()
        if drawn and high - low < MIN_SPAN_DB:  # keep a 0.01 dB wobble from looking like a trend
            centre = 0.5 * (low + high)
            ax.set_ylim(centre - MIN_SPAN_DB / 2, centre + MIN_SPAN_DB / 2)
        floor = response.dry.get(key) if key == "thd_db" else None
        if floor is not None and drawn:
            low, high = ax.get_ylim()
            if floor >= low - 0.25 * (high - low):
                ax.axhline(floor, color="0.5", linestyle=":", linewidth=1, label="dry input (measurement floor)")
            else:
                ax.plot([], [], color="0.5", linestyle=":", linewidth=1, label=f"dry input: {floor:.0f} dB (below the axis)")
        if not drawn:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set_ylabel(MEASURES[key])
        ax.set_xlabel(knob.name + (f" ({knob.unit})" if knob.unit else ""))
        ticks = sorted(set(x.tolist()))
        ax.set_xticks(ticks)
        if knob.is_switch:
            assert knob.values is not None
            ax.set_xticklabels([knob.values[int(t)] for t in ticks])
        else:
            ax.set_xticklabels([format_value(t) for t in ticks], rotation=0 if len(ticks) < 12 else 90)
        ax.grid(True, alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    ncol = min(len(handles), 6) or 1
    rows = -(-len(handles) // ncol)
    bottom = (0.07 + 0.055 * rows) if handles else 0.0
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    held = f" ({describe(part.fixed)})" if part.fixed else (" (all captured settings)" if swept_others else "")
    fig.suptitle(f"Knob response: {knob.name}{held}", fontsize=12)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return _png(fig, dpi)


# -- spectrograms -------------------------------------------------------------------------------------------


def spectrogram_figure(
    listening: Listening,
    row_labels: Sequence[str],
    colors: Mapping[str, Any],
    dpi: int = DEFAULT_DPI,
    n_fft: int = 1024,
) -> bytes:
    """A grid of spectrograms of the listening excerpt: one row per chosen setting, one column for the
    device and one per model, on a shared dB colour scale (log frequency axis)."""
    plt = _pyplot()
    columns = ["device"] + list(listening.models)
    rows = listening.points
    rate = listening.sample_rate
    spectra: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for point in rows:
        for column in columns:
            audio = listening.device.get(point) if column == "device" else listening.models[column].get(point)
            if audio is not None and audio.size:
                spectra[(point, column)] = spectrogram_db(np.nan_to_num(audio), rate, n_fft, max_frames=SPECTROGRAM_FRAMES)
    if not spectra:
        raise ReportError("no audio to draw spectrograms of")
    vmax = max(float(s[2].max()) for s in spectra.values())
    vmin = vmax - SPECTROGRAM_RANGE_DB
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.9 * len(columns) + 1.2, 2.3 * len(rows) + 0.8),
                             squeeze=False, sharex=True, sharey=True)
    mesh = None
    low = max(20.0, rate / n_fft)
    for r, point in enumerate(rows):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            if (point, column) not in spectra:
                ax.text(0.5, 0.5, "no audio", transform=ax.transAxes, ha="center", va="center", color="0.5")
                continue
            freqs, times, db = spectra[(point, column)]
            keep = freqs >= low
            mesh = ax.pcolormesh(times, freqs[keep], db[keep], vmin=vmin, vmax=vmax, cmap="magma", shading="auto", rasterized=True)
            ax.set_yscale("log")
            ax.set_ylim(low, rate / 2)
            if r == 0:
                ax.set_title(column, fontsize=10, color=DEVICE_COLOR if column == "device" else colors.get(column, "black"))
            if c == 0:
                ax.set_ylabel(f"{row_labels[r]}\nHz", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("s")
            ax.tick_params(labelsize=8)
    right = 1.0 - 1.1 / fig.get_figwidth()  # leave 1.1 inch for the colour bar and its labels
    fig.tight_layout(rect=(0, 0, right, 1))
    if mesh is not None:
        cax = fig.add_axes((right + 0.15 / fig.get_figwidth(), 0.15, 0.15 / fig.get_figwidth(), 0.7))
        fig.colorbar(mesh, cax=cax, label="dBFS")
    return _png(fig, dpi)


# -- training curves -------------------------------------------------------------------------------------------


def training_curves_figure(histories: Mapping[str, Sequence[Mapping[str, float]]], colors: Mapping[str, Any], dpi: int = DEFAULT_DPI) -> bytes:
    """Training (dashed) and validation (solid) loss per epoch of every run, log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.2))
    drawn = False
    for label, rows in histories.items():
        epochs = [r["epoch"] for r in rows if "epoch" in r]
        if not epochs:
            continue
        color = colors.get(label, "tab:gray")
        for key, style, suffix in (("valid_loss", "-", "valid"), ("train_loss", "--", "train")):
            values = [r.get(key, np.nan) for r in rows if "epoch" in r]
            ax.plot(epochs, values, linestyle=style, marker="o" if len(epochs) < 30 else None, markersize=3,
                    color=color, label=f"{label} ({suffix})")
            drawn = True
    if drawn:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:.3g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        last = max(r["epoch"] for rows in histories.values() for r in rows if "epoch" in r)
        ax.set_xlim(0.5, last + 0.5)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.text(0.5, 0.5, "no finished epoch", transform=ax.transAxes, ha="center", va="center", color="0.5")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (L1 + STFT)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Training curves: validation (solid) and training (dashed) loss")
    fig.tight_layout()
    return _png(fig, dpi)


# -- per-setting ESR -------------------------------------------------------------------------------------

ESR_COLOR_RANGE = (1e-3, 1.0)
"""ESR values mapped to the ends of the heat map's colour scale (logarithmic)."""


def esr_heatmap_figure(tables: Mapping[str, Any], dpi: int = DEFAULT_DPI) -> bytes:
    """Test-split ESR per knob setting, one heat-map panel per run (label -> per-setting DataFrame with
    ``knob_<name>`` columns and ``esr``; the rows of ``evaluation_per_knob.csv`` of one split).

    Two varying knobs make a grid (first knob across, second down), one makes a single row, more are
    averaged down to the first two. Each cell shows its ESR; colours are logarithmic from
    :data:`ESR_COLOR_RANGE` (green: great, red: poor).
    """
    import pandas as pd
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    labels = list(tables)
    if not labels:
        raise ReportError("no evaluated run to draw a per-setting ESR heat map for")
    fig, axes = plt.subplots(1, len(labels), figsize=(3.6 * len(labels) + 1.0, 3.6), squeeze=False)
    norm = LogNorm(*ESR_COLOR_RANGE)
    image = None
    for ax, label in zip(axes[0], labels):
        frame = tables[label]
        knobs = [c for c in frame.columns if c.startswith("knob_") and frame[c].nunique() > 1][:2]
        if not knobs:
            knobs = [c for c in frame.columns if c.startswith("knob_")][:1]
        if len(knobs) == 1:
            grid = frame.groupby(knobs[0])["esr"].mean().to_frame().T
        else:
            grid = pd.pivot_table(frame, values="esr", index=knobs[1], columns=knobs[0], aggfunc="mean")
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(np.clip(values, *ESR_COLOR_RANGE), cmap="RdYlGn_r", norm=norm, origin="lower", aspect="auto")
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(col, row, f"{value:.3f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(values.shape[1]), [format_value(v) for v in grid.columns], fontsize=8)
        ax.set_xlabel(knobs[0][len("knob_"):])
        if len(knobs) > 1:
            ax.set_yticks(range(values.shape[0]), [format_value(v) for v in grid.index], fontsize=8)
            ax.set_ylabel(knobs[1][len("knob_"):])
        else:
            ax.set_yticks([])
        ax.set_title(label, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="ESR (log scale)", shrink=0.85)
    return _png(fig, dpi)
