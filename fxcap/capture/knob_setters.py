"""How a hardware backend gets a device's knobs to the wanted setting between takes.

A :class:`KnobSetter` is a small strategy the sound-card backend calls before every take:

* :class:`ManualKnobSetter` asks the user ("Set DRIVE to 6 (about 1 o'clock), then press Enter")
  through injectable input/output functions (tests drive it with a list of answers);
* :class:`fxcap.capture.midi.MidiKnobSetter` sends MIDI Control Change messages for the knobs that
  have a ``midi_cc`` in the device profile (unattended sweeps), and asks for the rest.

Every setter returns the values actually set, which may differ from the requested ones (MIDI
quantizes a knob to 128 steps); the backend records them in the take's ``info["knobs_set"]``.
"""

from __future__ import annotations

from typing import Callable, Protocol

from fxcap.capture.profiles import DeviceProfile, Knob, KnobValue
from fxcap.errors import CaptureError, CaptureStopped

InputFunction = Callable[[str], str]
"""Shows a prompt and returns the user's answer (``builtins.input`` by default)."""

OutputFunction = Callable[[str], None]
"""Shows one line of text (``print`` by default)."""


class KnobSetter(Protocol):
    """Strategy that puts the device's knobs at a setting and switches its bypass."""

    def apply(self, profile: DeviceProfile, knobs: dict[str, KnobValue]) -> dict[str, KnobValue]:
        """Set every knob of ``profile`` (``knobs`` plus defaults); return the values actually set."""

    def set_bypass(self, profile: DeviceProfile, bypass: bool) -> None:
        """Route the signal around the device (``True``: bypass or loopback cable) or through it."""


def format_knob_value(knob: Knob, value: KnobValue) -> str:
    """``6``, ``-12 dB``, ``limit``: a value as a user reads it on the panel."""
    if knob.is_switch:
        return str(value)
    text = f"{float(value):.3g}" if abs(float(value)) < 1000 else f"{float(value):.0f}"
    return f"{text} {knob.unit}".strip()


def knob_instruction(knob: Knob, value: KnobValue) -> str:
    """``DRIVE to 6 (about 1 o'clock)`` for a knob, ``MODE to limit`` for a switch."""
    target = f"{knob.name.upper()} to {format_knob_value(knob, value)}"
    if knob.is_switch:
        return target
    return f"{target} ({knob.clock_position(value)})"


class ManualKnobSetter:
    """Asks the user to turn the knobs that changed since the previous take, then waits for Enter.

    Args:
        input_fn: shows a prompt and returns the answer; answering ``q`` stops the run.
        output_fn: shows a line of text (used for the list of knobs when several change).
        always_all: prompt for every knob before every take, not only the changed ones.
    """

    def __init__(
        self,
        input_fn: InputFunction = input,
        output_fn: OutputFunction = print,
        always_all: bool = False,
    ) -> None:
        self.input_fn = input_fn
        self.output_fn = output_fn
        self.always_all = always_all
        self._current: dict[str, KnobValue] | None = None
        self._bypassed = False

    def apply(self, profile: DeviceProfile, knobs: dict[str, KnobValue]) -> dict[str, KnobValue]:
        """Prompt for the knobs whose value differs from the last take (all of them the first time)."""
        wanted = profile.complete(knobs)
        changed = [
            k for k in profile.knobs if self.always_all or self._current is None or self._current.get(k.name) != wanted[k.name]
        ]
        if changed:
            steps = [knob_instruction(k, wanted[k.name]) for k in changed]
            if len(steps) == 1:
                self._ask(f"Set {steps[0]}, then press Enter")
            else:
                self.output_fn(f"Set the knobs of {profile.name}:")
                for step in steps:
                    self.output_fn(f"  {step}")
                self._ask("then press Enter")
        self._current = dict(wanted)
        return dict(wanted)

    def set_bypass(self, profile: DeviceProfile, bypass: bool) -> None:
        """Ask for bypass (or the loopback cable) before a calibration take, and back after it."""
        if bypass == self._bypassed:
            return
        if bypass:
            self._ask(
                f"Switch {profile.name} to bypass (true bypass or patch a cable from the output straight "
                "to the input instead of the device), then press Enter"
            )
        else:
            self._ask(f"Switch {profile.name} back on (out of bypass, cable back through the device), then press Enter")
        self._bypassed = bypass

    def forget(self) -> None:
        """Prompt for every knob on the next take (e.g. after the user may have touched the device)."""
        self._current = None

    def _ask(self, prompt: str) -> None:
        try:
            answer = self.input_fn(prompt + " ")
        except EOFError:
            raise CaptureError(
                "no terminal to answer the knob prompt; run fxcap interactively, or give the profile's knobs "
                "a midi_cc and use a MIDI port"
            ) from None
        if answer.strip().lower() in ("q", "quit", "stop"):
            raise CaptureStopped("stopped at the knob prompt", then="continue later with")

