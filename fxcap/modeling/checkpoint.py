"""Checkpoints that load without executing code.

Weights are stored as safetensors (``*.safetensors``, tensors only); the model config and training
metadata as JSON beside them. Optimizer/scheduler state for ``--resume`` is a plain dict of tensors
and numbers saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from fxcap.errors import ModelError
from fxcap.io import atomic_write_bytes, atomic_write_json


def save_weights(path: str | Path, model: torch.nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model.state_dict()`` as safetensors (atomic). ``metadata`` goes into the header as JSON."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"fxcap": json.dumps(metadata or {}, sort_keys=True)}
    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors checkpoint: ``(state_dict, metadata)``; clear error when missing or corrupt."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist; train a model first (fxcap train)") from None
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get("fxcap", "{}"))
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"checkpoint {path} is corrupt ({exc}); retrain, or use the run's other checkpoint (best/last)") from None
    return tensors, meta


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Save a training-state dict (tensors, numbers, strings, nested dicts/lists) atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """Load a training-state dict with ``weights_only=True`` (never runs code)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist; nothing to resume, start the run without --resume") from None
    except Exception as exc:  # torch raises a variety of unpickling errors for corrupt files
        raise ModelError(f"training state {path} is corrupt ({type(exc).__name__}); start the run afresh with --force") from None


def save_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_json(path, obj)
