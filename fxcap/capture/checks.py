"""Per-take and per-session quality checks.

:func:`check_take` looks at one take (raw recording, aligned output, alignment) and returns one
:class:`~fxcap.capture.session.CheckResult` per check. ``severity="error"`` results that did not
pass fail the take (the recorder re-takes it or stops); ``"warning"`` results are kept in the
manifest. Every message is one line that says what was seen and what to do.

Checks, in order:

* ``stream``: the backend reported xruns (input overflow / output underflow).
* ``sync``: the sync markers were found in the recording.
* ``input_clipping``: the played signal exceeds full scale or has flat tops (error); program peaks
  at or above ``input_hot_dbfs`` (warning; the markers are excluded).
* ``output_clipping``: the raw recording reaches ``clip_level`` or has flat-topped runs.
* ``silence``: the output is not above the noise floor (cable unplugged, device off), or the
  signal is lost for a stretch while loud input is played.
* ``dropouts``: runs of zeros or held samples where signal is expected (raw recording), and
  isolated discontinuities (spikes of the linear-prediction residual far above the local level
  that the played signal does not explain).
* ``noise_floor``: RMS of the aligned silent stretch in dBFS (played-signal scale).
* ``repeatability``: ESR between the two aligned validation segments (same input): the error
  floor any model could reach on this take is about half of it.
* ``latency_consistency``: the take's marker latency against earlier takes (buffer slip) or the
  calibration (stale calibration).
* ``drift``: clock drift (ppm); error if it differs from the calibration's (samples lost or
  inserted) or could not be removed; warning if large.

:func:`session_checks` looks across takes: latency and drift spread, and how much the device
changed between re-takes of the reference setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

from fxcap.capture.align import AlignConfig, Calibration, noise_floor_dbfs
from fxcap.capture.backends.base import RawTake
from fxcap.capture.dsp import lpc_residual
from fxcap.dsp.esr import esr
from fxcap.dsp.levels import amp_to_db, db_to_amp, power_to_db, rms_dbfs
from fxcap.capture.layout import TRAINABLE_KINDS, SignalLayout
from fxcap.capture.session import Alignment, CheckResult, TakeRecord


@dataclass
class CheckConfig:
    """Thresholds of the take and session checks (levels in dBFS, times in seconds).

    Attributes:
        input_hot_dbfs: program peak (markers excluded) at or above which ``input_clipping`` warns.
        clip_level: absolute sample value at or above which a recording counts as clipped.
        clip_run: this many identical consecutive samples near the peak count as a flat top.
        clip_run_fraction: "near the peak": at least this fraction of the recording's peak.
        silence_margin_db: the output must be this far above the noise floor.
        silence_abs_dbfs: output RMS below this is silence whatever the floor.
        loud_input_dbfs: played level (RMS over ``frame_s``) above which output is always expected.
        signal_lost_s: output at the noise floor for this long during loud input -> signal lost.
        frame_s: frame length of the level measurements (seconds).
        active_dbfs: played level above which signal is expected (dropout search).
        dropout_run: this many identical consecutive samples (zeros or held) is a dropout.
        discontinuity_ratio: prediction-residual spike over the local level that counts as a click.
        digital_silence_dbfs: a noise floor below this is digital silence (plugins, digital
            devices): runs of exact zeros then count as dropouts only where the signal is active.
        noise_floor_max_dbfs: noisier than this fails ``noise_floor``.
        repeatability_max_db: ESR between the validation copies worse than this fails.
        latency_tolerance_samples: largest change of the marker latency between takes.
        device_latency_max_s: largest latency the device may add to the calibration's.
        drift_tolerance_ppm: largest difference between a take's drift and the calibration's.
        drift_warn_ppm: drift larger than this warns (clocks not locked).
        drift_residual_max_samples: end-marker misalignment left after drift removal that fails.
        reference_drift_max_db: ESR between re-takes of the reference setting worse than this warns.
        output_clip_advice: what ``output_clipping`` tells the user to do; the capture engine sets
            the backend's own (:attr:`fxcap.capture.backends.base.Backend.clip_advice`).
    """

    input_hot_dbfs: float = -0.1
    clip_level: float = 0.999
    clip_run: int = 3
    clip_run_fraction: float = 0.9
    silence_margin_db: float = 10.0
    silence_abs_dbfs: float = -90.0
    loud_input_dbfs: float = -30.0
    signal_lost_s: float = 0.2
    frame_s: float = 0.02
    active_dbfs: float = -50.0
    dropout_run: int = 16
    discontinuity_ratio: float = 20.0
    digital_silence_dbfs: float = -140.0
    noise_floor_max_dbfs: float = -50.0
    repeatability_max_db: float = -20.0
    latency_tolerance_samples: float = 2.0
    device_latency_max_s: float = 0.01
    drift_tolerance_ppm: float = 5.0
    drift_warn_ppm: float = 100.0
    drift_residual_max_samples: float = 0.5
    reference_drift_max_db: float = -20.0
    output_clip_advice: str = "lower the device's output level or the interface's input gain, then re-take"


# -- helpers -------------------------------------------------------------------------------------
def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def _held_runs(x: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths (samples) of runs of at least ``min_len`` identical consecutive samples."""
    if len(x) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts, lengths = _runs(x[1:] == x[:-1])
    lengths = lengths + 1
    keep = lengths >= min_len
    return starts[keep], lengths[keep]


def _frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS level (dBFS) of consecutive frames of ``frame`` samples (last partial frame dropped)."""
    x = np.asarray(x, dtype=np.float64)
    count = len(x) // frame
    if count == 0:
        return np.zeros(0)
    return power_to_db(np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1))


def _trailing_power(x: np.ndarray, window: int) -> np.ndarray:
    """Mean square of ``x`` over the ``window`` samples ending at each sample."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(x, dtype=np.float64) ** 2)])
    idx = np.arange(1, len(c))
    return (c[idx] - c[np.maximum(idx - window, 0)]) / window


def _signal_slices(layout: SignalLayout) -> list[slice]:
    kinds = set(TRAINABLE_KINDS) | {"validation"}
    return [slice(r.start, r.stop) for r in layout.regions if r.kind in kinds]


def _raw_to_signal(index: np.ndarray | int, layout: SignalLayout, alignment: Alignment) -> np.ndarray:
    """Map raw-recording sample indices to signal sample positions with the take's own timing."""
    starts = layout.of_kind("sync_start")
    centre = (starts[0].start + starts[0].stop - 1) / 2.0 if starts else 0.0
    latency = alignment.extra.get("take_latency", alignment.latency_samples)
    ratio = 1.0 + alignment.drift_ppm * 1e-6
    return centre + (np.asarray(index, dtype=np.float64) - centre - latency) / ratio


def _floor_db(aligned: np.ndarray, layout: SignalLayout, calibration: Calibration | None) -> float | None:
    """The take's noise floor (dBFS, aligned scale): its silent stretch, else the calibration's."""
    floor = noise_floor_dbfs(aligned, layout, AlignConfig())
    if np.isfinite(floor):
        return float(floor)
    if calibration is not None and calibration.noise_floor_dbfs is not None:
        return float(calibration.noise_floor_dbfs)
    return None


def _result(name: str, passed: bool, value: float | None, unit: str, threshold: float | None, message: str,
            severity: str = "error") -> CheckResult:
    return CheckResult(
        name=name,
        passed=bool(passed),
        value=None if value is None or not np.isfinite(value) else float(value),
        unit=unit,
        threshold=threshold,
        message=message,
        severity=severity,
    )


# -- the checks ------------------------------------------------------------------------------------
def _check_stream(raw: RawTake) -> CheckResult:
    if raw.events:
        kinds = ", ".join(sorted(set(raw.events)))
        return _result("stream", False, len(raw.events), "events", 0,
                       f"audio stream xrun ({kinds}, {len(raw.events)} events): close other audio programs or raise "
                       "the buffer size, then re-take")
    return _result("stream", True, 0, "events", 0, "no xruns")


def _check_sync(alignment: Alignment) -> CheckResult:
    corr = min(alignment.extra.get("marker_corr_start", 0.0), alignment.extra.get("marker_corr_end", 0.0))
    if not alignment.extra.get("markers_found", False):
        return _result("sync", False, corr, "corr", None,
                       f"sync markers not found in the recording (correlation {corr:.2f}): check the cables, the "
                       "routing and the levels, then re-take")
    return _result("sync", True, corr, "corr", None, f"sync markers found (correlation {corr:.2f})")


def _check_input(raw: RawTake, layout: SignalLayout, config: CheckConfig) -> CheckResult:
    played = np.asarray(raw.played, dtype=np.float64)
    peak = float(np.max(np.abs(played))) if played.size else 0.0
    fs = raw.sample_rate
    if peak > 1.0:
        where = int(np.argmax(np.abs(played) > 1.0))
        return _result("input_clipping", False, amp_to_db(peak), "dBFS", 0.0,
                       f"played signal exceeds full scale ({amp_to_db(peak):+.2f} dBFS at {where / fs:.2f} s): "
                       "regenerate it with a lower --peak-dbfs")
    starts, lengths = _held_runs(played, config.clip_run)
    flat = [s for s, n in zip(starts, lengths) if abs(played[s]) >= config.clip_level]
    if flat:
        return _result("input_clipping", False, amp_to_db(peak), "dBFS", 0.0,
                       f"played signal is already clipped (flat top at {flat[0] / fs:.2f} s): use unclipped program "
                       "material or lower its level")
    mask = np.ones(len(played), dtype=bool)
    for region in layout.of_kind("sync_start") + layout.of_kind("sync_end"):
        mask[region.start : region.stop] = False
    program_peak = amp_to_db(np.max(np.abs(played[mask]))) if mask.any() else -240.0
    if program_peak >= config.input_hot_dbfs:
        return _result("input_clipping", False, program_peak, "dBFS", config.input_hot_dbfs,
                       f"played signal peaks at {program_peak:+.2f} dBFS: the converter may clip between samples; "
                       "lower --peak-dbfs", severity="warning")
    return _result("input_clipping", True, program_peak, "dBFS", config.input_hot_dbfs,
                   f"played signal peaks at {program_peak:+.1f} dBFS")


def output_clip_index(recorded: np.ndarray, config: CheckConfig) -> tuple[int, int] | None:
    """Where a recording clips: ``(raw sample index, number of flat-topped runs)``, ``None`` if it does not.

    Clipped means a sample at or above ``config.clip_level`` (runs 0), or runs of ``config.clip_run``
    identical samples near the recording's peak (an interface that clips below full scale).
    """
    rec = np.asarray(recorded, dtype=np.float64)
    mag = np.abs(rec)
    peak = float(mag.max()) if rec.size else 0.0
    if peak >= config.clip_level:
        return int(np.argmax(mag >= config.clip_level)), 0
    starts, _ = _held_runs(rec, config.clip_run)
    flat = [s for s in starts if mag[s] >= config.clip_run_fraction * peak and mag[s] > 0.05]
    return (int(flat[0]), len(flat)) if flat else None


def _check_output_clipping(raw: RawTake, layout: SignalLayout, alignment: Alignment,
                           config: CheckConfig) -> CheckResult:
    rec = np.asarray(raw.recorded, dtype=np.float64)
    peak = float(np.abs(rec).max()) if rec.size else 0.0
    advice = config.output_clip_advice
    clipped = output_clip_index(rec, config)
    if clipped is not None:
        index, runs = clipped
        where = _raw_to_signal(index, layout, alignment) / raw.sample_rate
        message = (f"recording clipped at {where:.2f} s (peak {amp_to_db(peak):+.2f} dBFS): {advice}" if runs == 0 else
                   f"recording is flat-topped at {where:.2f} s ({runs} runs at {amp_to_db(peak):+.2f} dBFS, "
                   f"clipped below full scale): {advice}")
        return _result("output_clipping", False, amp_to_db(peak), "dBFS", amp_to_db(config.clip_level), message)
    return _result("output_clipping", True, amp_to_db(peak), "dBFS", amp_to_db(config.clip_level),
                   f"recording peaks at {amp_to_db(peak):+.1f} dBFS")


def _check_silence(raw: RawTake, aligned: np.ndarray, layout: SignalLayout, floor_db: float | None,
                   config: CheckConfig) -> CheckResult:
    slices = _signal_slices(layout)
    if not slices:
        return _result("silence", True, None, "dB", config.silence_margin_db,
                       "not measured: the signal layout has no program regions", severity="warning")
    level = rms_dbfs(np.concatenate([aligned[s] for s in slices]))
    floor = floor_db if floor_db is not None else -240.0
    margin = level - floor
    if level < config.silence_abs_dbfs or margin < config.silence_margin_db:
        return _result("silence", False, margin, "dB", config.silence_margin_db,
                       f"no signal: output is {level:.1f} dBFS, {margin:.1f} dB above the noise floor; check the "
                       "cables, that the device is on and its level is not at zero, then re-take")
    frame = max(1, int(config.frame_s * raw.sample_rate))
    played_db = _frame_db(raw.played, frame)
    out_db = _frame_db(aligned, frame)
    lost = (played_db > config.loud_input_dbfs) & (out_db < floor + 3.0)
    # A sine sweep's top (or bottom) octaves may legitimately fall below the floor: a dark tone
    # control or a low-pass device removes them. Only broadband input must always come through.
    for region in layout.of_kind("sweep"):
        lost[region.start // frame : -(-region.stop // frame)] = False
    starts, lengths = _runs(lost)
    long = lengths * frame >= config.signal_lost_s * raw.sample_rate
    if long.any():
        i = int(np.flatnonzero(long)[0])
        t0, t1 = starts[i] * frame / raw.sample_rate, (starts[i] + lengths[i]) * frame / raw.sample_rate
        return _result("silence", False, margin, "dB", config.silence_margin_db,
                       f"signal lost from {t0:.2f} s to {t1:.2f} s while input was playing: check the cables and "
                       "connectors, then re-take")
    return _result("silence", True, margin, "dB", config.silence_margin_db,
                   f"output {level:.1f} dBFS, {margin:.1f} dB above the noise floor")


def _block_level(x: np.ndarray, block: int, span: int) -> np.ndarray:
    """RMS of consecutive blocks of ``x``, median-filtered over ``span`` blocks (robust to one spike)."""
    count = len(x) // block
    level = np.sqrt(np.mean(np.asarray(x[: count * block], dtype=np.float64).reshape(count, block) ** 2, axis=1))
    return median_filter(level, span, mode="nearest")


def _neighbour_peaks(mag: np.ndarray, block: int, reach: int) -> np.ndarray:
    """Per block: the largest ``mag`` in the blocks 2..``reach`` away on either side (not itself or
    its direct neighbours). Edges that recur (a hard-clipped wave's corners) have peers there; a click
    does not."""
    count = len(mag) // block
    peaks = mag[: count * block].reshape(count, block).max(axis=1)
    left = np.concatenate([np.zeros(2), peaks[:-2]]) if count > 2 else np.zeros(count)
    right = np.concatenate([peaks[2:], np.zeros(2)]) if count > 2 else np.zeros(count)
    width = max(1, reach - 1)
    # maximum over blocks i-reach..i-2 (left) and i+2..i+reach (right)
    left_max = maximum_filter1d(left, width, origin=(width - 1) // 2, mode="constant")
    right_max = maximum_filter1d(right, width, origin=-(width // 2), mode="constant")
    return np.maximum(left_max, right_max)


def _spike_ratio(residual: np.ndarray, signal: np.ndarray, floor: float, relative_db: float = -60.0,
                 block: int = 64, span: int = 9, reach: int = 0) -> np.ndarray:
    """``|residual|`` over a robust local level of the residual.

    The level is never below ``floor`` (the noise floor) nor ``relative_db`` under the local level
    of ``signal``: prediction errors far below the music itself are not audible clicks. With
    ``reach`` > 0 blocks, it is also never below half the largest residual peak of the surrounding
    blocks (:func:`_neighbour_peaks`): the sharp corners a distortion pedal makes recur with the
    waveform, whereas a click is a lone spike.
    """
    mag = np.abs(residual)
    count = len(mag) // block
    if count == 0:
        return np.zeros_like(mag)
    level = np.maximum(_block_level(residual, block, span), floor)
    level = np.maximum(level, db_to_amp(relative_db) * _block_level(signal, block, span))
    if reach > 0:
        level = np.maximum(level, 0.5 * _neighbour_peaks(mag, block, reach))
    per_sample = np.repeat(level, block)
    per_sample = np.concatenate([per_sample, np.full(len(mag) - len(per_sample), level[-1])])
    return mag / per_sample


def _check_dropouts(raw: RawTake, aligned: np.ndarray, layout: SignalLayout, alignment: Alignment,
                    floor_db: float | None, clipped: bool, config: CheckConfig) -> CheckResult:
    fs = raw.sample_rate
    advice = "check cables and connectors (and the buffer size), then re-take"
    played = np.asarray(raw.played, dtype=np.float64)
    rec = np.asarray(raw.recorded, dtype=np.float64)
    # 1) zeros or held samples in the raw recording where the played signal is active
    active = _trailing_power(played, 256) > db_to_amp(config.active_dbfs) ** 2
    peak = float(np.max(np.abs(rec))) if rec.size else 0.0
    starts, lengths = _held_runs(rec, config.dropout_run)
    for start, length in zip(starts, lengths):
        if peak > 0 and abs(rec[start]) >= config.clip_run_fraction * peak:
            continue  # flat tops are output clipping
        pos = np.round(_raw_to_signal(np.arange(start, start + length), layout, alignment)).astype(np.int64)
        pos = pos[(pos >= 0) & (pos < len(active))]
        # Exact zeros from a rig that otherwise has a noise floor are a dropout even where the
        # signal is quiet: analogue noise never holds at 0.0.
        noisy_rig = floor_db is not None and floor_db > config.digital_silence_dbfs and rec[start] == 0.0
        if pos.size and (noisy_rig or active[pos].mean() >= 0.5):
            what = "zeros" if rec[start] == 0 else f"held at {rec[start]:.4f}"
            return _result("dropouts", False, pos[0] / fs, "s", None,
                           f"dropout at {pos[0] / fs:.2f} s ({length} samples {what}): {advice}")
    if clipped:  # clipping corners look like clicks; output_clipping already fails the take
        return _result("dropouts", True, None, "s", None,
                       "no dropouts; click search skipped because the recording clips", severity="warning")
    # 2) isolated discontinuities: prediction-residual spikes the played signal does not explain
    aligned64 = np.asarray(aligned, dtype=np.float64)
    floor = 3.0 * db_to_amp(floor_db) if floor_db is not None else 0.0
    reach = max(3, int(0.04 * fs) // 64)  # peers within about 40 ms
    ratio = _spike_ratio(lpc_residual(aligned64), aligned64, max(floor, 1e-9), reach=reach)
    own = _spike_ratio(lpc_residual(played), played, 1e-9) > 5.0
    shift = int(round(alignment.extra.get("latency_offset", 0.0)))
    guard = max(1, int(0.005 * fs))
    explained = maximum_filter1d(np.roll(own, shift).astype(np.uint8), 2 * guard + 1) > 0
    ratio[explained] = 0.0
    worst = int(np.argmax(ratio)) if ratio.size else 0
    value = float(ratio[worst]) if ratio.size else 0.0
    if value > config.discontinuity_ratio:
        return _result("dropouts", False, worst / fs, "s", None,
                       f"discontinuity (click) at {worst / fs:.2f} s, {value:.0f}x the local level: {advice}")
    return _result("dropouts", True, None, "s", None, f"no dropouts (largest click ratio {value:.1f})")


def _check_noise_floor(aligned: np.ndarray, layout: SignalLayout, config: CheckConfig) -> CheckResult:
    floor = noise_floor_dbfs(aligned, layout, AlignConfig())
    if not np.isfinite(floor):
        return _result("noise_floor", True, None, "dBFS", config.noise_floor_max_dbfs,
                       "not measured: the signal layout has no silent stretch", severity="warning")
    if floor > config.noise_floor_max_dbfs:
        return _result("noise_floor", False, floor, "dBFS", config.noise_floor_max_dbfs,
                       f"noise floor {floor:.1f} dBFS is above {config.noise_floor_max_dbfs:.0f} dBFS: look for hum "
                       "(ground loop), a noisy cable or too much interface gain, then re-take")
    return _result("noise_floor", True, floor, "dBFS", config.noise_floor_max_dbfs, f"noise floor {floor:.1f} dBFS")


def repeatability_esr(aligned: np.ndarray, layout: SignalLayout) -> float | None:
    """ESR (linear) of the second validation copy against the first; None when the layout has not two."""
    copies = sorted(layout.of_kind("validation"), key=lambda r: r.start)
    if len(copies) < 2:
        return None
    a, b = copies[0], copies[1]
    n = min(a.length, b.length)
    return esr(aligned[b.start : b.start + n], aligned[a.start : a.start + n])  # second pass against the first


def _check_repeatability(aligned: np.ndarray, layout: SignalLayout, config: CheckConfig) -> CheckResult:
    value = repeatability_esr(aligned, layout)
    if value is None:
        return _result("repeatability", True, None, "dB", config.repeatability_max_db,
                       "not measured: the signal layout has no pair of validation segments", severity="warning")
    db = power_to_db(value)
    detail = f"ESR {db:.1f} dB ({value:.2e}) between the validation copies; best reachable about {db - 3.0:.1f} dB"
    if db > config.repeatability_max_db:
        return _result("repeatability", False, db, "dB", config.repeatability_max_db,
                       f"device not repeatable: {detail}; let it warm up, check for noise, hum or a loose "
                       "connection, then re-take")
    return _result("repeatability", True, db, "dB", config.repeatability_max_db, detail)


def _check_latency(alignment: Alignment, calibration: Calibration | None, previous: Sequence[Alignment],
                   sample_rate: int, config: CheckConfig) -> CheckResult:
    tol = config.latency_tolerance_samples
    if not alignment.extra.get("markers_found", False):
        return _result("latency_consistency", True, None, "samples", tol,
                       "not measured: sync markers not found", severity="warning")
    offset = float(alignment.extra.get("latency_offset", 0.0))
    earlier = [float(a.extra["latency_offset"]) for a in previous
               if a.extra.get("markers_found", True) and "latency_offset" in a.extra]
    if earlier:
        jump = offset - float(np.median(earlier))
        if abs(jump) > tol:
            return _result("latency_consistency", False, jump, "samples", tol,
                           f"latency jumped by {jump:+.2f} samples against earlier takes (buffer slip): re-take; "
                           "if it repeats, raise the buffer size")
        return _result("latency_consistency", True, jump, "samples", tol,
                       f"latency within {abs(jump):.2f} samples of earlier takes")
    if calibration is not None:
        limit = config.device_latency_max_s * sample_rate
        if abs(offset) > limit:
            return _result("latency_consistency", False, offset, "samples", limit,
                           f"markers arrive {offset:+.1f} samples ({offset / sample_rate * 1e3:+.2f} ms) away from the "
                           "calibration's: re-run the calibration (the interface latency changed)")
    return _result("latency_consistency", True, offset, "samples", tol,
                   f"marker latency {offset:+.2f} samples from the calibration's")


def _check_drift(alignment: Alignment, calibration: Calibration | None, config: CheckConfig) -> CheckResult:
    drift = float(alignment.drift_ppm)
    if not alignment.extra.get("markers_found", False):
        return _result("drift", True, None, "ppm", config.drift_warn_ppm,
                       "not measured: sync markers not found", severity="warning")
    if calibration is not None and abs(drift - calibration.drift_ppm) > config.drift_tolerance_ppm:
        return _result("drift", False, drift, "ppm", config.drift_tolerance_ppm,
                       f"clock drift {drift:+.2f} ppm differs from the calibration's {calibration.drift_ppm:+.2f} ppm: "
                       "samples were lost or inserted (or the clock changed); re-take")
    residual = alignment.extra.get("residual_samples")
    if residual is not None and abs(residual) > config.drift_residual_max_samples:
        return _result("drift", False, drift, "ppm", config.drift_warn_ppm,
                       f"end marker still {residual:+.2f} samples off after drift removal: the clock is unstable; "
                       "re-take (lock the interface to one clock)")
    corrected = "corrected" if alignment.drift_corrected else "below threshold, not corrected"
    if abs(drift) > config.drift_warn_ppm:
        return _result("drift", False, drift, "ppm", config.drift_warn_ppm,
                       f"clock drift {drift:+.1f} ppm ({corrected}): lock playback and recording to one clock",
                       severity="warning")
    return _result("drift", True, drift, "ppm", config.drift_warn_ppm, f"clock drift {drift:+.2f} ppm ({corrected})")


def check_take(
    raw: RawTake,
    aligned: np.ndarray,
    layout: SignalLayout,
    alignment: Alignment,
    calibration: Calibration | None = None,
    config: CheckConfig | None = None,
    previous: Sequence[Alignment] = (),
) -> list[CheckResult]:
    """Run every per-take check; see the module docstring for the list.

    Args:
        raw: the take as recorded (played and recorded arrays, stream events).
        aligned: the aligned output from :func:`fxcap.capture.align.align_take`.
        layout: the signal layout.
        alignment: the alignment of this take.
        calibration: the session's calibration (None: no calibration-relative checks).
        config: thresholds.
        previous: alignments of the session's earlier kept takes (latency consistency).
    """
    config = config or CheckConfig()
    aligned = np.asarray(aligned)
    if len(aligned) != layout.length:
        raise ValueError(f"aligned output has {len(aligned)} samples, the layout {layout.length}")
    floor_db = _floor_db(aligned, layout, calibration)
    output_clipping = _check_output_clipping(raw, layout, alignment, config)
    return [
        _check_stream(raw),
        _check_sync(alignment),
        _check_input(raw, layout, config),
        output_clipping,
        _check_silence(raw, aligned, layout, floor_db, config),
        _check_dropouts(raw, aligned, layout, alignment, floor_db, not output_clipping.passed, config),
        _check_noise_floor(aligned, layout, config),
        _check_repeatability(aligned, layout, config),
        _check_latency(alignment, calibration, previous, raw.sample_rate, config),
        _check_drift(alignment, calibration, config),
    ]


def reference_drift_db(first: np.ndarray, other: np.ndarray, layout: SignalLayout | None = None) -> float:
    """ESR (dB) of a re-take of the reference setting against its first take, over the trainable
    and validation regions of ``layout`` (the whole signal without one): how much the device changed."""
    first = np.asarray(first, dtype=np.float64)
    slices = _signal_slices(layout) if layout is not None else [slice(0, len(first))]

    def pick(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(x, dtype=np.float64)[s] for s in slices])

    return float(power_to_db(esr(pick(other), pick(first))))


def _spread_check(name: str, values: list[float], unit: str, tolerance: float, what: str, advice: str) -> list[CheckResult]:
    """A warning-level check that ``values`` (one per take) span at most ``tolerance``; none for < 2 takes."""
    if len(values) < 2:
        return []
    spread = max(values) - min(values)
    ok = spread <= tolerance
    message = f"{what} varies by {spread:.2f} {unit} across takes" + ("" if ok else f": {advice}")
    return [_result(name, ok, spread, unit, tolerance, message, severity="warning")]


def session_checks(
    records: Sequence[TakeRecord],
    reference_outputs: Mapping[str, np.ndarray] | None = None,
    layout: SignalLayout | None = None,
    config: CheckConfig | None = None,
) -> list[CheckResult]:
    """Checks across the kept takes of a session.

    * ``kept_takes_pass``: every kept take passed its error checks (a failing take is never kept).
    * ``latency_spread``: spread of the takes' marker latency offsets (warning above tolerance).
    * ``drift_spread``: spread of the takes' clock drift (warning above ``drift_tolerance_ppm``).
    * ``reference_drift``: ESR of each re-take of the reference setting against the first one,
      over the trainable and validation regions when ``layout`` is given (warning when worse than
      ``reference_drift_max_db``: the device changed during the session). Needs
      ``reference_outputs``: take id -> aligned output, for the reference takes in recording order.
    """
    config = config or CheckConfig()
    results: list[CheckResult] = []
    failing = [r.take_id for r in records if not r.passed]
    results.append(_result(
        "kept_takes_pass", not failing, len(failing), "takes", 0,
        f"takes {', '.join(failing)} failed their checks but are in the session: re-take or remove them"
        if failing else f"all {len(records)} kept takes passed their checks",
    ))
    offsets = [float(r.alignment.extra["latency_offset"]) for r in records if "latency_offset" in r.alignment.extra]
    results += _spread_check("latency_spread", offsets, "samples", config.latency_tolerance_samples, "marker latency",
                             "the interface slipped buffers or the device's delay depends on its knobs; "
                             "inspect the takes with the largest offsets")
    results += _spread_check("drift_spread", [float(r.alignment.drift_ppm) for r in records], "ppm",
                             config.drift_tolerance_ppm, "clock drift",
                             "the clocks are unstable; lock playback and recording to one clock")
    if reference_outputs:
        ids = [r.take_id for r in records if r.is_reference and r.take_id in reference_outputs]
        ids += [k for k in reference_outputs if k not in ids]
        if len(ids) >= 2:
            first = reference_outputs[ids[0]]
            values = [(reference_drift_db(first, reference_outputs[i], layout), i) for i in ids[1:]]
            worst_db, worst_id = max(values)
            ok = worst_db <= config.reference_drift_max_db
            results.append(_result(
                "reference_drift", ok, worst_db, "dB", config.reference_drift_max_db,
                f"reference re-takes differ from {ids[0]} by up to ESR {worst_db:.1f} dB ({worst_id})"
                + ("" if ok else ": the device changed during the session (warm-up, battery, knob moved); "
                                 "let it settle and re-record the affected takes"),
                severity="warning",
            ))
    return results
