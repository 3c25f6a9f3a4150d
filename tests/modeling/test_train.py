"""Training loop, run folders, resume, evaluation, comparison and rendering on a tiny dataset."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import ModelError
from fxcap.modeling.checkpoint import load_weights
from fxcap.modeling.compare import compare_runs, to_markdown
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.render import render_run
from fxcap.modeling.train import TrainConfig, load_run, train

TINY = TrainConfig(window=512, batch_size=4, steps_per_epoch=3, max_epochs=2, valid_windows=8, threads=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    session = make_dummy_session(root / "session", knob_grid={"drive": [0, 5, 10]}, sample_rate=44100, seconds=3.0)
    config = BuildConfig(split=SplitConfig(segment_seconds=0.25), holdout=("drive=5",), write_wav=False)
    build_dataset([session.root], root / "dataset", config)
    return root / "dataset"


def _config(cond="concat"):
    return ModelConfig(cond=cond, cell="gru", num_knobs=1)  # only drive varies: the one conditioning knob


def test_run_folder_contents_and_safe_checkpoints(dataset, tmp_path):
    result = train(dataset, _config(), tmp_path / "run", TINY)
    assert result.epochs == 2 and len(result.history) == 2
    for name in ("config.json", "metrics.csv", "metrics.json", "best.safetensors", "last.safetensors", "state.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"]["hash"] and config["parameters"] == 3489  # the paper's Concat GRU with one knob
    torch.load(tmp_path / "run" / "state.pt", weights_only=True)  # loads without executing code
    model, _ = load_run(tmp_path / "run")
    assert sum(p.numel() for p in model.parameters()) == config["parameters"]


def test_resume_reproduces_an_uninterrupted_run_exactly(dataset, tmp_path):
    train(dataset, _config(), tmp_path / "full", TINY)
    short = TrainConfig(**{**TINY.to_dict(), "max_epochs": 1})
    train(dataset, _config(), tmp_path / "cut", short)
    train(dataset, _config(), tmp_path / "cut", TINY, resume=True)
    full, _ = load_weights(tmp_path / "full" / "last.safetensors")
    cut, _ = load_weights(tmp_path / "cut" / "last.safetensors")
    for name in full:
        torch.testing.assert_close(cut[name], full[name], rtol=0, atol=0)
    history = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_training_reduces_the_validation_loss(dataset, tmp_path):
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 4, "steps_per_epoch": 10, "lr": 5e-3})
    result = train(dataset, _config(), tmp_path / "run", config)
    assert result.history[-1]["best_valid_loss"] < result.history[0]["valid_loss"]


def test_refuses_to_overwrite_or_resume_nothing(dataset, tmp_path):
    train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}))
    with pytest.raises(ModelError, match="--resume"):
        train(dataset, _config(), tmp_path / "run", TINY)
    with pytest.raises(ModelError, match="nothing to resume|no state.pt"):
        train(dataset, _config(), tmp_path / "other", TINY, resume=True)
    with pytest.raises(ModelError, match="expects 2 knobs"):
        train(dataset, ModelConfig(cond="concat", cell="gru", num_knobs=2), tmp_path / "k", TINY)


def test_corrupted_checkpoint_gives_a_clear_error(dataset, tmp_path):
    train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}))
    path = tmp_path / "run" / "best.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelError, match="corrupt"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / "state.pt").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt"):
        train(dataset, _config(), tmp_path / "run", TINY, resume=True)


def test_evaluate_compare_and_render(dataset, tmp_path):
    runs = []
    for cond in ("concat", "film"):
        train(dataset, _config(cond), tmp_path / cond, TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}))
        summary = evaluate_run(tmp_path / cond)
        assert summary["test"]["settings"] == 2 and summary["holdout"]["settings"] == 1  # drive=5 held out
        assert np.isfinite(summary["test"]["esr"]) and summary["compute"]["gflops_per_second"] > 0
        runs.append(tmp_path / cond)
    frame = compare_runs(runs, tmp_path)
    assert list(frame["scheme"]) == ["concat", "film"]
    markdown = (tmp_path / "comparison.md").read_text()
    header = markdown.splitlines()[0]
    assert "ESR" in header and "params" in header
    assert "3585*" not in markdown and "| concat-gru-" not in markdown  # 3 knobs: not the paper's 2-knob count
    assert markdown.count("*") >= 9  # every numeric column has a marked best
    assert to_markdown(frame) == markdown

    dry = np.sin(2 * np.pi * 220 * np.arange(44100) / 44100).astype(np.float32) * 0.5
    sf.write(tmp_path / "dry.wav", dry, 44100, subtype="FLOAT")
    info = render_run(tmp_path / "concat", tmp_path / "dry.wav", tmp_path / "wet.wav", settings=["drive=7"], block=1000)
    wet, rate = sf.read(tmp_path / "wet.wav", dtype="float32")
    assert rate == 44100 and len(wet) == len(dry) and info["samples"] == len(dry)
    model, _ = load_run(tmp_path / "concat")
    knobs = torch.tensor([[0.4]])  # drive 7 -> 0.4 (level and tone are fixed in this dataset)
    with torch.no_grad():
        one_shot, _ = model(torch.from_numpy(dry)[None], knobs)
    np.testing.assert_allclose(wet, one_shot[0].numpy().reshape(-1), atol=1e-5)

    render_run(tmp_path / "concat", tmp_path / "dry.wav", tmp_path / "ramp.wav", automate=["drive:0:10"], block=777)
    ramp, _ = sf.read(tmp_path / "ramp.wav", dtype="float32")
    assert not np.allclose(ramp, wet)
    sf.write(tmp_path / "dry48.wav", dry, 48000, subtype="FLOAT")
    with pytest.raises(ModelError, match="44100 Hz"):
        render_run(tmp_path / "concat", tmp_path / "dry48.wav", tmp_path / "x.wav")
    with pytest.raises(ModelError, match="no knob 'fuzz'"):
        render_run(tmp_path / "concat", tmp_path / "dry.wav", tmp_path / "x.wav", settings=["fuzz=1"])


def test_batched_scoring_equals_one_segment_at_a_time(dataset, tmp_path):
    from fxcap.modeling.evaluate import score_split

    train(dataset, _config("dynamichyper"), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}))
    model, _ = load_run(tmp_path / "run")
    one = score_split(model, dataset, "test", 44100, batch=1)
    many = score_split(model, dataset, "test", 44100, batch=64)
    assert len(one) == len(many) == 2
    for a, b in zip(one, many):
        assert a.keys() == b.keys()
        for key in ("l1", "esr", "rms_diff_db"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7)


def test_cosine_factor_warms_up_then_decays_to_the_floor():
    from fxcap.modeling.train import cosine_factor

    assert cosine_factor(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert cosine_factor(9, 100, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_factor(10, 100, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_factor(99, 100, warmup_steps=10, min_factor=0.02) == pytest.approx(0.02)
    assert cosine_factor(500, 100, min_factor=0.02) == pytest.approx(0.02)
    middle = cosine_factor(55, 101, warmup_steps=10, min_factor=0.0)  # halfway through the decay
    assert middle == pytest.approx(0.5, abs=0.02)
    values = [cosine_factor(s, 100, warmup_steps=10) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_cosine_schedule_follows_the_optimizer_steps(dataset, tmp_path):
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 3, "lr": 1e-2, "lr_schedule": "cosine", "warmup_steps": 2,
                            "lr_min_factor": 0.1, "stft_warmup_steps": 4})
    result = train(dataset, _config(), tmp_path / "full", config)
    # 3 steps per epoch: the rate after epochs 1..3 is the factor at steps 3, 6 and 9 (of 9)
    from fxcap.modeling.train import cosine_factor

    expected = [1e-2 * cosine_factor(step, 9, 2, 0.1) for step in (3, 6, 9)]
    assert [row["lr"] for row in result.history] == pytest.approx(expected)


def test_resume_with_cosine_schedule_is_exact(dataset, tmp_path):
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 3, "lr": 1e-2, "lr_schedule": "cosine", "warmup_steps": 2,
                            "stft_warmup_steps": 4})
    train(dataset, _config(), tmp_path / "full", config)
    original = __import__("fxcap.modeling.train", fromlist=["train"])
    calls = {"epochs": 0}

    def stop_after_first_epoch(row):
        calls["epochs"] += 1
        if calls["epochs"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        original.train(dataset, _config(), tmp_path / "cut", config, on_epoch=stop_after_first_epoch)
    train(dataset, _config(), tmp_path / "cut", config, resume=True)
    full, _ = load_weights(tmp_path / "full" / "last.safetensors")
    cut, _ = load_weights(tmp_path / "cut" / "last.safetensors")
    for name in full:
        torch.testing.assert_close(cut[name], full[name], rtol=0, atol=0)


class _LossWithOverflows(torch.nn.Module):
    """The real loss, except that the training calls numbered in ``bad`` return NaN."""

    def __init__(self, bad, **kwargs):
        super().__init__()
        from fxcap.modeling.losses import CombinedLoss

        self.inner, self.bad, self.calls = CombinedLoss(**kwargs), set(bad), 0

    def forward(self, pred, target, stft_scale=None, power=None):
        loss = self.inner(pred, target, power=power) if stft_scale is None else self.inner(pred, target, stft_scale, power=power)
        if stft_scale is None:  # validation
            return loss
        self.calls += 1
        return loss * float("nan") if self.calls in self.bad or "all" in self.bad else loss


def test_non_finite_steps_are_skipped_not_applied(dataset, tmp_path, monkeypatch):
    import fxcap.modeling.train as training

    monkeypatch.setattr(training, "CombinedLoss", lambda **kw: _LossWithOverflows({2, 3}, **kw))
    result = train(dataset, _config(), tmp_path / "run", TINY)
    assert [row["skipped_steps"] for row in result.history] == [2, 0]
    weights, _ = load_weights(tmp_path / "run" / "last.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert all(np.isfinite(row["train_loss"]) for row in result.history)


def test_a_diverged_run_stops_with_a_clear_error_and_keeps_its_last_good_epoch(dataset, tmp_path, monkeypatch):
    import fxcap.modeling.train as training

    train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}))
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    monkeypatch.setattr(training, "CombinedLoss", lambda **kw: _LossWithOverflows({"all"}, **kw))
    with pytest.raises(ModelError, match="diverged.*lower learning rate"):
        train(dataset, _config(), tmp_path / "run", TINY, resume=True)
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == before


def test_validation_sample_covers_every_knob_setting(dataset):
    from fxcap.modeling.train import validation_loader

    config = TrainConfig(**{**TINY.to_dict(), "valid_windows": 8})
    seen = [set(), set()]
    for attempt in range(2):
        windows = 0
        for _, _, knobs in validation_loader(dataset, 512, config):
            for row in knobs.numpy():
                if windows < 8:
                    seen[attempt].add(tuple(np.round(row, 4)))
                windows += 1
    assert seen[0] == seen[1]  # the same sample every epoch
    assert len(seen[0]) == 2  # both training settings (drive 0 and 10; drive 5 is held out)


def test_a_divergence_goes_back_to_the_last_good_epoch_at_a_lower_rate_and_says_so(dataset, tmp_path, monkeypatch):
    import fxcap.modeling.train as training

    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 3, "max_skipped_steps": 2, "lr": 1e-3})
    # training calls 4 and 5 (epoch 2's first two steps) overflow: epoch 2 is trained again from epoch 1's weights
    monkeypatch.setattr(training, "CombinedLoss", lambda **kw: _LossWithOverflows({4, 5}, **kw))
    result = train(dataset, _config(), tmp_path / "run", config)
    assert result.epochs == 3 and [row["recoveries"] for row in result.history] == [0, 1, 0]
    assert len(result.recoveries) == 1 and "epoch 2 diverged" in result.recoveries[0]
    assert "lowered the learning rate 3.33x" in result.recoveries[0]
    # the rate of every later epoch is the recovery factor times what it was
    assert result.history[1]["lr"] == pytest.approx(0.3 * 1e-3)
    weights, _ = load_weights(tmp_path / "run" / "last.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["lr_scale"] == pytest.approx(0.3) and state["recoveries"] == result.recoveries


def test_per_setting_esr_divides_each_window_by_its_settings_power(dataset):
    from fxcap.dataset import SequenceDataset
    from fxcap.modeling.losses import CombinedLoss
    from fxcap.modeling.setting_power import SettingPower

    table = SettingPower.from_split(dataset, "train", emphasis=0.5)
    segments = SequenceDataset(dataset, "train")
    by_setting: dict = {}
    for i in range(len(segments)):
        _, y, knobs = segments[i]
        e = y.double().numpy()[1:] - 0.5 * y.double().numpy()[:-1]
        acc = by_setting.setdefault(float(knobs[0]), [0.0, 0])
        acc[0] += float(np.dot(e, e))
        acc[1] += e.size
    assert len(by_setting) == 2
    for value, (energy, count) in by_setting.items():
        assert float(table.lookup(torch.tensor([[value]]))[0]) == pytest.approx(energy / count, rel=1e-9)
    assert by_setting[-1.0][0] / by_setting[-1.0][1] != pytest.approx(by_setting[1.0][0] / by_setting[1.0][1], rel=0.1)
    with pytest.raises(ModelError, match="not one of the training split's settings"):
        table.lookup(torch.tensor([[0.3]]))
    # the loss: mean over windows of (mean squared emphasised error / the window's setting power)
    pred, target = torch.randn(2, 600), torch.randn(2, 600)
    knobs = torch.tensor([[-1.0], [1.0]])
    power = table.lookup(knobs)
    loss = CombinedLoss(l1_weight=0.0, stft_weight=0.0, esr_weight=1.0, esr_emphasis=0.5)
    d, t = pred.double(), target.double()
    err = (d[:, 1:] - 0.5 * d[:, :-1]) - (t[:, 1:] - 0.5 * t[:, :-1])
    expected = float((err.square().mean(-1) / power).mean())
    assert float(loss(pred, target, power=power)) == pytest.approx(expected, rel=1e-5)


def test_training_with_per_setting_esr_runs_and_learns(dataset, tmp_path):
    config = TrainConfig(**{**TINY.to_dict(), "l1_weight": 0.0, "stft_weight": 0.0, "esr_weight": 1.0, "dc_weight": 1.0,
                            "esr_emphasis": 0.85, "loss_skip": 64, "esr_per_setting": True, "max_epochs": 2})
    result = train(dataset, _config(), tmp_path / "run", config)
    assert all(np.isfinite(row["valid_loss"]) for row in result.history)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["esr_per_setting"] is True and saved["loss_skip"] == 64


@pytest.mark.parametrize("field, value", [("lr", -1.0), ("batch_size", 0), ("max_epochs", 0), ("loss_skip", -3),
                                          ("stft_weight", -0.1), ("esr_emphasis", 1.5), ("recovery_lr_factor", 1.0)])
def test_bad_training_settings_are_one_line_errors(field, value):
    with pytest.raises(ModelError, match=field) as error:
        TrainConfig(**{field: value})
    assert "\n" not in str(error.value)


def test_a_loss_skip_as_long_as_the_window_is_refused(dataset, tmp_path):
    with pytest.raises(ModelError, match="loss skip"):
        train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "loss_skip": 512}))
