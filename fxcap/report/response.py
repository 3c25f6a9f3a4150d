"""Knob response of the device and of each model, and the audio of the listening excerpt.

For every setting point (see :mod:`fxcap.report.selection`) three figures are measured on the
excerpts of :mod:`fxcap.report.excerpts`, for the device (the session's aligned takes, averaged over
the takes at that setting) and for each model (the same input rendered at that setting):

* ``gain_db``: RMS gain of the steady calibration tone, out/in (dB);
* ``thd_db``: harmonic distortion of that tone (dB, :func:`fxcap.report.measure.thd_db`), with the
  fundamental measured on the dry tone;
* ``thd_floor_db``: what that THD reads from noise alone (:func:`fxcap.report.measure.thd_noise_floor_db`):
  a device THD near it is the recording's noise, not the device's distortion;
* ``compression_db``: gain reduction of loud against quiet program material
  (:func:`fxcap.report.measure.compression_db`), from 20 ms frames of every program excerpt.

The report plots gain and THD for effects, gain and gain reduction for compressors and limiters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fxcap.capture.session import Session
from fxcap.report import measure
from fxcap.report.excerpts import Excerpt, ExcerptConfig, listening_excerpt, program_excerpts, tone_excerpt
from fxcap.report.runs import ReportRun, finite_or_none, render
from fxcap.report.selection import ResponseSlice, SettingPoint

MEASURES: dict[str, str] = {
    "gain_db": "tone gain (dB)",
    "thd_db": "tone THD (dB)",
    "thd_floor_db": "tone THD noise floor (dB)",
    "compression_db": "gain reduction, loud vs quiet (dB)",
}
"""Measure key -> axis label."""

DYNAMICS_KINDS = ("compressor", "limiter", "leveler")
"""Device kinds whose knob response shows gain reduction instead of harmonic distortion."""

Progress = Callable[[str], None]


def plotted_measures(device_kind: str) -> tuple[str, str]:
    """The two measures the knob-response figure shows for a device of this kind."""
    return ("gain_db", "compression_db") if device_kind.lower() in DYNAMICS_KINDS else ("gain_db", "thd_db")


@dataclass
class KnobResponse:
    """Measures per setting point for the device and every model.

    ``device[i]`` and ``models[label][i]`` are ``{measure: value or None}`` for point ``i``;
    ``dry`` the same measures of the dry input (gain 0 dB, the input's own THD: the measurement floor).
    """

    tone_hz: float | None
    excerpts: list[Excerpt]
    points: list[SettingPoint]
    slices: list[ResponseSlice]
    device: list[dict[str, float | None]]
    dry: dict[str, float | None]
    models: dict[str, list[dict[str, float | None]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tone_hz": self.tone_hz,
            "excerpts": [e.to_dict() for e in self.excerpts],
            "points": [p.to_dict() for p in self.points],
            "slices": [s.to_dict() for s in self.slices],
            "device": self.device,
            "dry": self.dry,
            "models": self.models,
        }


@dataclass
class Listening:
    """Audio of the listening excerpt: dry, device and every model at the chosen points (float32)."""

    excerpt: Excerpt
    sample_rate: int
    points: list[int]
    dry: np.ndarray
    device: dict[int, np.ndarray]
    models: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


class _Analysis:
    """The input-side facts every source is measured against."""

    def __init__(self, x: np.ndarray, sample_rate: int, tone: Excerpt | None, programs: list[Excerpt], notes: list[str]):
        self.sample_rate = sample_rate
        self.tone = tone
        self.programs = programs
        self.tone_hz: float | None = None
        self.tone_in = x[tone.start : tone.stop] if tone is not None else None
        if self.tone_in is not None:
            self.tone_hz = measure.tone_frequency(self.tone_in, sample_rate)
            try:
                measure.thd_db(self.tone_in, sample_rate, self.tone_hz)
            except ValueError as exc:
                notes.append(f"harmonic distortion not measured: the calibration tone is too short ({exc})")
                self.tone_hz = None
        self.levels_in = np.concatenate([measure.frame_levels_db(x[e.start : e.stop], sample_rate) for e in programs]) if programs else np.zeros(0)

    def measures(self, tone_out: np.ndarray | None, levels_out: np.ndarray | None) -> dict[str, float | None]:
        result: dict[str, float | None] = {key: None for key in MEASURES}
        if tone_out is not None and self.tone_in is not None and np.all(np.isfinite(tone_out)):
            result["gain_db"] = finite_or_none(measure.gain_db(self.tone_in, tone_out))
            if self.tone_hz is not None:
                thd, floor = measure.thd_and_floor_db(tone_out, self.sample_rate, self.tone_hz)
                result["thd_db"], result["thd_floor_db"] = finite_or_none(thd), finite_or_none(floor)
        if levels_out is not None and levels_out.size and np.all(np.isfinite(levels_out)):
            result["compression_db"] = finite_or_none(measure.compression_db(self.levels_in, levels_out))
        return result

    def levels(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Frame levels of per-excerpt outputs (same order as :attr:`programs`)."""
        return np.concatenate([measure.frame_levels_db(y, self.sample_rate) for y in outputs]) if outputs else np.zeros(0)


def _average(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in MEASURES:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def _compatible(run: ReportRun, session: Session, points: Sequence[SettingPoint]) -> str:
    """Why ``run`` cannot be compared with ``session`` ('' when it can)."""
    if run.model is None:
        return run.problem or "no usable checkpoint"
    device = run.config.get("dataset", {}).get("device")
    if device and device != session.manifest.device.name:
        return f"trained on {device}, the session captured {session.manifest.device.name}"
    if run.sample_rate != session.sample_rate:
        return f"trained at {run.sample_rate} Hz, the session is at {session.sample_rate} Hz"
    for point in points:
        try:
            run.normalized(point.knobs)
        except ValueError as exc:
            return f"cannot be set to {point.label()}: {exc}"
    return ""


def analyse(
    session: Session,
    points: Sequence[SettingPoint],
    slices: Sequence[ResponseSlice],
    chosen: Sequence[int],
    runs: Sequence[ReportRun],
    config: ExcerptConfig = ExcerptConfig(),
    dataset_manifest: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[KnobResponse, Listening, list[str]]:
    """Measure the device and every compatible model at every point; collect the listening audio.

    Returns the knob response, the listening audio and notes (runs left out and why, measures that
    could not be made).
    """
    say = progress or (lambda message: None)
    notes: list[str] = []
    x = session.input_audio()
    layout = session.layout
    rate = session.sample_rate
    tone = tone_excerpt(layout, config)
    programs = program_excerpts(layout, config)
    listen = listening_excerpt(layout, config, dataset_manifest)
    if tone is None:
        notes.append("the signal has no calibration tone: tone gain and THD are not measured")
    if not programs:
        notes.append("the signal has no program material: gain reduction is not measured")
    analysis = _Analysis(x, rate, tone, programs, notes)
    dry_levels = analysis.levels([x[e.start : e.stop] for e in programs])
    dry = analysis.measures(analysis.tone_in, dry_levels)

    say(f"measuring {sum(len(p.take_ids) for p in points)} device takes")
    device_rows = []
    device_audio: dict[int, np.ndarray] = {}
    for i, point in enumerate(points):
        rows = []
        for take_id in point.take_ids:
            y = session.take_output(take_id)
            tone_out = y[tone.start : tone.stop] if tone is not None else None
            rows.append(analysis.measures(tone_out, analysis.levels([y[e.start : e.stop] for e in programs])))
            if i in chosen and i not in device_audio:
                device_audio[i] = np.array(y[listen.start : listen.stop], dtype=np.float32)
        device_rows.append(_average(rows))

    response = KnobResponse(
        tone_hz=analysis.tone_hz, excerpts=([tone] if tone else []) + programs + [listen], points=list(points),
        slices=list(slices), device=device_rows, dry=dry,
    )
    listening = Listening(excerpt=listen, sample_rate=rate, points=list(chosen), dry=np.array(x[listen.start : listen.stop], dtype=np.float32),
                          device=device_audio)

    for run in runs:
        problem = _compatible(run, session, points)
        if problem:
            notes.append(f"model {run.label} is left out of the knob response, spectrograms and audio: {problem}")
            continue
        assert run.model is not None
        say(f"rendering {run.label} at {len(points)} settings")
        knobs = np.stack([run.normalized(p.knobs) for p in points])

        def rendered(excerpt: Excerpt, rows: np.ndarray) -> np.ndarray:
            return render(run.model, x[excerpt.preroll_start : excerpt.stop], rows)[:, excerpt.preroll :]

        tone_out = rendered(tone, knobs) if tone is not None else None
        program_out = [rendered(e, knobs) for e in programs]
        rows = []
        for i in range(len(points)):
            levels = analysis.levels([p[i] for p in program_out]) if programs else None
            rows.append(analysis.measures(tone_out[i] if tone_out is not None else None, levels))
        response.models[run.label] = rows
        if chosen:
            audio = rendered(listen, knobs[list(chosen)])
            listening.models[run.label] = {point: audio[j] for j, point in enumerate(chosen)}
    return response, listening, notes
