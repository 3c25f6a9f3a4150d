"""Exports that plugins load: NAM ``.nam`` snapshots and packs (checked with neural-amp-modeler's own
loader against ``fxcap render``) and AIDA-X JSON with 0..1 knob inputs; their one-line refusals."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import fxcap
from fxcap.capture.profiles import Knob
from fxcap.cli import app
from fxcap.errors import ModelError
from fxcap.modeling.export import export_run
from fxcap.modeling.export import nam as nam_export
from fxcap.modeling.export.common import plucked_guitar
from fxcap.modeling.export.rtneural import RTNeuralModel
from fxcap.modeling.export.snapshot import plan_snapshots, with_test_esr
from fxcap.modeling.render import render_run
from fxcap.modeling.testing import make_dummy_run


RATE = 16000
SECONDS = 0.25
HAS_NAM = importlib.util.find_spec("nam") is not None
if not HAS_NAM and (os.environ.get("CI") or os.environ.get("FXCAP_REQUIRE_NAM") == "1"):
    raise RuntimeError("CI: neural-amp-modeler is not installed, so the .nam files cannot be checked with NAM's own loader "
                       "(pip install -e '.[nam]')")
needs_nam = pytest.mark.skipif(not HAS_NAM, reason="neural-amp-modeler not installed (pip install 'fxcap[nam]')")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Dummy run folders, made on first use: ``runs(cond, cell, num_knobs)``."""
    base = tmp_path_factory.mktemp("runs")
    made: dict[tuple, Path] = {}

    def get(cond: str, cell: str = "lstm", num_knobs: int = 2, **overrides) -> Path:
        key = (cond, cell, num_knobs, tuple(sorted(overrides.items())))
        if key not in made:
            name = f"{cond}-{cell}-{num_knobs}" + "".join(f"-{k}{v}" for k, v in sorted(overrides.items()))
            made[key] = make_dummy_run(base / name, cond=cond, cell=cell, num_knobs=num_knobs, sample_rate=RATE, **overrides)
        return made[key]

    return get


@pytest.fixture(scope="module")
def dry(tmp_path_factory) -> Path:
    """A short plucked-guitar WAV at the runs' rate."""
    path = tmp_path_factory.mktemp("audio") / "dry.wav"
    sf.write(str(path), plucked_guitar(RATE, SECONDS, seed=5), RATE, subtype="FLOAT")
    return path


def _render(run: Path, dry: Path, out: Path, settings: list[str]) -> np.ndarray:
    render_run(run, dry, out, settings=settings)
    return sf.read(str(out), dtype="float64")[0]


def _esr(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.sum((other - reference) ** 2) / np.sum(reference ** 2))


# -- NAM -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nam_loader():
    from nam.models import init_from_nam

    def run(path: Path, audio: np.ndarray) -> np.ndarray:
        model = init_from_nam(json.loads(path.read_text()))
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(audio.astype(np.float32))).numpy().astype(np.float64)

    return run


@needs_nam
@pytest.mark.parametrize("cond", ["concat", "film", "statichyper"])
@pytest.mark.parametrize("setting", [["drive=7", "tone=4"], ["drive=0", "tone=10"]])
def test_nam_snapshot_equals_render_through_nams_own_loader(runs, dry, tmp_path, nam_loader, cond, setting):
    run = runs(cond)
    report = export_run(run, tmp_path, "nam", seconds=SECONDS, settings=setting)
    path = Path(report["path"])
    assert path.name == f"{run.name}_{'_'.join(setting)}.nam" and report["max_abs_error"] < 1e-4

    rendered = _render(run, dry, tmp_path / "wet.wav", setting)
    played = nam_loader(path, sf.read(str(dry), dtype="float32")[0])
    assert np.max(np.abs(played - rendered)) < 2e-6 and _esr(rendered, played) < 1e-9
    # The setting matters: the other setting's render is far from this file's output.
    other = ["drive=0", "tone=10"] if setting[0] == "drive=7" else ["drive=7", "tone=4"]
    assert np.max(np.abs(played - _render(run, dry, tmp_path / "other.wav", other))) > 1e-2


def test_nam_file_follows_the_spec_and_carries_the_setting_and_test_esr(runs, tmp_path):
    run = runs("film")
    (run / "evaluation.json").write_text(json.dumps({"checkpoint": "best"}))
    (run / "evaluation_per_knob.csv").write_text(
        "split,knob_tone,knob_drive,esr\ntest,4.0,7.0,0.0123\nholdout,4.0,7.0,0.5\ntest,5.0,5.0,0.02\n")
    try:
        report = export_run(run, tmp_path / "od.nam", "nam", seconds=0.1, settings=["drive=7", "tone=4"],
                            meta_fields=["gear_type=pedal", "tone_type=overdrive", "gear_make=Boss", "input_level_dbu=12.5"])
        doc = json.loads((tmp_path / "od.nam").read_text())
        assert doc["version"] == nam_export.NAM_FILE_VERSION and doc["architecture"] == "LSTM"
        assert doc["config"] == {"input_size": 1, "hidden_size": 32, "num_layers": 1} and doc["sample_rate"] == RATE
        hidden = 32
        assert len(doc["weights"]) == 4 * hidden * (1 + hidden) + 4 * hidden + 2 * hidden + hidden + 1
        assert doc["weights"][4 * hidden * (2 + hidden) : 4 * hidden * (2 + hidden) + 2 * hidden] == [0.0] * (2 * hidden)  # h0, c0
        meta = doc["metadata"]
        assert meta["name"] == "dummy drive=7 tone=4" and set(meta["date"]) == {"year", "month", "day", "hour", "minute", "second"}
        assert meta["gear_type"] == "pedal" and meta["tone_type"] == "overdrive" and meta["gear_make"] == "Boss"
        assert meta["input_level_dbu"] == 12.5 and "output_level_dbu" not in meta and "training" not in meta
        facts = meta["fxcap"]
        assert facts["knob_setting"] == {"drive": 7.0, "tone": 4.0} and facts["scheme"] == "film"
        assert facts["test_esr"] == pytest.approx(0.0123) and facts["test_esr_split"] == "test"
        assert report["test_esr"] == pytest.approx(0.0123)
        assert {k: v for k, v in facts.items() if k not in ("knob_setting", "scheme", "test_esr", "test_esr_split", "knobs")} == {
            "version": fxcap.__version__, "run": run.name, "device": "dummy", "cell": "lstm", "hidden_size": 32,
            "checkpoint": "best", "initial_state": "zeros (as fxcap render starts)"}
        assert [k["name"] for k in facts["knobs"]] == ["drive", "tone"] and facts["knobs"][0]["maximum"] == 10.0

        # the pack's index: one row per file, the test ESR where the evaluation scored that setting
        report = export_run(run, tmp_path / "pack", "nam", seconds=0.05, at=["drive=7,tone=4", "drive=2"],
                            meta_fields=["name=My OD"])
        assert report["files"][0]["path"].endswith("_drive=7_tone=4.nam")
        assert json.loads(Path(report["files"][0]["path"]).read_text())["metadata"]["name"] == "My OD drive=7 tone=4"
        lines = Path(report["index"]).read_text().split("\n")
        assert lines[0] == "file,drive,tone,test_esr,test_esr_split,self_test_max_abs_error"
        first = lines[1].split(",")
        assert first[1:5] == ["7", "4", "0.0123", "test"] and float(first[5]) < 1e-4
        assert lines[2].split(",")[1:5] == ["2", "5", "", ""] and lines[3] == ""

        # Another checkpoint than the evaluated one: no ESR claimed.
        report = export_run(run, tmp_path / "last.nam", "nam", checkpoint="last", seconds=0.1, settings=["drive=7", "tone=4"])
        assert report["test_esr"] is None and "did not score" in json.loads((tmp_path / "last.nam").read_text())["metadata"]["fxcap"]["test_esr_note"]
    finally:
        (run / "evaluation.json").unlink()
        (run / "evaluation_per_knob.csv").unlink()


def test_nam_pack_from_a_grid_and_from_a_list(runs, tmp_path):
    run = runs("statichyper")
    report = export_run(run, tmp_path / "pack", "nam", seconds=0.05, grid=2)
    names = sorted(Path(f["path"]).name for f in report["files"])
    stem = run.name
    assert names == sorted(f"{stem}_drive={d}_tone={t}.nam" for d in (0, 10) for t in (0, 10))
    with open(report["index"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == [Path(f["path"]).name for f in report["files"]]
    assert {(r["drive"], r["tone"]) for r in rows} == {("0", "0"), ("0", "10"), ("10", "0"), ("10", "10")}
    assert all(r["test_esr"] == "" for r in rows) and report["max_abs_error"] < 1e-4
    weights = {tuple(json.loads(Path(f["path"]).read_text())["weights"][:8]) for f in report["files"]}
    assert len(weights) == 4  # four different snapshots, not one copied

    report = export_run(run, tmp_path / "held", "nam", seconds=0.05, grid=3, settings=["tone=4"])
    assert [f["setting"] for f in report["files"]] == ["drive=0 tone=4", "drive=5 tone=4", "drive=10 tone=4"]
    report = export_run(run, tmp_path / "list", "nam", seconds=0.05, at=["drive=7,tone=4", "drive=2.5"])
    assert [f["setting"] for f in report["files"]] == ["drive=7 tone=4", "drive=2.5 tone=5"]
    assert report["seconds"] == pytest.approx(0.05, abs=1.0 / RATE) and report["samples"] == report["files"][0]["samples"]
    assert all(f["seconds"] == report["seconds"] for f in report["files"])  # every file self-tested as asked
    with pytest.raises(ModelError, match="^two settings of the pack are the same; list each setting once$"):
        export_run(run, tmp_path / "twice", "nam", seconds=0.05, at=["drive=7,tone=4", "tone=4,drive=7"])
    assert not (tmp_path / "twice").exists()
    assert (tmp_path / "list" / f"{stem}_drive=2.5_tone=5.nam").is_file()


def test_nam_self_test_catches_a_wrong_fold(runs, tmp_path, monkeypatch):
    real = nam_export.nam_weights

    def no_hidden_bias(cell, w_out, b_out):
        cell.bias_hh = cell.bias_hh * 0  # the hidden-side bias lost in the fold
        return real(cell, w_out, b_out)

    monkeypatch.setattr(nam_export, "nam_weights", no_hidden_bias)
    with pytest.raises(ModelError, match=r"\.nam self-test failed: max abs error"):
        export_run(runs("film"), tmp_path / "bad.nam", "nam", seconds=0.1, settings=["drive=7"])
    assert not (tmp_path / "bad.nam").exists()


def test_nam_reader_and_metadata_checks(tmp_path):
    with pytest.raises(ModelError, match="not a NAM LSTM model"):
        nam_export.NamLSTM.from_dict({"architecture": "WaveNet"})
    with pytest.raises(ModelError, match="expected 39 finite weights"):
        nam_export.NamLSTM.from_dict({"architecture": "LSTM", "config": {"input_size": 1, "hidden_size": 2, "num_layers": 1}, "weights": [0.0] * 5})
    zero = nam_export.NamLSTM.from_dict({"architecture": "LSTM", "config": {"input_size": 1, "hidden_size": 2, "num_layers": 1},
                                         "weights": [0.0] * 38 + [0.25]})
    assert np.allclose(zero.process(np.ones(4)), 0.25)
    with pytest.raises(ModelError, match="gear_type must be one of amp, pedal"):
        nam_export.parse_user_metadata(["gear_type=guitar"])
    with pytest.raises(ModelError, match="input_level_dbu must be a level in dBu"):
        nam_export.parse_user_metadata(["input_level_dbu=loud"])
    with pytest.raises(ModelError, match="--meta expects KEY=VALUE with KEY one of name, modeled_by"):
        nam_export.parse_user_metadata(["loudness=-18"])


def test_snapshot_settings():
    knobs = [Knob("gain", -12.0, 12.0, 0.0), Knob("mode", values=("soft", "hard warm"), default="soft")]
    (snap,) = plan_snapshots(knobs, ["gain=-6"])
    assert snap.label == "gain=-6 mode=soft" and snap.slug == "gain=-6_mode=soft" and snap.normalized == (-0.5, -1.0)
    grid = plan_snapshots(knobs, grid=3)
    assert [s.slug for s in grid][-1] == "gain=12_mode=hard-warm" and len(grid) == 6
    with pytest.raises(ModelError, match="gain must be in -12..12, not 20"):
        plan_snapshots(knobs, ["gain=20"])
    with pytest.raises(ModelError, match="the model has no knob 'drive'"):
        plan_snapshots(knobs, at=["drive=3"])
    with pytest.raises(ModelError, match="--grid needs at least 2 values"):
        plan_snapshots(knobs, grid=1)
    with pytest.raises(ModelError, match="either --grid or --at"):
        plan_snapshots(knobs, at=["gain=1"], grid=2)
    with pytest.raises(ModelError, match="at most 1000"):
        plan_snapshots([Knob(f"k{i}") for i in range(4)], grid=10)
    assert len(plan_snapshots([Knob(f"k{i}") for i in range(3)], grid=10)) == 1000  # exactly the limit
    assert len(plan_snapshots([Knob("k")], at=[f"k={i / 100}" for i in range(1000)])) == 1000
    with pytest.raises(ModelError, match=r"^1001 --at settings \(at most 1000\)"):
        plan_snapshots([Knob("k")], at=[f"k={i / 100}" for i in range(1001)])
    with pytest.raises(ModelError, match=r"^--at expects NAME=VALUE\[,NAME=VALUE...\] \(e.g. drive=7,tone=4\), not ' , '"):
        plan_snapshots(knobs, at=[" , "])
    assert with_test_esr([snap], knobs, "/nonexistent", "best") == [snap]


def test_a_snapshot_takes_the_esr_of_exactly_its_setting_test_split_first(tmp_path):
    knobs = [Knob("gain", -12.0, 12.0, 0.0), Knob("mode", values=("soft", "hard"), default="soft")]
    rows = [  # split, gain, mode, esr: settings that share one knob's value with the snapshot's, and both splits
        ("test", -6.0, "hard", 0.11), ("test", 6.0, "soft", 0.12), ("holdout", -6.0, "soft", 0.13),
        ("test", -6.0 + 1e-3, "soft", 0.14), ("test", -6.0 + 1e-6, "soft", 0.15), ("holdout", 0.0, "hard", float("nan")),
    ]
    with open(tmp_path / "evaluation_per_knob.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "knob_gain", "knob_mode", "esr"])
        writer.writerows(rows)
    (tmp_path / "evaluation.json").write_text(json.dumps({"checkpoint": "best"}))
    plan = plan_snapshots(knobs, at=["gain=-6,mode=soft", "gain=-6,mode=hard", "gain=0,mode=hard", "gain=12,mode=soft"])
    found = [(s.test_esr, s.esr_split) for s in with_test_esr(plan, knobs, tmp_path, "best")]
    # gain -6 + 1e-6 is -6 within 1e-6 of the knob's 24-unit range (1e-3 is not); a test-split row wins over a
    # holdout row of the same setting; a NaN ESR or a setting never scored leaves the snapshot without one
    assert found == [(0.15, "test"), (0.11, "test"), (None, None), (None, None)]
    assert [s.test_esr for s in with_test_esr(plan, knobs, tmp_path, "last")] == [None] * 4  # scored with another checkpoint
    (tmp_path / "evaluation.json").write_text(json.dumps({"checkpoint": "last"}))  # an evaluation of the last weights
    assert [s.test_esr for s in with_test_esr(plan, knobs, tmp_path, "best")] == [None] * 4
    assert [s.test_esr for s in with_test_esr(plan, knobs, tmp_path, "last")][:2] == [0.15, 0.11]


# -- AIDA-X --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_aidax_unit_knobs_equal_render_at_the_panel_ends(runs, dry, tmp_path, cell):
    run = runs("concat", cell)
    out = tmp_path / "aidax.json"
    report = export_run(run, out, "aidax", seconds=SECONDS)
    assert report["format"] == "aidax" and report["max_abs_error"] < 1e-4 and report["inputs"] == ["audio", "PARAM1", "PARAM2"]
    assert report["notes"][0] == "AIDA-X knobs: PARAM1 = drive (0 -> 0, 1 -> 10), PARAM2 = tone (0 -> 0, 1 -> 10)"
    assert f"{RATE} Hz" in report["notes"][1]
    doc = json.loads(out.read_text())
    assert doc["in_shape"] == [None, None, 3] and doc["metadata"]["aidax"]["sample_rate"] == RATE
    assert [p["knob"] for p in doc["metadata"]["aidax"]["params"]] == ["drive", "tone"]

    reader = RTNeuralModel.from_file(out)
    audio = sf.read(str(dry), dtype="float32")[0]
    for drive in (0, 10):
        for tone in (0, 10):
            rendered = _render(run, dry, tmp_path / "wet.wav", [f"drive={drive}", f"tone={tone}"])
            inputs = np.column_stack([audio, np.full(len(audio), drive / 10), np.full(len(audio), tone / 10)])
            played = reader.process(inputs)
            assert np.max(np.abs(played - rendered)) < 2e-6 and _esr(rendered, played) < 1e-9, (drive, tone)

    # The plain RTNeural file keeps [-1, 1]: fed AIDA-X's 0..1 at drive=0 it plays the mid setting.
    export_run(run, tmp_path / "plain.json", "rtneural", seconds=0.05)
    plain = RTNeuralModel.from_file(tmp_path / "plain.json").process(np.column_stack([audio, np.zeros((len(audio), 2))]))
    rendered = _render(run, dry, tmp_path / "wet.wav", ["drive=0", "tone=0"])
    assert np.max(np.abs(plain - rendered)) > 1e-2


def test_aidax_single_knob_and_switch_positions(tmp_path):
    run = make_dummy_run(tmp_path / "sw", cond="concat", cell="gru", num_knobs=1, sample_rate=RATE,
                         knobs=[Knob("mode", values=("soft", "mid", "hard"), default="soft")])
    report = export_run(run, tmp_path / "sw.json", "aidax", seconds=0.05)
    assert report["inputs"] == ["audio", "PARAM1"]
    assert report["params"] == [{"param": "PARAM1", "knob": "mode", "positions": {"soft": 0.0, "mid": 0.5, "hard": 1.0}}]


# -- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, args, message", [
    ("gru", dict(cond="concat", cell="gru"), "the concat GRU model cannot be exported as nam: NAM has no GRU cell .*retrain with --cell lstm"),
    ("dynamic", dict(cond="dynamichyper", cell="lstm"),
     "cannot be exported as nam: dynamichyper's cell weights change every sample .*train --cond concat, film or statichyper with --cell lstm"),
])
def test_nam_refusals_are_one_line(runs, tmp_path, case, args, message):
    with pytest.raises(ModelError, match=message) as caught:
        export_run(runs(**args), tmp_path / "m.nam", "nam", settings=["drive=7"])
    assert "\n" not in str(caught.value) and not list(tmp_path.iterdir())


def test_aidax_refusals_are_one_line(runs, tmp_path):
    with pytest.raises(ModelError, match=r"AIDA-X feeds at most 2 knobs \(PARAM1, PARAM2\), this model has 3; export --format rtneural or onnx") as caught:
        export_run(runs("concat", "gru", 3), tmp_path / "m.json", "aidax")
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelError, match=r"AIDA-X loads GRU hidden sizes 8, 12, 16, 20, 24, 32, 40, 64, 80 only, this model has 28") as caught:
        export_run(runs("concat", "gru", 2, hidden_size=28), tmp_path / "m.json", "aidax")
    assert "\n" not in str(caught.value)
    with pytest.raises(ModelError, match=r"the film scheme cannot be exported as aidax .*export it as onnx or nam instead"):
        export_run(runs("film"), tmp_path / "m.json", "aidax")
    with pytest.raises(ModelError, match=r"--set, --at, --grid and --meta are for snapshot formats \(nam\); onnx keeps the knobs as live inputs"):
        export_run(runs("concat"), tmp_path / "m.onnx", "onnx", settings=["drive=7"])
    with pytest.raises(ModelError, match="a pack is a folder of .nam files"):
        export_run(runs("concat"), tmp_path / "m.nam", "nam", grid=2)
    assert not list(tmp_path.iterdir())


def test_console_script_refusal_is_one_line(runs, tmp_path):
    code = (f"import sys; sys.argv=['fxcap','export','--model',{str(runs('concat', 'gru'))!r},'--format','nam','--set','drive=7',"
            "'--out','m.nam']; from fxcap.cli import main; main()")
    env = {**os.environ, "PYTHONPATH": str(Path(fxcap.__file__).parents[1]), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "NAM has no GRU cell" in proc.stderr


# -- CLI -----------------------------------------------------------------------------------------------


def test_cli_prints_the_setting_the_param_map_and_the_rate(runs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--model", str(runs("concat")), "--format", "nam", "--set", "drive=7", "--set", "tone=4",
                                 "--out", str(tmp_path), "--seconds", "0.05"])
    assert result.exit_code == 0, result.output
    assert "drive=7 tone=4; test ESR not measured at this setting" in result.output and "at the fixed setting" in result.output
    result = runner.invoke(app, ["export", "--model", str(runs("concat")), "--format", "nam", "--grid", "2", "--out", str(tmp_path / "pack"),
                                 "--seconds", "0.05"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 .nam files" in result.output and "index.csv" in result.output
    result = runner.invoke(app, ["export", "--model", str(runs("concat", "gru")), "--format", "aidax", "--out", str(tmp_path / "a.json"),
                                 "--seconds", "0.05"])
    assert result.exit_code == 0, result.output
    assert "PARAM1 = drive (0 -> 0, 1 -> 10)" in result.output and f"run the host at {RATE} Hz" in result.output


# -- folding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cond", ["concat", "film", "statichyper"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_cell_at_is_the_model_at_that_setting(cond, cell):
    """A plain nn.GRU/nn.LSTM with the folded weights (and the model's output layer) is the model."""
    from fxcap.modeling.registry import ModelConfig, build_model

    model = build_model(ModelConfig(cond=cond, cell=cell, num_knobs=2, seed=2))  # the paper's 32 units: kernels shared with other tests
    with torch.no_grad():
        for parameter in model.parameters():  # conditioning strong enough that a wrong fold shows
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(parameter.numel())))
    knobs = torch.tensor([0.3, -0.7])
    folded = model.cell_at(knobs)
    rnn = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(1, model.hidden_size, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, f"{name}_l0").copy_(getattr(folded, name))
        x = torch.from_numpy(plucked_guitar(RATE, 0.1, seed=1)).double()
        hidden, _ = rnn(x[None, :, None])
        plain = (hidden @ model.output.weight.double().T + model.output.bias.double())[0, :, 0]
        reference = model(x[None].float(), knobs[None])[0][0].double()
        other = model(x[None].float(), -knobs[None])[0][0].double()
    assert float((plain - reference).abs().max()) < 1e-5 < float((plain - other).abs().max())


def test_cell_at_refuses_dynamichyper_and_wrong_knob_counts():
    from fxcap.modeling.registry import ModelConfig, build_model

    with pytest.raises(ModelError, match="the dynamichyper scheme is not a plain LSTM at a fixed knob setting"):
        build_model(ModelConfig(cond="dynamichyper", cell="lstm", num_knobs=2)).cell_at(torch.zeros(2))
    with pytest.raises(ModelError, match="a 2-knob model needs 2 knob value"):
        build_model(ModelConfig(cond="film", cell="lstm", num_knobs=2)).cell_at(torch.zeros(3))


def _meta(knobs):
    from fxcap.modeling.export.common import ExportMeta

    return ExportMeta(scheme="concat", cell="gru", hidden_size=32, sample_rate=RATE, knobs=knobs, state_layout=[], model_config={})


def test_aidax_param_map_and_its_description_for_every_kind_of_knob():
    from fxcap.modeling.export.aidax import describe_params, param_map

    meta = _meta([{"name": "mode", "values": ["soft", "hard", "fuzz"]}, {"name": "drive", "minimum": 0.0, "maximum": 10.0}])
    assert describe_params(meta) == "PARAM1 = mode (soft at 0, hard at 0.5, fuzz at 1), PARAM2 = drive (0 -> 0, 1 -> 10)"
    unknown = _meta([{"name": "gain"}, {"name": "bias", "minimum": -1.0}])  # no range recorded, or half of one
    expected = {"at_0": "lowest trained setting", "at_1": "highest trained setting"}
    assert param_map(unknown) == [{"param": "PARAM1", "knob": "gain", **expected}, {"param": "PARAM2", "knob": "bias", **expected}]
    assert describe_params(_meta([])) == "no knobs"


def test_aidax_document_states_the_knob_scale_and_the_rate_and_self_tests_as_asked(runs, tmp_path):
    from fxcap.modeling.export.aidax import UNIT_NORMALIZATION

    report = export_run(runs("concat", "gru"), tmp_path / "a.json", "aidax", seconds=0.05)
    assert report["seconds"] == pytest.approx(0.05, abs=1.0 / RATE)  # the self-test ran the length asked for
    metadata = json.loads((tmp_path / "a.json").read_text())["metadata"]
    assert metadata["knob_normalization"] == UNIT_NORMALIZATION
    assert metadata["input_note"] == "feed [x, PARAM1, PARAM2] every sample, knob inputs 0..1"
    assert metadata["aidax"]["sample_rate_note"] == f"AIDA-X does not resample the model: run the host at {RATE} Hz"


def test_nam_reader_runs_a_two_layer_lstm_with_its_initial_state_like_torch():
    """A hand-packed NAM LSTM (2 layers, random weights, non-zero h0/c0 per layer) run by the reader equals
    ``torch.nn.LSTM`` plus a linear head started from the same state; rate and metadata are read back."""
    hidden, layers = 3, 2
    g = torch.Generator().manual_seed(8)
    lstm = torch.nn.LSTM(1, hidden, num_layers=layers, batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(hidden, 1, dtype=torch.float64)
    with torch.no_grad():
        for p in [*lstm.parameters(), *head.parameters()]:
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    h0, c0 = (0.5 * torch.randn(layers, 1, hidden, generator=g, dtype=torch.float64) for _ in range(2))
    flat = []
    for k in range(layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(lstm, f"{name}_l{k}").detach().numpy() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        flat += [np.concatenate([w_ih, w_hh], axis=1).ravel(), b_ih + b_hh, h0[k, 0].numpy(), c0[k, 0].numpy()]
    flat += [head.weight.detach().numpy().ravel(), head.bias.detach().numpy()]
    weights = np.concatenate(flat).astype(np.float32).astype(np.float64)  # what the file holds
    document = {"version": nam_export.NAM_FILE_VERSION, "architecture": "LSTM", "sample_rate": 44100,
                "config": {"input_size": 1, "hidden_size": hidden, "num_layers": layers}, "weights": weights.tolist(),
                "metadata": {"name": "two layers"}}
    reader = nam_export.NamLSTM.from_dict(json.loads(json.dumps(document)))
    assert reader.sample_rate == 44100.0 and reader.metadata == {"name": "two layers"}
    audio = plucked_guitar(RATE, 0.01, seed=4).astype(np.float64)
    with torch.no_grad():  # the same float32-rounded numbers in torch
        for t in (*lstm.parameters(), *head.parameters(), h0, c0):
            t.copy_(t.float().double())
        expected = head(lstm(torch.from_numpy(audio)[None, :, None], (h0, c0))[0])[0, :, 0].numpy()
    np.testing.assert_allclose(reader.process(audio), expected, rtol=0, atol=1e-6)
    assert nam_export.NamLSTM.from_dict({**document, "sample_rate": "fast", "metadata": None}).sample_rate is None
    with pytest.raises(ModelError, match=r"^m.nam: expected a mono LSTM \(input_size 1\), got input_size 1, hidden_size 0, num_layers 2$"):
        nam_export.NamLSTM.from_dict({**document, "config": {"input_size": 1, "hidden_size": 0, "num_layers": 2}}, "m.nam")
    with pytest.raises(ModelError, match=r"^m.nam: not a NAM LSTM model \(architecture 'WaveNet'\)$"):
        nam_export.NamLSTM.from_dict({**document, "architecture": "WaveNet"}, "m.nam")
