"""A virtual pedal as a JACK client: a stand-in for a real device on a real audio server.

Run it in its own process (Python callbacks of two JACK clients in one process compete for the
GIL and cause xruns)::

    python -m fxcap.capture.jack_pedal --device OD-3 --name fxcap-pedal

Ports (``<name>:...``), registered in this order so that PortAudio's device ``<name>`` maps its
channel 1 to the effect and channel 2 to the loopback path:

* ``in_1`` -> effect -> ``out_1``: the device (or a copy of ``in_1`` while bypassed);
* ``loop_in`` -> ``loop_out``: a wire, like a loopback cable on an interface (``--no-loopback``
  leaves it out);
* ``midi_in``: MIDI Control Change sets the knobs (CC numbers from
  :func:`fxcap.capture.midi.assign_midi_ccs`: the profile's own, else 20, 21, ... in profile order),
  the bypass CC (default 102; value >= 64 bypasses) and CC 120 "All Sound Off" clears the
  effect's state. Messages take effect at the start of the next JACK period.

Opened by name through PortAudio (``SoundcardBackend(interface="fxcap-pedal")``), PortAudio
connects its outputs to ``in_1``/``loop_in`` and ``out_1``/``loop_out`` to its inputs itself.

The process prints JSON lines on stdout: ``{"event": "ready", ...}`` once its ports exist, then one
line per knob, bypass or reset change (and per JACK xrun), so a parent process can follow it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import queue
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from fxcap.capture.midi import ALL_SOUND_OFF_CC, DEFAULT_BYPASS_CC, DEFAULT_FIRST_CC, assign_midi_ccs, cc_to_knob
from fxcap.capture.profiles import DeviceProfile, KnobValue, get_profile
from fxcap.errors import DeviceNotFoundError, FxcapError


class Processor(Protocol):
    """A stateful mono effect: consecutive ``process`` calls continue the stream."""

    def process(self, block: np.ndarray, knobs: dict[str, KnobValue]) -> np.ndarray:
        """Process one block (float32, shape ``(n,)``) at a knob setting; return ``n`` samples."""


@dataclass
class PedalConfig:
    """Options of the virtual pedal.

    Attributes:
        name: JACK client name (PortAudio lists the pedal as a device of this name).
        loopback: register the ``loop_in`` -> ``loop_out`` wire.
        bypass: start in bypass.
        midi_channel: MIDI channel 1..16 the pedal listens on (0: all channels).
    """

    name: str = "fxcap-pedal"
    loopback: bool = True
    bypass: bool = False
    midi_channel: int = 0


class PedalEngine:
    """The pedal's signal path and MIDI handling, independent of JACK (called once per period).

    Args:
        processor: the effect.
        profile: the effect's knobs; every knob needs a ``midi_cc`` (see ``assign_midi_ccs``).
        config: pedal options.
        report: called with one event dict per change (from the audio thread: must not block).
    """

    def __init__(
        self,
        processor: Processor,
        profile: DeviceProfile,
        config: PedalConfig,
        report: Callable[[dict[str, Any]], None] = lambda event: None,
    ) -> None:
        self.processor = processor
        self.profile = profile
        self.config = config
        self.report = report
        self.knobs: dict[str, KnobValue] = profile.defaults()
        self.bypass = config.bypass
        self._by_cc = {k.midi_cc: k for k in profile.knobs if k.midi_cc is not None}
        bypass_cc = profile.extra.get("midi_bypass_cc")
        self._bypass_cc = int(bypass_cc) if bypass_cc is not None else None

    def handle_midi(self, data: bytes) -> None:
        """Apply one raw MIDI message (Control Change only; everything else is ignored)."""
        if len(data) < 3 or data[0] & 0xF0 != 0xB0:
            return
        if self.config.midi_channel and (data[0] & 0x0F) + 1 != self.config.midi_channel:
            return
        control, value = data[1], data[2]
        if control == self._bypass_cc:
            self.bypass = value >= 64
            self.report({"event": "bypass", "bypass": self.bypass})
        elif control == ALL_SOUND_OFF_CC:
            reset = getattr(self.processor, "reset", None)
            if reset is not None:
                reset()
            self.report({"event": "reset"})
        elif control in self._by_cc:
            knob = self._by_cc[control]
            self.knobs[knob.name] = cc_to_knob(knob, value)
            self.report({"event": "knob", "knob": knob.name, "value": self.knobs[knob.name], "cc": control, "cc_value": value})

    def process(self, block: np.ndarray) -> np.ndarray:
        """One period of the effect (a copy of the input while bypassed)."""
        if self.bypass:
            return block
        out = np.asarray(self.processor.process(block, dict(self.knobs)), dtype=np.float32)
        if out.shape != block.shape:
            raise ValueError(f"processor returned shape {out.shape} for a block of shape {block.shape}")
        return out


def load_processor(device: str | None, processor: str | None, sample_rate: int) -> Processor:
    """The effect to run: ``processor`` (``"package.module:factory"``, ``factory(sample_rate)``) or
    the built-in virtual device called ``device`` (:func:`fxcap.capture.virtual.build_virtual_device`)."""
    if processor:
        module_name, _, attr = processor.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr or "build")
        except (ImportError, AttributeError) as exc:
            raise DeviceNotFoundError(f"cannot load processor {processor!r} ({exc}); give module:factory") from None
        return factory(sample_rate)
    try:
        from fxcap.capture.virtual import build_virtual_device
    except ImportError:
        raise DeviceNotFoundError(
            "this installation has no built-in virtual devices; give --processor module:factory"
        ) from None
    return build_virtual_device(device or "OD-3", sample_rate)


class JackPedal:
    """The pedal as a JACK client (ports and callbacks); ``start()`` activates, ``close()`` leaves.

    ``make_engine(sample_rate)`` builds the engine once the server's rate is known.
    """

    def __init__(self, config: PedalConfig, make_engine: Callable[[int], PedalEngine]) -> None:
        import jack

        try:
            self.client = jack.Client(config.name, no_start_server=True)
        except jack.JackError:
            raise DeviceNotFoundError("no JACK server is running; start one first (e.g. .ci/jack.sh start)") from None
        if self.client.name != config.name:
            name = self.client.name
            self.client.close()
            raise DeviceNotFoundError(f"a JACK client called {config.name!r} exists already (got {name!r}); pick another --name")
        try:
            self.engine = make_engine(self.client.samplerate)
        except BaseException:
            self.client.close()
            raise
        self.audio_in = self.client.inports.register("in_1")
        self.loop_in = self.client.inports.register("loop_in") if config.loopback else None
        self.audio_out = self.client.outports.register("out_1")
        self.loop_out = self.client.outports.register("loop_out") if config.loopback else None
        self.midi_in = self.client.midi_inports.register("midi_in")
        self.failed = threading.Event()
        report = self.engine.report
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(lambda delay_us: report({"event": "xrun", "delay_us": delay_us}))
        self.client.set_shutdown_callback(lambda status, reason: self._shutdown(reason))

    def _shutdown(self, reason: str) -> None:
        self.engine.report({"event": "shutdown", "reason": reason})
        self.failed.set()

    def _process(self, frames: int) -> None:
        try:
            for _, data in self.midi_in.incoming_midi_events():
                self.engine.handle_midi(bytes(data))
            self.audio_out.get_array()[:] = self.engine.process(np.array(self.audio_in.get_array()))
            if self.loop_in is not None and self.loop_out is not None:
                self.loop_out.get_array()[:] = self.loop_in.get_array()
        except Exception as exc:  # keep the server running; the parent sees one error line
            self.audio_out.get_array()[:] = 0.0
            if not self.failed.is_set():
                self.engine.report({"event": "error", "error": repr(exc)})
                self.failed.set()

    @property
    def ports(self) -> list[str]:
        ports = [self.audio_in, self.loop_in, self.audio_out, self.loop_out, self.midi_in]
        return [p.name for p in ports if p is not None]

    def start(self) -> None:
        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def run(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fxcap.capture.jack_pedal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="OD-3", help="built-in virtual device to run (default OD-3)")
    parser.add_argument("--processor", help="instead: an effect factory 'package.module:factory' called with the rate")
    parser.add_argument("--profile", help="knob profile (name or .toml; default: --device)")
    parser.add_argument("--name", default=PedalConfig.name, help="JACK client name")
    parser.add_argument("--bypass", action="store_true", help="start in bypass")
    parser.add_argument("--no-loopback", action="store_true", help="no loop_in -> loop_out wire")
    parser.add_argument("--first-cc", type=int, default=DEFAULT_FIRST_CC, help="first CC for knobs without one")
    parser.add_argument("--bypass-cc", type=int, default=DEFAULT_BYPASS_CC, help="CC that switches bypass")
    parser.add_argument("--midi-channel", type=int, default=0, help="listen on this channel only (1-16; 0: all)")
    args = parser.parse_args(argv)

    events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()

    def say(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    try:
        profile = assign_midi_ccs(get_profile(args.profile or args.device), args.first_cc, args.bypass_cc)
        config = PedalConfig(args.name, loopback=not args.no_loopback, bypass=args.bypass, midi_channel=args.midi_channel)
        pedal = JackPedal(
            config,
            lambda rate: PedalEngine(load_processor(args.device, args.processor, rate), profile, config, events.put),
        )
    except (ImportError, OSError) as exc:
        print(f"error: the virtual pedal needs JACK-Client and libjack ({exc})", file=sys.stderr)
        return 1
    except FxcapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    engine = pedal.engine

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pedal.start()
    say(
        {
            "event": "ready",
            "client": pedal.client.name,
            "ports": pedal.ports,
            "sample_rate": pedal.client.samplerate,
            "blocksize": pedal.client.blocksize,
            "midi_cc": {k.name: k.midi_cc for k in profile.knobs},
            "bypass_cc": profile.extra.get("midi_bypass_cc"),
            "knobs": engine.knobs,
            "bypass": engine.bypass,
        }
    )
    status = 0
    try:
        while not stop.is_set():
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                if pedal.failed.is_set():
                    status = 1
                    break
                continue
            say(event)
    finally:
        pedal.close()
        while not events.empty():
            say(events.get())
    return status


if __name__ == "__main__":
    sys.exit(run())
