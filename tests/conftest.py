"""Shared pytest fixtures: a local S3 server (moto) and a local Ray instance, each started by the tests
themselves on this machine only and shut down when the tests that use them are done."""

from __future__ import annotations

import logging

import pytest

from tests.extras import require

S3_BUCKET = "fxcap-test"


@pytest.fixture(scope="module")
def s3_server():
    """``s3://fxcap-test``: an empty bucket on a moto S3 server on 127.0.0.1 (fake credentials via env vars).

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
