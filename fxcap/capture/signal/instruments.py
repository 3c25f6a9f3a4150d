"""Synthetic instruments of the capture signal's program regions: plucked strings (Karplus-Strong,
:func:`fxcap.dsp.synth.karplus_strong`), strummed chords, bass, drums, the band mix, level steps and
bursts. Float64, peak 1.0 unless a level is given; every random choice comes from the ``rng`` passed in."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from fxcap.capture.signal.sounds import _fade, _normalize, _samples, db_to_gain, white_noise
from fxcap.dsp.synth import karplus_strong


def midi_hz(note: float) -> float:
    """Frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def pluck(
    sample_rate: int,
    freq_hz: float,
    seconds: float,
    rng: np.random.Generator,
    brightness: float = 0.7,
    t60_s: float = 2.0,
    mute_after_s: float | None = None,
) -> np.ndarray:
    """One plucked-string note (Karplus-Strong), peak 1.0, ``seconds`` long (float64).

    ``brightness`` in [0, 1] sets how much treble the pluck's excitation has (harder pick: brighter);
    ``t60_s`` is the time the string takes to decay by 60 dB; ``mute_after_s`` damps the string
    (20 ms fade) as a player's hand would.
    """
    n = max(_samples(seconds, sample_rate), 1)
    delay = sample_rate / freq_hz - 0.5
    period = max(int(round(delay)), 2)
    excitation = rng.uniform(-1.0, 1.0, period)
    # One-pole lowpass on the excitation: a soft pick is darker.
    pole = 0.05 + 0.9 * (1.0 - float(np.clip(brightness, 0.0, 1.0)))
    excitation = sps.lfilter([1.0 - pole], [1.0, -pole], excitation)
    excitation -= excitation.mean()
    loop_gain = 10.0 ** (-3.0 / (t60_s * freq_hz))
    note = karplus_strong(excitation, n, delay, loop_gain)
    if mute_after_s is not None and mute_after_s < seconds:
        start = _samples(mute_after_s, sample_rate)
        ramp = _samples(0.02, sample_rate)
        env = np.ones(n)
        stop = min(start + ramp, n)
        env[start:stop] = np.linspace(1.0, 0.0, ramp)[: stop - start]
        env[stop:] = 0.0
        note *= env
    return _normalize(note)


def _place(buffer: np.ndarray, start: int, sound: np.ndarray, gain: float) -> None:
    """Add ``gain * sound`` into ``buffer`` at sample ``start`` (cut at the buffer's end)."""
    if start >= len(buffer):
        return
    stop = min(start + len(sound), len(buffer))
    buffer[start:stop] += gain * sound[: stop - start]


def _velocities(count: int, rng: np.random.Generator, low_db: float = -30.0) -> np.ndarray:
    """Per-event levels (dB re peak) in phrases: a slow random crescendo/decrescendo plus jitter.

    The phrase curve dwells near full level (squared raised cosine), so loud playing dominates and
    quiet passages still reach ``low_db``.
    """
    if count == 0:
        return np.zeros(0)
    phrase = max(4, int(rng.integers(6, 16)))
    idx = np.arange(count)
    curve = (0.5 - 0.5 * np.cos(2 * np.pi * idx / phrase + rng.uniform(0, 2 * np.pi))) ** 2
    depth = -low_db * rng.uniform(0.6, 1.0)
    levels = -depth * curve + rng.normal(0.0, 3.0, count)
    return np.clip(levels, low_db, 0.0)


_PENTATONIC = np.array([40, 43, 45, 47, 50, 52, 55, 57, 59, 62, 64, 67, 69, 71, 74, 76])
_CHORDS = (
    (40, 47, 52, 55, 59, 64),  # E minor
    (43, 47, 50, 55, 59, 67),  # G
    (48, 52, 55, 60, 64),  # C
    (50, 57, 62, 66),  # D
    (45, 52, 57, 60, 64),  # A minor
)
_POWER_CHORDS = ((40, 47, 52), (43, 50, 55), (45, 52, 57), (38, 45, 50))


def plucked_line(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A single-note melodic line, staccato and ringing notes, phrase dynamics; peak 1.0."""
    n = _samples(seconds, sample_rate)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(90.0, 130.0)
    onsets, durations = [], []
    t = 0.05
    while t < seconds - 0.1:
        length = beat * float(rng.choice([0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
        onsets.append(t)
        durations.append(length)
        t += length
    levels = _velocities(len(onsets), rng)
    degree = int(rng.integers(0, len(_PENTATONIC)))
    for onset, length, level in zip(onsets, durations, levels):
        degree = int(np.clip(degree + rng.integers(-3, 4), 0, len(_PENTATONIC) - 1))
        freq = midi_hz(_PENTATONIC[degree])
        staccato = rng.random() < 0.3
        ring = length * (0.5 if staccato else 1.0)
        note = pluck(
            sample_rate, freq, min(ring + 0.05, seconds), rng,
            brightness=0.45 + 0.5 * db_to_gain(level), t60_s=float(np.interp(freq, [80, 660], [3.0, 1.2])),
            mute_after_s=ring,
        )
        _place(out, _samples(onset, sample_rate), note, db_to_gain(level))
    return _fade(_normalize(out), sample_rate, 0.005, 0.05)


def _strum(sample_rate: int, notes: tuple[int, ...], ring_s: float, rng: np.random.Generator, level_db: float, muted: bool) -> np.ndarray:
    """One strum over ``notes`` (down or up), strings 6-25 ms apart; peak 1.0 before ``level_db``."""
    spread = rng.uniform(0.006, 0.025)
    order = list(notes) if rng.random() < 0.7 else list(reversed(notes))
    length = ring_s + spread * len(order) + 0.05
    out = np.zeros(_samples(length, sample_rate))
    for k, midi in enumerate(order):
        freq = midi_hz(midi)
        note = pluck(
            sample_rate, freq, ring_s + 0.03, rng,
            brightness=0.4 + 0.55 * db_to_gain(level_db), t60_s=0.25 if muted else float(np.interp(freq, [80, 660], [3.0, 1.5])),
            mute_after_s=ring_s,
        )
        _place(out, _samples(k * spread, sample_rate), note, db_to_gain(rng.normal(0.0, 2.0)))
    return _normalize(out)


def strummed_chords(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Strummed open chords and palm-muted power chords with crescendos; peak 1.0."""
    n = _samples(seconds, sample_rate)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(85.0, 125.0)
    t = 0.05
    events = []
    while t < seconds - 0.1:
        if rng.random() < 0.35:  # a bar of palm-muted eighth-note power chords
            shape = _POWER_CHORDS[int(rng.integers(len(_POWER_CHORDS)))]
            for _ in range(8):
                events.append((t, shape, beat * 0.4, True))
                t += beat / 2
        else:
            shape = _CHORDS[int(rng.integers(len(_CHORDS)))]
            for _ in range(int(rng.choice([1, 2, 4]))):
                hold = beat * float(rng.choice([1.0, 2.0]))
                events.append((t, shape, hold, False))
                t += hold
    levels = _velocities(len(events), rng)
    for (onset, shape, hold, muted), level in zip(events, levels):
        strum = _strum(sample_rate, shape, hold, rng, level, muted)
        _place(out, _samples(onset, sample_rate), strum, db_to_gain(level))
    return _fade(_normalize(out), sample_rate, 0.005, 0.05)


def bass_line(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Plucked bass notes E1..E3 (roots, fifths, octaves), eighths to half notes; peak 1.0."""
    n = _samples(seconds, sample_rate)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(85.0, 125.0)
    roots = (28, 31, 33, 35, 36, 38, 40)
    t = 0.05
    events = []
    while t < seconds - 0.1:
        root = roots[int(rng.integers(len(roots)))]
        for _ in range(int(rng.integers(2, 6))):
            length = beat * float(rng.choice([0.5, 0.5, 1.0, 2.0]))
            midi = root + int(rng.choice([0, 0, 7, 12]))
            events.append((t, midi, length))
            t += length
    levels = _velocities(len(events), rng, low_db=-24.0)
    for (onset, midi, length), level in zip(events, levels):
        note = pluck(sample_rate, midi_hz(midi), length + 0.03, rng, brightness=0.25 + 0.4 * db_to_gain(level), t60_s=3.5, mute_after_s=length)
        _place(out, _samples(onset, sample_rate), note, db_to_gain(level))
    return _fade(_normalize(out), sample_rate, 0.005, 0.05)


def _decay(sample_rate: int, seconds: float, tau_s: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(_samples(seconds, sample_rate)) / sample_rate
    return t, np.exp(-t / tau_s)


def kick(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Kick drum: sine falling from ~155 to 45 Hz with a 180 ms decay plus a 3 ms click; peak 1.0."""
    t, env = _decay(sample_rate, 0.45, 0.18)
    freq = 45.0 + 110.0 * np.exp(-t / 0.035)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * env
    click_n = _samples(0.003, sample_rate)
    body[:click_n] += 0.4 * rng.uniform(-1, 1, click_n) * np.linspace(1, 0, click_n)
    return _normalize(body)


def _highpassed(sample_rate: int, noise: np.ndarray, cutoff_hz: float) -> np.ndarray:
    sos = sps.butter(2, cutoff_hz, "highpass", fs=sample_rate, output="sos")
    return sps.sosfilt(sos, noise)


def snare(sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Snare drum: 1 kHz-highpassed noise (70 ms decay) plus a 185 Hz shell tone; peak 1.0."""
    t, env = _decay(sample_rate, 0.3, 0.07)
    rattle = _highpassed(sample_rate, rng.standard_normal(len(t)), 1000.0) * env
    shell = 0.6 * np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    return _normalize(_fade(rattle + shell, sample_rate, 0.0005, 0.01))


def hihat(sample_rate: int, rng: np.random.Generator, open_: bool = False) -> np.ndarray:
    """Hi-hat: 6 kHz-highpassed noise, 20 ms (closed) or 150 ms (open) decay; peak 1.0."""
    tau = 0.15 if open_ else 0.02
    t, env = _decay(sample_rate, tau * 5, tau)
    return _normalize(_fade(_highpassed(sample_rate, rng.standard_normal(len(t)), 6000.0) * env, sample_rate, 0.0005, 0.005))


def drum_pattern(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Kick/snare/hi-hat on a 16th grid: backbeat, syncopated kicks, ghost notes, a fill every 4 bars."""
    n = _samples(seconds, sample_rate)
    out = np.zeros(n)
    sixteenth = 60.0 / rng.uniform(90.0, 130.0) / 4
    sounds = {
        "kick": [kick(sample_rate, rng) for _ in range(3)],
        "snare": [snare(sample_rate, rng) for _ in range(3)],
        "hat": [hihat(sample_rate, rng) for _ in range(3)],
        "open": [hihat(sample_rate, rng, open_=True)],
    }
    bar_level = 0.0
    step = 0
    t = 0.05
    while t < seconds - 0.05:
        pos = step % 16
        bar = step // 16
        if pos == 0:
            bar_level = float(rng.uniform(-18.0, 0.0))
        fill = bar % 4 == 3 and pos >= 8
        hits: list[tuple[str, float]] = []
        if fill:
            hits.append(("snare", -20.0 + 2.5 * (pos - 8) + rng.normal(0, 1.5)))
        else:
            if pos in (0, 8) or (pos in (6, 10, 14) and rng.random() < 0.35):
                hits.append(("kick", rng.normal(-1.0, 1.5)))
            if pos in (4, 12):
                hits.append(("snare", rng.normal(-1.0, 1.5)))
            elif pos % 2 == 1 and rng.random() < 0.15:
                hits.append(("snare", rng.uniform(-30.0, -22.0)))  # ghost note
            if pos % 2 == 0:
                hits.append(("open" if pos == 14 and rng.random() < 0.3 else "hat", (-6.0 if pos % 4 == 0 else -12.0) + rng.normal(0, 2)))
        for kind, level in hits:
            choices = sounds[kind]
            sound = choices[int(rng.integers(len(choices)))]
            _place(out, _samples(t, sample_rate), sound, db_to_gain(min(bar_level + level, 0.0)))
        step += 1
        t += sixteenth
    return _fade(_normalize(out), sample_rate, 0.002, 0.05)


def band_mix(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Chords, bass, drums and a lead line mixed together; peak 1.0."""
    parts = (
        (strummed_chords, 0.55),
        (bass_line, 0.5),
        (drum_pattern, 0.45),
        (plucked_line, 0.35),
    )
    mix = np.zeros(_samples(seconds, sample_rate))
    for make, gain in parts:
        mix += gain * make(sample_rate, seconds, np.random.default_rng(rng.integers(2**63)))
    return _normalize(mix)


def harmonic_tone(sample_rate: int, seconds: float, rng: np.random.Generator, f0: float = 110.0, harmonics: int = 10) -> np.ndarray:
    """A steady tone: harmonics of ``f0`` with amplitudes 1/k and random phases; peak 1.0."""
    t = np.arange(_samples(seconds, sample_rate)) / sample_rate
    tone = np.zeros_like(t)
    for k in range(1, harmonics + 1):
        if k * f0 < 0.45 * sample_rate:
            tone += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    return _normalize(tone)


def level_steps(sample_rate: int, steps: tuple[tuple[float, float], ...], rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone whose level jumps between ``steps`` (dB re peak, seconds), 1 ms ramps; peak 1.0."""
    total = sum(seconds for _, seconds in steps)
    tone = harmonic_tone(sample_rate, total, rng)
    env = np.concatenate([np.full(_samples(s, sample_rate), db_to_gain(level)) for level, s in steps])
    env = np.pad(env, (0, max(0, len(tone) - len(env))), mode="edge")[: len(tone)]
    ramp = max(_samples(0.001, sample_rate), 1)
    env = np.convolve(np.pad(env, (ramp - 1, 0), mode="edge"), np.ones(ramp) / ramp, mode="valid")
    return _fade(_normalize(tone * env), sample_rate)


def bursts(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Bursts of 5..500 ms (harmonic tone or white noise, 0 dB) separated by 50 ms..1 s of silence."""
    n = _samples(seconds, sample_rate)
    out = np.zeros(n)
    lengths = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    pauses = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
    tone = harmonic_tone(sample_rate, 0.5, rng, f0=220.0)
    noise = _normalize(white_noise(_samples(0.5, sample_rate), rng))
    t = 0.02
    k = 0
    while True:
        length = lengths[k % len(lengths)]
        pause = pauses[int(rng.integers(len(pauses)))]
        if t + length > seconds - 0.02:
            break
        source = tone if k % 3 != 2 else noise
        burst = _fade(source[: _samples(length, sample_rate)].copy(), sample_rate, 0.001, 0.001)
        _place(out, _samples(t, sample_rate), burst, 1.0)
        t += length + pause
        k += 1
    return _normalize(out)
