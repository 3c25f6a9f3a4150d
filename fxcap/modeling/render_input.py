"""What ``fxcap render`` checks about its input and output before and while it renders.

* ``--block`` must be a positive number of samples (0 never ends);
* ``--out`` must not be the input file (also through another spelling, a symbolic or a hard link):
  the dry file would be overwritten;
* a multichannel input needs ``--channel N`` (that channel) or ``--mix`` (the average of all);
* every input sample must be finite: the first NaN or infinity stops the render with its position,
  and nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from fxcap.errors import ModelError


def check_block(block: int) -> int:
    """``block`` as an int, or a one-line error when it is not a positive number of samples."""
    if not isinstance(block, (int, np.integer)) or block < 1:
        raise ModelError(f"--block must be a positive number of samples (e.g. 65536), not {block!r}")
    return int(block)


def check_not_input(in_path: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """Refuse an output that is the input file itself (same path, link or other spelling)."""
    same = Path(in_path).resolve() == Path(out_path).resolve()
    if not same and os.path.exists(out_path) and os.path.exists(in_path):
        same = os.path.samefile(in_path, out_path)
    if same:
        raise ModelError(f"--out {out_path} is the input file {in_path}; it would be overwritten: choose another --out")


def channel_picker(path: str | os.PathLike, channels: int, channel: int | None, mix: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a ``(frames, channels)`` block to the mono signal to render.

    Mono files need nothing; a multichannel file needs ``channel`` (1-based) or ``mix`` (one line otherwise).
    """
    if channel is not None and mix:
        raise ModelError("give either --channel N or --mix, not both")
    if channel is not None and not 1 <= channel <= channels:
        raise ModelError(f"{path} has {channels} channel(s); --channel {channel} does not exist (channels are 1..{channels})")
    if mix:
        return lambda block: block.mean(axis=1, dtype=np.float32)
    if channel is not None:
        return lambda block: block[:, channel - 1]
    if channels > 1:
        raise ModelError(f"{path} has {channels} channels; choose one with --channel N (1..{channels}) or render their average with --mix")
    return lambda block: block[:, 0]


def check_finite(samples: np.ndarray, start: int, sample_rate: int, path: str | os.PathLike) -> None:
    """Raise a one-line error at the first NaN or infinite sample (``start``: index of ``samples[0]`` in the file)."""
    bad = np.flatnonzero(~np.isfinite(samples))
    if len(bad):
        index = start + int(bad[0])
        raise ModelError(
            f"{path}: sample {index} (at {index / sample_rate:.3f} s) is {samples[bad[0]]}; nothing was written: repair "
            "the input (e.g. re-export it) and render again"
        )
