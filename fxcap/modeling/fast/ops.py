"""Numba building blocks of the kernels: activations, weight products, and GRU/LSTM steps forward and back.

Everything here is inlined into the kernels (``inline="always"``) and is generic in the float type:
float32 (the fast path) and float64 (what ``torch.autograd.gradcheck`` uses on the training kernels).

* :func:`act_tanh` / :func:`act_sigmoid`: for float32 :func:`tanh_fast`, a rational approximation
  (max abs error 2.6e-7, vectorisable) and ``sigmoid(x) = (1 + tanh(x/2)) / 2``; for float64 libm.
* Weights are stored transposed, ``(inputs, outputs)``: :func:`matvec` computes all gates at once over
  contiguous rows; :func:`matvec_rows` is the product with the transpose (the backward pass) and
  :func:`outer_acc` accumulates a weight gradient.
* Gate order is PyTorch's (GRU r, z, n; LSTM i, f, g, o) as in :mod:`fxcap.modeling.cells`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from fxcap.numba_cache import cache_sources

FAST = dict(fastmath=True, error_model="numpy", boundscheck=False)
"""Options of every numba function of the fast path: fast math (reassociation lets LLVM vectorise
reductions) and NumPy's error model (no division-by-zero checks, which otherwise block vectorisation)."""

KERNEL = dict(FAST, nogil=True, cache=cache_sources(__file__))
"""Options of compiled entry points: also release the GIL and cache the machine code on disk, keyed to
every source of this folder (the kernels inline this module's helpers: :mod:`fxcap.numba_cache`)."""

F32 = np.float32
_CLAMP = F32(7.90531110763549805)  # |x| beyond which tanh_fast returns +-1 (to float32 precision)


@njit(inline="always", **FAST)
def tanh_fast(x):
    """tanh(x) for float32 by a [13/6] rational approximation (Eigen's), clamped; max abs error 2.6e-7."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = F32(-2.76076847742355e-16)
    p = p * x2 + F32(2.00018790482477e-13)
    p = p * x2 + F32(-8.60467152213735e-11)
    p = p * x2 + F32(5.12229709037114e-08)
    p = p * x2 + F32(1.48572235717979e-05)
    p = p * x2 + F32(6.37261928875436e-04)
    p = p * x2 + F32(4.89352455891786e-03)
    q = F32(1.19825839466702e-06)
    q = q * x2 + F32(1.18534705686654e-04)
    q = q * x2 + F32(2.26843463243900e-03)
    q = q * x2 + F32(4.89352518554385e-03)
    return x * p / q


@njit(inline="always", **FAST)
def sigmoid_fast(x):
    """sigmoid(x) = 0.5 + 0.5 tanh(x / 2) with :func:`tanh_fast`; max abs error 1.6e-7."""
    return F32(0.5) + F32(0.5) * tanh_fast(F32(0.5) * x)


def act_tanh(x):
    """tanh for kernels: :func:`tanh_fast` for float32, libm's for float64 (chosen when compiling)."""
    return math.tanh(x)


def act_sigmoid(x):
    """sigmoid for kernels: :func:`sigmoid_fast` for float32, ``1 / (1 + exp(-x))`` for float64."""
    return 1.0 / (1.0 + math.exp(-x))


def one(x):
    """The constant 1 in the type of ``x`` (a bare ``1.0`` would promote float32 arithmetic to float64)."""
    return 1.0


@overload(act_tanh, inline="always", jit_options=FAST)
def _act_tanh(x):
    if x == types.float32:
        return lambda x: tanh_fast(x)
    return lambda x: math.tanh(x)


@overload(act_sigmoid, inline="always", jit_options=FAST)
def _act_sigmoid(x):
    if x == types.float32:
        return lambda x: sigmoid_fast(x)
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@overload(one, inline="always")
def _one(x):
    if x == types.float32:
        return lambda x: F32(1)
    return lambda x: 1.0


def zero(x):
    """The constant 0 in the type of ``x``."""
    return 0.0


@overload(zero, inline="always")
def _zero(x):
    if x == types.float32:
        return lambda x: F32(0)
    return lambda x: 0.0


@njit(inline="always", **FAST)
def matvec(out, w, v, n_in, n_out):
    """``out[g] = sum_j v[j] * w[j, g]`` for ``g < n_out`` (``w`` is ``(n_in, n_out)``, a transposed weight).

    The loop over ``j`` is unrolled by four so each pass over ``out`` does four multiply-adds per
    element; the loop over ``g`` runs over contiguous memory and vectorises.
    """
    for g in range(n_out):
        out[g] = 0
    n4 = n_in - n_in % 4
    for j in range(0, n4, 4):
        v0, v1, v2, v3 = v[j], v[j + 1], v[j + 2], v[j + 3]
        for g in range(n_out):
            out[g] += (v0 * w[j, g] + v1 * w[j + 1, g]) + (v2 * w[j + 2, g] + v3 * w[j + 3, g])
    for j in range(n4, n_in):
        vj = v[j]
        for g in range(n_out):
            out[g] += vj * w[j, g]


@njit(inline="always", **FAST)
def block_project(d, z, P, n_blocks, n_z, n):
    """``d[k*n:(k+1)*n] = P[k].T @ z[k*n_z:(k+1)*n_z]`` for every block ``k`` (``P`` is ``(n_blocks, n_z, n)``).

    Loops ``n`` outermost (four at a time) and over all blocks inside, so each pass streams the whole
    of ``d`` contiguously (a loop per block with ``n_z`` of 12 does not vectorise well).
    """
    for g in range(n_blocks * n):
        d[g] = 0
    n4 = n_z - n_z % 4
    for j in range(0, n4, 4):
        for k in range(n_blocks):
            base = k * n_z + j
            z0, z1, z2, z3 = z[base], z[base + 1], z[base + 2], z[base + 3]
            for i in range(n):
                d[k * n + i] += (z0 * P[k, j, i] + z1 * P[k, j + 1, i]) + (z2 * P[k, j + 2, i] + z3 * P[k, j + 3, i])
    for j in range(n4, n_z):
        for k in range(n_blocks):
            zk = z[k * n_z + j]
            for i in range(n):
                d[k * n + i] += zk * P[k, j, i]


@njit(inline="always", **FAST)
def matmat(out, w, v, nb, n_in, n_out):
    """:func:`matvec` for ``nb`` streams at once: ``out[b, g] = sum_j v[b, j] * w[j, g]``.

    Each group of four weight rows is used for all streams while it is in L1, so a weight matrix
    larger than L1 is read from L2 once per ``nb`` streams instead of once per stream.
    """
    for b in range(nb):
        for g in range(n_out):
            out[b, g] = 0
    n4 = n_in - n_in % 4
    for j in range(0, n4, 4):
        for b in range(nb):
            v0, v1, v2, v3 = v[b, j], v[b, j + 1], v[b, j + 2], v[b, j + 3]
            for g in range(n_out):
                out[b, g] += (v0 * w[j, g] + v1 * w[j + 1, g]) + (v2 * w[j + 2, g] + v3 * w[j + 3, g])
    for j in range(n4, n_in):
        for b in range(nb):
            vj = v[b, j]
            for g in range(n_out):
                out[b, g] += vj * w[j, g]


@njit(inline="always", **FAST)
def block_project_streams(d, z, P, nb, n_blocks, n_z, n):
    """:func:`block_project` for ``nb`` streams at once (``d`` ``(nb, n_blocks*n)``, ``z`` ``(nb, .)``)."""
    for b in range(nb):
        for g in range(n_blocks * n):
            d[b, g] = 0
    n4 = n_z - n_z % 4
    for j in range(0, n4, 4):
        for k in range(n_blocks):
            for b in range(nb):
                base = k * n_z + j
                z0, z1, z2, z3 = z[b, base], z[b, base + 1], z[b, base + 2], z[b, base + 3]
                for i in range(n):
                    d[b, k * n + i] += (z0 * P[k, j, i] + z1 * P[k, j + 1, i]) + (z2 * P[k, j + 2, i] + z3 * P[k, j + 3, i])
    for j in range(n4, n_z):
        for k in range(n_blocks):
            for b in range(nb):
                zk = z[b, k * n_z + j]
                for i in range(n):
                    d[b, k * n + i] += zk * P[k, j, i]


@njit(inline="always", **FAST)
def copy_row(dst, src, n):
    """``dst[:n] = src[:n]`` as a plain loop (numba's slice assignment goes through a generic routine
    that costs about 15 % of a training kernel when used every step)."""
    for i in range(n):
        dst[i] = src[i]


@njit(inline="always")
def local_buffer(n, dtype):
    """A 64-byte aligned scratch array of ``n`` elements inside a kernel (numba aligns to 32 bytes only,
    so AVX-512 loads and stores of half the buffers would straddle cache lines)."""
    raw = np.empty(n + 16, dtype)
    start = (-raw.ctypes.data % 64) // raw.itemsize
    return raw[start : start + n]


@njit(inline="always")
def local_rows(rows, n, dtype):
    """A ``(rows, m)`` :func:`local_buffer` with ``m`` = ``n`` rounded up to 16 elements, so every row
    is aligned too (use the first ``n`` columns)."""
    width = (n + 15) // 16 * 16
    return local_buffer(rows * width, dtype).reshape((rows, width))


def aligned_empty(shape: tuple[int, ...], dtype=np.float32, alignment: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``alignment``-byte boundary (a cache
    line: AVX-512 loads of misaligned weights straddle two lines)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + size].view(dtype).reshape(shape)


def aligned_copy(a: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``a`` in :func:`aligned_empty` memory."""
    out = aligned_empty(a.shape, a.dtype, alignment)
    out[...] = a
    return out


def padded(n: int, multiple: int = 16) -> int:
    """``n`` rounded up to a multiple of 16 floats (one AVX-512 register): product loops over a
    padded length vectorise without a remainder."""
    return -(-n // multiple) * multiple


@njit(inline="always", **FAST)
def gru_update(h, gx, gh, n):
    """GRU update of ``h`` ``(n,)`` in place from pre-activations ``gx``, ``gh`` ``(3n,)`` (order r, z, n)."""
    for i in range(n):
        r = act_sigmoid(gx[i] + gh[i])
        z = act_sigmoid(gx[n + i] + gh[n + i])
        c = act_tanh(gx[2 * n + i] + r * gh[2 * n + i])
        h[i] = c + z * (h[i] - c)


@njit(inline="always", **FAST)
def lstm_update(h, c, gx, gh, n):
    """LSTM update of ``h``, ``c`` ``(n,)`` in place from ``gx``, ``gh`` ``(4n,)`` (order i, f, g, o)."""
    for k in range(n):
        i = act_sigmoid(gx[k] + gh[k])
        f = act_sigmoid(gx[n + k] + gh[n + k])
        g = act_tanh(gx[2 * n + k] + gh[2 * n + k])
        o = act_sigmoid(gx[3 * n + k] + gh[3 * n + k])
        c[k] = f * c[k] + i * g
        h[k] = o * act_tanh(c[k])




@njit(inline="always", **FAST)
def matvec_rows(out, w, v, n_in, n_out):
    """``out[j] += sum_g w[j, g] * v[g]`` for ``j < n_in``: the product with the transpose of the
    weight :func:`matvec` uses (gradient of its input)."""
    for j in range(n_in):
        acc = zero(out[j])
        for g in range(n_out):
            acc += w[j, g] * v[g]
        out[j] += acc


@njit(inline="always", **FAST)
def outer_acc(dw, a, v, n_in, n_out):
    """``dw[j, g] += a[j] * v[g]``: accumulate the gradient of a :func:`matvec` weight."""
    for j in range(n_in):
        aj = a[j]
        for g in range(n_out):
            dw[j, g] += aj * v[g]


@njit(inline="always", **FAST)
def block_project_back(dz, dP, z, dd, P, n_blocks, n_z, n):
    """Backward of :func:`block_project`: ``dz[k*n_z+j] = P[k, j] . dd[k*n:(k+1)*n]`` (overwritten) and
    ``dP[k, j] += z[k*n_z+j] * dd[k*n:(k+1)*n]``."""
    for k in range(n_blocks):
        for j in range(n_z):
            zk = z[k * n_z + j]
            acc = zero(dz[0])
            for i in range(n):
                acc += P[k, j, i] * dd[k * n + i]
                dP[k, j, i] += zk * dd[k * n + i]
            dz[k * n_z + j] = acc


@njit(inline="always", **FAST)
def gru_forward(h, gx, gh, n, gates, ghn):
    """:func:`gru_update` that also saves what the backward pass needs: ``gates`` ``(3n,)`` = r, z and
    the candidate, ``ghn`` ``(n,)`` = the hidden-side candidate pre-activation (the part ``r`` gates)."""
    for i in range(n):
        r = act_sigmoid(gx[i] + gh[i])
        z = act_sigmoid(gx[n + i] + gh[n + i])
        c = act_tanh(gx[2 * n + i] + r * gh[2 * n + i])
        gates[i] = r
        gates[n + i] = z
        gates[2 * n + i] = c
        ghn[i] = gh[2 * n + i]
        h[i] = c + z * (h[i] - c)


@njit(inline="always", **FAST)
def gru_backward(dh, h_prev, gates, ghn, n, dgx, dgh):
    """Backward of one GRU step: from ``dh`` (gradient of the new ``h``) writes the gradients of the
    pre-activations ``dgx``, ``dgh`` ``(3n,)`` and replaces ``dh`` by the direct part of the gradient
    of ``h_prev`` (through ``z``; the part through ``gh`` is added by the caller)."""
    for i in range(n):
        o = one(dh[i])
        r, z, c = gates[i], gates[n + i], gates[2 * n + i]
        d = dh[i]
        dc = d * (o - z) * (o - c * c)
        dr = dc * ghn[i] * r * (o - r)
        dz = d * (h_prev[i] - c) * z * (o - z)
        dgx[i] = dr
        dgx[n + i] = dz
        dgx[2 * n + i] = dc
        dgh[i] = dr
        dgh[n + i] = dz
        dgh[2 * n + i] = dc * r
        dh[i] = d * z


@njit(inline="always", **FAST)
def lstm_forward(h, c, gx, gh, n, gates):
    """:func:`lstm_update` that also saves the gates ``(4n,)`` (i, f, g, o); the caller saves ``c``."""
    for k in range(n):
        i = act_sigmoid(gx[k] + gh[k])
        f = act_sigmoid(gx[n + k] + gh[n + k])
        g = act_tanh(gx[2 * n + k] + gh[2 * n + k])
        o = act_sigmoid(gx[3 * n + k] + gh[3 * n + k])
        gates[k] = i
        gates[n + k] = f
        gates[2 * n + k] = g
        gates[3 * n + k] = o
        c[k] = f * c[k] + i * g
        h[k] = o * act_tanh(c[k])


@njit(inline="always", **FAST)
def lstm_backward(dh, dc, c_prev, c_new, gates, n, dpre):
    """Backward of one LSTM step: from ``dh``, ``dc`` (gradients of the new ``h``, ``c``) writes the
    gradient of the pre-activations ``dpre`` ``(4n,)`` (the same for ``gx`` and ``gh``), replaces ``dc``
    by the gradient of ``c_prev`` and zeroes ``dh`` (``h_prev`` only acts through ``gh``)."""
    for k in range(n):
        o1 = one(dh[k])
        i, f, g, o = gates[k], gates[n + k], gates[2 * n + k], gates[3 * n + k]
        tc = act_tanh(c_new[k])
        d = dh[k]
        dct = dc[k] + d * o * (o1 - tc * tc)
        dpre[k] = dct * g * i * (o1 - i)
        dpre[n + k] = dct * c_prev[k] * f * (o1 - f)
        dpre[2 * n + k] = dct * i * (o1 - g * g)
        dpre[3 * n + k] = d * tc * o * (o1 - o)
        dc[k] = dct * f
        dh[k] = 0
