"""Capture backends: anything that plays a signal through a device and records what comes back."""

from fxcap.capture.backends.base import Backend, RawTake

__all__ = ["Backend", "RawTake"]
