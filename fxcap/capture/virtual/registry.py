"""The built-in virtual devices by name."""

from __future__ import annotations

from fxcap.capture.virtual.base import VirtualDevice
from fxcap.capture.virtual.compressor import LA2ACompressor
from fxcap.capture.virtual.overdrive import OD3Overdrive
from fxcap.errors import DeviceNotFoundError

VIRTUAL_DEVICES: dict[str, type[VirtualDevice]] = {
    cls.profile.name: cls for cls in (OD3Overdrive, LA2ACompressor)
}
"""Built-in virtual devices, keyed by their profile's name (``"OD-3"``, ``"LA-2A"``)."""


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def build_virtual_device(name: str, sample_rate: int = 48000) -> VirtualDevice:
    """A fresh virtual device by name (case-insensitive; ``-``, ``_`` and spaces ignored: ``"od3"``)."""
    for key, cls in VIRTUAL_DEVICES.items():
        if _key(key) == _key(name):
            return cls(sample_rate)
    raise DeviceNotFoundError(
        f"no virtual device {name!r}; built-in virtual devices are: {', '.join(VIRTUAL_DEVICES)}"
    )
