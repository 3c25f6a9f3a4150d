"""The training loop's inner pieces, checked in-process: which weights a resume takes, the validation
loss, the divergence message, the plateau rule and ``load_run``'s refusals. (The fault matrix checks
the same paths end to end with a real process killed between writes: ``tests/faults/test_runs.py``.)"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from fxcap.errors import ModelError
from fxcap.modeling.checkpoint import load_weights, save_weights
from fxcap.modeling.losses import CombinedLoss
from fxcap.modeling.registry import ModelConfig, build_model
from fxcap.modeling.setting_power import SettingPower
import fxcap.modeling.train as training
from fxcap.modeling.train import TrainConfig, _diverged, _evaluate_loss, _resume_weights, load_run, loss_skip_for, make_loss, train
from tests.modeling.test_train import _FakeTime, _LossWithOverflows

TINY = TrainConfig(window=512, batch_size=4, steps_per_epoch=3, max_epochs=2, valid_windows=8, threads=1)
CONCAT = ModelConfig(cond="concat", num_knobs=1)  # the tiny dataset's one conditioning knob


def _flat_validation(monkeypatch) -> None:
    """Every validation loss is 1.0: the run never improves after its first epoch."""
    monkeypatch.setattr(training, "_evaluate_loss", lambda *args, **kwargs: 1.0)


def _model(seed: int) -> torch.nn.Module:
    return build_model(ModelConfig(cond="concat", num_knobs=1, hidden_size=4, seed=seed))


def _state_weights(seed: int) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _model(seed).state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_takes_the_states_own_weights_and_says_so_when_last_is_from_another_epoch(tmp_path, caplog):
    save_weights(tmp_path / "last.safetensors", _model(1), {"epoch": 3})
    own = _state_weights(2)
    with caplog.at_level(logging.WARNING):
        got = _resume_weights(tmp_path, {"epoch": 2, "model": own})
    assert _same(got, own)
    assert (f"note: {tmp_path}/last.safetensors is from epoch 3 but state.pt from epoch 2 (the run stopped between the two "
            "writes); resuming from epoch 2 with the weights saved in state.pt") in caplog.text
    caplog.clear()
    save_weights(tmp_path / "last.safetensors", _model(1), {"epoch": 2})  # the epochs agree: nothing to say
    with caplog.at_level(logging.WARNING):
        assert _same(_resume_weights(tmp_path, {"epoch": 2, "model": own}), own)
    assert caplog.text == ""
    (tmp_path / "last.safetensors").write_bytes(b"not safetensors")  # unreadable: the state's copy still serves
    with caplog.at_level(logging.WARNING):
        assert _same(_resume_weights(tmp_path, {"epoch": 2, "model": own}), own)
    assert "last.safetensors is from epoch None but state.pt from epoch 2" in caplog.text


def test_a_state_of_an_earlier_version_takes_last_only_when_the_epochs_agree(tmp_path):
    save_weights(tmp_path / "last.safetensors", _model(1), {"epoch": 4})
    assert _same(_resume_weights(tmp_path, {"epoch": 4}), _state_weights(1))  # no weights in state.pt: last's
    with pytest.raises(ModelError) as error:
        _resume_weights(tmp_path, {"epoch": 3})
    assert str(error.value) == (
        f"{tmp_path}/last.safetensors is from epoch 4 but state.pt from epoch 3 (the run stopped between the two writes), "
        "so they cannot be resumed together; start it afresh with --force (fxcap train; a sweep: delete the folder), which "
        "replaces its checkpoints, or train into another run folder")


def test_the_divergence_message_suggests_a_third_of_the_rate():
    message = str(_diverged(20, 7, 0.003))
    assert message == ("training diverged: 20 steps in a row had a non-finite loss or gradient (epoch 7); train again with "
                       "a lower learning rate (now 0.003, e.g. --lr 0.001); the best weights so far stay in best.safetensors")


class _Batches:
    """A validation loader of fixed batches ``(x, y, knobs)``."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def test_the_validation_loss_weighs_each_window_by_its_settings_power_and_stops_at_the_limit():
    torch.manual_seed(0)
    model = _model(3)
    batches = [(torch.randn(2, 300), torch.randn(2, 300) * s, torch.tensor([[-1.0], [1.0]])) for s in (1.0, 3.0, 5.0)]
    power = SettingPower(torch.tensor([[-1.0], [1.0]]).numpy(), torch.tensor([0.5, 4.0]).numpy())
    loss_fn = CombinedLoss(l1_weight=0.0, stft_weight=0.0, esr_weight=1.0)
    with torch.no_grad():
        per_batch = [float(loss_fn(model(x, k)[0], y, power=power.lookup(k))) for x, y, k in batches]
    got = _evaluate_loss(model, _Batches(batches), loss_fn, None, power)
    assert got == pytest.approx(sum(per_batch) / 3, rel=1e-6)
    assert _evaluate_loss(model, _Batches(batches), loss_fn, 4, power) == pytest.approx(sum(per_batch[:2]) / 2, rel=1e-6)
    pooled = _evaluate_loss(model, _Batches(batches), loss_fn, None)  # without the table: each batch's own power
    assert pooled != pytest.approx(got, rel=1e-3)
    assert model.training  # left in training mode
    with pytest.raises(ModelError) as error:
        _evaluate_loss(model, _Batches([]), loss_fn, None)
    assert str(error.value) == "the validation split is empty; rebuild the dataset with a non-zero valid fraction"


def test_the_plateau_rule_uses_the_configured_factor_and_patience(tiny_dataset, tmp_path, monkeypatch):
    _flat_validation(monkeypatch)  # never improves after the first epoch: the rule lowers the rate after each
    config = TrainConfig(**{**TINY.to_dict(), "lr": 1e-3, "lr_schedule": "plateau", "lr_factor": 0.25, "lr_patience": 0,
                            "max_epochs": 3, "early_stop_patience": 5})
    result = train(tiny_dataset, CONCAT, tmp_path / "run", config)
    assert [row["lr"] for row in result.history] == pytest.approx([1e-3, 0.25e-3, 0.0625e-3], rel=1e-9, abs=0)
    config = TrainConfig(**{**config.to_dict(), "lr_patience": 1})
    result = train(tiny_dataset, CONCAT, tmp_path / "patient", config)
    assert [row["lr"] for row in result.history] == pytest.approx([1e-3, 1e-3, 0.25e-3], rel=1e-9, abs=0)


def test_load_run_refusals_name_the_file_and_the_fix(tiny_run, tmp_path):
    with pytest.raises(ModelError) as error:
        load_run(tmp_path)
    assert str(error.value) == f"{tmp_path} is not a training run (no config.json); train one with `fxcap train`"
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=r"config.json is corrupt \(JSONDecodeError\("):
        load_run(tmp_path)
    config = json.loads((tiny_run / "config.json").read_text(encoding="utf-8"))
    config["model"]["hidden_size"] = 5
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "best.safetensors").write_bytes((tiny_run / "best.safetensors").read_bytes())
    with pytest.raises(ModelError) as error:
        load_run(tmp_path)
    assert str(error.value).startswith(f"{tmp_path}/best.safetensors does not fit the model in config.json: Error(s) in loading")
    assert "\n" not in str(error.value)
    (tmp_path / "config.json").write_text((tiny_run / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    model, _ = load_run(tmp_path)
    assert not model.training


def test_early_stopping_counts_epochs_without_improvement_from_zero(tiny_dataset, tmp_path, monkeypatch):
    _flat_validation(monkeypatch)  # epoch 1 sets the best, epoch 2 does not improve on it
    config = TrainConfig(**{**TINY.to_dict(), "lr_schedule": "cosine", "max_epochs": 5, "early_stop_patience": 1})
    result = train(tiny_dataset, CONCAT, tmp_path / "run", config)
    assert result.epochs == 2 and result.stopped_early
    assert [row["best_valid_loss"] for row in result.history] == [result.history[0]["valid_loss"]] * 2


def test_a_resumed_run_keeps_the_rate_a_recovery_lowered(tiny_dataset, tmp_path):
    config = TrainConfig(**{**TINY.to_dict(), "lr_schedule": "cosine", "warmup_steps": 0, "max_epochs": 2})
    full = train(tiny_dataset, CONCAT, tmp_path / "full", config)
    one = TrainConfig(**{**config.to_dict(), "max_epochs": 1})
    train(tiny_dataset, CONCAT, tmp_path / "cut", one)
    state = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    state["lr_scale"] = 0.25  # as a recovery from a divergence in epoch 1 would have left it
    torch.save(state, tmp_path / "cut" / "state.pt")
    resumed = train(tiny_dataset, CONCAT, tmp_path / "cut", config, resume=True)
    assert resumed.resumed
    assert resumed.history[-1]["lr"] == pytest.approx(0.25 * full.history[-1]["lr"], rel=1e-9)


def _overflowing(monkeypatch, bad):
    """Training losses number ``bad`` (counted from 1 over the run's training steps) are NaN."""
    monkeypatch.setattr(training, "CombinedLoss", lambda **kw: _LossWithOverflows(set(bad), **kw))


def test_a_recovery_goes_back_to_the_weights_before_the_epoch_not_to_those_its_good_steps_made(tiny_dataset, tmp_path, monkeypatch):
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_skipped_steps": 2, "lr": 1e-3})
    # epoch 2's steps are training calls 4..6: diverging at its first two steps, or after one good step
    # (call 4 updates the weights, 5 and 6 overflow), must both restart epoch 2 from epoch 1's weights
    _overflowing(monkeypatch, {4, 5})
    at_once = train(tiny_dataset, CONCAT, tmp_path / "at-once", config)
    _overflowing(monkeypatch, {5, 6})
    after_a_step = train(tiny_dataset, CONCAT, tmp_path / "after-a-step", config)
    assert len(at_once.recoveries) == len(after_a_step.recoveries) == 1
    assert "epoch 2 diverged (2 steps in a row had a non-finite loss or gradient)" in after_a_step.recoveries[0]
    first, _ = load_weights(tmp_path / "at-once" / "last.safetensors")
    second, _ = load_weights(tmp_path / "after-a-step" / "last.safetensors")
    assert _same(first, second)


def test_a_good_step_resets_the_count_of_bad_steps_in_a_row(tiny_dataset, tmp_path, monkeypatch):
    _overflowing(monkeypatch, {4, 6})  # epoch 2: bad, good, bad
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_skipped_steps": 2})
    result = train(tiny_dataset, CONCAT, tmp_path / "run", config)
    assert result.recoveries == [] and [row["skipped_steps"] for row in result.history] == [0, 2]


def test_a_divergence_that_ends_the_run_names_its_epoch(tiny_dataset, tmp_path, monkeypatch):
    _overflowing(monkeypatch, {4, 5})
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_skipped_steps": 2, "max_recoveries": 0})
    with pytest.raises(ModelError, match=r"^training diverged: 2 steps in a row had a non-finite loss or gradient \(epoch 2\)"):
        train(tiny_dataset, CONCAT, tmp_path / "run", config)


def test_the_models_own_seed_wins_over_the_runs(tiny_dataset, tmp_path):
    one = TrainConfig(**{**TINY.to_dict(), "max_epochs": 1})
    runs = {seed: train(tiny_dataset, ModelConfig(cond="concat", num_knobs=1, seed=seed), tmp_path / f"m{seed}", one)
            for seed in (5, 6)}
    assert runs[5].history[0]["train_loss"] != runs[6].history[0]["train_loss"]  # same windows, other initial weights


def test_per_setting_esr_changes_what_training_minimises(tiny_dataset, tmp_path):
    esr = {**TINY.to_dict(), "l1_weight": 0.0, "stft_weight": 0.0, "esr_weight": 1.0, "max_epochs": 1}
    pooled = train(tiny_dataset, CONCAT, tmp_path / "pooled", TrainConfig(**esr))
    per_setting = train(tiny_dataset, CONCAT, tmp_path / "per-setting",
                        TrainConfig(**{**esr, "esr_per_setting": True}))
    # same seed, same windows: only the training loss's reference power differs (drive 0 and 10 differ in power)
    assert per_setting.history[0]["train_loss"] != pytest.approx(pooled.history[0]["train_loss"], rel=1e-3)


def test_make_loss_builds_the_configured_terms():
    config = TrainConfig(l1_weight=0.3, stft_weight=0.2, pre_emphasis=False, esr_weight=0.7, dc_weight=0.4,
                         esr_emphasis=0.6, loss_skip=40)
    expected = CombinedLoss(l1_weight=0.3, stft_weight=0.2, pre_emphasis=False, esr_weight=0.7, dc_weight=0.4,
                            esr_emphasis=0.6, skip=40)
    pred, target = torch.randn(3, 700, generator=torch.Generator().manual_seed(1)), torch.randn(3, 700, generator=torch.Generator().manual_seed(2))
    assert float(make_loss(config, 700)(pred, target)) == pytest.approx(float(expected(pred, target)), rel=1e-6)
    emphasised = TrainConfig(l1_weight=1.0, stft_weight=0.0, pre_emphasis=True, loss_skip=0)
    assert float(make_loss(emphasised, 700)(pred, target)) == pytest.approx(
        float(CombinedLoss(l1_weight=1.0, stft_weight=0.0, pre_emphasis=True)(pred, target)), rel=1e-6)
    assert float(make_loss(emphasised, 700)(pred, target)) != pytest.approx(
        float(CombinedLoss(l1_weight=1.0, stft_weight=0.0, pre_emphasis=False)(pred, target)), rel=1e-3)
    assert loss_skip_for(TrainConfig(loss_skip=None), 2049) == 256 and isinstance(loss_skip_for(TrainConfig(loss_skip=None), 2049), int)
    with pytest.raises(ModelError) as error:
        make_loss(TrainConfig(loss_skip=700), 700)
    assert str(error.value) == ("the loss skip (700 samples) must be shorter than the window (700); "
                                "lower --loss-skip or use a longer --window")


def test_recoveries_compound_and_stop_at_the_limit(tiny_dataset, tmp_path, monkeypatch):
    # epoch 2 (calls 4..6) diverges at its first two steps, twice in a row (calls 6 and 7 on the first retry)
    _overflowing(monkeypatch, {4, 5, 6, 7})
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_skipped_steps": 2, "max_recoveries": 2, "lr": 1e-3,
                            "lr_schedule": "cosine", "warmup_steps": 0})
    result = train(tiny_dataset, CONCAT, tmp_path / "twice", config)
    assert len(result.recoveries) == 2 and result.history[1]["recoveries"] == 2
    assert all(text.startswith("epoch 2 diverged (2 steps in a row") for text in result.recoveries)
    state = torch.load(tmp_path / "twice" / "state.pt", weights_only=True)
    assert state["lr_scale"] == pytest.approx(0.09)
    monkeypatch.undo()
    full = train(tiny_dataset, CONCAT, tmp_path / "full", config)
    assert result.history[1]["lr"] == pytest.approx(0.09 * full.history[1]["lr"], rel=1e-9)  # the cosine rate, lowered twice
    _overflowing(monkeypatch, {4, 5, 6, 7})
    with pytest.raises(ModelError, match="diverged"):
        train(tiny_dataset, CONCAT, tmp_path / "once",
              TrainConfig(**{**config.to_dict(), "max_recoveries": 1}))


def test_checkpoints_and_state_record_what_resume_and_evaluation_read(tiny_dataset, tmp_path):
    result = train(tiny_dataset, CONCAT, tmp_path / "run", TINY)
    best_epoch = min(result.history, key=lambda row: row["valid_loss"])
    best, best_meta = load_weights(tmp_path / "run" / "best.safetensors")
    last, last_meta = load_weights(tmp_path / "run" / "last.safetensors")
    assert best_meta == {"epoch": best_epoch["epoch"], "valid_loss": best_epoch["valid_loss"]}
    assert last_meta == {"epoch": 2, "valid_loss": result.history[-1]["valid_loss"]}
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert _same(state["model"], last)  # the state carries its own copy of the weights
    assert state["train_seconds"] == pytest.approx(sum(row["seconds"] for row in result.history), abs=0.01)
    assert result.run_dir == tmp_path / "run" and result.resumed is False


def test_the_stop_reason_says_why_the_run_ended(tiny_dataset, tmp_path, monkeypatch):

    with monkeypatch.context() as flat:
        _flat_validation(flat)
        stopped = train(tiny_dataset, CONCAT, tmp_path / "early",
                        TrainConfig(**{**TINY.to_dict(), "max_epochs": 5, "early_stop_patience": 1}))
    assert stopped.stop_reason == "early_stop"
    monkeypatch.setattr(training, "time", _FakeTime(tick=7.0))
    budget = TrainConfig(**{**TINY.to_dict(), "max_epochs": 6, "lr_schedule": "cosine", "time_budget_s": 50.0})
    cut = train(tiny_dataset, CONCAT, tmp_path / "cut", budget)
    assert cut.stop_reason == "time_budget" and cut.epochs < 6
    monkeypatch.setattr(training, "time", _FakeTime(tick=7.0))
    # the budget runs out in the epoch that is the last anyway: the run ended at its epoch limit
    last = train(tiny_dataset, CONCAT, tmp_path / "last",
                 TrainConfig(**{**budget.to_dict(), "max_epochs": cut.epochs}))
    assert last.epochs == cut.epochs and last.stop_reason == "max_epochs"


def test_an_epoch_without_one_finite_step_diverges_and_says_so(tiny_dataset, tmp_path, monkeypatch):
    _overflowing(monkeypatch, {4, 5, 6})  # every step of epoch 2, fewer in a row than max_skipped_steps
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_skipped_steps": 5, "max_recoveries": 1})
    result = train(tiny_dataset, CONCAT, tmp_path / "recovered", config)
    assert len(result.recoveries) == 1 and result.recoveries[0].startswith("epoch 2 diverged (no step had a finite loss)")
    _overflowing(monkeypatch, {4, 5, 6})
    with pytest.raises(ModelError) as error:
        train(tiny_dataset, CONCAT, tmp_path / "stopped",
              TrainConfig(**{**config.to_dict(), "max_recoveries": 0}))
    assert str(error.value) == ("training diverged: 3 steps in a row had a non-finite loss or gradient (epoch 2); train again "
                                "with a lower learning rate (now 0.001, e.g. --lr 0.00033); the best weights so far stay in "
                                "best.safetensors")


def test_a_validation_loss_that_is_not_finite_diverges_and_says_so(tiny_dataset, tmp_path, monkeypatch):

    real, calls = training._evaluate_loss, []

    def nan_in_epoch_2(*args, **kwargs):
        calls.append(args[4] if len(args) > 4 else kwargs.get("power"))
        return float("nan") if len(calls) == 2 else real(*args, **kwargs)

    monkeypatch.setattr(training, "_evaluate_loss", nan_in_epoch_2)
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_recoveries": 1})
    result = train(tiny_dataset, CONCAT, tmp_path / "recovered", config)
    assert len(result.recoveries) == 1 and result.recoveries[0].startswith("epoch 2 diverged (the validation loss was not finite)")
    calls.clear()
    run = tmp_path / "stopped"
    with pytest.raises(ModelError) as error:
        train(tiny_dataset, CONCAT, run, TrainConfig(**{**config.to_dict(), "max_recoveries": 0}))
    assert str(error.value) == (f"the validation loss is not finite after epoch 2: the model diverged; lower the learning rate "
                                f"(now 0.001) and start again (the last finite epoch is kept in {run})")
    assert calls[0] is None  # pooled ESR: no per-setting table ...
    calls.clear()
    monkeypatch.setattr(training, "_evaluate_loss", lambda *args, **kwargs: calls.append(args[4]) or real(*args, **kwargs))
    per_setting = {**TINY.to_dict(), "l1_weight": 0.0, "stft_weight": 0.0, "esr_weight": 1.0, "esr_per_setting": True, "max_epochs": 1}
    train(tiny_dataset, CONCAT, tmp_path / "per-setting", TrainConfig(**per_setting))
    assert isinstance(calls[0], SettingPower)  # ... with it, validation divides by the valid split's setting powers


def test_a_resume_takes_the_time_spent_and_the_recoveries_from_the_state(tiny_dataset, tmp_path, monkeypatch):

    monkeypatch.setattr(training, "time", _FakeTime(tick=1.0))  # the clock moves 1 s per reading
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 3, "lr_schedule": "cosine", "time_budget_s": 3600.0})
    train(tiny_dataset, CONCAT, tmp_path / "run", TrainConfig(**{**config.to_dict(), "max_epochs": 1}))
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    state["train_seconds"] = 3599.0  # as if a recovery had spent most of the budget (its time is in no row)
    state["recoveries"] = ["epoch 1 diverged (as written by the first sitting)"]
    torch.save(state, tmp_path / "run" / "state.pt")
    resumed = train(tiny_dataset, CONCAT, tmp_path / "run", config, resume=True)
    assert resumed.resumed and resumed.epochs == 2 and resumed.stop_reason == "time_budget"
    assert resumed.recoveries == ["epoch 1 diverged (as written by the first sitting)"]


def test_carried_windows_are_scored_from_their_first_sample(tiny_dataset, tmp_path, monkeypatch):
    skips: list[int] = []

    class Recording(CombinedLoss):
        def forward(self, pred, target, stft_scale=1.0, power=None):
            if torch.is_grad_enabled():  # a training step (validation runs without gradients)
                skips.append(self.skip)
            return super().forward(pred, target, stft_scale, power)

    monkeypatch.setattr(training, "CombinedLoss", Recording)
    config = TrainConfig(**{**TINY.to_dict(), "window": 128, "tbptt_windows": 3, "loss_skip": None, "max_epochs": 1})
    train(tiny_dataset, CONCAT, tmp_path / "run", config)
    assert len(skips) >= 3 and skips == [16, 0, 0] * (len(skips) // 3)  # the zero-state window leaves out its warm-up


def test_a_second_recovery_restores_the_optimizer_state_that_the_first_one_did(tiny_dataset, tmp_path, monkeypatch):
    # epoch 2 (calls 4..): diverges, then a good step (call 6) moves Adam's moments, then diverges again;
    # going back must give the epoch's starting optimizer state both times, as when no step came between
    config = TrainConfig(**{**TINY.to_dict(), "max_epochs": 2, "max_skipped_steps": 2, "max_recoveries": 2, "lr": 1e-3})
    _overflowing(monkeypatch, {4, 5, 7, 8})
    train(tiny_dataset, CONCAT, tmp_path / "step-between", config)
    _overflowing(monkeypatch, {4, 5, 6, 7})
    train(tiny_dataset, CONCAT, tmp_path / "back-to-back", config)
    assert _same(load_weights(tmp_path / "step-between" / "last.safetensors")[0],
                 load_weights(tmp_path / "back-to-back" / "last.safetensors")[0])
