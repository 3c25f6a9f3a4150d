"""What every exporter shares: the model's description, the self-test signal and the comparison.

Every export ends with a self-test: the exported file is run by an engine independent of PyTorch
(onnxruntime for ONNX, a numpy reader for RTNeural JSON) on a few seconds of plucked-string audio
(:func:`plucked_guitar`) under knob automation (:func:`knob_automation`), and its output is compared
sample by sample with the PyTorch model's. The file only appears at its destination when the
difference stays within the tolerance (:func:`write_checked`); otherwise :class:`ModelError` reports
the largest difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy.signal import lfilter

from fxcap import __version__
from fxcap.dsp.synth import karplus_strong
from fxcap.errors import ModelError
from fxcap.io import atomic_write
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.inference import run_blocks

SELF_TEST_TOLERANCE = 1e-4
"""Largest absolute difference (full scale = 1.0) allowed between the exported model and PyTorch."""

DEFAULT_SELF_TEST_SECONDS = 3.0
"""Length of the self-test audio in seconds."""

KNOB_BLOCK = 32
"""Samples between knob updates in the self-test automation (a host sends parameter changes per block)."""

KNOB_NORMALIZATION = (
    "knob inputs are normalized to [-1, 1]: continuous knob 2 * (value - minimum) / (maximum - minimum) - 1; "
    "switch with n positions -1 + 2 * index / (n - 1)"
)
"""How a host maps a panel value to the model's knob input (same as :meth:`Knob.normalize`)."""


@dataclass
class SelfTestConfig:
    """How the self-test runs.

    Attributes:
        seconds: length of the test audio in seconds (at the model's sample rate).
        tolerance: largest allowed absolute difference to the PyTorch output.
        seed: seed of the test audio and knob automation.
    """

    seconds: float = DEFAULT_SELF_TEST_SECONDS
    tolerance: float = SELF_TEST_TOLERANCE
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ModelError(f"the self-test needs a positive length in seconds, not {self.seconds!r}")
        if not self.tolerance > 0:
            raise ModelError(f"the self-test tolerance must be positive, not {self.tolerance!r}")


@dataclass
class ExportMeta:
    """Everything a host needs to know about an exported model besides its weights.

    Attributes:
        scheme: conditioning scheme (``concat``, ``film``, ...).
        cell: ``gru`` or ``lstm``.
        hidden_size: hidden size of the main cell.
        sample_rate: rate the model was trained at, in Hz; it only models the device at this rate.
        knobs: one dict per knob input, in input order: ``name`` and, when the run recorded them,
            ``minimum``/``maximum`` (panel units), ``values`` (switch positions), ``unit``.
        state_layout: ``(name, width)`` of the parts of the flat state, in order.
        model_config: the run's :class:`~fxcap.modeling.config.ModelConfig` as a dict.
        checkpoint: which checkpoint was exported (``best`` or ``last``).
        run: name of the run folder.
        device: name of the captured device (the dataset's device profile), if recorded.
    """

    scheme: str
    cell: str
    hidden_size: int
    sample_rate: int
    knobs: list[dict[str, Any]]
    state_layout: list[tuple[str, int]]
    model_config: dict[str, Any]
    checkpoint: str = "best"
    run: str = ""
    device: str = ""

    @property
    def knob_names(self) -> list[str]:
        return [k["name"] for k in self.knobs]

    @property
    def state_size(self) -> int:
        return sum(width for _, width in self.state_layout)

    @classmethod
    def from_run(cls, model: ConditionedRNN, run_config: dict[str, Any], checkpoint: str = "best", run: str = "") -> "ExportMeta":
        """Describe ``model`` from its run's config.json (``dataset.sample_rate``, ``dataset.knob_names``
        and, when present, ``dataset.knobs`` with the ranges)."""
        dataset = run_config.get("dataset")
        if not isinstance(dataset, dict):
            raise ModelError(f"config.json of run {run!r} has no 'dataset' section; re-train the run with `fxcap train`")
        try:
            sample_rate = int(dataset["sample_rate"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"config.json of run {run!r} lacks a valid dataset.sample_rate; re-train the run with `fxcap train`") from None
        names = dataset.get("knob_names")
        ranges = dataset.get("knobs")
        if names is None and isinstance(ranges, list):
            names = [k.get("name") for k in ranges if isinstance(k, dict)]
        if not isinstance(names, list) or len(names) != model.num_knobs or not all(isinstance(n, str) for n in names):
            raise ModelError(
                f"config.json of run {run!r}: dataset.knob_names must list the model's {model.num_knobs} knob name(s), "
                f"got {names!r}; re-train the run with `fxcap train`"
            )
        by_name = {k.get("name"): k for k in ranges if isinstance(k, dict)} if isinstance(ranges, list) else {}
        knobs = [_knob_entry(name, by_name.get(name)) for name in names]
        return cls(
            scheme=model.config.cond,
            cell=model.cell,
            hidden_size=model.hidden_size,
            sample_rate=sample_rate,
            knobs=knobs,
            state_layout=[(name, int(width)) for name, width in model.state_layout],
            model_config=model.config.to_dict(),
            checkpoint=checkpoint,
            run=run,
            device=str(dataset.get("device") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what goes into the exported file's metadata)."""
        return {
            "fxcap_version": __version__,
            "scheme": self.scheme,
            "cell": self.cell,
            "hidden_size": self.hidden_size,
            "sample_rate": self.sample_rate,
            "knob_names": self.knob_names,
            "knobs": self.knobs,
            "knob_normalization": KNOB_NORMALIZATION,
            "state_layout": [[name, width] for name, width in self.state_layout],
            "state_size": self.state_size,
            "model_config": self.model_config,
            "checkpoint": self.checkpoint,
            "run": self.run,
            "device": self.device,
        }


def knob_input_lines(knobs: list[dict[str, Any]]) -> list[str]:
    """One line per knob input of :attr:`ExportMeta.knobs`, in input order, with its normalization to [-1, 1]
    (as :data:`KNOB_NORMALIZATION` says), e.g. ``1. drive 0..10 -> 2 * (drive - 0) / 10 - 1``."""
    lines = []
    for i, knob in enumerate(knobs, start=1):
        name, unit = knob["name"], f" {knob['unit']}" if knob.get("unit") else ""
        if knob.get("values"):
            values = list(knob["values"])
            positions = ", ".join(f"{v} = {-1 + 2 * j / (len(values) - 1):g}" for j, v in enumerate(values))
            lines.append(f"{i}. {name} (switch): {positions}")
        elif knob.get("minimum") is not None and knob.get("maximum") is not None:
            low, high = float(knob["minimum"]), float(knob["maximum"])
            lines.append(f"{i}. {name} {low:g}..{high:g}{unit} -> 2 * ({name} - {low:g}) / {high - low:g} - 1")
        else:
            lines.append(f"{i}. {name} (range not recorded in the run: already normalized to [-1, 1])")
    return lines


def _knob_entry(name: str, recorded: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    if recorded:
        for key, aliases in (("minimum", ("minimum", "min")), ("maximum", ("maximum", "max")), ("values", ("values",)), ("unit", ("unit",)), ("default", ("default",))):
            for alias in aliases:
                if recorded.get(alias) is not None:
                    entry[key] = recorded[alias]
                    break
    return entry


# -- self-test signal -----------------------------------------------------------------------------


def plucked_guitar(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Plucked-string notes and chords (Karplus-Strong), float32, peak 0.8 (about -2 dBFS).

    Notes of 0.15 .. 0.6 s between E2 (82 Hz) and E5 (659 Hz), one to three strings at a time, with
    varied pick strength and brightness and short pauses, so the test covers attacks, decays, quiet
    passages and silence.
    """
    total = int(round(seconds * sample_rate))
    if total < 1:
        raise ModelError(f"the self-test signal needs at least one sample, got {seconds} s at {sample_rate} Hz")
    rng = np.random.default_rng(seed)
    out = np.zeros(total)
    position = int(0.01 * sample_rate)
    while position < total:
        length = int(rng.uniform(0.15, 0.6) * sample_rate)
        for _ in range(int(rng.integers(1, 4))):
            midi = int(rng.integers(40, 77))  # E2 .. E5
            delay = max(2, int(round(sample_rate / (440.0 * 2 ** ((midi - 69) / 12)))))
            if delay >= length:
                continue
            burst = rng.uniform(-1, 1, delay)
            bright = rng.uniform(0.2, 0.9)
            burst = lfilter([bright], [1.0, bright - 1.0], burst)  # darker or brighter pick
            excitation = burst * rng.uniform(0.2, 1.0)
            note = karplus_strong(excitation, length, float(delay), rng.uniform(0.990, 0.999))
            stop = min(total, position + length)
            out[position:stop] += note[: stop - position]
        position += length + int(rng.uniform(0.0, 0.05) * sample_rate)
    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out *= 0.8 / peak
    return out.astype(np.float32)


def knob_automation(steps: int, num_knobs: int, block: int = KNOB_BLOCK, seed: int = 0) -> np.ndarray:
    """Knob automation ``(steps, num_knobs)`` float32 in [-1, 1]: triangle sweeps over the full range.

    Knob ``k`` sweeps ``1 + k`` times back and forth (with a random phase), and the values change
    only every ``block`` samples, as they do when a host delivers parameter changes once per block.
    """
    rng = np.random.default_rng(seed + 1)
    held = (np.arange(steps) // block) * block / max(steps, 1)  # time in [0, 1), held per block
    columns = []
    for k in range(num_knobs):
        phase = held * (1 + k) + rng.uniform(0, 1)
        columns.append(1.0 - 4.0 * np.abs(phase % 1.0 - 0.5))  # triangle, -1 .. 1
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((steps, 0), np.float32)


# -- comparison ----------------------------------------------------------------------------------


def torch_reference(model: ConditionedRNN, audio: np.ndarray, knobs: np.ndarray) -> np.ndarray:
    """The PyTorch model's output for ``audio`` ``(T,)`` under ``knobs`` ``(T, K)``, in one call from zero state."""
    y, _ = run_blocks(model, torch.from_numpy(audio)[None], torch.from_numpy(knobs)[None])
    return y[0].numpy().astype(np.float64)


def compare_outputs(reference: np.ndarray, exported: np.ndarray, tolerance: float, sample_rate: int, label: str) -> float:
    """Max absolute difference between ``exported`` and ``reference``; :class:`ModelError` beyond ``tolerance``."""
    exported = np.asarray(exported, dtype=np.float64).reshape(-1)
    if exported.shape != reference.shape:
        raise ModelError(f"{label} self-test failed: the exported model returned {exported.shape[0]} samples for {reference.shape[0]}")
    if not np.all(np.isfinite(exported)):
        first = int(np.argmin(np.isfinite(exported)))
        raise ModelError(f"{label} self-test failed: the exported model output is not finite from sample {first}; the export was not written")
    diff = np.abs(exported - reference)
    worst = int(np.argmax(diff))
    error = float(diff[worst])
    if error > tolerance:
        raise ModelError(
            f"{label} self-test failed: max abs error {error:.3g} to the PyTorch model exceeds {tolerance:g} "
            f"(at sample {worst}, {worst / sample_rate:.3f} s); the export was not written"
        )
    return error


def self_test(
    model: ConditionedRNN,
    meta: ExportMeta,
    runner: Callable[[np.ndarray, np.ndarray], np.ndarray],
    config: SelfTestConfig,
    label: str,
    fixed_knobs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Run ``runner(audio (T,), knobs (T, K)) -> output (T,)`` on the test signal and compare it with PyTorch.

    The knobs follow :func:`knob_automation`, or stay at ``fixed_knobs`` ``(K,)`` (normalized) for a
    file that holds one setting. Returns ``{"max_abs_error", "tolerance", "seconds", "samples",
    "knob_automation", "output_peak"}``.
    """
    audio = plucked_guitar(meta.sample_rate, config.seconds, config.seed)
    if fixed_knobs is None:
        knobs = knob_automation(len(audio), model.num_knobs, seed=config.seed)
    else:
        knobs = np.tile(np.asarray(fixed_knobs, dtype=np.float32).reshape(1, -1), (len(audio), 1))
    reference = torch_reference(model, audio, knobs)
    error = compare_outputs(reference, runner(audio, knobs), config.tolerance, meta.sample_rate, label)
    return {
        "max_abs_error": error,
        "tolerance": config.tolerance,
        "seconds": len(audio) / meta.sample_rate,
        "samples": len(audio),
        "knob_automation": fixed_knobs is None,
        "output_peak": float(np.max(np.abs(reference))),
    }


def write_checked(out: str | Path, data: bytes, check: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Write ``data`` to ``out`` atomically, after ``check(tmp_path)`` passed on the very bytes written.

    A failing check (an exception) leaves ``out`` untouched. Returns the check's report plus
    ``path`` and ``bytes`` (file size).
    """
    report: dict[str, Any] = {}

    def writer(tmp: Path) -> None:
        tmp.write_bytes(data)
        report.update(check(tmp))

    try:
        path = atomic_write(out, writer)
    except OSError as exc:
        raise ModelError(f"cannot write {out}: {exc.strerror or exc}; choose another --out") from None
    report.update(path=str(path), bytes=len(data))
    return report


def float32_lists(array: Any) -> Any:
    """Nested lists of ``array`` rounded to float32, each value in its shortest decimal form that reads
    back as exactly that float32 (what a plugin holds)."""
    array = np.asarray(array, dtype=np.float32)
    short = np.array([float(str(v)) for v in array.ravel()], dtype=np.float64)
    return short.reshape(array.shape).tolist()


def read_json_file(path: str | Path) -> Any:
    """The parsed JSON of an exported file; :class:`ModelError` when it is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc})") from None


def to_json_bytes(obj: Any) -> bytes:
    """Compact JSON (no NaN) as UTF-8 bytes."""
    return (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
