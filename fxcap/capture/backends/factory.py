"""Build a backend from the ``--backend`` option.

Specs:
    ``sim`` or ``sim:OD-3``        a built-in virtual device behind a virtual rig (hidden latency,
                                   gain, noise, drift); the device name defaults to ``--device``.
    ``soundcard`` or ``soundcard:NAME``   an audio interface through PortAudio (sounddevice).
    ``plugin:Distortion`` or ``plugin:/path/to/Effect.vst3``   an effect pedalboard can load.
"""

from __future__ import annotations

from typing import Any

from fxcap.capture.backends.base import Backend
from fxcap.errors import DeviceNotFoundError

BACKEND_KINDS = ("sim", "soundcard", "plugin")

DEFAULT_DEVICE = "OD-3"
"""The profile of ``sim`` and ``soundcard`` when no ``--device`` is given (a plugin's own parameters
are its profile)."""


def parse_backend_spec(spec: str) -> tuple[str, str]:
    """Split ``kind[:target]`` into ``(kind, target)``; clear error for unknown kinds."""
    kind, _, target = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in BACKEND_KINDS:
        raise DeviceNotFoundError(f"unknown backend {spec!r}; use one of: sim, sim:OD-3, soundcard[:NAME], plugin:NAME")
    return kind, target.strip()


def resolve_device(spec: str, device: str | None) -> str | None:
    """The profile a backend drives: ``device`` if given, else :data:`DEFAULT_DEVICE` (``None`` for a
    plugin: its own parameters)."""
    if device is not None:
        return device
    return None if parse_backend_spec(spec)[0] == "plugin" else DEFAULT_DEVICE


def make_backend(spec: str, device: str | None, sample_rate: int, seed: int = 0, **options: Any) -> Backend:
    """The backend for ``spec`` driving ``device`` (a profile name or .toml; ``None``: see
    :func:`resolve_device`) at ``sample_rate`` Hz. For a plugin, ``device`` narrows its knobs."""
    kind, target = parse_backend_spec(spec)
    device = resolve_device(spec, device)
    if kind == "sim":
        from fxcap.capture.backends.sim import SimBackend
        from fxcap.capture.virtual import build_virtual_device

        return SimBackend(build_virtual_device(target or device or DEFAULT_DEVICE, sample_rate), seed=seed, **options)
    if kind == "soundcard":
        try:
            from fxcap.capture.backends.soundcard import SoundcardBackend
        except ImportError:
            raise DeviceNotFoundError(
                "the sound-card backend is not available in this installation; try the virtual device: --backend sim"
            ) from None
        return SoundcardBackend.from_spec(target, device=device or DEFAULT_DEVICE, sample_rate=sample_rate, **options)
    try:
        from fxcap.capture.backends.plugin import PluginBackend
    except ImportError:
        raise DeviceNotFoundError(
            "the plugin backend needs pedalboard (pip install 'fxcap[plugins]'); or use --backend sim"
        ) from None
    if not target:
        raise DeviceNotFoundError("name the plugin: --backend plugin:Distortion or plugin:/path/to/Effect.vst3")
    return PluginBackend.from_spec(target, sample_rate=sample_rate, device=device, **options)
