"""Export a trained model for use outside fxcap, with a self-test of every exported file.

Formats (which plugin loads what: README, "Export")::

    onnx      every scheme: a streaming graph, (audio, knobs, state) -> (audio_out, state_out)
              (:mod:`fxcap.modeling.export.onnx`)
    rtneural  Concat GRU/LSTM: RTNeural JSON, knob inputs in [-1, 1], for an RTNeural host you control
              (:mod:`fxcap.modeling.export.rtneural`)
    aidax     Concat GRU/LSTM: RTNeural JSON with knob inputs 0..1, as AIDA-X feeds PARAM1/PARAM2
              (:mod:`fxcap.modeling.export.aidax`)
    nam       Concat/FiLM/StaticHyper LSTM: a NAM ``.nam`` snapshot at one knob setting, or a pack of
              them (:mod:`fxcap.modeling.export.nam`, settings from :mod:`~fxcap.modeling.export.snapshot`)

Every export runs the written file in an engine independent of PyTorch (onnxruntime, or a numpy
reader of the JSON) on a few seconds of plucked-string audio under knob automation (at the fixed
setting for a snapshot), compares the output with the PyTorch model's and refuses to write the file
when the max absolute difference exceeds the tolerance (1e-4). A model a format cannot express is
refused with a one-line message that says why and what to export or train instead.

Example::

    from fxcap.modeling.export import export_run
    report = export_run("runs/od3-concat-gru", "od3.json", "aidax")
    print(report["max_abs_error"], report["notes"])
    export_run("runs/od3-film-lstm", "packs/od3", "nam", grid=5)   # 25 .nam files + index.csv
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fxcap.errors import ModelError
from fxcap.modeling.base import ConditionedRNN
from fxcap.modeling.export import aidax as aidax_format
from fxcap.modeling.export import nam as nam_format
from fxcap.modeling.export import onnx as onnx_format
from fxcap.modeling.export import rtneural as rtneural_format
from fxcap.modeling.export.common import DEFAULT_SELF_TEST_SECONDS, SELF_TEST_TOLERANCE, ExportMeta, SelfTestConfig
from fxcap.modeling.export.snapshot import Snapshot, plan_snapshots, with_test_esr

__all__ = ["FORMATS", "ExportFormat", "ExportMeta", "SelfTestConfig", "Snapshot", "export_model", "export_run", "formats_for"]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, file suffix, what it can express and its exporter.

    ``supports(model)`` says whether the format can express ``model``; ``refusal(model)`` says why
    not and what to do instead (default: ``limits``, what the format holds, and the formats that can).
    ``export(model, meta, out, config)`` writes the file after its self-test and returns the report;
    a ``snapshot`` format's exporter also takes the knob settings (``snapshots``, ``pack``,
    ``user_metadata``).
    """

    name: str
    suffix: str
    description: str
    limits: str
    supports: Callable[[ConditionedRNN], bool]
    export: Callable[..., dict[str, Any]]
    refusal: Callable[[ConditionedRNN], str] | None = None
    snapshot: bool = False


RTNEURAL_LIMITS = "RTNeural JSON holds plain GRU/LSTM and dense layers only, i.e. the concat scheme"

FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat("onnx", ".onnx", "streaming ONNX graph with state in/out (every scheme)",
                         "any conditioned RNN", onnx_format.supports, onnx_format.export_onnx),
    "rtneural": ExportFormat("rtneural", ".json", "RTNeural JSON, knob inputs in [-1, 1] (concat GRU/LSTM)",
                             RTNEURAL_LIMITS, rtneural_format.supports, rtneural_format.export_rtneural),
    "aidax": ExportFormat("aidax", ".json", "RTNeural JSON for AIDA-X, knob inputs 0..1 (concat GRU/LSTM, at most 2 knobs)",
                          RTNEURAL_LIMITS, aidax_format.supports, aidax_format.export_aidax),
    "nam": ExportFormat("nam", ".nam", "NAM .nam snapshot at one knob setting (concat/film/statichyper LSTM)",
                        "a .nam file holds a plain LSTM", nam_format.supports, nam_format.export_nam,
                        refusal=nam_format.refusal, snapshot=True),
}
"""Export formats by name."""


def formats_for(model: ConditionedRNN) -> list[str]:
    """Names of the formats that can express ``model``."""
    return [name for name, fmt in FORMATS.items() if fmt.supports(model)]


def _format(model: ConditionedRNN, name: str) -> ExportFormat:
    fmt = FORMATS.get(str(name).lower())
    if fmt is None:
        raise ModelError(f"unknown export format {name!r}; choose one of {', '.join(FORMATS)}")
    if getattr(model, "even_gain", None) is not None:
        raise ModelError(
            f"the model runs its cell twice with an even-order gain (even_gain), which {fmt.name} files cannot hold; "
            "render it with `fxcap render`, or train without it (--no-even-gain) to export"
        )
    if not isinstance(model, ConditionedRNN) and not fmt.supports(model):  # a FilteredRNN: filters around the cell
        raise ModelError(
            f"the model has learned input/output filters or knob gains (pre_filter_poles / post_filter_poles / knob_gains), "
            f"which {fmt.name} files cannot hold; export it as onnx, or train without them "
            "(--pre-filter 0 --post-filter 0 --no-knob-gains) for this format"
        )
    if not fmt.supports(model):
        if fmt.refusal is not None:
            raise ModelError(f"the {model.config.cond} {model.cell.upper()} model cannot be exported as {fmt.name}: {fmt.refusal(model)}")
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
    snapshots: list[Snapshot] | None = None,
    pack: bool = False,
    user_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``model`` described by ``meta`` to the file ``out`` in ``format`` and self-test it.

    ``snapshots`` (knob settings), ``pack`` (a folder of files) and ``user_metadata`` (NAM's user
    fields) are for snapshot formats (``nam``) only.

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
    config = config or SelfTestConfig()
    if fmt.snapshot:
        report = fmt.export(model, meta, Path(out), config, snapshots or [], pack=pack, user_metadata=user_metadata)
    else:
        if snapshots or pack or user_metadata:
            _refuse_settings(fmt)
        report = fmt.export(model, meta, Path(out), config)
    return {**report, "knobs": meta.knobs}


def _refuse_settings(fmt: ExportFormat) -> None:
    snapshot_formats = ", ".join(name for name, f in FORMATS.items() if f.snapshot)
    raise ModelError(f"--set, --at, --grid and --meta are for snapshot formats ({snapshot_formats}); "
                     f"{fmt.name} keeps the knobs as live inputs")


def export_run(
    run_dir: str | Path,
    out: str | Path,
    format: str = "onnx",
    checkpoint: str = "best",
    seconds: float = DEFAULT_SELF_TEST_SECONDS,
    tolerance: float = SELF_TEST_TOLERANCE,
    seed: int = 0,
    settings: list[str] | None = None,
    at: list[str] | None = None,
    grid: int | None = None,
    meta_fields: list[str] | None = None,
) -> dict[str, Any]:
    """Export the model of a training run folder (what ``fxcap export`` calls).

    Args:
        run_dir: run folder written by :func:`fxcap.modeling.train.train`.
        out: file to write; a folder (an existing one, or a path without a file suffix) receives
            ``<run name><suffix>`` (``<run>_<setting>.nam`` for a snapshot); a pack (``at`` or
            ``grid``) is always a folder.
        format: ``onnx``, ``rtneural``, ``aidax`` or ``nam`` (see :data:`FORMATS`).
        checkpoint: ``best`` or ``last``.
        seconds: length of the self-test audio in seconds.
        tolerance: largest allowed absolute difference between the exported model and PyTorch.
        seed: seed of the self-test audio and knob automation.
        settings: ``NAME=VALUE`` knob settings in panel units (snapshot formats; others at their default).
        at: ``"drive=7,tone=4"`` settings of a pack (snapshot formats).
        grid: values per knob of a pack spanning every knob not fixed by ``settings`` (snapshot formats).
        meta_fields: ``KEY=VALUE`` NAM metadata (``gear_type=pedal``, ``input_level_dbu=12``, ...).

    Returns the report of :func:`export_model`.
    """
    from fxcap.modeling.render import knobs_from_run
    from fxcap.modeling.train import load_run

    if checkpoint not in ("best", "last"):
        raise ModelError(f"checkpoint must be 'best' or 'last', not {checkpoint!r}")
    fmt = FORMATS.get(str(format).lower())
    if fmt is None:
        raise ModelError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if not fmt.snapshot and (settings or at or grid is not None or meta_fields):
        _refuse_settings(fmt)
    run_dir = Path(run_dir)
    config = SelfTestConfig(seconds=seconds, tolerance=tolerance, seed=seed)
    model, run_config = load_run(run_dir, checkpoint)
    _format(model, fmt.name)  # a model the format cannot hold: its one-line refusal before any work
    meta = ExportMeta.from_run(model, run_config, checkpoint=checkpoint, run=run_dir.resolve().name)
    out = Path(out)
    snapshots: list[Snapshot] | None = None
    pack = bool(at) or grid is not None
    user_metadata = None
    if fmt.snapshot and fmt.supports(model):
        try:
            knobs = knobs_from_run(run_config)
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"config.json of run {run_dir.name!r} records no knob ranges, so panel settings cannot be "
                             "mapped to the model; re-train the run with `fxcap train`") from None
        snapshots = with_test_esr(plan_snapshots(knobs, settings, at, grid), knobs, run_dir, checkpoint)
        user_metadata = nam_format.parse_user_metadata(list(meta_fields or []))
        if not pack and (out.is_dir() or not out.suffix):
            out = out / f"{meta.run or 'model'}_{snapshots[0].slug}{fmt.suffix}"
    elif out.is_dir() or not out.suffix:
        out = out / f"{meta.run or 'model'}{fmt.suffix}"
    return export_model(model, meta, out, fmt.name, config, snapshots, pack=pack, user_metadata=user_metadata)
