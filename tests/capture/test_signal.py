import json

import numpy as np
import pytest

from fxcap.capture.layout import TRAINABLE_KINDS, audio_sha256
from fxcap.capture.markers import sync_marker
from fxcap.capture.signal import (
    CALIBRATION_HZ,
    SIGNAL_VERSION,
    SUPPORTED_RATES,
    SignalConfig,
    generate_signal,
    layout_path,
    load_signal,
    save_signal,
    wrap_program,
)
from fxcap.errors import FxcapError


@pytest.fixture(scope="module")
def short48():
    return generate_signal(SignalConfig(sample_rate=48000, preset="short"))


def assert_tiles(layout, n):
    """Regions are in order, contiguous, non-overlapping and cover exactly [0, n)."""
    assert layout.regions[0].start == 0
    for before, after in zip(layout.regions, layout.regions[1:]):
        assert before.stop == after.start
    assert layout.regions[-1].stop == n == layout.length
    names = [r.name for r in layout.regions]
    assert len(set(names)) == len(names)


def test_same_config_same_bytes_and_hash(short48):
    again = generate_signal(SignalConfig(sample_rate=48000, preset="short"))
    assert again.audio.tobytes() == short48.audio.tobytes()
    assert again.layout.sha256 == short48.layout.sha256 == audio_sha256(short48.audio)
    other = generate_signal(SignalConfig(sample_rate=48000, preset="short", seed=1))
    assert other.layout.sha256 != short48.layout.sha256
    # The seed changes the music and noise, not the layout.
    assert [(r.name, r.start, r.stop) for r in other.layout.regions] == [(r.name, r.start, r.stop) for r in short48.layout.regions]


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_every_rate_tiles_and_hits_the_peak(rate):
    sig = generate_signal(SignalConfig(sample_rate=rate, preset="short", peak_dbfs=-6.0))
    assert sig.audio.dtype == np.float32 and sig.audio.ndim == 1
    assert sig.layout.sample_rate == rate and sig.layout.version == SIGNAL_VERSION
    assert_tiles(sig.layout, len(sig.audio))
    assert float(np.max(np.abs(sig.audio))) == pytest.approx(10 ** (-6 / 20), abs=1e-6)
    assert 20.0 <= sig.duration <= 32.0
    assert sig.layout.extra["sweep_f2_hz"] <= 0.45 * rate
    kinds = [r.kind for r in sig.layout.regions]
    assert kinds[0] == "sync_start" and kinds[-2:] == ["sync_end", "gap"]


def test_regions_hold_what_they_say(short48):
    sig, fs = short48, 48000
    layout = sig.layout
    region = lambda name: sig.audio[layout.region(name).start : layout.region(name).stop]  # noqa: E731
    peak = float(np.max(np.abs(sig.audio)))
    # Markers are the sync chirp at the signal's peak.
    marker = sync_marker(fs) * peak
    np.testing.assert_allclose(region("sync_start"), marker, atol=1e-6)
    np.testing.assert_allclose(region("sync_end"), marker, atol=1e-6)
    # Calibration: a steady 1 kHz sine, 6 dB below the peak.
    cal = region("calibration").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(cal * np.hanning(len(cal))))
    assert np.fft.rfftfreq(len(cal), 1 / fs)[np.argmax(spectrum)] == pytest.approx(CALIBRATION_HZ, abs=2)
    assert float(np.max(np.abs(cal))) == pytest.approx(peak * 10 ** (-6 / 20), rel=1e-4)
    # Silence and gaps are digital zero.
    assert not np.any(region("silence"))
    for r in layout.of_kind("gap"):
        assert not np.any(sig.audio[r.start : r.stop])
    # Validation copies: identical input, not silent, not trainable.
    a, b = region("validation_a"), region("validation_b")
    assert a.tobytes() == b.tobytes() and np.sqrt(np.mean(a.astype(float) ** 2)) > 0.01
    assert layout.region("validation_b").start > layout.region("bursts").stop
    # The material that stresses an overdrive and a compressor is all there, at several levels.
    names = {r.name for r in layout.regions}
    assert {"plucks", "chords", "bass", "drums", "mix", "level_steps", "bursts"} <= names
    assert len(layout.of_kind("sweep")) >= 2 and len(layout.of_kind("noise")) >= 4
    noise_peaks = sorted(round(20 * np.log10(np.max(np.abs(sig.audio[r.start : r.stop])) / peak)) for r in layout.of_kind("noise"))
    assert noise_peaks[0] <= -20 and noise_peaks[-1] == 0
    for r in layout.regions:
        if r.kind in TRAINABLE_KINDS:
            assert np.max(np.abs(sig.audio[r.start : r.stop])) > 0.001, r.name


def test_program_material_has_dynamics(short48):
    sig = short48
    steps = sig.audio[sig.layout.region("level_steps").start : sig.layout.region("level_steps").stop].astype(float)
    frame = 480
    rms = np.sqrt((steps[: len(steps) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1))
    levels = 20 * np.log10(rms[rms > 0] / rms.max())
    assert levels.min() < -25 and np.mean(levels > -1.5) > 0.2  # loud and -30 dB stretches


def test_default_preset_is_about_three_minutes():
    sig = generate_signal(SignalConfig(sample_rate=44100))
    assert 150 <= sig.duration <= 210
    assert_tiles(sig.layout, len(sig.audio))
    assert float(np.max(np.abs(sig.audio))) == pytest.approx(10 ** (-3 / 20), abs=1e-6)


@pytest.mark.parametrize(
    "config, match",
    [
        (SignalConfig(sample_rate=22050), "44100"),
        (SignalConfig(sample_rate=48000, preset="long"), "short"),
        (SignalConfig(sample_rate=48000, peak_dbfs=3.0), "dBFS"),
        (SignalConfig(sample_rate=48000, seed=-1), "seed"),
    ],
)
def test_bad_config_is_refused_clearly(config, match):
    with pytest.raises(FxcapError, match=match):
        generate_signal(config)


def _user_program(fs, seconds=10.0):
    t = np.arange(int(seconds * fs)) / fs
    left = 0.4 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    right = 0.2 * np.sin(2 * np.pi * 220 * t)
    return np.stack([left, right], axis=1).astype(np.float32)


def test_wrap_program_frames_user_audio():
    fs = 48000
    audio = _user_program(fs)
    mono = audio.astype(np.float64).mean(axis=1)
    sig = wrap_program(audio, fs, source="di.wav")
    layout = sig.layout
    assert_tiles(layout, len(sig.audio))
    assert [r.kind for r in layout.regions if r.kind != "gap"] == [
        "sync_start", "calibration", "silence", "validation", "program", "validation", "sync_end"
    ]
    assert layout.source == "di.wav" and layout.preset == "program"
    # Peak None: the program keeps its own level; markers are scaled to it.
    assert float(np.max(np.abs(sig.audio))) == pytest.approx(np.max(np.abs(mono)), rel=1e-6)
    a = sig.audio[layout.region("validation_a").start : layout.region("validation_a").stop]
    b = sig.audio[layout.region("validation_b").start : layout.region("validation_b").stop]
    assert a.tobytes() == b.tobytes()
    # Validation is the start of the program; the program region is the rest, sample for sample.
    n_val = len(a)
    np.testing.assert_allclose(a[500:-500], mono[500 : n_val - 500], atol=1e-6)
    prog = sig.audio[layout.region("program").start : layout.region("program").stop]
    assert len(prog) == len(mono) - n_val
    np.testing.assert_allclose(prog[500:-500], mono[n_val + 500 : -500], atol=1e-6)
    # An explicit peak rescales everything together.
    hot = wrap_program(audio[:, 0], fs, peak_dbfs=-1.0)
    assert float(np.max(np.abs(hot.audio))) == pytest.approx(10 ** (-1 / 20), abs=1e-6)


@pytest.mark.parametrize(
    "audio, kwargs, match",
    [
        (np.zeros(48000 * 5), {}, "silent"),
        (np.full(48000, 0.1), {}, "at least 3 s"),
        (np.full(48000 * 5, 1.5), {}, "peak level"),
        (np.full(48000 * 5, np.nan), {}, "NaN"),
        (np.zeros((48000 * 5, 2, 2)), {}, "shape"),
    ],
)
def test_wrap_program_refuses_bad_material(audio, kwargs, match):
    with pytest.raises(FxcapError, match=match):
        wrap_program(audio, 48000, **kwargs)
    with pytest.raises(FxcapError, match="sample rate"):
        wrap_program(np.ones(48000 * 5) * 0.1, 32000)


def test_save_load_round_trip(tmp_path, short48):
    path = save_signal(short48, tmp_path / "signal.wav")
    assert layout_path(path) == tmp_path / "signal.json"
    data = json.loads(layout_path(path).read_text())
    assert data["regions"][1]["start_s"] == pytest.approx(short48.layout.regions[1].start / 48000)
    loaded = load_signal(path)
    assert loaded.audio.tobytes() == short48.audio.tobytes()
    assert loaded.layout.to_dict() == short48.layout.to_dict()
    assert not list(tmp_path.glob("*.tmp"))


def test_load_refuses_mismatched_or_missing_layout(tmp_path, short48):
    path = save_signal(short48, tmp_path / "signal.wav")
    other = generate_signal(SignalConfig(sample_rate=48000, preset="short", seed=5))
    save_signal(other, tmp_path / "other.wav")
    layout_path(path).write_text(layout_path(tmp_path / "other.wav").read_text())
    with pytest.raises(FxcapError, match="does not match"):
        load_signal(path)
    layout_path(path).unlink()
    with pytest.raises(FxcapError, match="missing"):
        load_signal(path)
    with pytest.raises(FxcapError, match=".wav"):
        save_signal(short48, tmp_path / "signal.flac")
