"""Knob values of imported recordings: from a knob CSV or from the file names, with or without a profile.

**CSV** (``--knobs knobs.csv``), either shape (column names in any case):

* wide: a header ``file,<knob>,<knob>...``, then one line per recording; an empty cell leaves that
  knob at its default;
* long: a header ``file,knob,value``, then one line per recording and knob.

``file`` is the file name or a path relative to the CSV.

**File names**: ``<knob>=<value>``, ``<knob>_<value>`` or ``<knob><value>`` pieces anywhere in the
name, separated by anything that is not a letter or digit: ``drive=6_tone=5.wav``,
``distortion_drive_0.wav``, ``drive6_tone5.wav``, ``peak_reduction=40_mode=limit.wav``. Numbers may
be negative and have decimals (use ``.``); a switch is given by its value (``mode=limit``). A knob
named in some file names must be named in all of them; knobs named in none sit at their defaults.
``name=value`` pieces that name no knob are an error (a typo must not become a default).

**Without a profile** (:func:`infer_profile`), the knobs are the CSV's knob columns or the file
names' ``name=value`` pieces (a name may contain ``_``, so ``take_drive=6`` names ``take_drive``; and
``drive_0`` cannot tell a knob ``drive`` from a word before it, so it needs a profile); a knob whose values are all numbers becomes a continuous knob over the range of the
values seen, any other a switch over its values. Every recording must give every knob, and each knob
must take at least two values (else its range is unknown).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fxcap.capture.profiles import BUILTIN_PROFILES, DeviceProfile, Knob, KnobValue
from fxcap.capture.profiles import canonical_name as _canon
from fxcap.errors import FxcapError

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff")
"""File types the importer reads (through soundfile)."""

LONG_HEADER = ("file", "knob", "value")
"""Columns of a long knob CSV (one line per recording and knob)."""

INFERRED_NAME = "imported"
"""Name of a profile inferred from the knob values (no ``--device``)."""


@dataclass
class Recording:
    """One file to import and the knob setting it was recorded at (complete, validated)."""

    path: Path
    knobs: dict[str, KnobValue]


@dataclass
class CsvRecording:
    """The knob values a CSV gives one recording, as written.

    Attributes:
        file: the file, resolved relative to the CSV.
        line: the first line that names it.
        values: knob name as written -> ``(line, value text)``.
    """

    file: Path
    line: int
    values: dict[str, tuple[int, str]]


_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)"
_NAMED_PIECE = re.compile(
    rf"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9_-]*?)\s*=\s*({_NUMBER}|[A-Za-z][A-Za-z0-9]*)(?![A-Za-z0-9]|\.\d)"
)


def _stem(name: str) -> str:
    return Path(name).stem if Path(name).suffix.lower() in AUDIO_SUFFIXES else Path(name).name


def _name_pattern(name: str) -> str:
    """Regex for a knob name: case-insensitive, ``_``/``-``/space between its parts optional."""
    parts = [re.escape(p) for p in re.split(r"[-_ ]+", name) if p]
    return r"[-_ ]?".join(parts)


def _format(value: KnobValue) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def example_filename(profile: DeviceProfile) -> str:
    """A file name that names every knob of ``profile`` at its default, e.g. ``level=5_tone=5_drive=5.wav``."""
    return "_".join(f"{k}={_format(v)}" for k, v in profile.defaults().items()) + ".wav"


def _csv_header_hint(profile: DeviceProfile | None) -> str:
    knobs = ",".join(profile.knob_names) if profile is not None else "<knob>,<knob>..."
    return f"file,{knobs} (one line per recording) or file,knob,value (one line per recording and knob)"


def knobs_from_filename(name: str, profile: DeviceProfile) -> dict[str, KnobValue]:
    """The knob values named in a file name (see the module docstring); only the knobs it names.

    Raises :class:`FxcapError` for a ``name=value`` piece that names no knob, a knob named twice or
    a value out of range.
    """
    text = _stem(name)
    found: dict[str, KnobValue] = {}
    for knob in sorted(profile.knobs, key=lambda k: -len(k.name)):
        value_pattern = "|".join(re.escape(v) for v in knob.values) if knob.is_switch else _NUMBER
        separator = r"(?:\s*=\s*|_)" if knob.is_switch else r"(?:\s*=\s*|_|\s*)"
        pattern = re.compile(
            rf"(?<![A-Za-z0-9]){_name_pattern(knob.name)}{separator}({value_pattern})(?![A-Za-z0-9]|\.\d)", re.IGNORECASE
        )
        matches = list(pattern.finditer(text))
        if len(matches) > 1:
            raise FxcapError(f"file name {name!r} gives {knob.name} twice; name each knob once (e.g. {example_filename(profile)})")
        if matches:
            raw = matches[0].group(1)
            if knob.is_switch:
                assert knob.values is not None
                raw = next(v for v in knob.values if v.lower() == raw.lower())
            try:
                found[knob.name] = knob.validate(raw)
            except ValueError as exc:
                raise FxcapError(f"file name {name!r}: {exc}") from None
            start, stop = matches[0].span()
            text = text[:start] + " " * (stop - start) + text[stop:]  # a shorter knob name cannot match inside
    leftover = re.search(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9_-]*)\s*=", text)
    if leftover:
        raise FxcapError(
            f"file name {name!r}: {leftover.group(1)!r} is not a knob of {profile.name} (its knobs: "
            f"{', '.join(profile.knob_names)}); rename the file or give the values in a --knobs CSV"
        )
    return found


def read_csv_recordings(path: str | Path, profile: DeviceProfile | None = None) -> list[CsvRecording]:
    """The recordings a knob CSV lists (wide or long, see the module docstring), values as written.

    ``profile`` only words the error messages. Raises :class:`FxcapError` for an unreadable or
    malformed CSV.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FxcapError(f"cannot read the knob CSV {path} ({exc.strerror or exc}); check the path") from None
    rows = [(n, r) for n, r in enumerate(csv.reader(text.splitlines()), start=1) if any(cell.strip() for cell in r)]
    if not rows:
        raise FxcapError(f"{path} is empty; its first line must be: {_csv_header_hint(profile)}")
    header = [cell.strip() for cell in rows[0][1]]
    lowered = [h.lower() for h in header]
    if "file" not in lowered:
        raise FxcapError(f"{path} has no 'file' column (header: {','.join(header)}); its first line must be: {_csv_header_hint(profile)}")
    long = sorted(lowered) == sorted(LONG_HEADER)
    file_col = lowered.index("file")
    for i, name in enumerate(header):
        if not long and i != file_col:
            if not name:
                raise FxcapError(f"{path}: column {i + 1} has no name; its first line must be: {_csv_header_hint(profile)}")
            if profile is not None:  # a misspelt column is an error even where all its cells are empty
                _knob_of(profile, name, f"{path}: column {name!r}")
    result: dict[Path, CsvRecording] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise FxcapError(f"{path} line {line} has {len(row)} fields, the header {len(header)}; fix the line")
        file = row[file_col].strip()
        if not file:
            raise FxcapError(f"{path} line {line} has no file name")
        key = (path.parent / file).resolve()
        if long:
            name, value = row[lowered.index("knob")].strip(), row[lowered.index("value")].strip()
            entry = result.setdefault(key, CsvRecording(key, line, {}))
            if any(_canon(name) == _canon(seen) for seen in entry.values):
                raise FxcapError(f"{path} line {line}: {file} gives {name} twice; give each knob of a recording one line")
            if value:
                entry.values[name] = (line, value)
            continue
        if key in result:
            raise FxcapError(f"{path} line {line}: {file} is listed twice; give each recording one line")
        values = {header[i]: (line, cell.strip()) for i, cell in enumerate(row) if i != file_col and cell.strip()}
        result[key] = CsvRecording(key, line, values)
    if not result:
        raise FxcapError(f"{path} lists no recordings; add one line per file: {_csv_header_hint(profile)}")
    return list(result.values())


def _knob_of(profile: DeviceProfile, name: str, where: str) -> Knob:
    try:
        return profile.knob(name)
    except ValueError:
        raise FxcapError(f"{where} is not a knob of {profile.name} (its knobs: {', '.join(profile.knob_names)})") from None


def read_knobs_csv(path: str | Path, profile: DeviceProfile) -> dict[Path, dict[str, KnobValue]]:
    """Read a knob CSV (wide or long): resolved file path -> the knob values it gives, validated."""
    result: dict[Path, dict[str, KnobValue]] = {}
    for entry in read_csv_recordings(path, profile):
        values: dict[str, KnobValue] = {}
        for name, (line, cell) in entry.values.items():
            knob = _knob_of(profile, name, f"{path} line {line}: {name!r}")
            try:
                values[knob.name] = knob.validate(cell)
            except ValueError as exc:
                raise FxcapError(f"{path} line {line}: {exc}") from None
        result[entry.file] = values
    return result


def _match_csv(path: Path, table: dict[Path, dict[str, KnobValue]], csv_path: Path) -> dict[str, KnobValue]:
    """The CSV row of ``path``: by resolved path, else by a unique file name."""
    resolved = path.resolve()
    if resolved in table:
        return table[resolved]
    by_name = [key for key in table if key.name == path.name]
    if len(by_name) == 1:
        return table[by_name[0]]
    if len(by_name) > 1:
        raise FxcapError(f"{path.name} matches several lines of {csv_path}; give paths relative to the CSV")
    raise FxcapError(f"{path} is not listed in {csv_path}; add a line for it or leave it out of the import")


def plan_recordings(
    recordings: Sequence[str | Path], profile: DeviceProfile, knobs_csv: str | Path | None = None
) -> list[Recording]:
    """The files to import with their complete knob settings (CSV or file names), validated.

    Raises :class:`FxcapError` for a missing file, an unreadable or inconsistent CSV, or file
    names that do not give the same knobs.
    """
    paths = [Path(p) for p in recordings]
    table = read_knobs_csv(knobs_csv, profile) if knobs_csv is not None else None
    if not paths and table is not None:
        paths = list(table)
    if not paths:
        raise FxcapError("no recordings given; list the files to import (e.g. fxcap import takes/*.wav --signal capture.wav)")
    if len({p.resolve() for p in paths}) != len(paths):
        raise FxcapError("a recording is listed twice; give each file once")
    for path in paths:
        if not path.is_file():
            raise FxcapError(f"recording {path} does not exist; check the path (and the file column of the CSV)")
    if table is not None:
        assert knobs_csv is not None
        return [Recording(p, profile.complete(_match_csv(p, table, Path(knobs_csv)))) for p in paths]
    named = [knobs_from_filename(p.name, profile) for p in paths]
    used = {name for values in named for name in values}
    for path, values in zip(paths, named):
        missing = [name for name in profile.knob_names if name in used and name not in values]
        if missing:
            raise FxcapError(
                f"file name {path.name!r} gives no value for {', '.join(missing)} (other files do); name every swept "
                f"knob (e.g. {example_filename(profile)}) or give the values in a --knobs CSV"
            )
    if not used:
        raise FxcapError(
            f"the file names give no knob values (e.g. {example_filename(profile)}); rename the files or give a --knobs CSV "
            f"with the columns file,{','.join(profile.knob_names)}"
        )
    return [Recording(p, profile.complete(values)) for p, values in zip(paths, named)]


# -- a profile from the knob values --------------------------------------------------------------------
@dataclass
class InferredProfile:
    """A profile built from the knob values of the recordings (no ``--device``) and what to tell the user."""

    profile: DeviceProfile
    message: str


def _named_pieces(name: str) -> dict[str, str]:
    """The ``name=value`` pieces of a file name, values as written."""
    return {m.group(1): m.group(2) for m in _NAMED_PIECE.finditer(_stem(name))}


def _inferred_knob(name: str, values: list[str], where: str) -> Knob:
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        distinct = tuple(dict.fromkeys(values))
        if len(distinct) < 2:
            raise FxcapError(_one_value(name, values[0], where)) from None
        return Knob(name, values=distinct, default=distinct[0])
    low, high = min(numbers), max(numbers)
    if not high > low:
        raise FxcapError(_one_value(name, values[0], where))
    return Knob(name, low, high, numbers[0])


def _one_value(name: str, value: str, where: str) -> str:
    return (f"{name} is {value} in every recording of the {where}, so its range cannot be inferred; pass --device with a "
            "profile (.toml) that gives the knobs' ranges")


def infer_profile(recordings: Sequence[str | Path], knobs_csv: str | Path | None = None) -> InferredProfile:
    """A profile whose knobs are the CSV's knob columns or the file names' ``name=value`` pieces
    (see the module docstring), and a message saying so.

    Raises :class:`FxcapError` when the values name no knob, a recording lacks a knob, or a knob has
    a single value.
    """
    if knobs_csv is not None:
        where = f"knob CSV {Path(knobs_csv).name}"
        entries = {e.file: {n: v for n, (_, v) in e.values.items()} for e in read_csv_recordings(knobs_csv)}
    else:
        where = "file names"
        entries = {Path(p): _named_pieces(Path(p).name) for p in recordings}
    names: dict[str, str] = {}  # canonical -> as first written
    for values in entries.values():
        for name in values:
            names.setdefault(_canon(name), name)
    if not names:
        raise FxcapError(
            "no --device given and the file names give no knob=value pieces; pass the device's profile (--device OD-3, "
            "LA-2A or a .toml) to read names like drive_6 or drive6, name the files knob=value (e.g. drive=6_tone=5.wav) "
            "or give a --knobs CSV"
        )
    columns: dict[str, list[str]] = {name: [] for name in names.values()}
    for file, values in entries.items():
        given = {_canon(n): v for n, v in values.items()}
        for canon, name in names.items():
            if canon not in given:
                raise FxcapError(
                    f"{file.name} gives no value for {name} (others do); without --device every recording must give "
                    "every knob, or pass a profile (--device) whose defaults fill the gaps"
                )
            columns[name].append(given[canon])
    knobs = tuple(_inferred_knob(name, values, where) for name, values in columns.items())
    profile = DeviceProfile(INFERRED_NAME, knobs, description=f"inferred by fxcap import from the {where}")
    ranges = ", ".join(f"{k.name} ({'/'.join(k.values)})" if k.values else f"{k.name} {k.minimum:g}..{k.maximum:g}" for k in knobs)
    message = (f"no --device given: the profile is inferred from the {where}: {ranges} (ranges are the values seen; "
               "knob inputs are normalized over them); pass --device OD-3, LA-2A or a .toml for the device's own ranges")
    matching = [p.name for p in BUILTIN_PROFILES.values() if {_canon(n) for n in names} <= {_canon(k) for k in p.knob_names}]
    if matching:
        message += f" ({' and '.join(matching)} has these knobs)"
    return InferredProfile(profile, message)
