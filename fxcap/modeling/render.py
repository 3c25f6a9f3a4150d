"""Render audio through a trained model at a knob setting or with knob automation, in blocks.

Knob values are given in the device's own units (``drive=7``) and normalized with the knob ranges
stored in the run's config. Automation comes from an envelope (``drive:0:10``: a linear ramp over
the whole file) or a CSV with a ``time`` column (seconds) and one column per knob, linearly
interpolated. The file is read and written block by block (hidden state carried across blocks), so
files of any length render in bounded memory; the output is written to a temporary file and renamed
when complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from fxcap.capture.profiles import Knob
from fxcap.errors import ModelError
from fxcap.io import atomic_write
from fxcap.modeling.fast import accelerate
from fxcap.modeling.inference import stream_blocks
from fxcap.modeling.render_input import channel_picker, check_block, check_finite, check_not_input
from fxcap.outpaths import check_out_file

DEFAULT_BLOCK = 65536
"""Samples per block when streaming (about 1.4 s at 48 kHz)."""


def _normalize(knob: Knob, value: Any) -> float:
    try:
        return knob.normalize(value)
    except ValueError as exc:
        raise ModelError(str(exc)) from None


@dataclass
class KnobSchedule:
    """Normalized knob values over time: constants plus piecewise-linear envelopes.

    ``constant`` maps knob -> raw value; ``envelopes`` maps knob -> (times in seconds, raw values).
    Knobs in neither sit at their default (or the middle of their range).
    """

    constant: dict[str, Any] = field(default_factory=dict)
    envelopes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def is_constant(self) -> bool:
        return not self.envelopes

    def values(self, ranges: list[Knob], start: int, length: int, sample_rate: int, total: int) -> np.ndarray:
        """Normalized knobs for samples ``[start, start+length)``: ``(K,)`` if constant else ``(length, K)``."""
        unknown = (set(self.constant) | set(self.envelopes)) - {r.name for r in ranges}
        if unknown:
            raise ModelError(f"the model has no knob {sorted(unknown)[0]!r}; its knobs are {', '.join(r.name for r in ranges)}")
        if self.is_constant:
            return np.array([_normalize(r, self._constant(r)) for r in ranges], dtype=np.float32)
        t = (start + np.arange(length)) / sample_rate
        columns = []
        for r in ranges:
            if r.name in self.envelopes:
                times, raw = self.envelopes[r.name]
                if r.is_switch:
                    raise ModelError(f"{r.name} is a switch; automate only continuous knobs")
                normalized = np.array([_normalize(r, v) for v in raw])
                columns.append(np.interp(t, times, normalized))
            else:
                columns.append(np.full(length, _normalize(r, self._constant(r))))
        return np.stack(columns, axis=1).astype(np.float32)

    def _constant(self, knob: Knob) -> Any:
        return self.constant.get(knob.name, knob.default)


def parse_envelope(spec: str, duration: float) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """``"drive:0:10"`` -> ramp from 0 to 10 over ``duration`` s; ``"drive:0:10:2"`` -> reach 10 at 2 s.

    More values give a piecewise ramp at evenly spaced times (``drive:0:10:0`` = up then down).
    """
    parts = spec.split(":")
    if len(parts) < 3:
        raise ModelError(f"--automate expects KNOB:START:END[:...] (e.g. drive:0:10), not {spec!r}")
    try:
        values = np.array([float(v) for v in parts[1:]])
    except ValueError:
        raise ModelError(f"--automate {spec!r}: values must be numbers") from None
    times = np.linspace(0.0, max(duration, 1e-9), len(values))
    return parts[0], (times, values)


def read_automation_csv(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Envelopes from a CSV with a ``time`` column (seconds, increasing) and one column per knob."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ModelError(f"cannot read automation CSV {path}: {exc}") from None
    if "time" not in frame.columns:
        raise ModelError(f"{path} needs a 'time' column (seconds) and one column per knob")
    times = frame["time"].to_numpy(dtype=np.float64)
    if np.any(np.diff(times) < 0):
        raise ModelError(f"{path}: the 'time' column must increase")
    return {c: (times, frame[c].to_numpy(dtype=np.float64)) for c in frame.columns if c != "time"}


def parse_settings(items: list[str], knobs: list[Knob], option: str = "--set") -> dict[str, Any]:
    """``["drive=7", "tone=4"]`` -> ``{"drive": 7.0, "tone": 4.0}`` (switch values stay strings).

    Names must be knobs of ``knobs``; values are checked later, when normalized.
    """
    by_name = {k.name: k for k in knobs}
    constant: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep:
            raise ModelError(f"{option} expects NAME=VALUE (e.g. drive=7), not {item!r}")
        if name not in by_name:
            raise ModelError(f"the model has no knob {name!r}; its knobs are {', '.join(by_name)}")
        constant[name] = value if by_name[name].is_switch else _number(name, value)
    return constant


def knobs_from_run(run_config: dict[str, Any]) -> list[Knob]:
    """The knobs (names, ranges, defaults) stored in a run's config, in the model's input order."""
    return [Knob.from_dict(item) for item in run_config["dataset"]["knobs"]]


def render_file(
    model: torch.nn.Module,
    ranges: list[Knob],
    sample_rate: int,
    in_path: str | Path,
    out_path: str | Path,
    schedule: KnobSchedule,
    block: int = DEFAULT_BLOCK,
    channel: int | None = None,
    mix: bool = False,
) -> dict[str, Any]:
    """Process ``in_path`` through ``model`` into ``out_path`` (float32 WAV).

    A multichannel input needs ``channel`` (1-based) or ``mix`` (their average). Raises
    :class:`ModelError` when the file's rate differs from the model's (resample it first), at the
    first NaN or infinite input sample, and for the checks of :mod:`fxcap.modeling.render_input`;
    ``out_path`` is then left as it was. Returns ``{"samples", "seconds", "peak"}``.
    """
    block = check_block(block)
    check_not_input(in_path, out_path)
    check_out_file(out_path)
    try:
        info = sf.info(str(in_path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ModelError(f"cannot read {in_path}: {exc}") from None
    if info.samplerate != sample_rate:
        raise ModelError(
            f"{in_path} is at {info.samplerate} Hz but the model was trained at {sample_rate} Hz; "
            f"resample it first (e.g. sox {in_path} -r {sample_rate} in_{sample_rate}.wav)"
        )
    total = info.frames
    pick = channel_picker(in_path, info.channels, channel, mix)
    peak = 0.0
    model = accelerate(model)  # numba kernels when the model has a fast path; same call and state

    def blocks() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        position = 0
        for chunk in sf.blocks(str(in_path), blocksize=block, dtype="float32", always_2d=True):
            mono = np.ascontiguousarray(pick(chunk))
            check_finite(mono, position, sample_rate, in_path)
            x = torch.from_numpy(mono)[None, :]
            yield x, torch.from_numpy(schedule.values(ranges, position, len(chunk), sample_rate, total))[None]
            position += len(chunk)

    def write(tmp: Path) -> None:
        nonlocal peak
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, subtype="FLOAT", format="WAV") as out:
            for y, _ in stream_blocks(model, blocks()):
                y_np = y[0].reshape(-1).numpy()
                peak = max(peak, float(np.max(np.abs(y_np)))) if len(y_np) else peak
                out.write(y_np)

    atomic_write(out_path, write)
    return {"samples": total, "seconds": total / sample_rate, "peak": peak}


def render_run(
    run_dir: str | Path,
    in_path: str | Path,
    out_path: str | Path,
    settings: list[str] | None = None,
    automate: list[str] | None = None,
    automation_csv: str | Path | None = None,
    checkpoint: str = "best",
    block: int = DEFAULT_BLOCK,
    channel: int | None = None,
    mix: bool = False,
) -> dict[str, Any]:
    """Render ``in_path`` through the model of ``run_dir`` (what ``fxcap render`` calls).

    ``settings`` are ``NAME=VALUE`` strings; ``automate`` are envelopes (:func:`parse_envelope`);
    ``automation_csv`` a CSV of envelopes (:func:`read_automation_csv`); ``channel``/``mix`` pick
    the signal of a multichannel input (:func:`render_file`).
    """
    from fxcap.modeling.train import load_run

    check_block(block)  # the cheap checks before the model is loaded
    check_not_input(in_path, out_path)
    model, run_config = load_run(run_dir, checkpoint)
    knobs = knobs_from_run(run_config)
    constant = parse_settings(settings or [], knobs)
    try:
        duration = sf.info(str(in_path)).duration
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ModelError(f"cannot read {in_path}: {exc}") from None
    envelopes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if automation_csv is not None:
        envelopes.update(read_automation_csv(automation_csv))
    for spec in automate or []:
        name, envelope = parse_envelope(spec, duration)
        envelopes[name] = envelope
    schedule = KnobSchedule(constant=constant, envelopes=envelopes)
    return render_file(model, knobs, int(run_config["dataset"]["sample_rate"]), in_path, out_path, schedule, block, channel, mix)


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ModelError(f"{name} must be a number, not {text!r}") from None
