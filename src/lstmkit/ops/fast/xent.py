"""The sparse softmax cross-entropy from logits and its gradient in one pass over the logits.

The NumPy form (``losses/probabilistic.py``) makes eight passes and three temporaries over the
``(N, C)`` logits (max, shift, exp, sum, take, divide, put, scale): ~0.3 ms of the char LM's
2-thread step (1600 x 75), one thread working while the other waits, where PyTorch's
``cross_entropy`` takes ~0.15 ms. Here each row is read once into cache and written once as the
gradient, with the NumPy form's float operations in its order and float type (the row's sum is
sequential where NumPy's is pairwise, and ``exp`` is numba's, not NumPy's SIMD one: the results
agree to a few ulp, not bit for bit). The loss is summed in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import JIT as _JIT


@njit(**_JIT)
def sparse_xent(z, labels, scale, grad):
    """``z (N, C)`` logits, ``labels (N,)`` class ids in ``[0, C)`` (checked by the caller),
    ``scale`` (``1 / N`` in ``z``'s float type). Writes ``grad (N, C) = scale * (softmax(z) -
    onehot(labels))`` and returns ``sum_n (log sum_c exp(z_nc - max_n) - (z_n,label - max_n))``
    (float64), the loss before the division by ``N``."""
    N, C = z.shape
    total = 0.0
    for n in range(N):
        row = z[n]
        g = grad[n]
        m = row[0]
        for c in range(1, C):
            m = max(m, row[c])
        s = row[0] - row[0]  # zero in the row's float type
        for c in range(C):
            e = np.exp(row[c] - m)
            g[c] = e
            s += e
        k = labels[n]
        total += np.log(np.float64(s)) - np.float64(row[k] - m)
        for c in range(C):
            g[c] = g[c] / s
        g[k] = g[k] - 1
        for c in range(C):
            g[c] = g[c] * scale
    return total
