"""fxcap plan next and fxcap record --plan adaptive through the command line (one-line errors included)."""

import json

import pytest

from fxcap.capture.plan import PlanConfig, make_plan, plan_to_dict
from fxcap.capture.record import record_session
from fxcap.capture.session import Session
from fxcap.cli.plan import setting_words
from tests.adaptive._toy import corner_backend, tiny_signal
from tests.faults._capture_helpers import assert_one_line_error, run_fxcap

QUICK = ["--quick-steps", "5"]


@pytest.fixture(scope="module")
def grid_session(tmp_path_factory):
    """A complete 2 x 2 grid of the toy device, recorded by the engine (the CLI cannot build the toy)."""
    config = PlanConfig(knobs=["drive", "tone"], steps=2)
    backend = corner_backend()
    root = tmp_path_factory.mktemp("plan") / "grid"
    record_session(root, backend, tiny_signal(), plan_to_dict(config, make_plan(backend.profile, config)))
    return root


def _manifest(root):
    return json.loads((root / "session.json").read_text())


def test_plan_next_prints_and_appends_then_record_resume_records_them(tmp_path, capsys, grid_session, monkeypatch):
    import shutil

    root = shutil.copytree(grid_session, tmp_path / "s")
    outcome = run_fxcap(capsys, "plan", "next", root, "--takes", "2", *QUICK)
    assert outcome.code == 0, outcome.text
    lines = outcome.out.strip().splitlines()
    assert lines[0].startswith("take-0005: drive=") and lines[1].startswith("take-0006: ") and "score" in lines[0]
    assert f"fxcap record --resume --out {root}" in lines[-1]
    manifest = _manifest(root)
    new = manifest["plan"]["takes"][4:]
    assert [t["origin"] for t in new] == ["adaptive", "adaptive"] and manifest["status"] == "interrupted"
    assert {(t["knobs"]["drive"], t["knobs"]["tone"]) for t in new}.isdisjoint({(0, 0), (0, 10), (10, 0), (10, 10)})
    assert manifest["plan"]["adaptive"]["budget"] == 6 and manifest["plan"]["adaptive"]["batches"][0]["candidates"] == 5
    # a second `plan next` before they are recorded is refused; resuming records exactly them
    refused = run_fxcap(capsys, "plan", "next", root, *QUICK)
    assert_one_line_error(refused, "2 planned takes not recorded yet", "fxcap record --resume")
    from fxcap.capture import capture as capture_module

    monkeypatch.setattr(capture_module, "make_backend", lambda *args, **kwargs: corner_backend())
    resumed = run_fxcap(capsys, "record", "--resume", "--out", root)
    assert resumed.code == 0, resumed.text
    after = _manifest(root)
    assert after["status"] == "complete" and [t["knobs"] for t in after["takes"][4:]] == [t["knobs"] for t in new]


def test_manual_knobs_are_said_in_words(grid_session):
    session = Session.open(grid_session)
    assert setting_words(session, {"drive": 7.5, "tone": 0.0}) == "drive=7.5, tone=0"
    session.manifest.backend = type(session.manifest.backend).from_dict({"name": "soundcard"})
    assert setting_words(session, {"drive": 7.5}) == "DRIVE to 7.5 (about 2.5 o'clock)"


@pytest.mark.parametrize("args, needles", [
    (["--takes", "0"], ["--takes must be 1 or more"]),
    (["--steps", "1"], ["--steps must be 2 or more"]),
    (["--quick-steps", "0"], ["steps must be a positive integer"]),
])
def test_plan_next_refuses_bad_options_in_one_line(capsys, grid_session, args, needles):
    before = (grid_session / "session.json").read_bytes()
    assert_one_line_error(run_fxcap(capsys, "plan", "next", grid_session, *args), *needles)
    assert (grid_session / "session.json").read_bytes() == before


def test_plan_next_refuses_what_it_cannot_extend_in_one_line(tmp_path, capsys, grid_session):
    assert_one_line_error(run_fxcap(capsys, "plan", "next", tmp_path / "nothing", *QUICK), "not a capture session")
    imported = tmp_path / "imported"
    import shutil

    shutil.copytree(grid_session, imported)
    data = _manifest(imported)
    data["backend"]["name"] = "import"
    (imported / "session.json").write_text(json.dumps(data))
    assert_one_line_error(run_fxcap(capsys, "plan", "next", imported, *QUICK), "imported from files")
    unswept = tmp_path / "unswept"
    shutil.copytree(grid_session, unswept)
    data = _manifest(unswept)
    data["plan"]["knobs"] = []
    (unswept / "session.json").write_text(json.dumps(data))
    assert_one_line_error(run_fxcap(capsys, "plan", "next", unswept, *QUICK), "sweeps no knob")


def test_record_adaptive_refuses_too_small_a_budget_and_misplaced_flags(tmp_path, capsys):
    outcome = run_fxcap(capsys, "record", "--knob", "drive", "--knob", "tone", "--plan", "adaptive", "--takes", "4",
                        "--out", tmp_path / "a")
    assert_one_line_error(outcome, "starts with 5 settings", "--takes 6")
    outcome = run_fxcap(capsys, "record", "--knob", "drive", "--steps", "3", "--quick-steps", "5", "--out", tmp_path / "b")
    assert_one_line_error(outcome, "--quick-steps applies to --plan adaptive only")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_score_by_is_for_the_adaptive_plan_and_names_the_known_ways(tmp_path, capsys, grid_session):
    outcome = run_fxcap(capsys, "record", "--knob", "drive", "--steps", "3", "--score-by", "output-change", "--out", tmp_path / "c")
    assert_one_line_error(outcome, "--score-by applies to --plan adaptive only")
    outcome = run_fxcap(capsys, "plan", "next", grid_session, "--score-by", "guess")
    assert_one_line_error(outcome, "--score-by must be committee, output-change or leave-one-out, not 'guess'")
    assert not (tmp_path / "c").exists()


def test_plan_next_by_output_change_picks_between_the_settings_that_differ_most(tmp_path, capsys, grid_session):
    import shutil

    root = shutil.copytree(grid_session, tmp_path / "s")
    outcome = run_fxcap(capsys, "plan", "next", root, "--takes", "1", "--score-by", "output-change")
    assert outcome.code == 0, outcome.text
    batch = _manifest(root)["plan"]["adaptive"]["batches"][0]
    new = _manifest(root)["plan"]["takes"][4]
    assert batch["score_by"] == "output_change"
    # of the 2 x 2 grid only (drive 10, tone 0) saturates: the middle of one of its two edges comes first
    assert (new["knobs"]["drive"], new["knobs"]["tone"]) in {(10.0, 5.0), (5.0, 0.0)}
