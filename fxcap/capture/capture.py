"""One call from options to a recorded session: what ``fxcap record`` and the recipes use."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.backends.base import Backend
from fxcap.capture.backends.factory import make_backend, parse_backend_spec, resolve_device
from fxcap.capture.budget import CaptureEstimate, TakeTiming, confirm_capture, distinct_settings, estimate_capture
from fxcap.dsp.levels import db_to_amp
from fxcap.capture.level import pick_peak_level
from fxcap.capture.plan import PlanConfig, PlannedTake, make_plan, plan_to_dict
from fxcap.capture.layout import TestSignal
from fxcap.capture.profiles import BUILTIN_PROFILES, DeviceProfile, get_profile
from fxcap.capture.record import Observer, PlanExtender, RecordConfig, record_session, resume_session
from fxcap.capture.session import Session, newest_session
from fxcap.capture.signal import DEFAULT_PEAK_DBFS, SignalConfig, generate_signal, wrap_program
from fxcap.errors import CaptureError
from fxcap.io import read_wav
from fxcap.outpaths import check_out_dir

if TYPE_CHECKING:
    from fxcap.capture.preflight import PreflightReport


@dataclass
class CaptureRequest:
    """Everything ``fxcap record`` needs.

    Attributes:
        device: profile name (``OD-3``, ``LA-2A``) or path of a ``.toml`` profile; ``None``: OD-3 for
            ``sim`` and ``soundcard``, the plugin's own parameters for a plugin (whose knobs a
            ``.toml`` profile may narrow).
        backend: backend spec (see :mod:`fxcap.capture.backends.factory`).
        plan: the knob plan.
        sample_rate: Hz.
        preset: capture-signal preset (``short`` or ``default``).
        program: optional user program material (a WAV file) wrapped with sync markers instead of
            the built-in material.
        peak_dbfs: peak level of the played signal (dBFS); ``None``: -3 dBFS, or for a deterministic
            backend (a plugin) the highest level at which no planned setting clips
            (:func:`fxcap.capture.level.pick_peak_level`).
        out: session folder; default ``sessions/<device>-<UTC time>``.
        resume: continue the session in ``out`` (or the newest under ``sessions_dir``).
        seed: seeds the virtual rig's hidden impairments and random plans.
        record: the engine's options (attempts, alignment, checks).
        backend_options: keyword options of the backend (see :func:`soundcard_options` for the
            sound card's channels, block size and MIDI port).
        yes: start a very long capture without asking (see :mod:`fxcap.capture.budget`).
        confirm: asks the user a yes/no question before a very long capture (``None``: refuse it
            unless ``yes``).
        extend: chooses the next settings of an adaptive plan (``plan.kind == "adaptive"``, or a
            resumed session whose plan grows): :class:`fxcap.adaptive.AdaptivePlanner`, given by the
            caller since the planner trains models (a layer above capture).
    """

    device: str | None = None
    backend: str = "sim"
    plan: PlanConfig = field(default_factory=PlanConfig)
    sample_rate: int = 48000
    preset: str = "default"
    program: Path | None = None
    peak_dbfs: float | None = None
    out: Path | None = None
    resume: bool = False
    sessions_dir: Path = Path("sessions")
    seed: int = 0
    record: RecordConfig = field(default_factory=RecordConfig)
    backend_options: dict[str, Any] = field(default_factory=dict)
    yes: bool = False
    confirm: Callable[[str], bool] | None = None
    extend: PlanExtender | None = None


SOUNDCARD_FLAGS = {
    "output_channels": "--output-channel",
    "input_channel": "--input-channel",
    "loopback_channel": "--loopback-channel",
    "blocksize": "--block-size",
    "midi_port": "--midi-port",
}
"""Sound-card options (:class:`~fxcap.capture.backends.soundcard.SoundcardConfig` fields and the MIDI
port) and the command-line flags that set them."""

RESUMED_SOUNDCARD_OPTIONS = ("output_channels", "input_channel", "loopback_channel", "blocksize", "tail_seconds")
"""Sound-card options a resumed session takes from its manifest unless given again."""


def _resumed_soundcard_options(stored: BackendDetails) -> dict[str, Any]:
    """The sound-card options of :data:`RESUMED_SOUNDCARD_OPTIONS` the manifest holds (lists as given)."""
    values = {name: getattr(stored, name) for name in RESUMED_SOUNDCARD_OPTIONS}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items() if value is not None}


def soundcard_options(backend: str, **given: Any) -> dict[str, Any]:
    """The backend options for the sound-card flags given (``None``: not given).

    Raises :class:`CaptureError` when one is given for another backend kind.
    """
    chosen = {name: value for name, value in given.items() if value is not None and value != ()}
    unknown = set(chosen) - set(SOUNDCARD_FLAGS)
    if unknown:
        raise CaptureError(f"unknown sound-card option(s): {', '.join(sorted(unknown))}")
    if chosen and parse_backend_spec(backend)[0] != "soundcard":
        flags = ", ".join(SOUNDCARD_FLAGS[name] for name in chosen)
        raise CaptureError(f"{flags} apply to --backend soundcard[:NAME] only, not --backend {backend}")
    return chosen


def default_session_dir(base: Path, device: str) -> Path:
    """``base/<device>-<YYYYmmdd-HHMMSS>`` (UTC), made unique with a suffix if needed."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(device).stem).strip("-") or "device"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = base / f"{slug}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{slug}-{stamp}-{n}"
    return path


def run_capture(request: CaptureRequest, observer: Observer | None = None) -> Session:
    """Record (or resume) a session as ``request`` says and return it."""
    if request.resume:
        path = request.out or newest_session(request.sessions_dir)
        session = Session.open(path)
        stored = session.manifest.backend
        if stored.name == "import":
            raise CaptureError(f"{path} was imported from files, not recorded; continue it with `fxcap import --resume --out {path}`")
        if stored.name == "signaltrain":
            raise CaptureError(f"{path} was imported from a SignalTrain dataset, not recorded; import it again into a new --out")
        backend_spec = stored.spec or request.backend
        options = dict(request.backend_options)
        if parse_backend_spec(backend_spec)[0] == "soundcard":
            options = {**_resumed_soundcard_options(stored), **options}
        device = session.manifest.device
        if parse_backend_spec(backend_spec)[0] == "plugin":
            source = stored.profile  # the profile that narrowed the plugin's knobs, if any
        else:
            source = device.name if device.name in BUILTIN_PROFILES else stored.profile_source or device.name
        backend = make_backend(
            backend_spec,
            source,
            session.sample_rate,
            seed=int(stored.seed if stored.seed is not None else request.seed),
            **options,
        )
        with backend:
            return resume_session(path, backend, request.record, observer, request.extend)

    if request.out is not None:
        check_out_dir(request.out)  # before the rig is opened and the signal made
    backend = make_backend(request.backend, request.device, request.sample_rate, seed=request.seed, **request.backend_options)
    observe: Observer = observer or (lambda event, data: None)
    with backend:
        profile = backend.profile
        planned = _plan(profile, request)
        info = BackendDetails.from_dict({**backend.describe(), "spec": request.backend, "seed": request.seed,
                                         "profile_source": resolve_device(request.backend, request.device)})
        peak = request.peak_dbfs
        pick_level = peak is None and backend.deterministic
        signal = _capture_signal(request, DEFAULT_PEAK_DBFS if pick_level else peak)
        confirm_capture(_estimate(request, planned, signal, backend.timing(), pick_level), request.yes, request.confirm)
        if pick_level:
            base = signal
            choice = pick_peak_level(backend, [t.knobs for t in planned],
                                     lambda level: base.audio * np.float32(db_to_amp(level - DEFAULT_PEAK_DBFS)),
                                     DEFAULT_PEAK_DBFS, request.record.checks)
            peak = choice.peak_dbfs
            info = replace(info, level={**choice.to_dict(), "note": choice.describe(profile.name)})
            observe("level", {"choice": choice, "message": choice.describe(profile.name)})
            signal = _capture_signal(request, peak)
        out = request.out or default_session_dir(request.sessions_dir, profile.name)
        return record_session(out, backend, signal, plan_to_dict(request.plan, planned), request.record, observe, backend_info=info,
                              extend=request.extend)


def _plan(profile: DeviceProfile, request: CaptureRequest) -> list[PlannedTake]:
    try:
        return make_plan(profile, request.plan)
    except ValueError as exc:
        raise CaptureError(str(exc)) from None


def _estimate(request: CaptureRequest, planned: list[PlannedTake], signal: TestSignal, timing: TakeTiming,
              pick_level: bool) -> CaptureEstimate:
    """The estimate of a new capture (:func:`fxcap.capture.budget.estimate_capture`): what the
    confirmation, the plan preview and the progress bar show."""
    passes = distinct_settings(planned) if pick_level else 0
    return estimate_capture(planned, signal.duration, timing, request.record.knob_change_seconds, level_passes=passes)


@dataclass
class CapturePreview:
    """What ``fxcap record --dry-run`` shows: the plan in order and its estimate; nothing played or written.

    Attributes:
        profile: the device's knobs.
        estimate: the capture's cost, take by take (:class:`~fxcap.capture.budget.CaptureEstimate`).
        timing: what the backend adds to every take (margins, probes, knobs turned by hand).
        sample_rate: Hz.
    """

    profile: DeviceProfile
    estimate: CaptureEstimate
    timing: TakeTiming
    sample_rate: int


def _planning_backend(request: CaptureRequest) -> tuple[DeviceProfile, TakeTiming, bool]:
    """The profile, the take timing and whether the backend is deterministic, without opening a
    sound card (its interface may not be plugged in while the capture is planned)."""
    kind, target = parse_backend_spec(request.backend)
    if kind == "soundcard":
        from fxcap.capture.backends.soundcard import SoundcardConfig, planned_timing

        profile = get_profile(resolve_device(request.backend, request.device) or "")
        options = {k: v for k, v in request.backend_options.items() if k != "midi_port"}
        config = SoundcardConfig(interface=target or None, sample_rate=request.sample_rate, **options)
        return profile, planned_timing(profile, config, midi=bool(request.backend_options.get("midi_port"))), False
    backend: Backend
    with make_backend(request.backend, request.device, request.sample_rate, seed=request.seed, **request.backend_options) as backend:
        return backend.profile, backend.timing(), backend.deterministic


def preview_capture(request: CaptureRequest) -> CapturePreview:
    """The plan and estimate of ``request`` (``fxcap record --dry-run``): the same plan and estimate
    :func:`run_capture` would record and show, with nothing played and no folder made."""
    if request.resume:
        raise CaptureError("--dry-run previews a new capture; leave out --resume (the session's plan is in its session.json)")
    profile, timing, deterministic = _planning_backend(request)
    planned = _plan(profile, request)
    pick_level = request.peak_dbfs is None and deterministic
    signal = _capture_signal(request, DEFAULT_PEAK_DBFS if pick_level else request.peak_dbfs)
    return CapturePreview(profile, _estimate(request, planned, signal, timing, pick_level), timing, request.sample_rate)


def _capture_signal(request: CaptureRequest, peak_dbfs: float | None) -> TestSignal:
    if request.program is not None:
        audio, rate = read_wav(request.program)
        if rate != request.sample_rate:
            raise CaptureError(
                f"{request.program} is at {rate} Hz but the capture runs at {request.sample_rate} Hz; "
                f"pass --rate {rate} or resample the file"
            )
        return wrap_program(audio, rate, peak_dbfs=peak_dbfs)
    return generate_signal(_signal_config(request.sample_rate, request.preset, peak_dbfs))


def _signal_config(sample_rate: int, preset: str, peak_dbfs: float | None) -> SignalConfig:
    """The built-in signal's config (``SignalConfig`` is frozen: the peak is given when it is made)."""
    if peak_dbfs is None:
        return SignalConfig(sample_rate=sample_rate, preset=preset)
    return SignalConfig(sample_rate=sample_rate, preset=preset, peak_dbfs=peak_dbfs)


def preflight_check(
    device: str | None,
    backend: str,
    sample_rate: int,
    settings: list[str] | None = None,
    peak_dbfs: float | None = None,
    seed: int = 0,
    **soundcard: Any,
) -> "PreflightReport":
    """What ``fxcap check`` runs: the short signal through ``backend`` (calibration take and one
    device take at ``settings``, e.g. ``["drive=10"]``), judged by :func:`fxcap.capture.preflight.run_preflight`.

    ``soundcard``: the sound-card flags (:func:`soundcard_options`).
    """
    from fxcap.capture.plan import parse_settings
    from fxcap.capture.preflight import run_preflight

    options = soundcard_options(backend, **soundcard)
    signal = generate_signal(_signal_config(sample_rate, "short", peak_dbfs))
    with make_backend(backend, device, sample_rate, seed=seed, **options) as rig:
        try:
            knobs = parse_settings(list(settings or []), rig.profile)
        except ValueError as exc:
            raise CaptureError(str(exc)) from None
        return run_preflight(rig, signal, knobs)
