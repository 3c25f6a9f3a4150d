"""``validate``: check a dataset folder and name the bad file and row of every problem.

Checks, in order:

1. ``dataset.json`` reads; every listed file exists with the listed size and sha256.
2. Every Parquet shard opens (a truncated or corrupt shard is a problem, never a traceback), has the
   expected columns and types, and carries ``fxcap`` metadata that agrees with the manifest.
3. Every row: ``input``/``target``/``num_samples`` lengths agree, no NaN/Inf, its split matches its shard,
   its segment matches the split plan, knob values are in range and normalized consistently.
4. Split leakage: no input range of one time split overlaps an input range of another (same signal;
   a dataset of several signals is checked per signal),
   no identical (non-silent) input appears in two time splits, and no held-out knob setting appears
   in train/valid/test.
5. Knob coverage: every take kept for training has rows in every non-empty time split, every
   held-out setting has holdout rows, and (warning) knobs that never change in train.
6. Row counts per split match the manifest; the WAV index points at files that exist.
"""

from __future__ import annotations

import hashlib
import io
import math
import posixpath
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fxcap.dataset.manifest import read_manifest
from fxcap.dataset.remote import Location, locate
from fxcap.dataset.schema import KnobColumn, decode_metadata, row_schema
from fxcap.dataset.splits import HOLDOUT_SPLIT, SPLITS
from fxcap.errors import DatasetError

MAX_LEAK_REPORTS = 50
SILENT_PEAK = 1e-6
"""Inputs whose peak is below this are not compared by hash (silence is the same everywhere)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: ``file`` (relative to the dataset folder), ``row`` (0-based, in
    that file) where it applies, the ``check`` that found it, and a message that says what to do."""

    check: str
    message: str
    file: str | None = None
    row: int | None = None
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.file or "dataset"
        if self.row is not None:
            where += f" row {self.row}"
        return f"{self.severity}: {where}: {self.message} [{self.check}]"


@dataclass
class _RowRef:
    file: str
    row: int
    split: str
    time_split: str
    start: int
    stop: int
    setting: tuple[Any, ...]
    input_hash: str | None
    take: tuple[str, str]
    signal: str = ""


class _Validator:
    def __init__(self, root: Location):
        self.root = root
        self.problems: list[Problem] = []
        self.refs: list[_RowRef] = []
        self.signal_of: dict[str, str] = {}  # session name -> the sha256 of the signal it played
        self.listing: dict[str, int] = {}

    def add(self, check: str, message: str, file: str | None = None, row: int | None = None, severity: str = "error") -> None:
        self.problems.append(Problem(check, message, file, row, severity))

    # -- files --------------------------------------------------------------------------------------------
    def check_files(self, manifest: dict[str, Any]) -> set[str]:
        """Size and hash of every listed file; returns the paths that are present."""
        present = set()
        self.listing = self.root.files()
        for entry in manifest["files"]:
            rel = entry["path"]
            if rel not in self.listing:
                self.add("files", "listed in dataset.json but missing; restore it or rebuild the dataset", rel)
                continue
            present.add(rel)
            size = self.listing[rel]
            if size != entry["bytes"]:
                self.add("files", f"has {size} bytes, dataset.json says {entry['bytes']} (truncated or changed); rebuild the dataset", rel)
            elif (self.root / rel).sha256() != entry["sha256"]:
                self.add("files", "content differs from dataset.json (sha256 mismatch); rebuild the dataset", rel)
        listed = {e["path"] for e in manifest["files"]}
        for rel in sorted(self.listing):
            if rel.startswith("data/") and rel.count("/") == 1 and rel.endswith(".parquet") and rel not in listed:
                self.add("files", "shard not listed in dataset.json (left over from another build?); remove it", rel, severity="warning")
        return present

    # -- shards -------------------------------------------------------------------------------------------
    def check_shard(self, entry: dict[str, Any], manifest: dict[str, Any], knobs: list[KnobColumn], plan: dict[int, dict[str, Any]]) -> None:
        rel = entry["path"]
        target = self.root / rel
        source = target.local_path if target.is_local else None
        try:
            if source is None:
                source = target.open_input()
            parquet = pq.ParquetFile(source)
            schema = parquet.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as exc:
            self.add("open", f"cannot be opened: truncated or not a Parquet file ({_short(exc)}); rebuild the dataset", rel)
            return
        try:
            self._check_parquet(parquet, schema, entry, manifest, knobs, plan)
        finally:
            parquet.close()

    def _check_parquet(self, parquet: pq.ParquetFile, schema: pa.Schema, entry: dict[str, Any], manifest: dict[str, Any],
                       knobs: list[KnobColumn], plan: dict[int, dict[str, Any]]) -> None:
        rel = entry["path"]
        expected = row_schema(knobs)
        have = {f.name: f.type for f in schema}
        missing = [f.name for f in expected if f.name not in have]
        for f in expected:
            if f.name in have and not have[f.name].equals(f.type):
                self.add("schema", f"column {f.name} has type {have[f.name]}, expected {f.type}", rel)
        extra = [n for n in have if n not in expected.names]
        if missing:
            self.add("schema", f"missing column(s) {', '.join(missing)}; rebuild the dataset", rel)
            return
        if extra:
            self.add("schema", f"unexpected column(s) {', '.join(extra)}", rel, severity="warning")
        try:
            meta = decode_metadata(schema)
        except DatasetError as exc:
            self.add("schema", str(exc), rel)
            meta = {}
        if meta:
            for key in ("sample_rate", "window"):
                if meta.get(key) != manifest[key]:
                    self.add("schema", f"metadata {key} is {meta.get(key)}, dataset.json says {manifest[key]}", rel)
            if meta.get("split") != entry["split"]:
                self.add("schema", f"metadata says split {meta.get('split')!r}, dataset.json says {entry['split']!r}", rel)
            if meta.get("knobs") != manifest["knobs"]:
                self.add("schema", "metadata knobs differ from dataset.json", rel)
        if parquet.metadata.num_rows != entry.get("rows"):
            self.add("rows", f"holds {parquet.metadata.num_rows} rows, dataset.json says {entry.get('rows')}", rel)

        row = 0
        for group in range(parquet.num_row_groups):
            try:
                table = parquet.read_row_group(group)
            except (pa.ArrowException, OSError, ValueError) as exc:
                n = parquet.metadata.row_group(group).num_rows
                self.add("open", f"rows {row}..{row + n - 1} cannot be decoded ({_short(exc)}); rebuild the dataset", rel, row)
                row += n
                continue
            self.check_rows(table, rel, row, entry["split"], manifest, knobs, plan)
            row += table.num_rows

    def check_rows(self, table: pa.Table, rel: str, first: int, split: str, manifest: dict[str, Any], knobs: list[KnobColumn],
                   plan: dict[int, dict[str, Any]]) -> None:
        scalars = table.drop_columns(["input", "target"]).to_pylist()
        audio = {}
        for name in ("input", "target"):
            column = table.column(name).combine_chunks()
            offsets = np.asarray(column.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
            values = column.values.to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(values)
            counts = np.add.reduceat(bad.astype(np.int64), offsets[:-1]) if len(values) else np.zeros(len(offsets) - 1, np.int64)
            counts[np.diff(offsets) == 0] = 0  # reduceat repeats the next value for empty rows
            audio[name] = (values, offsets, counts)
        rate = manifest["sample_rate"]
        for i, facts in enumerate(scalars):
            row = first + i
            n = facts["num_samples"]
            lengths = {name: int(audio[name][1][i + 1] - audio[name][1][i]) for name in audio}
            if lengths["input"] != n or lengths["target"] != n:
                self.add("lengths", f"input has {lengths['input']} samples, target {lengths['target']}, num_samples says {n}", rel, row)
            for name in audio:
                if audio[name][2][i]:
                    self.add("nonfinite", f"{name} has {int(audio[name][2][i])} NaN/Inf sample(s)", rel, row)
            if facts["split"] != split:
                self.add("split", f"split is {facts['split']!r} in a {split} shard", rel, row)
            if facts["time_split"] not in SPLITS or (facts["split"] != HOLDOUT_SPLIT and facts["time_split"] != facts["split"]):
                self.add("split", f"time_split {facts['time_split']!r} does not fit split {facts['split']!r}", rel, row)
            if facts["sample_rate"] != rate:
                self.add("schema", f"sample_rate {facts['sample_rate']} differs from the dataset's {rate}", rel, row)
            segment = plan.get(facts["segment_index"])
            if segment is None or (segment["start"], segment["num_samples"], segment["split"]) != (
                facts["start_sample"], n, facts["time_split"]
            ):
                want = "no such segment" if segment is None else (
                    f"segment {facts['segment_index']} is samples {segment['start']}+{segment['num_samples']} in {segment['split']}")
                self.add("leakage", f"samples {facts['start_sample']}+{n} in {facts['time_split']} do not match the split plan "
                         f"({want}): this input may leak across splits", rel, row)
            if not math.isclose(facts["start_seconds"], facts["start_sample"] / rate, rel_tol=0, abs_tol=1e-9):
                self.add("schema", "start_seconds does not equal start_sample / sample_rate", rel, row)
            setting = []
            for knob in knobs:
                raw, norm = facts[knob.raw_column], facts[knob.column]
                try:
                    expected, valid = knob.normalize(raw), True
                except (ValueError, TypeError):
                    expected, valid = float("nan"), False
                if not valid:
                    self.add("knobs", f"{knob.raw_column} = {raw!r} is outside {knob.range_text()}", rel, row)
                elif not (-1.0 <= norm <= 1.0) or abs(norm - expected) > 1e-6:
                    self.add("knobs", f"{knob.column} = {norm} but {knob.raw_column} = {raw!r} normalizes to {expected:.6g}", rel, row)
                setting.append(raw)
            values, offsets, _ = audio["input"]
            chunk = values[offsets[i]:offsets[i + 1]]
            digest = None
            if len(chunk) and float(np.max(np.abs(np.nan_to_num(chunk)))) >= SILENT_PEAK:
                digest = hashlib.blake2b(np.ascontiguousarray(chunk, dtype="<f4").tobytes(), digest_size=16).hexdigest()
            self.refs.append(_RowRef(rel, row, facts["split"], facts["time_split"], facts["start_sample"],
                                     facts["start_sample"] + n, tuple(setting), digest,
                                     (facts["session"], facts["take_id"]), self.signal_of.get(facts["session"], "")))

    # -- across shards ------------------------------------------------------------------------------------
    def check_leakage(self) -> None:
        reports = 0
        by_signal: dict[str, list[_RowRef]] = defaultdict(list)
        for ref in self.refs:
            by_signal[ref.signal].append(ref)
        for refs in by_signal.values():  # sample ranges of different signals are different audio
            reports = self._range_leaks(refs, reports)
        reports = self._content_leaks(reports)
        if reports > MAX_LEAK_REPORTS:
            self.add("leakage", f"... and {reports - MAX_LEAK_REPORTS} more leaking rows")

    def _range_leaks(self, refs: list[_RowRef], reports: int) -> int:
        """Overlapping input ranges of one signal in different time splits."""
        by_range: dict[tuple[int, int, str], list[_RowRef]] = defaultdict(list)
        for ref in refs:
            by_range[(ref.start, ref.stop, ref.time_split)].append(ref)
        ranges = sorted(by_range)
        flagged: set[tuple[int, int, str]] = set()
        reach: tuple[int, int, str] | None = None  # the range reaching furthest right so far
        for key in ranges:
            if reach is not None and key[0] < reach[1]:
                # overlaps `reach`; also compare with every earlier range still overlapping (few: ranges are segments)
                for other in ranges:
                    if other[0] >= key[1]:
                        break
                    if other != key and other[1] > key[0] and other[2] != key[2]:
                        a, b = by_range[key], by_range[other]
                        culprit = key if len(a) < len(b) or (len(a) == len(b) and SPLITS.index(key[2]) > SPLITS.index(other[2])) else other
                        flagged.add(culprit)
            if reach is None or key[1] > reach[1]:
                reach = key
        for key in sorted(flagged):
            other_splits = sorted({r[2] for r in by_range if r[2] != key[2] and r[0] < key[1] and r[1] > key[0]})
            for ref in by_range[key]:
                if reports < MAX_LEAK_REPORTS:
                    self.add("leakage", f"input samples {key[0]}..{key[1]} ({key[2]}) overlap input of the "
                             f"{'/'.join(other_splits)} split: remove the row or rebuild the dataset", ref.file, ref.row)
                reports += 1
        return reports

    def _content_leaks(self, reports: int) -> int:
        """Identical inputs in two time splits, and held-out settings outside the holdout split."""
        by_hash: dict[str, list[_RowRef]] = defaultdict(list)
        for ref in self.refs:
            if ref.input_hash is not None:
                by_hash[ref.input_hash].append(ref)
        for refs in by_hash.values():
            splits = defaultdict(list)
            for ref in refs:
                splits[ref.time_split].append(ref)
            if len(splits) > 1:
                smallest = min(splits, key=lambda s: (len(splits[s]), -SPLITS.index(s)))
                for ref in splits[smallest]:
                    if reports < MAX_LEAK_REPORTS:
                        self.add("leakage", f"input identical to a row of the {'/'.join(sorted(set(splits) - {smallest}))} split "
                                 "(same audio in two splits)", ref.file, ref.row)
                    reports += 1
        held = {ref.setting for ref in self.refs if ref.split == HOLDOUT_SPLIT}
        for ref in self.refs:
            if ref.split != HOLDOUT_SPLIT and ref.setting in held:
                if reports < MAX_LEAK_REPORTS:
                    self.add("leakage", f"knob setting {ref.setting} is held out but appears in {ref.split}", ref.file, ref.row)
                reports += 1
        return reports

    def check_coverage(self, manifest: dict[str, Any], knobs: list[KnobColumn]) -> None:
        rows_by_take: dict[tuple[str, str], set[str]] = defaultdict(set)
        settings_by_split: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        counts: dict[str, int] = defaultdict(int)
        for ref in self.refs:
            settings_by_split[ref.split].add(ref.setting)
            counts[ref.split] += 1
        for ref in self.refs:
            rows_by_take[ref.take].add(ref.split)
        wanted = [s for s in SPLITS if manifest["split_config"][s] > 0]
        for take in manifest["takes"]:
            have = rows_by_take.get((take["session"], take["take_id"]), set())
            need = [HOLDOUT_SPLIT] if take["held_out"] else wanted
            for split in need:
                if split not in have:
                    self.add("coverage", f"take {take['session']}/{take['take_id']} ({take['setting']}) has no rows in the {split} split")
        train = settings_by_split.get("train", set())
        conditioning = manifest.get("conditioning_knobs") or [k.name for k in knobs]
        for i, knob in enumerate(knobs):
            values = {s[i] for s in train}
            if len(values) == 1 and knob.name in conditioning:
                self.add("coverage", f"knob {knob.name} has one value only ({next(iter(values))}) in train: a model cannot "
                         "learn its effect", severity="warning")
        for split, info in manifest["splits"].items():
            if counts.get(split, 0) != info["rows"]:
                self.add("rows", f"split {split} has {counts.get(split, 0)} readable rows, dataset.json says {info['rows']}")

    def check_wav_index(self, manifest: dict[str, Any]) -> None:
        index = manifest.get("wav_index")
        if not index:
            return
        import pandas as pd

        path = self.root / index
        try:
            frame = pd.read_csv(io.BytesIO(path.read_bytes()), usecols=["input_path", "target_path"])
        except (OSError, ValueError, pa.ArrowException) as exc:
            self.add("wav", f"cannot be read ({_short(exc)})", index)
            return
        base = index.rsplit("/", 1)[0] + "/" if "/" in index else ""
        reported = 0
        for row, (a, b) in enumerate(zip(frame["input_path"], frame["target_path"])):
            for rel in (a, b):
                if posixpath.normpath(base + str(rel)) not in self.listing and reported < MAX_LEAK_REPORTS:
                    self.add("wav", f"points at {rel}, which does not exist", index, row)
                    reported += 1


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def validate(dataset_dir: str | Path | Location) -> list[Problem]:
    """Check a dataset folder, local or a URI (see the module docstring); an empty list means it is sound.

    Never raises for a damaged dataset: every finding is a :class:`Problem` naming file and row. Every
    file is read once, streamed (shards row group by row group), so a remote dataset is never held in memory.
    """
    root = locate(dataset_dir)
    checker = _Validator(root)
    try:
        manifest = read_manifest(root)
        knobs = [KnobColumn.from_dict(k) for k in manifest["knobs"]]
        plan = {s["index"]: s for s in manifest["plan"]["segments"]}
        files = manifest["files"]
        checker.signal_of = {s["name"]: s.get("signal_sha256", manifest["signal"]["sha256"]) for s in manifest["sessions"]}
    except DatasetError as exc:
        return [Problem("manifest", str(exc), "dataset.json")]
    except (KeyError, TypeError, ValueError) as exc:
        return [Problem("manifest", f"missing or bad field ({exc!r}); rebuild the dataset", "dataset.json")]
    present = checker.check_files(manifest)
    for entry in files:
        if entry["kind"] == "parquet" and entry["path"] in present:
            checker.check_shard(entry, manifest, knobs, plan)
    checker.check_leakage()
    checker.check_coverage(manifest, knobs)
    checker.check_wav_index(manifest)
    return checker.problems
