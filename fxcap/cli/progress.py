"""The progress display of ``fxcap record`` and ``fxcap import``: the observer of a capture run."""

from __future__ import annotations

from fxcap.cli import tables


class RecordProgress:
    """Rich progress over takes, with one line per rejected attempt.

    Used as a context manager; the bar appears with the first event (``plan``), so an error found
    before anything is recorded (a bad CSV, a missing file) prints no empty bar.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=tables.console,
            transient=False,
        )
        self.task = self.progress.add_task("calibration", total=None)
        self.started = False

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
