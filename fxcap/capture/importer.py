"""Import DAW recordings: the test signal reamped through a device, one file per knob setting.

The workflow without an audio interface fxcap can drive:

1. ``fxcap signal --out capture.wav`` writes the test signal (and ``capture.json``, its layout);
2. in a DAW, the user plays ``capture.wav`` through the device (reamping) once per knob setting
   and exports each recording as its own file, from the start of the signal to at least its end
   (a tail is fine, and so is extra audio before the signal, as long as all files are exported
   from the same position);
3. optionally one more recording with the device bypassed (or a loopback cable): ``--bypass``;
4. ``fxcap import *.wav --signal capture.wav --device OD-3`` aligns and checks every file exactly
   as the capture engine does (:func:`fxcap.capture.record.evaluate_take`) and writes a normal
   session folder (backend ``{"name": "import"}``) that ``fxcap build-dataset`` reads.

**Knob values** come from a CSV file (``--knobs knobs.csv``: ``file,<knob>...`` or
``file,knob,value``) or from the file names (``drive=6_tone=5.wav``, ``distortion_drive_0.wav``,
``drive6.wav``); see :mod:`fxcap.capture.import_knobs`. Without a device profile the profile is
inferred from the knob values (the CSV's knob columns or the names' ``knob=value`` pieces, ranges
as seen) and the session's notes say so; a profile is never assumed.

**Files**: the sample rate must be the signal's (else a one-line refusal with the ``sox`` command
that converts it, or ``resample=True`` converts with :func:`scipy.signal.resample_poly`); a file
with several channels is read from ``channel`` (1-based); without it a file whose channels are
identical (dual mono) is read from channel 1 and one with different channels is refused (a stereo
bounce that pans the dry signal to one side must not be imported as is). A file shorter than the
signal (its end marker is missing) is refused.

**Alignment**: with a bypass recording, its latency, gain and polarity are measured like the
engine's calibration take and every file is referred to them (one dBFS reference for all takes).
Without one, each file is aligned on its own sync markers (the device's own delay at the
markers' frequencies is removed with the latency) and its level is left as recorded (gain 0 dB).

**Checks**: a file that fails a check (sync markers missing, clipping, dropouts, silence...) is
listed as rejected in the session's notes and skipped; ``strict=True`` stops at the first one. A
file equal to the dry signal (polarity and gain aside) fails the ``dry_copy`` check unless the
profile says the device may be transparent (:mod:`fxcap.capture.transparency`).

**Resuming**: an import stopped by Ctrl-C (the session says ``"interrupted"``), a crash or a
``strict`` refusal continues with ``fxcap import --resume --out SESSION``: the takes already kept stay
byte-identical and the other files are imported (:mod:`fxcap.capture.import_resume`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fxcap.capture.align import AlignConfig, Calibration
from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.backends.base import RawTake
from fxcap.capture.capture import default_session_dir
from fxcap.capture.layout import TestSignal
from fxcap.capture.plan import PlannedTake
from fxcap.capture.import_knobs import (  # noqa: F401  (re-exported: the importer's public knob functions)
    AUDIO_SUFFIXES,
    Recording,
    infer_profile,
    knobs_from_filename,
    plan_recordings,
    read_knobs_csv,
)
from fxcap.capture.profiles import DeviceProfile, KnobValue, get_profile
from fxcap.capture.record import (
    Observer,
    RecordConfig,
    evaluate_calibration,
    evaluate_take,
    finish_session,
    interruptible,
    keep_take,
    store_calibration,
)
from fxcap.capture.session import Session
from fxcap.capture.signal import load_signal
from fxcap.capture.transparency import dry_copy_check
from fxcap.errors import CaptureError, FxcapError
from fxcap.locking import folder_lock, remove_stale

DUAL_MONO_TOLERANCE = 1e-4
"""Channels whose largest difference is below this fraction of the peak count as identical."""


@dataclass
class ImportConfig:
    """Options of :func:`import_recordings`.

    Attributes:
        channel: 1-based channel to read from files with several channels (mono files are read as
            they are; ``None``: see the module docstring).
        resample: convert files at another sample rate to the signal's (else refuse them).
        strict: stop at the first file that fails a check instead of skipping it.
        record: alignment and check options (the engine's).
    """

    channel: int | None = None
    resample: bool = False
    strict: bool = False
    record: RecordConfig = field(default_factory=RecordConfig)

    def __post_init__(self) -> None:
        if self.channel is not None and self.channel < 1:
            raise FxcapError(f"channels are numbered from 1, not {self.channel}")


# -- audio -----------------------------------------------------------------------------------------------
def _info(path: Path) -> Any:
    import soundfile as sf

    try:
        return sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise FxcapError(f"cannot read {path} ({exc}); is it a WAV/FLAC/AIFF file?") from None


def _resample_ratio(rate: int, target: int) -> tuple[int, int]:
    g = math.gcd(int(rate), int(target))
    return int(target) // g, int(rate) // g


def check_file(path: Path, signal: TestSignal, config: ImportConfig) -> None:
    """Refuse a file whose rate, channels or length cannot work, before anything is written."""
    info = _info(path)
    target = signal.sample_rate
    if info.samplerate != target and not config.resample:
        stem = path.with_name(f"{path.stem}-{target}{path.suffix}")
        raise FxcapError(
            f"{path} is at {info.samplerate} Hz but the test signal is at {target} Hz; convert it "
            f"(sox {path} -r {target} {stem}) or pass --resample"
        )
    if config.channel is not None and info.channels > 1 and config.channel > info.channels:
        raise FxcapError(f"{path} has {info.channels} channel(s); --channel {config.channel} does not exist")
    up, down = _resample_ratio(info.samplerate, target)
    frames = info.frames * up // down
    end = signal.layout.of_kind("sync_end")
    needed = end[0].stop if end else signal.layout.length
    if frames < needed + config.record.align.min_latency_s * target:
        raise FxcapError(
            f"{path} is {frames / target:.2f} s long but the test signal is {signal.duration:.2f} s (its end marker "
            "is missing); export the whole take, from the start of the signal to at least its end"
        )


def read_recording(path: Path, sample_rate: int, config: ImportConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """A recording as mono float32 at ``sample_rate`` (channel chosen, resampled if allowed), and facts about it."""
    from fxcap.io import read_wav

    audio, rate = read_wav(path)
    facts: dict[str, Any] = {"file": str(path), "file_sample_rate": rate, "channels": 1 if audio.ndim == 1 else audio.shape[1]}
    if audio.ndim == 2:
        if config.channel is not None:
            column = config.channel - 1
        else:
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            spread = float(np.max(np.abs(audio - audio[:, :1]))) if audio.size else 0.0
            if spread > DUAL_MONO_TOLERANCE * max(peak, 1e-12):
                raise FxcapError(
                    f"{path} has {audio.shape[1]} channels with different audio; choose the device's with --channel N "
                    f"(1..{audio.shape[1]})"
                )
            column = 0
        audio = audio[:, column]
        facts["channel"] = column + 1
    if rate != sample_rate:
        from scipy.signal import resample_poly

        up, down = _resample_ratio(rate, sample_rate)
        audio = resample_poly(np.asarray(audio, dtype=np.float64), up, down)
        facts["resampled_from"] = rate
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise FxcapError(f"{path} contains NaN or infinite samples; re-export it")
    facts["frames"] = len(audio)
    return audio, facts


def _align_for(recorded_length: int, signal: TestSignal, base: AlignConfig) -> AlignConfig:
    """Widen the latency search to cover audio exported before the signal (long files)."""
    extra = (recorded_length - signal.layout.length) / signal.sample_rate
    if extra + 0.05 <= base.max_latency_s:
        return base
    return dataclasses.replace(base, max_latency_s=extra + 0.05)


def _describe(knobs: dict[str, KnobValue]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in knobs.items())


# -- the import ---------------------------------------------------------------------------------------------
def import_recordings(
    signal_path: str | Path,
    recordings: Sequence[str | Path],
    knobs_csv: str | Path | None = None,
    device: str | DeviceProfile | None = None,
    out: str | Path | None = None,
    config: ImportConfig | None = None,
    bypass: str | Path | None = None,
    observer: Observer | None = None,
    sessions_dir: str | Path = "sessions",
) -> Session:
    """Align and check DAW recordings of the test signal and write them as a session.

    Args:
        signal_path: the WAV written by ``fxcap signal`` (its layout JSON beside it).
        recordings: the recordings, one per knob setting (may be empty with ``knobs_csv``: then
            every file of the CSV).
        knobs_csv: knob values per file (else they are read from the file names).
        device: profile name, ``.toml`` path or :class:`DeviceProfile`; ``None``: inferred from the
            knob values (:func:`fxcap.capture.import_knobs.infer_profile`), said in the session's notes
            and by a ``profile_inferred`` event (``message``).
        out: the session folder; default ``<sessions_dir>/<device>-<UTC time>``.
        config: channel, resampling, strictness, alignment and check options.
        bypass: a recording of the signal with the device bypassed (rig latency and gain).
        observer: progress events as in :mod:`fxcap.capture.record` (``calibration``,
            ``take_done``, ``take_rejected``, ``session_done``).
        sessions_dir: where the default ``out`` is.

    Returns the complete session. Everything that can be checked without aligning (files exist,
    CSV, knob values, rates, channels, lengths) is checked before anything is written. Raises
    :class:`CaptureError` when the bypass recording cannot be measured, when no file passes its
    checks, or (``strict``) at the first file that fails one.
    """
    config = config or ImportConfig()
    observe: Observer = observer or (lambda event, data: None)
    signal = load_signal(signal_path)
    signal_file, bypass_file = Path(signal_path).resolve(), Path(bypass).resolve() if bypass is not None else None
    skipped = [Path(p) for p in recordings if Path(p).resolve() in (signal_file, bypass_file)]
    wanted = [p for p in recordings if Path(p).resolve() not in (signal_file, bypass_file)]
    if skipped and not wanted and knobs_csv is None:
        raise FxcapError("the only files given are the test signal and the bypass recording; list the device recordings")
    inferred = infer_profile(wanted, knobs_csv) if device is None else None
    if inferred is not None:
        profile = inferred.profile
    else:
        profile = device if isinstance(device, DeviceProfile) else get_profile(str(device))
    planned_files = plan_recordings(wanted, profile, knobs_csv)
    if bypass is not None:
        if not Path(bypass).is_file():
            raise FxcapError(f"bypass recording {bypass} does not exist; check the path")
        check_file(Path(bypass), signal, config)
    for item in planned_files:
        check_file(item.path, signal, config)

    varying = [k.name for k in profile.knobs if len({str(r.knobs[k.name]) for r in planned_files}) > 1]
    planned = [PlannedTake(index=i + 1, knobs=r.knobs) for i, r in enumerate(planned_files)]
    plan = {
        "kind": "import",
        "knobs": varying,
        "knobs_csv": str(knobs_csv) if knobs_csv is not None else None,
        "takes": [
            {"index": t.index, "knobs": t.knobs, "is_reference": False, "file": str(r.path), "source": str(r.path.resolve())}
            for t, r in zip(planned, planned_files)
        ],
    }
    backend_info = BackendDetails(
        "import",
        sample_rate=signal.sample_rate,
        device=profile.name,
        signal_file=str(signal_path),
        bypass_file=str(bypass) if bypass is not None else None,
        bypass_source=str(Path(bypass).resolve()) if bypass is not None else None,
        channel=config.channel,
        resample=config.resample,
    )
    root = Path(out) if out is not None else default_session_dir(Path(sessions_dir), profile.name)
    with folder_lock(root, "import"):  # one writer per session folder
        return _import_into(root, signal, profile, plan, backend_info, inferred, skipped, planned, planned_files, bypass,
                            config, observe)


def _import_into(root: Path, signal: TestSignal, profile: DeviceProfile, plan: dict[str, Any], backend_info: BackendDetails,
                 inferred: Any, skipped: list[Path], planned: list[PlannedTake], planned_files: list[Any],
                 bypass: str | Path | None, config: ImportConfig, observe: Observer) -> Session:
    """The writing half of :func:`import_recordings`: the session folder, its calibration and takes."""
    remove_stale(root, recursive=True)  # temporary files of a killed import
    session = Session.create(
        root, device=profile, backend=backend_info, signal_audio=signal.audio, layout=signal.layout, plan=plan
    )
    if inferred is not None:
        session.manifest.notes.append(inferred.message)
        session.save()
        observe("profile_inferred", {"profile": profile, "message": inferred.message})
    for path in skipped:
        session.manifest.notes.append(f"{path} skipped: it is the test signal or the bypass recording, not a take")
    observe("plan", {"total": len(planned), "done": 0})
    with interruptible(session):
        calibration = measure_bypass(session, signal, bypass, config, observe)
    return import_takes(session, signal, list(zip(planned, planned_files)), calibration, config, observe)


def import_takes(
    session: Session,
    signal: TestSignal,
    items: list[tuple[PlannedTake, Recording]],
    calibration: Calibration | None,
    config: ImportConfig,
    observe: Observer,
) -> Session:
    """Align, check and keep every planned recording the session does not hold yet, then finish it.

    Ctrl-C marks the session ``"interrupted"`` and says ``fxcap import --resume --out ...``.
    """
    done = {t.index for t in session.manifest.takes}
    rejected = []
    with interruptible(session):
        for take, item in items:
            if take.index in done:
                continue
            if not _import_one(session, signal, take, item, calibration, config, observe):
                rejected.append(item.path)
    if not session.manifest.takes:
        session.manifest.status = "failed"
        session.save()
        raise CaptureError(
            f"none of the {len(items)} recordings passed its checks (see the notes in {session.root}/session.json); "
            "check that they are recordings of this test signal, exported from its start"
        )
    if rejected:
        session.manifest.notes.append(f"{len(rejected)} of {len(items)} recordings rejected: {', '.join(str(p) for p in rejected)}")
    with interruptible(session):
        return finish_session(session, signal, config.record, observe)


def _import_one(
    session: Session, signal: TestSignal, take: PlannedTake, item: Recording, calibration: Calibration | None,
    config: ImportConfig, observe: Observer,
) -> bool:
    """Import one recording; False when it failed a check (noted and skipped; ``strict``: raises)."""
    observe("take_start", {"take": take, "attempt": 1, "file": item.path})
    audio, facts = read_recording(item.path, signal.sample_rate, config)
    raw = RawTake(played=signal.audio, recorded=audio, sample_rate=signal.sample_rate, info=facts)
    previous = [t.alignment for t in session.manifest.takes]
    align = _align_for(len(audio), signal, config.record.align)
    result = evaluate_take(raw, signal, calibration, config.record, previous, align=align)
    result.checks.append(dry_copy_check(audio, result.aligned, signal.audio, session.manifest.device.may_be_transparent))
    if not result.failed:
        record = keep_take(session, take, result)
        observe("take_done", {"take": take, "record": record})
        return True
    problem = result.problem()
    session.manifest.notes.append(f"rejected {item.path} ({take.take_id}, {_describe(take.knobs)}): {problem}")
    session.save()
    observe("take_rejected", {"take": take, "file": item.path, "failed": result.failed})
    if config.strict:
        session.manifest.status = "failed"
        session.save()
        raise CaptureError(
            f"{item.path} failed its checks ({problem}); fix or re-export it, then continue with "
            f"`fxcap import --resume --out {session.root}` (or import without --strict to skip it)"
        )
    return False


def measure_bypass(
    session: Session, signal: TestSignal, bypass: str | Path | None, config: ImportConfig, observe: Observer
) -> Calibration | None:
    """Measure the bypass recording (stored as the session's calibration), or record that there is none."""
    if bypass is None:
        session.manifest.calibration = {
            "result": None,
            "source": "none",
            "note": "no bypass recording: each take is aligned on its own markers, levels as recorded",
        }
        session.save()
        return None
    path = Path(bypass)
    audio, facts = read_recording(path, signal.sample_rate, config)
    raw = RawTake(played=signal.audio, recorded=audio, sample_rate=signal.sample_rate, info={**facts, "bypass": True})
    try:
        calibration, checks = evaluate_calibration(raw, signal, config.record, _align_for(len(audio), signal, config.record.align))
    except CaptureError as exc:
        session.manifest.status = "failed"
        session.save()
        raise CaptureError(f"bypass recording {path}: {exc}") from None
    failed = [c for c in checks if c.severity == "error" and not c.passed]
    if failed:
        session.manifest.status = "failed"
        session.save()
        problem = "; ".join(f"{c.name}: {c.message}" for c in failed)
        raise CaptureError(f"bypass recording {path} failed its checks ({problem}); re-record it or import without --bypass")
    store_calibration(session, raw, calibration, checks, source=str(path))
    observe("calibration", {"calibration": calibration, "checks": checks})
    return calibration
