"""Argument plumbing shared by the compiled cells: dtype/contiguity and optional-mask stand-ins.

The kernels take every optional array as a real array plus a flag, so each kernel compiles once
per float type instead of once per combination of ``None`` arguments.
"""

from __future__ import annotations

import os

import numpy as np

_DUMMY_BOOL = np.ones((1, 1), dtype=np.bool_)


def as_float(a, dtype=None) -> np.ndarray:
    """C-contiguous float32/float64 view or copy; anything else becomes float64 like NumPy would."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def bool_or_dummy(mask):
    """``(mask as C-contiguous bool, True)`` or a (1, 1) stand-in and False for ``None``."""
    if mask is None:
        return _DUMMY_BOOL, False
    return np.ascontiguousarray(mask, dtype=np.bool_), True


def float_or_dummy(a, dtype):
    if a is None:
        return np.ones((1, 1), dtype=dtype), False
    return as_float(a, dtype), True


def check_shapes(fn: str, **named) -> None:
    """``name=(array or None, expected shape)``; raise one error naming every mismatch.

    The compiled loops do no bounds checking, so a wrong shape must stop here rather than read
    past an array's end.
    """
    bad = [
        f"argument '{name}' must have shape {expected}; got {np.shape(a)}"
        for name, (a, expected) in named.items()
        if a is not None and tuple(np.shape(a)) != tuple(expected)
    ]
    if bad:
        raise ValueError(f"{fn}: " + "; ".join(bad))


# --- overlapping the weight-gradient GEMMs with the sequential BPTT loop ------------------------
#
# BPTT is sequential in t, but the weight gradients are sums over t: once the loop has produced
# dz for a chunk of steps, that chunk's share of ``x.T @ dz``, ``h_in.T @ dz`` and ``dz @ W.T``
# can be computed while the loop carries on with the next chunk. The loop runs in numba with the
# GIL released; the chunk products run in NumPy (which releases the GIL inside BLAS) on one
# worker thread. On 2 cores that hides most of the weight-gradient time behind the loop.

_POOL = None
# Below this many multiply-adds in the weight-gradient products the thread hand-off costs more
# than it hides (configs B and D of benchmarks/bench_ops.py sit below, A and C above).
PIPELINE_MIN_MACS = 5e7


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-grads")
    return _POOL


def pipeline_chunks(T: int, macs: float) -> list[tuple[int, int]]:
    """Step ranges ``[(t0, t1), ...]`` from the end of the sequence to its start; a single chunk
    when overlapping does not pay (small problem, or fewer than 2 CPUs)."""
    if macs < PIPELINE_MIN_MACS or (os.cpu_count() or 1) < 2 or T < 8:
        return [(0, T)]
    n = min(8, T // 4)
    edges = [round(T * k / n) for k in range(n + 1)]
    return [(edges[k], edges[k + 1]) for k in range(n - 1, -1, -1)]


def run_pipelined(chunks, loop_chunk, grads_chunk) -> None:
    """``loop_chunk(t0, t1)`` (sequential BPTT over steps t1-1 .. t0) for each chunk in order,
    ``grads_chunk(t0, t1)`` for each finished chunk on the worker, overlapping the next loop."""
    if len(chunks) == 1:
        loop_chunk(*chunks[0])
        grads_chunk(*chunks[0])
        return
    pool = _pool()
    pending = []
    try:
        for t0, t1 in chunks:
            loop_chunk(t0, t1)
            pending.append(pool.submit(grads_chunk, t0, t1))
    finally:
        for f in pending:
            f.result()
