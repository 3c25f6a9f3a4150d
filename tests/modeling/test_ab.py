"""The A/B of a model against its device (fxcap.modeling.ab): exact against itself, and against the virtual
OD-3 the same ESR as the run's own evaluation at that setting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.profiles import OD3
from fxcap.capture.record import record_session
from fxcap.capture.signal import band_mix, wrap_program
from fxcap.dataset import BuildConfig, SequenceDataset, SplitConfig, build_dataset
from fxcap.errors import CaptureError, ModelError
from fxcap.modeling.ab import ABConfig, FILES, ab_compare, alternate, run_model
from fxcap.modeling.render import knobs_from_run
from fxcap.modeling.testing import make_dummy_run
from fxcap.modeling.train import load_run

RATE = 48000


class ModelDevice(Backend):
    """A "device" that is a model: its take is the model's output on what it is played (from rest, the
    OD-3's other knobs ignored); its bypass is a wire."""

    name = "model"
    deterministic = True

    def __init__(self, run: Path) -> None:
        self.model, config = load_run(run)
        self.ranges = knobs_from_run(config)
        self.profile = OD3
        self.sample_rate = RATE

    def play_record(self, signal, knobs):
        setting = {k.name: OD3.complete(knobs)[k.name] for k in self.ranges}
        return RawTake(signal, run_model(self.model, self.ranges, setting, signal, RATE), RATE)

    def calibration_take(self, signal):
        return RawTake(signal, signal.copy(), RATE)


@pytest.fixture(scope="module")
def od3_run(tmp_path_factory) -> Path:
    """A dummy Concat-GRU run on the OD-3's DRIVE and TONE knobs (untrained, seeded)."""
    return make_dummy_run(tmp_path_factory.mktemp("ab") / "run", cond="concat", num_knobs=2, sample_rate=RATE,
                          knobs=[OD3.knob("drive"), OD3.knob("tone")])


def test_a_model_against_itself_is_a_perfect_null(od3_run, tmp_path):
    result = ab_compare(od3_run, ModelDevice(od3_run), tmp_path / "ab", ["drive=7", "tone=3"], config=ABConfig(passage_seconds=6.0))
    assert result.numbers["esr"] < 1e-20 and result.numbers["difference_peak_dbfs"] <= -200.0
    assert result.numbers["device_rms_dbfs"] == result.numbers["model_rms_dbfs"] > -60.0  # not a null of two silences
    assert np.max(np.abs(result.device - result.model)) < 1e-12  # the aligner's float64 identity, to rounding
    alignment = result.numbers["take"]["alignment"]
    assert abs(alignment["latency_samples"]) < 1e-6 and abs(alignment["gain_db"]) < 1e-6
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == sorted(FILES)
    written, rate = sf.read(tmp_path / "ab" / "difference.wav", dtype="float32")
    assert rate == RATE and len(written) == len(result.device) and np.max(np.abs(written)) < 1e-12
    numbers = json.loads((tmp_path / "ab" / "ab.json").read_text())
    assert numbers["model_knobs"] == {"drive": 7.0, "tone": 3.0} and numbers["setting"]["level"] == OD3.knob("level").default
    assert [s["source"] for s in numbers["switches"]] == ["A", "B"] and numbers["switches"][1]["start_s"] == 4.0
    assert numbers["seconds"] == pytest.approx(len(result.device) / RATE)


def test_alternate_switches_every_few_seconds_with_crossfades_that_do_not_click():
    rate, n = 1000, 10_500
    a, b = np.full(n, 0.5, np.float32), np.full(n, -0.5, np.float32)
    mixed, stretches = alternate(a, b, rate, switch_seconds=4.0, crossfade_seconds=0.02)
    assert [(s["start_s"], s["end_s"], s["source"]) for s in stretches] == [(0.0, 4.0, "A"), (4.0, 8.0, "B"), (8.0, 10.5, "A")]
    for start, stop, value in ((0, 3990, 0.5), (4010, 7990, -0.5), (8010, n, 0.5)):
        np.testing.assert_array_equal(mixed[start:stop], value)
    assert np.max(np.abs(np.diff(mixed))) < 1.0 * np.pi / 20 + 1e-6  # a 20-sample raised cosine, never a jump of 1
    assert mixed[4000] == pytest.approx(0.0, abs=0.1) and mixed[8000] == pytest.approx(0.0, abs=0.1)  # centred on the switch


def test_a_model_the_device_cannot_play_and_bad_settings_are_one_line_errors(od3_run, tmp_path):
    la2a_run = make_dummy_run(tmp_path / "la2a", num_knobs=1, sample_rate=RATE, knobs=[OD3.knob("drive")])
    la2a = SimBackend("LA-2A", RATE)
    with pytest.raises(ModelError, match=r"the model's knobs \(drive\) are not knobs of LA-2A .*drive missing"):
        ab_compare(la2a_run, la2a, tmp_path / "x")
    with pytest.raises(CaptureError, match="OD-3 has no knob 'volume'"):
        ab_compare(od3_run, ModelDevice(od3_run), tmp_path / "x", ["volume=3"])
    with pytest.raises(CaptureError, match="model runs at 48000 Hz but the device at 44100 Hz"):
        ab_compare(od3_run, SimBackend("OD-3", 44100), tmp_path / "x")
    with pytest.raises(ModelError, match="--switch must be a positive"):
        ABConfig(switch_seconds=0)
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def od3_trained(tmp_path_factory):
    """A Concat-GRU briefly trained on a small capture of the virtual OD-3 (DRIVE 0 and 10; a short
    signal, a contiguous test stretch that is one segment) and evaluated; its test passage as a WAV."""
    from fxcap.modeling.compute_context import compute_context
    from fxcap.modeling.evaluate import evaluate_run
    from fxcap.modeling.registry import ModelConfig
    from fxcap.modeling.train import TrainConfig, train

    root = tmp_path_factory.mktemp("od3")
    sim = SimBackend("OD-3", RATE, seed=3)
    signal = wrap_program(band_mix(RATE, 10.0, np.random.default_rng(5)), RATE, peak_dbfs=-3.0, preset="short")
    plan = PlanConfig(knobs=["drive"], steps=2)
    session = record_session(root / "session", sim, signal, plan_to_dict(plan, make_plan(OD3, plan)))
    split = SplitConfig(train=0.5, valid=0.1, test=0.4, segment_seconds=4.0, mode="contiguous")
    build_dataset([session.root], root / "dataset", BuildConfig(split=split, write_wav=False))
    with compute_context(threads=1):
        train(root / "dataset", ModelConfig(cond="concat", cell="gru", num_knobs=1, hidden_size=8), root / "run",
              TrainConfig(window=1024, batch_size=4, steps_per_epoch=40, max_epochs=1, valid_windows=8, threads=1))
        evaluate_run(root / "run")
    test = SequenceDataset(root / "dataset", "test")
    first = [i for i in range(len(test)) if test.row(i)["knob_drive_raw"] == 0.0]
    assert len(first) == 1  # one contiguous test segment per setting: the same input for both settings
    sf.write(root / "passage.wav", test[first[0]][0].numpy(), RATE, subtype="FLOAT")
    return root


@pytest.mark.parametrize("drive", [0.0, 10.0])
def test_against_the_virtual_od3_the_ab_esr_is_the_evaluations(od3_trained, tmp_path, drive):
    """The device's aligned take over the run's test passage, against the model at the same setting,
    scores what `fxcap evaluate` scored on the same audio (the evaluation starts the segment from a zero
    state, the A/B from the framed signal's silence; the device is the same virtual rig, seed 3)."""
    from fxcap.modeling.compute_context import compute_context

    with compute_context(threads=1):
        result = ab_compare(od3_trained / "run", SimBackend("OD-3", RATE, seed=3), tmp_path / "ab", [f"drive={drive:g}"],
                            passage=od3_trained / "passage.wav")
    evaluation = result.numbers["evaluation"]
    assert [row["split"] for row in evaluation] == ["test"]
    assert result.numbers["esr"] == pytest.approx(evaluation[0]["esr"], rel=0.1), (result.numbers["esr"], evaluation)
    assert result.numbers["take"]["failed_checks"] == []
    # the device's level is the dataset's (referred to the bypass take): a wrong gain moves the ESR of this
    # model (louder than the device) by far more than the tolerance
    louder = 10 ** (1.0 / 20) * result.device
    from fxcap.dsp.esr import esr

    assert abs(esr(result.model, louder) - evaluation[0]["esr"]) > 0.1 * evaluation[0]["esr"]
