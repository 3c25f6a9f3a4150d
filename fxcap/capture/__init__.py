"""Capture: play a test signal through a device at swept knob settings, align and check every take."""
