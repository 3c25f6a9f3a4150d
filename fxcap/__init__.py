"""fxcap: capture a real audio effect at swept knob settings and model it with a knob-conditioned RNN."""

__version__ = "0.1.0"
