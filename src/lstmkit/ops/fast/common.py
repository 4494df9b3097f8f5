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


# --- batch rows in parallel -------------------------------------------------------------------
#
# Sequences in a batch never interact: every row of h, c, the gates and their gradients evolves
# on its own, and only the weight gradients (computed after the loop) sum over rows. So the time
# loop splits into independent loops over row slices, one per thread, with no synchronisation per
# step: each thread makes its own small BLAS call per step into its rows of the shared buffers
# (numba releases the GIL). That is what makes two cores pay off here; OpenBLAS's own threading
# inside a (32 x 128) @ (128 x 512) product synchronises twice per step and falls apart as soon as
# a neighbour takes a core. Inside those loops OpenBLAS therefore runs single-threaded per
# calling thread (``openblas_set_num_threads_local``, thread-local, restored afterwards), so the
# threads are ours alone.

_THREADS: int | None = None
_POOL = None
_POOL_SIZE = 0
# Below this many multiply-adds in the recurrent products a second thread's hand-off (~30 us)
# costs more than it saves: config B of benchmarks/bench_ops.py (batch 1) stays on one thread.
PARALLEL_MIN_MACS = 2e6


def set_num_threads(n: int | None) -> None:
    """Threads for the compiled time loops (``None``: ``LSTMKIT_NUM_THREADS`` or the CPUs this
    process may use)."""
    global _THREADS
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"set_num_threads: argument 'n' must be a positive int or None; got {n!r}")
    _THREADS = n


def get_num_threads() -> int:
    if _THREADS is not None:
        return _THREADS
    env = os.environ.get("LSTMKIT_NUM_THREADS", "").strip()
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _scipy_openblas_local():
    """``openblas_set_num_threads_local`` of the OpenBLAS that numba's ``np.dot`` calls (SciPy's),
    or None when SciPy uses another BLAS or an OpenBLAS older than 0.3.27."""
    import ctypes

    import scipy.linalg.cython_blas  # noqa: F401  loads the library

    try:
        with open("/proc/self/maps") as fh:
            paths = {ln.split()[-1] for ln in fh if "openblas" in ln and ".so" in ln}
    except OSError:
        return None
    for path in sorted(paths):
        if "scipy" in path and "openblas64" not in path:  # NumPy's is the ILP64 one
            fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
                return fn
    return None


_SET_LOCAL = None


def _set_local_threads(n: int) -> int | None:
    global _SET_LOCAL
    if _SET_LOCAL is None:
        _SET_LOCAL = _scipy_openblas_local() or False
    return _SET_LOCAL(n) if _SET_LOCAL else None


def _pool(workers: int):
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE < workers:
        from concurrent.futures import ThreadPoolExecutor

        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="lstmkit-rows",
            initializer=_set_local_threads,
            initargs=(1,),
        )
        _POOL_SIZE = workers
    return _POOL


def row_slices(B: int, macs: float) -> list[tuple[int, int]]:
    """Split batch rows ``[0, B)`` into contiguous slices, one per thread."""
    n = min(get_num_threads(), B)
    if n < 2 or macs < PARALLEL_MIN_MACS:
        return [(0, B)]
    edges = [round(B * k / n) for k in range(n + 1)]
    return [(edges[k], edges[k + 1]) for k in range(n)]


def over_rows(slices, loop) -> None:
    """Run ``loop(b0, b1)`` for every row slice: the first on this thread, the rest on workers.

    Every loop must release the GIL (numba ``nogil=True``) for this to be parallel.
    """
    if len(slices) == 1:
        loop(*slices[0])
        return
    pool = _pool(len(slices) - 1)
    futures = [pool.submit(loop, b0, b1) for b0, b1 in slices[1:]]
    previous = _set_local_threads(1)
    try:
        loop(*slices[0])
    finally:
        if previous is not None:
            _set_local_threads(previous)
        for f in futures:
            f.result()
