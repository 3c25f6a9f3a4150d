"""End to end through a real audio server: SoundcardBackend -> PortAudio -> JACK -> virtual pedal.

The pedal (``python -m fxcap.capture.jack_pedal``) runs in its own process with the effect of
``pedal_effects.py``; PortAudio's outputs 1/2 feed its effect input and its loopback wire, its
outputs come back on PortAudio's inputs 1/2. Knobs and bypass travel as MIDI CC over JACK MIDI.
The recording must equal the effect's output on the played signal, delayed by the round trip
(one JACK period with the dummy driver), sample for sample.

Skipped only when no JACK server is running (CI starts one: ``.ci/jack.sh start``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.jack


def _no_jack_server() -> str | None:
    """Why the JACK tests cannot run here, or None when a server answers."""
    try:
        import jack
    except (ImportError, OSError) as exc:
        return f"no JACK server can run here: JACK-Client/libjack unavailable ({exc}); CI runs .ci/jack.sh install"
    try:
        client = jack.Client("fxcap-test-probe", no_start_server=True)
    except jack.JackError:
        return "no JACK server is running (start one with .ci/jack.sh start)"
    client.close()
    return None


_reason = _no_jack_server()
if _reason and os.environ.get("FXCAP_REQUIRE_JACK") == "1":
    raise RuntimeError(f"FXCAP_REQUIRE_JACK=1 (CI) but {_reason}")
if _reason:
    pytest.skip(_reason, allow_module_level=True)

import jack  # noqa: E402
import mido  # noqa: E402
import sounddevice as sd  # noqa: E402

from fxcap.capture.backends.soundcard import SoundcardBackend, SoundcardConfig, list_interfaces  # noqa: E402
from fxcap.capture.markers import sync_marker  # noqa: E402
from fxcap.capture.midi import ALL_SOUND_OFF_CC, JackMidiOutput, MidiKnobSetter, assign_midi_ccs  # noqa: E402
from fxcap.capture.profiles import OD3  # noqa: E402
from fxcap.errors import CaptureError, DeviceNotFoundError  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pedal_effects import TanhLowpass  # noqa: E402

ROOT = HERE.parents[2]
PROFILE = assign_midi_ccs(OD3)
TAIL_SECONDS = 0.2


class Pedal:
    """The pedal process and the JSON events it prints."""

    def __init__(self, name: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fxcap.capture.jack_pedal", "--profile", "OD-3",
             "--processor", "pedal_effects:build", "--name", name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        self.events: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_for("ready", timeout=30)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, kind: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(f"pedal exited ({self.process.returncode}): {self.process.stderr.read()}")
                continue
            self.seen.append(event)
            if event["event"] == kind:
                return event
        raise TimeoutError(f"pedal printed no {kind!r} event within {timeout} s; saw {self.seen}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # in case a test left it frozen
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def pedal():
    pedal = Pedal(f"fxcap-pedal-{os.getpid()}")
    try:
        yield pedal
    finally:
        pedal.stop()


@pytest.fixture(scope="module")
def midi(pedal):
    port = JackMidiOutput(f"{pedal.name}:midi_in", client_name=f"fxcap-midi-{os.getpid()}")
    try:
        yield port
    finally:
        port.close()


@pytest.fixture(scope="module")
def server():
    """Sample rate and period of the running server (from a client that never activates)."""
    client = jack.Client(f"fxcap-test-{os.getpid()}", no_start_server=True)
    try:
        yield client
    finally:
        client.close()


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
    padded = np.concatenate([signal, np.zeros(length - len(signal), np.float32)])
    return TanhLowpass(rate).process(padded, knobs)


def test_pedal_is_listed_as_an_interface_at_the_server_rate(pedal, server):
    info = next(i for i in list_interfaces() if i.name == pedal.name)
    assert (info.max_input_channels, info.max_output_channels) == (2, 2)
    assert info.hostapi.startswith("JACK") and info.supported_rates == (server.samplerate,)


def test_take_through_the_pedal_equals_its_effect_delayed_by_one_period(pedal, midi, server):
    rate = server.samplerate
    backend = make_backend(pedal, midi, server)
    signal_ = test_signal(rate)

    def run():
        midi.send(mido.Message("control_change", control=ALL_SOUND_OFF_CC, value=0))  # clear the effect's state
        return backend.play_record(signal_, {"drive": 6.0, "tone": 3.0, "level": 7.0})

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
    assert np.max(np.abs(take.recorded[:lag])) == 0.0
    # the loopback wire returns the played signal itself, with the same latency
    assert lag_of(take.loopback, signal_)[0] == lag
    np.testing.assert_array_equal(take.loopback[lag : lag + len(signal_)], signal_)
    assert take.info["block_sizes"] == [server.blocksize]


def test_calibration_take_uses_the_pedals_bypass(pedal, midi, server):
    backend = make_backend(pedal, midi, server)
    signal_ = test_signal(server.samplerate, body_seconds=0.5)
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
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    command = [sys.executable, "-m", "fxcap.capture.jack_pedal", "--profile", "OD-3"]
    taken = subprocess.run(command + ["--processor", "pedal_effects:build", "--name", pedal.name],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert taken.returncode == 1 and f"a JACK client called {pedal.name!r} exists already" in taken.stderr
    name = f"fxcap-bad-{os.getpid()}"
    bad = subprocess.run(command + ["--processor", "pedal_effects:nothing", "--name", name],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and "cannot load processor 'pedal_effects:nothing'" in bad.stderr
    assert not server.get_ports(f"{name}:.*")
