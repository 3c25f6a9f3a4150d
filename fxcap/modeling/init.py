"""Weight initialisation (the authors' released code has none; these are the fxcap rules).

Plain recurrent cells (every scheme's main cell, the DynamicHyper's hyper cell):
    * input weights ``W_x``: Xavier-uniform, per gate block (fan-in = input size, fan-out = H);
    * recurrent weights ``W_h``: orthogonal, per ``H x H`` gate block (keeps gradients from exploding
      or vanishing through time at the start of training);
    * biases zero, except the LSTM forget gate, whose input bias is +1 (remember by default).
Output layer ``Linear(H, 1)``: Xavier-uniform weight, zero bias (no DC offset at init).

Hypernetworks are initialised so that, at init, the conditioned model *is* a well-initialised plain
RNN and the knobs only perturb it slightly (``HEAD_INIT_GAIN`` = 0.1 of a Xavier-uniform head):
    * FiLM: head bias gives scale 1 and shift 0 for every gate; small head weights.
    * StaticHyper: head biases are a freshly initialised base cell (Xavier ``W_x``, orthogonal
      ``W_h``, zero / forget +1 biases); small head weights, so generated weights = base + small.
    * DynamicHyper: the scaling vectors are parametrised as ``d = 1 + P z``, with small ``P``
      (see :mod:`fxcap.modeling.dynamic_hyper`), so ``d_x, d_h`` start near 1 and ``d_b`` near 0.
Hidden layers of the conditioning MLPs: Xavier-uniform with the activation's gain, zero biases.
Head weights are small but not zero, so every parameter gets a gradient from the first step.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_INIT_GAIN = 0.1
"""Scale of hypernetwork head weights relative to a Xavier-uniform init."""

FORGET_BIAS = 1.0
"""Initial LSTM forget-gate bias."""


def gate_bias(cell: str, hidden_size: int, forget: float = FORGET_BIAS) -> torch.Tensor:
    """A ``(G*H,)`` bias vector: zeros, with ``forget`` in the LSTM forget-gate block (gate order i, f, g, o)."""
    gates = 3 if cell == "gru" else 4
    bias = torch.zeros(gates * hidden_size)
    if cell == "lstm":
        bias[hidden_size : 2 * hidden_size] = forget
    return bias


@torch.no_grad()
def init_input_weight(weight: torch.Tensor, hidden_size: int) -> torch.Tensor:
    """Xavier-uniform init of each ``(H, in)`` gate block of a ``(G*H, in)`` input weight, in place."""
    for block in weight.split(hidden_size, dim=0):
        nn.init.xavier_uniform_(block)
    return weight


@torch.no_grad()
def init_hidden_weight(weight: torch.Tensor, hidden_size: int) -> torch.Tensor:
    """Orthogonal init of each ``(H, H)`` gate block of a ``(G*H, H)`` recurrent weight, in place."""
    for block in weight.split(hidden_size, dim=0):
        nn.init.orthogonal_(block)
    return weight


@torch.no_grad()
def init_recurrent(
    cell: str,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor | None = None,
    bias_hh: torch.Tensor | None = None,
) -> None:
    """Initialise one cell's weights in place (Xavier input, orthogonal recurrent, zero/forget biases)."""
    hidden = weight_hh.shape[1]
    init_input_weight(weight_ih, hidden)
    init_hidden_weight(weight_hh, hidden)
    if bias_ih is not None:
        bias_ih.copy_(gate_bias(cell, hidden))
    if bias_hh is not None:
        bias_hh.zero_()


@torch.no_grad()
def init_mlp(mlp: nn.Module, activation: str) -> None:
    """Xavier-uniform (with the activation's gain) and zero bias for every ``nn.Linear`` in ``mlp``."""
    gain = nn.init.calculate_gain("relu" if activation in ("relu", "elu", "gelu") else "tanh")
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, gain=gain)
            if module.bias is not None:
                module.bias.zero_()


@torch.no_grad()
def init_head(linear: nn.Linear, bias: torch.Tensor | None = None) -> None:
    """A hypernetwork head: Xavier-uniform weight times :data:`HEAD_INIT_GAIN`, bias set to ``bias`` (or 0)."""
    nn.init.xavier_uniform_(linear.weight, gain=HEAD_INIT_GAIN)
    if linear.bias is not None:
        if bias is None:
            linear.bias.zero_()
        else:
            linear.bias.copy_(bias.reshape(-1))


@torch.no_grad()
def init_output(linear: nn.Linear) -> None:
    """The ``Linear(H, 1)`` output layer: Xavier-uniform weight, zero bias."""
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        linear.bias.zero_()
