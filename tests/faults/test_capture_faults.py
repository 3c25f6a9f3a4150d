"""Fault matrix, capture: Ctrl-C, bad options, very long plans, damaged session files, take paths and
hashes, and a resumed simulated session that must equal an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fxcap
from fxcap.capture.backends.sim import SimBackend
from fxcap.capture.budget import confirm_capture, estimate_capture
from fxcap.capture.plan import PlanConfig, PlannedTake, make_plan, plan_to_dict
from fxcap.capture.record import record_session, resume_session
from fxcap.capture.session import Session
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import CaptureError, FxcapError
from fxcap.io import atomic_write_json, atomic_write_wav
from tests.faults._capture_helpers import (
    FAST_RIG,
    RATE,
    assert_one_line_error,
    copy_tree,
    hashes,
    program_wav,
    run_fxcap,
    short_signal,
)

ROOT = Path(fxcap.__file__).parents[1]


def _backend(**kwargs) -> SimBackend:
    return SimBackend("OD-3", RATE, impairments=FAST_RIG, seed=5, **kwargs)


def _plan(backend: SimBackend, steps: int = 2) -> dict:
    config = PlanConfig(knobs=["drive"], steps=steps)
    return plan_to_dict(config, make_plan(backend.profile, config))


@pytest.fixture(scope="module")
def signal():
    return short_signal()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, signal) -> Path:
    """A complete two-take session of the virtual OD-3 (copy it before changing it)."""
    backend = _backend()
    return record_session(tmp_path_factory.mktemp("rec") / "s", backend, signal, _plan(backend)).root


def _edit_manifest(session: Path, edit) -> None:
    data = json.loads((session / "session.json").read_text())
    edit(data)
    atomic_write_json(session / "session.json", data)


# -- case: Ctrl-C during a capture (a real process and a real SIGINT) --------------------------------------
@pytest.mark.slow  # a real process and a real SIGINT: about 15 s
def test_ctrl_c_during_capture_marks_the_session_interrupted_and_names_the_resume_command(tmp_path, capsys):
    steps = 3
    program = program_wav(tmp_path / "in")
    out = tmp_path / "session"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    command = [sys.executable, "-m", "fxcap.cli", "record", "--knob", "drive", "--steps", str(steps), "--signal", str(program), "--out", str(out)]
    # Ctrl-C's default action in the child: a test run started in the background (`pytest &` in a
    # script) ignores SIGINT, the child would inherit that, and Python then installs no handler.
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # wait for the first take on disk
        try:
            if json.loads((out / "session.json").read_text())["takes"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    process.send_signal(signals.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last == f"interrupted; nothing written so far is lost; continue with `fxcap record --resume --out {out}`"
    manifest = json.loads((out / "session.json").read_text())
    assert manifest["status"] == "interrupted" and 1 <= len(manifest["takes"]) < steps
    kept = hashes(out / "takes")
    first = manifest["takes"][0]
    assert kept[f"{first['take_id']}/output.wav"] == first["sha256"]

    outcome = run_fxcap(capsys, "record", "--resume", "--out", out)  # the advice works
    assert outcome.code == 0, outcome.text
    assert json.loads((out / "session.json").read_text())["status"] == "complete"
    assert {k: v for k, v in hashes(out / "takes").items() if k in kept} == kept


# -- case: options that cannot mean anything ------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--max-attempts", "0"], "--max-attempts must be 1 or more"),
        (["--knob", "drive", "--reference-every", "-1"], "--reference-every must be 0 (never)"),
        (["--knob", "drive", "--steps", "0"], "at least 2 steps"),
        (["--steps", "-3"], "at least 2 steps"),  # no --knob: still not silently ignored
        (["--plan", "lhs", "--knob", "drive", "--takes", "0"], "--takes must be 1 or more"),
    ],
)
def test_meaningless_record_options_are_one_line_errors_before_anything_is_written(tmp_path, capsys, options, needle):
    out = tmp_path / "session"
    assert_one_line_error(run_fxcap(capsys, "record", "--preset", "short", *options, "--out", out), needle)
    assert not out.exists()


def test_a_capture_of_many_hours_shows_the_estimate_and_needs_yes(tmp_path, capsys, monkeypatch):
    program = program_wav(tmp_path / "in")
    out = tmp_path / "session"
    line = assert_one_line_error(run_fxcap(capsys, "record", "--knob", "drive", "--steps", "5000", "--signal", program, "--out", out),
                                 "5000 takes", "hours of audio", "pass --yes")
    assert "more than 2.0 hours or 200 takes" in line and not out.exists()

    def started(*_args, **_kwargs):
        raise FxcapError("the capture started")

    monkeypatch.setattr("fxcap.capture.capture.record_session", started)
    assert_one_line_error(run_fxcap(capsys, "record", "--knob", "drive", "--steps", "5000", "--signal", program, "--out", out, "--yes"),
                          "the capture started")
    estimate = estimate_capture([PlannedTake(i + 1, {"drive": 1.0}) for i in range(300)], signal_seconds=10.0)
    asked = []
    confirm_capture(estimate, confirm=lambda question: asked.append(question) or True)  # a terminal: asked, agreed
    assert "300 takes" in asked[0]
    with pytest.raises(CaptureError, match="pass --yes"):
        confirm_capture(estimate, confirm=lambda question: False)
    confirm_capture(estimate_capture([PlannedTake(i + 1, {}) for i in range(11)], signal_seconds=200.0))  # 40 minutes: no question


# -- case: damaged session files ---------------------------------------------------------------------------
def test_garbage_signal_json_and_a_non_numeric_plan_index_are_one_line_errors(recorded, tmp_path, capsys):
    session = copy_tree(recorded, tmp_path / "a")
    _edit_manifest(session, lambda d: d.update(status="failed"))
    (session / "signal.json").write_text("{ this is not json")
    before = hashes(session)
    assert_one_line_error(run_fxcap(capsys, "record", "--resume", "--out", session), f"{session / 'signal.json'} is not a valid signal layout")
    (session / "signal.json").write_text(json.dumps({"regions": [{"name": "x"}], "sample_rate": "fast"}))
    assert_one_line_error(run_fxcap(capsys, "record", "--resume", "--out", session), "signal.json is not a valid signal layout")
    assert {k: v for k, v in hashes(session).items() if k != "signal.json"} == {k: v for k, v in before.items() if k != "signal.json"}

    session = copy_tree(recorded, tmp_path / "b")
    _edit_manifest(session, lambda d: (d.update(status="failed"), d["plan"]["takes"][1].update(index="two")))
    before = hashes(session)
    assert_one_line_error(run_fxcap(capsys, "record", "--resume", "--out", session), "session.json: the plan is damaged", "'two'")
    assert hashes(session) == before


# -- case: take paths and take hashes ----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["../other/takes/take-0001/output.wav", "absolute"])
def test_a_take_path_outside_the_session_is_refused_when_the_session_is_read(tmp_path, capsys, where):
    other = make_dummy_session(tmp_path / "other", seconds=1.0)
    session = make_dummy_session(tmp_path / "mine", seconds=1.0, seed=1)
    path = str(other.root / "takes" / "take-0001" / "output.wav") if where == "absolute" else where
    _edit_manifest(session.root, lambda d: d["takes"][0].update(output_file=path))
    before = hashes(tmp_path)
    assert_one_line_error(run_fxcap(capsys, "build-dataset", session.root, "--out", tmp_path / "ds"),
                          f"the take take-0001 is {path!r}, outside the session folder")
    assert hashes(tmp_path) == before and not (tmp_path / "ds").exists()


def test_a_replaced_take_is_caught_and_an_unhashed_old_session_only_warns(tmp_path, capsys, caplog):
    session = make_dummy_session(tmp_path / "s", seconds=2.0)
    take = session.root / session.takes[0].output_file
    atomic_write_wav(take, -3.0 * session.take_output(session.takes[0]), session.sample_rate)  # the replaced take
    before = hashes(tmp_path)
    assert_one_line_error(run_fxcap(capsys, "build-dataset", session.root, "--out", tmp_path / "ds"),
                          f"{take} does not match the sha256", "restore the original file or re-record the take")
    assert hashes(tmp_path) == before and not (tmp_path / "ds").exists()

    _edit_manifest(session.root, lambda d: [t.pop("sha256") for t in d["takes"]])  # a session of an older fxcap
    outcome = run_fxcap(capsys, "build-dataset", session.root, "--out", tmp_path / "ds", "--segment-seconds", "0.2")
    assert outcome.code == 0, outcome.text
    assert any("have no sha256" in r.getMessage() for r in caplog.records)


# -- case: a resumed simulated session equals an uninterrupted one -------------------------------------------
def test_a_resumed_simulated_session_equals_an_uninterrupted_one_exactly(tmp_path, signal):
    backend = _backend()
    whole = record_session(tmp_path / "whole", backend, signal, _plan(backend, steps=3))
    with pytest.raises(CaptureError, match="--resume"):
        lost = _backend(fault_plan={2: "lost"})  # the interface is lost at take 2
        record_session(tmp_path / "resumed", lost, signal, _plan(lost, steps=3))
    assert Session.open(tmp_path / "resumed").manifest.status == "failed"
    resumed = resume_session(tmp_path / "resumed", _backend())  # a new process: the call counter starts again
    assert resumed.manifest.status == "complete"
    assert len(resumed.takes) == len(whole.takes) == 3
    for mine, theirs in zip(resumed.takes, whole.takes):  # sample for sample (a WAV's PEAK chunk holds a time stamp)
        assert np.array_equal(resumed.take_output(mine), whole.take_output(theirs))
        assert np.array_equal(resumed.take_raw(mine), whole.take_raw(theirs))
