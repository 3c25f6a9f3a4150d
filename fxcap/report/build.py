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

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from fxcap import __version__
from fxcap.capture.profiles import KnobValue
from fxcap.capture.session import Session, find_sessions
from fxcap.dataset import DatasetInfo, load_dataset_info
from fxcap.dataset.find import datasets_newest_first
from fxcap.errors import ReportError
from fxcap.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from fxcap.modeling.compare import find_runs
from fxcap.report import figures
from fxcap.report import html as H
from fxcap.report import sections as S
from fxcap.report.excerpts import ExcerptConfig
from fxcap.report.quality import TakeQuality, capture_quality
from fxcap.report.response import KnobResponse, Listening, analyse, plotted_measures
from fxcap.report.runs import ReportRun, load_report_runs
from fxcap.report.selection import SettingPoint, choose_points, response_slices, setting_points, swept_knobs

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
    found = [folder / "dataset.json" for folder in datasets_newest_first(base)]
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
    labels = [S.point_label(selection.points[i], selection.swept) for i in part.listening.points]
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


def per_setting_tables(runs: Sequence[ReportRun], split: str) -> dict[str, pd.DataFrame]:
    """Label -> the rows of ``split`` in each evaluated run's ``evaluation_per_knob.csv`` (runs without one are left out)."""
    tables = {}
    for run in runs:
        path = run.run_dir / "evaluation_per_knob.csv"
        if not (run.evaluated and path.is_file()):
            continue
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError):
            continue
        frame = frame[frame["split"] == split] if "split" in frame and "esr" in frame else frame.iloc[0:0]
        if not frame.empty:
            tables[run.label] = frame
    return tables


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
    comparison_body, comparison_data = S.comparison_section(report_runs)
    esr_tables = per_setting_tables(report_runs, "test")
    esr_png = writer.png("esr_per_setting.png", figures.esr_heatmap_figure(esr_tables, config.dpi)) if esr_tables else None
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
        S.summary_section(opened, info, report_runs),
        S.quality_section(device.quality, device.quality_png),
        S.response_section(opened, device.response, device.response_pngs, swept, device.reason),
        S.spectrogram_section(device.listening, device.spectrogram_png, device.reason),
        S.audio_section(device.listening, points, swept, device.reason),
        S.training_section(report_runs, training_png),
        H.Section("comparison", "Model comparison", comparison_body + S.esr_map_body(esr_png)),
        H.Section("notes", "Notes", "<ul class=\"notes\">" + "".join(f"<li>{H.esc(n)}</li>" for n in all_notes) + "</ul>"
                  if all_notes else H.paragraph("Nothing to note.")),
    ]
    subtitle = " · ".join(part for part in (
        str(opened.root) if opened else "", info.name if info else "", f"{len(report_runs)} model(s)" if report_runs else "") if part)
    atomic_write_json(out / JSON_NAME, _clean(data))
    path = atomic_write_text(out / HTML_NAME, H.page(config.title or f"fxcap report: {device_name}", subtitle, sections))
    say(f"wrote {path}")
    return path
