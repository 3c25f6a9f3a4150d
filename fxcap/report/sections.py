"""The report's sections: each function turns measured data (and figures) into one :class:`~fxcap.report.html.Section`.

A section whose inputs are missing says what is missing and which command provides it.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Mapping, Sequence

import numpy as np

from fxcap import __version__
from fxcap.capture.session import Session
from fxcap.dataset import DatasetInfo
from fxcap.errors import ModelError
from fxcap.modeling.compare import TABLE_COLUMNS, TEXT_COLUMNS, best_values, comparison_table, format_cell, is_best
from fxcap.report import figures
from fxcap.report import html as H
from fxcap.report.quality import TakeQuality
from fxcap.report.response import MEASURES, KnobResponse, Listening
from fxcap.report.runs import ReportRun
from fxcap.report.selection import SettingPoint, describe


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def summary_section(session: Session | None, dataset: DatasetInfo | None, runs: Sequence[ReportRun]) -> H.Section:
    """Facts about the session, dataset and runs the report is made from."""
    facts: list[tuple[str, str]] = []
    if session is not None:
        m = session.manifest
        takes = session.takes
        failed = sum(not t.passed for t in takes)
        refs = sum(t.is_reference for t in takes)
        seconds = m.signal.get("length_samples", 0) / session.sample_rate
        facts += [
            ("session", str(session.root)),
            ("device", f"{m.device.name} ({m.device.kind}); knobs: " + ", ".join(
                f"{k.name} {'/'.join(k.values)}" if k.is_switch else f"{k.name} {k.minimum:g}-{k.maximum:g}" for k in m.device.knobs)),
            ("capture", f"backend {m.backend.name}, {session.sample_rate} Hz, signal {m.signal.get('preset', '?')} "
                        f"({seconds:.1f} s), status {m.status}"),
            ("takes", f"{len(takes)} ({len(takes) - failed} passed, {failed} failed, {refs} reference)"),
        ]
    else:
        facts.append(("session", "none given"))
    if dataset is not None:
        splits = ", ".join(f"{name} {s.rows} rows / {s.seconds:.1f} s" for name, s in dataset.splits.items())
        facts += [("dataset", f"{dataset.name} ({dataset.path}), window {dataset.window} samples, hash {dataset.dataset_hash[:12]}"),
                  ("splits", splits)]
    else:
        facts.append(("dataset", "none given"))
    if runs:
        facts.append(("runs", f"{len(runs)} ({sum(r.evaluated for r in runs)} evaluated): " + ", ".join(r.label for r in runs)))
    else:
        facts.append(("runs", "none given"))
    facts.append(("generated", f"{_dt.datetime.now().astimezone().isoformat(timespec='seconds')} by fxcap {__version__}"))
    return H.Section("summary", "Summary", H.table(None, facts, text_columns=2, css="facts"))


def quality_section(rows: Sequence[TakeQuality] | None, png: bytes | None) -> H.Section:
    """Capture quality per take: the figure and a table (``rows`` None: no session given)."""
    if rows is None:
        return H.Section("capture-quality", "Capture quality", H.missing(
            "No capture session given: pass --session (or record one with `fxcap record`) to see latency, noise floor, "
            "repeatability and drift per take."))
    if not rows or png is None:
        return H.Section("capture-quality", "Capture quality", H.missing(
            "The session has no takes yet; continue the capture with `fxcap record --resume`."))
    table_rows = []
    for t in rows:
        status = H.Cell("ok") if t.passed else H.Cell("failed: " + ", ".join(t.failed_checks), "failed")
        table_rows.append([t.take_id, describe(t.knobs), "yes" if t.is_reference else "", _fmt(t.latency_samples, ".2f"),
                           _fmt(t.noise_floor_dbfs), _fmt(t.repeatability_db), _fmt(t.drift_ppm, "+.2f"), _fmt(t.gain_db, "+.2f"),
                           str(t.attempts), status])
    body = (
        H.paragraph("Alignment figures and check results of every take, in recording order. Latency and gain are what the "
                    "alignment removed; the noise floor is the RMS of the silent stretch; repeatability is the ESR between "
                    "the two identical validation copies (lower is better; it bounds the error a model can reach).", "lead")
        + H.figure(png, "capture quality per take", "Reference takes (repeats of the reference setting) are diamonds, failed takes crosses.")
        + H.table(["take", "knobs", "ref", "latency (smp)", "noise (dBFS)", "repeat ESR (dB)", "drift (ppm)", "gain (dB)", "tries", "status"],
                  table_rows, text_columns=2)
    )
    return H.Section("capture-quality", "Capture quality", body)


def response_section(
    session: Session | None,
    response: KnobResponse | None,
    pngs: Mapping[str, bytes],
    swept: Sequence[str],
    reason: str,
) -> H.Section:
    """Per swept knob: the response figure and a table of every measure for device and models."""
    if session is None or response is None:
        return H.Section("knob-response", "Knob response", H.missing(reason))
    tone = next((e for e in response.excerpts if e.role == "tone"), None)
    programs = [e for e in response.excerpts if e.role == "program"]
    rate = session.sample_rate
    lead = []
    if tone is not None and response.tone_hz is not None:
        lead.append(f"Tone gain and THD are measured on {tone.length / rate:.2f} s of the {response.tone_hz:.0f} Hz calibration tone "
                    f"({tone.description}).")
    if programs:
        lead.append(f"Gain reduction compares quiet and loud 20 ms frames of {len(programs)} program excerpts "
                    f"({sum(e.length for e in programs) / rate:.1f} s in all).")
    lead_in = max((e.preroll for e in response.excerpts), default=0) / rate
    lead.append(f"Models are run on the same input at each captured setting, from a zero state with {lead_in:.2f} s of lead-in.")
    body = H.paragraph(" ".join(lead), "lead")
    if not swept:
        body += H.paragraph("No knob was swept in this session (one setting only); the values below are for that setting.")
    sources = [("device", response.device)] + list(response.models.items())
    for part in response.slices:
        points = [response.points[i] for i in part.points]
        body += f"<h3>{H.esc(part.knob)}</h3>"
        if part.knob in pngs:
            caption = (f"Other swept knobs held at {describe(part.fixed)}." if part.fixed else
                       "Every captured setting (the other swept knobs vary too)." if len(swept) > 1 else "")
            body += H.figure(pngs[part.knob], f"knob response of {part.knob}", caption)
        label_names = [part.knob] + ([k for k in swept if k != part.knob] if not part.fixed else [])
        headers = ["source", "measure"] + [describe(p.knobs, label_names) for p in points]
        rows = []
        for label, values in sources:
            for key in MEASURES:
                rows.append([label, MEASURES[key]] + [_fmt(values[i][key]) for i in part.points])
        body += H.table(headers, rows, text_columns=2)
    if not response.slices:
        headers = ["source"] + [MEASURES[k] for k in MEASURES]
        rows = [[label, *[_fmt(values[0][k]) for k in MEASURES]] for label, values in sources if values]
        body += H.table(headers, rows)
    return H.Section("knob-response", "Knob response", body)


def point_label(point: SettingPoint, swept: Sequence[str]) -> str:
    """A setting as shown above players and beside spectrograms: its swept knobs (all knobs when none is swept)."""
    return describe(point.knobs, swept) if swept else describe(point.knobs)


def spectrogram_section(listening: Listening | None, png: bytes | None, reason: str) -> H.Section:
    """The spectrogram grid, or ``reason`` when there is none."""
    if listening is None or png is None:
        return H.Section("spectrograms", "Spectrograms", H.missing(reason))
    rate = listening.sample_rate
    text = (f"{listening.excerpt.length / rate:.1f} s of {listening.excerpt.description}; device and models at the same settings, "
            f"one shared colour scale ({figures.SPECTROGRAM_RANGE_DB:.0f} dB range).")
    return H.Section("spectrograms", "Spectrograms", H.paragraph(text, "lead") + H.figure(png, "spectrograms, device against models"))


def audio_section(listening: Listening | None, points: Sequence[SettingPoint], swept: Sequence[str], reason: str) -> H.Section:
    """Audio players: the dry excerpt, then device and every model at each chosen setting (one common gain, no clipping)."""
    if listening is None:
        return H.Section("audio", "Listen", H.missing(reason))
    rate = listening.sample_rate
    clips = [listening.dry] + list(listening.device.values()) + [a for m in listening.models.values() for a in m.values()]
    peak = max((float(np.max(np.abs(np.nan_to_num(c)))) for c in clips if c.size), default=0.0)
    scale = 0.98 / peak if peak > 0.98 else 1.0
    lead = (f"{listening.excerpt.length / rate:.1f} s of {listening.excerpt.description}, 16-bit WAV at {rate} Hz.")
    if scale < 1.0:
        lead += f" Every clip is turned down by {-20 * math.log10(scale):.1f} dB (the loudest peaks at {20 * math.log10(peak):+.1f} dBFS) so none clips; their relative levels are kept."
    body = H.paragraph(lead, "lead")
    body += '<div class="dry">' + H.audio_player(H.wav_bytes(listening.dry * scale, rate), "dry input") + "</div>"
    body += '<div class="players">'
    for point in listening.points:
        body += f'<div class="card"><h3>{H.esc(point_label(points[point], swept))}</h3>'
        if point in listening.device:
            body += H.audio_player(H.wav_bytes(listening.device[point] * scale, rate), "device")
        for label, audio in listening.models.items():
            if point in audio:
                body += H.audio_player(H.wav_bytes(audio[point] * scale, rate), label)
        body += "</div>"
    body += "</div>"
    return H.Section("audio", "Listen", body)


def training_section(runs: Sequence[ReportRun], png: bytes | None) -> H.Section:
    """Loss curves and a per-run table of epochs, losses and training time."""
    if not runs:
        return H.Section("training", "Training curves", H.missing(
            "No training run given: train models with `fxcap train --cond all` (or pass run folders) to see their loss curves."))
    rows = []
    for run in runs:
        last = run.history[-1] if run.history else {}
        best = min((r.get("valid_loss", math.inf) for r in run.history), default=math.inf)
        rows.append([run.label, run.scheme, str(run.config.get("parameters", "-")), str(len(run.history)),
                     _fmt(last.get("train_loss"), ".4g"), _fmt(last.get("valid_loss"), ".4g"), _fmt(best if math.isfinite(best) else None, ".4g"),
                     _fmt(sum(r.get("seconds", 0.0) for r in run.history), ".0f")])
    body = H.figure(png, "training curves") if png is not None else ""
    body += H.table(["run", "scheme", "params", "epochs", "last train loss", "last valid loss", "best valid loss", "train time (s)"],
                    rows, text_columns=2)
    return H.Section("training", "Training curves", body)


def comparison_section(runs: Sequence[ReportRun]) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The comparison tables (test split, held-out settings) as HTML with the best value of each column
    highlighted, and their rows as data."""
    evaluated = [r for r in runs if r.evaluated]
    if not evaluated:
        message = ("No evaluated run: evaluate runs with `fxcap evaluate --model RUN` (fxcap train does it by default) "
                   "to compare them here.")
        return H.missing(message), {}
    body, data = "", {}
    for split in ("test", "holdout"):
        try:
            frame = comparison_table([r.run_dir for r in evaluated], split)
        except ModelError:
            continue
        best = best_values(frame) if len(frame) > 1 else {}  # nothing to compare with a single run
        rows = []
        for _, row in frame.iterrows():
            rows.append([H.Cell(format_cell(key, row[key]), "best" if is_best(key, row[key], best) else "")
                         if key not in TEXT_COLUMNS else format_cell(key, row[key]) for key, _ in TABLE_COLUMNS])
        title = "Test split" if split == "test" else "Held-out knob settings"
        body += f"<h3>{title}</h3>" + H.table([label for _, label in TABLE_COLUMNS], rows, text_columns=len(TEXT_COLUMNS))
        data[split] = frame.to_dict(orient="records")
    if not body:
        return H.missing("The evaluated runs have no test scores; evaluate them again with `fxcap evaluate`."), {}
    lead = H.paragraph("Mean metrics over the knob settings of each split (lower is better); the best value of each column "
                       "is highlighted when there are several runs. Compute: GFLOP per second of audio, and MFLOP per knob change for hypernetworks.", "lead")
    not_evaluated = [r.label for r in runs if not r.evaluated]
    tail = H.paragraph(f"Not evaluated, so not in the table: {', '.join(not_evaluated)}.") if not_evaluated else ""
    return lead + body + tail, data


def esr_map_body(png: bytes | None) -> str:
    """The per-setting ESR heat map (test split) with the grade bands in words, or nothing without evaluated runs."""
    if png is None:
        return ""
    from fxcap.modeling.metrics import ESR_GRADES

    bands = ", ".join(f"below {bound:g}: {words}" for bound, words in ESR_GRADES)
    return ("<h3>ESR per knob setting (test split)</h3>" + H.figure(png, "ESR per knob setting")
            + H.paragraph(f"How a capture's ESR is commonly read: {bands}; above: poor. The worst setting is what a player "
                          "meets first."))
