"""Export to ONNX and RTNeural JSON: round trips with the self-test, refusals, broken run folders, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fxcap.cli import app
from fxcap.errors import ModelError
from fxcap.modeling.export import FORMATS, ExportMeta, SelfTestConfig, export_model, export_run, formats_for
from fxcap.modeling.export import rtneural as rt
from fxcap.modeling.export.common import compare_outputs, knob_automation, plucked_guitar
from fxcap.modeling.testing import make_dummy_run
from fxcap.modeling.train import load_run
from tests.extras import available, missing


RATE = 16000
SECONDS = 0.25  # 4000 samples: every exported graph runs in well under a second


@pytest.fixture
def onnx_installed():
    if not available("onnx", "onnxruntime"):
        missing("onnx/onnxruntime not installed (pip install 'fxcap[export]')")  # a failure in CI


needs_onnx = pytest.mark.usefixtures("onnx_installed")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Dummy run folders, made on first use: ``runs(cond, cell)``."""
    base = tmp_path_factory.mktemp("runs")
    made: dict[tuple[str, str], Path] = {}

    def get(cond: str, cell: str = "gru") -> Path:
        if (cond, cell) not in made:
            made[(cond, cell)] = make_dummy_run(base / f"{cond}-{cell}", cond=cond, cell=cell, num_knobs=2, sample_rate=RATE)
        return made[(cond, cell)]

    return get


def _export(run: Path, out: Path, fmt: str) -> dict:
    return export_run(run, out, fmt, seconds=SECONDS)


# -- ONNX ------------------------------------------------------------------------------------------


@needs_onnx
@pytest.mark.parametrize(
    "cond, cell, graph",
    [("concat", "gru", "block"), ("concat", "lstm", "block"), ("film", "gru", "scan"),
     ("statichyper", "gru", "scan"), ("dynamichyper", "gru", "scan")],
)
def test_onnx_round_trip(runs, tmp_path, cond, cell, graph):
    from fxcap.modeling.export.onnx import open_session, read_metadata

    run = runs(cond, cell)
    out = tmp_path / "model.onnx"
    report = _export(run, out, "onnx")
    assert report["max_abs_error"] < 1e-4 and report["graph"] == graph
    assert report["samples"] == int(SECONDS * RATE) and report["seconds"] == pytest.approx(SECONDS)
    assert report["bytes"] == out.stat().st_size and report["path"] == str(out)
    assert report["output_peak"] > 1e-3  # the comparison was not between two silent signals
    assert not list(tmp_path.glob(".*.tmp"))

    model, _ = load_run(run)
    meta = read_metadata(out)
    assert meta["knob_names"] == ["drive", "tone"] and meta["sample_rate"] == RATE
    assert meta["knobs"][0]["minimum"] == 0.0 and meta["knobs"][0]["maximum"] == 10.0
    assert meta["state_layout"] == [[name, width] for name, width in model.state_layout]
    assert meta["scheme"] == cond and meta["cell"] == cell and meta["graph"] == graph
    from fxcap.modeling.export.onnx import INPUTS, OPSET, OUTPUTS

    assert (meta["inputs"], meta["outputs"], meta["opset"]) == (INPUTS, OUTPUTS, OPSET)  # the interface, described in the file
    assert list(meta["inputs"]) == ["audio", "knobs", "state"] and list(meta["outputs"]) == ["audio_out", "state_out"]
    import onnx

    proto = onnx.load(str(out))
    assert proto.producer_name == "fxcap" and proto.doc_string == (
        f"fxcap {cond}-{cell} (H=32) at {RATE} Hz; knobs drive, tone. Stream blocks: feed state_out back as state; start from zeros.")
    assert ("Scan" in {node.op_type for node in proto.graph.node}) == (graph == "scan")  # the graph kind it says it is

    # The graph takes a batch of two streams with their own knob sequences and a non-zero state.
    session = open_session(out)
    assert [i.name for i in session.get_inputs()] == ["audio", "knobs", "state"]
    assert [o.name for o in session.get_outputs()] == ["audio_out", "state_out"]
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 300, generator=g) - 0.5
    knobs = torch.rand(2, 300, 2, generator=g) * 2 - 1
    state = torch.randn(2, model.state_size, generator=g) * 0.3
    with torch.no_grad():
        y, new_state = model(x, knobs, state)
    y_onnx, state_onnx = session.run(None, {"audio": x.numpy(), "knobs": knobs.numpy(), "state": state.numpy()})
    np.testing.assert_allclose(y_onnx, y.numpy(), atol=1e-5)
    np.testing.assert_allclose(state_onnx, new_state.numpy(), atol=1e-5)
    # the documented interface: batch and time are free (named) axes, the rest fixed
    s = model.state_size
    assert [i.shape for i in session.get_inputs()] == [["batch", "time"], ["batch", "time", 2], ["batch", s]]
    assert [o.shape for o in session.get_outputs()] == [["batch", "time"], ["batch", s]]
    y_one, _ = session.run(None, {"audio": x[:1, :7].numpy(), "knobs": knobs[:1, :7].numpy(), "state": state[:1].numpy()})
    np.testing.assert_allclose(y_one, y.numpy()[:1, :7], atol=1e-5)  # another batch size and length: same streams


@needs_onnx
def test_onnx_scan_graph_also_serves_concat_and_block_is_refused_for_loops(runs, tmp_path):
    from fxcap.modeling.export.onnx import choose_graph, export_onnx

    model, run_config = load_run(runs("concat", "lstm"))
    meta = ExportMeta.from_run(model, run_config)
    report = export_onnx(model, meta, tmp_path / "scan.onnx", SelfTestConfig(seconds=0.1), graph="scan")
    assert report["graph"] == "scan" and report["max_abs_error"] < 1e-4

    assert choose_graph(model, "block") == "block" and choose_graph(model, "auto") == "block"
    film, _ = load_run(runs("film"))
    with pytest.raises(ModelError, match="film scheme exports as graph 'scan'"):
        choose_graph(film, "block")
    with pytest.raises(ModelError, match="unknown ONNX graph kind"):
        choose_graph(film, "loop")


@needs_onnx
def test_onnx_self_test_failure_is_loud_and_writes_nothing(runs, tmp_path, monkeypatch):
    from fxcap.modeling.export import onnx as onnx_export

    real = onnx_export.stream_onnx
    monkeypatch.setattr(onnx_export, "stream_onnx", lambda *args, **kw: real(*args, **kw) * 1.001)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match=r"ONNX self-test failed: max abs error .* exceeds 0.0001"):
        _export(runs("film"), out, "onnx")
    assert not out.exists() and not list(tmp_path.iterdir())


# -- RTNeural JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rtneural_round_trip(runs, tmp_path, cell):
    run = runs("concat", cell)
    out = tmp_path / "model.json"
    report = _export(run, out, "rtneural")
    assert report["max_abs_error"] < 1e-4 and report["format"] == "rtneural"
    assert report["inputs"] == ["audio", "drive", "tone"] and "--format aidax" in report["notes"][0]
    assert report["bytes"] == out.stat().st_size

    doc = json.loads(out.read_text())
    gates = 3 if cell == "gru" else 4
    assert doc["in_shape"] == [None, None, 3] and doc["in_skip"] == 0
    layer, dense = doc["layers"]
    assert layer["type"] == cell and layer["shape"] == [None, None, 32] and layer["activation"] == ""
    assert np.shape(layer["weights"][0]) == (3, gates * 32) and np.shape(layer["weights"][1]) == (32, gates * 32)
    assert np.shape(layer["weights"][2]) == ((2, 96) if cell == "gru" else (128,))
    assert dense["type"] == "dense" and np.shape(dense["weights"][0]) == (32, 1) and np.shape(dense["weights"][1]) == (1,)
    assert doc["metadata"]["sample_rate"] == RATE and doc["metadata"]["knob_names"] == ["drive", "tone"]

    # The shortest-decimal numbers read back as exactly the model's float32 weights.
    model, _ = load_run(run)
    w_ih = model.rnn.weight_ih_l0.detach().numpy()
    expected = w_ih[rt._gru_order(32)].T if cell == "gru" else w_ih.T
    np.testing.assert_array_equal(np.asarray(layer["weights"][0], dtype=np.float32), expected)
    np.testing.assert_array_equal(np.asarray(dense["weights"][0], dtype=np.float32), model.output.weight.detach().numpy().T)


def test_rtneural_gru_gate_order_is_keras(runs):
    """Keras orders GRU gates z, r, h; keeping PyTorch's r, z, n would give a different model."""
    model, run_config = load_run(runs("concat", "gru"))
    doc = rt.to_rtneural(model, ExportMeta.from_run(model, run_config))
    audio = plucked_guitar(RATE, 0.1, seed=2)
    inputs = np.column_stack([audio, knob_automation(len(audio), 2)])
    with torch.no_grad():
        reference = model(torch.from_numpy(inputs[:, 0])[None], torch.from_numpy(inputs[:, 1:])[None])[0][0].numpy()
    good = rt.RTNeuralModel.from_dict(doc).process(inputs)
    assert np.max(np.abs(good - reference)) < 1e-5

    hidden = 32
    swap = np.concatenate([np.arange(hidden, 2 * hidden), np.arange(hidden), np.arange(2 * hidden, 3 * hidden)])
    layer = doc["layers"][0]
    layer["weights"] = [np.asarray(layer["weights"][0])[:, swap].tolist(), np.asarray(layer["weights"][1])[:, swap].tolist(),
                        np.asarray(layer["weights"][2])[:, swap].tolist()]
    wrong = rt.RTNeuralModel.from_dict(doc).process(inputs)
    assert np.max(np.abs(wrong - reference)) > 1e-2


def _keras_gru(inputs, W, U, b):
    """Keras's GRU (``reset_after=True``, gates z, r, h; ``b[0]`` input bias, ``b[1]`` recurrent bias, the
    recurrent one inside the reset product), written out here from the Keras documentation."""
    hidden = U.shape[0]
    h, out = np.zeros(hidden), []
    for x in inputs:
        gx, gh = x @ W + b[0], h @ U + b[1]
        z = 1 / (1 + np.exp(-(gx[:hidden] + gh[:hidden])))
        r = 1 / (1 + np.exp(-(gx[hidden : 2 * hidden] + gh[hidden : 2 * hidden])))
        candidate = np.tanh(gx[2 * hidden :] + r * gh[2 * hidden :])
        h = z * h + (1 - z) * candidate
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rtneural_weights_follow_the_keras_convention_by_value(runs, cell):
    """Every number of the file where Keras puts it (written out here, not taken from the exporter),
    with input and recurrent biases that differ, so a swap of any two blocks or rows shows."""
    model, run_config = load_run(runs("concat", cell))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for bias in (model.rnn.bias_ih_l0, model.rnn.bias_hh_l0, model.output.bias):
            bias.copy_(0.5 * torch.randn(bias.shape, generator=g))
    doc = json.loads(json.dumps(rt.to_rtneural(model, ExportMeta.from_run(model, run_config))))  # as written to disk
    assert [sorted(layer) for layer in doc["layers"]] == [["activation", "shape", "type", "weights"]] * 2  # what RTNeural reads
    assert doc["metadata"]["inputs"] == ["audio", "drive", "tone"]
    W, U, b = (np.asarray(w, dtype=np.float32) for w in doc["layers"][0]["weights"])  # exact float32 values
    w_dense, c_dense = (np.asarray(w, dtype=np.float32) for w in doc["layers"][1]["weights"])
    rnn, h = model.rnn, model.hidden_size
    w_ih, w_hh, b_ih, b_hh = (t.detach().numpy() for t in (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0))
    if cell == "gru":
        r, z, n = (slice(k * h, (k + 1) * h) for k in range(3))  # PyTorch's row blocks
        for keras_block, torch_rows in enumerate((z, r, n)):  # Keras's column blocks: z, r, h
            cols = slice(keras_block * h, (keras_block + 1) * h)
            np.testing.assert_array_equal(W[:, cols], w_ih[torch_rows].T)
            np.testing.assert_array_equal(U[:, cols], w_hh[torch_rows].T)
            np.testing.assert_array_equal(b[0, cols], b_ih[torch_rows])  # row 0: input bias
            np.testing.assert_array_equal(b[1, cols], b_hh[torch_rows])  # row 1: recurrent bias
    else:
        np.testing.assert_array_equal(W, w_ih.T)  # same gate order i, f, c, o
        np.testing.assert_array_equal(U, w_hh.T)
        np.testing.assert_array_equal(b, b_ih + b_hh)
    np.testing.assert_array_equal(w_dense, model.output.weight.detach().numpy().T)
    np.testing.assert_array_equal(c_dense, model.output.bias.detach().numpy())
    if cell == "gru":  # and the file, run by Keras's equations, is the model
        audio = plucked_guitar(RATE, 0.02, seed=3)
        inputs = np.column_stack([audio, knob_automation(len(audio), 2)])
        with torch.no_grad():
            reference = model(torch.from_numpy(inputs[:, 0])[None], torch.from_numpy(inputs[:, 1:])[None])[0][0].numpy()
        keras = _keras_gru(inputs, W.astype(float), U.astype(float), b.astype(float)) @ w_dense[:, 0] + c_dense[0]
        assert np.max(np.abs(keras - reference)) < 1e-5


def test_rtneural_self_test_catches_a_wrong_conversion(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(rt, "_gru_order", lambda hidden: np.arange(3 * hidden))  # PyTorch order left in place
    out = tmp_path / "bad.json"
    with pytest.raises(ModelError, match=r"RTNeural JSON self-test failed: max abs error"):
        _export(runs("concat", "gru"), out, "rtneural")
    assert not out.exists()


def test_rtneural_reader_rejects_malformed_files(tmp_path):
    good = {"in_shape": [None, None, 2], "layers": [
        {"type": "gru", "activation": "", "shape": [None, None, 4], "weights": [np.zeros((2, 12)).tolist(), np.zeros((4, 12)).tolist(), np.zeros((2, 12)).tolist()]},
        {"type": "dense", "activation": "", "shape": [None, None, 1], "weights": [np.zeros((4, 1)).tolist(), [0.5]]}]}
    assert np.allclose(rt.RTNeuralModel.from_dict(good).process(np.zeros((5, 2))), 0.5)

    bad_shape = json.loads(json.dumps(good))
    bad_shape["layers"][0]["weights"][1] = np.zeros((4, 9)).tolist()
    with pytest.raises(ModelError, match=r"layer 0: weights\[1\] has shape \(4, 9\), expected \(4, 12\)"):
        rt.RTNeuralModel.from_dict(bad_shape)
    bad_type = json.loads(json.dumps(good))
    bad_type["layers"][0]["type"] = "conv1d"
    with pytest.raises(ModelError, match="unsupported layer type 'conv1d'"):
        rt.RTNeuralModel.from_dict(bad_type)
    with pytest.raises(ModelError, match="needs a non-empty 'layers' list"):
        rt.RTNeuralModel.from_dict({"in_shape": [None, None, 1], "layers": []})
    path = tmp_path / "broken.json"
    path.write_text('{"in_shape": [null, null, 1], "layers": [')
    with pytest.raises(ModelError, match="is not valid JSON"):
        rt.RTNeuralModel.from_file(path)
    with pytest.raises(ModelError, match=r"takes \(3, 2\) inputs"):
        rt.RTNeuralModel.from_dict(good).process(np.zeros((3, 3)))


# -- refusals and broken runs ----------------------------------------------------------------------


@pytest.mark.parametrize("cond", ["film", "statichyper", "dynamichyper"])
def test_rtneural_refuses_schemes_it_cannot_express(runs, tmp_path, cond):
    out = tmp_path / "model.json"
    with pytest.raises(ModelError, match=rf"the {cond} scheme cannot be exported as rtneural \(RTNeural JSON holds .*\); export it as onnx instead \(--format onnx\)"):
        _export(runs(cond), out, "rtneural")
    assert not out.exists()
    model, _ = load_run(runs(cond))
    assert formats_for(model) == ["onnx"]


def test_format_table_and_unknown_format(runs, tmp_path):
    model, _ = load_run(runs("concat"))
    assert formats_for(model) == ["onnx", "rtneural", "aidax"] and set(FORMATS) == {"onnx", "rtneural", "aidax", "nam"}
    model, _ = load_run(runs("film", "lstm"))
    assert formats_for(model) == ["onnx", "nam"]
    with pytest.raises(ModelError, match="unknown export format 'keras'; choose one of onnx, rtneural, aidax, nam"):
        _export(runs("concat"), tmp_path / "m.h5", "keras")
    with pytest.raises(ModelError, match="checkpoint must be 'best' or 'last'"):
        export_run(runs("concat"), tmp_path / "m.json", "rtneural", checkpoint="final")


def test_export_into_a_folder_names_the_file_after_the_run(runs, tmp_path):
    report = _export(runs("concat", "lstm"), tmp_path, "rtneural")
    assert Path(report["path"]) == tmp_path / "concat-lstm.json" and (tmp_path / "concat-lstm.json").is_file()
    report = _export(runs("concat", "lstm"), tmp_path / "exports", "rtneural")  # no suffix: a new folder
    assert Path(report["path"]) == tmp_path / "exports" / "concat-lstm.json"


def test_corrupted_run_folders_give_clear_errors(runs, tmp_path):
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(runs("concat"), tmp_path / name))

    with pytest.raises(ModelError, match="is not a training run"):
        _export(tmp_path, tmp_path / "m.json", "rtneural")
    run = copy("bad-config")
    (run / "config.json").write_text('{"model": {"cond": "concat",')
    with pytest.raises(ModelError, match="config.json is corrupt"):
        _export(run, tmp_path / "m.json", "rtneural")
    run = copy("no-weights")
    (run / "best.safetensors").unlink()
    with pytest.raises(ModelError, match=r"best.safetensors does not exist"):
        _export(run, tmp_path / "m.json", "rtneural")
    run = copy("truncated")
    data = (run / "best.safetensors").read_bytes()
    (run / "best.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="is corrupt"):
        _export(run, tmp_path / "m.json", "rtneural")
    run = copy("no-rate")
    config = json.loads((run / "config.json").read_text())
    del config["dataset"]["sample_rate"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="lacks a valid dataset.sample_rate"):
        _export(run, tmp_path / "m.json", "rtneural")
    run = copy("wrong-knobs")
    config = json.loads((run / "config.json").read_text())
    config["dataset"]["knob_names"] = ["drive"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="must list the model's 2 knob name"):
        _export(run, tmp_path / "m.json", "rtneural")
    assert not (tmp_path / "m.json").exists()


def test_runs_without_knob_ranges_export_names_only(runs, tmp_path):
    import shutil

    run = Path(shutil.copytree(runs("concat"), tmp_path / "plain"))
    config = json.loads((run / "config.json").read_text())
    del config["dataset"]["knobs"]  # what train.py writes today: names only
    (run / "config.json").write_text(json.dumps(config))
    _export(run, tmp_path / "m.json", "rtneural")
    assert json.loads((tmp_path / "m.json").read_text())["metadata"]["knobs"] == [{"name": "drive"}, {"name": "tone"}]


# -- helpers -------------------------------------------------------------------------------------------


def test_self_test_signals():
    audio = plucked_guitar(RATE, 1.0, seed=4)
    assert audio.dtype == np.float32 and len(audio) == RATE
    assert np.max(np.abs(audio)) == pytest.approx(0.8, rel=1e-6)
    assert np.sqrt(np.mean(audio ** 2)) > 0.02  # notes, not a lone click
    np.testing.assert_array_equal(audio, plucked_guitar(RATE, 1.0, seed=4))
    knobs = knob_automation(4000, 2, block=32)
    assert knobs.shape == (4000, 2) and knobs.min() >= -1 and knobs.max() <= 1
    assert knobs.max() - knobs.min() > 1.8  # sweeps (nearly) the whole range
    changes = np.flatnonzero(np.any(np.diff(knobs, axis=0) != 0, axis=1)) + 1
    assert len(changes) > 50 and np.all(changes % 32 == 0)  # held within each 32-sample block


def test_compare_outputs_reports_the_worst_sample():
    reference = np.zeros(1000)
    exported = reference.copy()
    exported[500] = 2e-4
    with pytest.raises(ModelError, match=r"max abs error 0.0002 .* \(at sample 500, 0.031 s\)"):
        compare_outputs(reference, exported, 1e-4, RATE, "X")
    exported[500] = np.nan
    with pytest.raises(ModelError, match="not finite from sample 500"):
        compare_outputs(reference, exported, 1e-4, RATE, "X")
    assert compare_outputs(reference, reference + 5e-5, 1e-4, RATE, "X") == pytest.approx(5e-5)


def test_export_model_takes_a_model_directly(tmp_path):
    from fxcap.modeling.registry import ModelConfig, build_model

    model = build_model(ModelConfig(cond="concat", cell="gru", num_knobs=1))
    meta = ExportMeta.from_run(model, {"dataset": {"sample_rate": 8000, "knob_names": ["gain"]}})
    report = export_model(model, meta, tmp_path / "m.json", "rtneural", SelfTestConfig(seconds=0.1))
    assert report["max_abs_error"] < 1e-4 and report["inputs"] == ["audio", "gain"]
    with pytest.raises(ModelError, match="positive length"):
        SelfTestConfig(seconds=0)
    with torch.no_grad():
        model.output.bias.fill_(float("nan"))
    with pytest.raises(ModelError, match="output.bias holds NaN or Inf"):
        export_model(model, meta, tmp_path / "nan.json", "rtneural")


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_export(runs, tmp_path):
    runner = CliRunner()
    out = tmp_path / "od3.json"
    result = runner.invoke(app, ["export", "--model", str(runs("concat")), "--format", "rtneural", "--out", str(out), "--seconds", "0.2"])
    assert result.exit_code == 0, result.output
    assert "max abs error" in result.output and "passed" in result.output and out.is_file()

    result = runner.invoke(app, ["export", "--model", str(runs("film")), "--format", "rtneural", "--out", str(tmp_path / "f.json")])
    assert result.exit_code == 1 and isinstance(result.exception, ModelError)
    assert "export it as onnx instead" in str(result.exception)


def test_cli_export_prints_the_knob_inputs_in_order_with_their_normalization(tmp_path):
    from fxcap.capture.profiles import Knob
    from fxcap.modeling.export.common import knob_input_lines

    knobs = [Knob("drive", 0.0, 10.0, 5.0), Knob("mode", values=("compress", "limit"), default="compress")]
    run = make_dummy_run(tmp_path / "run", cond="concat", num_knobs=2, sample_rate=RATE, knobs=knobs)
    result = CliRunner().invoke(app, ["export", "--model", str(run), "--format", "rtneural", "--out", str(tmp_path / "m.json"),
                                      "--seconds", "0.1"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "knob inputs, in this order, normalized to [-1, 1]:" in text
    assert "1. drive 0..10 -> 2 * (drive - 0) / 10 - 1" in text and "2. mode (switch): compress = -1, limit = 1" in text
    assert text.index("1. drive") < text.index("2. mode")
    assert knob_input_lines([{"name": "gain"}]) == ["1. gain (range not recorded in the run: already normalized to [-1, 1])"]
    # a range off zero with its unit, a three-way switch, half a range (not a usable one)
    assert knob_input_lines([{"name": "gain", "minimum": -12, "maximum": 12, "unit": "dB"},
                             {"name": "mode", "values": ["a", "b", "c"]}, {"name": "bias", "minimum": 0}]) == [
        "1. gain -12..12 dB -> 2 * (gain - -12) / 24 - 1",
        "2. mode (switch): a = -1, b = 0, c = 1",
        "3. bias (range not recorded in the run: already normalized to [-1, 1])",
    ]


def _dense_document(**changes):
    """A valid RTNeural document: one linear dense layer, inputs [x, knob] -> 0.5 x + 0.25 knob + 0.1."""
    layer = {"type": "dense", "activation": "", "shape": [None, None, 1], "weights": [[[0.5], [0.25]], [0.1]]}
    document = {"in_shape": [None, None, 2], "layers": [layer], "metadata": {"device": "OD-3"}}
    for key, value in changes.items():
        if key.startswith("layer_"):
            layer[key[len("layer_"):]] = value
        else:
            document[key] = value
    return document


def test_rtneural_reader_runs_a_document_by_value_with_and_without_its_input_skip():
    inputs = np.array([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.5]])
    plain = rt.RTNeuralModel.from_dict(_dense_document())
    np.testing.assert_allclose(plain.process(inputs), [0.6, 0.35, -0.775], rtol=1e-6)
    assert plain.metadata == {"device": "OD-3"} and rt.RTNeuralModel.from_dict(_dense_document(metadata=None)).metadata == {}
    skipped = rt.RTNeuralModel.from_dict(_dense_document(in_skip=1))  # the input added to the output
    np.testing.assert_allclose(skipped.process(inputs), [1.6, 0.35, -2.775], rtol=1e-6)
    lstm = {"type": "lstm", "activation": "tanh", "shape": [None, None, 2],
            "weights": [np.zeros((2, 8)).tolist(), np.zeros((2, 8)).tolist(), np.zeros(8).tolist()]}
    head = {"type": "dense", "activation": "", "shape": [None, None, 1], "weights": [[[1.0], [1.0]], [0.0]]}
    assert rt.RTNeuralModel.from_dict({"in_shape": [None, None, 2], "layers": [lstm, head]}).layers[0].units == 2


@pytest.mark.parametrize("document, message", [
    ([], "an RTNeural model needs a non-empty 'layers' list"),
    ({"in_shape": [None, None, 2]}, "an RTNeural model needs a non-empty 'layers' list"),
    (_dense_document(layers=[]), "an RTNeural model needs a non-empty 'layers' list"),
    (_dense_document(in_shape=[None, None, 0]), r"'in_shape' must be a list ending in the input size, e.g. \[null, null, 3\]"),
    (_dense_document(in_shape=[]), r"'in_shape' must be a list ending in the input size"),
    (_dense_document(in_shape=[None, None, "2"]), r"'in_shape' must be a list ending in the input size"),
    (_dense_document(in_skip=2), "in_skip must be 0 or 1, not 2"),
    (_dense_document(layers=["dense"]), "layer 0 must be an object with type, shape and weights"),
    (_dense_document(layer_shape=[]), "layer 0: 'shape' must end in the layer's output size"),
    (_dense_document(layer_shape=[None, None, "1"]), "layer 0: 'shape' must end in the layer's output size"),
    (_dense_document(layer_shape=[None, None, 2], layer_weights=[[[0.5, 0.5], [0.25, 0.25]], [0.1, 0.1]]),
     "the last layer must have one output \\(a mono sample\\), not 2"),
    (_dense_document(layer_weights=[[[0.5, 0.5]], [0.1]]),
     r"layer 0: weights\[0\] has shape \(1, 2\), expected \(2, 1\) \(input 2, 1 gate\(s\) of 1\)"),
    (_dense_document(layer_type="gru", layer_activation="tanh", layer_weights=[np.zeros((2, 4)).tolist(), np.zeros((1, 3)).tolist(), np.zeros((2, 3)).tolist()]),
     r"layer 0: weights\[0\] has shape \(2, 4\), expected \(2, 3\) \(input 2, 3 gate\(s\) of 1\)"),
    (_dense_document(layer_type="lstm", layer_activation="tanh", layer_weights=[np.zeros((2, 4)).tolist(), np.zeros((1, 4)).tolist(), np.zeros(5).tolist()]),
     r"layer 0: weights\[2\] has shape \(5,\), expected \(4,\) \(input 2, 4 gate\(s\) of 1\)"),
    (_dense_document(layer_activation="softmax"), "layer 0: unsupported dense activation 'softmax'"),
    (_dense_document(layer_type="gru", layer_activation="relu"), "layer 0: a gru layer's activation must be '' or 'tanh', not 'relu'"),
    (_dense_document(layer_weights=[[[0.5], ["x"]], [0.1]]), r"layer 0: weights\[0\] is not a numeric array"),
])
def test_rtneural_reader_refuses_a_malformed_document_naming_what_is_wrong(document, message):
    with pytest.raises(ModelError, match=f"^where.json: {message}"):
        rt.RTNeuralModel.from_dict(document, "where.json")


def test_rtneural_reader_names_the_file_it_read(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_dense_document(in_skip=3)))
    with pytest.raises(ModelError, match=f"^{path}: in_skip must be 0 or 1, not 3$"):
        rt.RTNeuralModel.from_file(path)


def test_exported_json_is_compact_without_nan_and_holds_exact_float32_values(tmp_path):
    from fxcap.modeling.export.common import float32_lists, read_json_file, to_json_bytes

    assert to_json_bytes({"a": [1, 2.5], "b": "é"}) == '{"a":[1,2.5],"b":"\\u00e9"}\n'.encode()
    with pytest.raises(ValueError):
        to_json_bytes({"w": [float("nan")]})  # NaN is not JSON: no plugin reads it
    values = float32_lists(np.array([[0.1, 1 / 3], [1e-8, -2.0]]))
    assert values == [[0.1, 0.33333334], [1e-08, -2.0]]  # the shortest decimals that read back as those float32s
    assert all(type(v) is float for row in values for v in row)
    assert json.loads(json.dumps(values)) == values and np.array_equal(np.float32(values), np.float32([[0.1, 1 / 3], [1e-8, -2.0]]))
    with pytest.raises(ModelError, match=f"^{tmp_path / 'none.json'} does not exist$"):
        read_json_file(tmp_path / "none.json")


def test_export_metadata_describes_the_model_and_its_knobs_by_value(runs):
    from fxcap import __version__
    from fxcap.modeling.export.common import KNOB_NORMALIZATION

    model, run_config = load_run(runs("concat", "gru"))
    dataset = {**run_config["dataset"], "device": "OD-3",
               "knobs": [{"name": "drive", "min": 0, "max": 10, "unit": "", "default": 5},  # an older run's aliases
                         {"name": "tone", "minimum": -1, "maximum": 1, "unit": "dB"}]}
    meta = ExportMeta.from_run(model, {**run_config, "dataset": dataset}, checkpoint="last", run="od3/concat-gru-s0")
    assert meta.to_dict() == {
        "fxcap_version": __version__, "scheme": "concat", "cell": "gru", "hidden_size": 32, "sample_rate": RATE,
        "knob_names": ["drive", "tone"],
        "knobs": [{"name": "drive", "minimum": 0, "maximum": 10, "unit": "", "default": 5},
                  {"name": "tone", "minimum": -1, "maximum": 1, "unit": "dB"}],
        "knob_normalization": KNOB_NORMALIZATION,
        "state_layout": [[name, width] for name, width in model.state_layout], "state_size": model.state_size,
        "model_config": model.config.to_dict(), "checkpoint": "last", "run": "od3/concat-gru-s0", "device": "OD-3",
    }


@needs_onnx
def test_export_takes_the_checkpoint_and_the_self_test_settings_asked_for(runs, tmp_path):
    from fxcap.modeling.checkpoint import load_weights, save_weights
    from fxcap.modeling.export.onnx import open_session, read_metadata

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "best.safetensors"):
        (run / name).write_bytes((runs("concat", "gru") / name).read_bytes())
    model, _ = load_run(run)
    with torch.no_grad():  # a last checkpoint that differs from the best one
        model.output.bias.add_(0.25)
    save_weights(run / "last.safetensors", model, load_weights(run / "best.safetensors")[1])
    report = export_run(run, tmp_path / "last.onnx", "onnx", checkpoint="last", seconds=0.05, tolerance=3e-4, seed=7)
    assert (report["tolerance"], report["seconds"]) == (3e-4, pytest.approx(0.05, abs=1.0 / RATE))
    assert read_metadata(tmp_path / "last.onnx")["checkpoint"] == "last"
    x, knobs = np.zeros((1, 64), np.float32), np.zeros((1, 64, 2), np.float32)
    y, _ = open_session(tmp_path / "last.onnx").run(None, {"audio": x, "knobs": knobs, "state": np.zeros((1, model.state_size), np.float32)})
    with torch.no_grad():
        expected = model(torch.from_numpy(x), torch.from_numpy(knobs))[0].numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5)  # the last weights, not the best
    best = export_run(run, tmp_path / "best.onnx", "onnx", seconds=0.05)
    assert read_metadata(tmp_path / "best.onnx")["checkpoint"] == "best" and best["tolerance"] != 3e-4
