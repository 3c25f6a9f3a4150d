"""Shared pytest fixtures: a local S3 server (moto) and a local Ray instance, each started by the tests
themselves on this machine only and shut down when the tests that use them are done.

The suite runs on every CPU this process may use: with pytest-xdist installed (the ``dev`` extra),
``python -m pytest`` starts one worker per CPU (none where only one CPU is allowed, e.g. under
``taskset -c 1``), hands out whole test files, the longest first (:data:`FIRST_FILES`), and keeps the
files of :data:`SAME_WORKER` on one worker. ``-n N`` sets the number of workers, ``-n 0`` runs in this
process. docs/testing.md ("Suite time") has the measurements.
"""

from __future__ import annotations

import logging
import os

import pytest

from tests.extras import require

S3_BUCKET = "fxcap-test"

FIRST_FILES = ("tests/test_readme.py", "tests/recipes/test_recipes.py")
"""The longest test files (minutes each), run first and on different workers, so that everything else
fills in around them instead of waiting for them at the end."""

SAME_WORKER = {"tests/dataset/test_dataset_parallel.py": "ray", "tests/modeling/test_sweep.py": "ray",
               "tests/capture/backends/test_soundcard_jack.py": "jack", "tests/modeling/test_ab_jack.py": "jack"}
"""Files that run on the same worker (file -> group): the ``ray`` ones use :func:`ray_local`, started once; the
``jack`` ones share the JACK server, whose freewheel mode (on for some tests, off for the real-time ones)
is the whole server's, so they must not run at the same time."""


def _allowed_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Without ``-n``, run on every allowed CPU; hand out whole files (see the module docstring)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    if os.environ.get("PYTEST_XDIST_WORKER") or hasattr(config, "workerinput"):
        return  # a worker runs its share itself: it must never start workers of its own
    if config.option.numprocesses is None:
        config.option.numprocesses = "auto"
    if config.option.dist == "no":
        config.option.dist = "loadfile"


@pytest.hookimpl(optionalhook=True)  # the xdist hooks: unknown (and unused) without pytest-xdist
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per CPU this process may use (its affinity), and none for a single CPU
    (a worker process would only add its start-up); ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cpus = _allowed_cpus()
    return cpus if cpus > 1 else 0


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` keeping the files of :data:`SAME_WORKER` together, in collection order."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False  # keep the order of pytest_collection_modifyitems

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SAME_WORKER.get(path, path)

    return FileGroupScheduling(config, log)


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one of several workers: one thread each, child processes too
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(session, config, items):
    """:data:`FIRST_FILES` first, then files with ``slow`` tests, then the rest (each in collection order)."""
    def path(item) -> str:
        return item.nodeid.split("::", 1)[0]

    slow_files = {path(item) for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        if path(item) in FIRST_FILES:
            return FIRST_FILES.index(path(item))
        return len(FIRST_FILES) + (0 if path(item) in slow_files else 1)

    items.sort(key=rank)  # stable: the order within each group is pytest's


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """``s3://fxcap-test``: an empty bucket on a moto S3 server on 127.0.0.1 (fake credentials via env vars),
    and a cache folder of its own for remote datasets (``FXCAP_CACHE_DIR``: not the user's, and not shared
    with another test process).

    Yields the bucket URI. Skipped when moto's server is not installed (failed in CI: tests/extras.py).
    """
    server_module = require("moto.server", "scale")
    boto3 = require("boto3", "scale")
    from fxcap.dataset.remote import clear_filesystem_cache

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "fxcap-test-key",
        "AWS_SECRET_ACCESS_KEY": "fxcap-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/fxcap-test-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/fxcap-test-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "FXCAP_CACHE_DIR": str(tmp_path_factory.mktemp("remote-cache")),
    }.items():
        patch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        patch.delenv(name, raising=False)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        endpoint = f"http://{host}:{port}"
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        clear_filesystem_cache()
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=S3_BUCKET)
        yield f"s3://{S3_BUCKET}"
    finally:
        server.stop()
        patch.undo()
        clear_filesystem_cache()


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 CPUs and no dashboard; shut down at the end. Skipped without Ray (failed in CI)."""
    ray = require("ray", "scale")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
