"""Option types shared by several ``fxcap`` commands (``Annotated`` Typer options), so that one flag
reads and behaves the same wherever it appears.

A command names the type instead of repeating the ``typer.Option(...)`` block::

    def check(device: Device = None, rate: Rate = 48000, checkpoint: Checkpoint = "best") -> None: ...

Options that only one command has stay in that command's signature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# -- capture ---------------------------------------------------------------------------------------

DEVICE_HELP = ("Device profile: OD-3 (the default), LA-2A or a .toml file; for --backend plugin:NAME a .toml "
               "that narrows the plugin's knobs (default: its own parameters).")

Device = Annotated[Optional[str], typer.Option("--device", "-d", help=DEVICE_HELP)]
Rate = Annotated[int, typer.Option("--rate", "-r", help="Sample rate in Hz.")]
"""Sample rate in Hz."""
PlayedPeak = Annotated[Optional[float], typer.Option("--peak-dbfs", help="Peak level of the played signal (dBFS).")]
"""Peak level of the played capture signal in dBFS (default: the signal's own)."""

# The sound-card flags of ``fxcap check`` and ``fxcap record`` (see fxcap.capture.capture.soundcard_options).
OutputChannel = Annotated[Optional[str], typer.Option(help="Sound card: output channel(s) that play the signal, e.g. 1 or 1,2.")]
SoundcardChannel = Annotated[Optional[int], typer.Option(help="Sound card: 1-based channel (see `fxcap devices`).")]
BlockSize = Annotated[Optional[int], typer.Option(help="Sound card: frames per audio block (0: the host's choice).")]
MidiPort = Annotated[Optional[str], typer.Option(
    help="Sound card: MIDI output port; knobs with a midi_cc in the profile are set automatically.")]
SessionOut = Annotated[Optional[Path], typer.Option("--out", "-o", help="Session folder (default sessions/<device>-<time>).")]
SessionsDir = Annotated[Path, typer.Option(help="Where to look for the newest session.")]
ScoreBy = Annotated[Optional[str], typer.Option(
    help="Adaptive plan: 'committee' (where quick models disagree), 'output-change' (between the neighbouring settings "
         "that sound most different; no training) or 'leave-one-out' (between the settings the other takes predict worst). "
         "Default: as the session's last batch, else committee.")]

QuickSteps = Annotated[Optional[int], typer.Option(
    help="Adaptive plan: training steps of each quick model of the committee (default 300; fewer: quicker, rougher choices).")]

# -- datasets and models ---------------------------------------------------------------------------

DatasetLocation = Annotated[str, typer.Argument(help="Dataset folder or URI (s3://...).")]
RunFolder = Annotated[Path, typer.Option("--model", "-m", help="Run folder of a trained model.")]
Checkpoint = Annotated[str, typer.Option(help="best or last.")]
"""Which checkpoint of a run: ``best`` (lowest validation loss) or ``last``."""
KnobSettings = Annotated[Optional[list[str]], typer.Option("--set", help="Knob value, e.g. --set drive=7.")]

# The training settings of ``fxcap train`` and ``fxcap sweep`` (each overrides the preset's; see overrides()).
Preset = Annotated[str, typer.Option(help="'paper' (the paper's recipe), 'default' or 'quick' (minutes on a CPU).")]
Epochs = Annotated[Optional[int], typer.Option(help="Max epochs (overrides the preset).")]
StepsPerEpoch = Annotated[Optional[int], typer.Option(help="Optimizer steps per epoch (overrides the preset).")]
BatchSize = Annotated[Optional[int], typer.Option(
    help="Windows per step (overrides the preset and the scheme's own: DynamicHyper trains 8 in the default preset).")]
Window = Annotated[Optional[int], typer.Option(help="BPTT window in samples (default: the dataset's).")]
LearningRate = Annotated[Optional[float], typer.Option(help="Adam learning rate.")]


def given(**values: Any) -> dict[str, Any]:
    """The options the user gave: ``values`` without those left at ``None`` (e.g. preset overrides)."""
    return {name: value for name, value in values.items() if value is not None}
