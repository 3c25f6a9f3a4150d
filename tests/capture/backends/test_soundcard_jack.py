"""End to end through a real audio server: SoundcardBackend -> PortAudio -> JACK -> virtual pedal.

The pedal (``python -m fxcap.capture.jack_pedal --device OD-3``) runs the built-in virtual OD-3 in
its own process; PortAudio's outputs 1/2 feed its effect input and its loopback wire, its outputs
come back on PortAudio's inputs 1/2. Knobs and bypass travel as MIDI CC over JACK MIDI. A take
must equal the virtual OD-3's output on the played signal, delayed by the round trip (one JACK
period with the dummy driver), sample for sample; the whole capture pipeline
(:func:`fxcap.capture.record.record_session`: calibration, alignment, checks, re-takes) runs on
top of it and must deliver that output, aligned.

The take and the pipeline tests run with the server in freewheel mode (the graph runs as fast as the
CPU allows and waits for every client, so a loaded machine cannot cause xruns; their MIDI goes
through a client that stays active); the tests that need real time (forced xruns, a cable pulled at
a moment) and the calibration take (the library's JACK MIDI output) run without it.

Skipped only when no JACK server is running (CI starts one: ``.ci/jack.sh start``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.capture.backends._jack_rig import (  # noqa: F401 (pedal, server: fixtures)
    ActiveMidiOutput,
    ResettingMidiSetter,
    freewheel,
    pedal,
    require_jack,
    server,
)

pytestmark = pytest.mark.jack

require_jack()

import mido  # noqa: E402
import sounddevice as sd  # noqa: E402

from fxcap.capture.backends.soundcard import SoundcardBackend, SoundcardConfig, list_interfaces  # noqa: E402
from fxcap.capture.markers import sync_marker  # noqa: E402
from fxcap.capture.midi import ALL_SOUND_OFF_CC, JackMidiOutput, MidiKnobSetter, assign_midi_ccs  # noqa: E402
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict  # noqa: E402
from fxcap.capture.profiles import OD3  # noqa: E402
from fxcap.capture.record import RecordConfig, record_session  # noqa: E402
from fxcap.capture.signal import band_mix, wrap_program  # noqa: E402
from fxcap.capture.virtual import build_virtual_device  # noqa: E402
from fxcap.errors import CaptureError, DeviceNotFoundError  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PROFILE = assign_midi_ccs(OD3)
TAIL_SECONDS = 0.2


@pytest.fixture(scope="module")
def midi(pedal):
    port = JackMidiOutput(f"{pedal.name}:midi_in", client_name=f"fxcap-midi-{os.getpid()}")
    try:
        yield port
    finally:
        port.close()


@pytest.fixture
def fast_midi(pedal, server):
    """MIDI to the pedal that works while freewheeling (function scope: no Python in the audio
    thread of this process during the real-time tests)."""
    port = ActiveMidiOutput(f"{pedal.name}:midi_in", f"fxcap-midi-fw-{os.getpid()}")
    try:
        yield port
    finally:
        port.close()


def make_backend(pedal, midi, server, seconds_tail=TAIL_SECONDS, **kwargs) -> SoundcardBackend:
    config = SoundcardConfig(
        interface=pedal.name, output_channels=(1, 2), input_channel=1, loopback_channel=2,
        sample_rate=server.samplerate, tail_seconds=seconds_tail,
    )  # fmt: skip
    return SoundcardBackend(PROFILE, config, knob_setter=MidiKnobSetter(midi), **kwargs)


def test_signal(rate: int, body_seconds: float = 1.0) -> np.ndarray:
    """Sync marker, noise, three tones, sync marker (peak below 0 dBFS)."""
    rng = np.random.default_rng(7)
    marker = sync_marker(rate)
    gap = np.zeros(rate // 10)
    n = int(body_seconds * rate)
    t = np.arange(n // 2) / rate
    noise = np.clip(0.25 * rng.standard_normal(n), -0.9, 0.9)
    tones = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)
    return (0.9 * np.concatenate([marker, gap, noise, tones, gap, marker])).astype(np.float32)


test_signal.__test__ = False  # a helper, not a test


def lag_of(recorded: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Integer lag of ``reference`` in ``recorded`` by FFT cross-correlation, and the sub-sample
    offset of the parabola through the peak and its neighbours."""
    size = 1 << int(np.ceil(np.log2(len(recorded) + len(reference))))
    corr = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(reference, size)), size)[: len(recorded)]
    peak = int(np.argmax(np.abs(corr)))
    left, centre, right = corr[peak - 1], corr[peak], corr[peak + 1]
    return peak, float(0.5 * (left - right) / (left - 2 * centre + right))


def take_clean(backend: SoundcardBackend, run, attempts: int = 5):
    """Re-take on stream events, as the record engine does (a loaded CI machine may xrun)."""
    for _ in range(attempts):
        take = run()
        if not take.events:
            return take
    pytest.fail(f"{attempts} takes in a row had xruns: {take.events}")


def expected_output(signal: np.ndarray, knobs: dict, rate: int, length: int) -> np.ndarray:
    """The virtual OD-3's output from rest, as the pedal computes it (block by block is the same)."""
    padded = np.concatenate([signal, np.zeros(length - len(signal), np.float32)])
    return build_virtual_device("OD-3", rate).process(padded, knobs)


def test_pedal_is_listed_as_an_interface_at_the_server_rate(pedal, server):
    info = next(i for i in list_interfaces() if i.name == pedal.name)
    assert (info.max_input_channels, info.max_output_channels) == (2, 2)
    assert info.hostapi.startswith("JACK") and info.supported_rates == (server.samplerate,)


def test_take_through_the_pedal_equals_its_effect_delayed_by_one_period(pedal, fast_midi, server):
    rate = server.samplerate
    midi = fast_midi
    backend = make_backend(pedal, midi, server)
    signal_ = test_signal(rate)

    def run():
        midi.send(mido.Message("control_change", control=ALL_SOUND_OFF_CC, value=0))  # clear the effect's state
        return backend.play_record(signal_, {"drive": 6.0, "tone": 3.0, "level": 7.0})

    with freewheel(server):
        take = take_clean(backend, run)
    knobs = take.info["knobs_set"]
    assert knobs["drive"] == pytest.approx(76 * 10 / 127)  # CC 76: 6.0 quantized to the 7-bit step
    assert pedal.wait_for("knob")["cc"] in (20, 21, 22)

    expected = expected_output(signal_, knobs, rate, len(take.recorded))
    lag, fraction = lag_of(take.recorded, expected)
    assert lag == server.blocksize  # the round trip through PortAudio + JACK is one period
    assert abs(fraction) < 0.05
    error = take.recorded[lag:] - expected[: len(take.recorded) - lag]
    assert np.max(np.abs(error)) < 1e-6, f"max error {np.max(np.abs(error)):.3g}"
    assert np.max(np.abs(take.recorded[:lag])) < 1e-9  # the OD-3 at rest (its DC settles to ~1e-14)
    # the loopback wire returns the played signal itself, with the same latency
    assert lag_of(take.loopback, signal_)[0] == lag
    np.testing.assert_array_equal(take.loopback[lag : lag + len(signal_)], signal_)
    assert take.info["block_sizes"] == [server.blocksize]


def test_calibration_take_uses_the_pedals_bypass(pedal, fast_midi, server):
    """Freewheeling (the graph runs as fast as the CPU allows and waits for every client): a machine
    loaded by other tests cannot make this take xrun, as real time did."""
    backend = make_backend(pedal, fast_midi, server)
    signal_ = test_signal(server.samplerate, body_seconds=0.5)
    with freewheel(server):
        take = take_clean(backend, lambda: backend.calibration_take(signal_))
    lag = server.blocksize
    np.testing.assert_array_equal(take.recorded[lag : lag + len(signal_)], signal_)
    states = []
    while len(states) < 2:
        states.append(pedal.wait_for("bypass")["bypass"])
    assert states[-2:] == [True, False]  # bypassed for the take, back on afterwards


def stream_hook(at_frame: int, action):
    """A stream factory whose callback runs ``action()`` once, in the block holding ``at_frame``."""

    def factory(**kwargs):
        inner, seen = kwargs["callback"], [0]

        def callback(indata, outdata, frames, time_info, status):
            if seen[0] <= at_frame < seen[0] + frames:
                action()
            seen[0] += frames
            inner(indata, outdata, frames, time_info, status)

        return sd.Stream(**{**kwargs, "callback": callback})

    return factory


@pytest.mark.parametrize("where", ["our callback stalls", "the pedal freezes"])
def test_forced_xrun_is_reported_as_an_event(pedal, midi, server, where):
    rate, period = server.samplerate, server.blocksize
    if where == "our callback stalls":
        action = lambda: time.sleep(4 * period / rate)  # noqa: E731
    else:

        def action():
            os.kill(pedal.process.pid, signal.SIGSTOP)
            threading.Timer(8 * period / rate, os.kill, (pedal.process.pid, signal.SIGCONT)).start()

    stall_at = int(0.1 * rate) + rate // 2  # half a second into the signal (after the pre-roll)
    backend = make_backend(pedal, midi, server, stream_factory=stream_hook(stall_at, action))
    take = backend.play_record(test_signal(rate, body_seconds=0.5), {})
    positions = [int(event.rsplit(" ", 1)[1]) for event in take.events]
    # flagged where it happened (a loaded machine may add spontaneous xruns elsewhere)
    assert any(rate // 2 - period <= p <= rate // 2 + 64 * period for p in positions), f"xrun unnoticed: {take.events}"


def test_disconnected_device_records_silence_while_the_loopback_keeps_playing(pedal, midi, server):
    rate = server.samplerate
    cut = threading.Event()

    def disconnect_when_cut():
        cut.wait(timeout=30)
        for port in server.get_all_connections(f"{pedal.name}:out_1"):
            server.disconnect(f"{pedal.name}:out_1", port)

    worker = threading.Thread(target=disconnect_when_cut)
    worker.start()
    at = rate // 2
    backend = make_backend(pedal, midi, server, stream_factory=stream_hook(int(0.1 * rate) + at, cut.set))
    try:
        signal_ = test_signal(rate, body_seconds=1.0)
        take = backend.play_record(signal_, {})
    finally:
        cut.set()
        worker.join()
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    assert rms(take.recorded[: at - 1024]) > 0.01  # the device played until the cable was pulled
    assert rms(take.recorded[at + rate // 5 :]) == 0.0  # then nothing came back
    assert rms(take.loopback[at + rate // 5 : len(signal_)]) > 0.01


def test_wrong_rate_and_unknown_interface_are_clear_errors(pedal, midi, server):
    other = 44100 if server.samplerate != 44100 else 48000
    with pytest.raises(CaptureError, match=f"cannot run at {other} Hz.*{server.samplerate}"):
        SoundcardBackend(PROFILE, SoundcardConfig(interface=pedal.name, sample_rate=other), knob_setter=MidiKnobSetter(midi))
    with pytest.raises(DeviceNotFoundError, match=f"no audio interface matches 'no-such-pedal'.*{pedal.name}.*--backend sim"):
        SoundcardBackend(PROFILE, SoundcardConfig(interface="no-such-pedal", sample_rate=server.samplerate))


def test_pedal_command_line_errors_are_one_line_and_leave_no_client(pedal, server):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "fxcap.capture.jack_pedal"]
    taken = subprocess.run(command + ["--device", "OD-3", "--name", pedal.name],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert taken.returncode == 1 and f"a JACK client called {pedal.name!r} exists already" in taken.stderr
    name = f"fxcap-bad-{os.getpid()}"
    bad = subprocess.run(command + ["--profile", "OD-3", "--processor", "fxcap.capture.virtual:nothing", "--name", name],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "cannot load processor 'fxcap.capture.virtual:nothing'" in bad.stderr
    unknown = subprocess.run(command + ["--device", "TS-9", "--name", name], capture_output=True, text=True, env=env, timeout=60)
    assert unknown.returncode == 1 and "no device profile 'TS-9'" in unknown.stderr
    assert not server.get_ports(f"{name}:.*")


class Faults:
    """Stream factory that spoils chosen streams (1: the calibration take, then one per take attempt):
    ``"xrun"`` flags an input overflow on one block, ``"cut"`` pulls the pedal's output cable mid-take."""

    def __init__(self, server, pedal, plan: dict):
        self.server, self.pedal, self.plan, self.opened = server, pedal, plan, 0

    def _cut(self) -> None:
        port = f"{self.pedal.name}:out_1"
        for other in self.server.get_all_connections(port):
            self.server.disconnect(port, other)

    def __call__(self, **kwargs):
        self.opened += 1
        fault, inner, frames_seen = self.plan.get(self.opened), kwargs["callback"], [0]
        at = kwargs["samplerate"] * 2  # two seconds into the stream (inside the signal)

        def callback(indata, outdata, frames, time_info, status):
            hit = frames_seen[0] <= at < frames_seen[0] + frames
            frames_seen[0] += frames
            if hit and fault == "xrun":
                status = sd.CallbackFlags(sd._lib.paInputOverflow)
            elif hit and fault == "cut":
                threading.Thread(target=self._cut).start()  # JACK calls are not allowed in the process thread
            inner(indata, outdata, frames, time_info, status)

        return sd.Stream(**{**kwargs, "callback": callback})


def test_capture_pipeline_over_jack_delivers_the_virtual_od3_aligned_and_retakes_bad_takes(pedal, fast_midi, server, tmp_path):
    rate, period = server.samplerate, server.blocksize
    signal = wrap_program(band_mix(rate, 3.0, np.random.default_rng(5)), rate, peak_dbfs=-6.0, preset="short")
    faults = Faults(server, pedal, {2: "xrun", 4: "cut"})  # take 1 attempt 1, take 2 attempt 1
    config = SoundcardConfig(interface=pedal.name, output_channels=(1, 2), input_channel=1, loopback_channel=2,
                             sample_rate=rate, tail_seconds=TAIL_SECONDS)
    backend = SoundcardBackend(PROFILE, config, knob_setter=ResettingMidiSetter(fast_midi), stream_factory=faults)
    plan = PlanConfig(knobs=["drive"], steps=2, fixed={"tone": 3.0})
    events = []
    with freewheel(server):
        session = record_session(tmp_path / "s", backend, signal, plan_to_dict(plan, make_plan(PROFILE, plan)),
                                 RecordConfig(max_attempts=5), observer=lambda event, data: events.append((event, data)))
    rejected = [(d["take"].take_id, d["attempt"], {c.name for c in d["failed"]}) for e, d in events if e == "attempt_rejected"]
    assert rejected[0][:2] == ("take-0001", 1) and "stream" in rejected[0][2]  # the xrun was caught
    cut = [r for r in rejected if r[0] == "take-0002"][0]
    assert cut[1] == 1 and cut[2] & {"silence", "sync", "dropouts"}  # the pulled cable was caught
    assert session.manifest.status == "complete" and [t.attempts >= 2 for t in session.takes] == [True, True]

    calibration = session.manifest.calibration["result"]
    assert abs(calibration["latency_samples"] - period) < 0.05  # one JACK period round trip
    assert calibration["gain_db"] == pytest.approx(0.0, abs=1e-4) and calibration["polarity"] == 1
    for take in session.takes:
        assert take.alignment.latency_samples == calibration["latency_samples"]
        knobs = take.backend_info["knobs_set"]  # CC-quantized values the pedal ran at
        expected = build_virtual_device("OD-3", rate).process(signal.audio, knobs)
        aligned = session.take_output(take)
        esr_db = 10 * np.log10(np.sum((aligned - expected) ** 2) / np.sum(expected**2))
        assert esr_db < -100.0, (take.take_id, esr_db)
        print(f"{take.take_id} {knobs}: latency {take.alignment.latency_samples:.6f} samples, ESR {esr_db:.1f} dB, "
              f"attempts {take.attempts}")
