"""Build the report: one self-contained HTML file plus the PNG figures and a JSON of every number.

Output folder::

    <out>/report.html              single file: figures and audio embedded (data URIs)
    <out>/report.json              every number behind the figures and tables
    <out>/capture_quality.png
    <out>/knob_response_<knob>.png one per swept knob
    <out>/spectrograms.png
    <out>/training_curves.png

Every input is optional, but at least one is needed: a session gives the capture-quality, knob-
response, spectrogram and audio sections (device only, or device against the models when runs are
given); runs give training curves and, when evaluated, the comparison table. Sections without their
inputs say what is missing and how to get it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fxcap import __version__
from fxcap.capture.profiles import KnobValue
from fxcap.capture.session import Session, find_sessions
from fxcap.dataset import DatasetInfo, load_dataset_info
from fxcap.errors import ModelError, ReportError
from fxcap.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fxcap.modeling.compare import TABLE_COLUMNS, TEXT_COLUMNS, best_values, comparison_table, find_runs, format_cell, is_best
from fxcap.report import figures
from fxcap.report import html as H
from fxcap.report.excerpts import ExcerptConfig
from fxcap.report.quality import TakeQuality, capture_quality
from fxcap.report.response import MEASURES, KnobResponse, Listening, analyse, plotted_measures
from fxcap.report.runs import ReportRun, load_report_runs
from fxcap.report.selection import SettingPoint, choose_points, describe, response_slices, setting_points, swept_knobs

HTML_NAME = "report.html"
JSON_NAME = "report.json"

Progress = Callable[[str], None]


@dataclass
class ReportConfig:
    """Options of :func:`build_report`.

    Attributes:
        excerpts: how much audio is analysed and played (seconds), see :class:`ExcerptConfig`.
        dpi: resolution of the figures.
        checkpoint: which weights of each run to use, ``best`` or ``last``.
        title: page title (default: ``fxcap report: <device>``).
    """

    excerpts: ExcerptConfig = field(default_factory=ExcerptConfig)
    dpi: int = figures.DEFAULT_DPI
    checkpoint: str = "best"
    title: str | None = None

    def __post_init__(self) -> None:
        if self.checkpoint not in ("best", "last"):
            raise ReportError(f"checkpoint must be best or last, not {self.checkpoint!r}")
        if not 20 <= int(self.dpi) <= 600:
            raise ReportError(f"dpi must be between 20 and 600, not {self.dpi}")


@dataclass
class ReportInputs:
    """What a report is made from (see :func:`resolve_inputs`), with notes on how defaults were chosen."""

    session: Path | None
    dataset: Path | None
    runs: list[Path]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A folder name for the report: the session's, else the dataset's, else ``runs``."""
        for path in (self.session, self.dataset):
            if path is not None:
                return path.name
        return "runs"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _default_dataset(base: Path, session: Path | None) -> Path | None:
    """The newest dataset under ``base``; with a session, the newest one built from that session's signal."""
    found = sorted(base.glob("*/dataset.json"), key=lambda p: p.stat().st_mtime, reverse=True) if base.is_dir() else []
    if session is None:
        return found[0].parent if found else None
    manifest = _read_json(session / "session.json")
    sha = manifest.get("signal", {}).get("sha256")
    device = manifest.get("device", {}).get("name")
    for path in found:
        data = _read_json(path)
        if sha and data.get("signal", {}).get("sha256") == sha and data.get("device", {}).get("name") == device:
            return path.parent
    return None


def _run_dataset(run: Path) -> dict[str, Any]:
    data = _read_json(run / "config.json").get("dataset", {})
    return data if isinstance(data, dict) else {}


def resolve_inputs(
    session: str | Path | None = None,
    dataset: str | Path | None = None,
    runs: Sequence[str | Path] | None = None,
    sessions_dir: str | Path = "sessions",
    datasets_dir: str | Path = "datasets",
    runs_dir: str | Path = "runs",
) -> ReportInputs:
    """Fill in what was not given.

    * session: the newest session under ``sessions_dir``;
    * dataset: the newest dataset under ``datasets_dir`` built from that session's signal and device
      (the newest of all when there is no session);
    * runs: the evaluated runs under ``runs_dir`` trained on that dataset (when any are), else those
      trained on the same device, else all of them.

    Raises :class:`ReportError` when nothing at all is found.
    """
    notes: list[str] = []
    session_path = Path(session) if session is not None else None
    if session_path is None:
        found = find_sessions(sessions_dir)
        session_path = found[-1] if found else None
    dataset_path = Path(dataset) if dataset is not None else _default_dataset(Path(datasets_dir), session_path)
    if dataset is None and dataset_path is None and session_path is not None and _default_dataset(Path(datasets_dir), None):
        notes.append(f"no dataset under {datasets_dir}/ was built from session {session_path.name}; pass --dataset to show one")
    if runs is not None:
        run_paths = [Path(r) for r in runs]
    else:
        run_paths = find_runs(runs_dir) if Path(runs_dir).is_dir() else []
        data_hash = _read_json(dataset_path / "dataset.json").get("dataset_hash") if dataset_path else None
        device = (_read_json(dataset_path / "dataset.json").get("device", {}).get("name") if dataset_path else None) or (
            _read_json(session_path / "session.json").get("device", {}).get("name") if session_path else None)
        same_data = [r for r in run_paths if data_hash and _run_dataset(r).get("hash") == data_hash]
        same_device = [r for r in run_paths if device and _run_dataset(r).get("device") == device]
        kept = same_data or same_device or run_paths
        if len(kept) < len(run_paths):
            notes.append(f"{len(run_paths) - len(kept)} evaluated run(s) under {runs_dir}/ were trained on other data and are "
                         "left out; pass --run to include them")
        run_paths = kept
    if session_path is None and dataset_path is None and not run_paths:
        raise ReportError(
            f"nothing to report: no session under {sessions_dir}/, no dataset under {datasets_dir}/ and no evaluated run "
            f"under {runs_dir}/; record, build and train first (fxcap record / build-dataset / train) or pass their folders"
        )
    return ReportInputs(session=session_path, dataset=dataset_path, runs=run_paths, notes=notes)


# -- helpers ------------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, Paths -> str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "knob"


class _Writer:
    """Writes the PNGs beside the HTML and remembers them."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.files: list[str] = []

    def png(self, name: str, data: bytes) -> bytes:
        atomic_write_bytes(self.out_dir / name, data)
        self.files.append(name)
        return data


# -- sections -----------------------------------------------------------------------------------------------


def _summary_section(session: Session | None, dataset: DatasetInfo | None, runs: Sequence[ReportRun]) -> H.Section:
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
            ("capture", f"backend {m.backend.get('name', '?')}, {session.sample_rate} Hz, signal {m.signal.get('preset', '?')} "
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


def _quality_section(rows: Sequence[TakeQuality] | None, png: bytes | None) -> H.Section:
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


def _response_section(
    session: Session | None,
    response: KnobResponse | None,
    pngs: Mapping[str, bytes],
    swept: Sequence[str],
    reason: str,
) -> H.Section:
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


def _point_label(point: SettingPoint, swept: Sequence[str]) -> str:
    return describe(point.knobs, swept) if swept else describe(point.knobs)


def _spectrogram_section(listening: Listening | None, png: bytes | None, reason: str) -> H.Section:
    if listening is None or png is None:
        return H.Section("spectrograms", "Spectrograms", H.missing(reason))
    rate = listening.sample_rate
    text = (f"{listening.excerpt.length / rate:.1f} s of {listening.excerpt.description}; device and models at the same settings, "
            f"one shared colour scale ({figures.SPECTROGRAM_RANGE_DB:.0f} dB range).")
    return H.Section("spectrograms", "Spectrograms", H.paragraph(text, "lead") + H.figure(png, "spectrograms, device against models"))


def _audio_section(listening: Listening | None, points: Sequence[SettingPoint], swept: Sequence[str], reason: str) -> H.Section:
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
        body += f'<div class="card"><h3>{H.esc(_point_label(points[point], swept))}</h3>'
        if point in listening.device:
            body += H.audio_player(H.wav_bytes(listening.device[point] * scale, rate), "device")
        for label, audio in listening.models.items():
            if point in audio:
                body += H.audio_player(H.wav_bytes(audio[point] * scale, rate), label)
        body += "</div>"
    body += "</div>"
    return H.Section("audio", "Listen", body)


def _training_section(runs: Sequence[ReportRun], png: bytes | None) -> H.Section:
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


def _comparison_tables(runs: Sequence[ReportRun]) -> tuple[str, dict[str, list[dict[str, Any]]]]:
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
        data[split] = _clean(frame.to_dict(orient="records"))
    if not body:
        return H.missing("The evaluated runs have no test scores; evaluate them again with `fxcap evaluate`."), {}
    lead = H.paragraph("Mean metrics over the knob settings of each split (lower is better); the best value of each column "
                       "is highlighted when there are several runs. Compute: GFLOP per second of audio, and MFLOP per knob change for hypernetworks.", "lead")
    not_evaluated = [r.label for r in runs if not r.evaluated]
    tail = H.paragraph(f"Not evaluated, so not in the table: {', '.join(not_evaluated)}.") if not_evaluated else ""
    return lead + body + tail, data


# -- the build -------------------------------------------------------------------------------------------------


@dataclass
class _Selection:
    """The settings a session's part of the report is about (see :mod:`fxcap.report.selection`)."""

    points: list[SettingPoint]
    swept: list[str]
    chosen: list[int]
    notes: list[str]


def _select(session: Session, settings: Sequence[Mapping[str, KnobValue]] | None) -> _Selection:
    profile = session.manifest.device
    points, notes = setting_points(session)
    if not points:
        return _Selection([], [], [], notes)
    swept = swept_knobs(profile, points, session.manifest.plan)
    return _Selection(points, swept, choose_points(profile, points, swept, settings), notes)


@dataclass
class _DevicePart:
    """What the session contributes: quality rows, measurements and their figures."""

    quality: list[TakeQuality] | None = None
    quality_png: bytes | None = None
    response: KnobResponse | None = None
    response_pngs: dict[str, bytes] = field(default_factory=dict)
    listening: Listening | None = None
    spectrogram_png: bytes | None = None
    measures: tuple[str, str] = ("gain_db", "thd_db")
    notes: list[str] = field(default_factory=list)
    reason: str = ("No capture session given: pass --session (the device's takes are the reference every model is compared "
                   "against) to see the device and the models at the captured knob settings.")


def _device_part(session: Session, selection: _Selection, runs: Sequence[ReportRun], info: DatasetInfo | None,
                 config: ReportConfig, writer: _Writer, colors: Mapping[str, Any], say: Progress) -> _DevicePart:
    part = _DevicePart(notes=list(selection.notes))
    say("capture quality")
    part.quality = capture_quality(session)
    if part.quality:
        part.quality_png = writer.png("capture_quality.png", figures.capture_quality_figure(part.quality, config.dpi))
    if not selection.points:
        part.reason = ("The session has no takes yet; continue it with `fxcap record --resume`." if not session.takes else
                       "No take of the session passed its checks, so there is no device audio to show; re-record the session.")
        return part
    profile = session.manifest.device
    slices = response_slices(profile, selection.points, selection.swept)
    part.response, part.listening, notes = analyse(
        session, selection.points, slices, selection.chosen, runs, config.excerpts, info.manifest if info else None, say)
    part.notes += notes
    part.measures = plotted_measures(profile.kind)
    say("figures")
    for index, piece in enumerate(slices):
        png = figures.knob_response_figure(part.response, index, profile.knob(piece.knob), part.measures, colors, config.dpi)
        part.response_pngs[piece.knob] = writer.png(f"knob_response_{_slug(piece.knob)}.png", png)
    labels = [_point_label(selection.points[i], selection.swept) for i in part.listening.points]
    part.spectrogram_png = writer.png("spectrograms.png", figures.spectrogram_figure(part.listening, labels, colors, config.dpi))
    return part


def _consistency_notes(session: Session | None, info: DatasetInfo | None, runs: Sequence[ReportRun]) -> list[str]:
    notes = []
    if info is not None:
        for run in runs:
            run_hash = run.config.get("dataset", {}).get("hash")
            if run_hash and run_hash != info.dataset_hash:
                notes.append(f"model {run.label} was trained on another dataset than {info.path} (hash {run_hash[:12]})")
    if session is not None and info is not None and info.device != session.manifest.device.name:
        notes.append(f"the dataset is of {info.device} but the session captured {session.manifest.device.name}")
    notes += [f"run {run.label} has no finished epoch (no metrics.csv rows)" for run in runs if not run.history]
    return notes


def build_report(
    out_dir: str | Path,
    session: str | Path | Session | None = None,
    dataset: str | Path | None = None,
    runs: Sequence[str | Path] = (),
    settings: Sequence[Mapping[str, KnobValue]] | None = None,
    config: ReportConfig | None = None,
    progress: Progress | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write the report into ``out_dir`` and return the path of ``report.html``.

    Args:
        out_dir: output folder (created; files in it are replaced).
        session: a capture session (folder or :class:`Session`): capture quality, knob response,
            spectrograms and audio of the device.
        dataset: the dataset folder (summary; its test split supplies the listening excerpt).
        runs: training run folders: training curves, comparison (evaluated runs) and the models'
            knob response, spectrograms and audio (models trained on the session's device).
        settings: knob settings for spectrograms and audio (``[{"drive": 0}, {"drive": 10}]``,
            partial settings allowed, each must match a captured one); default: minimum, middle and
            maximum of the first swept knob.
        config: :class:`ReportConfig`.
        progress: called with a line of text at each slow step.
        notes: extra lines for the report's notes (e.g. from :func:`resolve_inputs`).

    Every input is checked (and ``settings`` matched) before anything is written.
    """
    config = config or ReportConfig()
    say = progress or (lambda message: None)
    out = Path(out_dir)
    opened = session if isinstance(session, Session) or session is None else Session.open(session)
    info = load_dataset_info(dataset) if dataset is not None else None
    report_runs = load_report_runs(list(runs), config.checkpoint)
    if opened is None and info is None and not report_runs:
        raise ReportError("nothing to report: give a session, a dataset or training runs")
    selection = _select(opened, settings) if opened is not None else None

    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out)
    colors = figures.model_colors([r.label for r in report_runs])
    device = _device_part(opened, selection, report_runs, info, config, writer, colors, say) if opened and selection else _DevicePart()
    histories = {r.label: r.history for r in report_runs if r.history}
    training_png = writer.png("training_curves.png", figures.training_curves_figure(histories, colors, config.dpi)) if histories else None
    comparison_body, comparison_data = _comparison_tables(report_runs)
    all_notes = list(notes) + _consistency_notes(opened, info, report_runs) + device.notes
    points = selection.points if selection else []
    swept = selection.swept if selection else []

    data: dict[str, Any] = {"fxcap_version": __version__, "session": opened.root if opened else None,
                            "dataset": info.path if info else None, "runs": [r.run_dir for r in report_runs]}
    if device.quality is not None:
        data["capture_quality"] = [q.to_dict() for q in device.quality]
    if device.response is not None:
        data["knob_response"] = dict(device.response.to_dict(), plotted=list(device.measures))
    if device.listening is not None:
        data["listening"] = {"excerpt": device.listening.excerpt.to_dict(), "points": device.listening.points,
                             "models": list(device.listening.models), "sample_rate": device.listening.sample_rate}
    data.update(histories=histories, comparison=comparison_data, notes=all_notes, figures=list(writer.files))

    device_name = opened.manifest.device.name if opened else (info.device if info else "trained models")
    sections = [
        _summary_section(opened, info, report_runs),
        _quality_section(device.quality, device.quality_png),
        _response_section(opened, device.response, device.response_pngs, swept, device.reason),
        _spectrogram_section(device.listening, device.spectrogram_png, device.reason),
        _audio_section(device.listening, points, swept, device.reason),
        _training_section(report_runs, training_png),
        H.Section("comparison", "Model comparison", comparison_body),
        H.Section("notes", "Notes", "<ul class=\"notes\">" + "".join(f"<li>{H.esc(n)}</li>" for n in all_notes) + "</ul>"
                  if all_notes else H.paragraph("Nothing to note.")),
    ]
    subtitle = " · ".join(part for part in (
        str(opened.root) if opened else "", info.name if info else "", f"{len(report_runs)} model(s)" if report_runs else "") if part)
    atomic_write_json(out / JSON_NAME, _clean(data))
    path = atomic_write_text(out / HTML_NAME, H.page(config.title or f"fxcap report: {device_name}", subtitle, sections))
    say(f"wrote {path}")
    return path
