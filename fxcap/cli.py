"""The ``fxcap`` command: thin Typer commands over the library functions.

Every command parses its options, calls one library function and prints the result. Problems the
user can fix (:class:`fxcap.errors.FxcapError`, OS and audio-file errors) are printed as one line and
exit with status 1; Ctrl-C exits with 130 (see :func:`main`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fxcap import __version__
from fxcap.errors import FxcapError
from fxcap.modeling.schemes import scheme_names

app = typer.Typer(
    name="fxcap",
    help="Capture a real audio effect at swept knob settings and model it with a knob-conditioned RNN.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"fxcap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    """fxcap: record a device, build a dataset, train and compare conditioned RNN models."""


def _knob_summary(profile) -> str:
    return ", ".join(
        f"{k.name} ({'/'.join(k.values)})" if k.is_switch else f"{k.name} {k.minimum:g}-{k.maximum:g}" for k in profile.knobs
    )


@app.command()
def devices(
    sound_cards: Annotated[bool, typer.Option("--sound-cards/--no-sound-cards", help="Also scan the audio interfaces (PortAudio).")] = True,
) -> None:
    """List device profiles, virtual devices, pedalboard built-in effects and sound cards."""
    from fxcap.capture.devices import list_devices

    listing = list_devices(sound_cards=sound_cards)
    table = Table(title="Device profiles (--device)")
    for column in ("profile", "kind", "virtual (--backend sim)", "knobs"):
        table.add_column(column)
    for profile in listing.profiles:
        table.add_row(profile.name, profile.kind, "yes" if profile.name in listing.virtual else "-", _knob_summary(profile))
    console.print(table)
    if listing.plugins:
        console.print("pedalboard built-in effects (--backend plugin:NAME): " + ", ".join(listing.plugins), highlight=False)
    else:
        console.print(f"pedalboard built-in effects: none ({listing.plugins_note})", highlight=False)
    if not sound_cards:
        return
    if not listing.interfaces:
        console.print(f"sound cards: none ({listing.interfaces_note})", highlight=False)
        return
    table = Table(title="Sound cards (--backend soundcard:NAME)")
    for column in ("#", "name", "host API", "in", "out", "rates (Hz)"):
        table.add_column(column, justify="right" if column in ("#", "in", "out") else "left")
    for i in listing.interfaces:
        table.add_row(str(i.index), i.name, i.hostapi, str(i.max_input_channels), str(i.max_output_channels),
                      ", ".join(str(r) for r in i.supported_rates) or "-")
    console.print(table)


def _fail(message: str) -> None:
    raise FxcapError(message)


@app.command("signal")
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
    table = Table(title=f"{out} ({signal.duration:.1f} s at {signal.sample_rate} Hz, version {signal.layout.version})")
    for column in ("region", "kind", "start (s)", "end (s)"):
        table.add_column(column)
    for region in signal.layout.regions:
        start, stop = region.seconds(signal.sample_rate)
        table.add_row(region.name, region.kind, f"{start:.3f}", f"{stop:.3f}")
    console.print(table)


class _RecordProgress:
    """Rich progress over takes, with one line per rejected attempt.

    Used as a context manager; the bar appears with the first event (``plan``), so an error found
    before anything is recorded (a bad CSV, a missing file) prints no empty bar.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("calibration", total=None)
        self.started = False

    def __enter__(self) -> "_RecordProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()

    def __call__(self, event: str, data: dict) -> None:
        if event in ("level", "profile_inferred"):  # said before anything is recorded
            console.print(f"[yellow]{data['message']}[/]", highlight=False)
            return
        if not self.started:
            self.started = True
            self.progress.start()
        if event == "plan":
            self.progress.update(self.task, total=data["total"], completed=data["done"])
        elif event == "calibration":
            cal = data["calibration"]
            self.progress.console.print(
                f"calibration: latency {cal.latency_samples:.2f} samples, rig gain {cal.gain_db:+.2f} dB, "
                f"polarity {cal.polarity:+d}, drift {cal.drift_ppm:+.1f} ppm"
            )
        elif event == "take_start":
            take = data["take"]
            knobs = ", ".join(f"{k}={v}" for k, v in take.knobs.items())
            self.progress.update(self.task, description=f"{take.take_id} {knobs}")
        elif event == "attempt_rejected":
            reasons = "; ".join(f"{c.name}: {c.message}" for c in data["failed"])
            self.progress.console.print(f"[yellow]{data['take'].take_id} attempt {data['attempt']} rejected[/]: {reasons}")
        elif event == "take_rejected":
            reasons = "; ".join(f"{c.name}: {c.message}" for c in data["failed"])
            self.progress.console.print(f"[yellow]{data['file']} rejected, skipped[/]: {reasons}", highlight=False)
            self.progress.advance(self.task)
        elif event == "probe_warning":
            for warning in data["warnings"]:
                self.progress.console.print(f"[yellow]{data['take'].take_id} probe warning[/]: {warning}", highlight=False)
        elif event == "reference_drift":
            style = "green" if data["ok"] else "yellow"
            self.progress.console.print(
                f"[{style}]{data['take'].take_id} reference re-take[/]: ESR {data['esr_db']:.1f} dB against {data['reference']}"
                + ("" if data["ok"] else " - the device drifted (warm-up, battery) or a knob moved"),
                highlight=False,
            )
        elif event == "stopped":
            self.progress.console.print(f"[red]stopped[/]: {data['error']}", highlight=False)
        elif event == "take_done":
            self.progress.advance(self.task)


SUMMARY_COLUMNS = (
    ("take", "take"), ("knobs", "knobs"), ("latency_samples", "latency\n(smp)"), ("gain_db", "gain\n(dB)"),
    ("drift_ppm", "drift\n(ppm)"), ("noise_floor_dbfs", "noise\n(dBFS)"), ("repeatability_esr_db", "repeat\n(dB ESR)"),
    ("attempts", "tries"), ("status", "ok"),
)
"""``(session_summary key, header)`` of the take table; every column but the knobs keeps its full width."""

NO_BYPASS_GAIN = "n/a (no bypass take)"


def _summary_cells(row: dict, gain_measured: bool) -> list[str]:
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    return [
        row["take"].removeprefix("take-") + (" ref" if row["reference"] else ""),
        ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row["settings"].values()),
        fmt(row["latency_samples"], ".2f"),
        fmt(row["gain_db"], "+.2f") if gain_measured else "n/a",
        fmt(row["drift_ppm"], "+.1f"),
        fmt(row["noise_floor_dbfs"], ".1f"),
        fmt(row["repeatability_esr_db"], ".1f"),
        str(row["attempts"]),
        row["status"],
    ]


def _print_session_summary(session) -> None:
    from fxcap.capture.record import has_gain_reference, session_summary

    rows = session_summary(session)
    gain_measured = has_gain_reference(session)
    cells = [_summary_cells(row, gain_measured) for row in rows]
    table = Table(title=f"{session.root}: {len(rows)} takes of {session.manifest.device.name} ({session.manifest.status})",
                  caption=None if gain_measured else f"gain: {NO_BYPASS_GAIN}, levels as recorded (import with --bypass to measure it)")
    for i, (key, header) in enumerate(SUMMARY_COLUMNS):
        if key == "knobs":  # the knob names head the column; the only column that wraps, the figures are never cut
            table.add_column(", ".join(rows[0]["settings"]) if rows else header, overflow="fold", ratio=1)
            continue
        width = max([len(line) for line in header.split("\n")] + [len(c[i]) for c in cells])
        table.add_column(header, justify="left" if key == "take" else "right", no_wrap=True, min_width=width)
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)
    for check in session.manifest.calibration.get("session_checks", []):
        style = "green" if check["passed"] else ("yellow" if check["severity"] == "warning" else "red")
        console.print(f"[{style}]{check['name']}[/]: {check['message']}")


DEVICE_HELP = ("Device profile: OD-3 (the default), LA-2A or a .toml file; for --backend plugin:NAME a .toml "
               "that narrows the plugin's knobs (default: its own parameters).")

SoundcardChannel = Annotated[Optional[int], typer.Option(help="Sound card: 1-based channel (see `fxcap devices`).")]


@app.command()
def check(
    device: Annotated[Optional[str], typer.Option("--device", "-d", help=DEVICE_HELP)] = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help="soundcard[:NAME], sim or plugin:NAME.")] = "soundcard",
    rate: Annotated[int, typer.Option("--rate", "-r", help="Sample rate in Hz.")] = 48000,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Knob setting of the device take, e.g. --set drive=10 (the loudest you plan).")] = None,
    peak_dbfs: Annotated[Optional[float], typer.Option("--peak-dbfs", help="Peak level of the played signal (dBFS).")] = None,
    output_channel: Annotated[Optional[str], typer.Option(help="Sound card: output channel(s) that play the signal, e.g. 1 or 1,2.")] = None,
    input_channel: SoundcardChannel = None,
    loopback_channel: SoundcardChannel = None,
    block_size: Annotated[Optional[int], typer.Option(help="Sound card: frames per audio block (0: the host's choice).")] = None,
    midi_port: Annotated[Optional[str], typer.Option(help="Sound card: MIDI output port for CC-mapped knobs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the virtual rig (--backend sim).")] = 0,
) -> None:
    """Pre-flight a rig: levels (signal, headroom, noise floor), round-trip latency and the calibration take."""
    from fxcap.capture.backends.factory import resolve_device
    from fxcap.capture.capture import preflight_check

    report = preflight_check(device, backend, rate, settings=list(set_ or []), peak_dbfs=peak_dbfs, seed=seed,
                             output_channels=output_channel, input_channel=input_channel,
                             loopback_channel=loopback_channel, blocksize=block_size, midi_port=midi_port)
    table = Table(title=f"Pre-flight of {resolve_device(backend, device) or backend.partition(':')[2]} via {backend} at {rate} Hz")
    for column in ("check", "value", "status", "what it means / what to do"):
        table.add_column(column)
    styles = {"ok": "green", "FIX": "red", "-": "dim"}
    for row in report.to_rows():
        table.add_row(row["check"], row["value"], f"[{styles[row['status']]}]{row['status']}[/]", row["message"])
    console.print(table)
    console.print("[green]ready to record[/]" if report.ok else "[red]fix the items marked FIX, then run fxcap check again[/]")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def record(
    device: Annotated[Optional[str], typer.Option("--device", "-d", help=DEVICE_HELP)] = None,
    knob: Annotated[Optional[list[str]], typer.Option("--knob", "-k", help="Knob to sweep; repeat for a grid.")] = None,
    steps: Annotated[Optional[list[int]], typer.Option("--steps", "-n", help="Settings per swept knob (one value for all, or one per --knob).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Fix an unswept knob, e.g. --set tone=5.")] = None,
    plan: Annotated[str, typer.Option(help="'grid' (every combination) or 'lhs' (Latin hypercube of --takes settings).")] = "grid",
    takes: Annotated[int, typer.Option(help="Number of settings for --plan lhs.")] = 16,
    shuffle: Annotated[bool, typer.Option("--shuffle/--in-order", help="Record the settings in random order.")] = False,
    reference_every: Annotated[int, typer.Option(help="Re-take the reference setting every N takes (0: never).")] = 0,
    backend: Annotated[str, typer.Option("--backend", "-b", help="sim, sim:OD-3, soundcard[:NAME] or plugin:NAME.")] = "sim",
    rate: Annotated[int, typer.Option("--rate", "-r", help="Sample rate in Hz.")] = 48000,
    preset: Annotated[str, typer.Option(help="Capture signal: 'default' (a few minutes) or 'short'.")] = "default",
    program: Annotated[Optional[Path], typer.Option("--signal", help="Your own program material (WAV) instead of the built-in.")] = None,
    peak_dbfs: Annotated[Optional[float], typer.Option("--peak-dbfs", help="Peak level of the played signal (dBFS).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Session folder (default sessions/<device>-<time>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the session in --out (default: the newest) where it stopped.")] = False,
    max_attempts: Annotated[int, typer.Option(help="Tries per take before the run stops.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for the virtual rig and random plans.")] = 0,
    output_channel: Annotated[Optional[str], typer.Option(help="Sound card: output channel(s) that play the signal, e.g. 1 or 1,2.")] = None,
    input_channel: SoundcardChannel = None,
    loopback_channel: SoundcardChannel = None,
    block_size: Annotated[Optional[int], typer.Option(help="Sound card: frames per audio block (0: the host's choice).")] = None,
    midi_port: Annotated[Optional[str], typer.Option(help="Sound card: MIDI output port; knobs with a midi_cc in the profile are set automatically.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start a capture of more than 2 hours or 200 takes without asking.")] = False,
) -> None:
    """Record a device at swept knob settings into a session folder (aligned, checked takes)."""
    from fxcap.capture.backends.factory import DEFAULT_DEVICE
    from fxcap.capture.capture import CaptureRequest, run_capture, soundcard_options
    from fxcap.capture.plan import PlanConfig
    from fxcap.capture.plan import parse_settings
    from fxcap.capture.profiles import get_profile
    from fxcap.capture.record import RecordConfig

    knobs = list(knob or [])
    step_list = list(steps or [11])
    if len(step_list) not in (1, len(knobs)) and knobs:
        _fail(f"give one --steps for all knobs or one per --knob ({len(knobs)}), not {len(step_list)}")
    step_spec: int | dict[str, int] = step_list[0] if len(step_list) == 1 else dict(zip(knobs, step_list))
    fixed = {}
    if set_ and not backend.startswith("plugin"):
        try:
            fixed = parse_settings(list(set_), get_profile(device or DEFAULT_DEVICE))
        except ValueError as exc:
            _fail(str(exc))
    elif set_:
        fixed = dict(item.split("=", 1) for item in set_)
    request = CaptureRequest(
        device=device,
        backend=backend,
        plan=PlanConfig(knobs=knobs, steps=step_spec, kind=plan, takes=takes, fixed=fixed, shuffle=shuffle, reference_every=reference_every, seed=seed),
        sample_rate=rate,
        preset=preset,
        program=program,
        peak_dbfs=peak_dbfs,
        out=out,
        resume=resume,
        seed=seed,
        record=RecordConfig(max_attempts=max_attempts),
        backend_options=soundcard_options("soundcard" if resume else backend, output_channels=output_channel, input_channel=input_channel,
                                          loopback_channel=loopback_channel, blocksize=block_size, midi_port=midi_port),
        yes=yes, confirm=typer.confirm if sys.stdin.isatty() else None,
    )
    with _RecordProgress() as progress:
        session = run_capture(request, observer=progress)
    _print_session_summary(session)
    console.print(f"session written to [bold]{session.root}[/]")


@app.command("import")
def import_command(
    recordings: Annotated[Optional[list[Path]], typer.Argument(help="Recordings of the signal through the device, one per knob setting (default: the files of --knobs).")] = None,
    signal: Annotated[Path, typer.Option("--signal", "-s", help="The test signal written by `fxcap signal` (its .json layout beside it).")] = Path("capture_signal.wav"),
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Device profile: OD-3, LA-2A or a .toml file (default: inferred from the knob values, and said so).")] = None,
    knobs: Annotated[Optional[Path], typer.Option("--knobs", "-k", help="CSV: file,<knob>,<knob>... or file,knob,value (else: knob values from the file names, e.g. drive=6_tone=5.wav or drive_6.wav).")] = None,
    bypass: Annotated[Optional[Path], typer.Option("--bypass", help="The signal recorded with the device bypassed: rig latency and gain.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Session folder (default sessions/<device>-<time>).")] = None,
    channel: Annotated[Optional[int], typer.Option("--channel", help="Channel (from 1) of multichannel files that holds the device.")] = None,
    resample: Annotated[bool, typer.Option("--resample", help="Convert files at another sample rate to the signal's.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first file that fails a check (default: skip it).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the stopped import in --out (default: the newest session) with the files it does not hold yet.")] = False,
) -> None:
    """Import DAW recordings of the test signal (reamped through a device) as an aligned, checked session."""
    from fxcap.capture.import_resume import resume_import
    from fxcap.capture.importer import ImportConfig, import_recordings

    config = ImportConfig(channel=channel, resample=resample, strict=strict)
    with _RecordProgress() as progress:
        if resume:
            session = resume_import(out, list(recordings or []), config, progress, Path("sessions"))
        else:
            session = import_recordings(signal, list(recordings or []), knobs, device=device, out=out, bypass=bypass,
                                        config=config, observer=progress)
    _print_session_summary(session)
    for note in session.manifest.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"session written to [bold]{session.root}[/]")


@app.command("import-signaltrain")
def import_signaltrain_command(
    root: Annotated[Path, typer.Argument(help="Folder with input_<id>_.wav and target_<id>_LA2A_<...>__<switch>__<peak>.wav files (any depth).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the sessions (one per input file).")] = Path("sessions/signaltrain"),
    ids: Annotated[Optional[list[str]], typer.Option("--id", help="Import only this input id (repeatable).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Keep only the first seconds of every pair (quick experiments).")] = None,
) -> None:
    """Import a SignalTrain-style LA-2A dry/wet dataset as sessions (build them with --mixed-signals)."""
    from fxcap.capture.signaltrain import SignalTrainConfig, import_signaltrain

    sessions = import_signaltrain(root, out, SignalTrainConfig(ids=ids, max_seconds=max_seconds),
                                  progress=lambda item: err_console.print(f"  {item}", highlight=False))
    takes = sum(len(s.takes) for s in sessions)
    for session in sessions:
        for note in session.manifest.notes:
            console.print(f"note: {session.root.name}: {note}", markup=False, highlight=False)
    console.print(f"{len(sessions)} sessions, {takes} takes written under {out}; next: "
                  f"fxcap build-dataset {out}/* --mixed-signals", markup=False, highlight=False)


@app.command()
def train(
    cond: Annotated[str, typer.Option("--cond", "-c", help="concat, film, statichyper, dynamichyper or all.")] = "dynamichyper",
    cell: Annotated[str, typer.Option(help="Recurrent cell: gru or lstm.")] = "gru",
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset folder or URI (s3://...; default: the newest under datasets/).")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Parent of the run folders: <runs>/<dataset name>/<scheme>-<cell>-s<seed>.")] = Path("runs"),
    preset: Annotated[str, typer.Option(help="'paper' (the paper's recipe), 'default' or 'quick' (minutes on a CPU).")] = "default",
    epochs: Annotated[Optional[int], typer.Option(help="Max epochs (overrides the preset).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps per epoch (overrides the preset).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per step (overrides the preset).")] = None,
    window: Annotated[Optional[int], typer.Option(help="BPTT window in samples (default: the dataset's).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.")] = None,
    stft_weight: Annotated[Optional[float], typer.Option(help="Weight of the multi-resolution STFT loss.")] = None,
    stft_warmup: Annotated[Optional[int], typer.Option(help="Steps over which the STFT weight ramps up from 0 (overrides the preset).")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help="'plateau' (halve on plateaus, the paper's) or 'cosine' (overrides the preset).")] = None,
    pre_emphasis: Annotated[bool, typer.Option("--pre-emphasis/--no-pre-emphasis", help="Loss on pre-emphasised signals.")] = True,
    esr_weight: Annotated[Optional[float], typer.Option(help="Weight of the ESR loss term (overrides the preset).")] = None,
    dc_weight: Annotated[Optional[float], typer.Option(help="Weight of the DC loss term (overrides the preset).")] = None,
    esr_emphasis: Annotated[Optional[float], typer.Option(help="ESR pre-emphasis coefficient a of 1 - a z^-1, 0 = none (overrides the preset).")] = None,
    esr_per_setting: Annotated[Optional[bool], typer.Option("--esr-per-setting/--esr-pooled", help="ESR per knob setting (each setting weighs alike) or pooled over the batch (overrides the preset).", show_default=False)] = None,
    loss_skip: Annotated[Optional[int], typer.Option(help="Samples at the start of each window left out of the loss (overrides the preset).")] = None,
    pre_filter: Annotated[Optional[int], typer.Option(help="Poles of the learned linear filter before the RNN, 0 = none (overrides the preset).")] = None,
    post_filter: Annotated[Optional[int], typer.Option(help="Poles of the learned linear filter after the RNN, 0 = none (overrides the preset).")] = None,
    hidden_size: Annotated[Optional[int], typer.Option(help="Hidden units of the main cell (paper: 32; overrides the preset).")] = None,
    time_budget: Annotated[Optional[float], typer.Option(help="Training time budget per model in minutes: stop when it runs out, with the rate annealed by then.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and window sampling.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue interrupted runs from their last epoch (same dataset and settings; --epochs may grow).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start the runs afresh, replacing what their folders hold.")] = False,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Score each run on the test split afterwards.")] = True,
) -> None:
    """Train one or all conditioning schemes on a dataset; one run folder per model."""
    from fxcap.modeling.pipeline import TrainRequest, train_models

    conds = scheme_names() if cond == "all" else [cond]
    request = TrainRequest(
        conds=conds, cell=cell, dataset=dataset, runs_dir=runs_dir, preset=preset, seed=seed, resume=resume, force=force, evaluate=evaluate,
        overrides={k: v for k, v in dict(max_epochs=epochs, steps_per_epoch=steps, batch_size=batch_size, window=window, lr=lr,
                                         stft_weight=stft_weight, stft_warmup_steps=stft_warmup, lr_schedule=lr_schedule,
                                         esr_weight=esr_weight, dc_weight=dc_weight, esr_emphasis=esr_emphasis,
                                         esr_per_setting=esr_per_setting, loss_skip=loss_skip,
                                         time_budget_s=None if time_budget is None else time_budget * 60.0).items()
                   if v is not None} | {"pre_emphasis": pre_emphasis},
        model_overrides={k: v for k, v in dict(pre_filter_poles=pre_filter, post_filter_poles=post_filter,
                                               hidden_size=hidden_size).items() if v is not None},
    )
    results = train_models(request, console=console)
    _print_comparison(results.comparison, results.runs_root / "comparison.md")
    for run in results.runs:
        console.print(f"run folder: {run}", highlight=False, markup=False)
    if results.comparison is not None:
        console.print(f"comparison of every run of this dataset: {results.runs_root / 'comparison.md'}", highlight=False, markup=False)
    if results.failed:
        for run_dir, reason in results.failed.items():
            err_console.print(f"{run_dir.name} failed: {reason}", highlight=False, markup=False)
        raise typer.Exit(1)


def _markdown_rows(markdown: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    return split(lines[0]), [split(line) for line in lines[2:]]


def _print_fitted(title: str, markdown: str, priority: tuple[str, ...], written: Optional[Path], left: tuple[str, ...]) -> None:
    """A Markdown table as a rich table with the columns that fit the terminal; the rest are in ``written``."""
    from fxcap.modeling.compare import fit_columns

    headers, rows = _markdown_rows(markdown)
    keep = fit_columns(headers, rows, priority, console.width)
    table = Table(title=title)
    for i in keep:
        table.add_column(headers[i], justify="left" if headers[i] in left else "right", no_wrap=headers[i] in left)
    for row in rows:
        table.add_row(*[row[i] for i in keep])
    console.print(table)
    hidden = [h for i, h in enumerate(headers) if i not in keep]
    if hidden and written is not None:
        console.print(f"more columns ({', '.join(hidden)}) in {written}", highlight=False, markup=False)


def _print_comparison(frame, written: Optional[Path] = None) -> None:
    """The per-run comparison, narrowed to the terminal's width (``written``: the comparison.md with every column)."""
    if frame is None:
        return
    from fxcap.modeling.compare import TERMINAL_PRIORITY, to_markdown

    _print_fitted("Test-split comparison (lower is better, * best)", to_markdown(frame), TERMINAL_PRIORITY, written,
                  ("run", "scheme", "cell"))


def _print_seeds(frame, title: str = "Mean ± std over seeds (lower is better, * best mean)", written: Optional[Path] = None) -> None:
    from fxcap.modeling.compare import SEEDS_TERMINAL_PRIORITY, aggregate_seeds, seeds_markdown

    _print_fitted(title, seeds_markdown(aggregate_seeds(frame)), SEEDS_TERMINAL_PRIORITY, written, ("scheme", "cell"))


@app.command("evaluate")
def evaluate_command(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="Run folder(s) to score.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset folder or URI (default: the one the run was trained on).")] = None,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
) -> None:
    """Score trained runs on the test split (and held-out knob settings), per knob setting and averaged."""
    from fxcap.modeling.evaluate import evaluate_run
    from fxcap.modeling.metrics import esr_grade

    for run in model:
        summary = evaluate_run(run, dataset, checkpoint)
        scores = summary["test"]
        console.print(
            f"{run}: ESR {scores['esr']:.4f} ({scores['esr_db']:.1f} dB, {esr_grade(scores['esr'])}), L1 {scores['l1']:.4f}, "
            f"STFT {scores['mrstft']:.3f}, LUFS {scores['lufs_diff']:.2f}, CF {scores['crest_factor_diff_db']:.2f} dB, "
            f"RMS {scores['rms_diff_db']:.2f} dB",
            highlight=False,
        )
        if "esr_worst" in scores:
            console.print(f"  worst knob setting: ESR {scores['esr_worst']:.4f} ({esr_grade(scores['esr_worst'])}) at "
                          f"{summary['test_worst_setting']}", highlight=False)
        if "holdout" in summary:
            held = summary["holdout"]
            console.print(f"  held-out knob settings: ESR {held['esr']:.4f} ({held['esr_db']:.1f} dB, {esr_grade(held['esr'])})",
                          highlight=False)
        warnings = summary.get("warnings", [])
        for warning in warnings[:3]:
            console.print(f"  [yellow]warning[/] {warning}", highlight=False)
        if len(warnings) > 3:
            console.print(f"  [yellow]warning[/] ... and {len(warnings) - 3} more settings (see {run}/evaluation.json)", highlight=False)


@app.command()
def compare(
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Run folders (default: every evaluated run under --runs).")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where to look for runs.")] = Path("runs"),
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for comparison.md/.csv (default: --runs).")] = None,
    split: Annotated[str, typer.Option(help="test or holdout.")] = "test",
) -> None:
    """Print and write the table of all evaluated runs side by side, best per column marked."""
    from fxcap.modeling.compare import compare_runs, find_runs

    folders = list(runs) if runs else find_runs(runs_dir)
    if not folders:
        _fail(f"no evaluated runs under {runs_dir}/; train some with `fxcap train --cond all`")
    written = out or runs_dir
    frame = compare_runs(folders, written, split)
    _print_comparison(frame, written / "comparison.md")
    if frame.groupby(["scheme", "cell"]).size().max() > 1:
        _print_seeds(frame, written=written / "comparison_seeds.md")
    console.print(f"written {written / 'comparison.md'}, comparison_seeds.md and their .csv", highlight=False, markup=False)


@app.command()
def render(
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder of a trained model.")],
    in_path: Annotated[Path, typer.Option("--in", "-i", help="Dry input WAV at the model's sample rate.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output WAV (float32).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Knob value, e.g. --set drive=7.")] = None,
    automate: Annotated[Optional[list[str]], typer.Option("--automate", help="Knob envelope, e.g. drive:0:10 (ramp over the file).")] = None,
    automation_csv: Annotated[Optional[Path], typer.Option("--automation", help="CSV with a time column (s) and one column per knob.")] = None,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    block: Annotated[int, typer.Option(help="Samples per processing block.")] = 65536,
    channel: Annotated[Optional[int], typer.Option(help="Multichannel input: the channel (from 1) to render.")] = None,
    mix: Annotated[bool, typer.Option("--mix", help="Multichannel input: render the average of its channels.")] = False,
) -> None:
    """Process audio through a trained model at a knob setting or with knob automation."""
    from fxcap.modeling.render import render_run

    result = render_run(model, in_path, out_path, settings=list(set_ or []), automate=list(automate or []), automation_csv=automation_csv,
                        checkpoint=checkpoint, block=block, channel=channel, mix=mix)
    console.print(f"wrote {out_path}: {result['seconds']:.2f} s, peak {result['peak']:.3f}")
# -- dataset ---------------------------------------------------------------------------------------------

dataset_app = typer.Typer(help="Inspect and check dataset folders.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@app.command("build-dataset")
def build_dataset_command(
    sessions: Annotated[Optional[list[Path]], typer.Argument(help="Session folders (default: the newest under --sessions-dir).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Dataset folder or URI: s3://bucket/prefix, gs://..., file://... (default: datasets/<device>).")] = None,
    split: Annotated[str, typer.Option(help="train/valid/test shares of the trainable audio, e.g. 60/10/30.")] = "60/10/30",
    segment_seconds: Annotated[float, typer.Option(help="Segment length in seconds (one Parquet row per take and segment).")] = 2.0,
    split_mode: Annotated[str, typer.Option(help="interleaved (every split hears every kind of material) or contiguous.")] = "interleaved",
    holdout: Annotated[Optional[list[str]], typer.Option(help="Hold out a knob setting, e.g. drive=5 or drive=5,tone=3 (repeatable).")] = None,
    window: Annotated[Optional[int], typer.Option(help="Default training window in samples (default: 2048, 8192 for compressors).")] = None,
    wav: Annotated[bool, typer.Option("--wav/--no-wav", help="Also write the WAV shards.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing dataset at --out.")] = False,
    sessions_dir: Annotated[Path, typer.Option(help="Where to look for the newest session.")] = Path("sessions"),
    mixed_signals: Annotated[bool, typer.Option("--mixed-signals", help="Combine sessions that played different signals (e.g. imported dry/wet files); each is split along time on its own.")] = False,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="Build from sessions that stopped before their plan was done (warns and lists their missing takes).")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Processes writing shards in parallel (default: one per core for large builds).")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Write shards as Ray tasks: auto, HOST:PORT or local.")] = None,
) -> None:
    """Turn capture sessions into Parquet + WAV shards with leakage-free splits and a dataset card."""
    from fxcap.capture.session import newest_session
    from fxcap.dataset import BuildConfig, SplitConfig, build_dataset

    config = BuildConfig(
        split=SplitConfig.parse_fractions(split, segment_seconds=segment_seconds, mode=split_mode),
        holdout=tuple(holdout or ()),
        window=window,
        write_wav=wav,
        mixed_signals=mixed_signals,
        allow_incomplete=allow_incomplete,
    )
    info = build_dataset(list(sessions) if sessions else [newest_session(sessions_dir)], out, config, overwrite=force,
                         progress=lambda take: err_console.print(f"  {take}", highlight=False), workers=workers, ray=ray)
    console.print(info.describe(), markup=False, highlight=False)


@dataset_app.command("info")
def dataset_info_command(path: Annotated[str, typer.Argument(help="Dataset folder or URI (s3://...).")]) -> None:
    """Print a dataset's device, knobs, splits, capture quality and hash."""
    from fxcap.dataset import load_dataset_info

    console.print(load_dataset_info(path).describe(), markup=False, highlight=False)


@dataset_app.command("validate")
def dataset_validate_command(path: Annotated[str, typer.Argument(help="Dataset folder or URI (s3://...).")]) -> None:
    """Check schema, lengths, NaN/Inf, split leakage, knob coverage and every shard; exit 1 on errors."""
    from fxcap.dataset import validate

    problems = validate(path)
    for problem in problems:
        console.print(str(problem), markup=False, highlight=False)
    errors = sum(p.severity == "error" for p in problems)
    console.print(f"{path}: {errors} error(s), {len(problems) - errors} warning(s)", markup=False, highlight=False)
    if errors:
        raise typer.Exit(1)


# -- export ----------------------------------------------------------------------------------------


@app.command("export")
def export_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Run folder of a trained model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.onnx / .json / .nam), or a folder (no suffix) for <run>.<suffix>; a .nam pack is a folder.")],
    format_: Annotated[str, typer.Option("--format", "-f", help="onnx (every scheme), rtneural (Concat, knobs in [-1, 1]), aidax (Concat, knobs 0..1 for AIDA-X) or nam (LSTM snapshot for Neural Amp Modeler).")] = "onnx",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="nam: knob value of the snapshot, e.g. --set drive=7 (others at their default).")] = None,
    at: Annotated[Optional[list[str]], typer.Option("--at", help="nam pack: one setting per file, e.g. --at drive=7,tone=4 (repeatable).")] = None,
    grid: Annotated[Optional[int], typer.Option("--grid", help="nam pack: this many evenly spaced values of every knob not fixed by --set.")] = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", help="nam metadata, e.g. --meta gear_type=pedal --meta tone_type=overdrive --meta input_level_dbu=12.")] = None,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    seconds: Annotated[float, typer.Option(help="Length of the self-test audio in seconds.")] = 3.0,
) -> None:
    """Export a trained model to ONNX, RTNeural / AIDA-X JSON or NAM .nam; every written file is self-tested against PyTorch."""
    from fxcap.modeling.export import export_run
    from fxcap.modeling.export.common import knob_input_lines

    report = export_run(model, out, format_, checkpoint=checkpoint, seconds=seconds, settings=list(set_ or []),
                        at=list(at or []), grid=grid, meta_fields=list(meta or []))
    automation = "with knob automation" if report.get("knob_automation", True) else "at the fixed setting"
    for line in _export_lines(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"self-test on {report['seconds']:.2f} s of audio {automation}: max abs error {report['max_abs_error']:.2e} "
        f"(limit {report['tolerance']:g}) - passed",
        markup=False, highlight=False, soft_wrap=True,
    )
    console.print("knob inputs, in this order, normalized to [-1, 1]:\n  " + "\n  ".join(knob_input_lines(report["knobs"])),
                  markup=False, highlight=False)
    for note in report.get("notes", []):
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _export_lines(report: dict) -> list[str]:
    """What an export wrote: the file, or a pack's files and index, with each snapshot's setting and test ESR."""
    def esr(item: dict) -> str:
        return f"test ESR {item['test_esr']:.4g} ({item['esr_split']})" if item.get("test_esr") is not None else "test ESR not measured at this setting"

    if "files" in report:
        lines = [f"wrote {len(report['files'])} .nam files and {report['index']} ({report['bytes']} bytes in all)"]
        lines += [f"  {Path(item['path']).name}: {esr(item)}" for item in report["files"]]
        return lines
    line = f"wrote {report['path']} ({report['bytes']} bytes, {report['format']})"
    if "setting" in report:
        line += f" at {report['setting']}; {esr(report)}"
    return [line]


# -- report ----------------------------------------------------------------------------------------------


@app.command("report")
def report_command(
    session: Annotated[Optional[Path], typer.Option("--session", "-s", help="Session folder (default: the newest under --sessions-dir).")] = None,
    dataset: Annotated[Optional[Path], typer.Option("--dataset", "-d", help="Dataset folder (default: the newest under --datasets-dir built from the session).")] = None,
    run: Annotated[Optional[list[Path]], typer.Option("--run", "--model", "-m", help="Run folder; repeat for several (default: the evaluated runs under --runs).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default: reports/<session or dataset name>).")] = None,
    at: Annotated[Optional[list[str]], typer.Option("--at", help="Setting for spectrograms and audio, e.g. --at drive=10 or --at drive=5,tone=3 (repeatable).")] = None,
    audio_seconds: Annotated[float, typer.Option(help="Length of the audio excerpts (s).")] = 3.0,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    sessions_dir: Annotated[Path, typer.Option(help="Where to look for the newest session.")] = Path("sessions"),
    datasets_dir: Annotated[Path, typer.Option(help="Where to look for the newest dataset.")] = Path("datasets"),
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where to look for evaluated runs.")] = Path("runs"),
) -> None:
    """Write an HTML report (single file, figures and audio embedded) plus PNGs: capture quality, knob
    response of device and models, spectrograms, audio, training curves and the comparison table."""
    from fxcap.report import ExcerptConfig, ReportConfig, build_report, parse_setting, resolve_inputs

    inputs = resolve_inputs(session, dataset, run, sessions_dir, datasets_dir, runs_dir)
    config = ReportConfig(excerpts=ExcerptConfig(audio_seconds=audio_seconds), checkpoint=checkpoint)
    path = build_report(out or Path("reports") / inputs.name, inputs.session, inputs.dataset, inputs.runs,
                        settings=[parse_setting(a) for a in at or []], config=config, notes=inputs.notes,
                        progress=lambda line: err_console.print(f"  {line}", highlight=False))
    console.print(f"report written to [bold]{path}[/] ({path.stat().st_size / 1e6:.1f} MB)")


@app.command()
def sweep(
    dataset: Annotated[list[str], typer.Option("--dataset", "-d", help="Dataset folder or URI (s3://...); repeat for several.")],
    cond: Annotated[Optional[list[str]], typer.Option("--cond", "-c", help="Scheme(s) to train; repeatable; default all four.")] = None,
    cell: Annotated[Optional[list[str]], typer.Option("--cell", help="gru, lstm or all; repeatable; default gru.")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per scheme: first-seed .. first-seed + seeds - 1.")] = 2,
    first_seed: Annotated[int, typer.Option(help="The first seed.")] = 0,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Where run folders, sweep.json and the comparisons go.")] = Path("runs"),
    preset: Annotated[str, typer.Option(help="'paper', 'default' or 'quick'.")] = "default",
    epochs: Annotated[Optional[int], typer.Option(help="Max epochs (overrides the preset).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps per epoch (overrides the preset).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per step (overrides the preset).")] = None,
    window: Annotated[Optional[int], typer.Option(help="BPTT window in samples (default: the dataset's).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate.")] = None,
    retries: Annotated[int, typer.Option(help="Further attempts for a failed trial before it is reported as failed.")] = 1,
    workers: Annotated[Optional[int], typer.Option(help="Trials at once on this machine (default: cores // --cpus-per-trial; 1: in this process).")] = None,
    cpus_per_trial: Annotated[float, typer.Option(help="CPUs (torch threads) per trial; Ray reserves this share.")] = 1.0,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run trials as Ray tasks: auto, HOST:PORT, ray://HOST:PORT or local.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Local cache of remote datasets (default $FXCAP_CACHE_DIR or ~/.cache/fxcap).")] = None,
    cache_max_bytes: Annotated[Optional[str], typer.Option(help="Bound of that cache, e.g. 8G (default $FXCAP_CACHE_MAX_BYTES).")] = None,
) -> None:
    """Train every scheme x cell x seed (x dataset) in parallel (processes or Ray); resumable; compare with mean ± std."""
    from fxcap.modeling.sweep import SweepConfig, run_sweep

    def on_event(kind: str, record: dict) -> None:
        if kind == "done":
            result = record["result"] or {}
            esr = result.get("test", {}).get("esr")
            console.print(f"[green]done[/]    {record['trial']}: {result.get('epochs')} epoch(s), "
                          f"ESR {esr:.4f}, {result.get('seconds', 0):.0f} s" if esr is not None else f"[green]done[/]    {record['trial']}",
                          highlight=False)
        elif kind in ("retry", "failed"):
            style = "yellow" if kind == "retry" else "red"
            console.print(f"[{style}]{kind:<7}[/] {record['trial']} (attempt {record['attempts']}): {record['error']}", highlight=False)
        elif kind == "start":
            console.print(f"start   {record['trial']} (attempt {record['attempts']})", highlight=False)
        elif kind == "skip":
            console.print(f"skip    {record['trial']} (finished earlier)", highlight=False)

    config = SweepConfig(
        datasets=list(dataset),
        conds=scheme_names() if not cond or "all" in cond else list(cond),
        cells=["gru", "lstm"] if cell and "all" in cell else list(cell or ["gru"]),
        seeds=list(range(first_seed, first_seed + seeds)),
        runs_dir=runs_dir, preset=preset, retries=retries, workers=workers, cpus_per_trial=cpus_per_trial, ray=ray,
        overrides={k: v for k, v in dict(max_epochs=epochs, steps_per_epoch=steps, batch_size=batch_size, window=window, lr=lr).items() if v is not None},
        cache_dir=cache_dir, cache_max_bytes=cache_max_bytes,
    )
    result = run_sweep(config, on_event=on_event)
    for name, frame in result.comparisons.items():
        _print_comparison(frame, runs_dir / name / "comparison.md")
        _print_seeds(frame, title=f"{name}: mean ± std over seeds (lower is better, * best mean)",
                     written=runs_dir / name / "comparison_seeds.md")
    console.print(f"sweep state: {result.manifest}")
    if result.failed:
        names = ", ".join(t["trial"] for t in result.failed)
        _fail(f"{len(result.failed)} trial(s) failed: {names}; see {result.manifest}, fix the cause and run the sweep again to resume")


def main(args: Optional[list[str]] = None) -> None:
    """Console-script entry point (``args``: default ``sys.argv[1:]``); exits with the command's status.

    Exit status: 0 done; 1 a problem the user can fix, printed as one red line saying what to do
    (fxcap's own errors, and OS and audio-file errors with the path and the fix, see
    :mod:`fxcap.cli_boundary`); 2 a usage error (Typer's usage text); 130 Ctrl-C, after the line
    ``interrupted; nothing written so far is lost; continue with ...`` (everything written so far
    stays intact, and the command that continues is named where there is one).
    """
    from fxcap.cli_boundary import run_cli

    def print_error(line: str) -> None:
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)

    def print_interrupted(line: str) -> None:
        err_console.print(f"[yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)

    sys.exit(run_cli(app, args, print_error, print_interrupted))


if __name__ == "__main__":  # pragma: no cover
    main()
