"""The progress display of ``fxcap record`` and ``fxcap import``: the observer of a capture run."""

from __future__ import annotations

from typing import Any

from rich.progress import ProgressColumn, Task
from rich.text import Text

from fxcap.capture.budget import CapturePace
from fxcap.cli import tables


class EstimateRemainingColumn(ProgressColumn):
    """The time left, from the capture's estimate (:class:`fxcap.capture.budget.CapturePace`): what
    is left of the audio and the knob changes, at the pace measured so far. Without an estimate (an
    import) it falls back to rich's extrapolation over the takes."""

    def __init__(self, owner: "RecordProgress") -> None:
        from rich.progress import TimeRemainingColumn

        super().__init__()
        self.owner = owner
        self.fallback = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        pace = self.owner.pace
        if pace is None:
            return self.fallback.render(task)
        left = pace.remaining(task.elapsed or 0.0)
        if left is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(round(left)), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d} left", style="progress.remaining")


class RecordProgress:
    """Rich progress over takes, with one line per rejected attempt and the time left from the estimate.

    Used as a context manager; the bar appears with the first event (``plan``), so an error found
    before anything is recorded (a bad CSV, a missing file) prints no empty bar.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.pace: CapturePace | None = None
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            EstimateRemainingColumn(self),
            console=tables.console,
            transient=False,
        )
        self.task = self.progress.add_task("calibration", total=None)
        self.started = False

    def _pace(self, event: str, data: dict[str, Any]) -> None:
        """Follow the estimate: set on ``plan``, advanced by the calibration and every kept take."""
        if event == "plan" and data.get("estimate") is not None:
            estimate = data["estimate"]
            self.pace = CapturePace(estimate, calibrated=not estimate.calibration_seconds)
        elif self.pace is not None and event == "calibration":
            self.pace.calibration_done()
        elif self.pace is not None and event == "take_done":
            self.pace.take_done()

    def __enter__(self) -> "RecordProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()

    def __call__(self, event: str, data: dict) -> None:
        if event in ("level", "profile_inferred"):  # said before anything is recorded
            tables.console.print(f"[yellow]{data['message']}[/]", highlight=False)
            return
        if not self.started:
            self.started = True
            self.progress.start()
        self._pace(event, data)
        if event == "plan":
            self.progress.update(self.task, total=data["total"], completed=data["done"])
        elif event == "calibration":
            cal = data["calibration"]
            self.progress.console.print(
                f"calibration: latency {cal.latency_samples:.2f} samples, rig gain {cal.gain_db:+.2f} dB, "
                f"polarity {cal.polarity:+d}, drift {cal.drift_ppm:+.1f} ppm"
            )
        elif event == "take_start":
            take = data["take"]
            knobs = ", ".join(f"{k}={v}" for k, v in take.knobs.items())
            self.progress.update(self.task, description=f"{take.take_id} {knobs}")
        elif event == "attempt_rejected":
            reasons = "; ".join(f"{c.name}: {c.message}" for c in data["failed"])
            self.progress.console.print(f"[yellow]{data['take'].take_id} attempt {data['attempt']} rejected[/]: {reasons}")
        elif event == "take_rejected":
            reasons = "; ".join(f"{c.name}: {c.message}" for c in data["failed"])
            self.progress.console.print(f"[yellow]{data['file']} rejected, skipped[/]: {reasons}", highlight=False)
            self.progress.advance(self.task)
        elif event == "probe_warning":
            for warning in data["warnings"]:
                self.progress.console.print(f"[yellow]{data['take'].take_id} probe warning[/]: {warning}", highlight=False)
        elif event == "reference_drift":
            style = "green" if data["ok"] else "yellow"
            self.progress.console.print(
                f"[{style}]{data['take'].take_id} reference re-take[/]: ESR {data['esr_db']:.1f} dB against {data['reference']}"
                + ("" if data["ok"] else " - the device drifted (warm-up, battery) or a knob moved"),
                highlight=False,
            )
        elif event == "stopped":
            self.progress.console.print(f"[red]stopped[/]: {data['error']}", highlight=False)
        elif event == "take_done":
            self.progress.advance(self.task)
