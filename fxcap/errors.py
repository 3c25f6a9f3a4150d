"""Exceptions that carry a one-line, actionable message for the user.

The CLI prints ``str(error)`` of any :class:`FxcapError` on one line and exits non-zero; every other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class FxcapError(Exception):
    """Base class: a problem the user can fix; the message says what to do."""


class CaptureError(FxcapError):
    """A capture could not be made or a take failed its checks beyond the retry budget."""


class CaptureStopped(CaptureError):
    """The capture stopped in a way that resuming the session repairs (a device lost, the user quit at a prompt).

    ``problem`` says what happened, ``then`` how the sentence that names the resume command starts
    (``"continue with"``, ``"reconnect it, then continue with"``). The message names the generic
    ``fxcap record --resume``; the recorder, which knows the session, names its own command with
    :meth:`continue_with`.
    """

    def __init__(self, problem: str, then: str = "continue with") -> None:
        self.problem, self.then = problem, then
        super().__init__(self.continue_with("`fxcap record --resume`"))

    def continue_with(self, command: str) -> str:
        """The message with ``command`` as the way to continue."""
        return f"{self.problem}; {self.then} {command}"


class DeviceNotFoundError(CaptureError):
    """The requested audio device, profile or virtual device does not exist."""


class SessionError(FxcapError):
    """A session folder is missing, corrupt or of an unsupported schema version."""


class DatasetError(FxcapError):
    """A dataset folder or shard is missing, corrupt or inconsistent."""


class ModelError(FxcapError):
    """A model configuration, checkpoint or run folder is unusable."""


class TrainingDivergedError(ModelError):
    """A training run diverged and did not recover (its last good checkpoints stay in its folder)."""


class FolderLockedError(FxcapError):
    """Another fxcap process is writing the session, dataset or run folder (see :mod:`fxcap.locking`)."""


class ReportError(FxcapError):
    """A report cannot be made from what was given (nothing to report, an unknown knob setting)."""
