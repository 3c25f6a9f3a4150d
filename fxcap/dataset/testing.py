"""Testing helpers: small, fully synthetic capture sessions (in the spirit of lhotse's ``testing`` module).

:func:`make_dummy_session` writes a real :class:`~fxcap.capture.session.Session` folder without any
audio hardware or capture code: a synthetic test signal with every region kind of a real one
(sync markers, calibration tone, silence, two identical validation copies, sweep, noise, program
material), and for every knob setting of a grid the output of :func:`dummy_device`, a small stateful
nonlinear "pedal" whose every knob changes the sound. Takes carry plausible alignment figures and
check results (noise floor, repeatability ESR measured on the synthetic output). Everything is
seeded: the same arguments give the same samples, so two sessions made with the same ``seed``,
``sample_rate`` and ``seconds`` share their signal (sha256) and can be combined into one dataset.

Example::

    from fxcap.dataset.testing import make_dummy_session
    session = make_dummy_session(tmp_path / "s1", knob_grid={"drive": [0, 5, 10]}, seconds=4.0)
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.signal import lfilter

from fxcap.capture.backend_details import BackendDetails
from fxcap.capture.layout import Region, SignalLayout, TestSignal, audio_sha256
from fxcap.capture.markers import sync_marker
from fxcap.capture.profiles import OD3, DeviceProfile, KnobValue
from fxcap.capture.session import Alignment, CheckResult, Session, TakeRecord
from fxcap.dsp.esr import esr as shared_esr
from fxcap.io import atomic_write_wav

DUMMY_SIGNAL_VERSION = "dummy-1"

DUMMY_REGION_PLAN: tuple[tuple[str, str, float], ...] = (
    ("sync_start", "sync_start", 0.05),
    ("gap_1", "gap", 0.01),
    ("calibration", "calibration", 0.05),
    ("gap_2", "gap", 0.01),
    ("silence", "silence", 0.05),
    ("validation_a", "validation", 0.05),
    ("gap_3", "gap", 0.01),
    ("sweep", "sweep", 0.15),
    ("noise", "noise", 0.10),
    ("program_notes", "program", 0.20),
    ("program_chords", "program", 0.20),
    ("gap_4", "gap", 0.01),
    ("validation_b", "validation", 0.05),
    ("gap_5", "gap", 0.01),
    ("sync_end", "sync_end", 0.05),
)
"""``(name, kind, fraction of the signal)`` of every region of the dummy signal, in order. 65 % is trainable."""

FIXED_TIME = "2000-01-01T00:00:00+00:00"


def _fade(audio: np.ndarray, samples: int) -> np.ndarray:
    samples = min(samples, len(audio) // 2)
    if samples > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(samples) / samples)
        audio[:samples] *= ramp
        audio[-samples:] *= ramp[::-1]
    return audio


def _tones(n: int, rate: int, rng: np.random.Generator, voices: int, amplitude: float) -> np.ndarray:
    """Decaying harmonic notes (``voices`` at a time) of random pitch and length."""
    out = np.zeros(n)
    position = 0
    while position < n:
        length = min(n - position, int(rng.uniform(0.08, 0.3) * rate))
        t = np.arange(length) / rate
        note = np.zeros(length)
        for _ in range(voices):
            f0 = 55.0 * 2 ** (rng.integers(0, 48) / 12)
            for harmonic in (1, 2, 3):
                if f0 * harmonic < 0.45 * rate:
                    note += np.sin(2 * np.pi * f0 * harmonic * t + rng.uniform(0, 2 * np.pi)) / harmonic
        note *= np.exp(-t * rng.uniform(3, 12)) * rng.uniform(0.3, 1.0)
        out[position:position + length] = _fade(note, int(0.002 * rate))
        position += length
    peak = np.max(np.abs(out)) or 1.0
    return out / peak * amplitude


def _region_bounds(total: int) -> list[tuple[str, str, int, int]]:
    lengths = [int(fraction * total) for _, _, fraction in DUMMY_REGION_PLAN]
    names = [name for name, _, _ in DUMMY_REGION_PLAN]
    lengths[names.index("program_chords")] += total - sum(lengths)
    bounds, start = [], 0
    for (name, kind, _), length in zip(DUMMY_REGION_PLAN, lengths):
        bounds.append((name, kind, start, start + length))
        start += length
    return bounds


def make_dummy_signal(sample_rate: int = 48000, seconds: float = 4.0, seed: int = 0) -> TestSignal:
    """A synthetic capture signal of ``seconds`` (s) at ``sample_rate`` (Hz) with every region kind.

    Peak about 0.9 (-1 dBFS); the two validation copies hold identical samples.
    """
    total = int(round(seconds * sample_rate))
    if total < sample_rate // 2:
        raise ValueError(f"a dummy signal needs at least 0.5 s, not {seconds} s")
    rng = np.random.default_rng(seed)
    audio = np.zeros(total)
    regions: list[Region] = []
    validation = None
    for name, kind, start, stop in _region_bounds(total):
        n = stop - start
        t = np.arange(n) / sample_rate
        if kind in ("sync_start", "sync_end"):
            part = 0.5 * sync_marker(sample_rate, seconds=n / sample_rate)[:n]
        elif kind == "calibration":
            part = _fade(0.25 * np.sin(2 * np.pi * 1000.0 * t), int(0.005 * sample_rate))
        elif kind == "sweep":
            f0, f1, duration = 20.0, 0.45 * sample_rate, n / sample_rate
            k = np.log(f1 / f0)
            part = _fade(0.5 * np.sin(2 * np.pi * f0 * duration / k * (np.exp(t / duration * k) - 1)), int(0.005 * sample_rate))
        elif kind == "noise":
            part = _fade(np.clip(0.2 * rng.standard_normal(n), -0.9, 0.9), int(0.005 * sample_rate))
        elif kind == "program":
            voices = 1 if name == "program_notes" else 3
            part = _tones(n, sample_rate, rng, voices, amplitude=0.9 if voices == 1 else 0.7)
            if voices == 3:  # level steps: quiet, medium and loud thirds
                part *= np.repeat([0.1, 0.4, 1.0], int(np.ceil(n / 3)))[:n]
        elif kind == "validation":
            if validation is None:
                validation = _tones(n, sample_rate, rng, 2, amplitude=0.8)
            part = validation[:n]
        else:  # silence, gap
            part = np.zeros(n)
        audio[start:stop] = part
        regions.append(Region(name=name, kind=kind, start=start, stop=stop))
    audio32 = audio.astype(np.float32)
    peak = float(np.max(np.abs(audio32)))
    layout = SignalLayout(
        version=DUMMY_SIGNAL_VERSION,
        sample_rate=sample_rate,
        length=total,
        peak_dbfs=float(20 * np.log10(peak)),
        preset="dummy",
        regions=regions,
        sha256=audio_sha256(audio32),
        source="fxcap.dataset.testing",
        extra={"seed": seed},
    )
    return TestSignal(audio=audio32, layout=layout)


def dummy_device(x: np.ndarray, knobs_normalized: Sequence[float], sample_rate: int) -> np.ndarray:
    """The dummy pedal: ``level * lowpass(tanh(gain * x))``, float32, same length as ``x``.

    With ``c`` the knob values normalized to [-1, 1] in profile order: the last knob sets the gain
    (1x .. 31.6x, i.e. 0 .. 30 dB), the one before it the one-pole low-pass (pole 0.95 .. 0.05: dark ..
    bright), the first (with three or more knobs) the output level (-6 .. +6 dB, so outputs may exceed
    full scale). Stateful over the whole array (the filter remembers), like a real device.
    """
    c = [float(v) for v in knobs_normalized]
    drive = c[-1] if c else 0.0
    tone = c[-2] if len(c) >= 2 else 0.0
    level = c[0] if len(c) >= 3 else 0.0
    gain = 10 ** ((drive + 1.0) * 0.75)
    pole = 0.05 + 0.9 * (1.0 - (tone + 1.0) / 2.0)
    shaped = np.tanh(gain * np.asarray(x, dtype=np.float64))
    filtered = lfilter([1.0 - pole], [1.0, -pole], shaped)
    # Normalise the low-pass so that every setting keeps about the same loudness at 1 kHz.
    w = 2 * np.pi * 1000.0 / sample_rate
    dc_to_1k = abs((1.0 - pole) / (1.0 - pole * np.exp(-1j * w)))
    return (filtered / dc_to_1k * 0.7 * 10 ** (6.0 * level / 20.0)).astype(np.float32)


def default_knob_grid(profile: DeviceProfile) -> dict[str, list[KnobValue]]:
    """The last two knobs of ``profile`` at their extremes (switches: every value): 4 takes for OD-3 and LA-2A."""
    grid: dict[str, list[KnobValue]] = {}
    for knob in profile.knobs[-2:]:
        grid[knob.name] = list(knob.values) if knob.values is not None else [knob.minimum, knob.maximum]
    return grid


def _settings(profile: DeviceProfile, knob_grid: Mapping[str, Iterable[KnobValue]]) -> list[dict[str, KnobValue]]:
    names = [profile.knob(name).name for name in knob_grid]
    values = [list(v) for v in knob_grid.values()]
    return [profile.complete(dict(zip(names, combo))) for combo in itertools.product(*values)]


def make_dummy_session(
    root: str | Path,
    device_profile: DeviceProfile = OD3,
    knob_grid: Mapping[str, Iterable[KnobValue]] | None = None,
    sample_rate: int = 48000,
    seconds: float = 4.0,
    seed: int = 0,
    *,
    failed_takes: Iterable[int] = (),
    backend: str = "dummy",
    noise_dbfs: float = -90.0,
) -> Session:
    """Write a complete synthetic session folder at ``root`` and return it.

    Args:
        root: the session folder (must not hold a session yet).
        device_profile: the knobs (OD-3 by default); the sound comes from :func:`dummy_device`.
        knob_grid: ``{knob: [values]}``, one take per combination (cartesian product, in the given
            order); other knobs stay at their defaults. Default: :func:`default_knob_grid`.
        sample_rate: Hz. seconds: length of the signal (s), at least 0.5.
        seed: seeds the signal (same seed -> same signal sha256) and, offset by the take index, each
            take's noise and latency.
        failed_takes: indexes (0-based) of takes whose ``dropouts`` check fails: listed in the manifest
            but not ``passed``, as a capture keeps them for the record.
        backend: the backend name written in the manifest.
        noise_dbfs: RMS level (dBFS) of the rig noise added to every take's output.
    """
    profile = device_profile
    signal = make_dummy_signal(sample_rate, seconds, seed)
    layout = signal.layout
    grid = knob_grid if knob_grid is not None else default_knob_grid(profile)
    settings = _settings(profile, grid)
    failed = set(failed_takes)
    session = Session.create(
        root,
        device=profile,
        backend=BackendDetails(backend, sample_rate=sample_rate, device=profile.name),
        signal_audio=signal.audio,
        layout=layout,
        plan={"kind": "grid", "settings": settings, "order": "as-listed", "reference_every": 0,
              "knob_grid": {k: list(v) for k, v in grid.items()}},
    )
    rig_latency = 48
    calibration_raw = np.concatenate([np.zeros(rig_latency, np.float32), signal.audio])
    atomic_write_wav(session.root / "calibration" / "raw.wav", calibration_raw, sample_rate)
    session.manifest.calibration = {"file": "calibration/raw.wav", "latency_samples": float(rig_latency), "gain_db": 0.0}

    silence = layout.region("silence")
    val_a, val_b = layout.region("validation_a"), layout.region("validation_b")
    for index, knobs in enumerate(settings):
        rng = np.random.default_rng([seed, index + 1])
        normalized = profile.normalize(knobs)
        clean = dummy_device(signal.audio, [normalized[k.name] for k in profile.knobs], sample_rate)
        aligned = (clean + rng.standard_normal(len(clean)) * 10 ** (noise_dbfs / 20)).astype(np.float32)
        latency = int(rng.integers(32, 256))
        drift = float(rng.uniform(-2.0, 2.0))
        raw = np.concatenate([(rng.standard_normal(latency) * 10 ** (noise_dbfs / 20)).astype(np.float32), aligned])
        floor = float(20 * np.log10(np.sqrt(np.mean(aligned[silence.start:silence.stop].astype(np.float64) ** 2)) + 1e-20))
        esr = shared_esr(aligned[val_b.start:val_b.stop], aligned[val_a.start:val_a.stop])
        peak = float(np.max(np.abs(raw)))
        checks = [
            CheckResult("clipping", True, float(20 * np.log10(peak + 1e-20)), "dBFS", None, "no clipped runs"),
            CheckResult("noise_floor", True, floor, "dBFS", -60.0, f"noise floor {floor:.1f} dBFS"),
            CheckResult("repeatability", True, esr, "ESR", 0.01, f"validation copies differ by ESR {esr:.2e}"),
            CheckResult("dropouts", index not in failed, 0.0 if index not in failed else 3.0, "", 0.0,
                        "3 dropouts found" if index in failed else "no dropouts"),
        ]
        take_id = f"take-{index + 1:04d}"
        record = TakeRecord(
            take_id=take_id,
            index=index,
            knobs=knobs,
            knobs_normalized=normalized,
            alignment=Alignment(
                latency_samples=float(latency + rig_latency),
                gain_db=0.0,
                polarity=1,
                drift_ppm=drift,
                drift_corrected=False,
                marker_latency_start=float(latency + rig_latency),
                marker_latency_end=float(latency + rig_latency) + drift * 1e-6 * len(aligned),
            ),
            checks=checks,
            output_file=f"takes/{take_id}/output.wav",
            raw_file=f"takes/{take_id}/raw.wav",
            started_at=FIXED_TIME,
            finished_at=FIXED_TIME,
            backend_info={"seed": seed},
        )
        session.add_take(record, aligned, raw)
    session.manifest.status = "complete"
    session.save()
    return session

