"""The embedding gradient without NumPy's sort, gather and ``np.add.reduceat`` passes (~0.3-0.5 ms
of the char LM's 2-thread step, 1600 ids of 64 values, one thread working while the other waits):
a counting sort of the ids, then each id's rows summed in place, with exactly the additions
NumPy's ``add.reduceat`` makes (its first row, plus the pairwise sum of the others, as NumPy's
``pairwise_sum`` orders it), so the result is bit-identical."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import JIT as _JIT

_BLOCK = 128  # NumPy's PW_BLOCKSIZE: below it, eight running sums; above, halves


@njit(**_JIT)
def _pairwise(rows, order, a, n, out):
    """``out (E,) =`` NumPy's ``pairwise_sum`` of the rows ``order[a : a + n]``, column by
    column (each column's additions in NumPy's order; the columns side by side)."""
    E = out.shape[0]
    if n < 8:
        for e in range(E):
            out[e] = 0
        for i in range(a, a + n):
            r = rows[order[i]]
            for e in range(E):
                out[e] += r[e]
    elif n <= _BLOCK:
        acc = np.empty((8, E), out.dtype)
        for j in range(8):
            acc[j] = rows[order[a + j]]
        m = n - n % 8
        for i in range(a + 8, a + m, 8):
            for j in range(8):
                r = rows[order[i + j]]
                for e in range(E):
                    acc[j, e] += r[e]
        for e in range(E):
            out[e] = ((acc[0, e] + acc[1, e]) + (acc[2, e] + acc[3, e])) + (
                (acc[4, e] + acc[5, e]) + (acc[6, e] + acc[7, e])
            )
        for i in range(a + m, a + n):
            r = rows[order[i]]
            for e in range(E):
                out[e] += r[e]
    else:
        n2 = n // 2
        n2 -= n2 % 8
        right = np.empty(E, out.dtype)
        _pairwise(rows, order, a, n2, out)
        _pairwise(rows, order, a + n2, n - n2, right)
        for e in range(E):
            out[e] += right[e]


@njit(**_JIT)
def embedding_grad(ids, rows, out):
    """``out[k] =`` the sum of the rows ``rows[i]`` with ``ids[i] == k`` (zero for an id that
    does not occur), as ``np.add.reduceat`` sums the stably sorted rows: the first row plus the
    pairwise sum of the rest. ``ids (n,) int64`` in ``[0, len(out))`` (checked by the caller),
    ``rows (n, E)``, ``out (V, E)``."""
    V, E = out.shape
    start = np.zeros(V + 1, np.int64)  # counting sort: stable, so each id's rows keep their order
    for i in range(ids.shape[0]):
        start[ids[i] + 1] += 1
    for k in range(V):
        start[k + 1] += start[k]
    order = np.empty(ids.shape[0], np.int64)
    fill = start[:V].copy()
    for i in range(ids.shape[0]):
        order[fill[ids[i]]] = i
        fill[ids[i]] += 1
    rest = np.empty(E, out.dtype)
    for k in range(V):
        a, n = start[k], start[k + 1] - start[k]
        if n == 0:
            for e in range(E):
                out[k, e] = 0
            continue
        first = rows[order[a]]
        for e in range(E):
            out[k, e] = first[e]
        if n > 1:
            _pairwise(rows, order, a + 1, n - 1, rest)
            for e in range(E):
                out[k, e] += rest[e]
