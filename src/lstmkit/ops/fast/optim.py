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
