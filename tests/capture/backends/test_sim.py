import json

import numpy as np
import pytest

from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.markers import sync_marker
from fxcap.capture.virtual import RigImpairments, apply_rig, build_virtual_device
from fxcap.errors import CaptureError, DeviceNotFoundError

FS = 48000


@pytest.fixture(scope="module")
def signal():
    """A small capture-like signal: marker, a tone, a gap, the marker again."""
    marker = sync_marker(FS) * 0.7
    t = np.arange(FS // 2) / FS
    body = 0.5 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, 4 * t)
    return np.concatenate([marker, np.zeros(2000), body, np.zeros(2000), marker, np.zeros(4000)]).astype(np.float32)


QUIET = RigImpairments(latency_samples=123.37, gain_db=-2.0, polarity=-1, noise_dbfs=None, hum_dbfs=None, tail_samples=300)


def test_play_record_is_device_then_rig(signal):
    backend = SimBackend("OD-3", FS, impairments=QUIET)
    assert isinstance(backend, Backend) and backend.name == "sim" and backend.profile.name == "OD-3"
    take = backend.play_record(signal, {"drive": 7})
    assert isinstance(take, RawTake) and take.sample_rate == FS and take.events == []
    assert take.played.tobytes() == signal.tobytes()
    expected = apply_rig(build_virtual_device("OD-3", FS).process(signal, {"drive": 7}), QUIET, FS)
    np.testing.assert_array_equal(take.recorded, expected)
    assert len(take.recorded) == len(signal) + 124 + 300


def test_calibration_take_bypasses_the_device(signal):
    backend = SimBackend("LA-2A", FS, impairments=QUIET)
    take = backend.calibration_take(signal)
    np.testing.assert_array_equal(take.recorded, apply_rig(signal, QUIET, FS))
    assert backend.calls == 0  # calibration is not a take attempt


def test_hidden_latency_is_where_the_markers_say(signal):
    backend = SimBackend("OD-3", FS, seed=11)
    take = backend.calibration_take(signal)
    marker = sync_marker(FS)
    corr = np.correlate(take.recorded[:20000].astype(np.float64), marker, mode="valid")
    lag = int(np.argmax(np.abs(corr)))
    assert abs(lag - backend.impairments.latency_samples) <= 1
    assert np.sign(corr[lag]) == backend.impairments.polarity


def test_describe_hides_the_rig():
    backend = SimBackend("od3", seed=3)
    text = json.dumps(backend.describe())
    rig = backend.impairments
    for value in (rig.latency_samples, rig.gain_db, rig.noise_dbfs, rig.drift_ppm):
        assert f"{value:.3f}"[:6] not in text
    assert "latency" not in text and "seed" not in text
    assert backend.describe()["device"] == "OD-3" and backend.describe()["name"] == "sim"


def test_random_rig_follows_the_seed():
    assert SimBackend(seed=4).impairments == SimBackend(seed=4).impairments
    assert SimBackend(seed=4).impairments != SimBackend(seed=5).impairments


def test_takes_are_independent_but_noisy(signal):
    backend = SimBackend("LA-2A", FS, seed=2)
    first = backend.play_record(signal, {"peak_reduction": 80})
    second = backend.play_record(signal, {"peak_reduction": 80})
    assert first.info["call"] == 1 and second.info["call"] == 2
    difference = first.recorded.astype(np.float64) - second.recorded
    noise_rms = 10 ** (backend.impairments.noise_dbfs / 20)
    # Same device state at the start of every take: the takes differ by fresh noise (and hum) only.
    assert 0 < np.sqrt(np.mean(difference**2)) < 3 * noise_rms
    quiet = SimBackend("LA-2A", FS, impairments=QUIET)
    a, b = (quiet.play_record(signal, {"peak_reduction": 80}).recorded for _ in range(2))
    np.testing.assert_array_equal(a, b)


def test_fault_plan_by_take_number(signal):
    backend = SimBackend("OD-3", FS, seed=1, fault_plan={2: "clip", 4: {"fault": "dropout", "dropout_at_s": 0.3}, 5: "xrun"})
    peaks = []
    for call in range(1, 6):
        take = backend.play_record(signal, {})
        peaks.append(float(np.max(np.abs(take.recorded))))
        if call == 4:
            start = int(0.3 * FS)
            assert not np.any(take.recorded[start : start + int(0.05 * FS)])
        assert take.events == (["input overflow"] if call == 5 else [])
    assert peaks[1] == 1.0 and np.mean(np.abs(backend.play_record(signal, {}).recorded) == 1.0) == 0
    assert all(p < 0.9 for i, p in enumerate(peaks) if i != 1)  # the re-take (call 3) is clean


def test_fault_plan_callable_sees_call_and_knobs(signal):
    seen = []

    def plan(call, knobs):
        seen.append((call, knobs["drive"]))
        return "silence" if knobs["drive"] == 10 else None

    backend = SimBackend("OD-3", FS, impairments=RigImpairments(noise_dbfs=-80.0), fault_plan=plan)
    loud = backend.play_record(signal, {"drive": 10}).recorded.astype(np.float64)
    normal = backend.play_record(signal, {"drive": 5}).recorded
    assert seen == [(1, 10.0), (2, 5.0)]
    assert 20 * np.log10(np.sqrt(np.mean(loud**2))) == pytest.approx(-80, abs=0.5)
    assert np.max(np.abs(normal)) > 0.05


def test_loopback_and_bad_requests(signal):
    backend = SimBackend("OD-3", FS, impairments=QUIET, loopback=True)
    take = backend.play_record(signal, {})
    np.testing.assert_array_equal(take.loopback, apply_rig(signal, QUIET, FS))
    with pytest.raises(CaptureError, match="clip, dropout, silence, xrun"):
        SimBackend("OD-3", FS, fault_plan={1: "smoke"}).play_record(signal, {})
    with pytest.raises(CaptureError, match="bad simulated fault"):
        SimBackend("OD-3", FS, fault_plan={1: {"colour": "red"}}).play_record(signal, {})
    with pytest.raises(CaptureError, match="drive"):
        backend.play_record(signal, {"drive": 11})
    with pytest.raises(CaptureError, match="mono"):
        backend.play_record(np.zeros((10, 2)), {})
    with pytest.raises(DeviceNotFoundError):
        SimBackend("fuzz")
    with pytest.raises(CaptureError, match="Hz"):
        SimBackend(build_virtual_device("OD-3", 44100), 48000)


def _marker_position(recording, marker, around, search=600):
    """Sub-sample position of ``marker`` in ``recording`` near ``around`` (band-limited peak)."""
    lo = max(int(around) - search, 0)
    window = recording[lo : lo + 2 * search + len(marker)].astype(np.float64)
    corr = np.correlate(window, marker, mode="valid")
    k = int(np.argmax(corr))
    near = corr[k - 32 : k + 33]  # the correlation is band-limited: sinc-interpolate it 100x
    fine = np.fft.irfft(np.fft.rfft(near), len(near) * 100) * 100
    return lo + k - 32 + np.argmax(fine[: 65 * 100 - 99]) / 100


def test_hidden_drift_moves_the_end_marker():
    from fxcap.capture.signal import SignalConfig, generate_signal

    sig = generate_signal(SignalConfig(sample_rate=FS, preset="short"))
    rig = RigImpairments(latency_samples=123.37, drift_ppm=20.0, noise_dbfs=-90.0)
    take = SimBackend("OD-3", FS, impairments=rig).calibration_take(sig.audio)
    marker = sync_marker(FS)
    end = sig.layout.region("sync_end").start
    start_pos = _marker_position(take.recorded, marker, 123)
    end_pos = _marker_position(take.recorded, marker, end + 123)
    # A stretched linear chirp correlates a little late (its centre moves, and delay couples with
    # the frequency scaling): about 0.2 samples at 20 ppm, the same at both markers.
    assert start_pos == pytest.approx(123.37, abs=0.3)
    assert ((end_pos - start_pos) / end - 1) * 1e6 == pytest.approx(20.0, abs=0.1)
    without = SimBackend("OD-3", FS, impairments=RigImpairments(latency_samples=123.37, noise_dbfs=-90.0)).calibration_take(sig.audio)
    assert _marker_position(without.recorded, marker, 123) == pytest.approx(123.37, abs=0.01)
    assert _marker_position(without.recorded, marker, end + 123) - end == pytest.approx(123.37, abs=0.01)
