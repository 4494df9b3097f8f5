"""The sparse softmax cross-entropy from logits and its gradient in one pass over the logits.

The NumPy form (``losses/probabilistic.py``) makes eight passes and three temporaries over the
``(N, C)`` logits (max, shift, exp, sum, take, divide, put, scale): ~0.3 ms of the char LM's
2-thread step (1600 x 75), one thread working while the other waits, where PyTorch's
``cross_entropy`` takes ~0.15 ms. Here each row is read once into cache and written once as the
gradient, with the NumPy form's float operations in its order and float type, except for two:
the row's sum takes eight running sums (NumPy's order for rows of up to 128 classes; beyond,
eight running sums all along, not NumPy's pairwise halves), and float32's ``exp`` is the vectorised polynomial of ``activations.py`` (within 3 ulp;
numba's libm ``expf`` does not vectorise: 0.45 ms for the char LM's logits), float64's
``math.exp``. The results agree with NumPy's to a few ulp, not bit for bit; the loss is summed
in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import JIT as _JIT
from .activations import _EXP_LOW, _exp32_24
from .common import in_parallel, split

_INV_BIG = np.float32(2.0**-24)


@njit(**_JIT)
def _exp_row32(v, m, out):
    """``out[c] = exp(v[c] - m)`` for float32 (``v[c] <= m``), vectorised: the sigmoid's
    ``2**24 exp`` (``activations._exp32_24``) scaled back by ``2**-24``; below -104 (where exp
    rounds to 0) clamped."""
    for c in range(v.shape[0]):
        out[c] = _exp32_24(max(v[c] - m, _EXP_LOW)) * _INV_BIG


@njit(**_JIT)
def _exp_row64(v, m, out):
    for c in range(v.shape[0]):
        out[c] = np.exp(v[c] - m)


@njit(**_JIT)
def _row_sum(g):
    """NumPy's ``pairwise_sum`` order for up to 128 values: eight running sums, added in pairs,
    then the tail; for more, eight running sums all along (not NumPy's order)."""
    C = g.shape[0]
    if C < 8:
        s = g[0]
        for c in range(1, C):
            s += g[c]
        return s
    r0, r1, r2, r3, r4, r5, r6, r7 = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]
    m = C - C % 8
    for c in range(8, m, 8):
        r0 += g[c]
        r1 += g[c + 1]
        r2 += g[c + 2]
        r3 += g[c + 3]
        r4 += g[c + 4]
        r5 += g[c + 5]
        r6 += g[c + 6]
        r7 += g[c + 7]
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for c in range(m, C):
        s += g[c]
    return s


@njit(**_JIT)
def _row_max(v):
    """The largest value, by eight running maxima (one chain of compares would wait on each)."""
    C = v.shape[0]
    m = v[0]
    if C < 8:
        for c in range(1, C):
            m = max(m, v[c])
        return m
    r0, r1, r2, r3, r4, r5, r6, r7 = v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
    M = C - C % 8
    for c in range(8, M, 8):
        r0 = max(r0, v[c])
        r1 = max(r1, v[c + 1])
        r2 = max(r2, v[c + 2])
        r3 = max(r3, v[c + 3])
        r4 = max(r4, v[c + 4])
        r5 = max(r5, v[c + 5])
        r6 = max(r6, v[c + 6])
        r7 = max(r7, v[c + 7])
    m = max(max(max(r0, r1), max(r2, r3)), max(max(r4, r5), max(r6, r7)))
    for c in range(M, C):
        m = max(m, v[c])
    return m


def _make(exp_row):
    @njit(**_JIT)
    def kernel(z, labels, scale, grad):
        N, C = z.shape
        total = 0.0
        for n in range(N):
            row = z[n]
            g = grad[n]
            m = _row_max(row)
            exp_row(row, m, g)  # g = exp(z - max)
            s = _row_sum(g)
            k = labels[n]
            total += np.log(np.float64(s)) - np.float64(row[k] - m)
            ek = g[k]
            for c in range(C):
                g[c] = (g[c] / s) * scale
            g[k] = (ek / s - 1) * scale  # softmax - onehot, as NumPy: divide, subtract, scale
        return total

    return kernel


_KERNELS = {np.dtype(np.float32): _make(_exp_row32), np.dtype(np.float64): _make(_exp_row64)}


def sparse_xent(z, labels, scale, grad):
    """``z (N, C)`` logits (float32 or float64, C-contiguous), ``labels (N,)`` int64 class ids in
    ``[0, C)`` (checked by the caller), ``scale`` (``1 / N`` in ``z``'s float type). Writes
    ``grad (N, C) = scale * (softmax(z) - onehot(labels))`` and returns ``sum_n (log sum_c
    exp(z_nc - max_n) - (z_n,label - max_n))`` (a float64), the loss before the division by
    ``N``. Rows split over the threads (the char LM's 1600 x 75: ~0.16 ms on one)."""
    kernel = _KERNELS[z.dtype]
    N, C = z.shape

    def rows(a, b):
        return kernel(z[a:b], labels[a:b], scale, grad[a:b])

    # ~25 multiply-adds' worth of work an element (exp, max, sum, division)
    return sum(in_parallel(split(N, N * C * _COST), rows, 0))


_COST = 25
