"""The interface every conditioned RNN shares, and the knob bookkeeping they need.

``model(x, knobs, state=None) -> (y, state)``:

* ``x``: audio, ``(B, T)`` or ``(B, T, 1)``, any float dtype (cast to the model's dtype).
* ``knobs``: normalised knob values in [-1, 1], either constant ``(B, K)`` or a sequence
  ``(B, T, K)`` (knob automation: the value in force at each sample).
* ``state``: ``None`` (zero initial state) or the state returned by the previous call, so audio can
  be streamed block by block; the outputs equal one long call.
* ``y``: the prediction, same shape as ``x``; ``state``: a ``(B, state_size)`` tensor whose layout
  is the concatenation of the model's :attr:`ConditionedRNN.state_layout` parts along the last
  axis (e.g. ``[h]`` for a GRU, ``[h, c]`` for an LSTM, ``[h, c, h_hyper, c_hyper]`` for a
  DynamicHyper-LSTM). One flat tensor keeps streaming and export simple.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from fxcap.errors import ModelError
from fxcap.modeling.cells import GATES, cell_state_count
from fxcap.modeling.config import ModelConfig
from fxcap.modeling.init import init_output
from fxcap.modeling.schemes import accelerator


@dataclass
class ModelCost:
    """Compute of one model, counted from its weight shapes (see :mod:`fxcap.modeling.compute`).

    Attributes:
        macs_per_sample: multiply-adds of matrix products per audio sample (recurrent path + output).
        macs_per_change: multiply-adds of the hypernetwork, paid once per knob change.
        elementwise_per_sample: other arithmetic per sample (adds, products, nonlinearities).
    """

    macs_per_sample: int
    macs_per_change: int
    elementwise_per_sample: int


@dataclass
class CellWeights:
    """A plain GRU/LSTM cell in ``nn.GRU``/``nn.LSTM`` layout (PyTorch gate order), float64.

    What a model whose cell weights depend only on the knobs is at one fixed knob setting (see
    :meth:`ConditionedRNN.cell_at`): ``gx = weight_ih x + bias_ih``, ``gh = weight_hh h + bias_hh``,
    then the update of :mod:`fxcap.modeling.cells`, then the model's ``Linear(H, 1)`` output.

    Attributes:
        cell: ``gru`` or ``lstm``.
        weight_ih: ``(G*H, 1)`` input weights (mono audio).
        weight_hh: ``(G*H, H)`` recurrent weights.
        bias_ih: ``(G*H,)`` input-side bias.
        bias_hh: ``(G*H,)`` hidden-side bias (inside the GRU's reset product).
    """

    cell: str
    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: torch.Tensor
    bias_hh: torch.Tensor


@dataclass
class KnobSegments:
    """A knob sequence ``(B, T, K)`` stored as runs of constant values.

    Attributes:
        values: ``(U, K)`` the knob vector of every run (runs of all batch rows, row-major).
        index: ``(B, T)`` long, the row of ``values`` in force at each step.
        changed: per step ``t``, whether any batch row starts a new run at ``t`` (``changed[0]`` is True).
    """

    values: torch.Tensor
    index: torch.Tensor
    changed: list[bool]

    @classmethod
    def from_sequence(cls, knobs: torch.Tensor) -> "KnobSegments":
        """Split ``knobs`` ``(B, T, K)`` into runs (a new run wherever any knob of a row changes)."""
        batch, steps, _ = knobs.shape
        starts = torch.ones(batch, steps, dtype=torch.bool, device=knobs.device)
        starts[:, 1:] = (knobs[:, 1:] != knobs[:, :-1]).any(-1)
        flat = starts.reshape(-1)
        values = knobs.reshape(batch * steps, -1)[flat]
        index = (torch.cumsum(flat.long(), 0) - 1).reshape(batch, steps)
        return cls(values=values, index=index, changed=starts.any(0).tolist())

    def per_step(self, table: torch.Tensor) -> torch.Tensor:
        """Expand a per-run table ``(U, ...)`` to per-step values ``(B, T, ...)``."""
        return table[self.index]


class ConditionedRNN(nn.Module, ABC):
    """Base class: input checks, state packing and the ``Linear(H, 1)`` output layer.

    Subclasses implement :meth:`_run` (the recurrence) and :meth:`cost`, and may extend
    :attr:`state_layout`.
    """

    fast: bool = True
    """Run on the fast path (:mod:`fxcap.modeling.fast`, once imported: ``build_model`` imports it) when
    possible; set False for the reference."""

    folds_at_setting: bool = False
    """Whether the model is a plain GRU/LSTM at any fixed knob setting (:meth:`cell_at` works)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = config.cell
        self.hidden_size = config.hidden_size
        self.num_knobs = config.num_knobs
        self.gates = GATES[config.cell]

    def _make_output(self) -> None:
        """Create the output layer (called last by subclasses, so parameter order reads input -> output)."""
        self.output = nn.Linear(self.hidden_size, 1)
        init_output(self.output)

    # -- state -------------------------------------------------------------------------------------

    @property
    def state_layout(self) -> list[tuple[str, int]]:
        """Names and widths of the parts of the flat state, in order (main cell: ``h`` [, ``c``])."""
        names = ["h", "c"][: cell_state_count(self.cell)]
        return [(name, self.hidden_size) for name in names]

    @property
    def state_size(self) -> int:
        """Width of the flat state tensor ``(B, state_size)``."""
        return sum(width for _, width in self.state_layout)

    def init_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The zero initial state ``(batch, state_size)``."""
        ref = self.output.weight
        return torch.zeros(batch, self.state_size, device=device or ref.device, dtype=dtype or ref.dtype)

    def split_state(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split a flat state into its parts (see :attr:`state_layout`)."""
        return tuple(state.split([width for _, width in self.state_layout], dim=-1))

    # -- forward -----------------------------------------------------------------------------------

    def forward(
        self, x: torch.Tensor, knobs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Process audio ``x`` under ``knobs`` from ``state``; returns ``(y, new_state)`` (see module doc)."""
        ref = self.output.weight
        x, shape = audio_batch(x, ref)
        knobs = torch.as_tensor(knobs).to(device=ref.device, dtype=ref.dtype)
        batch, steps = x.shape
        self._check_knobs(knobs, batch, steps)
        if state is None:
            state = self.init_state(batch)
        else:
            state = torch.as_tensor(state).to(device=ref.device, dtype=ref.dtype)
            if state.shape != (batch, self.state_size):
                raise ModelError(
                    f"state must have shape ({batch}, {self.state_size}) for this model, got {tuple(state.shape)}; "
                    "pass the state returned by the previous call, or None"
                )
        if steps == 0:
            return x.reshape(shape), state
        if knobs.dim() == 3 and not bool((knobs[:, 1:] != knobs[:, :-1]).any()):
            knobs = knobs[:, 0]  # a constant sequence takes the constant path: identical results
        dispatch = accelerator()  # the fast path, installed by fxcap.modeling.fast when imported
        fast = None if dispatch is None else dispatch(self, x, knobs, state)  # None: run the reference below
        if fast is not None:
            return fast[0].reshape(shape), fast[1]
        hidden, parts = self._run(x.unsqueeze(-1), knobs, self.split_state(state))
        y = self.output(hidden)
        return y.reshape(shape), torch.cat(parts, dim=-1)

    def _check_knobs(self, knobs: torch.Tensor, batch: int, steps: int) -> None:
        k = self.num_knobs
        if knobs.dim() == 2 and knobs.shape == (batch, k):
            return
        if knobs.dim() == 3 and knobs.shape == (batch, steps, k):
            return
        raise ModelError(
            f"knobs must have shape ({batch}, {k}) or ({batch}, {steps}, {k}) for audio of shape "
            f"({batch}, {steps}) and a {k}-knob model, got {tuple(knobs.shape)}"
        )

    @abstractmethod
    def _run(
        self, x: torch.Tensor, knobs: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The recurrence: ``x`` ``(B, T, 1)``, knobs ``(B, K)`` (constant) or ``(B, T, K)`` (varying),
        state parts -> hidden states ``(B, T, H)`` and the final state parts."""

    def cell_at(self, knobs: torch.Tensor) -> CellWeights:
        """The plain cell this model is at the constant normalized knob setting ``knobs`` ``(K,)``.

        Computed in float64 from the model's own conditioning code, so the folded cell equals the
        model up to one float32 rounding of its weights. Raises :class:`ModelError` for schemes whose
        cell is not fixed by the knobs (:attr:`folds_at_setting` is False).
        """
        raise ModelError(f"the {self.config.cond} scheme is not a plain {self.cell.upper()} at a fixed knob setting")

    def _float64(self) -> "ConditionedRNN":
        """A float64 copy of the model (for exact folding with the model's own methods)."""
        return copy.deepcopy(self).double().eval()

    def _knob_row(self, knobs: torch.Tensor) -> torch.Tensor:
        """``knobs`` as a float64 ``(1, K)`` row, checked against the model's knob count."""
        row = torch.as_tensor(knobs, dtype=torch.float64).reshape(1, -1)
        if row.shape[1] != self.num_knobs:
            raise ModelError(f"a {self.num_knobs}-knob model needs {self.num_knobs} knob value(s), got {row.shape[1]}")
        return row

    @abstractmethod
    def cost(self) -> ModelCost:
        """Compute counted from the weight shapes (see :mod:`fxcap.modeling.compute`)."""

    def _output_cost(self) -> tuple[int, int]:
        """(MACs, elementwise ops) of the output layer per sample: H products, one bias add."""
        return self.hidden_size, 1


def audio_batch(x: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """Audio ``(B, T)`` or ``(B, T, 1)`` as a ``(B, T)`` tensor on ``like``'s device and dtype, and its
    original shape (outputs are returned in it); :class:`ModelError` for any other shape."""
    x = torch.as_tensor(x).to(device=like.device, dtype=like.dtype)
    shape = x.shape
    if x.dim() == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.dim() != 2:
        raise ModelError(f"audio must have shape (batch, time) or (batch, time, 1), got {tuple(shape)}")
    return x, shape


def time_steps(values: torch.Tensor, steps: int) -> list[torch.Tensor] | tuple[torch.Tensor, ...]:
    """Per-step views ``(B, D)`` of ``values`` ``(B, T, D)``, or ``steps`` references to the one row
    of a ``(B, 1, D)`` tensor (constant over time).

    Loops must take their per-step inputs from here rather than by indexing ``values[:, t]``: the
    backward of ``unbind`` is one ``stack``, whereas each indexed step's backward writes a full-size
    zero gradient (quadratic in ``T``).
    """
    if values.shape[1] == 1:
        return [values[:, 0]] * steps
    return values.unbind(1)


def make_mlp(in_features: int, sizes: tuple[int, ...], activation: str) -> nn.Sequential:
    """``Linear + activation`` blocks: ``in_features -> sizes[0] -> ... -> sizes[-1]``."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}[activation]
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_features, size), act()]
        in_features = size
    return nn.Sequential(*layers)


def mlp_macs(mlp: nn.Module) -> int:
    """Multiply-adds of one pass through the ``nn.Linear`` layers of ``mlp``."""
    return sum(m.weight.numel() for m in mlp.modules() if isinstance(m, nn.Linear))
