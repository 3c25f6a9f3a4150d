"""Built-in virtual devices (an OD-3-like overdrive, an LA-2A-like compressor) and the rig model
that adds what a real interface adds (latency, gain, polarity, noise, hum, clock drift, faults)."""

from fxcap.capture.virtual.base import VirtualDevice
from fxcap.capture.virtual.compressor import LA2ACompressor
from fxcap.capture.virtual.overdrive import OD3Overdrive
from fxcap.capture.virtual.registry import VIRTUAL_DEVICES, build_virtual_device
from fxcap.capture.virtual.rig import FAULTS, RigImpairments, apply_rig, random_impairments

__all__ = [
    "FAULTS",
    "LA2ACompressor",
    "OD3Overdrive",
    "RigImpairments",
    "VIRTUAL_DEVICES",
    "VirtualDevice",
    "apply_rig",
    "build_virtual_device",
    "random_impairments",
]
