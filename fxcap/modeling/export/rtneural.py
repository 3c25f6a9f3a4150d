"""RTNeural JSON export of the Concat GRU/LSTM, knob inputs in [-1, 1], for an RTNeural host you control.

File layout (the Keras-style JSON that RTNeural's ``json_parser`` and the AIDA-X / rt-neural-generic
plugins read; numbers are float32 values written in their shortest exact decimal form)::

    {"in_shape": [null, null, 1 + K],
     "in_skip": 0,
     "layers": [
       {"type": "gru" | "lstm", "activation": "", "shape": [null, null, H], "weights": [W, U, b]},
       {"type": "dense", "activation": "", "shape": [null, null, 1], "weights": [w, c]}],
     "metadata": {... scheme, sample rate, knob names and ranges, input order ...}}

Inputs, per sample: ``[x, c_1, ..., c_K]``, the audio sample followed by the knob values normalized
to [-1, 1] (see ``metadata.knob_normalization``), held constant between knob moves. This is fxcap's own
convention, for an RTNeural host you control that feeds every knob with every sample. It is *not*
what AIDA-X / rt-neural-generic feed: their PARAM1/PARAM2 run 0..1 (default 0) and reach the model
unchanged, so in them this file would only ever see the upper half of each knob's range. For those
plugins export ``--format aidax`` (:mod:`fxcap.modeling.export.aidax`), which folds the 0..1 range
into the weights. ``in_skip`` is 0: no dry signal is added.

Weight conversion from PyTorch (each gate block has ``H`` rows)::

    GRU   PyTorch weight_ih (3H, in) rows [r; z; n], weight_hh (3H, H), bias_ih, bias_hh (3H,)
          Keras   W = weight_ih[z, r, n].T (in, 3H)   U = weight_hh[z, r, n].T (H, 3H)
                  b = [bias_ih[z, r, n], bias_hh[z, r, n]] (2, 3H)      (reset_after=True)
    LSTM  PyTorch rows [i; f; g; o]; Keras uses the same order (i, f, c, o)
          Keras   W = weight_ih.T (in, 4H)   U = weight_hh.T (H, 4H)   b = bias_ih + bias_hh (4H,)
    Dense W = output.weight.T (H, 1)   c = output.bias (1,)

With that mapping the Keras equations are PyTorch's. GRU (``reset_after``: the recurrent bias stays
inside the reset product, as PyTorch's ``b_hn``)::

    z = sigmoid(x W_z + b0_z + h U_z + b1_z)      r = sigmoid(x W_r + b0_r + h U_r + b1_r)
    h~ = tanh(x W_h + b0_h + r * (h U_h + b1_h))   h' = z * h + (1 - z) * h~

LSTM: ``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of ``x W + h U + b``; ``c' = f c + i g``; ``h' = o tanh(c')``.

:class:`RTNeuralModel` reads such a file and runs it with these equations in numpy, independently of
PyTorch; the export's self-test uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.export.cells_numpy import gru_sequence, lstm_sequence
from fxcap.modeling.export.common import ExportMeta, read_json_file, SelfTestConfig, float32_lists, self_test, to_json_bytes, write_checked

DENSE_ACTIVATIONS = {
    "": lambda v: v,
    "linear": lambda v: v,
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
}
"""Dense-layer activations the numpy reader understands."""


def supports(model: ConditionedRNN) -> bool:
    """Only the Concat scheme is a plain GRU/LSTM + dense stack, which is all this format holds."""
    from fxcap.modeling.concat import ConcatRNN

    return isinstance(model, ConcatRNN)


def _gru_order(hidden: int) -> np.ndarray:
    """Row indices that reorder PyTorch's GRU gate blocks [r, z, n] into Keras's [z, r, h]."""
    r, z, n = (np.arange(hidden) + g * hidden for g in range(3))
    return np.concatenate([z, r, n])


def rnn_document(
    cell: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
    w_out: np.ndarray, b_out: np.ndarray, metadata: dict[str, Any],
) -> dict[str, Any]:
    """The RTNeural JSON document of one GRU/LSTM layer and a dense output, from PyTorch-layout weights
    (``w_ih`` ``(G*H, in)``, ``w_hh`` ``(G*H, H)``, biases ``(G*H,)``, ``w_out`` ``(1, H)``, ``b_out`` ``(1,)``)."""
    w_ih, w_hh, b_ih, b_hh = (np.asarray(a, dtype=np.float64) for a in (w_ih, w_hh, b_ih, b_hh))
    hidden = w_hh.shape[1]
    if cell == "gru":
        order = _gru_order(hidden)
        weights = [w_ih[order].T, w_hh[order].T, np.stack([b_ih[order], b_hh[order]])]
    else:
        weights = [w_ih.T, w_hh.T, b_ih + b_hh]
    dense = [np.asarray(w_out).T, np.asarray(b_out)]
    return {
        "in_shape": [None, None, int(w_ih.shape[1])],
        "in_skip": 0,
        "layers": [
            {"type": cell, "activation": "", "shape": [None, None, hidden], "weights": [float32_lists(w) for w in weights]},
            {"type": "dense", "activation": "", "shape": [None, None, 1], "weights": [float32_lists(w) for w in dense]},
        ],
        "metadata": metadata,
    }


def concat_weights(model: ConditionedRNN) -> tuple[np.ndarray, ...]:
    """``w_ih, w_hh, b_ih, b_hh, w_out, b_out`` of a Concat model as float64 numpy arrays (PyTorch layout)."""
    if not supports(model):
        raise ModelError(f"the {model.config.cond} scheme cannot be written as RTNeural JSON")
    rnn = model.rnn
    tensors = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0, model.output.weight, model.output.bias)
    return tuple(t.detach().cpu().double().numpy() for t in tensors)


def to_rtneural(model: ConditionedRNN, meta: ExportMeta) -> dict[str, Any]:
    """The RTNeural JSON document of a Concat model, knob inputs in [-1, 1] (see the module docstring)."""
    metadata = {
        **meta.to_dict(),
        "inputs": ["audio", *meta.knob_names],
        "input_note": "feed [x, knob_1, ..., knob_K] every sample; knob values normalized to [-1, 1] and held between changes",
    }
    return rnn_document(model.cell, *concat_weights(model), metadata)


# -- the numpy reader ----------------------------------------------------------------------------


@dataclass
class KerasLayer:
    """One layer of an RTNeural JSON model: ``type`` (gru/lstm/dense), ``units``, ``activation`` and
    its float32 weights (Keras layout, see the module docstring)."""

    type: str
    units: int
    activation: str
    weights: list[np.ndarray]


class RTNeuralModel:
    """A numpy reader and runner for RTNeural JSON models (GRU, LSTM and dense layers, in sequence).

    Weights are read as float32 (what a plugin holds) and the arithmetic runs in float64, so the
    result is the file's exact function up to the plugin's own float32 rounding.
    """

    def __init__(self, in_size: int, layers: list[KerasLayer], in_skip: int = 0, metadata: dict[str, Any] | None = None) -> None:
        self.in_size = in_size
        self.layers = layers
        self.in_skip = in_skip
        self.metadata = metadata or {}

    @classmethod
    def from_file(cls, path: str | Path) -> "RTNeuralModel":
        """Read and check an RTNeural JSON file; :class:`ModelError` names what is wrong."""
        return cls.from_dict(read_json_file(path), str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "RTNeural model") -> "RTNeuralModel":
        """Check and read a parsed RTNeural JSON document."""
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
            raise ModelError(f"{source}: an RTNeural model needs a non-empty 'layers' list")
        in_shape = data.get("in_shape")
        if not isinstance(in_shape, list) or not in_shape or not isinstance(in_shape[-1], int) or in_shape[-1] < 1:
            raise ModelError(f"{source}: 'in_shape' must be a list ending in the input size, e.g. [null, null, 3]")
        size = in_size = int(in_shape[-1])
        layers = []
        for index, spec in enumerate(data["layers"]):
            layer = _read_layer(spec, size, f"{source}: layer {index}")
            layers.append(layer)
            size = layer.units
        if size != 1:
            raise ModelError(f"{source}: the last layer must have one output (a mono sample), not {size}")
        in_skip = data.get("in_skip", 0)
        if in_skip not in (0, 1):
            raise ModelError(f"{source}: in_skip must be 0 or 1, not {in_skip!r}")
        return cls(in_size, layers, int(in_skip), data.get("metadata"))

    def process(self, inputs: np.ndarray) -> np.ndarray:
        """Run ``inputs`` ``(T, in_size)`` (``[x, knobs...]`` per sample) from a zero state; returns ``(T,)``."""
        inputs = np.asarray(inputs, dtype=np.float64)
        if inputs.ndim != 2 or inputs.shape[1] != self.in_size:
            raise ModelError(f"the model takes ({len(inputs)}, {self.in_size}) inputs per sample, got {inputs.shape}")
        values = inputs
        for layer in self.layers:
            values = _run_layer(layer, values)
        return values[:, 0] + self.in_skip * inputs[:, 0]


def _read_layer(spec: Any, in_size: int, where: str) -> KerasLayer:
    if not isinstance(spec, dict):
        raise ModelError(f"{where} must be an object with type, shape and weights")
    kind, activation = spec.get("type"), spec.get("activation", "")
    shape, weights = spec.get("shape"), spec.get("weights")
    if kind not in ("gru", "lstm", "dense"):
        raise ModelError(f"{where}: unsupported layer type {kind!r} (gru, lstm or dense)")
    if not isinstance(shape, list) or not shape or not isinstance(shape[-1], int):
        raise ModelError(f"{where}: 'shape' must end in the layer's output size")
    units = int(shape[-1])
    gates = {"gru": 3, "lstm": 4, "dense": 1}[kind]
    expected = {
        "gru": [(in_size, 3 * units), (units, 3 * units), (2, 3 * units)],
        "lstm": [(in_size, 4 * units), (units, 4 * units), (4 * units,)],
        "dense": [(in_size, units), (units,)],
    }[kind]
    if kind == "dense" and activation not in DENSE_ACTIVATIONS:
        raise ModelError(f"{where}: unsupported dense activation {activation!r} ({', '.join(repr(a) for a in DENSE_ACTIVATIONS)})")
    if kind != "dense" and activation not in ("", "tanh"):
        raise ModelError(f"{where}: a {kind} layer's activation must be '' or 'tanh', not {activation!r}")
    if not isinstance(weights, list) or len(weights) != len(expected):
        raise ModelError(f"{where}: a {kind} layer needs {len(expected)} weight arrays, got {len(weights) if isinstance(weights, list) else weights!r}")
    arrays = []
    for number, (values, want) in enumerate(zip(weights, expected)):
        try:
            array = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise ModelError(f"{where}: weights[{number}] is not a numeric array") from None
        if array.shape != want:
            raise ModelError(f"{where}: weights[{number}] has shape {array.shape}, expected {want} (input {in_size}, {gates} gate(s) of {units})")
        if not np.all(np.isfinite(array)):
            raise ModelError(f"{where}: weights[{number}] holds NaN or Inf")
        arrays.append(array)
    return KerasLayer(type=kind, units=units, activation=activation, weights=arrays)


def _run_layer(layer: KerasLayer, values: np.ndarray) -> np.ndarray:
    """``values`` ``(T, in)`` -> ``(T, units)`` with the Keras equations (float64)."""
    w = [a.astype(np.float64) for a in layer.weights]
    if layer.type == "dense":
        return DENSE_ACTIVATIONS[layer.activation](values @ w[0] + w[1])
    return (gru_sequence if layer.type == "gru" else lstm_sequence)(values, *w)


def export_rtneural(model: ConditionedRNN, meta: ExportMeta, out: str | Path, config: SelfTestConfig | None = None) -> dict[str, Any]:
    """Write the RTNeural JSON of a Concat model to ``out`` and self-test it with :class:`RTNeuralModel`
    (numpy, independent of PyTorch) under knob automation.

    Returns the self-test report plus ``format``, ``path``, ``bytes``, ``inputs`` and ``notes``.
    """
    report = write_rtneural(model, meta, out, to_rtneural(model, meta), lambda knobs: knobs, config or SelfTestConfig(), "RTNeural JSON")
    notes = ["knob inputs are normalized to [-1, 1]; AIDA-X / rt-neural-generic feed 0..1: export --format aidax for them"]
    report.update(format="rtneural", inputs=["audio", *meta.knob_names], notes=notes)
    return report


def write_rtneural(
    model: ConditionedRNN, meta: ExportMeta, out: str | Path, document: dict[str, Any],
    knob_inputs: Any, config: SelfTestConfig, label: str,
) -> dict[str, Any]:
    """Write ``document`` to ``out`` after :class:`RTNeuralModel` ran the very bytes under knob automation
    and matched ``model``; ``knob_inputs(knobs in [-1, 1]) -> the file's knob inputs``."""
    data = to_json_bytes(document)

    def check(path: Path) -> dict[str, Any]:
        reader = RTNeuralModel.from_file(path)
        return self_test(model, meta, lambda audio, knobs: reader.process(np.column_stack([audio, knob_inputs(knobs)])), config, label)

    return write_checked(out, data, check)
