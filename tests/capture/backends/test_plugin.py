"""The plugin backend on pedalboard's built-in effects (and the external-parameter mapping)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.extras import require

pedalboard = require("pedalboard", "plugins")

from fxcap.capture.backends.plugin import (  # noqa: E402
    BUILTIN_PARAMETERS,
    PluginBackend,
    builtin_profile,
    external_profile,
)
from fxcap.errors import DeviceNotFoundError  # noqa: E402

RATE = 48000


def noise(seconds: float = 0.5, level: float = 0.3, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


@pytest.mark.parametrize("name", [n for n in BUILTIN_PARAMETERS if hasattr(pedalboard, n)])
def test_every_builtin_maps_to_valid_knobs_with_the_plugins_defaults(name):
    plugin, profile, setters = builtin_profile(name, RATE)
    fresh = getattr(pedalboard, name)()
    assert set(setters) == set(profile.knob_names)
    for knob in profile.knobs:
        current = getattr(fresh, knob.name)
        if knob.is_switch:
            assert knob.default == (current.name if hasattr(current, "name") else ("on" if current else "off"))
        else:
            assert knob.default == pytest.approx(float(current), rel=1e-6)
        # both ends of every range are accepted by the plugin itself
        for value in (knob.values or (knob.minimum, knob.maximum)):
            setters[knob.name](plugin, value)


def test_distortion_knob_range_and_output_is_tanh_of_drive():
    backend = PluginBackend.from_spec("Distortion", RATE)
    drive = backend.profile.knob("drive_db")
    assert (drive.minimum, drive.maximum, drive.default, drive.unit) == (0.0, 50.0, 25.0, "dB")
    x = noise()
    take = backend.play_record(x, {"drive_db": 12})
    assert take.recorded.shape == (len(x) + RATE // 2,)
    np.testing.assert_allclose(take.recorded[: len(x)], np.tanh(x * 10 ** (12 / 20)), atol=2e-6)
    assert np.all(take.recorded[len(x) :] == 0)
    assert take.info["knobs_set"] == {"drive_db": 12.0}


def test_a_setting_changes_the_output_and_the_same_setting_repeats_exactly():
    backend = PluginBackend.from_spec("compressor", RATE, tail_seconds=0.1)
    x = noise(1.0)
    gentle = backend.play_record(x, {"threshold_db": -10, "ratio": 2}).recorded
    hard = backend.play_record(x, {"threshold_db": -40, "ratio": 20}).recorded
    again = backend.play_record(x, {"threshold_db": -10, "ratio": 2}).recorded
    assert np.array_equal(gentle, again)  # reset between takes: no state leaks
    rms = lambda a: float(np.sqrt(np.mean(a[RATE // 2 : RATE] ** 2)))  # noqa: E731
    assert rms(hard) < 0.5 * rms(gentle)
    defaults = backend.play_record(x, {}).recorded  # ratio 1 by default: no compression
    np.testing.assert_allclose(defaults[: len(x)], x, atol=1e-6)


def test_block_wise_processing_equals_one_call_and_keeps_the_tail():
    x = noise(0.7, seed=3)
    backend = PluginBackend.from_spec("Delay", RATE, tail_seconds=0.3, block_size=4099)
    take = backend.play_record(x, {"delay_seconds": 0.25, "feedback": 0.3, "mix": 0.5})
    reference = pedalboard.Delay(delay_seconds=0.25, feedback=0.3, mix=0.5)
    padded = np.concatenate([x, np.zeros(int(0.3 * RATE), np.float32)])
    np.testing.assert_allclose(take.recorded, reference.process(padded, RATE), atol=1e-6)
    assert np.max(np.abs(take.recorded[len(x) :])) > 0.01  # the echo rings on after the signal


def test_switches_enum_and_stereo_mode():
    backend = PluginBackend.from_spec("LadderFilter", RATE, stereo=True, tail_seconds=0)
    mode = backend.profile.knob("mode")
    assert mode.values == tuple(pedalboard.LadderFilter.Mode.__members__) and mode.default == "LPF12"
    x = noise(0.3)
    low = backend.play_record(x, {"mode": "LPF24", "cutoff_hz": 300}).recorded
    high = backend.play_record(x, {"mode": "HPF24", "cutoff_hz": 300}).recorded
    assert backend.plugin.mode == pedalboard.LadderFilter.Mode.HPF24
    spectrum = lambda a: np.abs(np.fft.rfft(a))  # noqa: E731
    split = int(300 / RATE * len(x)) * 4  # 1.2 kHz
    assert spectrum(low)[split:].sum() < spectrum(high)[split:].sum()


def test_calibration_take_is_the_identity():
    backend = PluginBackend.from_spec("Reverb", RATE, tail_seconds=0.2)
    x = noise(0.2)
    take = backend.calibration_take(x)
    assert np.array_equal(take.recorded[: len(x)], x) and not take.recorded[len(x) :].any()
    assert take.events == [] and take.loopback is None


def test_unknown_builtin_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="Distortion"):
        PluginBackend.from_spec("Fuzzbox", RATE)
    with pytest.raises(DeviceNotFoundError, match="does not exist"):
        PluginBackend.from_spec(str(tmp_path / "Nope.vst3"), RATE)
    broken = tmp_path / "Broken.vst3"
    broken.write_bytes(b"not a plugin")
    with pytest.raises(DeviceNotFoundError, match="cannot load"):
        PluginBackend.from_spec(str(broken), RATE)


class FakeParameter:
    """The attributes of pedalboard's AudioProcessorParameter that the mapping reads."""

    def __init__(self, kind, ranges, default_raw, label=None):
        self.type = kind
        self.ranges = ranges
        self.valid_values = list(ranges.values())
        self.default_raw_value = default_raw
        self.label = label
        floats = [v for v in ranges.values() if isinstance(v, float)]
        self.min_value = min(floats) if floats else None
        self.max_value = max(floats) if floats else None


def test_external_parameters_become_knobs_and_switches():
    steps = {(i / 10, (i + 1) / 10): -30.0 + 3 * i for i in range(10)}  # -30..-3 dB
    parameters = {
        "threshold": FakeParameter(float, steps, 0.55, label="dB"),
        "bypass": FakeParameter(bool, {(0.0, 0.5): False, (0.5, 1.0): True}, 0.0),
        "mode": FakeParameter(str, {(0.0, 0.33): "soft", (0.33, 0.66): "hard", (0.66, 1.0): "fold"}, 0.7),
        "constant": FakeParameter(float, {(0.0, 1.0): 1.0}, 0.0),
    }
    profile, setters = external_profile("My Comp", parameters)
    threshold, bypass, mode = profile.knobs
    assert (threshold.minimum, threshold.maximum, threshold.default, threshold.unit) == (-30.0, -3.0, -15.0, "dB")
    assert bypass.values == ("off", "on") and bypass.default == "off"
    assert mode.values == ("soft", "hard", "fold") and mode.default == "fold"
    assert profile.knob_names == ["threshold", "bypass", "mode"]  # the constant one is left out

    class Target:
        pass

    target = Target()
    for name, value in {"threshold": -6, "bypass": "on", "mode": "hard"}.items():
        setters[name](target, value)
    assert (target.threshold, target.bypass, target.mode) == (-6.0, True, "hard")
