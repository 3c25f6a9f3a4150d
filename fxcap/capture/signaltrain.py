"""Import an existing dry/wet LA-2A dataset in the SignalTrain layout as capture sessions.

The SignalTrain LA-2A dataset (Hawley et al.) holds pairs of 44.1 kHz mono WAV files, often in
``Train/``, ``Val/`` and ``Test/`` folders::

    input_138_.wav                       the dry input
    target_138_LA2A_3c__0__65.wav        the LA-2A's output for it: switch 0, peak reduction 65
    target_138_LA2A_3c__1__20.wav        (another setting of the same input, if there is one)

``target_<id>_LA2A_<anything>__<switch>__<peak>.wav``: ``switch`` 0 is *compress* and 1 is
*limit*; ``peak`` is the peak-reduction knob, 0..100. The make-up gain is not recorded in the
names, so the profile :data:`SIGNALTRAIN_LA2A` has only ``peak_reduction`` and ``mode``.

:func:`import_signaltrain` writes **one session per input file** (``<out>/<id>``, or
``<out>/<folder>-<id>`` below a sub-folder), holding one take per target of that input. The pairs
are already aligned, so a take's alignment is the identity; the whole input is one ``program``
region. Checks per take: equal lengths (a difference up to ``length_tolerance_s`` is trimmed and
reported), finite samples, and a target that is not silent; output clipping is a warning.

The sessions played different signals, so build them with
``build_dataset(sessions, config=BuildConfig(mixed_signals=True))`` (``fxcap build-dataset
--mixed-signals``): each input is split along time on its own, so no stretch of any input lands in
two splits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fxcap.capture.layout import Region, SignalLayout, TestSignal, audio_sha256
from fxcap.capture.plan import PlannedTake
from fxcap.capture.profiles import DeviceProfile, Knob, KnobValue
from fxcap.capture.record import RecordConfig, TakeResult, finish_session, keep_take
from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.backends.base import RawTake
from fxcap.capture.session import Alignment, CheckResult, Session
from fxcap.errors import FxcapError
from fxcap.io import read_wav

SIGNALTRAIN_LA2A = DeviceProfile(
    name="LA-2A-SignalTrain",
    kind="compressor",
    description="Teletronix LA-2A as recorded in the SignalTrain dataset: peak reduction and the compress/limit switch.",
    knobs=(
        Knob("peak_reduction", 0.0, 100.0, 50.0, taper="linear", description="amount of gain reduction"),
        Knob("mode", values=("compress", "limit"), default="compress", description="comp/limit switch (file names: 0/1)"),
    ),
)
"""The knobs a SignalTrain LA-2A file name gives."""

SWITCH_VALUES = {"0": "compress", "1": "limit"}
"""SignalTrain's switch digit -> the ``mode`` knob's value."""

INPUT_PATTERN = re.compile(r"^input_(?P<id>[^_]+)_\.wav$", re.IGNORECASE)
TARGET_PATTERN = re.compile(
    r"^target_(?P<id>[^_]+)_LA2A_(?P<tag>.*)__(?P<switch>[01])__(?P<peak>\d+(?:\.\d+)?)\.wav$", re.IGNORECASE
)


@dataclass
class SignalTrainInput:
    """One input file and its targets: ``key`` names its session; ``targets`` are ``(file, knobs)``."""

    key: str
    input: Path
    targets: list[tuple[Path, dict[str, KnobValue]]] = field(default_factory=list)


@dataclass
class SignalTrainConfig:
    """Options of :func:`import_signaltrain`.

    Attributes:
        ids: import only these input ids (``None``: all).
        max_seconds: keep only the first this many seconds of every pair (quick experiments).
        length_tolerance_s: input and target lengths may differ by this much (trimmed to the
            shorter); more is an error.
        silence_dbfs: a target whose RMS is below this is rejected as silent (dBFS).
    """

    ids: Sequence[str] | None = None
    max_seconds: float | None = None
    length_tolerance_s: float = 1.0
    silence_dbfs: float = -90.0


def parse_target_name(name: str) -> tuple[str, dict[str, KnobValue]] | None:
    """``(id, {"peak_reduction": ..., "mode": ...})`` for a SignalTrain target file name, else None."""
    match = TARGET_PATTERN.match(name)
    if match is None:
        return None
    peak = SIGNALTRAIN_LA2A.knob("peak_reduction").validate(match.group("peak"))
    return match.group("id"), {"peak_reduction": peak, "mode": SWITCH_VALUES[match.group("switch")]}


def _id_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def scan_signaltrain(root: str | Path, ids: Sequence[str] | None = None) -> list[SignalTrainInput]:
    """Find the input/target pairs under ``root`` (any depth), in folder and id order.

    Raises :class:`FxcapError` when there are none, or a target has no input beside it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FxcapError(f"{root} is not a folder; give the folder holding input_<id>_.wav and target_<id>_LA2A_... files")
    inputs: dict[tuple[Path, str], SignalTrainInput] = {}
    targets: list[tuple[Path, str, dict[str, KnobValue]]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        match = INPUT_PATTERN.match(path.name)
        if match:
            folder = path.parent.relative_to(root)
            prefix = "-".join(folder.parts)
            key = f"{prefix}-{match.group('id')}" if prefix else match.group("id")
            inputs[(path.parent, match.group("id"))] = SignalTrainInput(key=key, input=path)
            continue
        parsed = parse_target_name(path.name)
        if parsed is not None:
            targets.append((path, *parsed))
    for path, ident, knobs in targets:
        owner = inputs.get((path.parent, ident))
        if owner is None:
            raise FxcapError(f"{path} has no input_{ident}_.wav beside it; the SignalTrain pairs are incomplete")
        owner.targets.append((path, knobs))
    found = [item for item in inputs.values() if item.targets]
    if ids is not None:
        wanted = {str(i) for i in ids}
        found = [item for item in found if item.input.name[len("input_") : -len("_.wav")] in wanted]
        if not found:
            raise FxcapError(f"no SignalTrain input under {root} has one of the ids {', '.join(sorted(wanted))}")
    if not found:
        raise FxcapError(
            f"no SignalTrain pairs under {root}: expected input_<id>_.wav with target_<id>_LA2A_<...>__<switch>__<peak>.wav"
        )
    return sorted(found, key=lambda item: (str(item.input.parent), _id_order(item.input.name[len("input_") : -len("_.wav")])))


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = read_wav(path)
    if audio.ndim != 1:
        raise FxcapError(f"{path} has {audio.shape[1]} channels; SignalTrain files are mono (convert it to mono first)")
    return audio, rate


def _signal(audio: np.ndarray, rate: int, source: Path) -> TestSignal:
    """The input as a capture signal: one ``program`` region over the whole file."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    layout = SignalLayout(
        version="signaltrain",
        sample_rate=int(rate),
        length=len(audio),
        peak_dbfs=20.0 * math.log10(peak) if peak > 0 else -240.0,
        preset="signaltrain",
        regions=[Region("program", "program", 0, len(audio), f"the whole of {source.name} (pre-aligned dry/wet pair)")],
        sha256=audio_sha256(audio),
        source=source.name,
        extra={"dataset": "SignalTrain LA-2A"},
    )
    return TestSignal(audio=audio, layout=layout)


def _checks(target: np.ndarray, trimmed: int, rate: int, config: SignalTrainConfig) -> list[CheckResult]:
    finite = bool(np.all(np.isfinite(target)))
    rms = float(np.sqrt(np.mean(np.square(target, dtype=np.float64)))) if finite and len(target) else 0.0
    level = 20.0 * math.log10(rms) if rms > 0 else -240.0
    peak = float(np.max(np.abs(target))) if finite and len(target) else 0.0
    return [
        CheckResult("length", True, float(trimmed), "samples", config.length_tolerance_s * rate,
                    f"input and target differed by {trimmed} samples (trimmed)" if trimmed else "input and target have equal lengths",
                    severity="warning" if trimmed else "error"),
        CheckResult("finite", finite, None, "", None,
                    "all samples finite" if finite else "the target has NaN or infinite samples: re-export it"),
        CheckResult("silence", level >= config.silence_dbfs, level, "dBFS", config.silence_dbfs,
                    f"target RMS {level:.1f} dBFS" + ("" if level >= config.silence_dbfs else ": silent, check the file")),
        CheckResult("output_clipping", peak < 0.999, 20.0 * math.log10(max(peak, 1e-12)), "dBFS", 0.0,
                    f"target peaks at {20.0 * math.log10(max(peak, 1e-12)):+.1f} dBFS", severity="warning"),
    ]


IDENTITY = Alignment(latency_samples=0.0, gain_db=0.0, polarity=1, drift_ppm=0.0, drift_corrected=False,
                     extra={"prealigned": True, "latency_offset": 0.0})
"""The alignment of a pre-aligned pair."""


def import_signaltrain(
    root: str | Path,
    out: str | Path,
    config: SignalTrainConfig | None = None,
    profile: DeviceProfile = SIGNALTRAIN_LA2A,
    progress: Callable[[str], None] | None = None,
) -> list[Session]:
    """Write one session per SignalTrain input file under ``out`` (see the module docstring).

    Returns the sessions in input order. Raises :class:`FxcapError` for a missing pair, a sample
    rate that differs between a pair's files or between inputs, or lengths that differ by more
    than ``config.length_tolerance_s``.
    """
    config = config or SignalTrainConfig()
    items = scan_signaltrain(root, config.ids)
    out = Path(out)
    sessions: list[Session] = []
    rate0: int | None = None
    for item in items:
        dry, rate = _read_mono(item.input)
        if rate0 is not None and rate != rate0:
            raise FxcapError(f"{item.input} is at {rate} Hz, earlier inputs at {rate0} Hz; one dataset needs one sample rate")
        rate0 = rate
        wet_files = []
        for path, knobs in item.targets:
            wet, wet_rate = _read_mono(path)
            if wet_rate != rate:
                raise FxcapError(f"{path} is at {wet_rate} Hz but its input {item.input.name} at {rate} Hz; resample one of them")
            if abs(len(wet) - len(dry)) > config.length_tolerance_s * rate:
                raise FxcapError(
                    f"{path} has {len(wet) / rate:.2f} s, its input {item.input.name} {len(dry) / rate:.2f} s; "
                    "they are not a dry/wet pair of one take"
                )
            wet_files.append((path, knobs, len(wet)))
        length = min([len(dry)] + [n for _, _, n in wet_files])
        if config.max_seconds is not None:
            length = min(length, int(config.max_seconds * rate))
        signal = _signal(dry[:length], rate, item.input)
        dry_length = len(dry)
        del dry
        planned = [PlannedTake(index=i + 1, knobs=profile.complete(knobs)) for i, (_, knobs, _) in enumerate(wet_files)]
        session = Session.create(
            out / item.key,
            device=profile,
            backend=BackendDetails("signaltrain", sample_rate=rate, device=profile.name, source=str(item.input.parent)),
            signal_audio=signal.audio,
            layout=signal.layout,
            plan={"kind": "signaltrain", "takes": [{"index": t.index, "knobs": t.knobs, "is_reference": False,
                                                     "file": str(path)} for t, (path, _, _) in zip(planned, wet_files)]},
        )
        session.manifest.calibration = {"result": None, "source": "signaltrain: pre-aligned dry/wet pairs"}
        for take, (path, _, wet_length) in zip(planned, wet_files):
            if progress is not None:
                progress(f"{item.key}/{path.name}")
            wet, _ = _read_mono(path)
            target = np.ascontiguousarray(wet[:length], dtype=np.float32)
            trimmed = abs(wet_length - dry_length)
            checks = _checks(target, trimmed, rate, config)
            result = TakeResult(
                raw=RawTake(played=signal.audio, recorded=target, sample_rate=rate, info={"file": str(path)}),
                aligned=target,
                alignment=IDENTITY,
                checks=checks,
            )
            if result.failed:
                session.manifest.notes.append(f"rejected {path} ({take.take_id}): {result.problem()}")
                session.save()
                continue
            keep_take(session, take, result, keep_raw=False)
        sessions.append(finish_session(session, signal, RecordConfig(), lambda event, data: None))
    return sessions
