"""Fixtures for dataset tests: tiny synthetic sessions (4 s at 48 kHz, 0.25 s segments) and datasets built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session

GRID = {"drive": [0.0, 5.0, 10.0], "tone": [2.0, 8.0]}
SEGMENT = SplitConfig(segment_seconds=0.25)


def _small_config(**kwargs) -> BuildConfig:
    kwargs.setdefault("split", SEGMENT)
    return BuildConfig(**kwargs)


@pytest.fixture
def small_config():
    """``small_config(**BuildConfig fields)``: a BuildConfig with 0.25 s segments unless told otherwise."""
    return _small_config


@pytest.fixture(scope="session")
def dummy_session(tmp_path_factory):
    """Six takes (drive 0/5/10 x tone 2/8), take index 1 failed its checks."""
    return make_dummy_session(tmp_path_factory.mktemp("sessions") / "s1", knob_grid=GRID, seconds=4.0, failed_takes=[1])


@pytest.fixture(scope="session")
def built(tmp_path_factory, dummy_session) -> Path:
    """A dataset built once from ``dummy_session``; tests that modify it copy it first."""
    out = tmp_path_factory.mktemp("datasets") / "od3"
    build_dataset([dummy_session.root], out, _small_config())
    return out
