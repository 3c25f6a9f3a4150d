"""tests/extras.py: a test that needs a missing optional extra skips on a developer's machine and
fails in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NEEDS_MISSING = '''
from tests.extras import require

require("fxcap_no_such_module", "plugins")


def test_uses_it():
    pass
'''


@pytest.mark.parametrize("ci, outcome", [(None, "1 skipped"), ("true", "error"), ("false", "1 skipped"), ("1", "error")])
def test_missing_extra_skips_locally_and_fails_in_ci(tmp_path, ci, outcome):
    (tmp_path / "test_needs_missing.py").write_text(NEEDS_MISSING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert outcome in done.stdout, done.stdout
    assert "fxcap[plugins]" in done.stdout
    if outcome == "error":
        assert done.returncode != 0 and "CI is set" in done.stdout
    else:
        assert done.returncode in (0, 5)  # 5: nothing ran (the module was skipped)
