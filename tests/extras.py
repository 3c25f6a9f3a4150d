"""Optional extras in the tests: skipped with the reason on a developer's machine without them, never
in CI.

``fxcap[all]`` is what CI installs, so a missing extra there is a broken installation, not a reason to
skip: with the ``CI`` environment variable set (CI services set ``CI=true``; ``.ci/run`` does too) a
test that needs a missing extra fails, as the JACK tests do under ``FXCAP_REQUIRE_JACK=1``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set to anything but an empty/false value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str, remedy: str = "install the project with its extras: pip install -e '.[all]'") -> None:
    """Skip (the current test, or the module when called at import) because of ``reason``; in CI, fail
    with ``remedy``."""
    if in_ci():
        pytest.fail(f"CI is set but {reason}; {remedy}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, extra: str) -> ModuleType:
    """``module`` imported, or :func:`missing` with a reason naming the fxcap extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{module} is not installed ({exc}; pip install 'fxcap[{extra}]')")
        raise  # not reached: missing() skips or fails


def available(*modules: str) -> bool:
    """Whether every module can be imported (for ``skipif``-style checks; pair with :func:`missing`)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)
