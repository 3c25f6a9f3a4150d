"""`fxcap ab` end to end through a real audio server: the A/B's device take goes SoundcardBackend -> PortAudio
-> JACK -> the virtual OD-3 pedal process (knobs over JACK MIDI) and back, and must come out as the OD-3's
own output on the framed passage, aligned to the sample; the model side and the null test are computed on it.

Skipped only when no JACK server is running (CI starts one: ``.ci/jack.sh start``; ``FXCAP_REQUIRE_JACK=1``
turns the skip into a failure), like tests/capture/backends/test_soundcard_jack.py, whose rig it shares.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.capture.backends._jack_rig import (  # noqa: F401 (pedal, server: fixtures)
    ActiveMidiOutput,
    ResettingMidiSetter,
    freewheel,
    pedal,
    require_jack,
    server,
)

pytestmark = pytest.mark.jack

require_jack()

from fxcap.capture.backends.soundcard import SoundcardBackend, SoundcardConfig  # noqa: E402
from fxcap.capture.midi import assign_midi_ccs  # noqa: E402
from fxcap.capture.profiles import OD3  # noqa: E402
from fxcap.capture.virtual import build_virtual_device  # noqa: E402
from fxcap.dsp.esr import esr  # noqa: E402
from fxcap.modeling.ab import ABConfig, ab_compare, compared_span, default_passage, framed_passage, run_model  # noqa: E402
from fxcap.modeling.render import knobs_from_run  # noqa: E402
from fxcap.modeling.testing import make_dummy_run  # noqa: E402
from fxcap.modeling.train import load_run  # noqa: E402

PROFILE = assign_midi_ccs(OD3)


def test_ab_through_jack_compares_the_pedals_own_output_with_the_model(pedal, server, tmp_path):
    rate = server.samplerate
    run = make_dummy_run(tmp_path / "run", num_knobs=2, sample_rate=rate, knobs=[OD3.knob("drive"), OD3.knob("tone")])
    midi = ActiveMidiOutput(f"{pedal.name}:midi_in", f"fxcap-ab-midi-{os.getpid()}")
    try:
        config = SoundcardConfig(interface=pedal.name, output_channels=(1, 2), input_channel=1, loopback_channel=2,
                                 sample_rate=rate, tail_seconds=0.2)
        backend = SoundcardBackend(PROFILE, config, knob_setter=ResettingMidiSetter(midi))
        with freewheel(server):
            result = ab_compare(run, backend, tmp_path / "ab", ["drive=6", "tone=3"], config=ABConfig(passage_seconds=4.0))
    finally:
        midi.close()
    knobs_set = result.numbers["take"]["knobs_set"]
    assert knobs_set["drive"] == pytest.approx(76 * 10 / 127)  # CC 76: 6.0 quantized to the 7-bit step
    assert result.model_knobs == {"drive": knobs_set["drive"], "tone": knobs_set["tone"]}  # the model plays what was set
    assert abs(result.numbers["take"]["calibration"]["latency_samples"] - server.blocksize) < 0.05  # one JACK period

    signal = framed_passage(default_passage(rate, 4.0), rate)
    span = compared_span(signal)
    device = build_virtual_device("OD-3", rate).process(signal.audio, knobs_set)[span]
    assert 10 * np.log10(esr(result.device, device)) < -100.0  # the pedal's output, aligned to the sample
    model, run_config = load_run(run)
    expected = run_model(model, knobs_from_run(run_config), result.model_knobs, signal.audio, rate)[span]
    np.testing.assert_array_equal(result.model, expected)
    assert result.numbers["esr"] == pytest.approx(esr(expected, result.device))
    assert (tmp_path / "ab" / "ab.wav").is_file()
