"""SignalTrain-layout dry/wet pairs (made here with the virtual LA-2A) -> sessions -> one leakage-free dataset."""

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from fxcap.capture.signaltrain import SIGNALTRAIN_LA2A, SignalTrainConfig, import_signaltrain, parse_target_name, scan_signaltrain
from fxcap.capture.virtual import build_virtual_device
from fxcap.dataset import BuildConfig, SplitConfig, build_dataset, validate
from fxcap.errors import DatasetError, FxcapError

RATE = 44100
# id -> (seconds, [(switch, peak)]); different lengths, so the inputs' segments overlap in sample numbers
PAIRS = {"7": (3.0, [(0, 30), (1, 70)]), "12": (4.2, [(0, 55)])}


def _write(path, audio):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32), RATE, subtype="FLOAT")


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("signaltrain")
    for k, (ident, (seconds, settings)) in enumerate(PAIRS.items()):
        rng = np.random.default_rng(k)
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        dry = 0.5 * np.sin(2 * np.pi * 220 * t) * (0.2 + 0.8 * (np.sin(2 * np.pi * 0.7 * t) > 0)) + 0.02 * rng.standard_normal(n)
        folder = root / ("Train" if k == 0 else "Test")
        _write(folder / f"input_{ident}_.wav", dry)
        for switch, peak in settings:
            device = build_virtual_device("LA-2A", RATE)
            wet = device.process(dry, {"peak_reduction": peak, "mode": "limit" if switch else "compress"})
            _write(folder / f"target_{ident}_LA2A_3c__{switch}__{peak}.wav", wet[: n - 5 * k])  # the second pair is 5 samples short
    _write(root / "Train" / "notes.wav", np.zeros(100))  # not part of the layout: ignored
    return root


def test_names_and_scan(dataset_root):
    assert parse_target_name("target_138_LA2A_3c__1__65.wav") == ("138", {"peak_reduction": 65.0, "mode": "limit"})
    assert parse_target_name("input_138_.wav") is None
    items = scan_signaltrain(dataset_root)
    assert [(i.key, len(i.targets)) for i in items] == [("Test-12", 1), ("Train-7", 2)]
    assert [i.key for i in scan_signaltrain(dataset_root, ids=["7"])] == ["Train-7"]


def test_sessions_per_input_and_a_mixed_dataset_split_along_time_within_each_input(dataset_root, tmp_path):
    sessions = import_signaltrain(dataset_root, tmp_path / "sessions")
    assert [s.root.name for s in sessions] == ["Test-12", "Train-7"]
    by_name = {s.root.name: s for s in sessions}
    s7 = by_name["Train-7"]
    assert s7.manifest.device == SIGNALTRAIN_LA2A and s7.manifest.backend.name == "signaltrain"
    assert [t.knobs for t in s7.takes] == [{"peak_reduction": 30.0, "mode": "compress"}, {"peak_reduction": 70.0, "mode": "limit"}]
    assert [r.kind for r in s7.layout.regions] == ["program"] and s7.layout.length == int(3.0 * RATE)
    wet, _ = sf.read(str(dataset_root / "Train" / "target_7_LA2A_3c__1__70.wav"), dtype="float32")
    np.testing.assert_array_equal(s7.take_output(s7.takes[1]), wet)  # untouched: already aligned
    assert s7.takes[0].raw_file == s7.takes[0].output_file and not (s7.root / "takes/take-0001/raw.wav").exists()
    s12 = by_name["Test-12"]
    assert s12.layout.length == int(4.2 * RATE) - 5  # trimmed to the shorter file of the pair, and reported
    assert s12.takes[0].check("length").value == 5 and s12.takes[0].check("length").severity == "warning"

    with pytest.raises(DatasetError, match="different test signals.*mixed_signals=True"):
        build_dataset([s.root for s in sessions], tmp_path / "no", BuildConfig(split=SplitConfig(segment_seconds=0.25)))
    config = BuildConfig(split=SplitConfig(segment_seconds=0.25), mixed_signals=True, write_wav=True)
    info = build_dataset([s.root for s in sessions], tmp_path / "ds", config)
    assert info.window == 8192 and info.takes_used == 3
    assert [p for p in validate(tmp_path / "ds") if p.severity == "error"] == []
    assert "played 2 different signals" in (tmp_path / "ds" / "README.md").read_text()
    manifest = info.manifest
    signals = manifest["plan"]["signals"]
    assert [s["sessions"] for s in signals] == [["Test-12"], ["Train-7"]]
    segments = manifest["plan"]["segments"]
    assert [s["index"] for s in segments] == list(range(len(segments)))  # numbered across both signals
    for entry in signals:  # every input is cut along time into all three splits
        own = segments[entry["first_segment"] : entry["first_segment"] + entry["segments"]]
        assert {s["split"] for s in own} == {"train", "valid", "test"}
        spans = sorted((s["start"], s["start"] + s["num_samples"]) for s in own)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no overlap within one input

    import pandas as pd

    rows = pd.read_parquet(tmp_path / "ds" / "data")
    for (session, split), group in rows.groupby(["session", "split"]):
        wanted = {s["index"] for s in segments if s["split"] == split}
        assert set(group["segment_index"]) <= wanted
    assert set(rows[rows.session == "Train-7"]["segment_index"]) == set(range(signals[1]["first_segment"], signals[1]["first_segment"] + signals[1]["segments"]))


def test_validator_still_catches_a_leak_within_one_input(dataset_root, tmp_path):
    import json

    sessions = import_signaltrain(dataset_root, tmp_path / "sessions")
    build_dataset([s.root for s in sessions], tmp_path / "ds",
                  BuildConfig(split=SplitConfig(segment_seconds=0.25), mixed_signals=True, write_wav=False))
    path = tmp_path / "ds" / "dataset.json"
    manifest = json.loads(path.read_text())
    manifest["sessions"][0]["signal_sha256"] = manifest["sessions"][1]["signal_sha256"]  # claim both played one signal
    path.write_text(json.dumps(manifest))
    assert any(p.check == "leakage" and "overlap" in p.message for p in validate(tmp_path / "ds"))


def test_max_seconds_ids_and_errors(dataset_root, tmp_path):
    sessions = import_signaltrain(dataset_root, tmp_path / "a", SignalTrainConfig(ids=["7"], max_seconds=1.0))
    assert len(sessions) == 1 and sessions[0].layout.length == RATE
    orphan = tmp_path / "orphan"
    _write(orphan / "target_3_LA2A_3c__0__10.wav", np.zeros(10))
    with pytest.raises(FxcapError, match="has no input_3_.wav beside it"):
        import_signaltrain(orphan, tmp_path / "b")
    with pytest.raises(FxcapError, match="no SignalTrain pairs under"):
        import_signaltrain(tmp_path / "a", tmp_path / "c")
    bad = tmp_path / "bad"
    _write(bad / "input_1_.wav", np.zeros(RATE * 3))
    _write(bad / "target_1_LA2A_x__0__10.wav", np.zeros(RATE))
    with pytest.raises(FxcapError, match="not a dry/wet pair"):
        import_signaltrain(bad, tmp_path / "d")


def test_cli(dataset_root, tmp_path):
    from fxcap.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["import-signaltrain", str(dataset_root), "--out", str(tmp_path / "s"), "--max-seconds", "2"])
    assert result.exit_code == 0, result.output
    assert "2 sessions, 3 takes" in result.output
    result = runner.invoke(app, ["build-dataset", str(tmp_path / "s" / "Train-7"), str(tmp_path / "s" / "Test-12"),
                                 "--out", str(tmp_path / "ds"), "--mixed-signals", "--segment-seconds", "0.25", "--no-wav"])
    assert result.exit_code == 0, result.output
