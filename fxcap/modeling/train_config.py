"""The training options of :func:`fxcap.modeling.train.train` (one dataclass, checked when made)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from fxcap.dataset.schema import DYNAMICS_KINDS
from fxcap.errors import ModelError

LR_SCHEDULES = ("plateau", "cosine")
"""The learning-rate schedules :class:`TrainConfig` knows (``lr_schedule``)."""

LINEARISATIONS = ("silence", "level")
"""The linearisations of the linear penalty (``TrainConfig.linearisation``; :func:`fxcap.modeling.linearity.nonlinear_part`)."""

DEVICE_LINEAR_PENALTY = 1e-3
"""``linear_penalty`` of a device that is not a dynamics processor when the config leaves it to the
device's kind (``linear_penalty=None``, :meth:`TrainConfig.for_device`; ``docs/quality.md``)."""


@dataclass
class TrainConfig:
    """Training options (defaults follow the paper's recipe, scaled for a CPU where noted).

    Attributes:
        window: BPTT window in samples (None: the dataset's default, 2048 / 8192).
        batch_size: windows per step (paper: 80).
        steps_per_epoch: optimizer steps per epoch (random windows); None = one pass over the
            training audio divided by ``window * batch_size``.
        max_epochs: upper bound on epochs.
        lr: Adam learning rate.
        lr_schedule: ``"plateau"`` (the paper's: multiply the rate by ``lr_factor`` when the
            validation loss has not improved for ``lr_patience`` epochs) or ``"cosine"`` (a linear
            warm-up over ``warmup_steps`` optimizer steps, then a cosine decay from ``lr`` to
            ``lr * lr_min_factor`` at the last step of ``max_epochs``). With a fixed, short step
            budget the cosine schedule ends on a small rate and so on a settled model; the plateau
            rule needs many epochs before it lowers the rate at all.
        lr_patience / lr_factor: the plateau rule's patience (epochs) and factor.
        warmup_steps / lr_min_factor: the cosine schedule's warm-up length and final rate.
        early_stop_patience: stop when the validation loss has not improved for this many epochs.
        grad_clip: max gradient norm.
        l1_weight / stft_weight / pre_emphasis: the L1 and multi-resolution STFT terms and their
            pre-emphasis (released code: 1, 0.1, on).
        esr_weight / dc_weight / esr_emphasis: the error-to-signal ratio term (pooled over the batch,
            on signals filtered by ``1 - esr_emphasis z^-1``) and the DC term (released code: off).
            See :class:`fxcap.modeling.losses.CombinedLoss`.
        loss_skip: samples at the start of every window left out of the loss (and of the validation
            loss): each window starts from a zero state the device never had. ``None``: an eighth of
            the window (:func:`loss_skip_for`; 256 samples of a 2048-sample window, 1024 of 8192).
        esr_per_setting: divide every window's ESR and DC terms by the mean target power of its knob
            setting (:mod:`fxcap.modeling.setting_power`) instead of pooling over the batch, so each
            setting weighs alike, as in the evaluation's mean over settings (quiet settings are
            otherwise neglected). Needs a constant knob setting per window.
        tbptt_windows: consecutive windows per training sequence (truncated back-propagation through
            time): the first starts from a zero state (with the ``loss_skip`` warm-up), each next one
            from the state the previous left, gradients stopped at window borders, one optimizer step
            per window. 1 (the paper's): every window from a zero state. Several let a model learn
            dynamics slower than a window (a compressor's release) at the cost of one window.
        stft_warmup_steps: ramp the STFT weight linearly from 0 to ``stft_weight`` over this many
            optimizer steps (0: full weight from the start, the released code's). The STFT terms
            ignore phase and polarity, and the log-magnitude term makes a near-silent output very
            costly, so a model that starts with the wrong polarity stays there (``docs/quality.md``,
            "Measurements behind the code"); letting the time-domain L1 term lead for the first steps
            settles polarity and phase before the spectral terms take over.
        valid_window: samples per validation window (None: the training window). Windows as long as
            the evaluation's segments score what the test scores (a slow compressor's state over
            seconds, not over one training window), so the best checkpoint is chosen for it.
        valid_windows: cap on validation windows per epoch (None: all): a fixed random sample of
            the validation split's grid windows, the same every epoch.
        max_skipped_steps: a step whose loss or gradient norm is not finite (float overflow of
            exploding gradients) is skipped, not applied; this many skipped steps in a row stop
            the run with a clear error.
        max_recoveries / recovery_lr_factor: when a run diverges (``max_skipped_steps`` non-finite steps
            in a row, an epoch without a finite step, or a non-finite validation loss) it goes back to
            the weights and optimizer state of its last good epoch, multiplies the learning rate by
            ``recovery_lr_factor`` and trains that epoch again, at most ``max_recoveries`` times (then
            it stops with an error). Each recovery is logged in the epoch's row (``recoveries``) and
            in :attr:`RunResult.recoveries`.
        time_budget_s: training time budget in seconds (epochs' wall time, validation included,
            summed over resumes; None: no budget). The run stops after the epoch in which the budget
            runs out (:attr:`RunResult.stop_reason` ``"time_budget"``), and the cosine schedule
            anneals by whichever is further along, steps or time, so the rate reaches its floor
            when the budget does. Where time leads, the run depends on the machine's speed (it is
            exactly reproducible only when the budget is comfortably longer than the run).
        even_penalty: weight of the even-order part's log energy share (with ``ModelConfig.even_gain``;
            :meth:`fxcap.modeling.filters.FilteredRNN.even_log_share`), added to the training loss: a
            pressure, equal on every decibel, to turn the cell's even-order output down wherever the
            error does not need it (a clean setting), which an ESR loss alone does not give. 0: off.
        linear_penalty: weight of the nonlinear part's log energy share at the training split's
            linear settings (:mod:`fxcap.modeling.linearity`: the model's output less its own
            linearisation, every order above the first), added to the training loss of windows that
            start from a zero state: a pressure to be clean exactly where the device is (a drive
            pedal at drive 0), any model, no even gain needed. 0: off. ``None``: by the device's kind
            (:meth:`for_device`): :data:`DEVICE_LINEAR_PENALTY`, except for dynamics processors (a
            compressor, whose linear settings are linear only over the stretch a window sees), 0.
        linear_threshold_db: a setting is linear when the share of its training target that no
            linear filter of its input explains is below this (dB; ``linear_residual_db``).
        linear_bands: 0: the linear penalty's share is over the whole band; more: per log-spaced
            frequency band of the window, the logs averaged (``nonlinear_band_log_share``).
        linearisation: what the linear penalty takes the model's linear part to be (``nonlinear_part``):
            ``"silence"``, its linearisation about silence (two extra runs of the model per window);
            ``"level"``, its change with the input's own level (one extra run; a gain that changes
            only toward silence, below the level the model is played at, is left alone).
        seed: seeds initialisation and window sampling.
        threads: torch intra-op threads while :func:`train` runs (0: leave torch's setting; the
            previous setting comes back when it returns, see :mod:`fxcap.modeling.compute_context`).
            One thread is the default: a 32-unit RNN gains little from more, and OpenMP threads spin
            when the cores are shared (``docs/quality.md``, "Measurements behind the code").
    """

    window: int | None = None
    batch_size: int = 16
    steps_per_epoch: int | None = None
    max_epochs: int = 50
    lr: float = 1e-3
    lr_schedule: str = "plateau"
    lr_patience: int = 2
    lr_factor: float = 0.5
    warmup_steps: int = 0
    lr_min_factor: float = 0.02
    early_stop_patience: int = 6
    grad_clip: float = 3.0
    l1_weight: float = 1.0
    stft_weight: float = 0.1
    pre_emphasis: bool = True
    esr_weight: float = 0.0
    dc_weight: float = 0.0
    esr_emphasis: float = 0.0
    loss_skip: int | None = 0
    esr_per_setting: bool = False
    tbptt_windows: int = 1
    stft_warmup_steps: int = 0
    valid_window: int | None = None
    valid_windows: int | None = 64
    max_skipped_steps: int = 20
    max_recoveries: int = 3
    recovery_lr_factor: float = 0.3
    time_budget_s: float | None = None
    even_penalty: float = 0.0
    linear_penalty: float | None = 0.0
    linear_threshold_db: float = -25.0
    linear_bands: int = 0
    linearisation: str = "silence"
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ModelError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        positive = {"batch_size": self.batch_size, "max_epochs": self.max_epochs, "lr": self.lr, "grad_clip": self.grad_clip}
        for name, value in positive.items():
            if not value > 0:
                raise ModelError(f"{name} must be positive, got {value}")
        non_negative = {"l1_weight": self.l1_weight, "stft_weight": self.stft_weight, "esr_weight": self.esr_weight, "even_penalty": self.even_penalty,
                        "linear_penalty": 0 if self.linear_penalty is None else self.linear_penalty, "linear_bands": self.linear_bands,
                        "dc_weight": self.dc_weight, "loss_skip": 0 if self.loss_skip is None else self.loss_skip,
                        "stft_warmup_steps": self.stft_warmup_steps,
                        "warmup_steps": self.warmup_steps}
        for name, value in non_negative.items():
            if not value >= 0:
                raise ModelError(f"{name} must be zero or positive, got {value}")
        # None means "the default"; 0 never does (it is refused, not read as unset)
        for name in ("window", "steps_per_epoch", "valid_window", "valid_windows"):
            value = getattr(self, name)
            if value is not None and not value >= 1:
                raise ModelError(f"{name} must be a positive whole number (or unset), got {value}")
        at_least_one = {"early_stop_patience": self.early_stop_patience, "max_skipped_steps": self.max_skipped_steps,
                        "tbptt_windows": self.tbptt_windows}
        for name, value in at_least_one.items():
            if not value >= 1:
                raise ModelError(f"{name} must be at least 1, got {value}")
        if not self.lr_patience >= 0 or not 0.0 < self.lr_factor < 1.0 or not 0.0 <= self.lr_min_factor <= 1.0:
            raise ModelError("lr_patience must be >= 0, lr_factor in (0, 1) and lr_min_factor in [0, 1], got "
                             f"{self.lr_patience}, {self.lr_factor} and {self.lr_min_factor}")
        if isinstance(self.linear_bands, bool) or not isinstance(self.linear_bands, int):
            raise ModelError(f"linear_bands must be a whole number of frequency bands (0: one, the whole band), got {self.linear_bands!r}")
        if self.linearisation not in LINEARISATIONS:
            raise ModelError(f"linearisation must be {' or '.join(map(repr, LINEARISATIONS))}, not {self.linearisation!r}")
        if self.threads < 0:
            raise ModelError(f"threads must be 0 (torch's default) or positive, got {self.threads}")
        if self.max_recoveries < 0 or not 0.0 < self.recovery_lr_factor < 1.0:
            raise ModelError("max_recoveries must be >= 0 and recovery_lr_factor in (0, 1), got "
                             f"{self.max_recoveries} and {self.recovery_lr_factor}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ModelError(f"time_budget_s must be positive (or unset), got {self.time_budget_s}")
        if not 0.0 <= self.esr_emphasis < 1.0:
            raise ModelError(f"esr_emphasis must be in [0, 1), got {self.esr_emphasis}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_device(self, kind: str) -> "TrainConfig":
        """This config with the settings left to the device's kind (``linear_penalty=None``) decided:
        :data:`DEVICE_LINEAR_PENALTY` for any kind but a dynamics processor
        (:data:`fxcap.dataset.schema.DYNAMICS_KINDS`), which gets 0: measured on the virtual LA-2A, the
        penalty at its linear settings cost the compressing ones far more than it gained
        (``docs/quality.md``)."""
        if self.linear_penalty is not None:
            return self
        return replace(self, linear_penalty=0.0 if kind.lower() in DYNAMICS_KINDS else DEVICE_LINEAR_PENALTY)
