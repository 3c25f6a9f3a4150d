"""Manual knob prompts: what the user is asked, when, and how a prompt can stop the run."""

from __future__ import annotations

import pytest

from fxcap.capture.knob_setters import ManualKnobSetter, format_knob_value, knob_instruction
from fxcap.capture.profiles import LA2A, OD3
from fxcap.errors import CaptureError


class Script:
    """Answers prompts from a list and keeps what was shown."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = list(answers or [])
        self.prompts: list[str] = []
        self.lines: list[str] = []

    def input(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.answers:
            return ""
        answer = self.answers.pop(0)
        if answer is EOFError:
            raise EOFError
        return answer

    def setter(self, **kwargs) -> ManualKnobSetter:
        return ManualKnobSetter(input_fn=self.input, output_fn=self.lines.append, **kwargs)


def test_single_knob_prompt_names_value_and_clock_position():
    script = Script()
    setter = script.setter()
    setter.apply(OD3, {})  # first take: every knob
    script.prompts.clear()
    result = setter.apply(OD3, {"drive": 6.0})
    assert script.prompts == ["Set DRIVE to 6 (about 1 o'clock), then press Enter "]
    assert result == {"level": 5.0, "tone": 5.0, "drive": 6.0}


def test_first_take_lists_every_knob_then_only_changes():
    script = Script()
    setter = script.setter()
    setter.apply(OD3, {"drive": 0.0, "tone": 10.0})
    assert script.lines[0] == "Set the knobs of OD-3:"
    assert script.lines[1:] == [
        "  LEVEL to 5 (about 12 o'clock)",
        "  TONE to 10 (about 5 o'clock)",
        "  DRIVE to 0 (about 7 o'clock)",
    ]
    assert len(script.prompts) == 1
    script.prompts.clear()
    setter.apply(OD3, {"drive": 0.0, "tone": 10.0})  # unchanged: no prompt
    assert script.prompts == []
    setter.forget()
    setter.apply(OD3, {"drive": 0.0, "tone": 10.0})
    assert len(script.prompts) == 1


def test_switch_prompt_and_always_all():
    script = Script()
    setter = script.setter(always_all=True)
    setter.apply(LA2A, {"mode": "limit", "gain": 40})
    setter.apply(LA2A, {"mode": "limit", "gain": 40})
    assert "  MODE to limit" in script.lines
    assert len(script.prompts) == 2  # always_all prompts again


def test_quit_and_missing_terminal_are_clear_errors():
    with pytest.raises(CaptureError, match="--resume"):
        Script(["q"]).setter().apply(OD3, {})
    with pytest.raises(CaptureError, match="no terminal"):
        Script([EOFError]).setter().apply(OD3, {})


def test_bypass_prompts_only_on_change():
    script = Script()
    setter = script.setter()
    setter.set_bypass(OD3, False)  # already active: nothing to ask
    assert script.prompts == []
    setter.set_bypass(OD3, True)
    setter.set_bypass(OD3, True)
    setter.set_bypass(OD3, False)
    assert len(script.prompts) == 2
    assert "bypass" in script.prompts[0] and "back on" in script.prompts[1]


def test_formatting_units_and_out_of_range_value():
    knob = OD3.knob("drive")
    assert format_knob_value(knob, 2.5) == "2.5"
    assert knob_instruction(knob, 10) == "DRIVE to 10 (about 5 o'clock)"
    with pytest.raises(ValueError, match="0..10"):
        ManualKnobSetter(input_fn=lambda p: "").apply(OD3, {"drive": 11})
