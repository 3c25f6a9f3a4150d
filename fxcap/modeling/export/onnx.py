"""ONNX export: one streaming graph with the recurrent state in and out, for every conditioning scheme.

Interface of the exported graph (all float32, ``B`` and ``T`` dynamic, ``T >= 1``)::

    inputs   audio      (B, T)     dry input samples, full scale 1.0
             knobs      (B, T, K)  normalized knob values in force at each sample (see metadata)
             state      (B, S)     state from the previous block; zeros to start
    outputs  audio_out  (B, T)     the model's output
             state_out  (B, S)     feed it back as ``state`` with the next block

A host streams audio block by block, carrying ``state_out`` to the next call; a constant knob setting
is its value repeated over ``T``; a step-by-step host calls the same graph with ``T = 1``. The state
is the concatenation of the parts listed in the ``state_layout`` metadata entry (``[h]``, ``[h, c]``,
``[h, h_hyper]`` ...), exactly the flat state of :class:`~fxcap.modeling.base.ConditionedRNN`.

Two graph kinds give this interface:

* ``block`` (Concat): the model's forward traced as it is; its ``nn.GRU``/``nn.LSTM`` becomes ONNX's
  own ``GRU``/``LSTM`` operator over the whole block (fast in every runtime).
* ``scan`` (every scheme): the per-sample Python loops of FiLM, StaticHyper and DynamicHyper cannot
  be traced into a graph of dynamic length, so the model's single-sample update (its forward on one
  sample, traced: ``state, x_t, knobs_t -> state', y_t``) becomes the body of an ONNX ``Scan`` over
  the time axis. The body is the model's own code path, so the graph computes exactly what PyTorch
  does; per-step knobs come for free.

The model description (scheme, cell, sample rate, knob names and ranges, normalization, state
layout, graph kind, model config) is stored as ``metadata_props`` of the ONNX model; values that are
not plain strings are JSON. The legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``)
is used: it needs no extra packages and handles ``nn.GRU``/``nn.LSTM``.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.export.common import ExportMeta, SelfTestConfig, self_test, write_checked

OPSET = 17
"""ONNX opset of the exported graphs."""

GRAPHS = ("auto", "block", "scan")
"""Graph kinds: ``auto`` picks ``block`` for Concat and ``scan`` for every other scheme."""

SELF_TEST_BLOCKS = (1, 63, 512, 2048, 4096)
"""Block lengths (samples) the self-test cycles through while streaming, carrying the state."""

INPUTS = {"audio": "(B, T) float32", "knobs": "(B, T, K) float32, normalized", "state": "(B, S) float32"}
OUTPUTS = {"audio_out": "(B, T) float32", "state_out": "(B, S) float32"}


def _modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ModelError("ONNX export needs the onnx and onnxruntime packages: pip install 'fxcap[export]'") from None
    return onnx, onnxruntime


def supports(model: ConditionedRNN) -> bool:
    """Every conditioned RNN can be exported (a Scan over its single-step update), with or without
    learned filters around it (:class:`~fxcap.modeling.filters.FilteredRNN`); not one with an even
    gain (``ModelConfig.even_gain``: two runs of the cell per step)."""
    from fxcap.modeling.filters import FilteredRNN

    return isinstance(model, (ConditionedRNN, FilteredRNN)) and getattr(model, "even_gain", None) is None


def choose_graph(model: ConditionedRNN, graph: str = "auto") -> str:
    """Resolve ``graph`` (:data:`GRAPHS`) for ``model``: ``block`` or ``scan``."""
    from fxcap.modeling.concat import ConcatRNN

    if graph not in GRAPHS:
        raise ModelError(f"unknown ONNX graph kind {graph!r}; choose one of {', '.join(GRAPHS)}")
    if graph == "auto":
        return "block" if isinstance(model, ConcatRNN) else "scan"  # a FilteredRNN is no ConcatRNN: scan
    if graph == "block" and not isinstance(model, ConcatRNN):
        raise ModelError(
            f"a block graph needs a recurrence that is one ONNX GRU/LSTM operator (the concat scheme); "
            f"the {model.config.cond} scheme exports as graph 'scan'"
        )
    return graph


class _Step(nn.Module):
    """One sample through the model: ``(state (B, S), x_t (B,), knobs_t (B, K)) -> (state', y_t (B,))``."""

    def __init__(self, model: ConditionedRNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, state: torch.Tensor, x_t: torch.Tensor, knobs_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, new_state = self.model(x_t[:, None], knobs_t, state)
        return new_state, y[:, 0]


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           dynamic: dict[str, dict[int, str]], scheme: str) -> Any:
    onnx, _ = _modules()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks are expected
            torch.onnx.export(module, args, buffer, dynamo=False, opset_version=OPSET, input_names=inputs,
                              output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
    except Exception as exc:  # the tracer raises many exception types for code it cannot express
        raise ModelError(f"the {scheme} model could not be traced to ONNX: {type(exc).__name__}: {exc}") from None
    return onnx.load_from_string(buffer.getvalue())


def _block_graph(model: ConditionedRNN) -> Any:
    """Concat: trace the forward over a block (a varying knob example keeps the per-step knob path)."""
    k, s = model.num_knobs, model.state_size
    generator = torch.Generator().manual_seed(0)
    args = (torch.zeros(2, 16), torch.rand(2, 16, k, generator=generator) * 2 - 1, torch.zeros(2, s))
    dynamic = {"audio": {0: "batch", 1: "time"}, "knobs": {0: "batch", 1: "time"}, "state": {0: "batch"},
               "audio_out": {0: "batch", 1: "time"}, "state_out": {0: "batch"}}
    return _trace(model, args, ["audio", "knobs", "state"], ["audio_out", "state_out"], dynamic, model.config.cond)


def _scan_graph(model: ConditionedRNN) -> Any:
    """Any scheme: the traced single-step update as the body of a Scan over the time axis."""
    onnx, _ = _modules()
    from onnx import TensorProto, helper

    k, s = model.num_knobs, model.state_size
    args = (torch.zeros(2, s), torch.zeros(2), torch.zeros(2, k))
    dynamic = {name: {0: "batch"} for name in ("step_state_in", "step_audio_in", "step_knobs_in", "step_state_out", "step_audio_out")}
    step = _trace(_Step(model), args, ["step_state_in", "step_audio_in", "step_knobs_in"],
                  ["step_state_out", "step_audio_out"], dynamic, model.config.cond)
    body = step.graph
    weights = list(body.initializer)  # the weights live in the outer graph; the body reads them from there
    del body.initializer[:]
    del body.value_info[:]
    for value in list(body.input) + list(body.output):
        value.type.tensor_type.ClearField("shape")  # per-iteration shapes: (B, S), (B,), (B, K)
    body.name = "fxcap_step"
    scan = helper.make_node("Scan", ["state", "audio", "knobs"], ["state_out", "audio_out"], name="time_scan",
                            body=body, num_scan_inputs=2, scan_input_axes=[1, 1], scan_output_axes=[1])
    graph = helper.make_graph(
        [scan], "fxcap_scan",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "time"]),
         helper.make_tensor_value_info("knobs", TensorProto.FLOAT, ["batch", "time", k]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", s])],
        [helper.make_tensor_value_info("audio_out", TensorProto.FLOAT, ["batch", "time"]),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["batch", s])],
        initializer=weights,
    )
    return helper.make_model(graph, opset_imports=list(step.opset_import), producer_name="fxcap")


def _inputs_in_order(proto: Any) -> None:
    """Order graph inputs audio, knobs, state and outputs audio_out, state_out (the documented interface)."""
    for container, names in ((proto.graph.input, list(INPUTS)), (proto.graph.output, list(OUTPUTS))):
        by_name = {v.name: v for v in container}
        if set(by_name) != set(names):
            raise ModelError(f"exported ONNX graph has {sorted(by_name)} instead of {names}; this is a bug in fxcap")
        ordered = [by_name[n] for n in names]
        copies = [type(v)() for v in ordered]
        for copy, value in zip(copies, ordered):
            copy.CopyFrom(value)
        del container[:]
        container.extend(copies)


def build_onnx(model: ConditionedRNN, meta: ExportMeta, graph: str = "auto") -> tuple[bytes, str]:
    """Serialized ONNX model of ``model`` with its metadata, and the graph kind used (``block``/``scan``)."""
    onnx, _ = _modules()
    from onnx import helper

    kind = choose_graph(model, graph)
    proto = _block_graph(model) if kind == "block" else _scan_graph(model)
    _inputs_in_order(proto)
    proto.producer_name = "fxcap"
    proto.doc_string = (
        f"fxcap {meta.scheme}-{meta.cell} (H={meta.hidden_size}) at {meta.sample_rate} Hz; knobs {', '.join(meta.knob_names)}. "
        "Stream blocks: feed state_out back as state; start from zeros."
    )
    props = {**meta.to_dict(), "graph": kind, "opset": OPSET, "inputs": INPUTS, "outputs": OUTPUTS}
    helper.set_model_props(proto, {key: value if isinstance(value, str) else json.dumps(value) for key, value in props.items()})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise ModelError(f"the exported ONNX graph of the {meta.scheme} model is invalid ({exc}); this is a bug in fxcap") from None
    return proto.SerializeToString(), kind


def open_session(path: str | Path) -> Any:
    """An onnxruntime CPU session of an exported model (one thread: deterministic, polite on small machines)."""
    _, ort = _modules()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph exceptions
        raise ModelError(f"onnxruntime cannot load {path}: {exc}") from None


def stream_onnx(session: Any, audio: np.ndarray, knobs: np.ndarray, blocks: tuple[int, ...] = SELF_TEST_BLOCKS) -> np.ndarray:
    """Run ``audio`` ``(T,)`` under ``knobs`` ``(T, K)`` through ``session`` block by block, carrying the state."""
    state_size = int(session.get_inputs()[2].shape[1])
    state = np.zeros((1, state_size), dtype=np.float32)
    out = np.empty(len(audio), dtype=np.float32)
    position, index = 0, 0
    while position < len(audio):
        stop = min(len(audio), position + blocks[index % len(blocks)])
        y, state = session.run(["audio_out", "state_out"], {
            "audio": np.ascontiguousarray(audio[None, position:stop], dtype=np.float32),
            "knobs": np.ascontiguousarray(knobs[None, position:stop], dtype=np.float32),
            "state": state,
        })
        out[position:stop] = y[0]
        position, index = stop, index + 1
    return out


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The fxcap metadata of an exported ONNX file, JSON values decoded."""
    onnx, _ = _modules()
    proto = onnx.load(str(path), load_external_data=False)
    metadata: dict[str, Any] = {}
    for prop in proto.metadata_props:
        try:
            metadata[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            metadata[prop.key] = prop.value
    return metadata


def export_onnx(model: ConditionedRNN, meta: ExportMeta, out: str | Path, config: SelfTestConfig | None = None,
                graph: str = "auto") -> dict[str, Any]:
    """Export ``model`` to ``out`` as ONNX and self-test it with onnxruntime (streamed in blocks of
    :data:`SELF_TEST_BLOCKS` samples, under knob automation) against PyTorch.

    Returns the self-test report plus ``format``, ``graph``, ``opset``, ``path`` and ``bytes``.
    """
    config = config or SelfTestConfig()
    data, kind = build_onnx(model, meta, graph)

    def check(path: Path) -> dict[str, Any]:
        session = open_session(path)
        return self_test(model, meta, lambda audio, knobs: stream_onnx(session, audio, knobs), config, "ONNX")

    report = write_checked(out, data, check)
    report.update(format="onnx", graph=kind, opset=OPSET, blocks=list(SELF_TEST_BLOCKS))
    return report
