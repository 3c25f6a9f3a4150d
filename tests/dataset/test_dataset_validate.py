import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fxcap.dataset import load_dataset_info, validate


@pytest.fixture
def copy(built, tmp_path):
    """A private copy of the built dataset, free to damage."""
    target = tmp_path / "ds"
    shutil.copytree(built, target, ignore=shutil.ignore_patterns(".cache"))
    return target


def _errors(root):
    return [p for p in validate(root) if p.severity == "error"]


def _rewrite(path, change):
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def _set_row(table, row, **values):
    data = table.to_pylist()
    data[row].update(values)
    return pa.Table.from_pylist(data, schema=table.schema)


def test_a_sound_dataset_has_no_errors(built):
    problems = validate(built)
    assert _errors(built) == []
    # the dummy grid never moves the level knob: not a conditioning knob, so nothing to warn about
    assert problems == []


def test_truncated_shard_is_named_without_a_traceback(copy):
    shard = load_dataset_info(copy).shard_files("test")[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    rel = shard.relative_to(copy).as_posix()
    problems = _errors(copy)
    opened = [p for p in problems if p.check == "open"]
    assert len(opened) == 1 and opened[0].file == rel and "truncated" in opened[0].message
    assert any(p.check == "files" and p.file == rel and "bytes" in p.message for p in problems)
    assert any(p.check == "rows" and "test" in p.message for p in problems)


def test_corrupt_page_is_named_with_its_rows(copy):
    shard = load_dataset_info(copy).shard_files("train")[0]
    meta = pq.ParquetFile(shard).metadata
    column = meta.row_group(0).column(meta.num_columns - 1)  # the target audio
    data = bytearray(shard.read_bytes())
    start = column.data_page_offset
    data[start:start + 64] = b"\xff" * 64
    shard.write_bytes(bytes(data))
    problems = [p for p in _errors(copy) if p.check == "open"]
    assert problems and problems[0].file == shard.relative_to(copy).as_posix() and problems[0].row == 0
    assert "cannot be decoded" in problems[0].message


def test_nan_row_is_named_with_file_and_row(copy):
    shard = load_dataset_info(copy).shard_files("valid")[0]

    def poison(table):
        target = table.column("target").to_pylist()
        target[2][100] = float("nan")
        target[2][101] = float("inf")
        return table.set_column(table.schema.get_field_index("target"), table.schema.field("target"),
                                pa.array(target, table.schema.field("target").type))

    _rewrite(shard, poison)
    nonfinite = [p for p in _errors(copy) if p.check == "nonfinite"]
    assert len(nonfinite) == 1
    assert (nonfinite[0].file, nonfinite[0].row) == (shard.relative_to(copy).as_posix(), 2)
    assert "target has 2 NaN/Inf" in nonfinite[0].message


def test_leaked_segment_is_named_with_file_and_row(copy):
    info = load_dataset_info(copy)
    train = pq.read_table(info.shard_files("train")[0])
    leaked = train.slice(4, 1).to_pylist()[0]
    leaked.update(split="test", time_split="test")
    test_shard = info.shard_files("test")[0]
    _rewrite(test_shard, lambda t: pa.concat_tables([t, pa.Table.from_pylist([leaked], schema=t.schema)]))
    rows = pq.ParquetFile(test_shard).metadata.num_rows
    leaks = [p for p in _errors(copy) if p.check == "leakage"]
    rel = test_shard.relative_to(copy).as_posix()
    assert leaks and all((p.file, p.row) == (rel, rows - 1) for p in leaks)
    assert any("overlap" in p.message for p in leaks) and any("identical" in p.message for p in leaks)


def test_leak_by_moved_segment_boundaries_is_found(copy):
    """A row whose range overlaps another split's segment (not an exact copy) is caught by the range sweep."""
    info = load_dataset_info(copy)
    shard = info.shard_files("test")[0]
    table = pq.read_table(shard)
    train_ranges = {(r["start_sample"], r["num_samples"]) for r in pq.read_table(info.shard_files("train")[0]).to_pylist()}
    first = table.to_pylist()[0]
    neighbour = min(train_ranges, key=lambda r: abs(r[0] - (first["start_sample"] + first["num_samples"])))
    shift = 1000
    _rewrite(shard, lambda t: _set_row(t, 0, start_sample=neighbour[0] - first["num_samples"] + shift,
                                          start_seconds=(neighbour[0] - first["num_samples"] + shift) / 48000))
    leaks = [p for p in _errors(copy) if p.check == "leakage" and "overlap" in p.message]
    assert leaks and leaks[0].file == shard.relative_to(copy).as_posix() and leaks[0].row == 0


def test_schema_knob_and_split_problems(copy):
    shard = load_dataset_info(copy).shard_files("train")[0]
    _rewrite(shard, lambda t: _set_row(_set_row(t, 1, knob_drive=0.5), 3, split="valid"))
    problems = _errors(copy)
    assert any(p.check == "knobs" and p.row == 1 and "knob_drive" in p.message for p in problems)
    assert any(p.check == "split" and p.row == 3 for p in problems)
    _rewrite(shard, lambda t: t.drop_columns(["gain_db"]))
    assert any(p.check == "schema" and "gain_db" in p.message for p in _errors(copy))


def test_missing_shard_and_broken_manifest(copy):
    shard = load_dataset_info(copy).shard_files("valid")[0]
    shard.unlink()
    problems = _errors(copy)
    assert any(p.check == "files" and "missing" in p.message for p in problems)
    assert any(p.check == "coverage" and "valid" in p.message for p in problems)
    (copy / "dataset.json").write_text("{not json")
    problems = validate(copy)
    assert len(problems) == 1 and problems[0].file == "dataset.json" and "corrupt" in problems[0].message
    manifest = copy / "dataset.json"
    manifest.unlink()
    assert "not an fxcap dataset" in validate(copy)[0].message


def test_problem_text_names_file_and_row(copy):
    shard = load_dataset_info(copy).shard_files("valid")[0]
    _rewrite(shard, lambda t: _set_row(t, 0, num_samples=5))
    text = [str(p) for p in _errors(copy) if p.check == "lengths"][0]
    assert text.startswith(f"error: {shard.relative_to(copy).as_posix()} row 0: input has")


def test_out_of_range_raw_knob_is_named(copy):
    shard = load_dataset_info(copy).shard_files("test")[0]
    _rewrite(shard, lambda t: _set_row(t, 2, knob_tone_raw=12.0))
    problems = [p for p in _errors(copy) if p.check == "knobs"]
    assert [(p.row, "outside 0 .. 10" in p.message) for p in problems] == [(2, True)]
