"""NAM export: a ``.nam`` snapshot of an LSTM model at one knob setting, for Neural Amp Modeler.

At a fixed knob setting Concat, FiLM and StaticHyper are exactly a plain LSTM followed by
``Linear(H, 1)`` (:meth:`~fxcap.modeling.base.ConditionedRNN.cell_at` folds the setting into the
weights), which is NAM's ``LSTM`` architecture. GRU models cannot be written (NAM has no GRU cell),
nor can DynamicHyper (its cell's scaling changes every sample with its hyper-RNN's state).

File layout (NAM's ``.nam`` specification, JSON; written as version :data:`NAM_FILE_VERSION`, which
every NAM plugin since 0.5 and ``neural-amp-modeler``'s loader read; the LSTM layout has not changed
since)::

    {"version": "0.5.4",
     "architecture": "LSTM",
     "config": {"input_size": 1, "hidden_size": H, "num_layers": 1},
     "weights": [...],                 # flat float32 values, in the order below
     "sample_rate": 48000.0,           # Hz, the rate the model was trained at
     "metadata": {"date": {...}, "name": "OD-3 drive=7 tone=4", "gear_type": ..., "tone_type": ...,
                  "input_level_dbu": ..., "output_level_dbu": ..., "fxcap": {...}}}

Weights, per layer (one here), then the head, as NAM's ``LSTM._export_weights`` orders them::

    [W_ih | W_hh]   (4H, 1 + H) row-major, gates i, f, g, o (PyTorch's order)
    b_ih + b_hh     (4H,)        NAM keeps one bias
    h0, c0          (H,), (H,)   initial state: zeros, as ``fxcap render`` starts
    head weight     (H,)         the model's Linear(H, 1)
    head bias       (1,)

The NAM plugin runs half a second of silence through a model when it loads (its "prewarm"), so
in the plugin the zero initial state only sets where that warm-up starts.

Metadata: NAM's user fields (``name``, ``modeled_by``, ``gear_make``, ``gear_model``, ``gear_type``
one of :data:`GEAR_TYPES`, ``tone_type`` one of :data:`TONE_TYPES`, ``input_level_dbu`` and
``output_level_dbu``: the analog level of 0 dBFS at the device's input and output), given with
``--meta KEY=VALUE``; fxcap's capture measures levels in dBFS only, so the dBu levels are written
only when given. ``name`` defaults to the device and the setting. NAM's ``training`` entry follows
the schema of NAM's own trainer, so fxcap's facts go under ``metadata.fxcap`` instead: the knob
setting, the knob ranges, the scheme, the run, and the run's test ESR at that setting
(:mod:`fxcap.modeling.export.snapshot`). ``loudness`` and ``gain`` are not written: NAM measures
them with its own reference signal, and without them the plugin only disables its output
normalization for the model.

:class:`NamLSTM` reads such a file and runs it in numpy (independently of PyTorch); the export's
self-test uses it. The tests also load the file with ``neural-amp-modeler``'s own
``nam.models.init_from_nam``.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from fxcap import __version__
from fxcap.errors import ModelError
from fxcap.io import atomic_write_text
from fxcap.modeling.base import CellWeights, ConditionedRNN
from fxcap.modeling.export.cells_numpy import lstm_sequence
from fxcap.modeling.export.common import ExportMeta, read_json_file, SelfTestConfig, float32_lists, self_test, to_json_bytes, write_checked
from fxcap.modeling.export.snapshot import Snapshot, format_value

NAM_FILE_VERSION = "0.5.4"
"""``.nam`` file version written (NAM's LSTM layout is the same in every version from 0.5 to 0.7)."""

GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
"""Values NAM's metadata allows for ``gear_type``."""

TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")
"""Values NAM's metadata allows for ``tone_type``."""

TEXT_FIELDS = ("name", "modeled_by", "gear_make", "gear_model")
LEVEL_FIELDS = ("input_level_dbu", "output_level_dbu")
USER_FIELDS = (*TEXT_FIELDS, "gear_type", "tone_type", *LEVEL_FIELDS)
"""NAM metadata fields a user may set with ``--meta KEY=VALUE``."""

INDEX_NAME = "index.csv"
"""The index of a pack: one row per ``.nam`` file with its knob setting and test ESR."""


def supports(model: ConditionedRNN) -> bool:
    """Schemes that fold into a plain cell at a fixed setting, with LSTM cells (and no learned filters around it)."""
    return bool(getattr(model, "folds_at_setting", False)) and model.cell == "lstm"


def refusal(model: ConditionedRNN) -> str:
    """Why ``model`` cannot be a ``.nam`` file and what to train instead (empty if it can)."""
    if not model.folds_at_setting:
        return (f"{model.config.cond}'s cell weights change every sample with its hyper-RNN's state, so no knob setting "
                "makes it a fixed LSTM; train --cond concat, film or statichyper with --cell lstm for NAM")
    if model.cell != "lstm":
        return "NAM has no GRU cell (its recurrent architecture is LSTM only); retrain with --cell lstm for NAM"
    return ""


def parse_user_metadata(items: list[str]) -> dict[str, Any]:
    """``["gear_type=pedal", "input_level_dbu=12"]`` -> checked NAM metadata fields (see :data:`USER_FIELDS`)."""
    fields: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in USER_FIELDS:
            raise ModelError(f"--meta expects KEY=VALUE with KEY one of {', '.join(USER_FIELDS)}, not {item!r}")
        if key == "gear_type" and value not in GEAR_TYPES:
            raise ModelError(f"gear_type must be one of {', '.join(GEAR_TYPES)}, not {value!r}")
        if key == "tone_type" and value not in TONE_TYPES:
            raise ModelError(f"tone_type must be one of {', '.join(TONE_TYPES)}, not {value!r}")
        if key in LEVEL_FIELDS:
            try:
                number = float(value)
            except ValueError:
                raise ModelError(f"{key} must be a level in dBu (a number), not {value!r}") from None
            if not np.isfinite(number):
                raise ModelError(f"{key} must be a finite level in dBu, not {value!r}")
            fields[key] = number
        else:
            fields[key] = value
    return fields


# -- writing -------------------------------------------------------------------------------------


def nam_weights(cell: CellWeights, w_out: np.ndarray, b_out: np.ndarray) -> np.ndarray:
    """The flat weight vector of a one-layer NAM LSTM (order in the module docstring), float64."""
    if cell.cell != "lstm":
        raise ModelError("NAM has no GRU cell; only an LSTM can be written as .nam")
    w_ih, w_hh, b_ih, b_hh = (t.detach().cpu().double().numpy() for t in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
    hidden = w_hh.shape[1]
    state = np.zeros(2 * hidden)  # h0, c0
    parts = [np.concatenate([w_ih, w_hh], axis=1).ravel(), b_ih + b_hh, state, np.asarray(w_out).ravel(), np.asarray(b_out).ravel()]
    return np.concatenate(parts)


def to_nam(model: ConditionedRNN, meta: ExportMeta, snapshot: Snapshot, user_metadata: dict[str, Any] | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """The ``.nam`` document of ``model`` at ``snapshot`` (see the module docstring)."""
    if not supports(model):
        raise ModelError(f"the {model.config.cond} {model.cell.upper()} model cannot be written as .nam: {refusal(model)}")
    cell = model.cell_at(np.asarray(snapshot.normalized, dtype=np.float64))
    head = [model.output.weight.detach().cpu().double().numpy(), model.output.bias.detach().cpu().double().numpy()]
    user = dict(user_metadata or {})
    base_name = user.pop("name", None) or meta.device or meta.run or "fxcap model"
    now = now or datetime.now()
    fxcap_facts: dict[str, Any] = {
        "version": __version__,
        "run": meta.run,
        "device": meta.device,
        "scheme": meta.scheme,
        "cell": meta.cell,
        "hidden_size": meta.hidden_size,
        "checkpoint": meta.checkpoint,
        "knob_setting": snapshot.values,
        "knobs": meta.knobs,
        "test_esr": snapshot.test_esr,
        "test_esr_split": snapshot.esr_split,
        "initial_state": "zeros (as fxcap render starts)",
    }
    if snapshot.test_esr is None:
        fxcap_facts["test_esr_note"] = "the run's evaluation did not score this setting with this checkpoint"
    return {
        "version": NAM_FILE_VERSION,
        "architecture": "LSTM",
        "config": {"input_size": 1, "hidden_size": model.hidden_size, "num_layers": 1},
        "weights": float32_lists(nam_weights(cell, *head)),
        "sample_rate": float(meta.sample_rate),
        "metadata": {
            "date": {"year": now.year, "month": now.month, "day": now.day, "hour": now.hour, "minute": now.minute, "second": now.second},
            "name": f"{base_name} {snapshot.label}".strip(),
            **user,
            "fxcap": fxcap_facts,
        },
    }


# -- the numpy reader ----------------------------------------------------------------------------


class NamLSTM:
    """A numpy reader and runner of NAM ``LSTM`` files (any number of layers, mono input).

    Weights are read as float32 (what the plugin holds); the arithmetic runs in float64.
    """

    def __init__(self, layers: list[tuple[np.ndarray, ...]], head: tuple[np.ndarray, np.ndarray], sample_rate: float | None, metadata: dict[str, Any]) -> None:
        self.layers = layers
        self.head = head
        self.sample_rate = sample_rate
        self.metadata = metadata

    @classmethod
    def from_file(cls, path: str | Path) -> "NamLSTM":
        """Read and check a ``.nam`` file; :class:`ModelError` names what is wrong."""
        return cls.from_dict(read_json_file(path), str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = ".nam model") -> "NamLSTM":
        """Check and read a parsed ``.nam`` document of architecture ``LSTM``."""
        if not isinstance(data, dict) or data.get("architecture") != "LSTM":
            raise ModelError(f"{source}: not a NAM LSTM model (architecture {data.get('architecture') if isinstance(data, dict) else None!r})")
        config = data.get("config") or {}
        try:
            inputs, hidden, count = int(config["input_size"]), int(config["hidden_size"]), int(config["num_layers"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{source}: config needs input_size, hidden_size and num_layers") from None
        if inputs != 1 or hidden < 1 or count < 1:
            raise ModelError(f"{source}: expected a mono LSTM (input_size 1), got input_size {inputs}, hidden_size {hidden}, num_layers {count}")
        try:
            weights = np.asarray(data["weights"], dtype=np.float32).astype(np.float64)
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{source}: 'weights' must be a list of numbers") from None
        expected = sum(4 * hidden * ((inputs if i == 0 else hidden) + hidden) + 4 * hidden + 2 * hidden for i in range(count)) + hidden + 1
        if weights.ndim != 1 or len(weights) != expected or not np.all(np.isfinite(weights)):
            raise ModelError(f"{source}: expected {expected} finite weights for this LSTM, got {weights.size}")
        layers, position = [], 0

        def take(size: int) -> np.ndarray:
            nonlocal position
            position += size
            return weights[position - size : position]

        for i in range(count):
            width = (inputs if i == 0 else hidden) + hidden
            w = take(4 * hidden * width).reshape(4 * hidden, width)
            # Keras layout for the shared recurrence: kernel (in, 4H), recurrent (H, 4H); gates i, f, g, o.
            layers.append((w[:, : width - hidden].T, w[:, width - hidden :].T, take(4 * hidden), take(hidden), take(hidden)))
        head = (take(hidden), take(1))
        rate = data.get("sample_rate")
        return cls(layers, head, float(rate) if isinstance(rate, (int, float)) else None, data.get("metadata") or {})

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Run mono ``audio`` ``(T,)`` from the file's initial state; returns ``(T,)``."""
        values = np.asarray(audio, dtype=np.float64).reshape(-1, 1)
        for kernel, recurrent, bias, h0, c0 in self.layers:
            values = lstm_sequence(values, kernel, recurrent, bias, h0, c0)
        return values @ self.head[0] + self.head[1][0]


# -- export --------------------------------------------------------------------------------------


def export_nam_file(model: ConditionedRNN, meta: ExportMeta, out: str | Path, snapshot: Snapshot,
                    config: SelfTestConfig | None = None, user_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the ``.nam`` of ``model`` at ``snapshot`` to ``out`` after :class:`NamLSTM` ran the very
    bytes and matched the PyTorch model at that setting.

    Returns the self-test report plus ``format``, ``path``, ``bytes``, ``setting`` (label), ``knobs``
    (panel values) and ``test_esr``.
    """
    data = to_json_bytes(to_nam(model, meta, snapshot, user_metadata))
    fixed = np.asarray(snapshot.normalized, dtype=np.float32)

    def check(path: Path) -> dict[str, Any]:
        reader = NamLSTM.from_file(path)
        return self_test(model, meta, lambda audio, knobs: reader.process(audio), config or SelfTestConfig(), ".nam", fixed_knobs=fixed)

    report = write_checked(out, data, check)
    report.update(format="nam", setting=snapshot.label, knobs=snapshot.values, test_esr=snapshot.test_esr, esr_split=snapshot.esr_split)
    return report


def export_nam(model: ConditionedRNN, meta: ExportMeta, out: str | Path, config: SelfTestConfig, snapshots: list[Snapshot],
               pack: bool = False, user_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``.nam`` at ``out`` (one snapshot, ``pack`` False), or a pack: the folder ``out`` with one
    ``<run>_<setting>.nam`` per snapshot and :data:`INDEX_NAME`.

    A pack's report: ``format``, ``path`` (the folder), ``index``, ``files`` (each file's report),
    ``bytes`` (total), ``max_abs_error`` (worst file), ``tolerance``, ``seconds``, ``samples``.
    """
    if not snapshots:
        raise ModelError("a .nam export needs a knob setting (--set drive=7), --at settings or --grid")
    if not pack:
        if len(snapshots) != 1:
            raise ModelError(f"one .nam file holds one knob setting, got {len(snapshots)}; write a pack into a folder")
        return export_nam_file(model, meta, out, snapshots[0], config, user_metadata)
    folder = Path(out)
    if folder.suffix:
        raise ModelError(f"a pack is a folder of .nam files: give --out a folder (e.g. {folder.with_suffix('')}), not {folder}")
    stem = meta.run or "model"
    names = [f"{stem}_{snap.slug}.nam" for snap in snapshots]
    if len(set(names)) != len(names):
        raise ModelError("two settings of the pack are the same; list each setting once")
    files = [export_nam_file(model, meta, folder / name, snap, config, user_metadata) for name, snap in zip(names, snapshots)]
    index = _write_index(folder / INDEX_NAME, names, snapshots, files)
    return {
        "format": "nam",
        "path": str(folder),
        "index": str(index),
        "files": files,
        "bytes": sum(f["bytes"] for f in files),
        "max_abs_error": max(f["max_abs_error"] for f in files),
        "tolerance": files[0]["tolerance"],
        "seconds": files[0]["seconds"],
        "samples": files[0]["samples"],
        "knob_automation": False,
    }


def _write_index(path: Path, names: list[str], snapshots: list[Snapshot], files: list[dict[str, Any]]) -> Path:
    knob_names = list(snapshots[0].values)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *knob_names, "test_esr", "test_esr_split", "self_test_max_abs_error"])
    for name, snap, report in zip(names, snapshots, files):
        esr = "" if snap.test_esr is None else f"{snap.test_esr:.6g}"
        writer.writerow([name, *(format_value(snap.values[k]) for k in knob_names), esr, snap.esr_split or "", f"{report['max_abs_error']:.3g}"])
    atomic_write_text(path, buffer.getvalue())
    return path
