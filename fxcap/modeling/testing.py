"""Testing helpers: training run folders without training (in the spirit of :mod:`fxcap.dataset.testing`).

:func:`make_dummy_run` builds a freshly initialised model and writes the folder
:func:`fxcap.modeling.train.train` would leave (``config.json`` and ``best``/``last`` safetensors),
so exporters, renderers and reports can be tested in milliseconds. The weights are seeded: the same
arguments give the same model.

Example::

    from fxcap.modeling.testing import make_dummy_run
    run = make_dummy_run(tmp_path / "run", cond="film", cell="gru", num_knobs=2, sample_rate=16000)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from fxcap.capture.profiles import Knob
from fxcap.modeling.checkpoint import save_json, save_weights
from fxcap.modeling.registry import ModelConfig, build_model

DEFAULT_KNOB_NAMES = ("drive", "tone", "level")
"""Knob names of dummy runs (more knobs are called ``knob4``, ``knob5``, ...)."""


def dummy_knobs(num_knobs: int) -> list[Knob]:
    """``num_knobs`` continuous 0..10 knobs named after :data:`DEFAULT_KNOB_NAMES`."""
    names = [DEFAULT_KNOB_NAMES[i] if i < len(DEFAULT_KNOB_NAMES) else f"knob{i + 1}" for i in range(num_knobs)]
    return [Knob(name, 0.0, 10.0, 5.0) for name in names]


def make_dummy_run(
    run_dir: str | Path,
    cond: str = "concat",
    cell: str = "gru",
    num_knobs: int = 2,
    sample_rate: int = 48000,
    knobs: Sequence[Knob] | None = None,
    seed: int = 0,
    window: int = 2048,
    **model_overrides: Any,
) -> Path:
    """Write an untrained run folder for ``cond``/``cell`` at ``sample_rate`` (Hz); returns ``run_dir``.

    ``config.json`` has the layout :func:`~fxcap.modeling.train.train` writes (``model``, ``train``,
    ``dataset`` with knob names, sample rate and window, ``parameters``), plus ``dataset.knobs`` (the
    knob ranges, :meth:`Knob.to_dict`). ``model_overrides`` go into :class:`ModelConfig`
    (e.g. ``hidden_size=8``).
    """
    from fxcap.modeling.train import TrainConfig

    knobs = list(knobs) if knobs is not None else dummy_knobs(num_knobs)
    if len(knobs) != num_knobs:
        raise ValueError(f"got {len(knobs)} knobs for num_knobs={num_knobs}")
    run_dir = Path(run_dir)
    config = ModelConfig(cond=cond, cell=cell, num_knobs=num_knobs, seed=seed, **model_overrides)
    model = build_model(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_json(
        run_dir / "config.json",
        {
            "model": config.to_dict(),
            "train": TrainConfig(seed=seed).to_dict(),
            "dataset": {
                "path": "",
                "hash": "dummy",
                "device": "dummy",
                "knob_names": [k.name for k in knobs],
                "knobs": [k.to_dict() for k in knobs],
                "sample_rate": int(sample_rate),
                "window": int(window),
            },
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    )
    for which in ("best", "last"):
        save_weights(run_dir / f"{which}.safetensors", model, {"epoch": 0, "valid_loss": None})
    return run_dir
