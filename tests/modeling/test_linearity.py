"""The linear penalty: which settings are linear, the model's nonlinear part, the training term."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from torch import nn

from fxcap.errors import ModelError
from fxcap.modeling.linearity import (
    LEVEL_STEP,
    LINEARISATION_SCALE,
    SettingLinearity,
    band_edges,
    linear_penalty,
    linear_residual_db,
    nonlinear_band_log_share,
    nonlinear_log_share,
    nonlinear_part,
)


class Polynomial(nn.Module):
    """``F(x) = dc + a1 x + a2 x^2 + a3 x^3`` with the knob (``(B, 1)``) adding to ``a2``; stateless."""

    def __init__(self, dc: float = 0.05, a1: float = 2.0, a2: float = 0.3, a3: float = 0.1) -> None:
        super().__init__()
        self.coefficients = nn.Parameter(torch.tensor([dc, a1, a2, a3]))

    def forward(self, x, knobs, state=None):
        dc, a1, a2, a3 = self.coefficients
        return dc + a1 * x + (a2 + knobs[:, :1]) * x**2 + a3 * x**3, torch.zeros(x.shape[0], 1)


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def test_linear_residual_is_the_share_no_linear_filter_explains():
    x = _noise(200_000, 1)
    filtered = lfilter([0.3, 0.2], [1.0, -0.6], x)  # any linear filter leaves (almost) nothing
    assert linear_residual_db(x, filtered) < -60
    # x + 0.1 (x^2 - 1): the square of unit Gaussian noise has variance 2, so 0.02 of 1.02 is not linear
    assert linear_residual_db(x, x + 0.1 * (x**2 - 1)) == pytest.approx(10 * math.log10(0.02 / 1.02), abs=0.3)
    noisy = filtered + 0.01 * np.std(filtered) * _noise(x.size, 2)  # noise 40 dB down counts as well
    assert linear_residual_db(x, noisy) == pytest.approx(-40.0, abs=0.5)


def test_linear_residual_refuses_what_it_cannot_measure():
    with pytest.raises(ModelError, match="too few"):
        linear_residual_db(np.ones(1000), np.ones(1000))
    with pytest.raises(ModelError, match="differ in length"):
        linear_residual_db(np.ones(20_000), np.ones(30_000))
    with pytest.raises(ModelError, match="silent"):
        linear_residual_db(_noise(20_000, 3), np.zeros(20_000))


def test_nonlinear_part_is_the_output_less_its_central_difference_linearisation():
    model = Polynomial()
    x = torch.tensor(_noise(300, 4), dtype=torch.float32).reshape(3, 100) * 0.5
    knobs = torch.tensor([[0.0], [0.2], [-0.3]])
    output, _ = model(x, knobs)
    part = nonlinear_part(model, x, knobs, output)
    # the even orders (DC, x^2) stay whole, the cubic one all but e^2 of it: the linear term is gone
    expected = 0.05 + (0.3 + knobs) * x**2 + 0.1 * (1 - LINEARISATION_SCALE**2) * x**3
    torch.testing.assert_close(part, expected, rtol=1e-4, atol=2e-6)
    linear = Polynomial(dc=0.0, a2=0.0, a3=0.0)
    zero_knobs = torch.zeros(3, 1)
    output, _ = linear(x, zero_knobs)
    assert float(nonlinear_part(linear, x, zero_knobs, output).detach().abs().max()) < 1e-5
    part.sum().backward()  # with gradients: the penalty trains the model
    assert model.coefficients.grad is not None and float(model.coefficients.grad[2]) > 0


def test_the_level_linearisation_leaves_each_order_a_known_multiple_and_the_linear_term_nothing():
    model = Polynomial()
    x = torch.tensor(_noise(300, 4), dtype=torch.float32).reshape(3, 100) * 0.5
    knobs = torch.tensor([[0.0], [0.2], [-0.3]])
    output, _ = model(x, knobs)
    part = nonlinear_part(model, x, knobs, output, about="level")
    # a x^k leaves (1 - ((1 + d)^k - 1) / d) a x^k: the DC whole, x^2 -1.1 times, x^3 -2.31 times
    def left(k: int) -> float:
        return 1 - ((1 + LEVEL_STEP) ** k - 1) / LEVEL_STEP
    expected = 0.05 + left(2) * (0.3 + knobs) * x**2 + left(3) * 0.1 * x**3
    assert left(2) == pytest.approx(-1.1) and left(3) == pytest.approx(-2.31)
    torch.testing.assert_close(part, expected, rtol=1e-4, atol=1e-5)
    linear = Polynomial(dc=0.0, a2=0.0, a3=0.0)
    zero_knobs = torch.zeros(3, 1)
    output, _ = linear(x, zero_knobs)
    assert float(nonlinear_part(linear, x, zero_knobs, output, about="level").detach().abs().max()) < 1e-5
    part.sum().backward()
    assert model.coefficients.grad is not None and float(model.coefficients.grad[2]) < 0  # -1.1 x^2: a2 up, sum down
    with pytest.raises(ModelError, match="unknown linearisation 'mean'"):
        nonlinear_part(model, x, knobs, output, about="mean")


@pytest.mark.parametrize("about", ["silence", "level"])
def test_descending_the_penalty_shrinks_the_higher_orders_and_leaves_the_first_alone(about):
    model = Polynomial()
    x = torch.tensor(_noise(2000, 9), dtype=torch.float32).reshape(4, 500) * 0.5
    knobs = torch.zeros(4, 1)
    table = SettingLinearity(np.array([[0.0]]), np.array([-40.0]), threshold_db=-25.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # not Adam, which would blow float noise up to full steps
    values = []
    for _ in range(20):  # a log's gradient grows as its argument shrinks: a few short steps, not to zero
        optimizer.zero_grad()
        output, _ = model(x, knobs)
        value = linear_penalty(model, table, x, knobs, output, 2.0 * x, about=about)
        value.backward()
        optimizer.step()
        values.append(float(value.detach()))
    dc, a1, a2, a3 = model.coefficients.tolist()
    assert a1 == pytest.approx(2.0, abs=1e-5)  # the linear term gets no gradient at all
    assert abs(a2) < 0.6 * 0.3 and abs(a3) < 0.6 * 0.1  # the square and cubic terms shrank (the DC settles
    assert values[-1] < values[0] - 1.5                 # where it cancels the square's mean)


class LevelGain(nn.Module):
    """``F(x) = x tanh(rms(x) / 0.05)``: unity gain at a played level (rms 0.3), fading out toward
    silence, like a compressor's make-up gain or an expander: linear at the level the data shows."""

    def forward(self, x, knobs, state=None):
        rms = x.square().mean(-1, keepdim=True).sqrt()
        return x * torch.tanh(rms / 0.05), torch.zeros(x.shape[0], 1)


def test_the_level_linearisation_leaves_a_gain_that_only_changes_below_the_played_level_alone():
    model = LevelGain()
    x = torch.tensor(_noise(2000, 8), dtype=torch.float32).reshape(2, 1000) * 0.3
    knobs = torch.zeros(2, 1)
    output, _ = model(x, knobs)
    about_level = nonlinear_log_share(nonlinear_part(model, x, knobs, output, about="level"), output)
    about_silence = nonlinear_log_share(nonlinear_part(model, x, knobs, output), output)
    # about silence the gain is 0.06, so nine tenths of the output reads as nonlinear; about its own
    # level the gain does not move (tanh(6) to tanh(6.6): 1e-5), so nothing does
    assert bool((about_silence > math.log(0.8)).all())
    assert bool((about_level < math.log(1e-6)).all())


def test_nonlinear_log_share_leaves_out_the_warm_up_and_floors_the_share():
    nonlinear = torch.tensor([[9.0, 9.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    share = nonlinear_log_share(nonlinear, target, skip=2)
    torch.testing.assert_close(share, torch.log(torch.tensor([0.25 + 1e-7, 1e-7])))


def _table() -> SettingLinearity:
    return SettingLinearity(np.array([[-1.0], [0.0], [1.0]]), np.array([-40.0, -20.0, -5.0]), threshold_db=-25.0)


def test_setting_linearity_marks_the_settings_below_the_threshold():
    table = _table()
    assert table.lookup(torch.tensor([[1.0], [-1.0], [0.0]])).tolist() == [False, True, False]
    assert table.describe(["drive"]) == "1 of 3 settings are linear (residual below -25 dB): drive=-1.00: -40.0 dB"
    with pytest.raises(ModelError, match="linear_penalty 0"):
        table.lookup(torch.tensor([[0.5]]))


def test_setting_linearity_from_a_split_finds_the_clean_setting(tiny_dataset):
    # the dummy pedal is tanh(gain x): 1x at drive 0 (nearly linear), 31.6x at drive 10 (clipped)
    table = SettingLinearity.from_split(tiny_dataset, threshold_db=-25.0)
    residual = dict(zip([round(v) for v in table.knobs[:, 0].tolist()], table.residual_db.tolist()))
    assert set(residual) == {-1, 1}  # drive 5 is the held-out setting
    assert residual[-1] < -25.0 < residual[1]
    assert table.lookup(torch.tensor([[-1.0], [1.0]])).tolist() == [True, False]


def test_linear_penalty_counts_only_the_windows_at_linear_settings():
    model = Polynomial()
    table = _table()
    x = torch.tensor(_noise(800, 5), dtype=torch.float32).reshape(4, 200) * 0.3
    target = torch.tensor(_noise(800, 6), dtype=torch.float32).reshape(4, 200)
    knobs = torch.tensor([[-1.0], [1.0], [-1.0], [0.0]])  # windows 0 and 2 are at the linear setting
    output, _ = model(x, knobs)
    term = linear_penalty(model, table, x, knobs, output, target, skip=50)
    rows = [0, 2]
    expected = nonlinear_log_share(nonlinear_part(model, x[rows], knobs[rows], output[rows]), target[rows], 50).sum() / 4
    torch.testing.assert_close(term, expected)
    level = linear_penalty(model, table, x, knobs, output, target, skip=50, bands=4, about="level")
    expected = nonlinear_band_log_share(nonlinear_part(model, x[rows], knobs[rows], output[rows], about="level"),
                                        target[rows], 4, 50).sum() / 4
    torch.testing.assert_close(level, expected)
    no_linear = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    output, _ = model(x, no_linear)
    assert float(linear_penalty(model, table, x, no_linear, output, target)) == 0.0


def test_band_edges_are_log_spaced_and_cover_every_bin_above_dc():
    edges = band_edges(1024, 9)
    assert edges[0] == 1 and edges[-1] == 513 and edges == sorted(set(edges))
    widths = np.diff(edges)
    assert widths[-1] > 4 * widths[2]  # each band wider than the one below
    assert len(band_edges(64, 40)) < 41  # bands of less than a bin merge


def test_band_share_holds_a_dark_target_treble_to_its_own_level():
    n_samples, rate = 4096, 48000.0
    t = torch.arange(n_samples, dtype=torch.float64) / rate

    def sine(bin_: int, amplitude: float) -> torch.Tensor:  # on a bin: no Hann leakage past the next bin
        return amplitude * torch.sin(2 * math.pi * bin_ * rate / n_samples * t)

    dark = sine(17, 1.0) + sine(683, 1e-3)  # 199 Hz, and 8004 Hz 60 dB down
    low, buzz = sine(40, 1e-2), sine(683, 1e-3)  # a product under the bass (-40 dB), one at the treble's own level
    whole = [float(nonlinear_log_share(n[None], dark[None])) for n in (low + buzz, low)]
    banded = [float(nonlinear_band_log_share(n[None], dark[None], bands=8)) for n in (low + buzz, low)]
    # over the whole band the buzz is 1 % of the nonlinear energy: removing it hardly moves the share;
    # per band it is as loud as the target there: removing it takes its band from log 1 to the floor
    assert whole[0] - whole[1] == pytest.approx(math.log(1.01), abs=1e-3)
    bands = len(band_edges(n_samples, 8)) - 1
    assert banded[0] - banded[1] == pytest.approx((math.log(1 + 1e-7) - math.log(1e-7)) / bands, rel=0.02)
    per_window = nonlinear_band_log_share(torch.stack([buzz, buzz * 0.1]), torch.stack([dark, dark]), bands=8)
    assert per_window.shape == (2,) and float(per_window[0] - per_window[1]) == pytest.approx(math.log(100) / bands, rel=0.02)


def test_the_linear_penalty_makes_the_clean_setting_cleaner(tiny_dataset, tmp_path):
    from fxcap.modeling.registry import ModelConfig
    from fxcap.modeling.train import TrainConfig, load_run, train

    with pytest.raises(ModelError, match="linear_penalty must be zero or positive"):
        TrainConfig(linear_penalty=-1.0)
    with pytest.raises(ModelError, match="linear_bands must be zero or positive"):
        TrainConfig(linear_bands=-2)
    with pytest.raises(ModelError, match="linear_bands must be a whole number"):
        TrainConfig(linear_bands=2.5)
    with pytest.raises(ModelError, match="linearisation must be 'silence' or 'level', not 'zero'"):
        TrainConfig(linearisation="zero")
    config = TrainConfig(window=512, batch_size=4, steps_per_epoch=20, max_epochs=2, valid_windows=8, lr=1e-2, threads=1)
    x = torch.tensor(_noise(2048, 7), dtype=torch.float32).reshape(1, -1) * 0.3
    clean = torch.tensor([[-1.0]])
    shares, banded = {}, {}
    for penalty, bands, about in ((0.0, 0, "silence"), (0.5, 0, "silence"), (0.5, 8, "silence")):
        run = tmp_path / f"p{penalty}-b{bands}-{about}"
        train(tiny_dataset, ModelConfig(cond="concat", num_knobs=1), run,
              TrainConfig(**{**config.to_dict(), "linear_penalty": penalty, "linear_bands": bands, "linearisation": about}))
        model, _ = load_run(run, "last")
        with torch.no_grad():
            output, _ = model(x, clean)
            nonlinear = nonlinear_part(model, x, clean, output)
            shares[penalty, bands, about] = float(nonlinear_log_share(nonlinear, output, skip=256))
            banded[penalty, bands, about] = float(nonlinear_band_log_share(nonlinear, output, 8, skip=256))
    # 40 steps from the same seed and windows: without the penalty in the loss the runs would be identical
    assert shares[0.5, 0, "silence"] < shares[0.0, 0, "silence"] - 1.0  # nats: the model's nonlinear share at drive 0 went down
    assert banded[0.5, 8, "silence"] < banded[0.0, 0, "silence"] - 1.0  # and per band with the share taken per band


def test_setting_linearity_of_short_takes_uses_shorter_segments_and_never_guesses(tmp_path, monkeypatch):
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
    from fxcap.dataset.testing import make_dummy_session
    from fxcap.modeling import linearity

    session = make_dummy_session(tmp_path / "session", knob_grid={"drive": [0, 10]}, sample_rate=44100, seconds=0.5)
    build_dataset([session.root], tmp_path / "dataset",
                  BuildConfig(split=SplitConfig(segment_seconds=0.04, min_segment_seconds=0.02), write_wav=False))
    # a few thousand samples per setting, less than one 16384-sample segment: still told apart
    table = SettingLinearity.from_split(tmp_path / "dataset", threshold_db=-25.0)
    assert table.values.tolist() == [True, False] and table.residual_db[0] < -25.0
    monkeypatch.setattr(linearity, "MIN_WELCH_SEGMENT", 1 << 20)  # too little audio to tell: not linear, no error
    table = SettingLinearity.from_split(tmp_path / "dataset", threshold_db=-25.0)
    assert table.values.tolist() == [False, False] and bool(np.isnan(table.residual_db).all())
    assert table.describe(["drive"]).startswith("0 of 2 settings are linear")


def test_a_penalty_left_to_the_device_kind_is_on_for_a_pedal_and_off_for_a_compressor(tiny_dataset, tmp_path):
    from fxcap.modeling.registry import ModelConfig
    from fxcap.modeling.train import TrainConfig, load_run, train
    from fxcap.modeling.train_config import DEVICE_LINEAR_PENALTY

    by_kind = TrainConfig(linear_penalty=None)
    assert by_kind.for_device("overdrive").linear_penalty == DEVICE_LINEAR_PENALTY > 0
    assert by_kind.for_device("fuzz").linear_penalty == DEVICE_LINEAR_PENALTY
    assert by_kind.for_device("Compressor").linear_penalty == 0.0 == by_kind.for_device("limiter").linear_penalty
    assert TrainConfig(linear_penalty=5e-4).for_device("compressor").linear_penalty == 5e-4  # a number stays
    config = TrainConfig(window=512, batch_size=2, steps_per_epoch=2, max_epochs=1, valid_windows=2, threads=1, linear_penalty=None)
    train(tiny_dataset, ModelConfig(cond="concat", num_knobs=1), tmp_path / "run", config)  # the dummy pedal is an OD-3
    _, stored = load_run(tmp_path / "run")
    assert stored["train"]["linear_penalty"] == DEVICE_LINEAR_PENALTY  # decided before the run, so stored as a number
