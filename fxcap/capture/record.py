"""The capture engine: calibrate, then play-record-align-check every planned take into a Session.

Every take is checked; a failing take is re-taken up to ``max_attempts`` times and, if it still
fails, the run stops with a one-line message naming the take, the check and what to do. A failed
take is never kept. Takes already on disk stay byte-identical whatever happens later (crash,
Ctrl-C, failed take); :func:`resume_session` continues with the first take not yet recorded.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from fxcap.capture.align import AlignConfig, Calibration, align_take, measure_calibration
from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.budget import DEFAULT_KNOB_CHANGE_SECONDS, estimate_capture
from fxcap.capture.checks import CheckConfig, check_take, reference_drift_db, session_checks
from fxcap.capture.layout import TestSignal, audio_sha256
from fxcap.capture.plan import PlanBatch, PlannedTake, append_batch, budget_left, plan_from_dict
from fxcap.capture.session import Alignment, CheckResult, Session, TakeRecord, now_iso
from fxcap.errors import CaptureError, CaptureStopped, FxcapError, SessionError
from fxcap.interrupt import Interrupted
from fxcap.io import atomic_write_wav
from fxcap.locking import folder_lock, remove_stale

Observer = Callable[[str, dict[str, Any]], None]
"""Progress callback: ``observer(event, data)``. Events, in order of appearance:

* ``level``: a deterministic backend's signal level was chosen (``choice``, ``message``; see
  :mod:`fxcap.capture.level`), before anything is recorded;
* ``plan``: ``total`` takes in the plan, ``done`` already recorded (a resumed session), and the
  ``estimate`` of what is left (:class:`fxcap.capture.budget.CaptureEstimate`);
* ``calibration``: the bypass take was measured (``calibration``, ``checks``);
* ``probe`` / ``probe_warning``: the device was probed after a knob change (``verdict``) and
  sounded doubtful (``warnings``: the knob looks forgotten, wrong, or the device drifted);
* ``take_start``, ``attempt_rejected`` (``failed`` checks), ``take_done`` (``record``);
* ``reference_drift``: a re-take of the reference setting against the first one (``esr_db``, ``ok``);
* ``choosing``: a growing plan (``--plan adaptive``) is choosing its next batch (``done`` takes
  recorded, ``left`` settings of its budget), then ``plan`` again with the new ``total`` once the
  batch is stored (``batch``: the :class:`~fxcap.capture.plan.PlannedTake`s added);
* ``stopped``: the backend stopped the run (``error``: device lost, the user quit);
* ``session_done``: with the ``session_checks``.

The importer (:mod:`fxcap.capture.importer`) adds ``take_rejected`` (a file failed its checks).
"""

PlanExtender = Callable[[Session], PlanBatch]
"""Chooses the next batch of a growing plan from the takes the session holds (:mod:`fxcap.adaptive`'s
planner, given by the layer above). The engine stores the batch in the plan before recording it, so a
resumed capture records the stored choice and never decides a take twice."""


@dataclass
class RecordConfig:
    """Options of the capture engine.

    Attributes:
        max_attempts: tries per take before the run stops (a take failing a check is re-taken).
        align: alignment options (latency search, drift threshold).
        checks: check thresholds.
        knob_change_seconds: seconds to turn one knob by hand, for the time estimate
            (:mod:`fxcap.capture.budget`; knobs a backend sets itself cost nothing).
    """

    max_attempts: int = 3
    align: AlignConfig = field(default_factory=AlignConfig)
    checks: CheckConfig = field(default_factory=CheckConfig)
    knob_change_seconds: float = DEFAULT_KNOB_CHANGE_SECONDS

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise CaptureError(f"--max-attempts must be 1 or more (tries per take), not {self.max_attempts!r}")
        if not (isinstance(self.knob_change_seconds, (int, float)) and 0 <= self.knob_change_seconds < float("inf")):
            raise CaptureError(
                f"--knob-change-seconds must be 0 or more (seconds to turn one knob by hand), not {self.knob_change_seconds!r}"
            )


def _failures(checks: list[CheckResult]) -> list[CheckResult]:
    return [c for c in checks if c.severity == "error" and not c.passed]


def describe_knobs(knobs: dict[str, Any]) -> str:
    """``drive=5, tone=0.5, mode=limit``: a setting in one line."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in knobs.items())


@dataclass
class TakeResult:
    """One recording after alignment and checks: what the engine and the importer decide on.

    Attributes:
        raw: the recording as it came in.
        aligned: the aligned output, ``layout.length`` float32 samples.
        alignment: how it was aligned.
        checks: every per-take check (see :func:`fxcap.capture.checks.check_take`).
    """

    raw: RawTake
    aligned: np.ndarray
    alignment: Alignment
    checks: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        """The error-severity checks that did not pass (empty: the take may be kept)."""
        return _failures(self.checks)

    def problem(self) -> str:
        """The failed checks as one line (``"sync: ...; silence: ..."``)."""
        return "; ".join(f"{c.name}: {c.message}" for c in self.failed)


def evaluate_take(
    raw: RawTake,
    signal: TestSignal,
    calibration: Calibration | None,
    config: RecordConfig,
    previous: list[Alignment] | None = None,
    align: AlignConfig | None = None,
) -> TakeResult:
    """Align ``raw`` onto ``signal`` (referred to ``calibration`` when given) and run every take check.

    ``previous``: alignments of the takes already kept (latency consistency); ``align`` overrides
    ``config.align`` for this take (the importer widens the latency search for long files).
    """
    aligned, alignment = align_take(raw, signal.layout, calibration, align or config.align)
    checks = check_take(raw, aligned, signal.layout, alignment, calibration, config.checks, previous or [])
    return TakeResult(raw=raw, aligned=aligned, alignment=alignment, checks=checks)


def evaluate_calibration(
    raw: RawTake, signal: TestSignal, config: RecordConfig, align: AlignConfig | None = None
) -> tuple[Calibration, list[CheckResult]]:
    """Measure the rig from a bypass/loopback recording and check it like a take.

    Raises :class:`CaptureError` when the markers or the calibration tone cannot be found.
    """
    align = align or config.align
    calibration = measure_calibration(raw, signal.layout, align)
    aligned, alignment = align_take(raw, signal.layout, calibration, align)
    return calibration, check_take(raw, aligned, signal.layout, alignment, calibration, config.checks)


def store_calibration(
    session: Session, raw: RawTake, calibration: Calibration, checks: list[CheckResult], attempts: int = 1, **facts: Any
) -> None:
    """Write the calibration recording and its result into the session (``facts`` go into the entry too)."""
    atomic_write_wav(session.root / "calibration" / "raw.wav", raw.recorded, raw.sample_rate)
    session.manifest.calibration = {
        "result": calibration.to_dict(),
        "raw_file": "calibration/raw.wav",
        "checks": [c.to_dict() for c in checks],
        "attempts": attempts,
        "recorded_at": now_iso(),
        **facts,
    }
    session.save()


def keep_take(
    session: Session, planned: PlannedTake, result: TakeResult, attempts: int = 1, started: str = "", keep_raw: bool = True
) -> TakeRecord:
    """List a take that passed its checks in the session and write its raw and aligned audio
    (``keep_raw=False``: a pre-aligned take, whose raw file is its output file)."""
    record = TakeRecord(
        take_id=planned.take_id,
        index=planned.index,
        knobs=dict(planned.knobs),
        knobs_normalized=session.manifest.device.normalize(planned.knobs),
        alignment=result.alignment,
        checks=result.checks,
        output_file=f"takes/{planned.take_id}/output.wav",
        raw_file=f"takes/{planned.take_id}/raw.wav" if keep_raw else f"takes/{planned.take_id}/output.wav",
        is_reference=planned.is_reference,
        attempts=attempts,
        started_at=started or now_iso(),
        finished_at=now_iso(),
        backend_info=dict(result.raw.info),
    )
    session.add_take(record, result.aligned, result.raw.recorded)
    return record


def finish_session(session: Session, signal: TestSignal, config: RecordConfig, observer: Observer) -> Session:
    """Run the checks across the kept takes, mark the session complete and tell the observer."""
    references = {t.take_id: session.take_output(t) for t in session.manifest.takes if t.is_reference}
    results = session_checks(session.manifest.takes, references, signal.layout, config.checks)
    session.manifest.session_checks = results
    session.manifest.status = "complete"
    session.save()
    observer("session_done", {"session": session, "session_checks": results})
    return session


def resume_command(session: Session) -> str:
    """The command that continues ``session``: ``fxcap import --resume`` for an imported one."""
    verb = "import" if session.manifest.backend.name == "import" else "record"
    return f"fxcap {verb} --resume --out {session.root}"


def resume_hint(session: Session) -> str:
    """The command that continues ``session``, in backquotes."""
    return f"`{resume_command(session)}`"


@contextmanager
def interruptible(session: Session) -> Iterator[None]:
    """Ctrl-C inside the block marks the session ``"interrupted"`` (atomically) and raises
    :class:`~fxcap.interrupt.Interrupted` with the command that continues it."""
    try:
        yield
    except KeyboardInterrupt:
        if session.manifest.status != "complete":
            session.manifest.status = "interrupted"
            session.manifest.notes.append(f"interrupted (Ctrl-C) after {len(session.manifest.takes)} takes")
            session.save()
        raise Interrupted(resume_command(session)) from None


def planned_takes(session: Session) -> list[PlannedTake]:
    """The session's stored plan; a damaged one is a one-line :class:`SessionError`."""
    try:
        return plan_from_dict(session.manifest.plan)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SessionError(
            f"{session.root / 'session.json'}: the plan is damaged ({type(exc).__name__}: {exc}); restore session.json "
            "from a backup or record a new session"
        ) from None


def attempt_calibration(
    backend: Backend, signal: TestSignal, config: RecordConfig, rejected: Callable[[int, str], None] | None = None
) -> tuple[RawTake, Calibration, list[CheckResult], int]:
    """Play the bypass/loopback take and measure the rig, again while it fails a check, up to
    ``config.max_attempts`` tries (``rejected(attempt, problem)`` is told of each failed one).

    Returns the recording, the calibration, its checks and the number of tries; raises
    :class:`CaptureError` when every try failed.
    """
    last_problem = ""
    for attempt in range(1, config.max_attempts + 1):
        raw = backend.calibration_take(signal.audio)
        calibration, checks = evaluate_calibration(raw, signal, config)
        failed = _failures(checks)
        if not failed:
            return raw, calibration, checks, attempt
        last_problem = "; ".join(c.message for c in failed)
        if rejected is not None:
            rejected(attempt, last_problem)
    raise CaptureError(f"calibration (bypass) take failed {config.max_attempts} times: {last_problem}")


def attempt_take(
    backend: Backend,
    signal: TestSignal,
    knobs: dict[str, Any],
    calibration: Calibration,
    config: RecordConfig,
    previous: list[Alignment] | None = None,
    start: Callable[[int], None] | None = None,
    rejected: Callable[[int, TakeResult], None] | None = None,
) -> tuple[TakeResult, int]:
    """Play ``signal`` through ``backend`` at ``knobs``, align it (referred to ``calibration``) and check
    it; a take that fails a check is played again, up to ``config.max_attempts`` tries (one for a
    deterministic backend: a re-take would give the same result).

    ``start(attempt)`` is called before each try, ``rejected(attempt, result)`` after each failed one.
    Returns the last result (``result.failed`` empty: it passed) and the number of tries.
    """
    attempts = 1 if backend.deterministic else config.max_attempts
    for attempt in range(1, attempts + 1):
        if start is not None:
            start(attempt)
        raw: RawTake = backend.play_record(signal.audio, knobs)
        result = evaluate_take(raw, signal, calibration, config, previous)
        if not result.failed:
            return result, attempt
        if rejected is not None:
            rejected(attempt, result)
    return result, attempts


def _calibrate(session: Session, backend: Backend, signal: TestSignal, config: RecordConfig, observer: Observer) -> Calibration:
    """Record the bypass/loopback take, or reuse the one a resumed session already has."""
    stored = session.manifest.calibration
    if stored.get("result"):
        return Calibration.from_dict(stored["result"])

    def rejected(attempt: int, problem: str) -> None:
        session.manifest.notes.append(f"calibration attempt {attempt} rejected: {problem}")
        session.save()

    raw, calibration, checks, attempt = attempt_calibration(backend, signal, config, rejected)
    store_calibration(session, raw, calibration, checks, attempt)
    observer("calibration", {"calibration": calibration, "checks": checks})
    return calibration


def _record_take(
    session: Session,
    backend: Backend,
    signal: TestSignal,
    planned: PlannedTake,
    calibration: Calibration,
    config: RecordConfig,
    observer: Observer,
) -> TakeRecord:
    started = now_iso()
    _probe(session, backend, planned, observer)

    def start(attempt: int) -> None:
        observer("take_start", {"take": planned, "attempt": attempt})
        backend.begin_take(planned.index, attempt)

    def rejected(attempt: int, result: TakeResult) -> None:
        session.manifest.notes.append(
            f"{planned.take_id} ({describe_knobs(planned.knobs)}) attempt {attempt} rejected: {result.problem()}"
        )
        session.save()
        observer("attempt_rejected", {"take": planned, "attempt": attempt, "failed": result.failed})

    previous = [t.alignment for t in session.manifest.takes]
    result, attempt = attempt_take(backend, signal, planned.knobs, calibration, config, previous, start, rejected)
    if not result.failed:
        record = keep_take(session, planned, result, attempt, started)
        observer("take_done", {"take": planned, "record": record})
        if record.is_reference:
            _report_reference_drift(session, record, result.aligned, signal, config, observer)
        return record
    last_problem = result.problem()
    session.manifest.status = "failed"
    session.save()
    if backend.deterministic:
        raise CaptureError(
            f"{planned.take_id} ({describe_knobs(planned.knobs)}) failed its checks ({last_problem}); "
            f"{backend.profile.name} gives the same output on every take, so it was not re-taken: record again with "
            "another level (--peak-dbfs) or knob range (--device profile.toml)"
        )
    raise CaptureError(
        f"{planned.take_id} ({describe_knobs(planned.knobs)}) failed its checks {config.max_attempts} times "
        f"({last_problem}); fix the rig, then continue with {resume_hint(session)}"
    )


def _probe(session: Session, backend: Backend, planned: PlannedTake, observer: Observer) -> None:
    """Probe the device after the knob change (backends that can, see :meth:`Backend.probe_setting`);
    a doubtful response becomes a ``probe_warning`` event and a manifest note."""
    verdict = backend.probe_setting(planned.knobs)
    if verdict is None:
        return
    observer("probe", {"take": planned, "verdict": verdict})
    if verdict.warnings:
        for warning in verdict.warnings:
            session.manifest.notes.append(f"{planned.take_id} ({describe_knobs(planned.knobs)}) probe: {warning}")
        session.save()
        observer("probe_warning", {"take": planned, "warnings": list(verdict.warnings)})


def _report_reference_drift(
    session: Session, record: TakeRecord, aligned: np.ndarray, signal: TestSignal, config: RecordConfig, observer: Observer
) -> None:
    """After a re-take of the reference setting: how far the device moved since the first one."""
    first = next((t for t in session.manifest.takes if t.is_reference and t.take_id != record.take_id), None)
    if first is None:
        return
    value = reference_drift_db(session.take_output(first), aligned, signal.layout)
    ok = value <= config.checks.reference_drift_max_db
    observer("reference_drift", {"take": record, "reference": first.take_id, "esr_db": value, "ok": ok})
    if not ok:
        session.manifest.notes.append(
            f"{record.take_id}: the reference setting differs from {first.take_id} by ESR {value:.1f} dB: the device "
            "drifted (warm-up, battery, temperature) or a knob moved"
        )
        session.save()


def _check_extender(plan: dict[str, Any], extend: PlanExtender | None, where: str | Path) -> None:
    """A growing plan with settings left to choose needs a planner to choose them."""
    if extend is None and budget_left(plan):
        raise CaptureError(f"{where}: the adaptive plan has {budget_left(plan)} settings left to choose, and no planner was "
                           "given to choose them; continue it with `fxcap record --resume`")


def _grow_plan(session: Session, extend: PlanExtender | None, observe: Observer,
               estimate: Callable[[list[PlannedTake]], Any]) -> list[PlannedTake]:
    """The next batch of a growing plan, stored in the manifest (before any of it is recorded); empty when
    the plan does not grow or its budget is used. ``estimate(takes)``: the time estimate of the new takes
    (the ``plan`` event's ``estimate``)."""
    left = budget_left(session.manifest.plan)
    if extend is None or not left:
        return []
    observe("choosing", {"done": len(session.manifest.takes), "left": left})
    try:
        batch = extend(session)
    except CaptureError:
        raise
    except FxcapError as exc:  # the planner's own errors (a model that cannot train...) stop the run, resumable
        raise CaptureError(f"choosing the next settings failed: {exc}") from None
    batch = PlanBatch(batch.settings[:left], batch.scores[:left], batch.details)
    if not batch.settings:
        raise CaptureError("the planner chose no setting; continue with other settings (fxcap plan next) or a new plan")
    added = append_batch(session.manifest.plan, batch)
    session.save()
    observe("plan", {"total": len(session.manifest.plan["takes"]) + budget_left(session.manifest.plan),
                     "done": len(session.manifest.takes), "batch": added, "estimate": estimate(added)})
    return added


def _run(session: Session, backend: Backend, signal: TestSignal, config: RecordConfig, observer: Observer | None,
         extend: PlanExtender | None = None) -> Session:
    observe: Observer = observer or (lambda event, data: None)
    config = replace(config, checks=replace(config.checks, output_clip_advice=backend.clip_advice))
    plan = planned_takes(session)
    session.manifest.status = "running"
    session.save()
    done = {t.index for t in session.manifest.takes}
    estimate = estimate_capture([p for p in plan if p.index not in done], signal.duration, backend.timing(),
                                config.knob_change_seconds, calibrate=not session.manifest.calibration.get("result"))
    growing = budget_left(session.manifest.plan) if extend else 0  # an adaptive plan's settings still to choose
    observe("plan", {"total": len(plan) + growing, "done": len(done), "estimate": estimate})
    try:
        with interruptible(session):
            calibration = _calibrate(session, backend, signal, config, observe)
            while plan:
                for planned in plan:
                    if planned.index in done:
                        continue
                    _record_take(session, backend, signal, planned, calibration, config, observe)
                plan = _grow_plan(session, extend, observe, lambda takes: estimate_capture(
                    takes, signal.duration, backend.timing(), config.knob_change_seconds, calibrate=False))
    except CaptureError as exc:
        if session.manifest.status == "failed":  # a take failed its checks: the message says it all
            raise
        # the backend stopped (device lost, stream error, the user quit at a prompt)
        message = str(exc).rstrip(".")
        hint = resume_hint(session)
        if isinstance(exc, CaptureStopped):  # names the generic command: name this session's
            message = exc.continue_with(hint)
        elif "--resume" not in message:  # (a message that names a resume command already says how to continue)
            message = f"{message}; continue with {hint}"
        session.manifest.status = "failed"
        session.manifest.notes.append(f"stopped after {len(session.manifest.takes)} takes: {exc}")
        session.save()
        observe("stopped", {"session": session, "error": message})
        raise CaptureError(message) from None
    with interruptible(session):
        return finish_session(session, signal, config, observe)


def record_session(
    out_dir: str | Path,
    backend: Backend,
    signal: TestSignal,
    plan: dict[str, Any],
    config: RecordConfig | None = None,
    observer: Observer | None = None,
    backend_info: BackendDetails | None = None,
    extend: PlanExtender | None = None,
) -> Session:
    """Create a session in ``out_dir`` and record every take of ``plan`` (see :mod:`fxcap.capture.plan`);
    a growing (adaptive) plan is extended by ``extend`` until its budget is used.

    Returns the completed session. Raises :class:`CaptureError` if a take keeps failing its
    checks; everything recorded so far stays on disk and :func:`resume_session` continues.
    ``backend_info`` is what the manifest records about the backend (default: ``backend.describe()``).
    """
    config = config or RecordConfig()
    if signal.sample_rate != backend.sample_rate:
        raise CaptureError(
            f"the signal is at {signal.sample_rate} Hz but the backend runs at {backend.sample_rate} Hz; "
            "generate the signal at the device's rate (--rate)"
        )
    _check_extender(plan, extend, out_dir)
    with folder_lock(out_dir, "record"):  # one writer per session folder
        remove_stale(out_dir, recursive=True)
        session = Session.create(
            out_dir,
            device=backend.profile,
            backend=backend_info or BackendDetails.from_dict(backend.describe()),
            signal_audio=signal.audio,
            layout=signal.layout,
            plan=plan,
        )
        return _run(session, backend, signal, config, observer, extend)


def load_session_signal(session: Session) -> TestSignal:
    """The signal a session played, verified against the hash in its manifest."""
    audio = session.input_audio()
    layout = session.layout
    expected = session.manifest.signal.get("sha256")
    if expected and audio_sha256(audio) != expected:
        raise SessionError(
            f"{session.root}/signal.wav does not match the hash in session.json; the session is damaged, re-record it"
        )
    return TestSignal(audio=np.asarray(audio, dtype=np.float32), layout=layout)


def resume_session(
    path: str | Path,
    backend: Backend,
    config: RecordConfig | None = None,
    observer: Observer | None = None,
    extend: PlanExtender | None = None,
) -> Session:
    """Continue an interrupted or failed capture with the first take not yet recorded.

    Takes already recorded are left untouched (byte-identical), and so are the settings a growing plan
    has chosen: they are recorded as stored before ``extend`` chooses more. The backend must drive the
    same device at the same sample rate.
    """
    config = config or RecordConfig()
    session = Session.open(path)
    if session.manifest.device.name != backend.profile.name:
        raise SessionError(
            f"{path} was recorded from {session.manifest.device.name}, not {backend.profile.name}; resume with the same --device"
        )
    if session.sample_rate != backend.sample_rate:
        raise SessionError(f"{path} was recorded at {session.sample_rate} Hz; resume with --rate {session.sample_rate}")
    with folder_lock(path, "record --resume"):  # one writer per session folder: no take is recorded twice
        remove_stale(path, recursive=True)  # temporary files of a killed capture
        session = Session.open(path)  # as it is now that no one else writes it
        if session.manifest.status == "complete":
            return session
        _check_extender(session.manifest.plan, extend, path)
        return _run(session, backend, load_session_signal(session), config, observer, extend)


def has_gain_reference(session: Session) -> bool:
    """Whether the session's gains were measured against a bypass (calibration) take."""
    return session.manifest.calibration.get("result") is not None


def session_summary(session: Session) -> list[dict[str, Any]]:
    """One row per take: the knobs that vary across the session (``knobs`` as text, ``settings`` as a
    dict), latency (samples), gain (dB),
    drift (ppm), noise floor (dBFS), repeatability ESR (dB), attempts and status — what the CLI
    prints at the end. ``gain_db`` is ``None`` when the session has no bypass take to measure gain
    against (files imported without ``--bypass``: levels as recorded)."""
    takes = session.manifest.takes
    gain_measured = has_gain_reference(session)
    varying = [name for name in session.manifest.device.knob_names if len({str(t.knobs.get(name)) for t in takes}) > 1]
    rows = []
    for take in takes:
        noise = take.check("noise_floor")
        repeat = take.check("repeatability")
        shown = {k: take.knobs[k] for k in varying} if varying else take.knobs
        rows.append(
            {
                "take": take.take_id,
                "knobs": describe_knobs(shown),
                "settings": shown,
                "reference": take.is_reference,
                "latency_samples": take.alignment.latency_samples,
                "gain_db": take.alignment.gain_db if gain_measured else None,
                "drift_ppm": take.alignment.drift_ppm,
                "noise_floor_dbfs": noise.value if noise else None,
                "repeatability_esr_db": repeat.value if repeat else None,
                "attempts": take.attempts,
                "status": "ok" if take.passed else "failed",
            }
        )
    return rows
