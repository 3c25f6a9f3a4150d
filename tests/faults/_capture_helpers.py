"""Helpers of the capture / import / render / remote fault-matrix tests.

``run_fxcap`` runs the ``fxcap`` command in this process through ``main()`` (so the CLI boundary's
translation of errors is what is tested) and returns its exit status and output; ``hashes`` records
the files of a folder so a test can show that what was written before is intact.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fxcap.capture.signal import band_mix, save_signal, wrap_program
from fxcap.capture.virtual import RigImpairments

RATE = 48000
FAST_RIG = RigImpairments(latency_samples=123.4, gain_db=-3.0, noise_dbfs=-95.0, drift_ppm=0.0, tail_samples=2000)
"""A rig without clock drift (no resampling): the quickest takes to align."""


@dataclass
class Outcome:
    """What one ``fxcap`` command did."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_fxcap(capsys: pytest.CaptureFixture, *args: object) -> Outcome:
    """Run ``fxcap ARGS`` in this process through ``fxcap.cli.main`` and return its exit status and output."""
    from fxcap.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return Outcome(int(info.value.code or 0), captured.out, captured.err)


def assert_one_line_error(outcome: Outcome, *needles: str, code: int = 1) -> str:
    """The command exited with ``code`` after exactly one line on stderr holding every needle (``error: ...``;
    after Ctrl-C, status 130, ``interrupted; ...``); no traceback."""
    assert "Traceback" not in outcome.text, outcome.text
    assert outcome.code == code, outcome.text
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted; " if code == 130 else "error: "), outcome.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root``."""
    return {str(p.relative_to(root)): sha256(p) for p in sorted(Path(root).rglob("*")) if p.is_file()}


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    sf.write(str(path), np.asarray(audio, dtype=np.float32), rate, subtype="FLOAT")
    return path


def program_wav(folder: Path, seconds: float = 3.0) -> Path:
    """A few seconds of program material for ``fxcap record --signal`` (a short, quick capture)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_wav(folder / "program.wav", band_mix(RATE, seconds, np.random.default_rng(3)))


def short_signal(seconds: float = 3.0):
    """The capture signal made of :func:`program_wav`'s material (markers, calibration, validation)."""
    return wrap_program(band_mix(RATE, seconds, np.random.default_rng(3)), RATE, peak_dbfs=-3.0, preset="short")


def save_short_signal(folder: Path):
    """``folder/capture.wav`` (+ its layout) and the signal."""
    signal = short_signal()
    save_signal(signal, folder / "capture.wav")
    return signal


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
