"""Fixtures for the modeling tests: a tiny dataset (one conditioning knob, drive 0/5/10 with 5 held out,
3 s at 44.1 kHz) and a Concat-GRU run trained on it for a few steps, built once per session."""

from __future__ import annotations

import pytest

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session
from fxcap.modeling.compute_context import compute_context


@pytest.fixture(autouse=True)
def one_thread():
    """Every modeling test computes on one thread (tiny ops: intra-op threads only add overhead on a
    shared machine); the process's setting comes back afterwards."""
    with compute_context(threads=1):
        yield


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    session = make_dummy_session(root / "session", knob_grid={"drive": [0, 5, 10]}, sample_rate=44100, seconds=3.0)
    config = BuildConfig(split=SplitConfig(segment_seconds=0.25), holdout=("drive=5",), write_wav=False)
    build_dataset([session.root], root / "dataset", config)
    return root / "dataset"


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """A Concat-GRU run folder (1 epoch of 3 steps): untrained enough that its output's energy differs
    clearly from the target's, trained enough to depend on the knob."""
    from fxcap.modeling.registry import ModelConfig
    from fxcap.modeling.train import TrainConfig, train

    run = tmp_path_factory.mktemp("runs") / "concat"
    config = TrainConfig(window=512, batch_size=4, steps_per_epoch=3, max_epochs=1, valid_windows=8, threads=1)
    train(tiny_dataset, ModelConfig(cond="concat", cell="gru", num_knobs=1), run, config)
    return run
