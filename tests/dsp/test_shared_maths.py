"""fxcap.dsp: the one definition of the shared signal maths, and the stages that use it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fxcap.dsp.esr import ESR_EPSILON, esr
from fxcap.dsp.levels import amp_to_db, db_to_amp, power_to_db, rms, rms_dbfs
from fxcap.dsp.synth import karplus_strong


def test_esr_definition_argument_order_and_epsilon():
    target = np.array([1.0, -1.0, 1.0, -1.0])
    estimate = 0.5 * target
    assert esr(estimate, target) == pytest.approx(1.0 / (4.0 + ESR_EPSILON))  # error energy 1, target energy 4
    assert esr(target, estimate) == pytest.approx(1.0 / 1.0)  # not symmetric: the target's energy divides
    assert esr(np.zeros(3), np.zeros(3)) == 0.0
    assert esr(np.ones(2), np.zeros(2)) == pytest.approx(2.0 / ESR_EPSILON)  # silent target: finite
    assert esr(np.float32([0.5, 0.25]), np.float64([0.5, 0.25])) == 0.0  # any float dtype, float64 inside
    with pytest.raises(ValueError, match="shapes differ"):
        esr(np.zeros(3), np.zeros(4))


def test_every_stage_scores_with_the_same_esr():
    from fxcap.capture.checks import repeatability_esr
    from fxcap.capture.layout import Region, SignalLayout
    from fxcap.modeling.metrics import esr as metric_esr

    rng = np.random.default_rng(0)
    a = rng.standard_normal(400)
    b = a + 0.1 * rng.standard_normal(400)
    assert metric_esr(b, a) == esr(b, a)
    layout = SignalLayout(version="1", sample_rate=1000, length=800, peak_dbfs=0.0, preset="short",
                          regions=[Region("validation_a", "validation", 0, 400, ""), Region("validation_b", "validation", 400, 800, "")])
    assert repeatability_esr(np.concatenate([a, b]), layout) == esr(b, a)  # second pass against the first


def test_levels_round_trip():
    assert db_to_amp(amp_to_db(0.5)) == pytest.approx(0.5)
    assert amp_to_db(0.0) == -240.0 and power_to_db(100.0) == pytest.approx(20.0)
    sine = np.sin(2 * np.pi * np.arange(4800) / 48)
    assert rms(sine) == pytest.approx(2 ** -0.5) and rms_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)


def test_karplus_strong_rings_at_its_delay_and_decays():
    excitation = np.random.default_rng(1).uniform(-1, 1, 100)
    note = karplus_strong(excitation, 8000, 99.5, 0.99)  # period delay + 0.5 = 100 samples
    spectrum = np.abs(np.fft.rfft(note[2000:6000] * np.hanning(4000)))
    assert np.argmax(spectrum) * 8000 / 4000 == pytest.approx(8000 / 100, rel=0.05)  # fundamental at fs / 100
    assert rms(note[-1000:]) < 0.5 * rms(note[:1000])


def test_newest_dataset_is_found_in_one_place(tmp_path):
    from fxcap.dataset.find import datasets_newest_first, newest_dataset
    from fxcap.errors import DatasetError

    with pytest.raises(DatasetError, match="no dataset under"):
        newest_dataset(tmp_path)
    for age, name in ((200, "old"), (100, "new")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text("{}")
        os.utime(tmp_path / name / "dataset.json", (1e9 - age, 1e9 - age))
    (tmp_path / "not-a-dataset").mkdir()
    assert newest_dataset(tmp_path).name == "new"
    assert [p.name for p in datasets_newest_first(tmp_path)] == ["new", "old"]
    assert datasets_newest_first(tmp_path / "missing") == []
