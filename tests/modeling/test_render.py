"""Rendering: constant settings and automation against ``model(x, knobs)`` on non-silent audio, with
the knob values written out in the test (normalization, defaults, direction and timing of ramps).

The run is an untrained Concat model (``make_dummy_run``): its output depends on both knobs, and it
costs no training."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from fxcap.capture.profiles import Knob
from fxcap.errors import ModelError
from fxcap.modeling.render import render_run
from fxcap.modeling.testing import make_dummy_run
from fxcap.modeling.train import load_run

RATE = 44100
DRIVE = Knob("drive", 0.0, 20.0, 5.0)  # 0 -> -1, 7 -> -0.3, 10 -> 0
TONE = Knob("tone", 0.0, 10.0, 3.0)  # never set here: stays at its default, -0.4


@pytest.fixture(scope="module")
def dummy_run(tmp_path_factory):
    return make_dummy_run(tmp_path_factory.mktemp("runs") / "concat", "concat", "gru", 2, RATE, knobs=[DRIVE, TONE])


@pytest.fixture
def dry(tmp_path):
    """A non-silent input: a tone plus noise, 6000 samples (not a multiple of the block sizes used)."""
    n = np.arange(6000)
    audio = 0.5 * np.sin(2 * np.pi * 220 * n / RATE) + 0.1 * np.random.default_rng(0).standard_normal(n.size)
    path = tmp_path / "dry.wav"
    sf.write(path, audio.astype(np.float32), RATE, subtype="FLOAT")
    return path


def _model_output(run, audio, knobs):
    model, _ = load_run(run)
    with torch.no_grad():
        y, _ = model(torch.from_numpy(audio)[None], torch.as_tensor(knobs, dtype=torch.float32)[None])
    return y[0].numpy()


def _knobs(drive) -> np.ndarray:
    """``(2,)`` or ``(T, 2)`` normalized knobs for raw drive value(s), tone at its default."""
    drive = (np.asarray(drive, dtype=np.float64) - 0.0) / 20.0 * 2 - 1
    return np.stack(np.broadcast_arrays(drive, -0.4), axis=-1)


def test_constant_setting_equals_the_model_in_one_call(dummy_run, dry, tmp_path):
    info = render_run(dummy_run, dry, tmp_path / "wet.wav", settings=["drive=7"], block=1000)
    wet, rate = sf.read(tmp_path / "wet.wav", dtype="float32")
    audio, _ = sf.read(dry, dtype="float32")
    expected = _model_output(dummy_run, audio, _knobs(7))
    assert rate == RATE and info["samples"] == len(audio) and info["peak"] == pytest.approx(np.abs(wet).max())
    np.testing.assert_allclose(wet, expected, atol=1e-5)
    assert np.abs(expected - _model_output(dummy_run, audio, _knobs(3))).max() > 1e-3
    assert np.abs(expected - _model_output(dummy_run, audio, [-0.3, 0.0])).max() > 1e-3  # tone matters too


@pytest.mark.parametrize("spec,points", [("drive:0:10", [0, 10]), ("drive:10:2:6", [10, 2, 6])])
def test_automation_follows_the_envelope_forward_in_time(dummy_run, dry, tmp_path, spec, points):
    render_run(dummy_run, dry, tmp_path / "ramp.wav", automate=[spec], block=777)
    wet, _ = sf.read(tmp_path / "ramp.wav", dtype="float32")
    audio, _ = sf.read(dry, dtype="float32")
    n = len(audio)
    # sample i sits at time i / rate of a file lasting n / rate: the envelope's points are evenly spaced
    # over [0, n / rate], the value between them linear in time
    ramp = _knobs(np.interp(np.arange(n) / n * (len(points) - 1), np.arange(len(points)), points))
    np.testing.assert_allclose(wet, _model_output(dummy_run, audio, ramp), atol=1e-5)
    assert np.abs(wet - _model_output(dummy_run, audio, ramp[::-1].copy())).max() > 1e-3  # direction matters


def test_automation_csv_times_are_seconds(dummy_run, dry, tmp_path):
    (tmp_path / "auto.csv").write_text("time,drive\n0.0,10\n0.05,10\n0.1,0\n")
    render_run(dummy_run, dry, tmp_path / "csv.wav", automation_csv=tmp_path / "auto.csv", block=4096)
    wet, _ = sf.read(tmp_path / "csv.wav", dtype="float32")
    audio, _ = sf.read(dry, dtype="float32")
    ramp = _knobs(np.interp(np.arange(len(audio)) / RATE, [0.0, 0.05, 0.1], [10, 10, 0]))
    np.testing.assert_allclose(wet, _model_output(dummy_run, audio, ramp), atol=1e-5)
    (tmp_path / "step.csv").write_text("time,drive\n0.0,0\n0.05,0\n0.05,20\n")  # a jump: two rows at one time
    render_run(dummy_run, dry, tmp_path / "step.wav", automation_csv=tmp_path / "step.csv")
    step, _ = sf.read(tmp_path / "step.wav", dtype="float32")
    jump = _knobs(np.where(np.arange(len(audio)) / RATE < 0.05, 0.0, 20.0))
    np.testing.assert_allclose(step, _model_output(dummy_run, audio, jump), atol=1e-5)


def test_switch_knobs_take_their_values_by_name(tmp_path, dry):
    run = make_dummy_run(tmp_path / "switch", "concat", "gru", 2, RATE,
                         knobs=[DRIVE, Knob("mode", default="soft", values=("soft", "hard", "fuzz"))])
    info = render_run(run, dry, tmp_path / "wet.wav", settings=["mode=fuzz", "drive=10"])
    wet, _ = sf.read(tmp_path / "wet.wav", dtype="float32")
    audio, _ = sf.read(dry, dtype="float32")
    np.testing.assert_allclose(wet, _model_output(run, audio, [0.0, 1.0]), atol=1e-5)  # fuzz: the last of three
    assert info["seconds"] == pytest.approx(len(audio) / RATE)
    with pytest.raises(ModelError, match="^mode is a switch; automate only continuous knobs$"):
        render_run(run, dry, tmp_path / "x.wav", automate=["mode:0:1"])
    with pytest.raises(ModelError, match="'loud' is not one of|loud"):
        render_run(run, dry, tmp_path / "x.wav", settings=["mode=loud"])


def test_render_errors(dummy_run, dry, tmp_path):
    sf.write(tmp_path / "dry48.wav", np.zeros(100, dtype=np.float32), 48000, subtype="FLOAT")
    with pytest.raises(ModelError, match="44100 Hz"):
        render_run(dummy_run, tmp_path / "dry48.wav", tmp_path / "x.wav")
    with pytest.raises(ModelError, match="no knob 'fuzz'"):
        render_run(dummy_run, dry, tmp_path / "x.wav", settings=["fuzz=1"])
    with pytest.raises(ModelError, match="NAME=VALUE"):
        render_run(dummy_run, dry, tmp_path / "x.wav", settings=["drive"])
    with pytest.raises(ModelError, match="KNOB:START:END"):
        render_run(dummy_run, dry, tmp_path / "x.wav", automate=["drive:3"])
    with pytest.raises(ModelError, match="^drive must be a number, not 'high'$"):
        render_run(dummy_run, dry, tmp_path / "x.wav", settings=["drive=high"])
    with pytest.raises(ModelError, match="^--automate 'drive:0:x': values must be numbers$"):
        render_run(dummy_run, dry, tmp_path / "x.wav", automate=["drive:0:x"])
    with pytest.raises(ModelError, match="^the model has no knob 'fuzz'; its knobs are drive, tone$"):
        render_run(dummy_run, dry, tmp_path / "x.wav", automate=["fuzz:0:1"])
    with pytest.raises(ModelError, match="^cannot read "):
        render_run(dummy_run, tmp_path / "missing.wav", tmp_path / "x.wav")
    for text, message in (("time,drive\n0,1\n0.2,2\n0.1,3\n", "the 'time' column must increase"),
                          ("t,drive\n0,1\n", "needs a 'time' column"), ("", "cannot read automation CSV")):
        (tmp_path / "a.csv").write_text(text)
        with pytest.raises(ModelError, match=message):
            render_run(dummy_run, dry, tmp_path / "x.wav", automation_csv=tmp_path / "a.csv")
    assert not (tmp_path / "x.wav").exists()
