"""Export a trained model for use outside fxcap, with a self-test of every exported file.

Formats::

    onnx      every scheme: a streaming graph, (audio, knobs, state) -> (audio_out, state_out)
              (:mod:`fxcap.modeling.export.onnx`)
    rtneural  Concat GRU/LSTM only: RTNeural JSON as loaded by AIDA-X / Proteus-style plugins
              (:mod:`fxcap.modeling.export.rtneural`)

Every export runs the written file in an engine independent of PyTorch (onnxruntime, or a numpy
reader of the JSON) on a few seconds of plucked-string audio under knob automation, compares the
output with the PyTorch model's and refuses to write the file when the max absolute difference
exceeds the tolerance (1e-4). A scheme a format cannot express is refused with a message naming the
formats that can.

Example::

    from fxcap.modeling.export import export_run
    report = export_run("runs/od3-concat-gru", "od3.json", "rtneural")
    print(report["max_abs_error"], report["bytes"])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.export import onnx as onnx_format
from fxcap.modeling.export import rtneural as rtneural_format
from fxcap.modeling.export.common import DEFAULT_SELF_TEST_SECONDS, SELF_TEST_TOLERANCE, ExportMeta, SelfTestConfig

__all__ = ["FORMATS", "ExportFormat", "ExportMeta", "SelfTestConfig", "export_model", "export_run", "formats_for"]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, file suffix, what it can express and its exporter.

    ``supports(model)`` says whether the format can express ``model`` (``limits`` says what it holds,
    for the refusal message); ``export(model, meta, out, config)`` writes the file after its
    self-test and returns the report.
    """

    name: str
    suffix: str
    description: str
    limits: str
    supports: Callable[[ConditionedRNN], bool]
    export: Callable[[ConditionedRNN, ExportMeta, Path, SelfTestConfig], dict[str, Any]]


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat("onnx", ".onnx", "streaming ONNX graph with state in/out (every scheme)",
                         "any conditioned RNN", onnx_format.supports, onnx_format.export_onnx),
    "rtneural": ExportFormat("rtneural", ".json", "RTNeural JSON for AIDA-X / Proteus-style plugins (concat GRU/LSTM)",
                             "RTNeural JSON holds plain GRU/LSTM and dense layers only, i.e. the concat scheme",
                             rtneural_format.supports, rtneural_format.export_rtneural),
}
"""Export formats by name."""


def formats_for(model: ConditionedRNN) -> list[str]:
    """Names of the formats that can express ``model``."""
    return [name for name, fmt in FORMATS.items() if fmt.supports(model)]


def _format(model: ConditionedRNN, name: str) -> ExportFormat:
    fmt = FORMATS.get(str(name).lower())
    if fmt is None:
        raise ModelError(f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}")
    if not fmt.supports(model):
        able = formats_for(model)
        raise ModelError(
            f"the {model.config.cond} scheme cannot be exported as {fmt.name} ({fmt.limits}); "
            + (f"export it as {' or '.join(able)} instead (--format {able[0]})" if able else "no export format can express it yet")
        )
    return fmt


def export_model(
    model: ConditionedRNN,
    meta: ExportMeta,
    out: str | Path,
    format: str = "onnx",
    config: SelfTestConfig | None = None,
) -> dict[str, Any]:
    """Export ``model`` described by ``meta`` to the file ``out`` in ``format`` and self-test it.

    Returns the report: ``format``, ``path``, ``bytes`` (file size), ``max_abs_error``, ``tolerance``,
    ``seconds`` and ``samples`` of the self-test audio, ``output_peak``, ``knobs`` (the knob inputs in
    order, :attr:`ExportMeta.knobs`), plus format-specific entries.
    """
    fmt = _format(model, format)
    broken = [name for name, value in model.state_dict().items() if not bool(value.isfinite().all())]
    if broken:
        raise ModelError(
            f"the model's {broken[0]} holds NaN or Inf (training diverged); export the run's other checkpoint "
            "(--checkpoint best/last) or retrain with a lower learning rate"
        )
    return {**fmt.export(model, meta, Path(out), config or SelfTestConfig()), "knobs": meta.knobs}


def export_run(
    run_dir: str | Path,
    out: str | Path,
    format: str = "onnx",
    checkpoint: str = "best",
    seconds: float = DEFAULT_SELF_TEST_SECONDS,
    tolerance: float = SELF_TEST_TOLERANCE,
    seed: int = 0,
) -> dict[str, Any]:
    """Export the model of a training run folder (what ``fxcap export`` calls).

    Args:
        run_dir: run folder written by :func:`fxcap.modeling.train.train`.
        out: file to write; a folder (an existing one, or a path without a file suffix) receives
            ``<run name><suffix>`` (``.onnx``/``.json``).
        format: ``onnx`` or ``rtneural`` (see :data:`FORMATS`).
        checkpoint: ``best`` or ``last``.
        seconds: length of the self-test audio in seconds.
        tolerance: largest allowed absolute difference between the exported model and PyTorch.
        seed: seed of the self-test audio and knob automation.

    Returns the report of :func:`export_model`.
    """
    from fxcap.modeling.train import load_run

    if checkpoint not in ("best", "last"):
        raise ModelError(f"checkpoint must be 'best' or 'last', not {checkpoint!r}")
    if str(format).lower() not in FORMATS:
        raise ModelError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    config = SelfTestConfig(seconds=seconds, tolerance=tolerance, seed=seed)
    model, run_config = load_run(run_dir, checkpoint)
    meta = ExportMeta.from_run(model, run_config, checkpoint=checkpoint, run=run_dir.resolve().name)
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / f"{meta.run or 'model'}{FORMATS[str(format).lower()].suffix}"
    return export_model(model, meta, out, format, config)
