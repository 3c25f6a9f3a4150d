"""The HTML report: sections, embedded figures and audio, measured numbers, missing inputs, the CLI.

One tiny workspace (a 2 s dummy OD-3 session with drive 0/5/10, its dataset and two one-epoch runs)
is made once for the module; each report build takes a second or two.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from fxcap.capture.profiles import LA2A, OD3
from fxcap.capture.session import Session
from fxcap.cli import app
from fxcap.dataset import BuildConfig, SplitConfig, build_dataset
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import ModelError, ReportError
from fxcap.modeling.evaluate import evaluate_run
from fxcap.modeling.registry import ModelConfig
from fxcap.modeling.train import TrainConfig, load_run, train
from fxcap.report import ExcerptConfig, ReportConfig, build_report, parse_setting, resolve_inputs
from fxcap.report import measure
from fxcap.report.selection import SettingPoint, choose_points, response_slices, swept_knobs

RATE = 44100
DRIVES = [0.0, 5.0, 10.0]
SECTIONS = ("summary", "capture-quality", "knob-response", "spectrograms", "audio", "training", "comparison", "notes")
SMALL = ReportConfig(excerpts=ExcerptConfig(preroll_seconds=0.02, audio_seconds=0.2), dpi=60)
PNG_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
WAV_URI = re.compile(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("work")
    session = make_dummy_session(root / "sessions" / "od3", knob_grid={"drive": DRIVES}, sample_rate=RATE, seconds=2.0)
    build_dataset([session.root], root / "datasets" / "od3", BuildConfig(split=SplitConfig(segment_seconds=0.25), write_wav=False))
    for cond in ("concat", "film"):
        run = root / "runs" / "od3" / f"{cond}-gru-s0"
        train(root / "datasets" / "od3", ModelConfig(cond=cond, num_knobs=1), run,
              TrainConfig(window=512, batch_size=4, steps_per_epoch=2, max_epochs=1, threads=1, valid_windows=4))
        evaluate_run(run)
    return root


def _runs(root: Path) -> list[Path]:
    return sorted((root / "runs" / "od3").iterdir())


@pytest.fixture(scope="module")
def full(workspace) -> Path:
    out = workspace / "reports" / "full"
    return build_report(out, workspace / "sessions" / "od3", workspace / "datasets" / "od3", _runs(workspace), config=SMALL)


def _section(html: str, section_id: str) -> str:
    start = html.index(f'<section id="{section_id}">')
    return html[start : html.index("</section>", start)]


def _report_json(path: Path) -> dict:
    return json.loads((path.parent / "report.json").read_text(encoding="utf-8"))


# -- the full report -----------------------------------------------------------------------------------------


def test_full_report_has_every_section_and_decodable_embeds(full):
    html = full.read_text(encoding="utf-8")
    for section_id in SECTIONS:
        assert f'<section id="{section_id}">' in html and f'href="#{section_id}"' in html
    assert "http://" not in html and "https://" not in html  # nothing fetched when opened

    images = [base64.b64decode(m) for m in PNG_URI.findall(html)]
    written = {p.name: p.read_bytes() for p in full.parent.glob("*.png")}
    assert set(written) == {"capture_quality.png", "knob_response_drive.png", "spectrograms.png", "training_curves.png",
                            "esr_per_setting.png"}
    assert sorted(images) == sorted(written.values())  # every PNG written is the one embedded
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 150

    clips = [base64.b64decode(m) for m in WAV_URI.findall(html)]
    assert len(clips) == 1 + 3 * 3  # dry, then device + 2 models at drive 0, 5, 10
    for data in clips:
        info = sf.info(io.BytesIO(data))
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        assert abs(info.frames - 0.2 * RATE) <= 1
    assert full.stat().st_size < 2_000_000


def test_capture_quality_table_lists_every_take(full, workspace):
    session = Session.open(workspace / "sessions" / "od3")
    section = _section(full.read_text(encoding="utf-8"), "capture-quality")
    data = _report_json(full)["capture_quality"]
    assert [row["take_id"] for row in data] == [t.take_id for t in session.takes]
    for row, take in zip(data, session.takes):
        assert row["latency_samples"] == take.alignment.latency_samples
        assert row["drift_ppm"] == take.alignment.drift_ppm
        # the testing helper stores a linear ESR; the report shows dB
        assert row["repeatability_db"] == pytest.approx(10 * math.log10(take.check("repeatability").value))
        assert f"{take.alignment.latency_samples:.2f}" in section and take.take_id in section


def _tone(session: Session) -> tuple[int, int]:
    region = session.layout.region("calibration")
    return region.start + int(0.2 * region.length), region.stop - int(0.1 * region.length)


def _thd_by_least_squares(y: np.ndarray, f0: float, rate: int, harmonics: int = 10) -> float:
    """THD from a least-squares fit of sines at the harmonics (independent of the report's FFT method)."""
    t = np.arange(y.size) / rate
    columns = [np.ones_like(t)]
    for h in range(1, harmonics + 1):
        columns += [np.sin(2 * np.pi * h * f0 * t), np.cos(2 * np.pi * h * f0 * t)]
    coef, *_ = np.linalg.lstsq(np.stack(columns, axis=1), y.astype(np.float64), rcond=None)
    power = coef[1::2] ** 2 + coef[2::2] ** 2
    return 10 * math.log10(power[1:].sum() / power[0])


def test_device_knob_response_matches_a_direct_computation(full, workspace):
    session = Session.open(workspace / "sessions" / "od3")
    response = _report_json(full)["knob_response"]
    assert response["tone_hz"] == pytest.approx(1000.0, abs=0.5)
    assert response["plotted"] == ["gain_db", "thd_db"]
    assert [p["knobs"]["drive"] for p in response["points"]] == DRIVES
    start, stop = _tone(session)
    x = session.input_audio()
    for point, measured in zip(response["points"], response["device"]):
        (take_id,) = point["take_ids"]
        y = session.take_output(take_id)
        rms_in, rms_out = np.sqrt(np.mean(x[start:stop] ** 2.0)), np.sqrt(np.mean(y[start:stop] ** 2.0))
        assert measured["gain_db"] == pytest.approx(20 * math.log10(rms_out / rms_in), abs=1e-6)
        assert measured["thd_db"] == pytest.approx(_thd_by_least_squares(y[start:stop], 1000.0, RATE), abs=0.5)
    device = response["device"]
    # the dummy pedal distorts and compresses more at higher drive
    assert device[0]["thd_db"] < device[1]["thd_db"] < device[2]["thd_db"]
    assert device[0]["compression_db"] < device[1]["compression_db"] < device[2]["compression_db"]
    assert response["slices"] == [{"knob": "drive", "fixed": {}, "points": [0, 1, 2]}]


def test_model_knob_response_matches_a_direct_forward_pass(full, workspace):
    session = Session.open(workspace / "sessions" / "od3")
    response = _report_json(full)["knob_response"]
    tone = next(e for e in response["excerpts"] if e["role"] == "tone")
    x = session.input_audio()
    assert set(response["models"]) == {"concat-gru-s0", "film-gru-s0"}
    for run in _runs(workspace):
        model, _ = load_run(run)
        for drive, measured in zip(DRIVES, response["models"][run.name]):
            knobs = torch.tensor([[drive / 5.0 - 1.0]])  # drive is the only conditioning knob: 0..10 -> -1..1
            with torch.no_grad():
                y, _ = model(torch.from_numpy(x[tone["preroll_start"] : tone["stop"]])[None], knobs)
            y = y[0, tone["start"] - tone["preroll_start"] :].numpy()
            assert measured["gain_db"] == pytest.approx(measure.gain_db(x[tone["start"] : tone["stop"]], y), abs=1e-3)


def test_comparison_table_marks_the_best_value_of_each_column(full, workspace):
    section = _section(full.read_text(encoding="utf-8"), "comparison")
    rows = _report_json(full)["comparison"]["test"]
    assert {r["run"] for r in rows} == {"concat-gru-s0", "film-gru-s0"}
    best_esr = min(r["esr"] for r in rows)
    assert f'<td class="best">{best_esr:.4g}</td>' in section
    worst_esr = max(r["esr"] for r in rows)
    assert f"<td>{worst_esr:.4g}</td>" in section
    training = _section(full.read_text(encoding="utf-8"), "training")
    assert "concat-gru-s0" in training and "film-gru-s0" in training


def test_esr_heat_map_shows_every_tested_setting_with_the_grade_words(full, workspace):
    from fxcap.report.build import per_setting_tables
    from fxcap.report.runs import load_report_runs

    section = _section(full.read_text(encoding="utf-8"), "comparison")
    assert "ESR per knob setting" in section and "below 0.01: great" in section
    tables = per_setting_tables(load_report_runs(_runs(workspace)), "test")
    assert set(tables) == {"concat-gru-s0", "film-gru-s0"}
    for table in tables.values():  # one cell per tested drive setting, the ESRs the evaluation wrote
        assert sorted(table["knob_drive"]) == sorted(table["knob_drive"].unique())
        assert len(table) >= 3 and (table["esr"] > 0).all()


# -- missing parts ---------------------------------------------------------------------------------------------


def test_session_only_report_says_what_is_missing(workspace):
    path = build_report(workspace / "reports" / "session-only", session=workspace / "sessions" / "od3",
                        settings=[{"drive": 10}], config=SMALL)
    html = path.read_text(encoding="utf-8")
    for section_id in SECTIONS:
        assert f'<section id="{section_id}">' in html
    assert "No training run given" in _section(html, "training")
    assert "No evaluated run" in _section(html, "comparison")
    assert len(WAV_URI.findall(html)) == 2  # dry + device at drive=10
    data = _report_json(path)
    assert data["knob_response"]["models"] == {} and data["listening"]["points"] == [2]
    assert not (path.parent / "training_curves.png").exists()


def test_runs_only_report_shows_training_and_comparison(workspace):
    path = build_report(workspace / "reports" / "runs-only", runs=_runs(workspace), config=SMALL)
    html = path.read_text(encoding="utf-8")
    assert "No capture session given" in _section(html, "capture-quality")
    assert "No capture session given" in _section(html, "knob-response")
    assert "No capture session given" in _section(html, "audio")
    assert WAV_URI.findall(html) == []
    assert 'class="best"' in _section(html, "comparison")
    assert sorted(p.name for p in path.parent.glob("*.png")) == ["esr_per_setting.png", "training_curves.png"]


def test_nothing_to_report_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="nothing to report"):
        build_report(tmp_path / "out")
    with pytest.raises(ReportError, match="nothing to report"):
        resolve_inputs(sessions_dir=tmp_path / "s", datasets_dir=tmp_path / "d", runs_dir=tmp_path / "r")


def test_bad_options_are_clear_errors(workspace):
    with pytest.raises(ReportError, match="audio_seconds must be a positive"):
        ExcerptConfig(audio_seconds=0)
    with pytest.raises(ReportError, match="best or last"):
        ReportConfig(checkpoint="newest")
    with pytest.raises(ModelError, match="not a training run"):
        build_report(workspace / "reports" / "bad", runs=[workspace / "sessions"])


def test_unknown_setting_names_the_captured_values(workspace):
    with pytest.raises(ReportError, match=r"no usable take at drive=3.*0, 5, 10"):
        build_report(workspace / "reports" / "bad", session=workspace / "sessions" / "od3", settings=[{"drive": 3}], config=SMALL)
    with pytest.raises(ReportError, match="drive=5"):
        parse_setting("drive")
    assert parse_setting("drive=5, mode=limit") == {"drive": 5.0, "mode": "limit"}


def test_models_of_another_device_are_left_out_with_a_note(workspace, tmp_path):
    session = make_dummy_session(tmp_path / "la2a", device_profile=LA2A, knob_grid={"peak_reduction": [0, 50, 100]},
                                 sample_rate=RATE, seconds=2.0)
    path = build_report(tmp_path / "report", session=session, runs=_runs(workspace), config=SMALL)
    data = _report_json(path)
    assert data["knob_response"]["models"] == {}
    assert data["knob_response"]["plotted"] == ["gain_db", "compression_db"]  # a compressor
    notes = " ".join(data["notes"])
    assert "concat-gru-s0 is left out" in notes and "trained on OD-3" in notes
    assert "trained on OD-3" in _section(path.read_text(encoding="utf-8"), "notes")


# -- measurements and selection ---------------------------------------------------------------------------------


def test_measures_on_known_signals():
    t = np.arange(4096) / RATE
    sine = np.sin(2 * np.pi * 997.0 * t)
    assert measure.tone_frequency(sine, RATE) == pytest.approx(997.0, abs=0.2)
    assert measure.thd_db(sine + 0.1 * np.sin(2 * np.pi * 2991.0 * t), RATE, 997.0) == pytest.approx(-20.0, abs=0.05)
    assert measure.thd_db(sine + 0.1 * np.sin(2 * np.pi * 1994.0 * t) + 0.1 * np.sin(2 * np.pi * 2991.0 * t), RATE, 997.0) == pytest.approx(
        10 * math.log10(0.02), abs=0.05)
    assert measure.thd_db(sine, RATE, 997.0) < -100  # window leakage only
    assert measure.gain_db(sine, 2 * sine) == pytest.approx(20 * math.log10(2))
    with pytest.raises(ValueError, match="cannot resolve"):
        measure.thd_db(sine[:64], RATE, 997.0)

    # three level steps (-40, -20, 0 dBFS peaks) through a linear gain and through a -20 dBFS clipper
    steps = np.concatenate([a * np.sin(2 * np.pi * 441.0 * np.arange(RATE // 2) / RATE) for a in (0.01, 0.1, 1.0)])
    levels = measure.frame_levels_db(steps, RATE)
    assert measure.compression_db(levels, measure.frame_levels_db(0.5 * steps, RATE)) == pytest.approx(0.0, abs=1e-9)
    loud = steps[-RATE // 2 :]
    squashed = 20 * math.log10(np.sqrt(np.mean(loud**2)) / np.sqrt(np.mean(np.clip(loud, -0.1, 0.1) ** 2)))  # about 17 dB
    clipped = measure.frame_levels_db(np.clip(steps, -0.1, 0.1), RATE)  # quiet and middle steps pass untouched
    assert measure.compression_db(levels, clipped) == pytest.approx(squashed, abs=0.1)
    assert measure.compression_db(levels[:4], levels[:4]) is None  # too few frames


def test_the_thd_noise_floor_tells_distortion_from_noise():
    rate, n = RATE, 2 * RATE
    t = np.arange(n) / rate
    sine = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    noise = 1e-3 * np.random.default_rng(0).standard_normal(n)  # white: the same power in every band
    # noise only: THD and its floor read the same within the estimates' scatter (the bands are as wide), far above a pure sine
    assert measure.thd_db(sine + noise, rate, 1000.0) == pytest.approx(measure.thd_noise_floor_db(sine + noise, rate, 1000.0), abs=2.5)
    assert measure.thd_noise_floor_db(sine + noise, rate, 1000.0) > measure.thd_noise_floor_db(sine, rate, 1000.0) + 60
    # a third harmonic 30 dB down: THD reads it, the floor (between the harmonics) does not
    distorted = sine + 0.5 * 10 ** (-30 / 20) * np.sin(2 * np.pi * 3000.0 * t) + noise
    assert measure.thd_db(distorted, rate, 1000.0) == pytest.approx(-30.0, abs=0.1)
    assert measure.thd_noise_floor_db(distorted, rate, 1000.0) < -60
    # the error a model's THD is charged: two-sided where the device's THD is resolved, else only above it
    assert measure.thd_error_db(-40.0, -30.0, -60.0) == 10.0 and measure.thd_error_db(-20.0, -30.0, -60.0) == 10.0
    assert measure.thd_error_db(-75.0, -61.0, -62.0) == 0.0  # the device reads its noise: a cleaner model is right
    assert measure.thd_error_db(-50.0, -61.0, -62.0) == 11.0  # ... a dirtier one is not
    assert measure.thd_error_db(-75.0, -61.0, -64.0) == 14.0  # resolved (3 dB above the floor): two-sided again
    assert measure.thd_error_db(-75.0, -61.0) == 14.0  # no floor known: two-sided


def test_response_slices_and_default_choice_on_a_grid():
    points = [SettingPoint(OD3.complete({"drive": d, "tone": t}), [f"t{i}"])
              for i, (d, t) in enumerate((d, t) for d in (0.0, 5.0, 10.0) for t in (2.0, 8.0))]
    swept = swept_knobs(OD3, points, {"knobs": ["drive", "tone"]})
    assert swept == ["drive", "tone"]
    drive, tone = response_slices(OD3, points, swept)
    assert drive.fixed == {"tone": 2.0} and [points[i].knobs["drive"] for i in drive.points] == [0.0, 5.0, 10.0]
    assert tone.fixed == {"drive": 5.0} and [points[i].knobs["tone"] for i in tone.points] == [2.0, 8.0]
    chosen = choose_points(OD3, points, swept)
    assert [(points[i].knobs["drive"], points[i].knobs["tone"]) for i in chosen] == [(0.0, 2.0), (5.0, 2.0), (10.0, 2.0)]
    (pick,) = choose_points(OD3, points, swept, [{"tone": 8}])
    assert points[pick].knobs == OD3.complete({"drive": 5.0, "tone": 8.0})


# -- CLI -------------------------------------------------------------------------------------------------------


def test_defaults_are_the_newest_session_its_dataset_and_their_runs(workspace, tmp_path):
    inputs = resolve_inputs(sessions_dir=workspace / "sessions", datasets_dir=workspace / "datasets", runs_dir=workspace / "runs")
    assert inputs.session == workspace / "sessions" / "od3" and inputs.dataset == workspace / "datasets" / "od3"
    assert inputs.runs == _runs(workspace) and inputs.name == "od3" and inputs.notes == []
    # a newer session of another signal: no dataset was built from it, and the OD-3 runs still match its device
    make_dummy_session(workspace / "sessions" / "newer", knob_grid={"drive": [0, 10]}, sample_rate=RATE, seconds=1.0, seed=7)
    try:
        inputs = resolve_inputs(sessions_dir=workspace / "sessions", datasets_dir=workspace / "datasets", runs_dir=workspace / "runs")
        assert inputs.session == workspace / "sessions" / "newer" and inputs.dataset is None
        assert inputs.runs == _runs(workspace) and "no dataset" in inputs.notes[0]
    finally:
        import shutil

        shutil.rmtree(workspace / "sessions" / "newer")


def test_cli_report(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    runner = CliRunner()
    run = "runs/od3/concat-gru-s0"
    result = runner.invoke(app, ["report", "--run", run, "--audio-seconds", "0.2", "--at", "drive=0", "--at", "drive=10"])
    assert result.exit_code == 0, result.output
    path = workspace / "reports" / "od3" / "report.html"  # default --out: reports/<session name>
    assert "report written to" in result.output and path.is_file()
    data = _report_json(path)
    assert Path(data["session"]).name == "od3" and Path(data["dataset"]).name == "od3"
    assert [Path(r).name for r in data["runs"]] == ["concat-gru-s0"]
    assert data["listening"]["points"] == [0, 2]

    result = runner.invoke(app, ["report", "--run", run, "--at", "drive=3", "--out", "reports/bad"])
    assert isinstance(result.exception, ReportError) and "0, 5, 10" in str(result.exception)
