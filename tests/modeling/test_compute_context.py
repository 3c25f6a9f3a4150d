"""The compute context: threads and the reference path set in one place and restored; no global RNG use."""

from __future__ import annotations

import pytest
import torch

from fxcap.modeling.compute_context import compute_context, current_context, default_context, in_compute_context
from fxcap.modeling.fast import threads


def test_context_sets_and_restores_threads_and_reference():
    before = torch.get_num_threads()
    with compute_context(threads=2) as outer:
        assert torch.get_num_threads() == 2 and outer.threads == 2 and not outer.reference
        with compute_context(reference=True) as inner:
            assert inner.threads == 2 and inner.reference and current_context() is inner
            assert torch.get_num_threads() == 2  # threads not given: left as they are
        assert current_context() is outer
        with pytest.raises(RuntimeError), compute_context(threads=1, reference=True):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2 and not current_context().reference  # restored on an exception too
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive integer"):
        with compute_context(threads=0):
            pass


def test_the_environment_is_read_once_into_the_default_context():
    assert default_context({"FXCAP_REFERENCE": "1"}).reference
    assert default_context({"FXCAP_REFERENCE": "yes"}).reference
    assert not default_context({"FXCAP_REFERENCE": "0"}).reference
    assert not default_context({}).reference


def test_decorated_function_runs_in_the_context_its_arguments_ask_for():
    from fxcap.modeling.compute_context import ComputeContext

    @in_compute_context(lambda n=1, **_: ComputeContext(threads=n))
    def work(x, n=1):
        return torch.get_num_threads(), x

    before = torch.get_num_threads()
    assert work("a", n=2) == (2, "a") and work("b") == (1, "b")
    assert torch.get_num_threads() == before


def test_thread_pool_shuts_down_and_restarts():
    seen = []
    threads.parallel(lambda i, a, b: seen.append((a, b)), [(0, 1), (1, 2)])
    assert threads._pool is not None
    threads.shutdown()
    assert threads._pool is None
    threads.parallel(lambda i, a, b: seen.append((a, b)), [(0, 1), (1, 2)])
    assert sorted(seen) == [(0, 1), (0, 1), (1, 2), (1, 2)]


def test_training_restores_threads_and_does_not_depend_on_the_global_rng(tiny_dataset, tmp_path):
    """train() runs in its config's thread count and builds its model from a forked RNG seeded with the
    training seed, so the global RNG's state before it does not matter."""
    from fxcap.modeling.checkpoint import load_weights
    from fxcap.modeling.registry import ModelConfig
    from fxcap.modeling.train import TrainConfig, train

    config = TrainConfig(window=256, batch_size=2, steps_per_epoch=1, max_epochs=1, valid_windows=2, threads=1, seed=3)
    model_config = ModelConfig(cond="concat", cell="gru", num_knobs=1, seed=None)
    weights = []
    with compute_context(threads=2):
        for n, global_seed in enumerate((1, 2)):
            torch.manual_seed(global_seed)
            train(tiny_dataset, model_config, tmp_path / str(n), config)
            assert torch.get_num_threads() == 2
            weights.append(load_weights(tmp_path / str(n) / "last.safetensors")[0])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
