"""The numpy GRU/LSTM that check exported files, against PyTorch's own cells with random weights and
biases (every bias non-zero, input and recurrent biases different), converted to Keras's layout here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fxcap.modeling.export.cells_numpy import gru_sequence, lstm_sequence

IN, HIDDEN, STEPS = 3, 5, 40


def _random(cell: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.copy_(0.6 * torch.randn(parameter.shape, generator=g, dtype=parameter.dtype))
    return cell


def _inputs() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((STEPS, IN))


def test_gru_sequence_equals_torch_gru():
    cell = _random(torch.nn.GRU(IN, HIDDEN, batch_first=True, dtype=torch.float64))
    x = _inputs()
    with torch.no_grad():
        expected = cell(torch.from_numpy(x)[None])[0][0].numpy()
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in (cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, cell.bias_hh_l0))
    keras = np.concatenate([np.arange(HIDDEN, 2 * HIDDEN), np.arange(HIDDEN), np.arange(2 * HIDDEN, 3 * HIDDEN)])  # r,z,n -> z,r,h
    got = gru_sequence(x, w_ih[keras].T, w_hh[keras].T, np.stack([b_ih[keras], b_hh[keras]]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_sequence_equals_torch_lstm(with_state):
    cell = _random(torch.nn.LSTM(IN, HIDDEN, batch_first=True, dtype=torch.float64))
    x = _inputs()
    rng = np.random.default_rng(5)
    h0, c0 = (rng.standard_normal(HIDDEN) if with_state else np.zeros(HIDDEN) for _ in range(2))
    with torch.no_grad():
        state = (torch.from_numpy(h0)[None, None], torch.from_numpy(c0)[None, None])
        expected = cell(torch.from_numpy(x)[None], state)[0][0].numpy()
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in (cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, cell.bias_hh_l0))
    got = lstm_sequence(x, w_ih.T, w_hh.T, b_ih + b_hh, *((h0, c0) if with_state else ()))  # same gate order i, f, g, o
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
