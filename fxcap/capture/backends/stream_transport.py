"""The state a sound-card stream's audio callback works on: the signal going out block by block, the
recording coming in, and the stream events of every block (:class:`StreamTransport`).

The callback only slices and copies (no allocation, no Python objects per sample), so it keeps up
in the audio thread; :class:`fxcap.capture.backends.soundcard.SoundcardBackend` opens the stream.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StreamTransport:
    """State shared with the audio callback; the callback does only slicing and copies.

    Stream frame ``f`` carries signal sample ``f - preroll`` on the outputs; the input of frame
    ``f`` goes to ``recorded[f - preroll]`` while ``0 <= f - preroll < len(recorded)``.
    """

    signal: np.ndarray
    out_columns: list[int]
    in_column: int
    loop_column: int | None
    preroll: int
    recorded: np.ndarray
    loopback: np.ndarray | None
    position: int = 0
    events: list[str] = field(default_factory=list)
    preroll_events: int = 0
    block_sizes: set[int] = field(default_factory=set)
    finished: threading.Event = field(default_factory=threading.Event)
    completed: bool = False
    error: BaseException | None = None
    sd: Any = None

    def status_events(self, status: Any, start: int) -> list[str]:
        names = []
        if status.input_overflow:
            names.append("input overflow")
        if status.input_underflow:
            names.append("input underflow")
        if status.output_overflow:
            names.append("output overflow")
        if status.output_underflow:
            names.append("output underflow")
        if status.priming_output:
            names.append("output priming")
        return [f"{name} at sample {start}" for name in names]

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        try:
            start = self.position - self.preroll
            self.block_sizes.add(frames)
            if status:
                if start + frames <= 0:
                    self.preroll_events += 1  # before the signal: harmless, counted in info
                else:
                    self.events.extend(self.status_events(status, max(start, 0)))
            outdata.fill(0.0)
            n = len(self.signal)
            lo, hi = max(start, 0), min(start + frames, n)
            if hi > lo:
                block = self.signal[lo:hi]
                for column in self.out_columns:
                    outdata[lo - start : hi - start, column] = block
            m = len(self.recorded)
            lo, hi = max(start, 0), min(start + frames, m)
            if hi > lo:
                self.recorded[lo:hi] = indata[lo - start : hi - start, self.in_column]
                if self.loopback is not None and self.loop_column is not None:
                    self.loopback[lo:hi] = indata[lo - start : hi - start, self.loop_column]
            self.position += frames
        except Exception as exc:  # never let a bug hang the stream: stop and report it
            self.error = exc
            raise self.sd.CallbackAbort from None
        if start + frames >= len(self.recorded):
            self.completed = True
            raise self.sd.CallbackStop
