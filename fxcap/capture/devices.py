"""Everything fxcap can capture, for ``fxcap devices``: profiles, virtual devices, plugin built-ins
and the sound cards PortAudio sees. Missing optional parts (pedalboard, PortAudio) are reported
as a note, never as an error."""

from __future__ import annotations

from dataclasses import dataclass, field

from fxcap.capture.profiles import BUILTIN_PROFILES, DeviceProfile
from fxcap.errors import FxcapError


@dataclass
class DeviceListing:
    """What :func:`list_devices` found.

    Attributes:
        profiles: the built-in device profiles.
        virtual: names of the built-in virtual devices (``--backend sim``).
        plugins: pedalboard built-in effects usable as ``--backend plugin:NAME``.
        plugins_note: why ``plugins`` is empty, if it is.
        interfaces: audio interfaces (:class:`fxcap.capture.backends.soundcard.InterfaceInfo`).
        interfaces_note: why ``interfaces`` is empty, if it is (no PortAudio, none found, not scanned).
    """

    profiles: list[DeviceProfile]
    virtual: list[str]
    plugins: list[str] = field(default_factory=list)
    plugins_note: str = ""
    interfaces: list = field(default_factory=list)
    interfaces_note: str = ""


def list_devices(sound_cards: bool = True) -> DeviceListing:
    """Scan what is available; ``sound_cards=False`` skips PortAudio (it may take a moment)."""
    from fxcap.capture.virtual import VIRTUAL_DEVICES

    listing = DeviceListing(profiles=list(BUILTIN_PROFILES.values()), virtual=list(VIRTUAL_DEVICES))
    try:
        import pedalboard

        from fxcap.capture.backends.plugin import BUILTIN_PARAMETERS

        listing.plugins = [name for name in BUILTIN_PARAMETERS if hasattr(pedalboard, name)]
    except ImportError:
        listing.plugins_note = "pedalboard is not installed: pip install 'fxcap[plugins]'"
    if not sound_cards:
        listing.interfaces_note = "not scanned"
        return listing
    try:
        from fxcap.capture.backends.soundcard import list_interfaces

        listing.interfaces = list_interfaces()
    except (ImportError, OSError, FxcapError) as exc:
        listing.interfaces_note = str(exc) if isinstance(exc, FxcapError) else f"PortAudio is not available ({exc})"
        return listing
    if not listing.interfaces:
        listing.interfaces_note = "PortAudio found no audio interface; connect one (and start JACK/PipeWire if you use it)"
    return listing
