"""Fault matrix, import: an interrupted import continues with ``fxcap import --resume`` (no circular
advice), and a "take" that is the dry signal (inverted or not) is refused unless the profile allows it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from fxcap.capture.virtual import RigImpairments, apply_rig, build_virtual_device
from tests.faults._capture_helpers import RATE, assert_one_line_error, hashes, run_fxcap, save_short_signal, write_wav

RIG = RigImpairments(latency_samples=211.3, gain_db=-4.0, noise_dbfs=-100.0, drift_ppm=0.0, tail_samples=RATE // 8)
SETTINGS = [{"drive": 2.0, "tone": 5.0}, {"drive": 5.0, "tone": 5.0}, {"drive": 8.0, "tone": 5.0}]


@pytest.fixture(scope="module")
def daw(tmp_path_factory):
    """capture.wav, three recordings of the virtual OD-3 through a rig and the bypass recording."""
    root = tmp_path_factory.mktemp("daw")
    signal = save_short_signal(root)
    device = build_virtual_device("OD-3", RATE)
    files = []
    for i, knobs in enumerate(SETTINGS):
        device.reset()
        name = "_".join(f"{k}={v:g}" for k, v in knobs.items()) + ".wav"
        files.append(write_wav(root / name, apply_rig(device.process(signal.audio, knobs), RIG, RATE, seed=10 + i)))
    write_wav(root / "bypass.wav", apply_rig(signal.audio, RIG, RATE, seed=99))
    return {"root": root, "signal": signal, "files": files}


def _import(capsys, daw, out, *extra):
    return run_fxcap(capsys, "import", *daw["files"], "--signal", daw["root"] / "capture.wav", "--device", "OD-3",
                     "--bypass", daw["root"] / "bypass.wav", "--out", out, *extra)


def test_an_import_interrupted_after_one_take_continues_with_import_resume(daw, tmp_path, capsys, monkeypatch):
    import fxcap.capture.importer as importer

    out = tmp_path / "session"
    real_keep = importer.keep_take
    kept = []

    def keep_then_ctrl_c(*args, **kwargs):
        if kept:
            raise KeyboardInterrupt
        kept.append(real_keep(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(importer, "keep_take", keep_then_ctrl_c)
    assert_one_line_error(_import(capsys, daw, out),
                          f"interrupted; nothing written so far is lost; continue with `fxcap import --resume --out {out}`", code=130)
    manifest = json.loads((out / "session.json").read_text())
    assert manifest["status"] == "interrupted" and [t["take_id"] for t in manifest["takes"]] == ["take-0001"]
    before = hashes(out / "takes")
    monkeypatch.setattr(importer, "keep_take", real_keep)

    # the old dead ends now point at the way on
    assert_one_line_error(_import(capsys, daw, out), "already holds a session; use --resume")
    assert_one_line_error(run_fxcap(capsys, "record", "--resume", "--out", out), f"continue it with `fxcap import --resume --out {out}`")
    assert_one_line_error(run_fxcap(capsys, "import", daw["files"][0], "--resume", "--out", out), "not the 3 files of the import")

    outcome = run_fxcap(capsys, "import", "--resume", "--out", out)
    assert outcome.code == 0, outcome.text
    manifest = json.loads((out / "session.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["takes"]) == 3
    assert [t["knobs"]["drive"] for t in manifest["takes"]] == [2.0, 5.0, 8.0]
    assert {k: v for k, v in hashes(out / "takes").items() if k in before} == before  # the first take is untouched
    assert run_fxcap(capsys, "import", "--resume", "--out", out).code == 0  # a complete import: nothing to do


def _dry_copy_files(daw, folder, gain: float):
    """drive=2 as the dry signal times ``gain`` (exported from the DAW's dry track), drive=8 a real take."""
    folder.mkdir()
    dry = write_wav(folder / "drive=2_tone=5.wav", np.concatenate([gain * daw["signal"].audio, np.zeros(RATE // 8, np.float32)]))
    real = write_wav(folder / "drive=8_tone=5.wav", sf.read(daw["files"][2], dtype="float32")[0])
    return dry, real


def test_a_take_that_is_the_dry_signal_inverted_is_refused_unless_the_profile_allows_it(daw, tmp_path, capsys):
    dry, real = _dry_copy_files(daw, tmp_path / "files", gain=-0.5)
    common = ["--signal", daw["root"] / "capture.wav", "--device", "OD-3"]
    before = hashes(tmp_path / "files")
    line = assert_one_line_error(run_fxcap(capsys, "import", dry, real, *common, "--bypass", daw["root"] / "bypass.wav", "--strict",
                                           "--out", tmp_path / "strict"),
                                 f"{dry} failed its checks (dry_copy: the take equals the dry test signal inverted")
    assert "may_be_transparent = true" in line

    outcome = run_fxcap(capsys, "import", dry, real, *common, "--out", tmp_path / "lenient")  # without --strict: skipped, said
    assert outcome.code == 0, outcome.text
    manifest = json.loads((tmp_path / "lenient" / "session.json").read_text())
    assert [t["knobs"]["drive"] for t in manifest["takes"]] == [8.0]
    assert any("dry_copy" in note and str(dry) in note for note in manifest["notes"])

    profile = tmp_path / "buffer.toml"
    profile.write_text('name = "Buffer"\nmay_be_transparent = true\n[[knobs]]\nname = "drive"\n[[knobs]]\nname = "tone"\n')
    outcome = run_fxcap(capsys, "import", dry, real, "--signal", daw["root"] / "capture.wav", "--device", profile, "--out", tmp_path / "ok")
    assert outcome.code == 0, outcome.text
    manifest = json.loads((tmp_path / "ok" / "session.json").read_text())
    assert len(manifest["takes"]) == 2 and manifest["device"]["may_be_transparent"] is True
    assert hashes(tmp_path / "files") == before
