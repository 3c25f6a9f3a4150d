"""The capture commands: ``fxcap devices``, ``signal``, ``check``, ``record``, ``import`` and ``import-signaltrain``.

Each parses its options, calls one function of :mod:`fxcap.capture` and prints the result
(:mod:`fxcap.cli.tables`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fxcap.capture.budget import DEFAULT_KNOB_CHANGE_SECONDS
from fxcap.cli import tables
from fxcap.cli.options import (
    BlockSize,
    Device,
    MidiPort,
    OutputChannel,
    PlayedPeak,
    QuickSteps,
    Rate,
    ScoreBy,
    SessionOut,
    SoundcardChannel,
)
from fxcap.cli.progress import RecordProgress
from fxcap.cli.plan import adaptive_planner
from fxcap.errors import FxcapError


def devices(
    sound_cards: Annotated[bool, typer.Option("--sound-cards/--no-sound-cards", help="Also scan the audio interfaces (PortAudio).")] = True,
) -> None:
    """List device profiles, virtual devices, pedalboard built-in effects and sound cards."""
    from fxcap.capture.devices import list_devices

    tables.print_devices(list_devices(sound_cards=sound_cards), sound_cards)


def signal_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="WAV file to write (float32); the layout JSON is written beside it.")] = Path("capture_signal.wav"),
    rate: Annotated[int, typer.Option("--rate", "-r", help="Sample rate in Hz: 44100, 48000, 88200 or 96000.")] = 48000,
    preset: Annotated[str, typer.Option(help="'default' (a few minutes) or 'short' (quick tests).")] = "default",
    peak_dbfs: Annotated[Optional[float], typer.Option("--peak-dbfs", help="Peak level of the signal in dBFS.")] = None,
    program: Annotated[Optional[Path], typer.Option("--signal", help="Your own program material (WAV) to wrap with sync markers.")] = None,
) -> None:
    """Write the capture test signal (to reamp it through a device from a DAW, for example)."""
    from fxcap.capture.signal import SignalConfig, generate_signal, save_signal, wrap_program
    from fxcap.io import read_wav

    if program is not None:
        audio, file_rate = read_wav(program)
        signal = wrap_program(audio, file_rate, peak_dbfs=peak_dbfs)
    else:
        config = SignalConfig(sample_rate=rate, preset=preset, **({} if peak_dbfs is None else {"peak_dbfs": peak_dbfs}))
        signal = generate_signal(config)
    save_signal(signal, out)
    tables.print_signal_layout(signal, out)


def check(
    device: Device = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help="soundcard[:NAME], sim or plugin:NAME.")] = "soundcard",
    rate: Rate = 48000,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Knob setting of the device take, e.g. --set drive=10 (the loudest you plan).")] = None,
    peak_dbfs: PlayedPeak = None,
    output_channel: OutputChannel = None,
    input_channel: SoundcardChannel = None,
    loopback_channel: SoundcardChannel = None,
    block_size: BlockSize = None,
    midi_port: MidiPort = None,
    seed: Annotated[int, typer.Option(help="Seed for the virtual rig (--backend sim).")] = 0,
) -> None:
    """Pre-flight a rig: levels (signal, headroom, noise floor), round-trip latency and the calibration take."""
    from fxcap.capture.backends.factory import resolve_device
    from fxcap.capture.capture import preflight_check

    report = preflight_check(device, backend, rate, settings=list(set_ or []), peak_dbfs=peak_dbfs, seed=seed,
                             output_channels=output_channel, input_channel=input_channel,
                             loopback_channel=loopback_channel, blocksize=block_size, midi_port=midi_port)
    tables.print_preflight(report, f"Pre-flight of {resolve_device(backend, device) or backend.partition(':')[2]} via {backend} at {rate} Hz")
    if not report.ok:
        raise typer.Exit(1)


def record(
    device: Device = None,
    knob: Annotated[Optional[list[str]], typer.Option("--knob", "-k", help="Knob to sweep; repeat for a grid.")] = None,
    steps: Annotated[Optional[list[int]], typer.Option("--steps", "-n", help="Settings per swept knob (one value for all, or one per --knob).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Fix an unswept knob, e.g. --set tone=5.")] = None,
    plan: Annotated[str, typer.Option(help="'grid' (every combination), 'lhs' (Latin hypercube of --takes settings) or 'adaptive' "
                                           "(--takes settings, each batch chosen where a quick model of the takes so far is least sure).")] = "grid",
    takes: Annotated[int, typer.Option(help="Number of settings for --plan lhs and adaptive.")] = 16,
    batch: Annotated[int, typer.Option(help="--plan adaptive: settings chosen per round (one quick training per round).")] = 3,
    quick_steps: QuickSteps = None,
    score_by: ScoreBy = None,
    shuffle: Annotated[bool, typer.Option("--shuffle/--in-order", help="Record the settings in random order.")] = False,
    reference_every: Annotated[int, typer.Option(help="Re-take the reference setting every N takes (0: never).")] = 0,
    backend: Annotated[str, typer.Option("--backend", "-b", help="sim, sim:OD-3, soundcard[:NAME] or plugin:NAME.")] = "sim",
    rate: Rate = 48000,
    preset: Annotated[str, typer.Option(help="Capture signal: 'default' (a few minutes) or 'short'.")] = "default",
    program: Annotated[Optional[Path], typer.Option("--signal", help="Your own program material (WAV) instead of the built-in.")] = None,
    peak_dbfs: PlayedPeak = None,
    out: SessionOut = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the session in --out (default: the newest) where it stopped.")] = False,
    max_attempts: Annotated[int, typer.Option(help="Tries per take before the run stops.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for the virtual rig and random plans.")] = 0,
    output_channel: OutputChannel = None,
    input_channel: SoundcardChannel = None,
    loopback_channel: SoundcardChannel = None,
    block_size: BlockSize = None,
    midi_port: MidiPort = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start a capture of more than 2 hours or 200 takes without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and the estimated time; play and write nothing.")] = False,
    knob_change_seconds: Annotated[float, typer.Option(help="Seconds to turn one knob by hand, for the time estimate (knobs the backend sets cost none).")] = DEFAULT_KNOB_CHANGE_SECONDS,
) -> None:
    """Record a device at swept knob settings into a session folder (aligned, checked takes)."""
    from fxcap.capture.capture import CaptureRequest, preview_capture, run_capture, soundcard_options
    from fxcap.capture.plan import PlanConfig
    from fxcap.capture.record import RecordConfig

    if quick_steps is not None and plan != "adaptive" and not resume:
        raise FxcapError("--quick-steps applies to --plan adaptive only (the committee that chooses its settings)")
    if score_by is not None and plan != "adaptive" and not resume:
        raise FxcapError("--score-by applies to --plan adaptive only (how it chooses its settings)")
    knobs = list(knob or [])
    step_list = list(steps or [11])
    if len(step_list) not in (1, len(knobs)) and knobs:
        raise FxcapError(f"give one --steps for all knobs or one per --knob ({len(knobs)}), not {len(step_list)}")
    step_spec: int | dict[str, int] = step_list[0] if len(step_list) == 1 else dict(zip(knobs, step_list))
    request = CaptureRequest(
        device=device,
        backend=backend,
        plan=PlanConfig(knobs=knobs, steps=step_spec, kind=plan, takes=takes, fixed=_fixed_knobs(set_, device, backend),
                        shuffle=shuffle, reference_every=reference_every, seed=seed, batch=batch),
        sample_rate=rate,
        preset=preset,
        program=program,
        peak_dbfs=peak_dbfs,
        out=out,
        resume=resume,
        seed=seed,
        record=RecordConfig(max_attempts=max_attempts, knob_change_seconds=knob_change_seconds),
        backend_options=soundcard_options("soundcard" if resume else backend, output_channels=output_channel, input_channel=input_channel,
                                          loopback_channel=loopback_channel, blocksize=block_size, midi_port=midi_port),
        yes=yes, confirm=typer.confirm if sys.stdin.isatty() else None,
        extend=adaptive_planner(quick_steps, score_by),  # used only by a plan that grows (adaptive)
    )
    if dry_run:
        tables.print_capture_preview(preview_capture(request))
        return
    with RecordProgress() as progress:
        session = run_capture(request, observer=progress)
    tables.print_session_summary(session)
    tables.console.print(f"session written to [bold]{session.root}[/]")


def _fixed_knobs(set_: Optional[list[str]], device: Optional[str], backend: str) -> dict:
    """The unswept knobs ``--set`` fixes: checked against the device profile, or as given for a plugin
    (whose parameters are known only once it is loaded)."""
    from fxcap.capture.backends.factory import DEFAULT_DEVICE
    from fxcap.capture.plan import parse_settings
    from fxcap.capture.profiles import get_profile

    if not set_:
        return {}
    if backend.startswith("plugin"):
        return dict(item.split("=", 1) for item in set_)
    try:
        return parse_settings(list(set_), get_profile(device or DEFAULT_DEVICE))
    except ValueError as exc:
        raise FxcapError(str(exc)) from exc


def import_command(
    recordings: Annotated[Optional[list[Path]], typer.Argument(help="Recordings of the signal through the device, one per knob setting (default: the files of --knobs).")] = None,
    signal: Annotated[Path, typer.Option("--signal", "-s", help="The test signal written by `fxcap signal` (its .json layout beside it).")] = Path("capture_signal.wav"),
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Device profile: OD-3, LA-2A or a .toml file (default: inferred from the knob values, and said so).")] = None,
    knobs: Annotated[Optional[Path], typer.Option("--knobs", "-k", help="CSV: file,<knob>,<knob>... or file,knob,value (else: knob values from the file names, e.g. drive=6_tone=5.wav or drive_6.wav).")] = None,
    bypass: Annotated[Optional[Path], typer.Option("--bypass", help="The signal recorded with the device bypassed: rig latency and gain.")] = None,
    out: SessionOut = None,
    channel: Annotated[Optional[int], typer.Option("--channel", help="Channel (from 1) of multichannel files that holds the device.")] = None,
    resample: Annotated[bool, typer.Option("--resample", help="Convert files at another sample rate to the signal's.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first file that fails a check (default: skip it).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the stopped import in --out (default: the newest session) with the files it does not hold yet.")] = False,
) -> None:
    """Import DAW recordings of the test signal (reamped through a device) as an aligned, checked session."""
    from fxcap.capture.import_resume import resume_import
    from fxcap.capture.importer import ImportConfig, import_recordings

    config = ImportConfig(channel=channel, resample=resample, strict=strict)
    with RecordProgress() as progress:
        if resume:
            session = resume_import(out, list(recordings or []), config, progress, Path("sessions"))
        else:
            session = import_recordings(signal, list(recordings or []), knobs, device=device, out=out, bypass=bypass,
                                        config=config, observer=progress)
    tables.print_session_summary(session)
    for note in session.manifest.notes:
        tables.console.print(f"note: {note}", markup=False, highlight=False)
    tables.console.print(f"session written to [bold]{session.root}[/]")


def import_signaltrain_command(
    root: Annotated[Path, typer.Argument(help="Folder with input_<id>_.wav and target_<id>_LA2A_<...>__<switch>__<peak>.wav files (any depth).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the sessions (one per input file).")] = Path("sessions/signaltrain"),
    ids: Annotated[Optional[list[str]], typer.Option("--id", help="Import only this input id (repeatable).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Keep only the first seconds of every pair (quick experiments).")] = None,
) -> None:
    """Import a SignalTrain-style LA-2A dry/wet dataset as sessions (build them with --mixed-signals)."""
    from fxcap.capture.signaltrain import SignalTrainConfig, import_signaltrain

    sessions = import_signaltrain(root, out, SignalTrainConfig(ids=ids, max_seconds=max_seconds),
                                  progress=lambda item: tables.err_console.print(f"  {item}", highlight=False))
    takes = sum(len(s.takes) for s in sessions)
    for session in sessions:
        for note in session.manifest.notes:
            tables.console.print(f"note: {session.root.name}: {note}", markup=False, highlight=False)
    tables.console.print(f"{len(sessions)} sessions, {takes} takes written under {out}; next: "
                         f"fxcap build-dataset {out}/* --mixed-signals", markup=False, highlight=False)
