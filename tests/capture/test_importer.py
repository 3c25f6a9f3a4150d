"""DAW import: recordings of the virtual OD-3 behind a rig with a known delay and gain, written as files."""

import json

import numpy as np
import pytest
import soundfile as sf

from fxcap.capture.importer import (
    ImportConfig,
    import_recordings,
    infer_profile,
    knobs_from_filename,
    plan_recordings,
    read_knobs_csv,
)
from fxcap.capture.profiles import LA2A, OD3
from fxcap.capture.signal import band_mix, save_signal, wrap_program
from fxcap.capture.virtual import RigImpairments, apply_rig, build_virtual_device
from fxcap.errors import CaptureError, FxcapError

RATE = 48000
LATENCY, GAIN_DB = 321.6, -7.5
RIG = RigImpairments(latency_samples=LATENCY, gain_db=GAIN_DB, noise_dbfs=-100.0, tail_samples=RATE // 4)
SETTINGS = [{"drive": 2.0, "tone": 5.0}, {"drive": 8.0, "tone": 3.0}]


def _esr_db(estimate, target):
    return 10 * np.log10(np.sum((estimate - target) ** 2) / np.sum(target**2))


def _write(path, audio, rate=RATE):
    sf.write(str(path), np.asarray(audio, dtype=np.float32), rate, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """capture.wav (a few seconds of band mix framed with markers), a bypass recording and two takes."""
    root = tmp_path_factory.mktemp("daw")
    signal = wrap_program(band_mix(RATE, 4.0, np.random.default_rng(3)), RATE, peak_dbfs=-3.0, preset="short")
    save_signal(signal, root / "capture.wav")
    device = build_virtual_device("OD-3", RATE)
    outputs = {}
    for i, knobs in enumerate(SETTINGS):
        device.reset()
        outputs[i] = device.process(signal.audio, knobs)
        name = "_".join(f"{k}={v:g}" for k, v in knobs.items()) + ".wav"
        _write(root / name, apply_rig(outputs[i], RIG, RATE, seed=10 + i))
    _write(root / "bypass.wav", apply_rig(signal.audio, RIG, RATE, seed=99))
    return {"root": root, "signal": signal, "outputs": outputs, "files": [root / "drive=2_tone=5.wav", root / "drive=8_tone=3.wav"]}


def test_bypass_recovers_the_injected_delay_and_gain_and_takes_match_the_device(rig, tmp_path):
    events = []
    session = import_recordings(rig["root"] / "capture.wav", rig["files"], device="OD-3", out=tmp_path / "s",
                                bypass=rig["root"] / "bypass.wav", observer=lambda e, d: events.append(e))
    cal = session.manifest.calibration["result"]
    assert abs(cal["latency_samples"] - LATENCY) < 0.05, cal["latency_samples"]
    assert abs(cal["gain_db"] - GAIN_DB) < 0.05, cal["gain_db"]
    assert session.manifest.backend.name == "import" and session.manifest.status == "complete"
    assert [t.knobs for t in session.takes] == [{"level": 5.0, **s} for s in SETTINGS]
    for i, take in enumerate(session.takes):
        assert take.alignment.latency_samples == pytest.approx(cal["latency_samples"])
        assert take.alignment.gain_db == pytest.approx(cal["gain_db"])
        assert _esr_db(session.take_output(take), rig["outputs"][i]) < -45.0
        assert take.backend_info["file"].endswith(rig["files"][i].name)
    assert events[:2] == ["plan", "calibration"] and events.count("take_done") == 2 and events[-1] == "session_done"


def test_an_imported_session_builds_a_dataset(rig, tmp_path):
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset, validate

    session = import_recordings(rig["root"] / "capture.wav", rig["files"], device="OD-3", out=tmp_path / "s")
    info = build_dataset([session.root], tmp_path / "ds", BuildConfig(split=SplitConfig(segment_seconds=0.5), write_wav=False))
    assert info.takes_used == 2 and info.manifest["sessions"][0]["backend"]["name"] == "import"
    assert [p for p in validate(tmp_path / "ds") if p.severity == "error"] == []


def test_without_bypass_each_file_is_aligned_on_its_own_markers_at_its_recorded_level(rig, tmp_path):
    session = import_recordings(rig["root"] / "capture.wav", rig["files"], device="OD-3", out=tmp_path / "s")
    assert session.manifest.calibration["source"] == "none"
    for i, take in enumerate(session.takes):
        aligned, device = session.take_output(take), rig["outputs"][i]
        assert take.alignment.gain_db == 0.0
        # the file's own marker latency includes the device's small delay at the marker's frequencies
        assert 0.0 <= take.alignment.latency_samples - LATENCY < 8.0
        level = 10 * np.log10(np.sum(aligned**2) / np.sum(device**2))
        assert level == pytest.approx(GAIN_DB, abs=0.1)  # not normalized: the level as recorded


def test_a_file_failing_its_checks_is_rejected_and_skipped_or_stops_a_strict_import(rig, tmp_path):
    broken = _write(tmp_path / "drive=5_tone=5.wav",
                    apply_rig(rig["outputs"][0], RigImpairments(**{**RIG.__dict__, "fault": "dropout"}), RATE, seed=5))
    files = [rig["files"][0], broken]
    session = import_recordings(rig["root"] / "capture.wav", files, device="OD-3", out=tmp_path / "s")
    assert [t.take_id for t in session.takes] == ["take-0001"]
    assert any(note.startswith(f"rejected {broken}") and "dropout" in note for note in session.manifest.notes)
    with pytest.raises(CaptureError, match=r"drive=5_tone=5.wav failed its checks \(dropouts: .*without --strict"):
        import_recordings(rig["root"] / "capture.wav", files, device="OD-3", out=tmp_path / "strict",
                          config=ImportConfig(strict=True))


def test_other_rates_are_refused_with_the_sox_command_or_resampled(rig, tmp_path):
    from scipy.signal import resample_poly

    take44 = _write(tmp_path / "drive=2_tone=5.wav", resample_poly(sf.read(str(rig["files"][0]))[0], 147, 160), 44100)
    with pytest.raises(FxcapError, match=rf"at 44100 Hz but the test signal is at 48000 Hz; convert it \(sox {take44} -r 48000 .*--resample"):
        import_recordings(rig["root"] / "capture.wav", [take44], device="OD-3", out=tmp_path / "s")
    assert not (tmp_path / "s").exists()  # refused before anything was written
    session = import_recordings(rig["root"] / "capture.wav", [take44], device="OD-3", out=tmp_path / "r",
                                config=ImportConfig(resample=True), bypass=rig["root"] / "bypass.wav")
    take = session.takes[0]
    assert take.backend_info["resampled_from"] == 44100
    assert abs(take.alignment.extra["latency_offset"]) < 8.0  # the resampled file lines up with the bypass


def test_channels_pick_refuse_ambiguous_stereo_and_accept_dual_mono(rig, tmp_path):
    wet, _ = sf.read(str(rig["files"][1]), dtype="float32")
    dry = np.concatenate([rig["signal"].audio, np.zeros(len(wet) - len(rig["signal"].audio), np.float32)])
    stereo = _write(tmp_path / "drive=8_tone=3.wav", np.stack([dry, wet], axis=1))
    with pytest.raises(FxcapError, match="2 channels with different audio; choose the device's with --channel N"):
        import_recordings(rig["root"] / "capture.wav", [stereo], device="OD-3", out=tmp_path / "a")
    with pytest.raises(FxcapError, match="--channel 3 does not exist"):
        import_recordings(rig["root"] / "capture.wav", [stereo], device="OD-3", out=tmp_path / "b", config=ImportConfig(channel=3))
    session = import_recordings(rig["root"] / "capture.wav", [stereo], device="OD-3", out=tmp_path / "c",
                                config=ImportConfig(channel=2), bypass=rig["root"] / "bypass.wav")
    assert session.takes[0].backend_info["channel"] == 2
    assert _esr_db(session.take_output(session.takes[0]), rig["outputs"][1]) < -45.0
    dual = _write(tmp_path / "drive8_tone3.wav", np.stack([wet, wet], axis=1))
    session = import_recordings(rig["root"] / "capture.wav", [dual], device="OD-3", out=tmp_path / "d")
    assert session.takes[0].knobs["drive"] == 8.0


def test_knob_values_from_a_csv(rig, tmp_path):
    csv = tmp_path / "knobs.csv"
    csv.write_text(f"file,Drive,tone\n{rig['files'][0]},2,5\n{rig['files'][1].name},8,\n")
    table = read_knobs_csv(csv, OD3)
    assert table[rig["files"][0].resolve()] == {"drive": 2.0, "tone": 5.0}
    assert table[(tmp_path / rig["files"][1].name).resolve()] == {"drive": 8.0}  # relative to the CSV; empty cell: default
    planned = plan_recordings(rig["files"], OD3, csv)  # matched by path, else by file name
    assert [p.knobs for p in planned] == [{"level": 5.0, "tone": 5.0, "drive": 2.0}, {"level": 5.0, "tone": 5.0, "drive": 8.0}]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,drive\nx.wav,2\n", "has no 'file' column .* file,level,tone,drive"),
        ("file,drvie\nx.wav,2\n", "column 'drvie' is not a knob of OD-3"),
        ("file,drive\nx.wav,12\n", "line 2: drive must be in 0..10, not 12"),
        ("file,drive\nx.wav,2,3\n", "line 2 has 3 fields, the header 2"),
        ("file,drive\n", "lists no recordings"),
    ],
)
def test_bad_csvs_are_one_line_errors(tmp_path, text, message):
    csv = tmp_path / "knobs.csv"
    csv.write_text(text)
    with pytest.raises(FxcapError, match=message):
        read_knobs_csv(csv, OD3)


def test_missing_and_unlisted_files_and_short_recordings_are_refused(rig, tmp_path):
    csv = tmp_path / "knobs.csv"
    csv.write_text(f"file,drive\n{rig['files'][0]},2\nnot-there.wav,3\n")
    with pytest.raises(FxcapError, match="recording .*not-there.wav does not exist"):
        plan_recordings([], OD3, csv)
    with pytest.raises(FxcapError, match="drive=8_tone=3.wav is not listed in"):
        plan_recordings([rig["files"][1]], OD3, csv)
    with pytest.raises(FxcapError, match="gives no value for tone"):
        plan_recordings([rig["files"][0], _write(tmp_path / "drive=3.wav", np.zeros(10))], OD3)
    short = _write(tmp_path / "drive=1_tone=1.wav", sf.read(str(rig["files"][0]))[0][: RATE * 2])
    with pytest.raises(FxcapError, match="2.00 s long but the test signal is .* export the whole take"):
        import_recordings(rig["root"] / "capture.wav", [short], device="OD-3", out=tmp_path / "s")
    with pytest.raises(FxcapError, match="capture.json is missing"):
        import_recordings(tmp_path / "capture.wav", rig["files"], device="OD-3", out=tmp_path / "t")


def test_file_name_patterns():
    assert knobs_from_filename("drive=6_tone=5.wav", OD3) == {"drive": 6.0, "tone": 5.0}
    assert knobs_from_filename("drive6_tone5.wav", OD3) == {"drive": 6.0, "tone": 5.0}
    assert knobs_from_filename("OD3 take Drive=6.5 TONE=0.wav", OD3) == {"drive": 6.5, "tone": 0.0}
    assert knobs_from_filename("peak_reduction=40_mode=limit.wav", LA2A) == {"peak_reduction": 40.0, "mode": "limit"}
    assert knobs_from_filename("peakreduction40_gain=50.wav", LA2A) == {"peak_reduction": 40.0, "gain": 50.0}
    with pytest.raises(FxcapError, match="'drvie' is not a knob of OD-3"):
        knobs_from_filename("drvie=6_tone=5.wav", OD3)
    with pytest.raises(FxcapError, match="gives drive twice"):
        knobs_from_filename("drive=6_drive=7.wav", OD3)
    with pytest.raises(FxcapError, match="drive must be in 0..10, not 11"):
        knobs_from_filename("drive=11.wav", OD3)


def test_cli_import(rig, tmp_path):
    from typer.testing import CliRunner

    from fxcap.cli import app

    runner = CliRunner()
    out = tmp_path / "s"
    result = runner.invoke(app, ["import", *map(str, rig["files"]), "--signal", str(rig["root"] / "capture.wav"),
                                 "--device", "OD-3", "--bypass", str(rig["root"] / "bypass.wav"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "take-0002" in result.output and f"session written to {out}" in " ".join(result.output.split())
    assert json.loads((out / "session.json").read_text())["backend"]["name"] == "import"
    result = runner.invoke(app, ["import", str(rig["files"][0]), "--signal", str(rig["root"] / "capture.wav"),
                                 "--out", str(tmp_path / "x"), "--channel", "0"])
    assert isinstance(result.exception, FxcapError) and "numbered from 1" in str(result.exception)


def test_long_csvs_and_knob_underscore_value_names_are_read():
    assert knobs_from_filename("distortion_drive_0.wav", OD3) == {"drive": 0.0}
    assert knobs_from_filename("od3_drive_6.5_tone_-0.wav", OD3) == {"drive": 6.5, "tone": 0.0}
    assert knobs_from_filename("comp_peak_reduction_40_mode_limit.wav", LA2A) == {"peak_reduction": 40.0, "mode": "limit"}


def test_a_long_csv_equals_the_wide_one(tmp_path):
    wide, long = tmp_path / "wide.csv", tmp_path / "long.csv"
    wide.write_text("file,drive,tone\na.wav,2,5\nb.wav,8,\n")
    long.write_text("File,Knob,Value\na.wav,drive,2\na.wav,TONE,5\nb.wav,drive,8\n")
    assert read_knobs_csv(long, OD3) == read_knobs_csv(wide, OD3)
    long.write_text("file,knob,value\na.wav,drive,2\na.wav,drive,3\n")
    with pytest.raises(FxcapError, match="line 3: a.wav gives drive twice"):
        read_knobs_csv(long, OD3)
    long.write_text("file,knob,value\na.wav,fuzz,2\n")
    with pytest.raises(FxcapError, match="line 2: 'fuzz' is not a knob of OD-3 .its knobs: level, tone, drive"):
        read_knobs_csv(long, OD3)


def test_error_examples_name_the_profiles_own_knobs(tmp_path):
    files = [_write(tmp_path / "take1.wav", np.zeros(10)), _write(tmp_path / "take2.wav", np.zeros(10))]
    with pytest.raises(FxcapError, match=r"e\.g\. peak_reduction=50_gain=50_mode=compress\.wav") as error:
        plan_recordings(files, LA2A)
    assert "tone" not in str(error.value) and "drive" not in str(error.value)


def test_without_device_the_profile_is_inferred_from_the_knob_values_and_said(rig, tmp_path):
    csv = tmp_path / "knobs.csv"
    csv.write_text(f"file,knob,value\n{rig['files'][0]},drive,2\n{rig['files'][1]},drive,8\n")
    session = import_recordings(rig["root"] / "capture.wav", [], csv, out=tmp_path / "s")
    device = session.manifest.device
    assert device.knob_names == ["drive"] and (device.knobs[0].minimum, device.knobs[0].maximum) == (2.0, 8.0)
    assert any("no --device given: the profile is inferred from the knob CSV" in n and "OD-3" in n for n in session.manifest.notes)
    inferred = infer_profile([tmp_path / "a mode=soft_gain=1.wav", tmp_path / "mode=hard gain=3.wav"])
    assert inferred.profile.knob("mode").values == ("soft", "hard") and inferred.profile.knob("gain").maximum == 3.0
    with pytest.raises(FxcapError, match="no --device given and the file names give no knob=value"):
        infer_profile([tmp_path / "drive_2.wav", tmp_path / "drive_8.wav"])
    with pytest.raises(FxcapError, match="tone is 5 in every recording .* pass --device"):
        infer_profile([tmp_path / "drive=2_tone=5.wav", tmp_path / "drive=8_tone=5.wav"])
    with pytest.raises(FxcapError, match="b drive=8.wav gives no value for tone"):
        infer_profile([tmp_path / "drive=2_tone=5.wav", tmp_path / "b drive=8.wav"])


def test_cli_import_without_bypass_shows_gain_na_at_80_columns_and_errors_print_no_progress_bar(rig, tmp_path, monkeypatch):
    from rich.console import Console
    from typer.testing import CliRunner

    import fxcap.cli as cli
    from fxcap.cli import tables

    monkeypatch.setattr(tables, "console", Console(width=80))
    runner = CliRunner()
    result = runner.invoke(cli.app, ["import", *map(str, rig["files"]), "--signal", str(rig["root"] / "capture.wav"),
                                     "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "n/a (no bypass take)" in " ".join(result.output.split()) and "+0.00" not in result.output
    assert "…" not in result.output  # nothing cut at 80 columns
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "no --device given" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,drive\nx.wav,2\n")
    result = runner.invoke(cli.app, ["import", "--knobs", str(bad), "--signal", str(rig["root"] / "capture.wav"),
                                     "--device", "OD-3", "--out", str(tmp_path / "t")])
    assert isinstance(result.exception, FxcapError) and "has no 'file' column" in str(result.exception)
    assert "calibration" not in result.output and result.output.strip() == ""
