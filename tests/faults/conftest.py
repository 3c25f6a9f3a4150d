"""Fixtures and helpers of the fault-matrix tests: a tiny session and dataset (built once), the ``fxcap``
command run in this process through ``main()`` (exit status, stdout, stderr) or as a real process (for
SIGKILL and concurrent writers), and file hashes to show that what was written before is intact."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import fxcap
from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session

ROOT = Path(fxcap.__file__).parents[1]
TINY_TRAIN = ["--cond", "concat", "--preset", "quick", "--steps", "2", "--batch-size", "2", "--window", "256",
              "--no-evaluate", "--lr-schedule", "plateau"]
"""``fxcap train`` options of a run that takes a second or two per epoch."""


@dataclass
class Outcome:
    """What a command did: exit status and what it printed."""

    code: int
    out: str
    err: str

    def one_line_error(self, *fragments: str) -> str:
        """Assert exit status 1 with one ``error:`` line holding every fragment and no traceback; return the line."""
        assert self.code == 1, (self.code, self.out, self.err)
        assert "Traceback" not in self.err + self.out, self.err
        lines = [line for line in self.err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, self.err
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        return lines[0]


@pytest.fixture
def fxcap_main(monkeypatch, capsys):
    """``fxcap_main(*args, cwd=None)``: run the ``fxcap`` command's ``main()`` here; its :class:`Outcome`."""
    from fxcap.cli import main

    def run(*args: str, cwd: Path | None = None) -> Outcome:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["fxcap", *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main()
        captured = capsys.readouterr()
        return Outcome(int(done.value.code or 0), captured.out, captured.err)

    return run


def process_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def fxcap_process(args: list[str], cwd: Path, prelude: str = "", timeout: float = 120) -> Outcome:
    """Run ``fxcap ARGS`` as a real process (after ``prelude``, Python code that may patch fxcap to kill itself)."""
    code = f"import sys\n{prelude}\nsys.argv = ['fxcap'] + {list(map(str, args))!r}\nfrom fxcap.cli import main\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=process_env(),
                          timeout=timeout)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def tamper(path: Path, offset: int = 4096, length: int = 64) -> None:
    """Overwrite ``length`` bytes in the middle of a file (inverted); its size stays the same."""
    data = bytearray(Path(path).read_bytes())
    at = min(offset, len(data) // 2)
    data[at:at + length] = bytes(255 - b for b in data[at:at + length])
    Path(path).write_bytes(bytes(data))


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> hash)."""
    return {str(p.relative_to(folder)): sha(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def fault_session(tmp_path_factory) -> Path:
    """A complete dummy session: drive 0/10 at 44.1 kHz, 2 s (do not modify: copy it)."""
    return make_dummy_session(tmp_path_factory.mktemp("faults") / "s", knob_grid={"drive": [0, 10]}, sample_rate=44100,
                              seconds=2.0).root


@pytest.fixture(scope="session")
def fault_dataset(fault_session, tmp_path_factory) -> Path:
    """A dataset of ``fault_session`` (0.25 s segments, no WAV shards; do not modify: copy it)."""
    out = tmp_path_factory.mktemp("faults-data") / "od3"
    build_dataset([fault_session], out, BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    return out


@pytest.fixture
def workspace(tmp_path, fault_dataset) -> Path:
    """``tmp_path`` holding a copy of the dataset at ``datasets/od3`` (without its cache)."""
    shutil.copytree(fault_dataset, tmp_path / "datasets" / "od3", ignore=shutil.ignore_patterns(".cache"))
    return tmp_path


def metrics(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())
