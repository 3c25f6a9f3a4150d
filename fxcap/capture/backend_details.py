"""What a session records about the backend that made it: ``session.json``'s ``"backend"`` entry, typed.

Every backend describes itself as a flat JSON object (:meth:`fxcap.capture.backends.base.Backend.describe`;
the recorder adds the ``--backend`` spec, the seed and the profile, the importer its files and options).
:class:`BackendDetails` holds the keys fxcap's own backends write as typed fields, so the code that
resumes, imports, builds datasets and reports reads attributes instead of string keys.

On disk nothing changed: the entry stays one flat object with the same keys (no version bump; a
session written before loads, and an fxcap from before reads a session written now).
:meth:`BackendDetails.from_dict` followed by :meth:`BackendDetails.to_dict` gives back the object read,
key for key: keys fxcap does not know (a third-party backend's facts) are kept in ``extra``, and so are
known keys stored as ``null`` (the field reads ``None`` either way). A field left at ``None`` by a writer
is not written (readers, old and new, treat a missing key and a ``null`` alike).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

_SEQUENCES = ("output_channels",)
"""Fields held as tuples (immutable) and written as JSON lists."""


@dataclass(frozen=True)
class BackendDetails:
    """The backend of a session (``session.json``'s ``"backend"``). ``None``: not written by this backend.

    Common to every backend:
        name: ``"sim"``, ``"soundcard"``, ``"plugin"``, ``"import"``, ``"signaltrain"``... (required).
        sample_rate: the rate the backend ran at (Hz). device: the device profile's name.
    Added by ``fxcap record`` (:func:`fxcap.capture.capture.run_capture`), read by ``--resume``:
        spec: the ``--backend`` given (``sim``, ``soundcard:NAME``, ``plugin:PATH``).
        seed: the backend's seed. profile_source: the ``--device`` profile resolved (name or .toml path;
        ``None`` for a plugin driven by its own parameters). level: the signal level chosen when none
        was given (``{"peak_dbfs", "chosen", "clipped", "note"}``, dBFS).
    The virtual rig (``sim``): virtual_device (the simulated device's name), rig (how its impairments
    were chosen; their values stay hidden), loopback (whether a loopback is recorded with every take).
    A sound card: interface, hostapi (PortAudio's names), output_channels, input_channel,
    loopback_channel (1-based channel numbers), blocksize (frames), tail_seconds (s recorded after the signal).
    A plugin: plugin (its path or name), profile (the profile narrowing its knobs, if any), pedalboard
    (the library's version), tail_seconds, stereo.
    ``fxcap import``: signal_file (the dry signal given), bypass_file and bypass_source (the bypass
    recording as given and resolved), channel (the channel taken from multichannel files, 1-based),
    resample (whether files at another rate were resampled).
    ``fxcap import-signaltrain``: source (the dataset folder).
    extra: every other key, as read (see the module docstring).
    """

    name: str
    sample_rate: int | None = None
    device: str | None = None
    spec: str | None = None
    seed: int | None = None
    profile_source: str | None = None
    level: dict[str, Any] | None = None
    virtual_device: str | None = None
    rig: str | None = None
    loopback: bool | None = None
    interface: str | None = None
    hostapi: str | None = None
    output_channels: tuple[int, ...] | None = None
    input_channel: int | None = None
    loopback_channel: int | None = None
    blocksize: int | None = None
    tail_seconds: float | None = None
    plugin: str | None = None
    profile: str | None = None
    pedalboard: str | None = None
    stereo: bool | None = None
    signal_file: str | None = None
    bypass_file: str | None = None
    bypass_source: str | None = None
    channel: int | None = None
    resample: bool | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a backend needs a name, got {self.name!r}")
        if self.output_channels is not None:
            object.__setattr__(self, "output_channels", tuple(self.output_channels))

    @property
    def bypass(self) -> str | None:
        """The bypass recording of an import (its resolved path, else the path as given); ``None``: no bypass."""
        return self.bypass_source or self.bypass_file

    @classmethod
    def known_keys(cls) -> tuple[str, ...]:
        """The keys held in typed fields (everything but ``extra``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    def to_dict(self) -> dict[str, Any]:
        """The flat ``session.json`` object: ``extra``, then every field that is not ``None``."""
        data = dict(self.extra)
        for key in self.known_keys():
            value = getattr(self, key)
            if value is not None:
                data[key] = list(value) if key in _SEQUENCES else value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackendDetails":
        """Read the flat object (a missing or empty ``name``: :class:`ValueError`)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"the backend entry is a {type(data).__name__}, not an object")
        known = set(cls.known_keys())
        typed = {k: v for k, v in data.items() if k in known and v is not None}
        extra = {k: v for k, v in data.items() if k not in typed}
        if "name" not in typed:
            raise ValueError("the backend entry has no name")
        return cls(**typed, extra=extra)
