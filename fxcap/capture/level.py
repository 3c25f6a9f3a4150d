"""Pick the played level for a deterministic backend (a plugin): the highest at which nothing clips.

A plugin's output at a knob setting is the same on every take, so a take whose output clips would
clip again on every re-take (pedalboard's ``Distortion`` saturates at full scale from ``drive_db``
about 14 dB with the default -3 dBFS signal). When the user gives no level (``--peak-dbfs``),
:func:`pick_peak_level` plays the signal through the backend at every planned setting, starting at
the default peak and lowering it by :data:`LEVEL_STEP_DB` until no setting clips (the
``output_clipping`` check's own test, :func:`fxcap.capture.checks.output_clip_index`), down to
:data:`MIN_PEAK_DBFS`. A setting that passed at a higher level is not played again at a lower one
(a lower input does not raise an effect's output peak), so a sweep costs one pass per setting plus
one per level lowered; every take is still checked when it is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fxcap.capture.backends.base import Backend
from fxcap.capture.checks import CheckConfig, output_clip_index
from fxcap.capture.profiles import KnobValue
from fxcap.errors import CaptureError

LEVEL_STEP_DB = 6.0
"""How far the peak level drops after a setting clipped (dB)."""

MIN_PEAK_DBFS = -40.0
"""The lowest peak level of the capture signal (dBFS), as :class:`fxcap.capture.signal.SignalConfig` allows."""


@dataclass
class LevelChoice:
    """The outcome of :func:`pick_peak_level`.

    Attributes:
        peak_dbfs: the chosen peak level of the signal (dBFS).
        clipped: ``(level in dBFS, setting)`` for every level that was too high, with the setting
            whose output clipped there.
    """

    peak_dbfs: float
    clipped: list[tuple[float, dict[str, KnobValue]]] = field(default_factory=list)

    def describe(self, device: str) -> str:
        """One line for the user and the manifest."""
        if not self.clipped:
            return f"signal level {self.peak_dbfs:+.1f} dBFS: no planned setting of {device} clips"
        level, knobs = self.clipped[0]
        setting = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items())
        return (f"signal level {self.peak_dbfs:+.1f} dBFS chosen: at {level:+.1f} dBFS {device}'s output clipped "
                f"({setting}); pass --peak-dbfs to set the level yourself")

    def to_dict(self) -> dict[str, Any]:
        return {"peak_dbfs": self.peak_dbfs, "chosen": True,
                "clipped": [{"peak_dbfs": level, "knobs": dict(knobs)} for level, knobs in self.clipped]}


def pick_peak_level(
    backend: Backend,
    settings: Sequence[dict[str, KnobValue]],
    audio_at: Callable[[float], np.ndarray],
    start_dbfs: float,
    config: CheckConfig | None = None,
) -> LevelChoice:
    """The highest peak level, from ``start_dbfs`` down in :data:`LEVEL_STEP_DB` steps, at which the
    output of ``backend`` clips at none of ``settings``.

    Args:
        backend: a deterministic backend (its takes do not vary).
        settings: the planned knob settings (repeats are played once).
        audio_at: the capture signal's audio at a peak level in dBFS.
        start_dbfs: the first level tried (the default peak).
        config: the clipping thresholds of the ``output_clipping`` check.

    Raises :class:`CaptureError` when a setting clips even at :data:`MIN_PEAK_DBFS`.
    """
    config = config or CheckConfig()
    pending: list[dict[str, KnobValue]] = []
    for knobs in settings:
        if knobs not in pending:
            pending.append(dict(knobs))
    choice = LevelChoice(peak_dbfs=float(start_dbfs))
    audio = audio_at(choice.peak_dbfs)
    while pending:
        knobs = pending[0]
        if output_clip_index(backend.play_record(audio, knobs).recorded, config) is None:
            pending.pop(0)
            continue
        choice.clipped.append((choice.peak_dbfs, knobs))
        if choice.peak_dbfs <= MIN_PEAK_DBFS:
            setting = ", ".join(f"{k}={v}" for k, v in knobs.items())
            raise CaptureError(
                f"{backend.profile.name}'s output clips at {setting} even with the signal at {MIN_PEAK_DBFS:g} dBFS; "
                "narrow that knob's range with --device profile.toml or leave the setting out of the plan"
            )
        choice.peak_dbfs = max(choice.peak_dbfs - LEVEL_STEP_DB, MIN_PEAK_DBFS)
        audio = audio_at(choice.peak_dbfs)
    return choice
