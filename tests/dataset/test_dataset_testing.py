import numpy as np

from fxcap.capture.layout import REGION_KINDS, audio_sha256
from fxcap.capture.profiles import LA2A, OD3
from fxcap.capture.session import Session
from fxcap.dataset.testing import dummy_device, make_dummy_session, make_dummy_signal


def test_dummy_signal_has_every_region_kind_and_identical_validation_copies():
    signal = make_dummy_signal(44100, 3.0, seed=1)
    layout = signal.layout
    assert {r.kind for r in layout.regions} == set(REGION_KINDS)
    assert layout.length == len(signal.audio) == 3 * 44100
    assert layout.regions[-1].stop == layout.length
    a, b = layout.region("validation_a"), layout.region("validation_b")
    np.testing.assert_array_equal(signal.audio[a.start:a.stop], signal.audio[b.start:b.stop])
    silence = layout.region("silence")
    assert not signal.audio[silence.start:silence.stop].any()
    assert layout.sha256 == audio_sha256(signal.audio)
    assert layout.sha256 == make_dummy_signal(44100, 3.0, seed=1).layout.sha256
    assert layout.sha256 != make_dummy_signal(44100, 3.0, seed=2).layout.sha256


def test_every_dummy_knob_changes_the_sound_and_outputs_can_exceed_full_scale():
    x = make_dummy_signal(48000, 2.0).audio
    base = dummy_device(x, [0.0, 0.0, 0.0], 48000)
    for k in range(3):
        knobs = [0.0, 0.0, 0.0]
        knobs[k] = 1.0
        assert not np.allclose(dummy_device(x, knobs, 48000), base)
    assert np.max(np.abs(dummy_device(x, [1.0, 1.0, 1.0], 48000))) > 1.0


def test_dummy_session_is_a_valid_session_folder(tmp_path):
    session = make_dummy_session(tmp_path / "s", device_profile=LA2A, seconds=2.0, sample_rate=44100, failed_takes=[2])
    reopened = Session.open(tmp_path / "s")
    assert reopened.manifest.status == "complete"
    assert [t.knobs["mode"] for t in reopened.takes] == ["compress", "limit", "compress", "limit"]
    assert [t.passed for t in reopened.takes] == [True, True, False, True]
    take = reopened.takes[0]
    assert len(reopened.take_output(take)) == len(reopened.input_audio()) == reopened.layout.length
    assert len(reopened.take_raw(take)) == reopened.layout.length + take.alignment.latency_samples - 48
    assert take.check("noise_floor").value < -80
    assert 0 <= take.check("repeatability").value < 1e-3
    assert (tmp_path / "s" / "calibration" / "raw.wav").is_file()
    assert session.manifest.signal["sha256"] == reopened.layout.sha256


def test_default_grid_and_defaults_for_other_knobs(tmp_path):
    session = make_dummy_session(tmp_path / "s", device_profile=OD3, seconds=1.0)
    assert [(t.knobs["tone"], t.knobs["drive"], t.knobs["level"]) for t in session.takes] == [
        (0.0, 0.0, 5.0), (0.0, 10.0, 5.0), (10.0, 0.0, 5.0), (10.0, 10.0, 5.0)]
