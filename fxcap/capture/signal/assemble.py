"""Assembly of the capture signal: regions laid end to end (:func:`generate_signal`), or the same
frame around the user's own program material (:func:`wrap_program`)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from fxcap.capture.layout import Region, SignalLayout, TestSignal, audio_sha256
from fxcap.capture.markers import MARKER_SECONDS, sync_marker
from fxcap.capture.signal.config import (
    CALIBRATION_HZ, CALIBRATION_LEVEL_DB, FADE_SECONDS, PRESETS, SIGNAL_VERSION, SWEEP_F1, SignalConfig, _check_peak, _Preset,
    check_sample_rate, sweep_stop_hz,
)
from fxcap.capture.signal.instruments import band_mix, bass_line, bursts, drum_pattern, level_steps, plucked_line, strummed_chords
from fxcap.capture.signal.sounds import _fade, _samples, db_to_gain, log_sweep, noise_burst, sine_tone
from fxcap.errors import FxcapError


class _Assembler:
    """Concatenates parts and records one region per part, so regions tile the signal exactly."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.parts: list[np.ndarray] = []
        self.regions: list[Region] = []
        self.position = 0
        self._gaps = 0

    def add(self, name: str, kind: str, audio: np.ndarray, description: str) -> None:
        audio = np.asarray(audio, dtype=np.float64)
        self.parts.append(audio)
        self.regions.append(Region(name, kind, self.position, self.position + len(audio), description))
        self.position += len(audio)

    def gap(self, seconds: float, name: str | None = None, description: str = "silence: lets the device settle") -> None:
        self._gaps += 1
        self.add(name or f"gap_{self._gaps}", "gap", np.zeros(_samples(seconds, self.sample_rate)), description)

    def finish(self, peak_dbfs: float, **layout_fields: object) -> TestSignal:
        """Scale everything so the whole signal's peak is ``peak_dbfs`` and hash it."""
        audio = np.concatenate(self.parts)
        top = float(np.max(np.abs(audio)))
        audio = (audio * (db_to_gain(peak_dbfs) / top)).astype(np.float32)
        layout = SignalLayout(
            version=SIGNAL_VERSION,
            sample_rate=self.sample_rate,
            length=len(audio),
            peak_dbfs=float(peak_dbfs),
            regions=self.regions,
            **layout_fields,  # type: ignore[arg-type]
        )
        layout.sha256 = audio_sha256(audio)
        return TestSignal(audio=audio, layout=layout)


def _frame_start(asm: _Assembler, preset: _Preset, marker: np.ndarray) -> None:
    """sync_start, calibration tone and silence (each followed by a settle gap)."""
    fs = asm.sample_rate
    asm.add("sync_start", "sync_start", marker, f"sync chirp, {MARKER_SECONDS:g} s, 0 dB: latency at the start")
    asm.gap(preset.settle_s)
    asm.add(
        "calibration", "calibration",
        sine_tone(fs, CALIBRATION_HZ, preset.calibration_s, CALIBRATION_LEVEL_DB),
        f"{CALIBRATION_HZ:g} Hz sine, {CALIBRATION_LEVEL_DB:g} dB, {preset.calibration_s:g} s, {FADE_SECONDS * 1e3:g} ms fades: gain reference",
    )
    asm.gap(preset.settle_s)
    asm.add("silence", "silence", np.zeros(_samples(preset.silence_s, fs)), "digital silence: noise floor")
    asm.gap(preset.settle_s)


def _frame_end(asm: _Assembler, preset: _Preset, marker: np.ndarray, validation: np.ndarray, description: str) -> None:
    """validation_b, sync_end and the tail."""
    asm.gap(preset.settle_s)
    asm.add("validation_b", "validation", validation, description + " (copy B, identical to A)")
    asm.gap(preset.settle_s)
    asm.add("sync_end", "sync_end", marker, f"sync chirp, {MARKER_SECONDS:g} s, 0 dB: latency at the end (drift)")
    asm.gap(preset.tail_s, name="tail", description="silence: the device's output rings out")


def _stream(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per region, so changing one region leaves the others unchanged."""
    return np.random.default_rng([int(seed), *name.encode("ascii")])


def generate_signal(config: SignalConfig | None = None) -> TestSignal:
    """Generate the built-in capture signal described in the module docstring.

    Raises :class:`FxcapError` for an unsupported sample rate, preset or peak level.
    """
    config = config or SignalConfig()
    config.validate()
    fs = int(config.sample_rate)
    preset = PRESETS[config.preset]
    marker = sync_marker(fs).astype(np.float64)
    asm = _Assembler(fs)

    _frame_start(asm, preset, marker)
    validation = band_mix(fs, preset.validation_s, _stream(config.seed, "validation"))
    validation_text = f"band mix (chords, bass, drums, lead), {preset.validation_s:g} s, peak 0 dB"
    asm.add("validation_a", "validation", validation, validation_text + " (copy A)")
    asm.gap(preset.settle_s)

    f2 = sweep_stop_hz(fs)
    for k, level in enumerate(preset.sweep_levels_db, start=1):
        asm.add(
            f"sweep_{k}", "sweep", log_sweep(fs, preset.sweep_s, SWEEP_F1, f2, level),
            f"exponential sine sweep {SWEEP_F1:g} Hz..{f2:g} Hz, {preset.sweep_s:g} s, {level:g} dB",
        )
        asm.gap(preset.settle_s)
    for color in ("white", "pink"):
        for level in preset.noise_levels_db:
            name = f"noise_{color}_{abs(int(level))}db"
            asm.add(
                name, "noise", noise_burst(fs, preset.noise_s, color, level, _stream(config.seed, name)),
                f"{color} noise burst, {preset.noise_s:g} s, peak {level:g} dB",
            )
            asm.gap(preset.settle_s)

    program: tuple[tuple[str, str, Callable[[], np.ndarray]], ...] = (
        ("plucks", f"plucked single notes E2..E5, phrase dynamics -30..0 dB, {preset.plucks_s:g} s",
         lambda: plucked_line(fs, preset.plucks_s, _stream(config.seed, "plucks"))),
        ("chords", f"strummed chords and palm-muted power chords, crescendos, {preset.chords_s:g} s",
         lambda: strummed_chords(fs, preset.chords_s, _stream(config.seed, "chords"))),
        ("bass", f"plucked bass line E1..E3, varied dynamics, {preset.bass_s:g} s",
         lambda: bass_line(fs, preset.bass_s, _stream(config.seed, "bass"))),
        ("drums", f"kick/snare/hi-hat pattern with accents, ghost notes and fills, {preset.drums_s:g} s",
         lambda: drum_pattern(fs, preset.drums_s, _stream(config.seed, "drums"))),
        ("mix", f"band mix (chords, bass, drums, lead), {preset.mix_s:g} s",
         lambda: band_mix(fs, preset.mix_s, _stream(config.seed, "mix"))),
        ("level_steps", "110 Hz harmonic tone stepping " + "/".join(f"{lv:g}" for lv, _ in preset.steps) + " dB (attack/release)",
         lambda: level_steps(fs, preset.steps, _stream(config.seed, "level_steps"))),
        ("bursts", f"5..500 ms tone and noise bursts at 0 dB, 50 ms..1 s apart, {preset.bursts_s:g} s",
         lambda: bursts(fs, preset.bursts_s, _stream(config.seed, "bursts"))),
    )
    for k, (name, description, make) in enumerate(program):
        if k:
            asm.gap(preset.settle_s)
        asm.add(name, "program", make(), description)

    _frame_end(asm, preset, marker, validation, validation_text)
    return asm.finish(
        config.peak_dbfs,
        preset=config.preset,
        source="builtin",
        extra={
            "seed": int(config.seed),
            "calibration_hz": CALIBRATION_HZ,
            "calibration_level_db": CALIBRATION_LEVEL_DB,
            "sweep_f1_hz": SWEEP_F1,
            "sweep_f2_hz": f2,
            "marker_seconds": MARKER_SECONDS,
        },
    )


def _to_mono(audio: np.ndarray) -> np.ndarray:
    """``(n,)``, ``(n, channels)`` or ``(channels, n)`` (channels <= 8) -> mono float64 (channel mean)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        if audio.shape[1] > 8 and audio.shape[0] <= 8:
            audio = audio.T
        if audio.shape[1] <= 8:
            return audio.mean(axis=1)
    raise FxcapError(f"program audio must be mono (n,) or multichannel (n, channels), not shape {audio.shape}")


def wrap_program(
    audio: np.ndarray,
    sample_rate: int,
    peak_dbfs: float | None = None,
    *,
    source: str = "user",
    preset: str = "default",
    validation_seconds: float | None = None,
) -> TestSignal:
    """Frame the user's own program material (e.g. a DI guitar take) for capture.

    Layout: sync_start, calibration, silence, validation_a, program, validation_b, sync_end (with
    settle gaps and the tail, timings from ``preset``). The validation segment is the first
    ``validation_seconds`` of ``audio`` (default: the preset's, at most a fifth of the program); the
    ``program`` region holds the rest, so no input sample is both trainable and validation.
    Stereo (or more channels) is mixed to mono.

    ``peak_dbfs``: peak of the whole signal (dBFS); ``None`` keeps the program at its own level (its
    peak must then be at most 0 dBFS) and scales the markers and calibration tone to match.
    """
    fs = check_sample_rate(sample_rate)
    if preset not in PRESETS:
        raise FxcapError(f"unknown signal preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    frame = PRESETS[preset]
    program = _to_mono(audio)
    if not np.all(np.isfinite(program)):
        raise FxcapError(f"program audio {source!r} contains NaN or infinite samples; fix or re-export the file")
    top = float(np.max(np.abs(program))) if len(program) else 0.0
    if top < db_to_gain(-80.0):
        raise FxcapError(f"program audio {source!r} is silent (peak below -80 dBFS); check the file")
    if len(program) < 3 * fs:
        raise FxcapError(f"program audio {source!r} is {len(program) / fs:.2f} s long; give at least 3 s of material")
    if peak_dbfs is None:
        if top > 1.0:
            raise FxcapError(
                f"program audio {source!r} peaks at {20 * math.log10(top):+.1f} dBFS (above full scale); "
                "give a peak level (e.g. --peak-dbfs -3)"
            )
        target_db = 20.0 * math.log10(top)
    else:
        target_db = _check_peak(peak_dbfs)
    program = program / top  # peak 1.0 here; finish() applies target_db to everything together

    seconds = frame.validation_s if validation_seconds is None else float(validation_seconds)
    n_val = min(_samples(seconds, fs), len(program) // 5)
    if n_val < _samples(0.5, fs):
        raise FxcapError(f"validation segment of {n_val / fs:.2f} s is too short; give a longer program or validation_seconds >= 0.5")
    validation = _fade(program[:n_val].copy(), fs)
    rest = _fade(program[n_val:].copy(), fs)

    marker = sync_marker(fs).astype(np.float64)
    asm = _Assembler(fs)
    _frame_start(asm, frame, marker)
    validation_text = f"first {n_val / fs:.3f} s of {source}"
    asm.add("validation_a", "validation", validation, validation_text + " (copy A)")
    asm.gap(frame.settle_s)
    asm.add("program", "program", rest, f"{source} from {n_val / fs:.3f} s to its end ({len(rest) / fs:.3f} s)")
    _frame_end(asm, frame, marker, validation, validation_text)
    return asm.finish(
        target_db,
        preset="program",
        source=source,
        extra={
            "calibration_hz": CALIBRATION_HZ,
            "calibration_level_db": CALIBRATION_LEVEL_DB,
            "marker_seconds": MARKER_SECONDS,
            "program_peak_dbfs": 20.0 * math.log10(top),
            "validation_seconds": n_val / fs,
        },
    )
