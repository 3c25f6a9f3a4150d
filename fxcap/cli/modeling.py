"""The model commands: ``fxcap train``, ``evaluate``, ``compare``, ``render``, ``ab`` and ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fxcap.cli import tables
from fxcap.cli.options import (
    BatchSize,
    BlockSize,
    Checkpoint,
    Device,
    Epochs,
    KnobSettings,
    LearningRate,
    MidiPort,
    OutputChannel,
    PlayedPeak,
    Preset,
    RunFolder,
    SoundcardChannel,
    StepsPerEpoch,
    Window,
    given,
)
from fxcap.errors import FxcapError
from fxcap.modeling.schemes import scheme_names


def train(
    cond: Annotated[str, typer.Option("--cond", "-c", help="concat, film, statichyper, dynamichyper or all.")] = "dynamichyper",
    cell: Annotated[str, typer.Option(help="Recurrent cell: gru or lstm.")] = "gru",
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset folder or URI (s3://...; default: the newest under datasets/).")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs", help="Parent of the run folders: <runs>/<dataset name>/<scheme>-<cell>-s<seed>.")] = Path("runs"),
    preset: Preset = "default",
    epochs: Epochs = None,
    steps: StepsPerEpoch = None,
    batch_size: BatchSize = None,
    window: Window = None,
    lr: LearningRate = None,
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
    knob_gains: Annotated[Optional[bool], typer.Option("--knob-gains/--no-knob-gains", help="Learned knob-dependent gains before and after the RNN (overrides the preset).")] = None,
    even_gain: Annotated[Optional[bool], typer.Option("--even-gain/--no-even-gain", help="Run the RNN on the input and the inverted input and scale the even-order part by a learned gain of the knobs (twice the compute; overrides the preset).")] = None,
    hidden_size: Annotated[Optional[int], typer.Option(help="Hidden units of the main cell (paper: 32; overrides the preset).")] = None,
    tbptt_windows: Annotated[Optional[int], typer.Option(help="Consecutive windows per training sequence, the state carried between them (1: each from a zero state; overrides the preset).")] = None,
    valid_window: Annotated[Optional[int], typer.Option(help="Samples per validation window (default: the training window; e.g. the test segments' length for a slow compressor).")] = None,
    even_penalty: Annotated[Optional[float], typer.Option(help="Weight of the even-order part's log energy share in the loss (with --even-gain): cleaner clean settings at some ESR cost; 0 = off.")] = None,
    linear_penalty: Annotated[Optional[float], typer.Option(help="Weight of the nonlinear part's log energy share at the settings where the device is linear (any scheme): cleaner clean settings at some ESR cost; 0 = off (default preset: 1e-3, none for a compressor).")] = None,
    linear_threshold_db: Annotated[Optional[float], typer.Option(help="A setting counts as linear when the share of its target no linear filter of its input explains is below this (dB; default -25).")] = None,
    linear_bands: Annotated[Optional[int], typer.Option(help="Take the linear penalty's share per log-spaced frequency band, this many (0: over the whole band; default preset: 12).")] = None,
    linearisation: Annotated[Optional[str], typer.Option(help="The linear penalty's linearisation: 'silence' (about silence, two extra runs) or 'level' (about the input's own level, one extra run; the default preset's).")] = None,
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
        overrides=given(max_epochs=epochs, steps_per_epoch=steps, batch_size=batch_size, window=window, lr=lr,
                        stft_weight=stft_weight, stft_warmup_steps=stft_warmup, lr_schedule=lr_schedule,
                        esr_weight=esr_weight, dc_weight=dc_weight, esr_emphasis=esr_emphasis,
                        esr_per_setting=esr_per_setting, loss_skip=loss_skip, tbptt_windows=tbptt_windows, valid_window=valid_window, even_penalty=even_penalty,
                        linear_penalty=linear_penalty, linear_threshold_db=linear_threshold_db, linear_bands=linear_bands,
                        linearisation=linearisation, time_budget_s=None if time_budget is None else time_budget * 60.0) | {"pre_emphasis": pre_emphasis},
        model_overrides=given(pre_filter_poles=pre_filter, post_filter_poles=post_filter, knob_gains=knob_gains, even_gain=even_gain, hidden_size=hidden_size),
    )
    results = train_models(request, console=tables.console)
    tables.print_comparison(results.comparison, results.runs_root / "comparison.md")
    for run in results.runs:
        tables.console.print(f"run folder: {run}", highlight=False, markup=False)
    if results.comparison is not None:
        tables.console.print(f"comparison of every run of this dataset: {results.runs_root / 'comparison.md'}", highlight=False, markup=False)
    if results.failed:
        for run_dir, reason in results.failed.items():
            tables.err_console.print(f"{run_dir.name} failed: {reason}", highlight=False, markup=False)
        raise typer.Exit(1)


def evaluate_command(
    model: Annotated[list[Path], typer.Option("--model", "-m", help="Run folder(s) to score.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset folder or URI (default: the one the run was trained on).")] = None,
    checkpoint: Checkpoint = "best",
) -> None:
    """Score trained runs on the test split (and held-out knob settings), per knob setting and averaged."""
    from fxcap.modeling.evaluate import evaluate_run
    from fxcap.modeling.metrics import esr_grade

    console = tables.console
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
        raise FxcapError(f"no evaluated runs under {runs_dir}/; train some with `fxcap train --cond all`")
    written = out or runs_dir
    frame = compare_runs(folders, written, split)
    tables.print_comparison(frame, written / "comparison.md")
    if frame.groupby(["scheme", "cell"]).size().max() > 1:
        tables.print_seeds(frame, written=written / "comparison_seeds.md")
    tables.console.print(f"written {written / 'comparison.md'}, comparison_seeds.md and their .csv", highlight=False, markup=False)


def render(
    model: RunFolder,
    in_path: Annotated[Path, typer.Option("--in", "-i", help="Dry input WAV at the model's sample rate.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output WAV (float32).")],
    set_: KnobSettings = None,
    automate: Annotated[Optional[list[str]], typer.Option("--automate", help="Knob envelope, e.g. drive:0:10 (ramp over the file).")] = None,
    automation_csv: Annotated[Optional[Path], typer.Option("--automation", help="CSV with a time column (s) and one column per knob.")] = None,
    checkpoint: Checkpoint = "best",
    block: Annotated[int, typer.Option(help="Samples per processing block.")] = 65536,
    channel: Annotated[Optional[int], typer.Option(help="Multichannel input: the channel (from 1) to render.")] = None,
    mix: Annotated[bool, typer.Option("--mix", help="Multichannel input: render the average of its channels.")] = False,
) -> None:
    """Process audio through a trained model at a knob setting or with knob automation."""
    from fxcap.modeling.render import render_run

    result = render_run(model, in_path, out_path, settings=list(set_ or []), automate=list(automate or []), automation_csv=automation_csv,
                        checkpoint=checkpoint, block=block, channel=channel, mix=mix)
    tables.console.print(f"wrote {out_path}: {result['seconds']:.2f} s, peak {result['peak']:.3f}")


def ab(
    model: RunFolder,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for device.wav, model.wav, difference.wav, ab.wav and ab.json.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="The device: sim, sim:OD-3, soundcard[:NAME] or plugin:NAME.")] = "sim",
    device: Device = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "--knob", help="Knob of the device, e.g. --set drive=7 (others at their defaults).")] = None,
    in_path: Annotated[Optional[Path], typer.Option("--in", "-i", help="Passage to play (WAV at the model's rate; default: the test signal's program material).")] = None,
    seconds: Annotated[float, typer.Option(help="Length of the default passage in seconds.")] = 12.0,
    switch: Annotated[float, typer.Option(help="ab.wav switches between A (device) and B (model) every this many seconds.")] = 4.0,
    peak_dbfs: PlayedPeak = None,
    checkpoint: Checkpoint = "best",
    seed: Annotated[int, typer.Option(help="Seed for the virtual rig (--backend sim).")] = 0,
    output_channel: OutputChannel = None,
    input_channel: SoundcardChannel = None,
    loopback_channel: SoundcardChannel = None,
    block_size: BlockSize = None,
    midi_port: MidiPort = None,
) -> None:
    """A/B a model against its device: the same passage through both, aligned, the null test and a listening file."""
    from fxcap.modeling.ab import ABConfig, run_ab

    config = ABConfig(switch_seconds=switch, passage_seconds=seconds, peak_dbfs=peak_dbfs, checkpoint=checkpoint)
    result = run_ab(model, backend, out, device=device, settings=list(set_ or []), passage=in_path, config=config, seed=seed,
                    output_channels=output_channel, input_channel=input_channel, loopback_channel=loopback_channel,
                    blocksize=block_size, midi_port=midi_port)
    for line in tables.ab_lines(result.to_dict()):
        tables.console.print(line, markup=False, highlight=False, soft_wrap=True)
    tables.console.print(f"wrote {out}/device.wav (A), model.wav (B), difference.wav, ab.wav and ab.json", markup=False, highlight=False,
                         soft_wrap=True)


def export_command(
    model: RunFolder,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.onnx / .json / .nam), or a folder (no suffix) for <run>.<suffix>; a .nam pack is a folder.")],
    format_: Annotated[str, typer.Option("--format", "-f", help="onnx (every scheme), rtneural (Concat, knobs in [-1, 1]), aidax (Concat, knobs 0..1 for AIDA-X) or nam (LSTM snapshot for Neural Amp Modeler).")] = "onnx",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="nam: knob value of the snapshot, e.g. --set drive=7 (others at their default).")] = None,
    at: Annotated[Optional[list[str]], typer.Option("--at", help="nam pack: one setting per file, e.g. --at drive=7,tone=4 (repeatable).")] = None,
    grid: Annotated[Optional[int], typer.Option("--grid", help="nam pack: this many evenly spaced values of every knob not fixed by --set.")] = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", help="nam metadata, e.g. --meta gear_type=pedal --meta tone_type=overdrive --meta input_level_dbu=12.")] = None,
    checkpoint: Checkpoint = "best",
    seconds: Annotated[float, typer.Option(help="Length of the self-test audio in seconds.")] = 3.0,
) -> None:
    """Export a trained model to ONNX, RTNeural / AIDA-X JSON or NAM .nam; every written file is self-tested against PyTorch."""
    from fxcap.modeling.export import export_run
    from fxcap.modeling.export.common import knob_input_lines

    console = tables.console
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
