"""The JACK test rig shared by the end-to-end tests through a real audio server (the sound-card tests and
the A/B's): the check that a server runs (skip, or fail in CI), the virtual pedal process, freewheel mode
and a MIDI output that keeps working while the server freewheels.

Import :func:`require_jack` and call it before importing ``jack`` (the module imports nothing of JACK).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fxcap.capture.midi import ALL_SOUND_OFF_CC, MidiKnobSetter

ROOT = Path(__file__).resolve().parents[3]


def no_jack_server() -> str | None:
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



def require_jack() -> None:
    """Skip the calling test module when no JACK server runs; with ``FXCAP_REQUIRE_JACK=1`` (CI) fail instead."""
    reason = no_jack_server()
    if reason and os.environ.get("FXCAP_REQUIRE_JACK") == "1":
        raise RuntimeError(f"FXCAP_REQUIRE_JACK=1 (CI) but {reason}")
    if reason:
        pytest.skip(reason, allow_module_level=True)


class Pedal:
    """The pedal process and the JSON events it prints."""

    def __init__(self, name: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fxcap.capture.jack_pedal", "--device", "OD-3", "--name", name],
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


def stop_freewheel(client) -> None:
    """Leave freewheel mode (JACK answers an error when it is off already)."""
    import jack

    with contextlib.suppress(jack.JackError):
        client.set_freewheel(False)


@contextlib.contextmanager
def freewheel(server):
    """Run the JACK graph as fast as the CPU allows inside the block (freewheel: the server waits for
    every client, so a loaded machine cannot cause xruns, and nothing is paced by the wall clock)."""
    server.set_freewheel(True)
    try:
        yield
    finally:
        stop_freewheel(server)


class ActiveMidiOutput:
    """A mido-style JACK MIDI output that stays active and connected.

    :class:`~fxcap.capture.midi.JackMidiOutput` activates its client for each message (so no Python
    runs in the audio thread during a take); a client activated while the server freewheels may
    never be called, so the freewheeling tests use this one, set up before freewheel starts.
    """

    def __init__(self, destination: str, name: str) -> None:
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.pending: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.cycles = 0
        self.cycle_done = threading.Condition()
        self.client.set_process_callback(self._process)
        self.client.activate()
        self.client.connect(self.port, destination)
        self.wait_cycles(4)

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        while not self.pending.empty():
            self.port.write_midi_event(0, self.pending.get())
        with self.cycle_done:
            self.cycles += 1
            self.cycle_done.notify_all()

    def wait_cycles(self, count: int) -> None:
        with self.cycle_done:
            target = self.cycles + count
            assert self.cycle_done.wait_for(lambda: self.cycles >= target, timeout=10), "JACK stopped calling the MIDI client"

    def send(self, message) -> None:
        self.pending.put(bytes(message.bytes()))
        self.wait_cycles(2)  # written in the next cycle, handled by the pedal in that cycle

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class ResettingMidiSetter(MidiKnobSetter):
    """MIDI knobs, then "All Sound Off": the pedal clears the OD-3's state, so each take starts from rest."""

    def apply(self, profile, knobs):
        values = super().apply(profile, knobs)
        self.send_cc(profile, ALL_SOUND_OFF_CC, 0)
        return values


@pytest.fixture(scope="module")
def pedal():
    """The virtual OD-3 pedal process, for the tests of one module."""
    pedal = Pedal(f"fxcap-pedal-{os.getpid()}")
    try:
        yield pedal
    finally:
        pedal.stop()


@pytest.fixture(scope="module")
def server():
    """Sample rate and period of the running server (from a client that never activates)."""
    import jack

    client = jack.Client(f"fxcap-test-{os.getpid()}", no_start_server=True)
    stop_freewheel(client)  # in case an earlier run was killed while freewheeling
    try:
        yield client
    finally:
        client.close()
