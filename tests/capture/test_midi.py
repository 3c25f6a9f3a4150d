"""The MIDI knob path: CC scaling, CC assignment, MidiKnobSetter through a recording mido port,
and the receiving end (the virtual pedal's MIDI handling) decoding what was sent."""

from __future__ import annotations

import dataclasses

import mido
import numpy as np
import pytest

from fxcap.capture.jack_pedal import PedalConfig, PedalEngine
from fxcap.capture.knob_setters import ManualKnobSetter
from fxcap.capture.midi import (
    ALL_SOUND_OFF_CC,
    MidiKnobSetter,
    assign_midi_ccs,
    cc_to_knob,
    knob_to_cc,
)
from fxcap.capture.profiles import LA2A, OD3, DeviceProfile, Knob
from fxcap.errors import CaptureError, DeviceNotFoundError


class LogPort(mido.ports.BaseOutput):
    """A mido output port that keeps every message it is sent."""

    def _open(self, **kwargs) -> None:
        self.log: list[mido.Message] = []

    def _send(self, message: mido.Message) -> None:
        self.log.append(message.copy())


class Recorder:
    """A processor that remembers the knobs and resets it saw."""

    def __init__(self) -> None:
        self.knobs: list[dict] = []
        self.resets = 0

    def process(self, block, knobs):
        self.knobs.append(dict(knobs))
        return 2.0 * block

    def reset(self) -> None:
        self.resets += 1


def test_cc_scaling_endpoints_and_round_trip():
    drive = OD3.knob("drive")
    assert knob_to_cc(drive, 0) == 0 and knob_to_cc(drive, 10) == 127 and knob_to_cc(drive, 6) == 76
    for cc in range(128):
        assert knob_to_cc(drive, cc_to_knob(drive, cc)) == cc
    for value in np.linspace(0, 10, 41):
        assert abs(cc_to_knob(drive, knob_to_cc(drive, value)) - value) <= 10 / 127 / 2 + 1e-12
    with pytest.raises(ValueError):
        cc_to_knob(drive, 128)


def test_switch_cc_positions_decode_to_nearest():
    mode = LA2A.knob("mode")
    assert knob_to_cc(mode, "compress") == 0 and knob_to_cc(mode, "limit") == 127
    assert [cc_to_knob(mode, v) for v in (0, 63, 64, 127)] == ["compress", "compress", "limit", "limit"]
    three = Knob("shape", values=("a", "b", "c"), default="a")
    assert [knob_to_cc(three, v) for v in "abc"] == [0, 64, 127]
    assert cc_to_knob(three, 40) == "b"


def test_assign_midi_ccs_keeps_existing_and_skips_taken_numbers():
    profile = DeviceProfile(
        "fuzz",
        (Knob("a"), Knob("b", midi_cc=21), Knob("c"), Knob("d")),
        extra={"midi_bypass_cc": 22},
    )
    assigned = assign_midi_ccs(profile, first_cc=20)
    assert [k.midi_cc for k in assigned.knobs] == [20, 21, 23, 24]
    assert assigned.extra["midi_bypass_cc"] == 22
    od3 = assign_midi_ccs(OD3)
    assert [k.midi_cc for k in od3.knobs] == [20, 21, 22] and od3.extra["midi_bypass_cc"] == 102
    assert OD3.knobs[0].midi_cc is None  # the built-in profile is untouched
    with pytest.raises(DeviceNotFoundError, match="no free MIDI CC"):
        assign_midi_ccs(DeviceProfile("big", tuple(Knob(f"k{i}") for i in range(20))), first_cc=110)


def test_setter_sends_one_cc_per_knob_and_reports_quantized_values():
    port = LogPort()
    profile = dataclasses.replace(assign_midi_ccs(OD3), extra={"midi_bypass_cc": 102, "midi_channel": 3})
    setter = MidiKnobSetter(port)
    effective = setter.apply(profile, {"drive": 6.0, "tone": 2.5})
    assert [(m.type, m.channel, m.control, m.value) for m in port.log] == [
        ("control_change", 2, 20, 64),  # level default 5 -> 63.5 rounds to 64
        ("control_change", 2, 21, 32),
        ("control_change", 2, 22, 76),
    ]
    assert effective == {"level": 64 * 10 / 127, "tone": 32 * 10 / 127, "drive": 76 * 10 / 127}
    setter.set_bypass(profile, True)
    setter.set_bypass(profile, False)
    assert [(m.control, m.value) for m in port.log[3:]] == [(102, 127), (102, 0)]


def test_setter_sends_only_changes_when_asked():
    port = LogPort()
    setter = MidiKnobSetter(port, resend_all=False, channel=1)
    profile = assign_midi_ccs(OD3)
    setter.apply(profile, {"drive": 6.0})
    setter.apply(profile, {"drive": 7.0})
    assert [(m.control, m.value) for m in port.log] == [(20, 64), (21, 64), (22, 76), (22, 89)]


def test_knobs_without_cc_need_a_manual_setter():
    profile = DeviceProfile("half", (Knob("gain", midi_cc=7), Knob("bias")))
    with pytest.raises(CaptureError, match="bias"):
        MidiKnobSetter(LogPort()).apply(profile, {"gain": 10})
    prompts = []
    manual = ManualKnobSetter(input_fn=lambda p: prompts.append(p) or "", output_fn=lambda line: None)
    port = LogPort()
    effective = MidiKnobSetter(port, manual=manual).apply(profile, {"gain": 10, "bias": 2})
    assert [(m.control, m.value) for m in port.log] == [(7, 127)]
    assert prompts == ["Set BIAS to 2 (about 9 o'clock), then press Enter "]
    assert effective == {"gain": 10.0, "bias": 2.0}
    with pytest.raises(CaptureError, match="midi_bypass_cc"):
        MidiKnobSetter(LogPort()).set_bypass(profile, True)
    MidiKnobSetter(LogPort(), manual=manual).set_bypass(profile, True)
    assert "bypass" in prompts[-1]


def test_open_unknown_port_is_a_clear_error():
    with pytest.raises(DeviceNotFoundError, match="MIDI"):
        MidiKnobSetter.open("no such port 1234")


def test_pedal_decodes_what_the_setter_sent():
    profile = assign_midi_ccs(LA2A)
    port = LogPort()
    effective = MidiKnobSetter(port).apply(profile, {"peak_reduction": 73, "gain": 12.5, "mode": "limit"})
    processor = Recorder()
    engine = PedalEngine(processor, profile, PedalConfig())
    reported = []
    engine.report = reported.append
    for message in port.log:
        engine.handle_midi(bytes(message.bytes()))
    assert engine.knobs == effective
    assert [e["knob"] for e in reported] == ["peak_reduction", "gain", "mode"]
    block = np.ones(4, dtype=np.float32)
    assert np.array_equal(engine.process(block), 2 * block) and processor.knobs[-1] == effective


def test_pedal_bypass_reset_channel_filter_and_other_messages():
    profile = assign_midi_ccs(OD3)
    processor = Recorder()
    engine = PedalEngine(processor, profile, PedalConfig(midi_channel=2))
    cc = lambda control, value, channel=1: bytes(mido.Message("control_change", channel=channel, control=control, value=value).bytes())
    engine.handle_midi(cc(22, 0, channel=0))  # channel 1: ignored
    assert engine.knobs["drive"] == 5.0
    engine.handle_midi(cc(22, 0))
    assert engine.knobs["drive"] == 0.0
    engine.handle_midi(bytes(mido.Message("note_on", channel=1, note=22, velocity=5).bytes()))
    engine.handle_midi(cc(ALL_SOUND_OFF_CC, 0))
    assert processor.resets == 1
    engine.handle_midi(cc(102, 127))
    block = np.linspace(-1, 1, 8, dtype=np.float32)
    assert engine.bypass and np.array_equal(engine.process(block), block)
    engine.handle_midi(cc(102, 0))
    assert not engine.bypass and np.array_equal(engine.process(block), 2 * block)
