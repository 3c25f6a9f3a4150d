"""Training losses: pre-emphasis, L1, ESR, (multi-resolution) STFT, the combined loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from fxcap.errors import ModelError
from fxcap.modeling.losses import (
    CombinedLoss,
    ESRLoss,
    L1Loss,
    MultiResolutionSTFTLoss,
    PreEmphasis,
    STFTLoss,
)


def noise(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).float()


@pytest.mark.parametrize("kind, b, a", [("hp", [1, -1], [1, -0.995]), ("fir", [1, -0.95], [1])])
def test_pre_emphasis_equals_the_iir_filter(kind, b, a):
    x = noise((3, 4000))
    expected = lfilter(b, a, x.double().numpy(), axis=-1)
    assert np.allclose(PreEmphasis(kind)(x).numpy(), expected, atol=2e-5)
    y3 = PreEmphasis(kind)(x[..., None])  # (B, T, 1) keeps its shape
    assert y3.shape == (3, 4000, 1) and torch.allclose(y3[..., 0], PreEmphasis(kind)(x))


def test_pre_emphasis_removes_dc_and_passes_highs():
    t = torch.arange(48000) / 48000
    pe = PreEmphasis()
    assert pe(torch.ones(1, 48000))[0, -1].abs() < 1e-3  # DC decays
    tone = torch.sin(2 * math.pi * 5000 * t)[None]
    ratio = pe(tone)[0, 24000:].pow(2).mean().sqrt() / tone[0, 24000:].pow(2).mean().sqrt()
    assert ratio == pytest.approx(1.0, abs=0.01)


def test_l1_and_esr_values():
    target = torch.tensor([[1.0, -1.0, 2.0, 0.0]])
    pred = torch.tensor([[1.5, -1.0, 1.0, 0.5]])
    assert float(L1Loss()(pred, target)) == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert float(ESRLoss()(pred, target)) == pytest.approx((0.25 + 1 + 0.25) / 6, rel=1e-6)
    with pytest.raises(ModelError, match="shapes differ"):
        L1Loss()(pred, target[:, :3])


def test_stft_loss_is_zero_for_identical_and_known_for_a_gain():
    x = noise((2, 4096))
    loss = MultiResolutionSTFTLoss()
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    # pred = target / 2: spectral convergence 0.5, log magnitude |log 2| at every bin
    assert float(loss(0.5 * x, x)) == pytest.approx(0.5 + math.log(2), rel=1e-3)
    only_log = STFTLoss(512, w_sc=0.0)
    assert float(only_log(0.5 * x, x)) == pytest.approx(math.log(2), rel=1e-3)


def test_short_signals_skip_large_resolutions():
    pred, target = noise((2, 300), 1), noise((2, 300), 2)
    got = MultiResolutionSTFTLoss()(pred, target)
    expected = (STFTLoss(128)(pred, target) + STFTLoss(32)(pred, target)) / 2
    assert torch.allclose(got, expected)
    with pytest.raises(ModelError, match="shorter than the smallest STFT size"):
        MultiResolutionSTFTLoss()(pred[:, :20], target[:, :20])


def test_combined_loss_is_l1_plus_weighted_stft_on_pre_emphasised_signals():
    pred, target = noise((2, 2048), 3), noise((2, 2048), 4)
    pe = PreEmphasis()
    expected = L1Loss()(pe(pred), pe(target)) + 0.1 * MultiResolutionSTFTLoss()(pe(pred), pe(target))
    assert torch.allclose(CombinedLoss()(pred, target), expected)
    plain = CombinedLoss(l1_weight=2.0, stft_weight=0.0, pre_emphasis=False)
    assert torch.allclose(plain(pred, target), 2 * L1Loss()(pred, target))
    fir = CombinedLoss(pre_emphasis_kind="fir")
    assert not torch.allclose(fir(pred, target), CombinedLoss()(pred, target))


def test_combined_loss_trains_a_model_output_shape():
    pred = noise((2, 1024, 1), 5).requires_grad_()
    loss = CombinedLoss()(pred, noise((2, 1024, 1), 6))
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_stft_terms_cannot_see_polarity_but_l1_can():
    """Why training ramps the STFT weight up (TrainConfig.stft_warmup_steps): an inverted output
    costs the STFT terms nothing, so only the time-domain term can steer a model away from it."""
    target = noise((2, 4096), 7)
    assert float(MultiResolutionSTFTLoss()(-target, target)) < 1e-5
    assert float(L1Loss()(-target, target)) == pytest.approx(2 * float(target.abs().mean()), rel=1e-5)


def test_combined_loss_stft_scale_reweights_only_the_stft_term():
    pred, target = noise((2, 2048), 8), noise((2, 2048), 9)
    loss = CombinedLoss()
    terms = loss.terms(pred, target)
    assert torch.allclose(loss(pred, target, stft_scale=0.0), terms["l1"])
    assert torch.allclose(loss(pred, target, stft_scale=0.5), terms["l1"] + 0.05 * terms["stft"])


def test_pooled_esr_and_dc_equal_their_hand_values():
    from fxcap.modeling.losses import DCLoss, PooledESRLoss

    target = torch.tensor([[1.0, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # the second window is silent
    pred = torch.tensor([[1.5, -1.0, 2.0, 0.5], [0.1, 0.0, 0.0, 0.0]])
    # pooled: (0.25 + 0.25 + 0.01) / (1 + 1 + 4): a silent window does not divide by zero
    assert float(PooledESRLoss()(pred, target)) == pytest.approx(0.51 / 6.0)
    # with emphasis 0.5: e[n] = d[n] - 0.5 d[n-1] for n >= 1 on the error d = pred - target
    d = (pred - target).numpy()
    t = target.numpy()
    err = sum((d[i, n] - 0.5 * d[i, n - 1]) ** 2 for i in range(2) for n in range(1, 4))
    sig = sum((t[i, n] - 0.5 * t[i, n - 1]) ** 2 for i in range(2) for n in range(1, 4))
    assert float(PooledESRLoss(0.5)(pred, target)) == pytest.approx(err / sig, rel=1e-6)
    # DC: mean over items of (mean error)^2, over the mean target power: ((0.25)^2 + (0.025)^2) / 2 / (6 / 8)
    assert float(DCLoss()(pred, target)) == pytest.approx((0.25**2 + 0.025**2) / 2 / 0.75, rel=1e-6)
    assert float(DCLoss()(target, target)) == 0.0


def test_a_plain_plus_an_emphasised_esr_is_one_milder_emphasis():
    """With one reference power (``esr_per_setting``), ESR(0) + ESR(a) weighs frequency by
    ``(2 + a^2) - 2a cos w``: a single emphasis ``b`` with ``b + 1/b = a + 2/a``, scaled by ``a / b``
    (a = 0.85: b = 0.350), so a sum of the two needs no loss of its own (docs/quality.md)."""
    from fxcap.modeling.losses import PooledESRLoss

    a = 0.85
    b = ((a + 2 / a) - math.sqrt((a + 2 / a) ** 2 - 4)) / 2
    assert b == pytest.approx(0.350, abs=1e-3)
    target = noise((4, 48000), seed=1)
    # a coloured error (neighbouring samples correlate 0.9), so the weighting's shape counts, not only its mean
    pred = target + torch.from_numpy(lfilter([1.0], [1.0, -0.9], noise((4, 48000), seed=2).numpy(), axis=-1)).float()
    power = torch.full((4,), 0.7)
    total = PooledESRLoss(0.0)(pred, target, power) + PooledESRLoss(a)(pred, target, power)
    assert float(total) == pytest.approx(a / b * float(PooledESRLoss(b)(pred, target, power)), rel=1e-3)
    assert float(total) != pytest.approx(a / b * float(PooledESRLoss(0.5)(pred, target, power)), rel=1e-2)


def test_combined_loss_weights_esr_dc_and_skips_the_warm_up():
    from fxcap.modeling.losses import DCLoss, PooledESRLoss

    pred, target = noise((2, 2048), 11), noise((2, 2048), 12)
    loss = CombinedLoss(l1_weight=0.0, stft_weight=0.0, esr_weight=2.0, dc_weight=3.0, esr_emphasis=0.85, skip=100)
    expected = 2.0 * PooledESRLoss(0.85)(pred[:, 100:], target[:, 100:]) + 3.0 * DCLoss()(pred[:, 100:], target[:, 100:])
    assert torch.allclose(loss(pred, target), expected)
    # what happens in the skipped samples does not count at all
    spoiled = pred.clone()
    spoiled[:, :100] += 50.0
    assert torch.allclose(loss(spoiled, target), expected)
    assert not torch.allclose(CombinedLoss(l1_weight=0.0, stft_weight=0.0, esr_weight=1.0)(spoiled, target),
                              PooledESRLoss()(pred, target))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"esr_weight": -1.0}, "esr_weight"), ({"l1_weight": 0.0, "stft_weight": 0.0}, "every loss weight is zero"),
     ({"skip": -5}, "skip"), ({"esr_emphasis": 1.0}, "pre-emphasis coefficient")],
)
def test_bad_combined_loss_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ModelError, match=message):
        CombinedLoss(**kwargs)


def test_a_skip_longer_than_the_window_is_a_clear_error():
    with pytest.raises(ModelError, match="not longer than the loss skip"):
        CombinedLoss(skip=512)(noise((1, 512), 1), noise((1, 512), 2))


def _numpy_stft_loss(pred, target, n_fft, hop, w_sc=1.0, w_log=1.0, w_lin=0.0, eps=1e-8):
    """STFTLoss written out in NumPy: centred frames (reflect padding of n_fft / 2), periodic Hann window,
    magnitudes sqrt(max(|X|^2, eps)); per item SC, mean |log| and mean |lin| differences, then the batch mean."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def magnitude(x):
        padded = np.pad(x, n_fft // 2, mode="reflect")
        frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
        return np.sqrt(np.maximum(np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2, eps))

    total = 0.0
    for p, t in zip(pred, target):
        mp, mt = magnitude(p), magnitude(t)
        total += (w_sc * np.linalg.norm(mt - mp) / np.linalg.norm(mt) + w_log * np.mean(np.abs(np.log(mt) - np.log(mp)))
                  + w_lin * np.mean(np.abs(mt - mp)))
    return total / len(pred)


@pytest.mark.parametrize("n_fft, hop, weights", [(256, None, (1.0, 1.0, 0.0)), (128, 50, (0.3, 2.0, 0.7)), (32, None, (0.0, 0.0, 1.0))])
def test_stft_loss_equals_an_independent_computation(n_fft, hop, weights):
    pred, target = noise((2, 1000), 3).double(), noise((2, 1000), 4).double() * torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    w_sc, w_log, w_lin = weights
    got = STFTLoss(n_fft, hop, w_sc=w_sc, w_log_mag=w_log, w_lin_mag=w_lin)(pred, target)
    expected = _numpy_stft_loss(pred.numpy(), target.numpy(), n_fft, hop or n_fft // 4, w_sc, w_log, w_lin)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    multi = MultiResolutionSTFTLoss((n_fft, 64), (hop or n_fft // 4, 16), w_sc=w_sc, w_log_mag=w_log, w_lin_mag=w_lin)
    second = _numpy_stft_loss(pred.numpy(), target.numpy(), 64, 16, w_sc, w_log, w_lin)
    assert float(multi(pred, target)) == pytest.approx((expected + second) / 2, rel=1e-9)
    with pytest.raises(ModelError, match="^give one hop size per FFT size$"):
        MultiResolutionSTFTLoss((256, 64), (64,))


def test_esr_loss_is_the_mean_of_per_item_ratios():
    target = torch.tensor([[1.0, -1.0, 2.0, 0.0], [10.0, 0.0, 0.0, 0.0]])
    pred = torch.tensor([[1.5, -1.0, 1.0, 0.5], [9.0, 1.0, 0.0, 0.0]])
    expected = ((0.25 + 1 + 0.25) / 6 + 2 / 100) / 2  # per item, then averaged (not pooled: 3.5 / 106)
    assert float(ESRLoss(eps=0.0)(pred, target)) == pytest.approx(expected, rel=1e-6)
    assert float(ESRLoss()(torch.ones(1, 4), torch.zeros(1, 4))) == pytest.approx(4 / 1e-8)  # silent target: finite


def test_bad_loss_settings_are_clear_errors():
    with pytest.raises(ModelError, match="^pre-emphasis kind must be 'hp' or 'fir', got 'iir'$"):
        PreEmphasis("iir")
    with pytest.raises(ModelError, match=r"^pre-emphasis coefficient must be in \[0, 1\), got 1.0$"):
        PreEmphasis("hp", 1.0)
    assert PreEmphasis("fir", 0.0).coefficient == 0.0  # 0 is allowed: no emphasis
    with pytest.raises(ModelError, match="^STFT loss with n_fft=512 needs at least 512 samples, got 300$"):
        STFTLoss(512)(noise((1, 300)), noise((1, 300)))
    with pytest.raises(ModelError, match=r"^signals of 20 samples are shorter than the smallest STFT size \(32\)$"):
        MultiResolutionSTFTLoss()(noise((1, 20)), noise((1, 20)))
