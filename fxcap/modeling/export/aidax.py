"""AIDA-X export: the RTNeural JSON of a Concat GRU/LSTM with knob inputs in 0..1, as AIDA-X feeds them.

AIDA-X (and rt-neural-generic, the same loader) runs an RTNeural ``gru``/``lstm`` layer plus a dense
output on ``[x]``, ``[x, PARAM1]`` or ``[x, PARAM1, PARAM2]``: its PARAM1/PARAM2 controls run 0..1
(default 0) and reach the model unchanged, once per sample (smoothed over about 0.1 s). fxcap's
models take knobs normalized to [-1, 1] (``c = 2 p - 1`` for a knob at the fraction ``p`` of its
range), so this export folds that map into the weights: the knob columns of the input weights are
doubled and their sum leaves the input bias::

    W_c c + b  =  W_c (2 p - 1) + b  =  (2 W_c) p + (b - W_c 1)

which is the same model, exactly up to one float32 rounding of the bias. A switch with ``n``
positions sits at ``p = index / (n - 1)``.

What the plugin compiles, checked before writing (a one-line error otherwise):

* cell ``gru`` or ``lstm``, hidden size one of :data:`AIDAX_HIDDEN_SIZES`;
* at most :data:`AIDAX_MAX_KNOBS` knobs: the model's knobs in input order are PARAM1 and PARAM2.

AIDA-X plays the model at the host's sample rate without resampling, so the host must run at the
rate the model was trained at. The export prints the PARAM mapping and the rate and writes both into
``metadata.aidax``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.export import rtneural
from fxcap.modeling.export.common import ExportMeta, SelfTestConfig
from fxcap.modeling.export.snapshot import format_value

AIDAX_HIDDEN_SIZES = (8, 12, 16, 20, 24, 32, 40, 64, 80)
"""Hidden sizes AIDA-X compiles its GRU and LSTM models for (``src/model_variant.hpp``)."""

AIDAX_MAX_KNOBS = 2
"""AIDA-X feeds at most ``[x, PARAM1, PARAM2]``: two knobs."""

PARAMS = ("PARAM1", "PARAM2")

UNIT_NORMALIZATION = (
    "knob inputs run 0..1: continuous knob p = (value - minimum) / (maximum - minimum); "
    "switch with n positions p = index / (n - 1)"
)
"""How a panel value maps to this export's knob input."""


def supports(model: ConditionedRNN) -> bool:
    """Only the Concat scheme is a plain GRU/LSTM + dense stack (as for :mod:`~fxcap.modeling.export.rtneural`)."""
    return rtneural.supports(model)


def check_plugin_limits(model: ConditionedRNN) -> None:
    """:class:`ModelError` when AIDA-X cannot load ``model`` (hidden size, knob count), naming what works."""
    if model.hidden_size not in AIDAX_HIDDEN_SIZES:
        raise ModelError(
            f"AIDA-X loads {model.cell.upper()} hidden sizes {', '.join(map(str, AIDAX_HIDDEN_SIZES))} only, this model has "
            f"{model.hidden_size}; retrain with the default hidden size 32, or export --format rtneural for a host on RTNeural's dynamic API"
        )
    if model.num_knobs > AIDAX_MAX_KNOBS:
        raise ModelError(
            f"AIDA-X feeds at most {AIDAX_MAX_KNOBS} knobs (PARAM1, PARAM2), this model has {model.num_knobs}; "
            "export --format rtneural or onnx for a host that feeds every knob"
        )


def param_map(meta: ExportMeta) -> list[dict[str, Any]]:
    """PARAM1/PARAM2 -> knob, with the panel value at 0 and 1 (continuous) or each position's value (switch)."""
    params = []
    for param, knob in zip(PARAMS, meta.knobs):
        entry: dict[str, Any] = {"param": param, "knob": knob["name"]}
        if knob.get("values"):
            n = len(knob["values"])
            entry["positions"] = {str(v): i / (n - 1) for i, v in enumerate(knob["values"])}
        elif "minimum" in knob and "maximum" in knob:
            entry.update(at_0=knob["minimum"], at_1=knob["maximum"])
        else:
            entry.update(at_0="lowest trained setting", at_1="highest trained setting")
        params.append(entry)
    return params


def describe_params(meta: ExportMeta) -> str:
    """``"PARAM1 = drive (0 -> 0, 1 -> 10), PARAM2 = tone (0 -> 0, 1 -> 10)"`` (or ``"no knobs"``)."""
    parts = []
    for entry in param_map(meta):
        if "positions" in entry:
            where = ", ".join(f"{value} at {p:g}" for value, p in entry["positions"].items())
        else:
            where = f"0 -> {format_value(entry['at_0'])}, 1 -> {format_value(entry['at_1'])}"
        parts.append(f"{entry['param']} = {entry['knob']} ({where})")
    return ", ".join(parts) or "no knobs"


def to_aidax(model: ConditionedRNN, meta: ExportMeta) -> dict[str, Any]:
    """The RTNeural JSON document with 0..1 knob inputs (see the module docstring for the fold)."""
    check_plugin_limits(model)
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = rtneural.concat_weights(model)
    knob_columns = w_ih[:, 1:]
    w_unit = np.concatenate([w_ih[:, :1], 2.0 * knob_columns], axis=1)
    b_unit = b_ih - knob_columns.sum(axis=1)
    base = meta.to_dict()
    base["knob_normalization"] = UNIT_NORMALIZATION
    metadata = {
        **base,
        "inputs": ["audio", *PARAMS[: model.num_knobs]],
        "input_note": "feed [x, PARAM1, PARAM2] every sample, knob inputs 0..1",
        "aidax": {
            "params": param_map(meta),
            "sample_rate": meta.sample_rate,
            "sample_rate_note": f"AIDA-X does not resample the model: run the host at {meta.sample_rate} Hz",
        },
    }
    return rtneural.rnn_document(model.cell, w_unit, w_hh, b_unit, b_hh, w_out, b_out, metadata)


def export_aidax(model: ConditionedRNN, meta: ExportMeta, out: str | Path, config: SelfTestConfig | None = None) -> dict[str, Any]:
    """Write the AIDA-X JSON of a Concat model to ``out`` and self-test it with the numpy RTNeural reader,
    fed 0..1 knob inputs under knob automation.

    Returns the self-test report plus ``format``, ``inputs``, ``params`` (the PARAM mapping) and
    ``notes`` (the mapping and the sample rate, for the user).
    """
    document = to_aidax(model, meta)
    report = rtneural.write_rtneural(model, meta, out, document, lambda knobs: (knobs + 1.0) / 2.0,
                                     config or SelfTestConfig(), "AIDA-X JSON")
    report.update(
        format="aidax",
        inputs=document["metadata"]["inputs"],
        params=param_map(meta),
        notes=[
            f"AIDA-X knobs: {describe_params(meta)}",
            f"AIDA-X does not resample: run the host at {meta.sample_rate} Hz (the model's rate)",
        ],
    )
    return report
