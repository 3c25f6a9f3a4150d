"""Knob probes on a real effect (pedalboard's Distortion and Compressor as the device)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.extras import require

require("pedalboard", "plugins")

from fxcap.capture.backends.plugin import PluginBackend  # noqa: E402
from fxcap.capture.probe import ProbeConfig, ProbeMonitor, confirm_setting, distance_db, fingerprint, probe_signal  # noqa: E402
from fxcap.errors import CaptureError  # noqa: E402

RATE = 48000
CONFIG = ProbeConfig(seconds=0.3)


@pytest.fixture
def distortion():
    return PluginBackend.from_spec("Distortion", RATE, tail_seconds=0.05)


def probe(backend, knobs, monitor, gain_db=0.0, noise_dbfs=None, seed=0):
    take = backend.play_record(monitor.signal, knobs)
    take.recorded = take.recorded * np.float32(10 ** (gain_db / 20))
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        take.recorded = take.recorded + (10 ** (noise_dbfs / 20) * rng.standard_normal(len(take.recorded))).astype(np.float32)
    return take


def test_probe_signal_is_fixed_with_a_loud_and_a_quiet_half():
    a, b = probe_signal(RATE, CONFIG), probe_signal(RATE, CONFIG)
    assert np.array_equal(a, b) and a.dtype == np.float32 and len(a) == int(0.3 * RATE)
    half = len(a) // 2
    assert np.max(np.abs(a)) == pytest.approx(10 ** (-6 / 20), rel=1e-6)
    ratio = np.sqrt(np.mean(a[half:] ** 2) / np.mean(a[:half] ** 2))
    assert 20 * np.log10(ratio) == pytest.approx(-20, abs=0.2)


def test_fingerprint_ignores_latency_and_sees_level(distortion):
    monitor = ProbeMonitor(distortion.profile, RATE, CONFIG)
    take = probe(distortion, {"drive_db": 10}, monitor)
    shifted = probe(distortion, {"drive_db": 10}, monitor)
    shifted.recorded = np.concatenate([np.zeros(333, np.float32), shifted.recorded])
    assert distance_db(fingerprint(take, CONFIG), fingerprint(shifted, CONFIG)) < 1e-6
    louder = probe(distortion, {"drive_db": 10}, monitor, gain_db=3)
    assert distance_db(fingerprint(take, CONFIG), fingerprint(louder, CONFIG)) == pytest.approx(3, abs=0.01)


def test_forgotten_knob_wrong_setting_and_drift_are_reported(distortion):
    monitor = ProbeMonitor(distortion.profile, RATE, CONFIG)
    noisy = dict(noise_dbfs=-80)
    for seed, drive in enumerate((10, 20)):
        assert monitor.judge({"drive_db": drive}, probe(distortion, {"drive_db": drive}, monitor, seed=seed, **noisy)).ok
    # the user was asked for 30 but left the knob at 20
    forgotten = monitor.judge({"drive_db": 30}, probe(distortion, {"drive_db": 20}, monitor, seed=5, **noisy))
    assert not forgotten.ok
    assert "previous setting (DRIVE_DB 20 dB)" in forgotten.warnings[0] and "DRIVE_DB really set to 30 dB" in forgotten.warnings[0]
    # fixed: the doubtful probe did not become the reference for 30
    assert monitor.judge({"drive_db": 30}, probe(distortion, {"drive_db": 30}, monitor, seed=6, **noisy)).ok
    # asked for 40, but the knob went back to 10
    wrong = monitor.judge({"drive_db": 40}, probe(distortion, {"drive_db": 10}, monitor, seed=7, **noisy))
    assert wrong.warnings == ["the device sounds like the earlier setting DRIVE_DB 10 dB; check the knobs"]
    assert wrong.nearest[0] == {"drive_db": 10.0} and wrong.nearest[1] < 0.1
    # the reference setting again: same response, then 2 dB weaker (a dying battery)
    same = monitor.judge({"drive_db": 10}, probe(distortion, {"drive_db": 10}, monitor, seed=8, **noisy))
    assert same.ok and same.drift_db < 0.1
    drifted = monitor.judge({"drive_db": 10}, probe(distortion, {"drive_db": 10}, monitor, gain_db=-2, seed=9, **noisy))
    assert drifted.drift_db == pytest.approx(2, abs=0.1) and "drifted" in drifted.warnings[-1]


def test_level_dependent_change_shows_in_the_quiet_half():
    backend = PluginBackend.from_spec("Compressor", RATE, tail_seconds=0.05)
    monitor = ProbeMonitor(backend.profile, RATE, CONFIG)
    base = {"threshold_db": -20, "ratio": 4}
    a = fingerprint(probe(backend, base, monitor), CONFIG)
    b = fingerprint(probe(backend, {**base, "threshold_db": -30}, monitor), CONFIG)
    bands = len(a) // 2
    loud, quiet = np.abs(a - b)[:bands].mean(), np.abs(a - b)[bands:].mean()
    assert loud > 1.0 and quiet < 0.5 * loud  # the quiet half stays below both thresholds


class StuckKnob(PluginBackend):
    """A device whose knob ignores the first ``stuck`` changes (a user who forgot to turn it)."""

    stuck = 0

    def set_knobs(self, knobs):
        if self.stuck and getattr(self, "_last", None) is not None:
            self.stuck -= 1
            return super().set_knobs(self._last)
        self._last = dict(knobs)
        return super().set_knobs(knobs)


def test_confirm_setting_asks_again_until_the_probe_agrees():
    backend = StuckKnob.from_spec("Distortion", RATE, tail_seconds=0.05)
    monitor = ProbeMonitor(backend.profile, RATE, CONFIG)
    lines, prompts = [], []
    ask = lambda prompt: prompts.append(prompt) or ""  # noqa: E731
    assert confirm_setting(backend, monitor, {"drive_db": 10}, ask, lines.append).ok
    backend.stuck = 1
    verdict = confirm_setting(backend, monitor, {"drive_db": 25}, ask, lines.append)
    assert verdict.ok and len(prompts) == 1 and lines[0].startswith("warning: the device sounds as it did")
    backend.stuck = 5
    with pytest.raises(CaptureError, match="after 3 probes"):
        confirm_setting(backend, monitor, {"drive_db": 40}, ask, lines.append)
    backend.stuck = 1
    kept = confirm_setting(backend, monitor, {"drive_db": 45}, lambda prompt: "keep", lines.append)
    assert not kept.ok  # accepted as is on the user's word
