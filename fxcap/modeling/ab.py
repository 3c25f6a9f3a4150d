"""A/B of a model against its device: the same passage through both, aligned, and the null test.

:func:`ab_compare` (``fxcap ab``) frames a passage with the capture signal's sync markers, calibration
tone and silence (:func:`fxcap.capture.signal.wrap_program`), plays it through the device the way
``fxcap record`` plays a take (a calibration take, then the take at the setting, both aligned and
checked by the recorder, :func:`fxcap.capture.record.attempt_take`: latency, polarity, clock drift and
the rig's gain removed, bad takes re-taken), and runs the model over the very same input at the same
setting from a zero state (:mod:`fxcap.modeling.inference`). Both are then on the dataset's scale
(the device's output referred to the bypass take), so they compare sample for sample:

* the null test: ESR (:func:`fxcap.dsp.esr.esr`, the model as the estimate, the device as the
  target) and the difference's RMS and peak in dBFS, beside the levels of the device and the model
  and, when ``fxcap evaluate`` scored this setting, the run's own evaluation ESR there;
* ``device.wav``, ``model.wav``, ``difference.wav`` (device minus model): the passage's span of the
  framed signal (from the start of the first validation copy to the end of the program);
* ``ab.wav``: A (the device) and B (the model) in turn every ``switch_seconds``, switched with short
  raised-cosine crossfades (equal gain: A and B are nearly the same signal) so a switch does not click;
* ``ab.json``: the numbers, the setting and the switch times (seconds into ``ab.wav``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fxcap.capture.backends.base import Backend
from fxcap.capture.layout import TestSignal
from fxcap.capture.plan import parse_settings as parse_device_settings
from fxcap.capture.profiles import Knob, KnobValue
from fxcap.capture.record import RecordConfig, attempt_calibration, attempt_take
from fxcap.capture.signal import SignalConfig, generate_signal, wrap_program
from fxcap.dsp.esr import esr
from fxcap.dsp.levels import amp_to_db, rms_dbfs
from fxcap.errors import CaptureError, ModelError
from fxcap.io import atomic_write_json, atomic_write_wav, read_wav
from fxcap.modeling.fast import accelerate
from fxcap.modeling.inference import run_blocks
from fxcap.modeling.render import DEFAULT_BLOCK, KnobSchedule, knobs_from_run
from fxcap.outpaths import check_out_dir

PASSAGE_PRESET = "short"
"""The built-in signal whose program regions make the default passage (and whose framing timings wrap it)."""

FILES = ("device.wav", "model.wav", "difference.wav", "ab.wav", "ab.json")
"""What :func:`ab_compare` writes into its folder."""


@dataclass
class ABConfig:
    """Options of the A/B.

    Attributes:
        switch_seconds: A and B alternate in ``ab.wav`` every this many seconds.
        crossfade_seconds: length of each switch's crossfade (seconds).
        passage_seconds: length of the default passage (seconds of the built-in signal's program
            material; a passage file is used whole).
        peak_dbfs: peak of the framed signal in dBFS (``None``: the passage keeps its own level; the
            default passage is at the capture signal's default level). Give the level the capture
            played at when it was not the default (e.g. the level fxcap chose for a plugin): a model
            is only right at the levels it was trained on.
        checkpoint: ``best`` or ``last``.
        block: samples per model call (the state is carried across blocks).
        record: the recorder's options for the device's takes (tries, alignment, checks).
    """

    switch_seconds: float = 4.0
    crossfade_seconds: float = 0.01
    passage_seconds: float = 12.0
    peak_dbfs: float | None = None
    checkpoint: str = "best"
    block: int = DEFAULT_BLOCK
    record: RecordConfig = field(default_factory=RecordConfig)

    def __post_init__(self) -> None:
        if not self.switch_seconds > 0:
            raise ModelError(f"--switch must be a positive number of seconds, not {self.switch_seconds!r}")
        if not 0 <= self.crossfade_seconds <= self.switch_seconds / 2:
            raise ModelError(f"the crossfade must be 0 .. half the switch time ({self.switch_seconds / 2:g} s), not {self.crossfade_seconds!r}")
        if not self.passage_seconds >= 3:
            raise ModelError(f"--seconds must be at least 3 (seconds of passage), not {self.passage_seconds!r}")


@dataclass
class ABResult:
    """What :func:`ab_compare` measured (the audio is the compared span, float32 at ``sample_rate``).

    Attributes:
        device / model / difference / ab: the aligned device output, the model's output, device minus
            model, and the alternating listening signal.
        sample_rate: Hz.
        setting: every knob of the device as played.
        model_knobs: the model's knobs (raw values) it ran at: the device's, as its knob setter set them
            (a MIDI knob is quantized to 128 steps).
        numbers: the null test and the levels (see :func:`null_test`), the device take's alignment and
            checks, and the evaluation's ESR at this setting when known.
        switches: ``{"start_s", "end_s", "source"}`` per stretch of ``ab.wav`` (``source`` ``A``: device, ``B``: model).
    """

    device: np.ndarray
    model: np.ndarray
    difference: np.ndarray
    ab: np.ndarray
    sample_rate: int
    setting: dict[str, KnobValue]
    model_knobs: dict[str, KnobValue]
    numbers: dict[str, Any]
    switches: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The content of ``ab.json``."""
        return {
            "sample_rate": self.sample_rate,
            "seconds": len(self.device) / self.sample_rate,
            "setting": self.setting,
            "model_knobs": self.model_knobs,
            **self.numbers,
            "switches": self.switches,
            "files": {"A": "device.wav", "B": "model.wav", "difference": "difference.wav", "listening": "ab.wav"},
        }


def default_passage(sample_rate: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of the built-in short signal's program material (plucks, chords, bass,
    drums...) at its default level, its regions joined in order; float32."""
    signal = generate_signal(SignalConfig(sample_rate=sample_rate, preset=PASSAGE_PRESET))
    parts = [signal.audio[region.start : region.stop] for region in signal.layout.regions if region.kind == "program"]
    return np.concatenate(parts)[: int(round(seconds * sample_rate))]


def framed_passage(passage: np.ndarray, sample_rate: int, peak_dbfs: float | None = None, source: str = "passage") -> TestSignal:
    """``passage`` framed for a take: sync markers, calibration tone and silence around it (see the module docstring)."""
    return wrap_program(passage, sample_rate, peak_dbfs=peak_dbfs, source=source, preset=PASSAGE_PRESET)


def compared_span(signal: TestSignal) -> slice:
    """Samples of the framed signal that hold the passage: the first validation copy to the program's end."""
    regions = {region.name: region for region in signal.layout.regions}
    return slice(regions["validation_a"].start, regions["program"].stop)


def model_settings(profile_knobs: dict[str, KnobValue], ranges: list[Knob], device_name: str, knob_names: list[str]) -> dict[str, KnobValue]:
    """The model's knob values taken from the device's full setting; a model whose knobs the device
    lacks is a one-line :class:`ModelError`."""
    missing = [k.name for k in ranges if k.name not in profile_knobs]
    if missing:
        raise ModelError(
            f"the model's knobs ({', '.join(k.name for k in ranges)}) are not knobs of {device_name} ({', '.join(knob_names)}): "
            f"{', '.join(missing)} missing; A/B a model against the device it was trained on (--device)"
        )
    return {k.name: profile_knobs[k.name] for k in ranges}


def run_model(model: Callable[..., Any], ranges: list[Knob], knobs: dict[str, KnobValue], audio: np.ndarray,
              sample_rate: int, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """The model's output over ``audio`` at the constant setting ``knobs`` (raw panel values), from a
    zero state, ``block`` samples per call; float32."""
    normalized = KnobSchedule(constant=dict(knobs)).values(ranges, 0, len(audio), sample_rate, len(audio))
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
    y, _ = run_blocks(accelerate(model), x, torch.from_numpy(normalized)[None], block)
    return y[0].numpy().astype(np.float32)


def alternate(a: np.ndarray, b: np.ndarray, sample_rate: int, switch_seconds: float,
              crossfade_seconds: float) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A for ``switch_seconds``, then B, then A..., each switch a raised-cosine crossfade of
    ``crossfade_seconds`` centred on the switch time; returns the signal and its stretches
    (``start_s``, ``end_s``, ``source``)."""
    n = len(a)
    t = np.arange(n) / sample_rate
    segment = np.floor(t / switch_seconds).astype(np.int64)
    weight_b = (segment % 2).astype(np.float64)  # 0: A, 1: B
    half = crossfade_seconds / 2
    switches = int(math.ceil(n / sample_rate / switch_seconds))
    for k in range(1, switches):
        at = k * switch_seconds
        inside = (t >= at - half) & (t < at + half)
        if half > 0 and inside.any():
            ramp = np.sin(0.5 * np.pi * (t[inside] - (at - half)) / (2 * half)) ** 2  # 0 -> 1
            weight_b[inside] = ramp if k % 2 == 1 else 1.0 - ramp
    mixed = (1.0 - weight_b) * a + weight_b * b
    stretches = [
        {"start_s": k * switch_seconds, "end_s": min((k + 1) * switch_seconds, n / sample_rate), "source": "AB"[k % 2]}
        for k in range(switches)
    ]
    return mixed.astype(np.float32), stretches


def null_test(device: np.ndarray, model: np.ndarray) -> dict[str, float]:
    """ESR of the model against the device (linear and dB), and the RMS and peak (dBFS) of the
    difference, of the device and of the model."""
    difference = device.astype(np.float64) - model.astype(np.float64)
    value = esr(model, device)

    def peak(x: np.ndarray) -> float:
        return float(amp_to_db(float(np.max(np.abs(x))) if len(x) else 0.0))

    return {
        "esr": value,
        "esr_db": float(10 * math.log10(max(value, 1e-30))),
        "difference_rms_dbfs": rms_dbfs(difference),
        "difference_peak_dbfs": peak(difference),
        "device_rms_dbfs": rms_dbfs(device),
        "device_peak_dbfs": peak(device),
        "model_rms_dbfs": rms_dbfs(model),
        "model_peak_dbfs": peak(model),
    }


def evaluation_at(run_dir: Path, knobs: dict[str, KnobValue]) -> list[dict[str, Any]]:
    """The run's evaluation rows (``evaluation_per_knob.csv``) at exactly this setting: ``split`` and ``esr``."""
    import pandas as pd

    path = run_dir / "evaluation_per_knob.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    rows = []
    for _, row in frame.iterrows():
        same = all(
            f"knob_{name}" in row.index
            and (str(row[f"knob_{name}"]) == str(value) if isinstance(value, str) else math.isclose(float(row[f"knob_{name}"]), float(value), abs_tol=1e-6))
            for name, value in knobs.items()
        )
        if same:
            rows.append({"split": str(row["split"]), "esr": float(row["esr"])})
    return rows


def play_device(backend: Backend, signal: TestSignal, setting: dict[str, KnobValue], config: RecordConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """The device's output for ``signal`` at ``setting``, as ``fxcap record`` takes it (a calibration
    take, then the take aligned and checked, re-taken while it fails a check); the aligned output and
    the facts of the take (calibration, alignment, checks, attempts and ``failed_checks``: the
    problems of a take that failed every try, which the A/B still compares and reports)."""
    config = replace(config, checks=replace(config.checks, output_clip_advice=backend.clip_advice))
    _, calibration, _, _ = attempt_calibration(backend, signal, config)
    result, attempts = attempt_take(backend, signal, setting, calibration, config)
    facts = {
        "calibration": calibration.to_dict(),
        "alignment": result.alignment.to_dict(),
        "checks": {c.name: {"passed": c.passed, "value": c.value} for c in result.checks},
        "attempts": attempts,
        "failed_checks": [f"{c.name}: {c.message}" for c in result.failed],
    }
    if result.raw.info.get("knobs_set"):  # what a knob setter really set (MIDI quantizes to 128 steps)
        facts["knobs_set"] = dict(result.raw.info["knobs_set"])
    return result.aligned, facts


def ab_compare(
    run_dir: str | Path,
    backend: Backend,
    out_dir: str | Path,
    settings: list[str] | None = None,
    passage: str | Path | None = None,
    config: ABConfig | None = None,
) -> ABResult:
    """A/B the model of ``run_dir`` against ``backend``'s device (see the module docstring).

    Args:
        run_dir: a training run folder.
        backend: the device, at the model's sample rate (its profile must have the model's knobs).
        out_dir: the folder for the files of :data:`FILES`.
        settings: ``NAME=VALUE`` of the device's knobs (the others at the profile's defaults).
        passage: a WAV file at the model's rate (default: :func:`default_passage`).
        config: the options.
    """
    from fxcap.modeling.train import load_run

    config = config or ABConfig()
    check_out_dir(out_dir)
    model, run_config = load_run(run_dir, config.checkpoint)
    return _compare(model, run_config, Path(run_dir), backend, Path(out_dir), settings, passage, config)


def run_ab(
    run_dir: str | Path,
    backend_spec: str,
    out_dir: str | Path,
    device: str | None = None,
    settings: list[str] | None = None,
    passage: str | Path | None = None,
    config: ABConfig | None = None,
    seed: int = 0,
    **backend_options: Any,
) -> ABResult:
    """What ``fxcap ab`` calls: :func:`ab_compare` with the device opened from ``--backend`` at the
    model's sample rate (``device``: the profile; default: the device the run's dataset was captured
    from when it is a built-in profile).

    ``backend_options``: the sound-card flags (:func:`fxcap.capture.capture.soundcard_options`).
    """
    from fxcap.capture.backends.factory import make_backend, parse_backend_spec
    from fxcap.capture.capture import soundcard_options
    from fxcap.capture.profiles import BUILTIN_PROFILES
    from fxcap.modeling.train import load_run

    config = config or ABConfig()
    check_out_dir(out_dir)
    options = soundcard_options(backend_spec, **backend_options)
    model, run_config = load_run(run_dir, config.checkpoint)
    rate = int(run_config["dataset"]["sample_rate"])
    trained_on = str(run_config["dataset"].get("device", ""))
    if device is None and parse_backend_spec(backend_spec)[0] != "plugin" and trained_on in BUILTIN_PROFILES:
        device = trained_on
    with make_backend(backend_spec, device, rate, seed=seed, **options) as backend:
        return _compare(model, run_config, Path(run_dir), backend, Path(out_dir), settings, passage, config)


def _compare(model: Any, run_config: dict[str, Any], run_dir: Path, backend: Backend, out_dir: Path,
             settings: list[str] | None, passage: str | Path | None, config: ABConfig) -> ABResult:
    ranges = knobs_from_run(run_config)
    rate = int(run_config["dataset"]["sample_rate"])
    profile = backend.profile
    if backend.sample_rate != rate:
        raise CaptureError(f"the model runs at {rate} Hz but the device at {backend.sample_rate} Hz; open the device at {rate} Hz")
    try:
        setting = profile.complete(parse_device_settings(list(settings or []), profile))
    except ValueError as exc:
        raise CaptureError(str(exc)) from None
    model_settings(setting, ranges, profile.name, profile.knob_names)  # the model's knobs are the device's
    if passage is None:
        audio, source = default_passage(rate, config.passage_seconds), f"the {PASSAGE_PRESET} signal's program"
    else:
        audio, file_rate = read_wav(passage)
        if file_rate != rate:
            raise CaptureError(f"{passage} is at {file_rate} Hz but the model runs at {rate} Hz; resample it first")
        source = str(passage)
    signal = framed_passage(audio, rate, config.peak_dbfs, source)
    aligned, facts = play_device(backend, signal, setting, config.record)
    knobs = model_settings({**setting, **facts.get("knobs_set", {})}, ranges, profile.name, profile.knob_names)
    predicted = run_model(model, ranges, knobs, signal.audio, rate, config.block)
    span = compared_span(signal)
    device, modelled = aligned[span], predicted[span]
    difference = (device.astype(np.float64) - modelled).astype(np.float32)
    ab, switches = alternate(device, modelled, rate, config.switch_seconds, config.crossfade_seconds)
    numbers: dict[str, Any] = {**null_test(device, modelled), "device": profile.name, "passage": source,
                               "run": str(run_dir), "checkpoint": config.checkpoint, "take": facts}
    evaluated = evaluation_at(run_dir, knobs)
    if evaluated:
        numbers["evaluation"] = evaluated
    result = ABResult(device, modelled, difference, ab, rate, setting, knobs, numbers, switches)
    for name, data in (("device.wav", device), ("model.wav", modelled), ("difference.wav", difference), ("ab.wav", ab)):
        atomic_write_wav(out_dir / name, data, rate)
    atomic_write_json(out_dir / "ab.json", result.to_dict())
    return result
