"""Fault matrix, remote datasets: an unsupported scheme and a store that never answers end as one line.

No network is used: the store that hangs is a stand-in for pyarrow's filesystem (as a ``gs://`` bucket
behaves without a network), and the timeout is set short through ``FXCAP_REMOTE_TIMEOUT``."""

from __future__ import annotations

import threading
import time

import pytest

from fxcap.dataset import remote
from tests.faults._capture_helpers import assert_one_line_error, run_fxcap


@pytest.fixture
def hanging(monkeypatch):
    """Every remote filesystem opens, then never answers (until the test ends)."""
    release = threading.Event()

    class Silent:
        def get_file_info(self, *_args):
            release.wait(30)
            raise OSError("released")

    monkeypatch.setattr(remote, "open_pyarrow_filesystem", lambda uri: (Silent(), ""))
    monkeypatch.setenv("FXCAP_REMOTE_TIMEOUT", "0.3")
    remote.clear_filesystem_cache()
    yield release
    release.set()
    remote.clear_filesystem_cache()


@pytest.mark.parametrize("uri", ["ftp://example.org/datasets/od3", "nosuchscheme://bucket/od3"])
def test_an_unsupported_scheme_is_one_line_listing_the_supported_ones(capsys, uri):
    line = assert_one_line_error(run_fxcap(capsys, "dataset", "info", uri), f"{uri}: no filesystem for {uri.split(':')[0]}:// here")
    for scheme in ("file://", "s3://", "gs://", "memory://"):
        assert scheme in line


@pytest.mark.parametrize("uri", ["gs://bucket/od3", "s3://bucket/od3"])
def test_a_store_that_never_answers_times_out_in_one_line(capsys, hanging, uri):
    start = time.monotonic()
    assert_one_line_error(run_fxcap(capsys, "dataset", "info", uri), f"{uri}/dataset.json: no answer within 0.3 s",
                          "check the network", "FXCAP_REMOTE_TIMEOUT")
    assert time.monotonic() - start < 2.0


def test_opening_a_store_that_hangs_times_out_too(capsys, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(remote, "open_pyarrow_filesystem", lambda uri: release.wait(30))
    monkeypatch.setenv("FXCAP_REMOTE_TIMEOUT", "0.2")
    remote.clear_filesystem_cache()
    try:
        start = time.monotonic()
        assert_one_line_error(run_fxcap(capsys, "dataset", "validate", "s3://bucket/od3"), "opening s3://bucket: no answer within 0.2 s")
        assert time.monotonic() - start < 2.0
    finally:
        release.set()


def test_a_bad_timeout_setting_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("FXCAP_REMOTE_TIMEOUT", "soon")
    remote.clear_filesystem_cache()
    assert_one_line_error(run_fxcap(capsys, "dataset", "info", "gs://bucket/od3"), "FXCAP_REMOTE_TIMEOUT must be a positive number of seconds, not 'soon'")
