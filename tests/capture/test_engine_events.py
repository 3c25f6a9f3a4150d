"""The capture engine's hardware-facing behaviour on the virtual OD-3: knob probes, reference drift,
a device lost mid-run and the resume, the pre-flight check and the CLI around them."""

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.capture import CaptureRequest, run_capture, soundcard_options
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.preflight import run_preflight
from fxcap.capture.probe import ProbeMonitor
from fxcap.capture.record import record_session
from fxcap.capture.session import Session
from fxcap.capture.signal import band_mix, wrap_program
from fxcap.capture.virtual import RigImpairments
from fxcap.errors import CaptureError, FxcapError

RATE = 48000
RIG = RigImpairments(latency_samples=87.25, gain_db=-3.0, polarity=1, noise_dbfs=-95.0, tail_samples=2000)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "program.wav"
    sf.write(str(path), band_mix(RATE, 4.0, np.random.default_rng(1)).astype(np.float32), RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def signal(program):
    audio, _ = sf.read(str(program), dtype="float32")
    return wrap_program(audio, RATE, peak_dbfs=-3.0, preset="short")


def _plan(profile, **kwargs):
    config = PlanConfig(knobs=["drive"], **kwargs)
    return plan_to_dict(config, make_plan(profile, config))


class ForgetfulRig(SimBackend):
    """A hand-knobbed OD-3 whose user forgets to turn the knob for one setting; probes like the sound card."""

    def __init__(self, forget: dict, **kwargs):
        super().__init__("OD-3", RATE, impairments=RIG, seed=2, **kwargs)
        self.forget = forget
        self.panel: dict = {}
        self.monitor = ProbeMonitor(self.profile, RATE)

    def play_record(self, signal, knobs):
        wanted = self.profile.complete(knobs)
        if wanted != self.profile.complete(self.forget) or not self.panel:
            self.panel = wanted  # the user turned the knob (except for the forgotten setting)
        return super().play_record(signal, self.panel)

    def probe_setting(self, knobs):
        return self.monitor.judge(knobs, self.play_record(self.monitor.signal, knobs))


def test_a_forgotten_knob_is_reported_by_the_probe(tmp_path, signal):
    events = []
    backend = ForgetfulRig(forget={"drive": 10.0})
    session = record_session(tmp_path / "s", backend, signal, _plan(backend.profile, steps=3),
                             observer=lambda event, data: events.append((event, data)))
    probes = [d for e, d in events if e == "probe"]
    assert [p["verdict"].ok for p in probes] == [True, True, False]
    warnings = [d for e, d in events if e == "probe_warning"]
    assert len(warnings) == 1 and warnings[0]["take"].knobs["drive"] == 10.0
    assert "sounds as it did at the previous setting (DRIVE 5)" in warnings[0]["warnings"][0]
    assert "DRIVE really set to 10" in warnings[0]["warnings"][0]
    assert any("take-0003" in n and "probe:" in n for n in session.manifest.notes)


def test_reference_retakes_report_device_drift(tmp_path, signal):
    events = []
    # calls: 1 ref, 2 drive=0, 3 ref, 4 drive=10, 5 ref -- the device's output level sags by 3 dB at the end
    backend = SimBackend("OD-3", RATE, impairments=RIG, seed=3, fault_plan={5: {"gain_db": RIG.gain_db - 3.0}})
    session = record_session(tmp_path / "s", backend, signal, _plan(backend.profile, steps=2, reference_every=1),
                             observer=lambda event, data: events.append((event, data)))
    drift = [d for e, d in events if e == "reference_drift"]
    assert [d["take"].take_id for d in drift] == ["take-0003", "take-0005"]
    assert drift[0]["ok"] and drift[0]["esr_db"] < -40.0
    assert not drift[1]["ok"] and drift[1]["esr_db"] == pytest.approx(20 * np.log10(1 - 10 ** (-3 / 20)), abs=0.5)
    assert any(n.startswith("take-0005: the reference setting differs from take-0001") for n in session.manifest.notes)
    check = next(c for c in session.manifest.session_checks if c.name == "reference_drift")
    assert not check.passed and check.severity == "warning"


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.glob("takes/*/*.wav"))}


def test_a_device_lost_mid_run_stops_with_a_resume_hint_and_resume_continues(tmp_path, program):
    out = tmp_path / "s"
    request = CaptureRequest(device="OD-3", backend="sim", plan=PlanConfig(knobs=["drive"], steps=3), program=program, out=out,
                             backend_options={"fault_plan": {3: "lost"}})
    events = []
    with pytest.raises(CaptureError, match=rf"stopped during the take .*continue with `fxcap record --resume --out {out}`"):
        run_capture(request, observer=lambda event, data: events.append(event))
    assert events[-1] == "stopped"
    stopped = Session.open(out)
    assert stopped.manifest.status == "failed" and [t.take_id for t in stopped.takes] == ["take-0001", "take-0002"]
    assert any(note.startswith("stopped after 2 takes") for note in stopped.manifest.notes)
    before = _files(out)
    session = run_capture(CaptureRequest(resume=True, out=out))
    assert session.manifest.status == "complete" and [t.take_id for t in session.takes] == ["take-0001", "take-0002", "take-0003"]
    assert all(_files(out)[name] == data for name, data in before.items())


def test_preflight_measures_latency_levels_and_noise(signal):
    report = run_preflight(SimBackend("OD-3", RATE, impairments=RIG, seed=4), signal, {"drive": 10.0})
    assert report.ok, report.to_rows()
    names = [item.name for item in report.items]
    assert names == ["round-trip latency", "rig gain", "clock drift", "calibration take", "signal present", "headroom",
                     "output level", "noise floor", "device take"]
    marker = signal.layout.of_kind("sync_start")[0]
    assert report.calibration.latency_samples == pytest.approx(RIG.latency_samples, abs=0.05)
    assert report.item("round-trip latency").value.startswith(f"{report.calibration.latency_samples:.2f} samples")
    noise = float(report.item("noise floor").value.split(" ")[0])
    assert noise == pytest.approx(RIG.noise_dbfs, abs=3.0)  # at the interface's input
    clipped = run_preflight(SimBackend("OD-3", RATE, impairments=RIG, seed=4, fault_plan={1: "clip"}), signal)
    assert not clipped.ok and clipped.item("headroom").ok is False and "clipped" in clipped.item("headroom").message
    dead = run_preflight(SimBackend("OD-3", RATE, impairments=RIG, seed=4, fault_plan={1: "silence"}), signal)
    assert dead.item("signal present").ok is False and "no signal" in dead.item("signal present").message


runner = CliRunner()


def test_cli_devices_lists_virtual_devices_plugins_and_sound_cards(monkeypatch):
    from fxcap.capture.backends import soundcard
    from fxcap.cli import app
    from fxcap.errors import DeviceNotFoundError

    info = soundcard.InterfaceInfo(3, "Scarlett 2i2", "ALSA", 2, 2, 48000.0, (44100, 48000))
    monkeypatch.setattr(soundcard, "list_interfaces", lambda: [info])
    result = runner.invoke(app, ["devices"])
    assert result.exit_code == 0, result.output
    for text in ("OD-3", "LA-2A", "Distortion", "Compressor", "Scarlett 2i2", "44100, 48000"):
        assert text in result.output

    def missing():
        raise DeviceNotFoundError("the sound-card backend needs PortAudio (libportaudio.so missing)")

    monkeypatch.setattr(soundcard, "list_interfaces", missing)
    result = runner.invoke(app, ["devices"])
    assert result.exit_code == 0 and "sound cards: none (the sound-card backend needs PortAudio" in " ".join(result.output.split())


def test_cli_check_and_soundcard_options(monkeypatch):
    from fxcap.cli import app

    result = runner.invoke(app, ["check", "--backend", "sim", "--set", "drive=8"])
    assert result.exit_code == 0, result.output
    for text in ("round-trip latency", "headroom", "noise floor", "calibration take", "ready to record"):
        assert text in result.output
    assert soundcard_options("soundcard:Scarlett", input_channel=2, output_channels="1,2", midi_port=None) == {
        "input_channel": 2, "output_channels": "1,2"}
    with pytest.raises(CaptureError, match="--input-channel, --block-size apply to --backend soundcard"):
        soundcard_options("sim", input_channel=2, blocksize=256)
    result = runner.invoke(app, ["record", "--backend", "sim", "--input-channel", "2", "--knob", "drive", "--steps", "2"])
    assert isinstance(result.exception, FxcapError) and "--input-channel apply to --backend soundcard" in str(result.exception)
