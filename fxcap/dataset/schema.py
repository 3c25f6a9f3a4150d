"""The Parquet row schema of an fxcap dataset and its ``fxcap`` schema metadata.

One row is one (take, segment). Scalar columns describe where the segment comes from and how the take
was captured; ``input`` and ``target`` hold the audio as float32 lists (no lossy or integer encoding:
targets may exceed +-1). Knob columns come in pairs: ``knob_<name>_raw`` (the panel value: float64,
or string for a switch) and ``knob_<name>`` (float32 normalized to [-1, 1], what a model sees).

Only the categorical string columns are dictionary-encoded in Parquet; the audio uses
BYTE_STREAM_SPLIT + zstd (lossless, about 20 % smaller than plain, fast to decode). The Arrow types
are plain (``string``, ``list<float32>``) so pandas, pyarrow, DuckDB and Hugging Face ``datasets``
read the shards as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from fxcap import __version__
from fxcap.capture.profiles import DeviceProfile, Knob
from fxcap.errors import DatasetError

DATASET_FORMAT = "fxcap-dataset"
DATASET_VERSION = 1
"""Version of the dataset layout (shards, columns, manifest). Bumped on incompatible changes."""

METADATA_KEY = b"fxcap"
"""Key of the JSON document in every shard's Arrow/Parquet schema metadata."""

CATEGORICAL_COLUMNS = ("device", "backend", "split", "time_split", "session", "take_id", "region", "region_kind")
"""String columns with few distinct values: dictionary-encoded in Parquet."""

AUDIO_COLUMNS = ("input", "target")

DYNAMICS_KINDS = ("compressor", "limiter", "leveler")
"""Device kinds whose gain follows the signal's level over a longer time than a window (dynamics processors)."""

WINDOW_BY_KIND = {kind: 8192 for kind in DYNAMICS_KINDS}
"""Default training window (samples) by device kind; anything else gets :data:`DEFAULT_WINDOW`."""

DEFAULT_WINDOW = 2048

PARQUET_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "version": "2.6",
    "data_page_version": "1.0",
    "data_page_size": 1 << 20,
    "write_batch_size": 1024,
    "store_schema": True,
}
"""Fixed writer options: the same inputs give byte-identical shards (with the same pyarrow version)."""

ROW_GROUP_BYTES = 32 << 20
"""Target row-group size (bytes of audio): large enough to stream efficiently, small enough to hold in memory."""


def default_window(profile: DeviceProfile) -> int:
    """The default training window (samples): 8192 for compressors (LA-2A-like), 2048 otherwise (OD-3-like)."""
    return WINDOW_BY_KIND.get(profile.kind.lower(), DEFAULT_WINDOW)


def knob_column(name: str) -> str:
    """Column name of a knob's normalized value: ``knob_`` + the name in lower snake case."""
    slug = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    if not slug:
        raise DatasetError(f"knob name {name!r} has no letters or digits; rename it in the device profile")
    return f"knob_{slug}"


@dataclass(frozen=True)
class KnobColumn:
    """A knob as stored in a dataset: its profile facts and its two column names."""

    name: str
    column: str
    raw_column: str
    minimum: float
    maximum: float
    values: tuple[str, ...] | None
    taper: str
    unit: str
    default: Any = None

    @property
    def is_switch(self) -> bool:
        return self.values is not None

    def knob(self) -> Knob:
        """The profile :class:`~fxcap.capture.profiles.Knob` this column stores."""
        default = self.default if self.default is not None else (self.values[0] if self.values is not None else self.minimum)
        return Knob(self.name, self.minimum, self.maximum, default, taper=self.taper, unit=self.unit, values=self.values)

    def normalize(self, raw: Any) -> float:
        """Raw panel value -> [-1, 1] (:meth:`Knob.normalize`); ``ValueError`` when out of range."""
        return self.knob().normalize(raw)

    def range_text(self) -> str:
        if self.values is not None:
            return " / ".join(self.values)
        return f"{self.minimum:g} .. {self.maximum:g}" + (f" {self.unit}" if self.unit else "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["values"] = list(self.values) if self.values is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KnobColumn":
        data = dict(data)
        if data.get("values") is not None:
            data["values"] = tuple(data["values"])
        return cls(**data)


def knob_columns(profile: DeviceProfile) -> list[KnobColumn]:
    """The knob columns of ``profile``, in its knob order; an error if two knobs map to one column."""
    columns = []
    for knob in profile.knobs:
        column = knob_column(knob.name)
        columns.append(
            KnobColumn(
                name=knob.name,
                column=column,
                raw_column=f"{column}_raw",
                minimum=float(knob.minimum),
                maximum=float(knob.maximum),
                values=knob.values,
                taper=knob.taper,
                unit=knob.unit,
                default=knob.default,
            )
        )
    names = [c.column for c in columns]
    if len(set(names)) != len(names):
        raise DatasetError(f"device {profile.name}: knob names {profile.knob_names} give duplicate column names {names}")
    return columns


def row_schema(knobs: list[KnobColumn], metadata: dict[str, Any] | None = None) -> pa.Schema:
    """The Arrow schema of a shard; ``metadata`` is stored as JSON under :data:`METADATA_KEY`."""
    fields = [
        pa.field("device", pa.string(), nullable=False),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("time_split", pa.string(), nullable=False),
        pa.field("session", pa.string(), nullable=False),
        pa.field("take_id", pa.string(), nullable=False),
        pa.field("take_index", pa.int32(), nullable=False),
        pa.field("segment_index", pa.int32(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("region_kind", pa.string(), nullable=False),
        pa.field("start_sample", pa.int64(), nullable=False),
        pa.field("start_seconds", pa.float64(), nullable=False),
        pa.field("num_samples", pa.int32(), nullable=False),
    ]
    for knob in knobs:
        fields.append(pa.field(knob.raw_column, pa.string() if knob.is_switch else pa.float64(), nullable=False))
        fields.append(pa.field(knob.column, pa.float32(), nullable=False))
    fields += [
        pa.field("latency_samples", pa.float64(), nullable=False),
        pa.field("gain_db", pa.float64(), nullable=False),
        pa.field("polarity", pa.int8(), nullable=False),
        pa.field("drift_ppm", pa.float64(), nullable=False),
        pa.field("noise_floor_dbfs", pa.float64(), nullable=True),
        pa.field("repeatability_esr", pa.float64(), nullable=True),
        pa.field("input", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=False),
        pa.field("target", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=False),
    ]
    schema = pa.schema(fields)
    if metadata is not None:
        schema = schema.with_metadata({METADATA_KEY: encode_metadata(metadata)})
    return schema


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    """Stable JSON bytes (sorted keys, no whitespace variance)."""
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The ``fxcap`` metadata of a shard's schema; :class:`DatasetError` if absent or unreadable."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DatasetError("shard has no fxcap schema metadata; it was not written by fxcap build-dataset")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"shard's fxcap schema metadata is not valid JSON ({exc})") from None


def parquet_writer_kwargs(schema: pa.Schema) -> dict[str, Any]:
    """Keyword arguments for :class:`pyarrow.parquet.ParquetWriter` (fixed: deterministic output)."""
    scalar = [f.name for f in schema if f.name not in AUDIO_COLUMNS]
    return dict(
        PARQUET_WRITE_OPTIONS,
        use_dictionary=[c for c in CATEGORICAL_COLUMNS if c in schema.names]
        + [f.name for f in schema if f.name.endswith("_raw") and pa.types.is_string(f.type)],
        write_statistics=scalar,
        column_encoding={f"{c}.list.element": "BYTE_STREAM_SPLIT" for c in AUDIO_COLUMNS},
    )


def shard_metadata(
    *,
    profile: DeviceProfile,
    knobs: list[KnobColumn],
    sample_rate: int,
    signal_sha256: str,
    split: str,
    window: int,
    split_config: dict[str, Any],
    holdout: list[str],
) -> dict[str, Any]:
    """The JSON document stored in every shard (no timestamps: shards stay byte-identical)."""
    return {
        "format": DATASET_FORMAT,
        "dataset_version": DATASET_VERSION,
        "fxcap_version": __version__,
        "device": profile.name,
        "device_kind": profile.kind,
        "device_profile": profile.to_dict(),
        "sample_rate": int(sample_rate),
        "signal_sha256": signal_sha256,
        "split": split,
        "window": int(window),
        "split_config": split_config,
        "holdout": list(holdout),
        "knobs": [k.to_dict() for k in knobs],
    }
