"""The Session folder: the product of a capture and the contract that ``fxcap.dataset`` reads.

Layout (all paths in the manifest are relative to the session folder)::

    <session>/
      session.json            manifest (this module's SessionManifest), rewritten atomically after every take
      signal.wav              the signal that was played (float32): the model's input
      signal.json             its layout (regions in samples and seconds)
      calibration/raw.wav     the bypass/loopback take as recorded
      takes/take-0001/output.wav   aligned device output, same length as signal.wav (float32)
      takes/take-0001/raw.wav      the recording as it came in (float32, before alignment)

A take is listed in the manifest only after its audio is on disk, so a crash never leaves a
manifest entry without its files; ``fxcap record --resume`` continues with the next planned take.

Typed records, same JSON: the backend entry is a :class:`~fxcap.capture.backend_details.BackendDetails`
and the checks across takes are :attr:`SessionManifest.session_checks`, a list of :class:`CheckResult`.
The writer keeps the layout of ``session.json`` as it was (schema version 1): ``"backend"`` is one flat
object and the session checks are stored in ``calibration["session_checks"]``, so a session written
before loads (and saves back to the same JSON), and an fxcap from before reads a session written now
(``tests/capture/test_session_compat.py``). In memory ``calibration`` no longer holds the checks.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fxcap import __version__
from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.layout import SignalLayout, read_layout
from fxcap.capture.profiles import DeviceProfile, KnobValue
from fxcap.capture.take_files import check_manifest_paths, file_sha256
from fxcap.errors import SessionError
from fxcap.io import atomic_write_json, atomic_write_text, atomic_write_wav, read_wav
from fxcap.outpaths import check_out_dir

SESSION_SCHEMA_VERSION = 1
MANIFEST_NAME = "session.json"
SESSION_CHECKS_KEY = "session_checks"
"""Where ``session.json`` stores the checks across takes: ``calibration["session_checks"]``."""


def now_iso() -> str:
    """Current UTC time, ISO 8601 with microseconds (orders sessions created in the same second)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on a take. ``value`` is the measured figure in ``unit``."""

    name: str
    passed: bool
    value: float | None = None
    unit: str = ""
    threshold: float | None = None
    message: str = ""
    severity: str = "error"  # "error": fails the take; "warning": reported, take kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        return cls(**data)


@dataclass
class Alignment:
    """How a raw recording was mapped onto the played signal's time axis.

    ``latency_samples`` is the (fractional) delay removed; ``gain_db`` the rig gain removed (from the
    calibration take, shared by every take); ``polarity`` is +1 or -1; ``drift_ppm`` the measured
    clock drift of the recording relative to playback (positive: recording clock fast) and
    ``drift_corrected`` whether it was resampled away. ``marker_latency_start``/``_end`` are the
    take's own marker estimates (samples).
    """

    latency_samples: float
    gain_db: float
    polarity: int
    drift_ppm: float
    drift_corrected: bool
    marker_latency_start: float | None = None
    marker_latency_end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Alignment":
        return cls(**data)


@dataclass
class TakeRecord:
    """One kept take of the session (knob setting, alignment, checks, files)."""

    take_id: str
    index: int
    knobs: dict[str, KnobValue]
    knobs_normalized: dict[str, float]
    alignment: Alignment
    checks: list[CheckResult]
    output_file: str
    raw_file: str
    is_reference: bool = False
    attempts: int = 1
    started_at: str = ""
    finished_at: str = ""
    backend_info: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    """SHA-256 (hex) of the bytes of ``output_file`` as written; empty in sessions written before
    takes were hashed (such a session is read with a warning, see :func:`fxcap.capture.take_files.verify_takes`)."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.severity == "error")

    def check(self, name: str) -> CheckResult | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TakeRecord":
        data = dict(data)
        data.pop("passed", None)
        data["alignment"] = Alignment.from_dict(data["alignment"])
        data["checks"] = [CheckResult.from_dict(c) for c in data["checks"]]
        return cls(**data)


@dataclass
class SessionManifest:
    """Everything needed to trust and reuse a capture. Versioned: ``schema_version``.

    ``session_checks``: the checks across takes (latency and drift spread, reference drift...), run when
    the session finished; ``None`` before. ``calibration``: the bypass take's measurement (see
    :func:`fxcap.capture.record.store_calibration`), without the session checks.
    """

    device: DeviceProfile
    backend: BackendDetails
    sample_rate: int
    signal: dict[str, Any]  # {"file", "layout_file", "version", "sha256", "preset", "source"}
    plan: dict[str, Any]  # {"kind", "settings": [{knob: value}], "order", "reference_every", ...}
    calibration: dict[str, Any] = field(default_factory=dict)
    takes: list[TakeRecord] = field(default_factory=list)
    status: str = "running"  # running | complete | failed | interrupted (Ctrl-C; resumable)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    fxcap_version: str = __version__
    schema_version: int = SESSION_SCHEMA_VERSION
    notes: list[str] = field(default_factory=list)
    session_checks: list[CheckResult] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``session.json`` object (the session checks inside ``calibration``, see the module docstring)."""
        calibration = dict(self.calibration)
        if self.session_checks is not None:
            calibration[SESSION_CHECKS_KEY] = [c.to_dict() for c in self.session_checks]
        return {
            "schema_version": self.schema_version,
            "fxcap_version": self.fxcap_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "device": self.device.to_dict(),
            "backend": self.backend.to_dict(),
            "sample_rate": self.sample_rate,
            "signal": self.signal,
            "plan": self.plan,
            "calibration": calibration,
            "takes": [t.to_dict() for t in self.takes],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SessionManifest":
        version = data.get("schema_version")
        if version != SESSION_SCHEMA_VERSION:
            raise SessionError(
                f"session schema version {version} is not supported (this fxcap reads version "
                f"{SESSION_SCHEMA_VERSION}); upgrade fxcap or re-record"
            )
        calibration = dict(data.get("calibration", {}))
        checks = calibration.pop(SESSION_CHECKS_KEY, None)
        return cls(
            schema_version=version,
            fxcap_version=data["fxcap_version"],
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            status=data["status"],
            device=DeviceProfile.from_dict(data["device"]),
            backend=BackendDetails.from_dict(data["backend"]),
            sample_rate=int(data["sample_rate"]),
            signal=data["signal"],
            plan=data["plan"],
            calibration=calibration,
            takes=[TakeRecord.from_dict(t) for t in data["takes"]],
            notes=list(data.get("notes", [])),
            session_checks=None if checks is None else [CheckResult.from_dict(c) for c in checks],
        )


class Session:
    """A session folder on disk: its manifest plus accessors for its audio.

    Create with :meth:`create`, open with :meth:`open`. Every mutation is written atomically.
    """

    def __init__(self, root: Path, manifest: SessionManifest):
        self.root = Path(root)
        self.manifest = manifest

    # -- creation and loading -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        device: DeviceProfile,
        backend: BackendDetails,
        signal_audio: np.ndarray,
        layout: SignalLayout,
        plan: dict[str, Any],
    ) -> "Session":
        """Start a new session folder: write the signal, its layout and the first manifest."""
        root = check_out_dir(root)
        if (root / MANIFEST_NAME).exists():
            raise SessionError(f"{root} already holds a session; use --resume to continue it or choose another --out")
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_wav(root / "signal.wav", signal_audio, layout.sample_rate)
        atomic_write_text(root / "signal.json", layout.to_json())
        manifest = SessionManifest(
            device=device,
            backend=backend,
            sample_rate=layout.sample_rate,
            signal={
                "file": "signal.wav",
                "layout_file": "signal.json",
                "version": layout.version,
                "sha256": layout.sha256,
                "preset": layout.preset,
                "source": layout.source,
                "length_samples": layout.length,
                "peak_dbfs": layout.peak_dbfs,
            },
            plan=plan,
        )
        session = cls(root, manifest)
        session.save()
        return session

    @classmethod
    def open(cls, root: str | Path) -> "Session":
        """Open an existing session folder; a clear :class:`SessionError` if it is not one."""
        root = Path(root)
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise SessionError(f"{root} is not a capture session (no {MANIFEST_NAME}); run `fxcap record` first")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SessionError(f"{path} is corrupt ({exc}); restore it from a backup or re-record") from None
        try:
            manifest = SessionManifest.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SessionError(f"{path} is not a valid session manifest ({exc!r})") from None
        check_manifest_paths(root, manifest)
        return cls(root, manifest)

    def save(self) -> None:
        """Rewrite ``session.json`` atomically."""
        self.manifest.updated_at = now_iso()
        atomic_write_json(self.root / MANIFEST_NAME, self.manifest.to_dict())

    # -- audio -----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.manifest.sample_rate

    @property
    def layout(self) -> SignalLayout:
        return read_layout(self.root / self.manifest.signal["layout_file"], "re-record the session (its signal layout is damaged)")

    def input_audio(self) -> np.ndarray:
        """The played signal (model input), float32 ``(n,)``."""
        audio, _ = read_wav(self.root / self.manifest.signal["file"], expected_rate=self.sample_rate)
        return audio

    def take_output(self, take: TakeRecord | str) -> np.ndarray:
        """The aligned device output of a take (model target), float32 ``(n,)``, same length as the input."""
        record = self.take(take) if isinstance(take, str) else take
        audio, _ = read_wav(self.root / record.output_file, expected_rate=self.sample_rate)
        return audio

    def take_raw(self, take: TakeRecord | str) -> np.ndarray:
        record = self.take(take) if isinstance(take, str) else take
        audio, _ = read_wav(self.root / record.raw_file, expected_rate=self.sample_rate)
        return audio

    def take(self, take_id: str) -> TakeRecord:
        for record in self.manifest.takes:
            if record.take_id == take_id:
                return record
        raise SessionError(f"session {self.root} has no take {take_id!r}")

    @property
    def takes(self) -> list[TakeRecord]:
        return list(self.manifest.takes)

    def add_take(self, record: TakeRecord, aligned: np.ndarray, raw: np.ndarray) -> None:
        """Write a take's audio, then list it in the manifest (in that order: crash-safe).

        A take recorded already aligned (imported dry/wet pairs) may name the same file for both:
        it is written once.
        """
        if record.raw_file != record.output_file:
            atomic_write_wav(self.root / record.raw_file, raw, self.sample_rate)
        atomic_write_wav(self.root / record.output_file, aligned, self.sample_rate)
        record.sha256 = file_sha256(self.root / record.output_file)
        self.manifest.takes.append(record)
        self.save()


def find_sessions(base: str | Path = "sessions") -> list[Path]:
    """Session folders under ``base``, oldest first (by manifest creation time)."""
    base = Path(base)
    if not base.is_dir():
        return []
    found = []
    for manifest in base.glob(f"*/{MANIFEST_NAME}"):
        try:
            created = json.loads(manifest.read_text(encoding="utf-8")).get("created_at", "")
        except (OSError, json.JSONDecodeError):
            continue
        found.append((created, manifest.parent))
    return [path for _, path in sorted(found)]


def newest_session(base: str | Path = "sessions") -> Path:
    """The most recently created session under ``base``; a clear error if there is none."""
    sessions = find_sessions(base)
    if not sessions:
        raise SessionError(f"no capture session under {base}/; record one with `fxcap record` or pass a session path")
    return sessions[-1]
