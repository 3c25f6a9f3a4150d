"""MIDI knob control: knobs with a ``midi_cc`` in the device profile are set by Control Change.

A continuous knob maps its panel range linearly onto CC values 0..127 (so a 0-10 knob moves in
steps of 10/127); a switch with ``n`` positions maps position ``i`` to ``round(i * 127 / (n - 1))``
and decodes to the nearest position. :class:`MidiKnobSetter` sends the messages through any mido
output port (``mido.open_output``, a virtual port, or :class:`JackMidiOutput`, which delivers
them over JACK MIDI to the virtual pedal of :mod:`fxcap.capture.jack_pedal`).

Profile extras understood here: ``extra["midi_bypass_cc"]`` (CC number switching the device's
bypass: value 127 bypassed, 0 active) and ``extra["midi_channel"]`` (1..16).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from typing import Any, Iterable

from fxcap.capture.knob_setters import ManualKnobSetter
from fxcap.capture.profiles import DeviceProfile, Knob, KnobValue
from fxcap.errors import CaptureError, CaptureStopped, DeviceNotFoundError

CC_MAX = 127
"""Largest 7-bit Control Change value."""

ALL_SOUND_OFF_CC = 120
"""Channel-mode message "All Sound Off"; the virtual pedal answers it by clearing its state."""

DEFAULT_FIRST_CC = 20
"""First CC number :func:`assign_midi_ccs` gives out (20-31 are undefined in the MIDI spec)."""

DEFAULT_BYPASS_CC = 102
"""Bypass CC :func:`assign_midi_ccs` gives a profile without one (102-119 are undefined)."""


def knob_to_cc(knob: Knob, value: KnobValue) -> int:
    """The CC value (0..127) that puts ``knob`` nearest to ``value`` (in the panel's scale)."""
    value = knob.validate(value)
    if knob.is_switch:
        assert knob.values is not None
        return round(knob.values.index(str(value)) * CC_MAX / (len(knob.values) - 1))
    fraction = (float(value) - knob.minimum) / (knob.maximum - knob.minimum)
    return int(min(max(round(fraction * CC_MAX), 0), CC_MAX))


def cc_to_knob(knob: Knob, cc_value: int) -> KnobValue:
    """The knob value a device sets when it receives ``cc_value`` (inverse of :func:`knob_to_cc`)."""
    if not 0 <= int(cc_value) <= CC_MAX:
        raise ValueError(f"CC value must be in 0..{CC_MAX}, not {cc_value}")
    if knob.is_switch:
        assert knob.values is not None
        return knob.values[round(int(cc_value) * (len(knob.values) - 1) / CC_MAX)]
    return knob.minimum + int(cc_value) / CC_MAX * (knob.maximum - knob.minimum)


def midi_channel(profile: DeviceProfile) -> int:
    """The profile's MIDI channel, 1..16 (``extra["midi_channel"]``, default 1)."""
    channel = int(profile.extra.get("midi_channel", 1))
    if not 1 <= channel <= 16:
        raise DeviceNotFoundError(f"profile {profile.name}: midi_channel must be 1..16, not {channel}")
    return channel


def assign_midi_ccs(
    profile: DeviceProfile, first_cc: int = DEFAULT_FIRST_CC, bypass_cc: int | None = DEFAULT_BYPASS_CC
) -> DeviceProfile:
    """A copy of ``profile`` where every knob has a ``midi_cc``.

    Knobs that already have one keep it; the others get the lowest free CC numbers from
    ``first_cc`` on, in profile order. ``bypass_cc`` becomes ``extra["midi_bypass_cc"]`` unless the
    profile names one. The virtual pedal and the code driving it both call this, so they agree.
    """
    extra = dict(profile.extra)
    if bypass_cc is not None:
        extra.setdefault("midi_bypass_cc", bypass_cc)
    used = {k.midi_cc for k in profile.knobs if k.midi_cc is not None}
    if extra.get("midi_bypass_cc") is not None:
        used.add(int(extra["midi_bypass_cc"]))
    knobs = []
    cc = first_cc
    for knob in profile.knobs:
        if knob.midi_cc is None:
            while cc in used:
                cc += 1
            if cc >= ALL_SOUND_OFF_CC:
                raise DeviceNotFoundError(f"profile {profile.name}: no free MIDI CC numbers left below 120")
            knob = dataclasses.replace(knob, midi_cc=cc)
            used.add(cc)
        knobs.append(knob)
    return dataclasses.replace(profile, knobs=tuple(knobs), extra=extra)


def control_changes(profile: DeviceProfile, knobs: dict[str, KnobValue]) -> list[tuple[Knob, int]]:
    """``(knob, cc_value)`` for every knob of ``profile`` that has a ``midi_cc`` (``knobs`` + defaults)."""
    full = profile.complete(knobs)
    return [(k, knob_to_cc(k, full[k.name])) for k in profile.knobs if k.midi_cc is not None]


def _mido() -> Any:
    try:
        import mido
    except ImportError:
        raise DeviceNotFoundError("MIDI control needs mido: pip install 'fxcap[midi]'") from None
    return mido


class MidiKnobSetter:
    """Sets the knobs that have a ``midi_cc`` over MIDI; asks the user for the others.

    Args:
        port: an open mido output port (anything with ``send(message)``).
        manual: asks for knobs without a CC and for bypass when the profile has no
            ``midi_bypass_cc``; ``None`` makes those an error (unattended runs).
        channel: MIDI channel 1..16; default: the profile's ``extra["midi_channel"]`` or 1.
        resend_all: send every CC before every take (default), not only the changed ones, so a
            device that was power-cycled or touched comes back to the planned setting.
    """

    def __init__(
        self, port: Any, manual: ManualKnobSetter | None = None, channel: int | None = None, resend_all: bool = True
    ) -> None:
        if channel is not None and not 1 <= channel <= 16:
            raise ValueError(f"MIDI channel must be 1..16, not {channel}")
        self.port = port
        self.manual = manual
        self.channel = channel
        self.resend_all = resend_all
        self._sent: dict[int, int] = {}

    @classmethod
    def open(cls, port_name: str, **kwargs: Any) -> "MidiKnobSetter":
        """Open the mido output port whose name contains ``port_name`` (case-insensitive)."""
        mido = _mido()
        try:
            names = list(mido.get_output_names())
        except Exception as exc:  # a missing backend (python-rtmidi) or MIDI system
            raise DeviceNotFoundError(
                f"cannot list MIDI ports ({exc}); install python-rtmidi, or set the knobs by hand (no --midi)"
            ) from None
        matches = [n for n in names if n == port_name] or [n for n in names if port_name.lower() in n.lower()]
        if len(matches) != 1:
            what = "no MIDI output port matches" if not matches else "several MIDI output ports match"
            raise DeviceNotFoundError(f"{what} {port_name!r}; available: {', '.join(names) or 'none'}")
        return cls(mido.open_output(matches[0]), **kwargs)

    def _channel_for(self, profile: DeviceProfile) -> int:
        return self.channel if self.channel is not None else midi_channel(profile)

    def send_cc(self, profile: DeviceProfile, control: int, value: int) -> None:
        """Send one Control Change on the profile's channel."""
        mido = _mido()
        message = mido.Message("control_change", channel=self._channel_for(profile) - 1, control=control, value=value)
        try:
            self.port.send(message)
        except (OSError, IOError) as exc:
            raise CaptureStopped(f"MIDI port lost ({exc})", then="reconnect it, then continue with") from None
        self._sent[control] = value

    def apply(self, profile: DeviceProfile, knobs: dict[str, KnobValue]) -> dict[str, KnobValue]:
        """Send the CCs; prompt for knobs without a CC; return the values the device now has."""
        wanted = profile.complete(knobs)
        manual_knobs = [k for k in profile.knobs if k.midi_cc is None]
        if manual_knobs and self.manual is None:
            names = ", ".join(k.name for k in manual_knobs)
            raise CaptureError(
                f"{profile.name}: knob(s) {names} have no midi_cc in the profile; add one, or let fxcap ask for them"
            )
        effective = dict(wanted)
        for knob, value in control_changes(profile, wanted):
            assert knob.midi_cc is not None
            if self.resend_all or self._sent.get(knob.midi_cc) != value:
                self.send_cc(profile, knob.midi_cc, value)
            effective[knob.name] = cc_to_knob(knob, value)
        if manual_knobs:
            assert self.manual is not None
            manual_profile = dataclasses.replace(profile, knobs=tuple(manual_knobs))
            effective.update(self.manual.apply(manual_profile, {k.name: wanted[k.name] for k in manual_knobs}))
        return effective

    def set_bypass(self, profile: DeviceProfile, bypass: bool) -> None:
        """Send the bypass CC (127 bypassed, 0 active), or ask the user when the profile has none."""
        bypass_cc = profile.extra.get("midi_bypass_cc")
        if bypass_cc is not None:
            self.send_cc(profile, int(bypass_cc), CC_MAX if bypass else 0)
        elif self.manual is not None:
            self.manual.set_bypass(profile, bypass)
        else:
            raise CaptureError(
                f"{profile.name} has no midi_bypass_cc in its profile; add one, or let fxcap ask you to bypass it"
            )

    def close(self) -> None:
        """Close the port."""
        close = getattr(self.port, "close", None)
        if close is not None:
            close()



class JackMidiOutput:
    """A mido-style output port that delivers messages over JACK MIDI (e.g. to the virtual pedal).

    The JACK client is active only while a message is being delivered: ``send`` activates it,
    connects its port to ``destinations``, writes the message in the next process cycle, waits
    one more cycle (so a receiver later in the graph has handled it), and deactivates again. No
    Python code of this process runs in JACK's real-time thread during a take.

    Args:
        destinations: full JACK port names of MIDI inputs, e.g. ``"fxcap-pedal:midi_in"``.
        client_name: JACK client name of this port.
        timeout: seconds to wait for JACK to run a process cycle before giving up.
    """

    def __init__(self, destinations: str | Iterable[str], client_name: str = "fxcap-midi", timeout: float = 5.0) -> None:
        try:
            import jack
        except (ImportError, OSError):
            raise DeviceNotFoundError("JACK MIDI needs the JACK-Client package and libjack: pip install 'fxcap[jack]'") from None
        self.destinations = [destinations] if isinstance(destinations, str) else list(destinations)
        self.timeout = timeout
        self.name = client_name
        self.closed = False
        try:
            self._client = jack.Client(client_name, no_start_server=True)
        except jack.JackError:
            raise DeviceNotFoundError("no JACK server is running; start one (e.g. .ci/jack.sh start or qjackctl)") from None
        self._port = self._client.midi_outports.register("out")
        self._pending: deque[bytes] = deque()
        self._cycles = 0
        self._cycle_done = threading.Condition()
        self._client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        self._port.clear_buffer()
        while self._pending:
            self._port.write_midi_event(0, self._pending.popleft())
        with self._cycle_done:
            self._cycles += 1
            self._cycle_done.notify_all()

    def _wait_cycles(self, count: int) -> None:
        with self._cycle_done:
            target = self._cycles + count
            if not self._cycle_done.wait_for(lambda: self._cycles >= target, timeout=self.timeout):
                raise CaptureError(f"JACK did not run a process cycle within {self.timeout:g} s; is the JACK server alive?")

    def send(self, message: Any) -> None:
        """Deliver one mido message (anything with ``bytes()``) to every destination port."""
        if self.closed:
            raise CaptureError(f"JACK MIDI port {self.name} is closed")
        self._client.activate()
        try:
            for destination in self.destinations:
                try:
                    self._client.connect(self._port, destination)
                except Exception:
                    available = [p.name for p in self._client.get_ports(is_midi=True, is_input=True)]
                    raise DeviceNotFoundError(
                        f"no JACK MIDI input {destination!r}; available: {', '.join(available) or 'none'}"
                    ) from None
            self._pending.append(bytes(message.bytes()))
            self._wait_cycles(2)
        finally:
            self._client.deactivate()

    def close(self) -> None:
        """Leave the JACK server."""
        if not self.closed:
            self._client.close()
            self.closed = True

    def __enter__(self) -> "JackMidiOutput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
