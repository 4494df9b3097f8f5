"""The Adam update as one pass over the flat vectors of :class:`lstmkit.optimizers.base.
_FlatStep`: the NumPy update (``optimizers/adam.py``) makes ten passes and six temporaries over
every parameter (the char LM's 245k: ~1.2 ms of a 2-thread step, one thread working while the
other waits). Each element goes through exactly the NumPy update's float operations, in its
order and float type (no fused multiply-add: numba compiles without fast-math), so the weights
and slots are bit-identical.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import JIT as _JIT


@njit(**_JIT)
def adam_flat(p, g, m, v, c1, c2, alpha, eps):
    """In place, every ``i``, in the float type of the arrays (the scalars given in it)::

    m += c1 * (g - m);  v += c2 * (g * g - v);  p -= alpha * m / (sqrt(v) + eps)

    with ``c1 = 1 - beta_1``, ``c2 = 1 - beta_2``: ``Adam._update`` term by term."""
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] + c1 * (gi - m[i])
        vi = v[i] + c2 * (gi * gi - v[i])
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - alpha * mi / (np.sqrt(vi) + eps)


# --- the clipnorm's sum of squares ------------------------------------------------------------
#
# ``Optimizer._clip`` takes the norm as ``sum over the gradients, in order, of float(np.sum(
# np.square(g, dtype=np.float64)))``: seven NumPy reductions and a squaring pass for the
# forecaster's seven arrays (~25 us of a ~700 us step). NumPy sums a contiguous float64 array
# pairwise (``pairwise_sum`` of ``numpy/_core/src/umath/loops_utils.h.src``: eight partial sums
# over blocks of at most 128 values, halves of longer runs at a multiple of 8); the functions
# below run that very order on the squares as they read them, so the total is bit-identical
# (tests/test_optimizer_flat.py compares them with np.add.reduce on sizes from 1 to 400k).

_PW_BLOCK = 128


@njit(**_JIT)
def _sq(g, i):
    """``np.square(g[i], dtype=np.float64)``: the value cast, then squared in float64."""
    x = np.float64(g[i])
    return x * x


@njit(**_JIT)
def _pairwise_squares(g, lo, n):
    """NumPy's pairwise sum of ``float64(g[lo + i]) ** 2`` for ``i < n``."""
    if n < 8:
        res = -0.0  # (NumPy starts from -0.0: the additive identity to the bit)
        for i in range(n):
            res += _sq(g, lo + i)
        return res
    if n <= _PW_BLOCK:  # eight partial sums, then the rest one by one
        r0, r1, r2, r3 = _sq(g, lo), _sq(g, lo + 1), _sq(g, lo + 2), _sq(g, lo + 3)
        r4, r5, r6, r7 = _sq(g, lo + 4), _sq(g, lo + 5), _sq(g, lo + 6), _sq(g, lo + 7)
        i = 8
        while i < n - (n % 8):
            k = lo + i
            r0, r1, r2, r3 = (
                r0 + _sq(g, k),
                r1 + _sq(g, k + 1),
                r2 + _sq(g, k + 2),
                r3 + _sq(g, k + 3),
            )
            r4, r5, r6, r7 = (
                r4 + _sq(g, k + 4),
                r5 + _sq(g, k + 5),
                r6 + _sq(g, k + 6),
                r7 + _sq(g, k + 7),
            )
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += _sq(g, lo + i)
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_squares(g, lo, n2) + _pairwise_squares(g, lo + n2, n - n2)


@njit(**_JIT)
def sum_squares(g, bounds):
    """``total = 0; for (a, b) in bounds: total += float(np.sum(np.square(g[a:b],
    dtype=np.float64)))`` for a 1-D contiguous ``g`` and ``bounds (k, 2)`` int64, in that order:
    the clipnorm's squared norm of the gradients gathered in ``g``."""
    total = 0.0
    for k in range(bounds.shape[0]):
        a, b = bounds[k, 0], bounds[k, 1]
        total += _pairwise_squares(g, a, b - a)
    return total
