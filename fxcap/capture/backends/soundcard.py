"""The sound-card backend: play the signal through an audio interface and record the device.

Full-duplex play-and-record through PortAudio (``sounddevice``) on one interface (ALSA,
CoreAudio, WASAPI, ASIO or JACK, whatever PortAudio offers). The signal goes out on one or more
output channels (1-based, as printed on the interface), the device's return comes in on
``input_channel``, and an optional ``loopback_channel`` records a cable from an output straight
back to an input (the interface's own latency and gain, without the device).

Every take:

1. asks the knob setter to put the device at the setting (a prompt, or MIDI); before the first
   attempt of each setting the engine calls :meth:`SoundcardBackend.probe_setting`, which plays a
   short probe and warns when the device did not change (a knob forgotten or set wrong);
2. opens a stream, plays ``preroll_seconds`` of silence, the signal, then ``tail_seconds`` of
   silence (the device's latency and decay); the callback reads the signal block by block (a
   ``numpy.memmap`` works: nothing is copied) and writes into preallocated buffers;
3. checks the stream status of EVERY block: input overflow, output underflow (and output
   priming once the signal plays) become ``RawTake.events``, so the record engine re-takes it.

The recording starts at the stream frame where the signal starts, so ``recorded[i]`` is what
came back while ``played[i]`` was being sent: the round-trip latency stays in the recording
and is measured afterwards from the sync markers (``Stream.latency`` is not trusted; under JACK
it is meaningless).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.backends.stream_transport import StreamTransport
from fxcap.capture.budget import TakeTiming
from fxcap.capture.knob_setters import KnobSetter, ManualKnobSetter
from fxcap.capture.profiles import DeviceProfile, KnobValue, get_profile
from fxcap.errors import CaptureError, DeviceNotFoundError, FxcapError

if TYPE_CHECKING:
    from fxcap.capture.probe import ProbeMonitor, ProbeVerdict

STANDARD_RATES = (44100, 48000, 88200, 96000)
"""Sample rates (Hz) ``list_interfaces`` probes."""

_SIM_HINT = "or run without hardware: --backend sim"


def _sounddevice() -> Any:
    """Import ``sounddevice``; a missing PortAudio library becomes a one-line error."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise DeviceNotFoundError(
            f"the sound-card backend needs PortAudio ({exc}): install it (Debian/Ubuntu: apt install libportaudio2; "
            f"macOS: brew install portaudio) {_SIM_HINT}"
        ) from None
    return sounddevice


@dataclass(frozen=True)
class InterfaceInfo:
    """One audio interface as PortAudio sees it.

    Attributes:
        index: PortAudio device index (may change when devices come and go; prefer names).
        name: device name (under JACK: the client name, e.g. ``system`` or ``fxcap-pedal``).
        hostapi: host API name (ALSA, Core Audio, Windows WASAPI, JACK Audio Connection Kit, ...).
        max_input_channels / max_output_channels: channel counts.
        default_samplerate: Hz.
        supported_rates: those of :data:`STANDARD_RATES` (Hz) the device accepts for both
            directions it has.
    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    supported_rates: tuple[int, ...]

    @property
    def full_duplex(self) -> bool:
        return self.max_input_channels > 0 and self.max_output_channels > 0


def refresh_devices() -> None:
    """Make PortAudio scan the devices again (it only does at start-up; new JACK clients, hot-plugged
    interfaces). Must not be called while a stream is open."""
    sd = _sounddevice()
    sd._terminate()
    sd._initialize()


def _supported_rates(sd: Any, index: int, inputs: int, outputs: int, rates: Sequence[int]) -> tuple[int, ...]:
    supported = []
    for rate in rates:
        try:
            if inputs:
                sd.check_input_settings(device=index, channels=1, dtype="float32", samplerate=rate)
            if outputs:
                sd.check_output_settings(device=index, channels=1, dtype="float32", samplerate=rate)
        except Exception:  # PortAudioError or ValueError: the rate is not supported
            continue
        supported.append(int(rate))
    return tuple(supported)


def list_interfaces(rates: Sequence[int] = STANDARD_RATES, refresh: bool = True) -> list[InterfaceInfo]:
    """Every PortAudio device with its channels and which of ``rates`` (Hz) it supports.

    ``refresh`` rescans first (see :func:`refresh_devices`; no stream may be open).
    """
    sd = _sounddevice()
    if refresh:
        refresh_devices()
    hostapis = sd.query_hostapis()
    result = []
    for index, device in enumerate(sd.query_devices()):
        inputs, outputs = int(device["max_input_channels"]), int(device["max_output_channels"])
        result.append(
            InterfaceInfo(
                index=index,
                name=str(device["name"]),
                hostapi=str(hostapis[device["hostapi"]]["name"]),
                max_input_channels=inputs,
                max_output_channels=outputs,
                default_samplerate=float(device["default_samplerate"]),
                supported_rates=_supported_rates(sd, index, inputs, outputs, rates),
            )
        )
    return result


def _match_interface(interfaces: list[InterfaceInfo], spec: str | int | None) -> InterfaceInfo | None:
    if spec is None or spec == "":
        duplex = [i for i in interfaces if i.full_duplex]
        return duplex[0] if duplex else None
    if isinstance(spec, int) or str(spec).strip().isdigit():
        wanted = int(spec)
        return next((i for i in interfaces if i.index == wanted), None)
    text = str(spec).strip().lower()
    exact = [i for i in interfaces if i.name.lower() == text]
    if exact:
        return exact[0]
    partial = [i for i in interfaces if text in i.name.lower()]
    if len(partial) > 1:
        raise DeviceNotFoundError(
            f"audio interface {spec!r} is ambiguous: {', '.join(repr(i.name) for i in partial)}; give more of the name"
        )
    return partial[0] if partial else None


def find_interface(spec: str | int | None) -> InterfaceInfo:
    """The interface named ``spec`` (exact name, else a unique case-insensitive part of it, else an
    index; ``None``: the first full-duplex one). PortAudio rescans once before giving up."""
    sd = _sounddevice()
    for attempt in range(2):
        interfaces = list_interfaces(rates=(), refresh=False)
        found = _match_interface(interfaces, spec)
        if found is not None:
            rates = _supported_rates(sd, found.index, found.max_input_channels, found.max_output_channels, STANDARD_RATES)
            return InterfaceInfo(**{**found.__dict__, "supported_rates": rates})
        if attempt == 0:
            refresh_devices()
    names = ", ".join(f"{i.index}: {i.name!r}" for i in interfaces) or "none"
    what = f"no audio interface matches {spec!r}" if spec not in (None, "") else "no full-duplex audio interface found"
    raise DeviceNotFoundError(f"{what}; available: {names} ({_SIM_HINT})")


@dataclass
class SoundcardConfig:
    """How the rig is wired and clocked.

    Attributes:
        interface: interface name (or a unique part of it) or PortAudio index; ``None``: the first
            full-duplex interface.
        output_channels: 1-based outputs that play the signal (e.g. ``(1,)``: out 1 -> device; or
            ``(1, 2)`` with out 2 patched to the loopback input); ``"1,2"`` is accepted too.
        input_channel: 1-based input the device's output is connected to.
        loopback_channel: optional 1-based input recording a cable from an output straight back
            (``RawTake.loopback``).
        sample_rate: Hz; must be a rate the interface (or the JACK server) runs at.
        blocksize: frames per callback; 0 lets the host choose (under JACK: the server's period).
        latency: PortAudio's suggested latency (``"high"``, ``"low"`` or seconds); larger is safer
            against xruns; it does not change the measured alignment.
        preroll_seconds: silence played before the signal (stream start-up and priming settle).
        tail_seconds: silence recorded after the signal (round-trip latency + the device's decay).
        stall_seconds: a stream that delivers no block for this long is treated as a lost device.
        probe: play a short probe after every knob change and warn when the device's response
            did not change as it should (:mod:`fxcap.capture.probe`); ``None``: only when some
            knob is set by hand (a MIDI-only setter needs no probe).
        probe_tries: probes per setting before the run stops (with a hand-set knob the user is
            asked to check the knobs between probes, or to type ``keep``).
    """

    interface: str | int | None = None
    output_channels: tuple[int, ...] = (1,)
    input_channel: int = 1
    loopback_channel: int | None = None
    sample_rate: int = 48000
    blocksize: int = 0
    latency: str | float = "high"
    preroll_seconds: float = 0.1
    tail_seconds: float = 0.5
    stall_seconds: float = 5.0
    probe: bool | None = None
    probe_tries: int = 3

    def __post_init__(self) -> None:
        channels: Any = self.output_channels
        if isinstance(channels, (int, str)):  # 2 or "1,2" from a command line
            channels = str(channels).replace(" ", "").split(",")
        try:
            self.output_channels = tuple(int(c) for c in channels)
        except ValueError:
            raise FxcapError(f"output channels must be numbers like 1 or 1,2, not {self.output_channels!r}") from None
        if not self.output_channels or min(self.output_channels) < 1:
            raise FxcapError(f"output channels are numbered from 1, not {list(self.output_channels)}")
        if self.input_channel < 1 or (self.loopback_channel is not None and self.loopback_channel < 1):
            raise FxcapError("input channels are numbered from 1 (as printed on the interface)")
        if self.loopback_channel == self.input_channel:
            raise FxcapError(f"the loopback input ({self.loopback_channel}) must differ from the device input")
        if self.preroll_seconds < 0 or self.tail_seconds < 0:
            raise FxcapError("preroll and tail must be >= 0 seconds")


def _hand_set(profile: DeviceProfile, midi: bool) -> tuple[tuple[str, ...], bool]:
    """The knobs the user turns by hand and whether the user switches bypass: all of them without MIDI;
    with MIDI, the knobs without a ``midi_cc`` and the bypass when the profile has no ``midi_bypass_cc``."""
    manual = tuple(k.name for k in profile.knobs if not midi or k.midi_cc is None)
    return manual, not midi or profile.extra.get("midi_bypass_cc") is None


def _take_timing(config: "SoundcardConfig", manual: tuple[str, ...], bypass: bool, probing: bool) -> TakeTiming:
    from fxcap.capture.probe import probe_signal

    margin = config.preroll_seconds + config.tail_seconds
    probe = len(probe_signal(config.sample_rate)) / config.sample_rate + margin if probing else 0.0
    return TakeTiming(margin_seconds=margin, probe_seconds=probe, manual_knobs=manual, manual_bypass=bypass, realtime=True)


def planned_timing(profile: DeviceProfile, config: "SoundcardConfig", midi: bool) -> TakeTiming:
    """The timing of a sound-card capture of ``profile`` without opening the interface (the plan
    preview, ``fxcap record --dry-run``): knobs set by hand, or over MIDI (``midi``: a ``--midi-port``)
    where the profile maps them to a CC; the probe as :attr:`SoundcardBackend.probing` decides."""
    manual, bypass = _hand_set(profile, midi)
    probing = bool(config.probe) if config.probe is not None else bool(manual)
    return _take_timing(config, manual, bypass, probing)


StreamFactory = Callable[..., Any]
"""Builds a full-duplex stream from ``sounddevice.Stream``'s keyword arguments."""


class SoundcardBackend(Backend):
    """Captures a hardware device through an audio interface (see the module docstring).

    Args:
        profile: the device's knobs.
        config: interface, channels, rate and timing.
        knob_setter: how knobs are set between takes (default: :class:`ManualKnobSetter`).
        stream_factory: builds the stream (default ``sounddevice.Stream``); tests and unusual hosts
            can wrap it.
    """

    name = "soundcard"

    def __init__(
        self,
        profile: DeviceProfile,
        config: SoundcardConfig | None = None,
        knob_setter: KnobSetter | None = None,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        self.profile = profile
        self.config = config or SoundcardConfig()
        self.sample_rate = int(self.config.sample_rate)
        self.knob_setter: KnobSetter = knob_setter if knob_setter is not None else ManualKnobSetter()
        self._sd = _sounddevice()
        self._stream_factory = stream_factory or self._sd.Stream
        self.interface = find_interface(self.config.interface)
        self._check_interface(self.interface)
        self._monitor: "ProbeMonitor | None" = None

    @classmethod
    def from_spec(
        cls,
        target: str,
        device: str,
        sample_rate: int,
        knob_setter: KnobSetter | None = None,
        midi_port: str | None = None,
        stream_factory: StreamFactory | None = None,
        **options: Any,
    ) -> "SoundcardBackend":
        """Build from ``--backend soundcard[:NAME]``: ``device`` is the profile, ``options`` are
        :class:`SoundcardConfig` fields; ``midi_port`` sets CC-mapped knobs over MIDI (others by prompt)."""
        profile = get_profile(device)
        try:
            config = SoundcardConfig(interface=target or None, sample_rate=sample_rate, **options)
        except TypeError as exc:
            raise FxcapError(f"unknown sound-card option: {exc}") from None
        if knob_setter is None and midi_port:
            from fxcap.capture.midi import MidiKnobSetter

            if not any(k.midi_cc is not None for k in profile.knobs):
                raise DeviceNotFoundError(
                    f"--midi-port given but profile {profile.name} maps no knob to a MIDI CC; add midi_cc = N to its "
                    "knobs in a .toml profile (--device my-pedal.toml), or leave out --midi-port to set them by hand"
                )
            knob_setter = MidiKnobSetter.open(midi_port, manual=ManualKnobSetter())
        return cls(profile, config, knob_setter=knob_setter, stream_factory=stream_factory)

    @property
    def _input_channels(self) -> int:
        return max(self.config.input_channel, self.config.loopback_channel or 0)

    @property
    def _output_channels(self) -> int:
        return max(self.config.output_channels)

    def _check_interface(self, interface: InterfaceInfo) -> None:
        config = self.config
        if self._output_channels > interface.max_output_channels:
            raise DeviceNotFoundError(
                f"{interface.name!r} has {interface.max_output_channels} output channel(s); "
                f"output {self._output_channels} does not exist"
            )
        if self._input_channels > interface.max_input_channels:
            raise DeviceNotFoundError(
                f"{interface.name!r} has {interface.max_input_channels} input channel(s); "
                f"input {self._input_channels} does not exist"
            )
        try:
            self._sd.check_output_settings(
                device=interface.index, channels=self._output_channels, dtype="float32", samplerate=config.sample_rate
            )
            self._sd.check_input_settings(
                device=interface.index, channels=self._input_channels, dtype="float32", samplerate=config.sample_rate
            )
        except Exception as exc:
            rates = ", ".join(str(r) for r in interface.supported_rates) or "none of 44100/48000/88200/96000"
            raise CaptureError(
                f"{interface.name!r} cannot run at {config.sample_rate} Hz ({exc}); it supports {rates} Hz: pass --rate "
                "with one of them (under JACK the rate is the server's: jackd -r ...)"
            ) from None

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {
            **super().describe(),
            "interface": self.interface.name,
            "hostapi": self.interface.hostapi,
            "output_channels": list(config.output_channels),
            "input_channel": config.input_channel,
            "loopback_channel": config.loopback_channel,
            "blocksize": config.blocksize,
            "tail_seconds": config.tail_seconds,
        }

    def play_record(self, signal: np.ndarray, knobs: dict[str, KnobValue]) -> RawTake:
        """Set the knobs, then play ``signal`` and record the device (see the module docstring)."""
        knobs_set = self.knob_setter.apply(self.profile, knobs)
        take = self._take(signal)
        take.info["knobs_set"] = knobs_set
        return take

    @property
    def probing(self) -> bool:
        """Whether :meth:`probe_setting` probes (``SoundcardConfig.probe``; auto: a knob is set by hand)."""
        if self.config.probe is not None:
            return bool(self.config.probe)
        from fxcap.capture.midi import MidiKnobSetter

        if isinstance(self.knob_setter, MidiKnobSetter):
            return any(k.midi_cc is None for k in self.profile.knobs)
        return True

    def timing(self) -> TakeTiming:
        """Pre-roll and tail on every pass, the probe before every take (when :attr:`probing`), and the
        knobs and bypass the user sets by hand (those of the knob setter that asks)."""
        from fxcap.capture.midi import MidiKnobSetter

        setter = self.knob_setter
        if isinstance(setter, ManualKnobSetter):
            manual, bypass = tuple(k.name for k in self.profile.knobs), True
        elif isinstance(setter, MidiKnobSetter) and setter.manual is not None:
            manual, bypass = _hand_set(self.profile, midi=True)
        else:  # a setter that needs no hands
            manual, bypass = (), False
        return _take_timing(self.config, manual, bypass, self.probing)

    def probe_setting(self, knobs: dict[str, KnobValue]) -> "ProbeVerdict | None":
        """Set the knobs (the setter prompts), play the probe and judge the response.

        With a hand-set knob, a doubtful response is shown and the user asked to check the knobs
        and probe again (:func:`fxcap.capture.probe.confirm_setting`); unattended setters probe once
        and the verdict's warnings are reported by the engine.
        """
        if not self.probing:
            return None
        from fxcap.capture.probe import ProbeMonitor, ProbeVerdict, confirm_setting

        if self._monitor is None:
            self._monitor = ProbeMonitor(self.profile, self.sample_rate)
        manual = self._manual_setter()
        if manual is not None:
            return confirm_setting(self, self._monitor, knobs, manual.input_fn, manual.output_fn, tries=self.config.probe_tries)
        for _ in range(max(1, self.config.probe_tries)):
            take = self.play_record(self._monitor.signal, knobs)
            if not take.events:
                return self._monitor.judge(knobs, take)
        return ProbeVerdict(knobs=dict(knobs), warnings=[f"the probe had stream problems ({'; '.join(take.events)})"])

    def _manual_setter(self) -> ManualKnobSetter | None:
        """The setter that talks to the user, if any knob is set by hand."""
        if isinstance(self.knob_setter, ManualKnobSetter):
            return self.knob_setter
        manual = getattr(self.knob_setter, "manual", None)
        if isinstance(manual, ManualKnobSetter) and any(k.midi_cc is None for k in self.profile.knobs):
            return manual
        return None

    def calibration_take(self, signal: np.ndarray) -> RawTake:
        """Play ``signal`` with the device bypassed (the setter switches bypass or asks for the
        loopback cable) and switch it back on afterwards."""
        self.knob_setter.set_bypass(self.profile, True)
        try:
            take = self._take(signal)
        finally:
            self.knob_setter.set_bypass(self.profile, False)
        take.info["bypass"] = True
        return take

    def _take(self, signal: np.ndarray) -> RawTake:
        played = np.asarray(signal, dtype=np.float32)
        if played.ndim != 1 or len(played) == 0:
            raise CaptureError(f"the signal must be mono and non-empty, not of shape {played.shape}")
        peak = float(np.max(np.abs(played)))
        if not peak <= 1.0:  # also catches NaN
            raise CaptureError(f"the signal peaks at {peak:.3g} (above 0 dBFS) and would clip the interface's output; lower its level")
        config, rate = self.config, self.sample_rate
        tail = int(round(config.tail_seconds * rate))
        length = len(played) + tail
        transport = StreamTransport(
            signal=played,
            out_columns=[c - 1 for c in config.output_channels],
            in_column=config.input_channel - 1,
            loop_column=None if config.loopback_channel is None else config.loopback_channel - 1,
            preroll=int(round(config.preroll_seconds * rate)),
            recorded=np.zeros(length, dtype=np.float32),
            loopback=None if config.loopback_channel is None else np.zeros(length, dtype=np.float32),
            sd=self._sd,
        )
        device = self._current_interface()
        try:
            stream = self._stream_factory(
                device=(device.index, device.index),
                samplerate=rate,
                blocksize=config.blocksize,
                dtype="float32",
                channels=(self._input_channels, self._output_channels),
                latency=config.latency,
                callback=transport.callback,
                finished_callback=transport.finished.set,
            )
        except self._sd.PortAudioError as exc:
            raise CaptureError(
                f"cannot open {device.name!r} at {rate} Hz ({exc}); is it in use by another program or unplugged?"
            ) from None
        started = time.monotonic()
        try:
            with stream:
                self._wait(stream, transport, device.name)
        except self._sd.PortAudioError as exc:
            raise self._lost(device.name, str(exc)) from None
        if transport.error is not None:
            raise transport.error
        if not transport.completed:
            raise self._lost(device.name, f"the stream ended after {transport.position} of {transport.preroll + length} frames")
        info = {
            "interface": device.name,
            "hostapi": device.hostapi,
            "output_channels": list(config.output_channels),
            "input_channel": config.input_channel,
            "loopback_channel": config.loopback_channel,
            "block_sizes": sorted(transport.block_sizes),
            "preroll_samples": transport.preroll,
            "tail_samples": tail,
            "preroll_status_blocks": transport.preroll_events,
            "wall_seconds": round(time.monotonic() - started, 3),
        }
        return RawTake(
            played=played,
            recorded=transport.recorded,
            sample_rate=rate,
            loopback=transport.loopback,
            events=list(transport.events),
            info=info,
        )

    def _current_interface(self) -> InterfaceInfo:
        """The interface again, by name: indices change when devices (or JACK clients) come and go."""
        for attempt in range(2):
            found = _match_interface(list_interfaces(rates=(), refresh=False), self.interface.name)
            if found is not None:
                return found
            if attempt == 0:
                refresh_devices()
        raise CaptureError(
            f"audio interface {self.interface.name!r} is gone; reconnect it, then continue with `fxcap record --resume`"
        )

    def _wait(self, stream: Any, transport: StreamTransport, name: str) -> None:
        """Wait until the callback has recorded the tail; a stream that stops delivering blocks for
        ``stall_seconds`` (unplugged interface, dead server) is a lost device."""
        last_position, last_progress = -1, time.monotonic()
        while not transport.finished.wait(timeout=0.05):
            if transport.position != last_position:
                last_position, last_progress = transport.position, time.monotonic()
            elif time.monotonic() - last_progress > self.config.stall_seconds:
                stream.abort()
                raise self._lost(name, f"no audio block for {self.config.stall_seconds:g} s")

    @staticmethod
    def _lost(name: str, detail: str) -> CaptureError:
        return CaptureError(
            f"audio interface {name!r} stopped during the take ({detail}); reconnect it, then continue with "
            "`fxcap record --resume`"
        )

    def close(self) -> None:
        """Close the knob setter's port if it has one (streams are closed after every take)."""
        close = getattr(self.knob_setter, "close", None)
        if close is not None:
            close()
