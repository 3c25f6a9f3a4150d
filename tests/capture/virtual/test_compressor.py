import numpy as np

from fxcap.capture.virtual import LA2ACompressor

FS = 48000


def tone(amplitude=0.7, seconds=1.0, freq=1000.0):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * FS)) / FS)


def steady_reduction_db(knobs, amplitude=0.7):
    device = LA2ACompressor(FS)
    x = tone(amplitude)
    y = device.process(x, {"gain": 50, **knobs}).astype(np.float64)
    half = len(x) // 2
    return 20 * np.log10(np.sqrt(np.mean(x[half:] ** 2)) / np.sqrt(np.mean(y[half:] ** 2)))


def gain_track_db(knobs, segments):
    """Gain (dB, output over input) per 1 ms for a 1 kHz tone whose level follows ``segments``."""
    env = np.concatenate([np.full(int(s * FS), 10 ** (level / 20)) for level, s in segments])
    x = 0.7 * env * np.sin(2 * np.pi * 1000 * np.arange(len(env)) / FS)
    y = LA2ACompressor(FS).process(x, {"gain": 50, **knobs}).astype(np.float64)
    frames = len(x) // 48
    power = lambda a: np.sqrt((a[: frames * 48].reshape(frames, 48) ** 2).mean(axis=1))  # noqa: E731
    return 20 * np.log10(power(y) / power(x))


def test_peak_reduction_sets_the_amount():
    amounts = [steady_reduction_db({"peak_reduction": pr}) for pr in (0, 40, 60, 80, 100)]
    assert abs(amounts[0]) < 0.05  # fully counter-clockwise: no compression
    assert all(b > a + 2 for a, b in zip(amounts, amounts[1:])), amounts


def test_limit_squashes_harder_than_compress():
    for pr in (50, 75, 100):
        assert steady_reduction_db({"peak_reduction": pr, "mode": "limit"}) > steady_reduction_db({"peak_reduction": pr}) + 2
    # Ratio: 10 dB more input gives about 10/3 dB more output in compress mode, about 10/30 in limit.
    for mode, low, high in (("compress", 2.3, 4.5), ("limit", 0.0, 1.2)):
        loud = steady_reduction_db({"peak_reduction": 100, "mode": mode}, amplitude=0.7)
        soft = steady_reduction_db({"peak_reduction": 100, "mode": mode}, amplitude=0.7 / np.sqrt(10))
        assert low < 10 - (loud - soft) < high


def test_gain_is_makeup_gain():
    x = tone(0.1)
    quiet = LA2ACompressor(FS).process(x, {"gain": 50, "peak_reduction": 0})
    loud = LA2ACompressor(FS).process(x, {"gain": 70, "peak_reduction": 0})
    np.testing.assert_allclose(loud, quiet * 10 ** (6 / 20), rtol=1e-5, atol=1e-7)


def test_attack_is_about_ten_milliseconds():
    track = gain_track_db({"peak_reduction": 70}, [(-30, 0.5), (0, 1.0)])
    reduction = track[400] - track
    steady = reduction[1450]
    assert steady > 6
    t63 = int(np.argmax(reduction[500:] >= 0.63 * steady))
    assert 2 <= t63 <= 20, t63


def test_release_is_fast_then_slow_depending_on_history():
    def release(on_seconds):
        track = gain_track_db({"peak_reduction": 70}, [(-30, 0.5), (0, on_seconds), (-30, 8.0)])
        reduction = track[400] - track
        off = 500 + int(on_seconds * 1000)
        steady = reduction[off - 2]
        after = reduction[off:]
        return steady, int(np.argmax(after <= 0.5 * steady)), int(np.argmax(after <= 1.0))

    steady, half_short, done_short = release(0.05)
    assert steady > 6
    assert 30 <= half_short <= 150  # the fast stage: half released in about 60 ms
    assert done_short < 500  # a short burst leaves no slow memory
    _, half_long, done_long = release(5.0)
    assert half_long <= 200  # still a fast first stage ...
    assert 1000 <= done_long <= 8000  # ... then seconds to release fully after long, hard compression
    assert done_long > 5 * done_short


def test_gain_reduction_meter():
    device = LA2ACompressor(FS)
    assert device.gain_reduction_db() == 0.0
    device.process(tone(), {"peak_reduction": 80})
    assert device.gain_reduction_db() > 5
    device.reset()
    assert device.gain_reduction_db() == 0.0
