import numpy as np
import pytest

from fxcap.capture.profiles import LA2A, OD3
from fxcap.capture.virtual import VIRTUAL_DEVICES, LA2ACompressor, OD3Overdrive, build_virtual_device
from fxcap.errors import CaptureError, DeviceNotFoundError


@pytest.mark.parametrize(
    "name, cls, profile",
    [("OD-3", OD3Overdrive, OD3), ("od3", OD3Overdrive, OD3), ("LA-2A", LA2ACompressor, LA2A), ("la2a", LA2ACompressor, LA2A)],
)
def test_build_by_forgiving_name(name, cls, profile):
    device = build_virtual_device(name, 44100)
    assert isinstance(device, cls) and device.profile is profile and device.sample_rate == 44100
    assert device.name in VIRTUAL_DEVICES


def test_unknown_device_lists_the_choices():
    with pytest.raises(DeviceNotFoundError, match="OD-3, LA-2A"):
        build_virtual_device("tubescreamer")


@pytest.mark.parametrize("name", list(VIRTUAL_DEVICES))
def test_block_processing_equals_one_shot(name):
    rng = np.random.default_rng(3)
    t = np.arange(48000) / 48000
    x = 0.5 * np.sin(2 * np.pi * 196 * t) * (t < 0.4) + 0.3 * rng.standard_normal(len(t)) * (t > 0.6)
    knobs = {"drive": 8, "tone": 7} if name == "OD-3" else {"peak_reduction": 80, "mode": "limit"}
    for rate in (48000, 96000):
        device = build_virtual_device(name, rate)
        whole = device.process(x, knobs)
        device.reset()
        cuts = np.sort(rng.choice(np.arange(1, len(x)), 12, replace=False))
        blocks = np.concatenate([device.process(part, knobs) for part in np.split(x, cuts)])
        assert whole.dtype == np.float32 and whole.shape == x.shape
        np.testing.assert_allclose(blocks, whole, atol=1e-6)
        device.reset()
        np.testing.assert_array_equal(device.process(x, knobs), whole)  # reset really resets


@pytest.mark.parametrize("name", list(VIRTUAL_DEVICES))
def test_bad_knobs_input_and_rate_are_refused(name):
    device = build_virtual_device(name)
    knob = device.profile.knobs[0].name
    with pytest.raises(CaptureError, match=knob):
        device.process(np.zeros(10), {knob: 1e6})
    with pytest.raises(CaptureError, match="no knob"):
        device.process(np.zeros(10), {"fuzz": 1})
    with pytest.raises(CaptureError, match="mono"):
        device.process(np.zeros((10, 2)), {})
    with pytest.raises(CaptureError, match="NaN"):
        device.process(np.array([0.0, np.nan]), {})
    with pytest.raises(CaptureError, match="Hz"):
        build_virtual_device(name, 8000)
