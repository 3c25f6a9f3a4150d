"""Training loop, run folders, resume, evaluation and comparison on a tiny dataset."""

import json

import numpy as np
import pytest
import torch

from fxcap.errors import ModelError
from fxcap.modeling.checkpoint import load_weights
from fxcap.modeling.compare import compare_runs, to_markdown
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.train import TrainConfig, load_run, train

TINY = TrainConfig(window=512, batch_size=4, steps_per_epoch=3, max_epochs=2, valid_windows=8, threads=1)


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
    return tiny_dataset  # conftest.py: drive 0/5/10, drive=5 held out


def _config(cond="concat"):
    return ModelConfig(cond=cond, cell="gru", num_knobs=1)  # only drive varies: the one conditioning knob


def test_run_folder_contents_and_safe_checkpoints(dataset, tmp_path):
    result = train(dataset, _config(), tmp_path / "run", TINY)
    assert result.epochs == 2 and len(result.history) == 2
    for name in ("config.json", "metrics.csv", "metrics.json", "best.safetensors", "last.safetensors", "state.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"]["hash"] and config["parameters"] == 3489  # the paper's Concat GRU with one knob
    assert config["train"] == TINY.to_dict() and config["model"] == _config().to_dict()
    data = config["dataset"]  # what evaluate, render and export read back
    assert (data["knob_names"], data["sample_rate"], data["window"], data["device"]) == (["drive"], 44100, 512, "OD-3")
    assert [k["name"] for k in data["knobs"]] == ["drive"] and data["path"] == str(dataset)
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


def test_refuses_to_overwrite_and_resuming_nothing_starts_a_new_run(dataset, tmp_path, caplog):
    train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}))
    with pytest.raises(ModelError, match="--resume"):
        train(dataset, _config(), tmp_path / "run", TINY)
    result = train(dataset, _config(), tmp_path / "other", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1}), resume=True)
    assert not result.resumed and result.epochs == 1 and "nothing to resume" in caplog.text
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


def test_evaluate_and_compare(dataset, tmp_path):
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
    labels = [cell.strip() for cell in header.strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()[2:4]]
    params = {row[labels.index("scheme")]: row[labels.index("params")] for row in rows}
    assert params == {"concat": "3489*", "film": "17185"}  # the runs' own counts (1 knob), fewest marked best
    assert markdown.count("*") >= 9  # every numeric column has a marked best
    assert to_markdown(frame) == markdown
    # rendering: tests/modeling/test_render.py


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

    train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_epochs": 1, "max_skipped_steps": 2}))
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    monkeypatch.setattr(training, "CombinedLoss", lambda **kw: _LossWithOverflows({"all"}, **kw))
    with pytest.raises(ModelError, match="diverged: 2 steps in a row.*lower learning rate"):  # stops at the limit
        train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "max_skipped_steps": 2}), resume=True)
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
                                          ("stft_weight", -0.1), ("esr_emphasis", 1.5), ("recovery_lr_factor", 1.0),
                                          ("time_budget_s", 0.0)])
def test_bad_training_settings_are_one_line_errors(field, value):
    with pytest.raises(ModelError, match=field) as error:
        TrainConfig(**{field: value})
    assert "\n" not in str(error.value)


def test_a_loss_skip_as_long_as_the_window_is_refused(dataset, tmp_path):
    with pytest.raises(ModelError, match="loss skip"):
        train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "loss_skip": 512}))


# -- what the loop does, observed from outside: which audio it trains and validates on, the gradients it
# -- applies, the checkpoint it keeps, when it stops ------------------------------------------------------


class _SplitAudio:
    """The ``(input audio, knobs)`` segments of one split, indexed by sample value for fast lookups."""

    def __init__(self, dataset, split):
        from fxcap.dataset import SequenceDataset

        segments = SequenceDataset(dataset, split)
        self.segments = [(x.numpy(), k.numpy()) for x, _, k in (segments[i] for i in range(len(segments)))]
        self.where: dict[float, list[tuple[int, int]]] = {}
        for index, (audio, _) in enumerate(self.segments):
            for position, value in enumerate(audio.tolist()):
                self.where.setdefault(value, []).append((index, position))

    def holds(self, window, knobs) -> bool:
        """Whether ``window`` under ``knobs`` is a contiguous stretch of one of the segments."""
        for index, start in self.where.get(float(window[0]), []):
            audio, segment_knobs = self.segments[index]
            if np.array_equal(segment_knobs, knobs) and np.array_equal(audio[start : start + len(window)], window):
                return True
        return False


def _record_forward_passes(monkeypatch) -> list:
    """Make every model that training builds record ``(training step?, input windows, knobs)`` of each
    forward pass into the returned list."""
    import fxcap.modeling.train as training

    calls: list = []
    real_build = training.build_model

    def build(config):
        model = real_build(config)
        model.register_forward_pre_hook(lambda module, args: calls.append(
            (module.training and torch.is_grad_enabled(), args[0].detach().numpy().copy(), args[1].detach().numpy().copy())))
        return model

    monkeypatch.setattr(training, "build_model", build)
    return calls


def test_trains_only_on_the_train_split_and_validates_only_on_the_valid_split(dataset, tmp_path, monkeypatch):
    """Every window the model sees in a training step comes from the train split, every window it is
    validated on from the valid split (time ranges and knob settings: the holdout shares the train
    split's input audio at another drive)."""
    calls = _record_forward_passes(monkeypatch)
    train(dataset, _config(), tmp_path / "run", TINY)
    splits = {split: _SplitAudio(dataset, split) for split in ("train", "valid", "test", "holdout")}
    trained = [(w, k) for is_step, batch, knobs in calls if is_step for w, k in zip(batch, knobs)]
    validated = [(w, k) for is_step, batch, knobs in calls if not is_step for w, k in zip(batch, knobs)]
    assert len(trained) == 2 * 3 * 4 and len(validated) == 2 * 8  # 2 epochs: 3 steps of 4 windows, 8 valid windows
    assert {len(w) for w, _ in trained + validated} == {TINY.window}  # the configured window, not the dataset's
    for own, windows in (("train", trained), ("valid", validated)):
        for window, knobs in windows:
            assert [name for name, audio in splits.items() if audio.holds(window, knobs)] == [own]


def test_tbptt_carries_the_state_through_consecutive_windows_of_the_train_split(dataset, tmp_path, monkeypatch):
    """With ``tbptt_windows=3`` every batch is 3 consecutive windows of one train-split stretch: the first
    from a zero state, each next one from the state the previous returned (detached), one step each; the
    carried windows' loss has no warm-up skip."""
    import fxcap.modeling.train as training

    calls = []  # (input windows, knobs, state in, state out) of every training forward pass
    real_build = training.build_model

    def build(config):
        model = real_build(config)
        real_forward = model.forward

        def forward(x, knobs, state=None):
            y, out = real_forward(x, knobs, state)
            if model.training and torch.is_grad_enabled():
                calls.append((x.detach().numpy().copy(), knobs.detach().numpy().copy(),
                              None if state is None else state.detach().clone(), out.detach().clone()))
            return y, out

        model.forward = forward
        return model

    monkeypatch.setattr(training, "build_model", build)
    steps = []
    config = TrainConfig(window=128, batch_size=2, steps_per_epoch=5, max_epochs=1, valid_windows=4, threads=1,
                         tbptt_windows=3, loss_skip=None)
    train(dataset, _config(), tmp_path / "run", config, on_step=lambda step, total, loss: steps.append((step, total)))
    assert steps == [(i, 6) for i in range(1, 7)]  # 5 steps asked: 2 chunks of 3 windows
    assert len(calls) == 6
    audio = _SplitAudio(dataset, "train")
    for chunk in (calls[0:3], calls[3:6]):
        assert chunk[0][2] is None  # a chunk starts from a zero state
        for previous, window in zip(chunk, chunk[1:]):
            torch.testing.assert_close(window[2], previous[3], rtol=0, atol=0)  # the state carried over
            assert not window[2].requires_grad
        for item in range(2):  # each item's three windows make one contiguous stretch of the train split
            stretch = np.concatenate([c[0][item] for c in chunk])
            assert all(np.array_equal(c[1][item], chunk[0][1][item]) for c in chunk)
            assert audio.holds(stretch, chunk[0][1][item])
    data_loss = training.make_loss(config, 128)
    carried = training.make_loss(training.replace(config, loss_skip=0), 128)
    assert (data_loss.skip, carried.skip) == (16, 0)


def test_validation_windows_can_be_longer_than_the_training_windows(dataset, tmp_path, monkeypatch):
    calls = _record_forward_passes(monkeypatch)
    config = TrainConfig(window=256, valid_window=1024, batch_size=2, steps_per_epoch=2, max_epochs=1, valid_windows=4, threads=1)
    train(dataset, _config(), tmp_path / "run", config)
    valid = _SplitAudio(dataset, "valid")
    trained = [w for is_step, batch, _ in calls if is_step for w in batch]
    validated = [(w, k) for is_step, batch, knobs in calls if not is_step for w, k in zip(batch, knobs)]
    assert {len(w) for w in trained} == {256} and len(validated) == 4 and {len(w) for w, _ in validated} == {1024}
    assert all(valid.holds(w, k) for w, k in validated)
    with pytest.raises(ModelError, match="valid_window must be a positive whole number"):
        TrainConfig(valid_window=0)


def test_a_run_written_before_a_setting_existed_resumes_with_its_default(tmp_path):
    from fxcap.modeling.run_folder import setting_changes

    model, train_config = _config().to_dict(), TINY.to_dict()
    old = {"model": dict(model), "train": {k: v for k, v in train_config.items() if k not in ("tbptt_windows", "valid_window")}}
    assert setting_changes(old, model, train_config) == []
    changed = dict(train_config, tbptt_windows=4)
    assert setting_changes(old, model, changed) == ["tbptt_windows 1 -> 4"]


class _ScriptedValidation(torch.nn.Module):
    """The real loss on training steps; on validation (no autograd) the scripted loss of the epoch.
    Records the STFT scale of every training step."""

    def __init__(self, script, **kwargs):
        super().__init__()
        from fxcap.modeling.losses import CombinedLoss

        self.inner, self.script, self.epoch, self.validating = CombinedLoss(**kwargs), list(script), 0, False
        self.scales, self.losses = [], []

    def forward(self, pred, target, stft_scale=None, power=None):
        if torch.is_grad_enabled() and pred.requires_grad:  # a training step
            if self.validating:
                self.epoch, self.validating = self.epoch + 1, False
            self.scales.append(stft_scale)
            loss = self.inner(pred, target, power=power) if stft_scale is None else self.inner(pred, target, stft_scale, power=power)
            self.losses.append(float(loss.detach()))
            return loss
        self.validating = True
        return torch.tensor(self.script[self.epoch], dtype=pred.dtype)


def _scripted(monkeypatch, script):
    import fxcap.modeling.train as training

    made = []
    monkeypatch.setattr(training, "CombinedLoss", lambda **kw: made.append(_ScriptedValidation(script, **kw)) or made[-1])
    return made


def test_best_checkpoint_is_the_epoch_with_the_lowest_validation_loss(dataset, tmp_path, monkeypatch):
    _scripted(monkeypatch, [0.5, 0.2, 0.9])
    snapshots = []
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 3})
    result = train(dataset, _config(), tmp_path / "run", config,
                   on_epoch=lambda row: snapshots.append(load_weights(tmp_path / "run" / "last.safetensors")[0]))
    assert [row["valid_loss"] for row in result.history] == pytest.approx([0.5, 0.2, 0.9])
    assert [row["best_valid_loss"] for row in result.history] == pytest.approx([0.5, 0.2, 0.2])
    assert result.best_valid_loss == pytest.approx(0.2)
    best, meta = load_weights(tmp_path / "run" / "best.safetensors")
    assert all(torch.equal(best[name], snapshots[1][name]) for name in best)  # epoch 2's weights...
    assert not all(torch.equal(best[name], snapshots[2][name]) for name in best)  # ...not the last epoch's
    model, _ = load_run(tmp_path / "run")  # what evaluate and render use
    assert all(torch.equal(model.state_dict()[name], snapshots[1][name]) for name in best)


def test_early_stopping_fires_after_patience_epochs_without_improvement(dataset, tmp_path, monkeypatch):
    _scripted(monkeypatch, [1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.6, 0.5])
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 8, "early_stop_patience": 3, "steps_per_epoch": 1})
    result = train(dataset, _config(), tmp_path / "run", config)
    assert result.stopped_early and result.epochs == 5 and len(result.history) == 5  # best at 2; 3, 4, 5 no better
    assert result.best_valid_loss == pytest.approx(0.8)
    resumed = train(dataset, _config(), tmp_path / "run", TrainConfig(**{**config.to_dict(), "max_epochs": 9}), resume=True)
    assert resumed.epochs == 5 and resumed.stopped_early  # a stopped run stays stopped


def test_stft_weight_ramps_up_over_the_warmup_steps(dataset, tmp_path, monkeypatch):
    made = _scripted(monkeypatch, [1.0, 0.9])
    result = train(dataset, _config(), tmp_path / "run", TrainConfig(**{**TINY.to_dict(), "stft_warmup_steps": 4}))
    assert made[0].scales == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])  # 2 epochs of 3 steps
    losses = made[0].losses  # and the reported train loss is the mean of each epoch's step losses
    assert [row["train_loss"] for row in result.history] == pytest.approx([np.mean(losses[:3]), np.mean(losses[3:])])


def test_gradients_are_clipped_before_every_optimizer_step(dataset, tmp_path, monkeypatch):
    norms = []

    class RecordingAdam(torch.optim.Adam):
        def step(self, closure=None):
            grads = [p.grad.flatten() for group in self.param_groups for p in group["params"] if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.cat(grads))))
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    train(dataset, _config(), tmp_path / "free", TrainConfig(**{**TINY.to_dict(), "grad_clip": 1e9}))
    free, norms[:] = list(norms), []
    train(dataset, _config(), tmp_path / "clipped", TrainConfig(**{**TINY.to_dict(), "grad_clip": 1e-3}))
    assert len(free) == len(norms) == 6
    assert min(free) > 1e-2  # unclipped, every step's gradient is far larger than the bound...
    assert max(norms) <= 1e-3 * (1 + 1e-4)  # ...and the optimizer only ever sees clipped ones
    assert min(norms) > 0.99e-3


def test_an_epoch_without_a_step_count_is_one_pass_over_the_train_split(dataset, tmp_path):
    from fxcap.dataset import make_dataloader

    steps = []
    config = TrainConfig(**{**TINY.to_dict(), "steps_per_epoch": None, "max_epochs": 1})  # the paper preset's way
    train(dataset, _config(), tmp_path / "run", config, on_step=lambda step, total, loss: steps.append((step, total)))
    expected = len(make_dataloader(dataset, "train", window=512, batch_size=4, shuffle=True))
    assert expected > TINY.steps_per_epoch and steps[-1] == (expected, expected) and len(steps) == expected


class _FakeTime:
    """A clock for the training module that moves ``tick`` seconds at every reading."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_a_time_budget_stops_the_run_and_anneals_the_rate_by_then(dataset, tmp_path, monkeypatch):
    import fxcap.modeling.train as train_module

    monkeypatch.setattr(train_module, "time", _FakeTime(tick=7.0))
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 6, "lr": 1e-2, "lr_schedule": "cosine",
                            "lr_min_factor": 0.1, "time_budget_s": 50.0})
    result = train(dataset, _config(), tmp_path / "run", config)
    assert result.stop_reason == "time_budget" and 1 < result.epochs < 6
    spent = sum(row["seconds"] for row in result.history)
    assert spent >= 50.0 and spent - result.history[-1]["seconds"] < 50.0  # stopped in the epoch the budget ran out
    # the clock was ahead of the steps: the rate reached its floor when the budget did, not at step 18
    assert 1e-2 * 0.1 <= result.history[-1]["lr"] <= 1e-2 * 0.1 * 1.05  # step-wise it would be ~7.5e-3
    assert result.history[0]["lr"] < 1e-2 * train_module.cosine_factor(3, 18, 0, 0.1)
    # the time spent is part of the run's state: resuming with the same budget trains nothing more
    resumed = train(dataset, _config(), tmp_path / "run", config, resume=True)
    assert resumed.epochs == result.epochs and resumed.stop_reason == "time_budget"


def test_a_budget_the_run_never_reaches_leaves_it_unchanged(dataset, tmp_path, monkeypatch):
    import fxcap.modeling.train as train_module

    monkeypatch.setattr(train_module, "time", _FakeTime(tick=1e-6))
    config = TrainConfig(**{**TINY.to_dict(), "lr": 1e-2, "lr_schedule": "cosine", "lr_min_factor": 0.1})
    plain = train(dataset, _config(), tmp_path / "plain", config)
    budgeted = train(dataset, _config(), tmp_path / "budget", TrainConfig(**{**config.to_dict(), "time_budget_s": 3600.0}))
    assert plain.stop_reason == budgeted.stop_reason == "max_epochs"
    a, _ = load_weights(tmp_path / "plain" / "last.safetensors")
    b, _ = load_weights(tmp_path / "budget" / "last.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
