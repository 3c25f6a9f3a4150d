import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.extras import require
from fxcap.capture.profiles import LA2A
from fxcap.capture.session import Session
from fxcap.dataset import METADATA_KEY, SPLITS, SequenceDataset, build_dataset, load_dataset_info, make_dataloader, validate
from fxcap.dataset.testing import make_dummy_session
from fxcap.errors import DatasetError



def _all_rows(root):
    info = load_dataset_info(root)
    return pd.concat([pd.read_parquet(p) for p in info.shard_files()], ignore_index=True)


def test_round_trip_loader_returns_the_aligned_audio_and_knob_values(built, dummy_session):
    info = load_dataset_info(built)
    signal = dummy_session.input_audio()
    outputs = {t.take_id: dummy_session.take_output(t) for t in dummy_session.takes}
    records = {t.take_id: t for t in dummy_session.takes}
    seen = 0
    for split in SPLITS:
        sequences = SequenceDataset(built, split)
        for i in range(len(sequences)):
            x, y, knobs = sequences[i]
            row = sequences.row(i)
            a, b = row["start_sample"], row["start_sample"] + row["num_samples"]
            np.testing.assert_array_equal(x.numpy(), signal[a:b])
            np.testing.assert_array_equal(y.numpy(), outputs[row["take_id"]][a:b])
            expected = [records[row["take_id"]].knobs_normalized[name] for name in info.knob_names]
            np.testing.assert_allclose(knobs.numpy(), expected, atol=1e-7)
            assert knobs.dtype == x.dtype == y.dtype
            seen += 1
    assert seen == sum(s.rows for s in info.splits.values())
    # the loader conditions on the knobs that vary; a fixed knob is in the shards but not an input
    assert info.knob_names == ["tone", "drive"] and [k.name for k in info.all_knobs] == ["level", "tone", "drive"]

    loader = make_dataloader(built, "train", window=512, batch_size=8, shuffle=True, seed=3)
    dataset = loader.dataset
    for keys in list(loader.sampler)[:3]:
        x, y, knobs = dataset[keys]
        assert x.shape == y.shape == (8, 512) and knobs.shape == (8, len(info.knob_names))
        for b, (row, offset) in enumerate(keys):
            facts = dataset.rows[row]
            a = facts["start_sample"] + offset
            np.testing.assert_array_equal(x[b].numpy(), signal[a:a + 512])
            np.testing.assert_array_equal(y[b].numpy(), outputs[facts["take_id"]][a:a + 512])


def test_only_passed_takes_are_used_and_the_failed_one_is_listed(built):
    info = load_dataset_info(built)
    rows = _all_rows(built)
    assert "take-0002" not in set(rows["take_id"])
    assert info.takes_used == 5 and info.takes_skipped == 1
    skipped = info.manifest["sessions"][0]["takes_skipped"]
    assert skipped == [{"take_id": "take-0002", "reason": "dropouts: 3 dropouts found"}]
    assert "skipped: s1/take-0002" in (built / "README.md").read_text()


def test_no_input_range_is_shared_across_splits(built):
    rows = _all_rows(built)
    spans = {split: [] for split in SPLITS}
    for start, n, split in zip(rows["start_sample"], rows["num_samples"], rows["split"]):
        spans[split].append((start, start + n))
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            for s1, e1 in set(spans[a]):
                for s2, e2 in set(spans[b]):
                    assert e1 <= s2 or e2 <= s1, (a, b)
    per_take = rows.groupby("take_id")["segment_index"].apply(lambda s: tuple(sorted(s)))
    assert len(set(per_take)) == 1  # every take has the same segments
    assert set(rows["region_kind"]) <= {"sweep", "noise", "program"}


def test_shards_carry_schema_metadata_and_read_with_pyarrow_and_pandas(built):
    info = load_dataset_info(built)
    table = pq.read_table(info.shard_files("train")[0])
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    assert meta["sample_rate"] == 48000 and meta["split"] == "train" and meta["window"] == 2048
    assert [k["name"] for k in meta["knobs"]] == ["level", "tone", "drive"]
    assert meta["knobs"][2]["minimum"] == 0 and meta["knobs"][2]["maximum"] == 10
    assert pa.types.is_list(table.schema.field("input").type)
    assert table.schema.field("target").type.value_type == pa.float32()
    assert {"knob_drive_raw", "knob_drive", "latency_samples", "gain_db", "drift_ppm", "noise_floor_dbfs",
            "repeatability_esr", "start_seconds"} <= set(table.column_names)
    column_meta = pq.ParquetFile(info.shard_files("train")[0]).metadata.row_group(0)
    encodings = {column_meta.column(i).path_in_schema: column_meta.column(i).encodings for i in range(column_meta.num_columns)}
    assert "RLE_DICTIONARY" in encodings["take_id"]
    assert "RLE_DICTIONARY" not in encodings["start_sample"]
    assert "BYTE_STREAM_SPLIT" in encodings["input.list.element"]
    frame = pd.read_parquet(built / "data", filters=[("split", "==", "test")])
    assert len(frame) == info.splits["test"].rows
    assert all(len(x) == n for x, n in zip(frame["input"], frame["num_samples"]))


def test_datasets_library_reads_the_shards(built, tmp_path, monkeypatch):
    datasets = require("datasets", "interop")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = datasets.load_dataset(
        "parquet",
        data_files={s: str(built / "data" / f"{s}-*.parquet") for s in SPLITS},
        cache_dir=str(tmp_path / "hf"),
    )
    info = load_dataset_info(built)
    assert {s: len(ds[s]) for s in SPLITS} == {s: info.splits[s].rows for s in SPLITS}
    row = ds["valid"].with_format("numpy")[0]
    assert row["input"].dtype == np.float32 and len(row["input"]) == row["num_samples"]


def test_duckdb_reads_the_shards(built):
    duckdb = require("duckdb", "interop")
    query = f"select count(*), sum(len(target)) from read_parquet('{built.as_posix()}/data/*.parquet') where split = 'train'"
    count, samples = duckdb.connect().execute(query).fetchone()
    info = load_dataset_info(built)
    assert count == info.splits["train"].rows and samples == info.splits["train"].samples


def test_wav_shards_hold_the_same_segments(built):
    index = pd.read_csv(built / "wav" / "index.csv")
    rows = _all_rows(built)
    assert len(index) == len(rows)
    assert list(index["take_id"]) == list(rows["take_id"]) and list(index["segment_index"]) == list(rows["segment_index"])
    for i in (0, len(index) // 2, len(index) - 1):
        x, rate = sf.read(built / "wav" / index["input_path"][i], dtype="float32")
        y, _ = sf.read(built / "wav" / index["target_path"][i], dtype="float32")
        assert rate == 48000
        np.testing.assert_array_equal(x, rows["input"][i])
        np.testing.assert_array_equal(y, rows["target"][i])
    assert pd.read_parquet(built / "wav" / "index.parquet")["target_path"].tolist() == index["target_path"].tolist()


def test_building_twice_gives_identical_bytes(tmp_path, dummy_session, small_config):
    a = build_dataset([dummy_session.root], tmp_path / "a", small_config())
    b = build_dataset([dummy_session.root], tmp_path / "b", small_config())
    files_a = sorted(p.relative_to(a.path) for p in a.path.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.path) for p in b.path.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes(), rel
    assert a.dataset_hash == b.dataset_hash


def test_holdout_moves_whole_knob_settings_out(tmp_path, dummy_session, small_config):
    info = build_dataset([dummy_session.root], tmp_path / "h", small_config(holdout=("drive=5",), write_wav=False))
    rows = _all_rows(info.path)
    held = rows[rows["split"] == "holdout"]
    assert set(held["knob_drive_raw"]) == {5.0}
    assert set(held["take_id"]) == {"take-0003", "take-0004"}  # drive 5 with tone 2 and 8
    assert 5.0 not in set(rows[rows["split"] != "holdout"]["knob_drive_raw"])
    assert set(held["time_split"]) == set(SPLITS)
    assert len(held) == 2 * held["segment_index"].nunique()
    assert info.holdout == ["drive=5"]
    assert [p for p in validate(info.path) if p.severity == "error"] == []
    with pytest.raises(DatasetError, match="no take has that setting"):
        build_dataset([dummy_session.root], tmp_path / "x", small_config(holdout=("drive=7",)))
    with pytest.raises(DatasetError, match="no knob 'gain'"):
        build_dataset([dummy_session.root], tmp_path / "x", small_config(holdout=("gain=7",)))
    with pytest.raises(DatasetError, match="every take"):
        build_dataset([dummy_session.root], tmp_path / "x", small_config(holdout=("level=5",)))
    assert not (tmp_path / "x").exists()


def test_two_sessions_combine_and_mismatches_are_named(tmp_path, dummy_session, small_config):
    other = make_dummy_session(tmp_path / "s2", knob_grid={"drive": [2.5, 7.5]}, seconds=4.0, seed=0, backend="sim")
    info = build_dataset([other.root, dummy_session.root], tmp_path / "both", small_config(write_wav=False))
    assert info.sessions == sorted(info.sessions, key=lambda n: [dummy_session.root.name, "s2"].index(n))
    rows = _all_rows(info.path)
    assert set(rows["session"]) == {"s1", "s2"} and set(rows["backend"]) == {"dummy", "sim"}
    assert info.takes_used == 7
    assert [p for p in validate(info.path) if p.severity == "error"] == []

    other_signal = make_dummy_session(tmp_path / "s3", knob_grid={"drive": [1.0]}, seconds=4.0, seed=9)
    with pytest.raises(DatasetError, match="different test signals"):
        build_dataset([dummy_session.root, other_signal.root], tmp_path / "x", small_config())
    other_rate = make_dummy_session(tmp_path / "s4", knob_grid={"drive": [1.0]}, seconds=4.0, sample_rate=44100)
    with pytest.raises(DatasetError, match="different sample rates"):
        build_dataset([dummy_session.root, other_rate.root], tmp_path / "x", small_config())
    other_device = make_dummy_session(tmp_path / "s5", device_profile=LA2A, seconds=4.0)
    with pytest.raises(DatasetError, match="different devices"):
        build_dataset([dummy_session.root, other_device.root], tmp_path / "x", small_config())


def test_dataset_still_loads_after_moving_the_folder(tmp_path, built):
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(built, moved, ignore=shutil.ignore_patterns(".cache"))
    manifest = (moved / "dataset.json").read_text()
    assert str(built) not in manifest and str(tmp_path) not in manifest
    assert all(not f["path"].startswith("/") for f in json.loads(manifest)["files"])
    x, y, knobs = next(iter(make_dataloader(moved, "valid", window=256, batch_size=2)))
    assert x.shape == (2, 256)
    assert validate(moved) == validate(built)


def test_existing_output_needs_force_and_the_old_dataset_survives_a_failed_build(tmp_path, dummy_session, small_config):
    out = tmp_path / "ds"
    first = build_dataset([dummy_session.root], out, small_config(write_wav=False))
    with pytest.raises(DatasetError, match="--force"):
        build_dataset([dummy_session.root], out, small_config(write_wav=False))
    with pytest.raises(DatasetError):
        build_dataset([dummy_session.root], out, small_config(holdout=("drive=7",)), overwrite=True)
    assert load_dataset_info(out).dataset_hash == first.dataset_hash
    again = build_dataset([dummy_session.root], out, small_config(), overwrite=True)
    assert (out / "wav").is_dir() and again.dataset_hash != first.dataset_hash
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an fxcap dataset"):
        build_dataset([dummy_session.root], tmp_path / "other", small_config(), overwrite=True)


def test_info_describes_the_dataset(built):
    info = load_dataset_info(built)
    assert list(info.splits) == ["train", "valid", "test"]
    assert info.knob_columns == ["knob_tone", "knob_drive"]  # level never changes in the dummy grid
    text = info.describe()
    assert "OD-3" in text and "drive [0 .. 10]" in text and "level fixed" in text and info.dataset_hash in text
    assert info.quality["noise_floor_dbfs"]["max"] < -80
    assert info.splits["train"].seconds == pytest.approx(info.splits["train"].samples / 48000)
    with pytest.raises(DatasetError, match="not an fxcap dataset"):
        load_dataset_info(built / "data")


def test_default_window_follows_the_device_kind(tmp_path, small_config):
    session = make_dummy_session(tmp_path / "la", device_profile=LA2A, seconds=4.0)
    info = build_dataset([Session.open(session.root)], tmp_path / "la-ds", small_config(write_wav=False))
    assert info.window == 8192
    assert set(_all_rows(info.path)["knob_mode_raw"]) == {"compress", "limit"}
