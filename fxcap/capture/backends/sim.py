"""The simulated backend: a built-in virtual device behind a rig with hidden impairments.

``play_record`` runs the signal through the virtual device (fresh state for every take) and then
through the rig (:func:`fxcap.capture.virtual.apply_rig`): fractional latency, gain, polarity,
clock drift, noise and hum, whose values the capture code is not told (``describe()`` leaves them
out; tests may read :attr:`SimBackend.impairments`). ``calibration_take`` is the bypass path: the
rig alone, no device.

Faults for testing the capture engine's checks and re-takes are planned per ``play_record`` call,
counted from 1 on this backend (a re-take is a new call)::

    SimBackend("OD-3", fault_plan={2: "clip"})          # call 2 clips, its re-take (call 3) is clean
    SimBackend("OD-3", fault_plan={4: {"fault": "dropout", "dropout_at_s": 3.0}})
    SimBackend("OD-3", fault_plan=lambda call, knobs: "silence" if knobs["drive"] > 9 else None)

A plan entry is a rig fault name (``"clip"``, ``"dropout"``, ``"silence"``), ``"xrun"`` (clean audio
but an ``"input overflow"`` stream event), ``"lost"`` (the call raises :class:`CaptureError` like a
sound card whose interface was unplugged), a dict of :class:`RigImpairments` fields to override for
that call, or ``None``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Union

import numpy as np

from fxcap.capture.backends.base import Backend, RawTake
from fxcap.capture.profiles import KnobValue
from fxcap.capture.virtual import FAULTS, RigImpairments, VirtualDevice, apply_rig, build_virtual_device, random_impairments
from fxcap.errors import CaptureError, CaptureStopped

STREAM_FAULTS = ("xrun",)
"""Faults that leave the audio clean but report a stream event."""

LOST_FAULT = "lost"
"""Fault that makes ``play_record`` raise :class:`CaptureError` as a sound card does when the
interface disappears mid-run (unplugged, driver error): the engine stops and ``--resume`` continues."""

FaultSpec = Union[str, Mapping[str, Any], None]
FaultPlan = Union[Mapping[int, FaultSpec], Callable[[int, dict[str, KnobValue]], FaultSpec]]


class SimBackend(Backend):
    """Plays through a virtual device and a simulated rig.

    Args:
        device: a virtual device name (``"OD-3"``, ``"LA-2A"``, case-insensitive) or instance.
        sample_rate: Hz; defaults to the instance's rate, or 48000 for a name.
        impairments: the rig; default: :func:`random_impairments` drawn from ``seed``.
        seed: seeds the random rig and every take's noise: the capture engine's take ``k``, attempt
            ``a`` uses ``(seed, k, a)`` (see :meth:`begin_take`), so a resumed session equals an
            uninterrupted one; calls made outside the engine use ``(seed, call number)``.
        fault_plan: faults per ``play_record`` call (see the module docstring).
        loopback: also return a loopback recording (the rig alone) with every take.
    """

    name = "sim"
    clip_advice = "lower the virtual device's output level knob or the played level (--peak-dbfs), then re-take"

    def __init__(
        self,
        device: str | VirtualDevice = "OD-3",
        sample_rate: int | None = None,
        *,
        impairments: RigImpairments | None = None,
        seed: int = 0,
        fault_plan: FaultPlan | None = None,
        loopback: bool = False,
    ) -> None:
        if isinstance(device, VirtualDevice):
            if sample_rate is not None and int(sample_rate) != device.sample_rate:
                raise CaptureError(f"virtual {device.name} runs at {device.sample_rate} Hz, not {sample_rate} Hz")
            self.device = device
        else:
            self.device = build_virtual_device(device, 48000 if sample_rate is None else sample_rate)
        self.profile = self.device.profile
        self.sample_rate = self.device.sample_rate
        self.seed = int(seed)
        self.impairments = impairments if impairments is not None else random_impairments(self.seed)
        self.impairments.validate()
        self.loopback = bool(loopback)
        self._explicit = impairments is not None
        self._fault_plan = fault_plan
        self.calls = 0
        """``play_record`` calls so far (the number of the latest take attempt)."""
        self._take: tuple[int, int] | None = None

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *stream])

    def begin_take(self, index: int, attempt: int) -> None:
        """The next :meth:`play_record` records take ``index``, attempt ``attempt``: its noise is seeded from them."""
        self._take = (int(index), int(attempt))

    def _planned(self, call: int, knobs: dict[str, KnobValue]) -> FaultSpec:
        plan = self._fault_plan
        if plan is None:
            return None
        return plan(call, dict(knobs)) if callable(plan) else plan.get(call)

    def _rig_for(self, spec: FaultSpec) -> tuple[RigImpairments, list[str]]:
        """The rig for one call and the stream events it reports."""
        if spec is None:
            return self.impairments, []
        if isinstance(spec, str):
            if spec in STREAM_FAULTS:
                return self.impairments, ["input overflow"]
            if spec == LOST_FAULT:
                raise CaptureStopped(
                    f"virtual audio interface of {self.device.name} stopped during the take (simulated: lost device)",
                    then="reconnect it, then continue with",
                )
            if spec not in FAULTS:
                raise CaptureError(
                    f"unknown simulated fault {spec!r}; choose one of: {', '.join(FAULTS + STREAM_FAULTS + (LOST_FAULT,))}"
                )
            return dataclasses.replace(self.impairments, fault=spec), []
        try:
            rig = dataclasses.replace(self.impairments, **dict(spec))
        except TypeError as exc:
            raise CaptureError(f"bad simulated fault {spec!r}: {exc}") from None
        rig.validate()
        return rig, []

    @staticmethod
    def _mono(signal: np.ndarray) -> np.ndarray:
        signal = np.ascontiguousarray(signal, dtype=np.float32)
        if signal.ndim != 1 or len(signal) == 0:
            raise CaptureError(f"the simulated backend plays mono signals of shape (n,), not {signal.shape}")
        return signal

    def play_record(self, signal: np.ndarray, knobs: dict[str, KnobValue]) -> RawTake:
        """Run ``signal`` through the device at ``knobs`` (device state reset first), then the rig."""
        played = self._mono(signal)
        settings = self.device.settings(knobs)
        self.calls += 1
        stream = self._take if self._take is not None else (self.calls,)
        self._take = None
        rig, events = self._rig_for(self._planned(self.calls, settings))
        self.device.reset()
        output = self.device.process(played, settings)
        recorded = apply_rig(output, rig, self.sample_rate, self._rng(1, *stream))
        loop = apply_rig(played, self.impairments, self.sample_rate, self._rng(2, *stream)) if self.loopback else None
        return RawTake(
            played=played,
            recorded=recorded,
            sample_rate=self.sample_rate,
            loopback=loop,
            events=events,
            info={"call": self.calls, "virtual_device": self.device.name},
        )

    def calibration_take(self, signal: np.ndarray) -> RawTake:
        """The bypass path: the rig alone (latency, gain, polarity, drift, noise, hum), no device."""
        played = self._mono(signal)
        recorded = apply_rig(played, self.impairments, self.sample_rate, self._rng(0))
        return RawTake(played=played, recorded=recorded, sample_rate=self.sample_rate, loopback=None, info={"bypass": True})

    def describe(self) -> dict[str, Any]:
        """Backend facts for the manifest; the rig's values stay hidden."""
        return {
            **super().describe(),
            "virtual_device": self.device.name,
            "rig": "explicit (hidden)" if self._explicit else "random (hidden)",
            "loopback": self.loopback,
        }
