"""Gate arithmetic shared by every model, and the parameter block of a GRU/LSTM cell.

Each model computes, per time step, an *input-side* pre-activation ``gx`` (everything that does not
depend on the previous hidden state) and a *hidden-side* pre-activation ``gh`` (the part that does),
both of shape ``(B, G*H)`` in PyTorch's gate order (GRU: r, z, n; LSTM: i, f, g, o). The update
functions below then apply the standard PyTorch equations, so a model whose ``gx``/``gh`` are the plain
affine maps is exactly ``nn.GRU``/``nn.LSTM``:

GRU::

    r = sigmoid(gx_r + gh_r)          z = sigmoid(gx_z + gh_z)
    n = tanh(gx_n + r * gh_n)         h' = (1 - z) * n + z * h

LSTM::

    i, f, o = sigmoid(gx + gh)[i, f, o]   g = tanh(gx_g + gh_g)
    c' = f * c + i * g                    h' = o * tanh(c')

Note the GRU's ``r`` multiplies the whole hidden-side ``gh_n`` (including its bias), so conditioning
terms that must not be gated by ``r`` belong in ``gx``.
"""

from __future__ import annotations

import torch
from torch import nn

from fxcap.modeling.init import init_recurrent

GATES = {"gru": 3, "lstm": 4}
"""Number of gates G per cell type."""

ELEMENTWISE_OPS_PER_UNIT = {"gru": 10, "lstm": 14}
"""Elementwise operations per hidden unit of one update as implemented below (each add, product and
nonlinearity counts 1), used by :mod:`fxcap.modeling.compute`. GRU: 2 adds + 2 sigmoids (r, z),
product + add + tanh (n), subtract + product + add (h') = 10. LSTM: 4 adds (gx + gh), 4 sigmoids,
1 tanh (g), product + product + add (c'), tanh + product (h') = 14."""


def gru_update(gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update from pre-activations ``gx``, ``gh`` ``(B, 3H)`` and state ``h`` ``(B, H)``."""
    hidden = h.shape[-1]
    rz = torch.sigmoid(gx[:, : 2 * hidden] + gh[:, : 2 * hidden])
    r, z = rz[:, :hidden], rz[:, hidden:]
    n = torch.tanh(torch.addcmul(gx[:, 2 * hidden :], r, gh[:, 2 * hidden :]))
    return torch.addcmul(n, z, h - n)


def lstm_update(
    gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activations ``gx``, ``gh`` ``(B, 4H)`` and state ``(h, c)``; returns ``(h', c')``."""
    hidden = h.shape[-1]
    pre = gx + gh
    act = torch.sigmoid(pre)
    i, f, o = act[:, :hidden], act[:, hidden : 2 * hidden], act[:, 3 * hidden :]
    g = torch.tanh(pre[:, 2 * hidden : 3 * hidden])
    c_new = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c_new), c_new


def cell_update(cell: str, gx: torch.Tensor, gh: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Apply :func:`gru_update` (state ``(h,)``) or :func:`lstm_update` (state ``(h, c)``)."""
    if cell == "gru":
        return (gru_update(gx, gh, state[0]),)
    return lstm_update(gx, gh, state[0], state[1])


def cell_state_count(cell: str) -> int:
    """How many ``(B, H)`` tensors the cell's state has: GRU 1 (``h``), LSTM 2 (``h, c``)."""
    return 1 if cell == "gru" else 2


class RecurrentWeights(nn.Module):
    """The weights of one GRU/LSTM cell, laid out like ``nn.GRUCell``/``nn.LSTMCell``.

    ``weight_ih`` ``(G*H, input_size)``, ``weight_hh`` ``(G*H, H)``, ``bias_ih`` and ``bias_hh``
    ``(G*H,)``; ``G*H*(input_size + H + 2)`` parameters. The models use these tensors directly so
    that input-side products can be computed for all time steps at once.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = GATES[cell] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        init_recurrent(self.cell, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    @property
    def macs(self) -> int:
        """Multiply-adds of one step (``weight_ih @ x + weight_hh @ h``)."""
        return self.weight_ih.numel() + self.weight_hh.numel()
