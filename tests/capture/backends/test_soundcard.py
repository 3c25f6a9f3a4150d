"""The sound-card backend's stream logic against a fake full-duplex stream (no audio hardware).

The fake rig plays each callback's output into a delay line and returns it on the inputs
(``latency`` samples later, times ``gain``), and can raise stream-status flags, stall or fail,
which is what the real PortAudio stream does with a device (the JACK test covers the real one).
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from tests.extras import missing

try:
    import sounddevice as sd
except OSError as exc:  # no PortAudio library on this machine (CI installs it: never skipped there)
    missing(f"PortAudio is not installed ({exc})", "install it: bash .ci/jack.sh install")

from fxcap.capture.backends import soundcard
from fxcap.capture.backends.soundcard import InterfaceInfo, SoundcardBackend, SoundcardConfig
from fxcap.capture.knob_setters import ManualKnobSetter
from fxcap.capture.profiles import OD3
from fxcap.errors import CaptureError, DeviceNotFoundError

RATE = 48000
INTERFACES = [
    InterfaceInfo(0, "Built-in Output", "ALSA", 0, 2, 48000.0, (44100, 48000)),
    InterfaceInfo(1, "Scarlett 2i2 USB: Audio (hw:1,0)", "ALSA", 2, 2, 48000.0, (44100, 48000, 96000)),
]


class FakeStream:
    def __init__(self, rig: "FakeRig", channels, blocksize, callback, finished_callback, **kwargs):
        self.rig = rig
        self.inputs, self.outputs = channels
        self.blocksize = blocksize or rig.blocksize
        self.callback = callback
        self.finished_callback = finished_callback
        self.kwargs = kwargs
        self.aborted = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        rig, bs = self.rig, self.blocksize
        pending = np.zeros((rig.latency, self.outputs), dtype=np.float32)
        block = 0
        try:
            while not self.aborted.is_set():
                if rig.stall_after is not None and block >= rig.stall_after:
                    self.aborted.wait()  # the device went away: no more blocks, no finish
                    return
                indata = np.zeros((bs, self.inputs), dtype=np.float32)
                for column, source in rig.route.items():
                    if column < self.inputs and source is not None:
                        indata[:, column] = rig.gain[column] * pending[:bs, source]
                outdata = np.full((bs, self.outputs), np.nan, dtype=np.float32)
                status = sd.CallbackFlags(rig.statuses.get(block, 0))
                block += 1
                try:
                    self.callback(indata, outdata, bs, None, status)
                except sd.CallbackStop:
                    return
                except sd.CallbackAbort:
                    return
                finally:
                    pending = np.concatenate([pending[bs:], outdata])
                    self.rig.blocks += 1
        finally:
            self.finished_callback()

    def __enter__(self):
        if self.rig.fail_on_start:
            raise sd.PortAudioError("Device unavailable", -9985)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.aborted.set()
        self.thread.join()

    def abort(self) -> None:
        self.aborted.set()


class FakeRig:
    """Output column ``route[c]`` comes back on input column ``c`` after ``latency`` samples."""

    def __init__(self, latency=150, blocksize=64, route=None, gain=None, statuses=None, stall_after=None, fail_on_start=False):
        self.latency = latency
        self.blocksize = blocksize
        self.route = route if route is not None else {0: 0}
        self.gain = gain or {c: 0.5 for c in self.route}
        self.statuses = statuses or {}
        self.stall_after = stall_after
        self.fail_on_start = fail_on_start
        self.blocks = 0
        self.streams: list[FakeStream] = []

    def __call__(self, **kwargs) -> FakeStream:
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream


@pytest.fixture(autouse=True)
def fake_devices(monkeypatch):
    def check(device, channels, dtype, samplerate):
        info = INTERFACES[device]
        if samplerate not in info.supported_rates:
            raise sd.PortAudioError("Invalid sample rate", -9997)

    monkeypatch.setattr(soundcard, "list_interfaces", lambda rates=(), refresh=True: INTERFACES)
    monkeypatch.setattr(soundcard, "refresh_devices", lambda: None)
    monkeypatch.setattr(sd, "check_input_settings", check)
    monkeypatch.setattr(sd, "check_output_settings", check)


def answers() -> ManualKnobSetter:
    return ManualKnobSetter(input_fn=lambda prompt: "", output_fn=lambda line: None)


def make(rig: FakeRig, **config) -> SoundcardBackend:
    config.setdefault("interface", "scarlett")
    return SoundcardBackend(OD3, SoundcardConfig(**config), knob_setter=answers(), stream_factory=rig)


def test_recording_is_the_device_return_delayed_by_the_round_trip_with_a_tail():
    rig = FakeRig(latency=150, route={0: None, 1: 0, 2: 1}, gain={1: 0.5, 2: 1.0})
    # a 3-input interface: out 1 -> device -> in 2, out 2 -> loopback cable -> in 3
    interfaces = INTERFACES + [InterfaceInfo(2, "Three in", "ALSA", 3, 2, 48000.0, (48000,))]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(soundcard, "list_interfaces", lambda rates=(), refresh=True: interfaces)
        mp.setattr(sd, "check_input_settings", lambda **kw: None)
        mp.setattr(sd, "check_output_settings", lambda **kw: None)
        backend = make(rig, interface="Three in", output_channels=(1, 2), input_channel=2, loopback_channel=3, tail_seconds=0.01)
        signal = np.random.default_rng(0).uniform(-0.9, 0.9, 2000).astype(np.float32)
        take = backend.play_record(signal, {"drive": 7})
    tail = int(0.01 * RATE)
    assert take.recorded.shape == take.loopback.shape == (2000 + tail,)
    assert not take.recorded[:150].any()  # the pre-roll is not in the recording
    np.testing.assert_array_equal(take.recorded[150:2150], 0.5 * signal)
    np.testing.assert_array_equal(take.loopback[150:2150], signal)
    assert take.events == [] and take.played is not None and take.sample_rate == RATE
    assert take.info["knobs_set"]["drive"] == 7.0 and take.info["block_sizes"] == [64]
    assert take.info["interface"] == "Three in" and take.info["preroll_samples"] == int(0.1 * RATE)
    stream = rig.streams[-1]
    assert (stream.inputs, stream.outputs) == (3, 2)
    assert stream.kwargs["samplerate"] == RATE and stream.kwargs["device"] == (2, 2)


def test_status_flags_on_any_block_of_the_signal_become_events():
    preroll_blocks = int(0.1 * RATE) // 64  # 75 blocks of pre-roll
    statuses = {
        2: sd._lib.paOutputUnderflow,  # during the pre-roll: counted, harmless
        preroll_blocks + 3: sd._lib.paInputOverflow,
        preroll_blocks + 10: sd._lib.paOutputUnderflow | sd._lib.paInputOverflow,
        preroll_blocks + 12: sd._lib.paPrimingOutput,
    }
    rig = FakeRig(statuses=statuses)
    take = make(rig, tail_seconds=0.01).play_record(np.full(2000, 0.1, np.float32), {})
    start = (75 * 64) - int(0.1 * RATE)  # the signal starts inside block 75
    assert take.events == [
        f"input overflow at sample {start + 3 * 64}",
        f"input overflow at sample {start + 10 * 64}",
        f"output underflow at sample {start + 10 * 64}",
        f"output priming at sample {start + 12 * 64}",
    ]
    assert take.info["preroll_status_blocks"] == 1


def test_memory_mapped_signal_streams_without_a_copy(tmp_path):
    path = tmp_path / "signal.npy"
    np.save(path, np.sin(np.arange(5000) / 7).astype(np.float32))
    mapped = np.load(path, mmap_mode="r")
    rig = FakeRig(latency=64)
    take = make(rig, tail_seconds=0.0).play_record(mapped, {})
    assert np.shares_memory(take.played, mapped)  # played straight from the file's pages
    np.testing.assert_array_equal(take.recorded[64:], 0.5 * mapped[: 5000 - 64])


def test_calibration_take_switches_bypass_around_the_take():
    prompts: list[str] = []
    rig = FakeRig()
    setter = ManualKnobSetter(input_fn=lambda p: prompts.append(p) or "", output_fn=lambda line: None)
    backend = SoundcardBackend(OD3, SoundcardConfig(interface="scarlett", tail_seconds=0), knob_setter=setter, stream_factory=rig)
    take = backend.calibration_take(np.ones(500, np.float32) * 0.2)
    assert len(prompts) == 2 and "bypass" in prompts[0] and "back on" in prompts[1]
    assert take.info["bypass"] is True and len(rig.streams) == 1


def test_a_stalled_stream_is_a_lost_device_with_a_resume_hint():
    rig = FakeRig(stall_after=5)
    backend = make(rig, stall_seconds=0.2)
    with pytest.raises(CaptureError, match="stopped during the take.*--resume"):
        backend.play_record(np.zeros(48000, np.float32), {})
    assert rig.streams[-1].aborted.is_set()


def test_a_stream_error_is_a_lost_device():
    backend = make(FakeRig(fail_on_start=True))
    with pytest.raises(CaptureError, match="Scarlett.*reconnect"):
        backend.play_record(np.zeros(100, np.float32), {})


def test_interface_selection_errors_are_one_liners():
    with pytest.raises(DeviceNotFoundError, match=r"no audio interface matches 'Apollo'.*Scarlett.*--backend sim"):
        make(FakeRig(), interface="Apollo")
    with pytest.raises(CaptureError, match=r"cannot run at 88200 Hz.*44100, 48000, 96000"):
        make(FakeRig(), sample_rate=88200)
    with pytest.raises(DeviceNotFoundError, match="has 2 input channel"):
        make(FakeRig(), input_channel=3)
    with pytest.raises(DeviceNotFoundError, match="has 2 output channel"):
        make(FakeRig(), output_channels=(1, 4))
    assert make(FakeRig(), interface=1).interface.name.startswith("Scarlett")
    assert make(FakeRig(), interface=None).interface.index == 1  # first full-duplex one


def test_bad_signal_and_config_are_rejected():
    backend = make(FakeRig())
    with pytest.raises(CaptureError, match="mono"):
        backend.play_record(np.zeros((2, 100), np.float32), {})
    with pytest.raises(CaptureError, match="clip"):
        backend.play_record(np.full(100, 1.5, np.float32), {})
    with pytest.raises(Exception, match="numbered from 1"):
        SoundcardConfig(output_channels=(0,))
    with pytest.raises(Exception, match="must differ"):
        SoundcardConfig(input_channel=2, loopback_channel=2)


def test_output_channels_from_a_command_line_string():
    assert SoundcardConfig(output_channels="1, 2").output_channels == (1, 2)
    assert SoundcardConfig(output_channels=3).output_channels == (3,)
    with pytest.raises(Exception, match="numbers like"):
        SoundcardConfig(output_channels="left")


def test_from_spec_builds_what_the_backend_factory_asks_for():
    backend = SoundcardBackend.from_spec("scarlett", device="LA-2A", sample_rate=44100, output_channels="1,2", tail_seconds=1)
    assert backend.profile.name == "LA-2A" and backend.interface.index == 1
    assert backend.config.output_channels == (1, 2) and backend.sample_rate == 44100
    assert isinstance(backend.knob_setter, ManualKnobSetter)
    assert backend.describe()["interface"].startswith("Scarlett")
    with pytest.raises(Exception, match="unknown sound-card option"):
        SoundcardBackend.from_spec("scarlett", device="OD-3", sample_rate=48000, channels=3)
    with pytest.raises(DeviceNotFoundError, match="MIDI"):
        SoundcardBackend.from_spec("scarlett", device="OD-3", sample_rate=48000, midi_port="no such port 1234")


class Panel(dict):
    """The device's level into input 1 follows the DRIVE the user really turned (or 1.0 in bypass)."""

    def __init__(self):
        super().__init__({0: None})
        self.knobs = {"drive": 5.0}
        self.bypass = False

    def __getitem__(self, column):
        return 1.0 if self.bypass else 0.1 + 0.08 * float(self.knobs["drive"])


class ForgetfulUser:
    """Answers fxcap's prompts by turning the knobs it names, except once for ``forget``."""

    def __init__(self, panel, forget):
        self.panel, self.forget = panel, dict(forget)
        self.lines, self.asked, self.wanted = [], [], {}

    def output(self, line):
        self.lines.append(line)

    def input(self, prompt):
        self.asked.append(prompt)
        if "back on" in prompt:
            self.panel.bypass = False
        elif "bypass" in prompt:
            self.panel.bypass = True
        elif prompt.startswith("Check the knobs"):
            self.panel.knobs.update(self.wanted)  # looks again and turns the knob after all
        else:
            text = " ".join(self.lines[-4:] + [prompt])
            self.wanted = {name.lower(): float(value) for name, value in re.findall(r"([A-Z]+) to ([-\d.]+)", text)}
            if self.forget and all(self.wanted.get(k) == v for k, v in self.forget.items()):
                self.forget = {}  # forgets this one change
            else:
                self.panel.knobs.update(self.wanted)
        return ""


def test_engine_prompts_for_each_knob_change_and_the_probe_catches_a_forgotten_knob(tmp_path):
    from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
    from fxcap.capture.record import record_session
    from fxcap.capture.signal import band_mix, wrap_program

    panel = Panel()
    user = ForgetfulUser(panel, forget={"drive": 10.0})
    rig = FakeRig(latency=150, gain=panel)
    setter = ManualKnobSetter(input_fn=user.input, output_fn=user.output)
    backend = SoundcardBackend(OD3, SoundcardConfig(interface="scarlett", tail_seconds=0.05), knob_setter=setter, stream_factory=rig)
    assert backend.probing  # knobs turned by hand: probe after every change
    signal = wrap_program(band_mix(RATE, 3.0, np.random.default_rng(0)), RATE, peak_dbfs=-6.0, preset="short")
    plan = PlanConfig(knobs=["drive"], steps=3)
    events = []
    session = record_session(tmp_path / "s", backend, signal, plan_to_dict(plan, make_plan(OD3, plan)),
                             observer=lambda event, data: events.append(event))
    assert [p for p in user.asked if p.startswith("Set DRIVE")] == [
        "Set DRIVE to 5 (about 12 o'clock), then press Enter ", "Set DRIVE to 10 (about 5 o'clock), then press Enter "]
    assert "Set the knobs of OD-3:" in user.lines and "  DRIVE to 0 (about 7 o'clock)" in user.lines  # first take: every knob
    warnings = [line for line in user.lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "sounds as it did at the previous setting (DRIVE 5)" in warnings[0]
    assert sum(p.startswith("Check the knobs") for p in user.asked) == 1
    assert events.count("probe") == 3 and "probe_warning" not in events  # fixed before the take: nothing to report
    for take in session.takes:  # every take was recorded at the setting it claims
        gain = 0.1 + 0.08 * take.knobs["drive"]
        np.testing.assert_allclose(session.take_output(take), gain * signal.audio, atol=2e-6)


def test_midi_port_with_cc_mapped_knobs_sets_them_unattended(tmp_path, monkeypatch):
    import mido

    from fxcap.capture.midi import MidiKnobSetter

    sent = []

    class Port:
        def send(self, message):
            sent.append(message)

        def close(self):
            sent.append("closed")

    monkeypatch.setattr(mido, "get_output_names", lambda: ["Pedal MIDI 1"])
    monkeypatch.setattr(mido, "open_output", lambda name: Port())
    profile = tmp_path / "pedal.toml"
    profile.write_text('name = "Pedal"\nextra = {midi_bypass_cc = 102}\n[[knobs]]\nname = "drive"\nmidi_cc = 20\n'
                       '[[knobs]]\nname = "tone"\nmidi_cc = 21\n')
    backend = SoundcardBackend.from_spec("scarlett", device=str(profile), sample_rate=RATE, midi_port="pedal midi",
                                         stream_factory=FakeRig(), tail_seconds=0)
    assert isinstance(backend.knob_setter, MidiKnobSetter) and not backend.probing
    assert backend.probe_setting({"drive": 3}) is None
    backend.play_record(np.full(500, 0.1, np.float32), {"drive": 10.0, "tone": 0.0})
    assert [(m.control, m.value) for m in sent] == [(20, 127), (21, 0)]
    backend.close()
    assert sent[-1] == "closed"
    with pytest.raises(DeviceNotFoundError, match="maps no knob to a MIDI CC; add midi_cc"):
        SoundcardBackend.from_spec("scarlett", device="OD-3", sample_rate=RATE, midi_port="pedal midi")


def test_the_capture_estimate_is_the_audio_streamed_and_the_knobs_turned_by_hand(tmp_path):
    """What `fxcap record --dry-run` says for a sound card (pre-roll, tail, a probe before every take,
    every knob the user turns and the bypass switches) is what the capture engine then does."""
    from fxcap.capture.backends.soundcard import planned_timing
    from fxcap.capture.budget import estimate_capture
    from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
    from fxcap.capture.record import record_session
    from fxcap.capture.signal import band_mix, wrap_program

    panel = Panel()
    user = ForgetfulUser(panel, forget={})
    setter = ManualKnobSetter(input_fn=user.input, output_fn=user.output)
    backend = SoundcardBackend(OD3, SoundcardConfig(interface="scarlett", tail_seconds=0.05), knob_setter=setter,
                               stream_factory=FakeRig(latency=150, gain=panel))
    assert backend.timing() == planned_timing(OD3, backend.config, midi=False)  # the preview's timing is the backend's
    signal = wrap_program(band_mix(RATE, 3.0, np.random.default_rng(0)), RATE, peak_dbfs=-6.0, preset="short")
    plan = PlanConfig(knobs=["drive"], steps=3, reference_every=2)
    planned = make_plan(OD3, plan)
    estimate = estimate_capture(planned, signal.duration, backend.timing(), knob_change_seconds=10.0)
    streamed = []
    take = backend._take
    backend._take = lambda audio: (lambda raw: streamed.append(raw.info["preroll_samples"] + len(raw.recorded)) or raw)(take(audio))
    record_session(tmp_path / "s", backend, signal, plan_to_dict(plan, planned))
    assert len(streamed) == 1 + 2 * len(planned)  # the calibration take, and a probe and a take per planned take
    assert sum(streamed) / RATE == pytest.approx(estimate.audio_seconds, abs=len(streamed) / RATE)  # to a sample a stream
    turned = [p for p in user.asked if p.startswith("Set ") and " to " in p] + [line for line in user.lines if line.startswith("  ")]
    assert len(turned) == estimate.knob_changes == 3 + 4  # every knob before the first take, then drive 5-0-5-10-5
    assert sum("bypass" in p or "back on" in p for p in user.asked) == 2 and estimate.bypass_seconds == 20.0
