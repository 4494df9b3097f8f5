"""What the compiled cells share besides activations: argument plumbing and threads.

- Arguments: one C-contiguous float type, shapes checked up front (the kernels do not bounds
  check), and every optional array passed as a real array plus a flag, so each kernel compiles
  once per float type instead of once per combination of ``None`` arguments.
- Threads: batch rows for the time loops, time chunks for the big GEMMs (see below).
- Buffers are not kept here: the caller passes a :class:`lstmkit.ops.workspace.Workspace`.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np
from numba import njit

from .. import blas_threads

# The BLAS thread switches live in a numba-free module (the NumPy backend switches them too while
# these kernels compile); re-exported for the fast path.
from ..blas_threads import openblas_kernels  # noqa: F401
from ..blas_threads import set_local_threads as _set_local_threads
from ..workspace import CACHE_LINE, aligned_empty  # (the kernels' scratch)
from ._jit import JIT

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


def _ones(shape, dt):
    a = aligned_empty(shape, dt)
    a.fill(1)
    return a


#: ``(1, 1)`` stand-ins for an absent float array, one per float type, made once: the kernels
#: never read or write one (they look at its flag); on a cache line like every kernel buffer
_DUMMY_FLOAT = {np.dtype(t).char: _ones((1, 1), t) for t in (np.float32, np.float64)}


def float_dummy(dtype) -> np.ndarray:
    """The shared ``(1, 1)`` stand-in of ``dtype`` (float32 or float64)."""
    return _DUMMY_FLOAT[np.dtype(dtype).char]


def float_or_dummy(a, dtype):
    """``(a as C-contiguous dtype, True)``, or :func:`float_dummy` and False for ``None``."""
    if a is None:
        return float_dummy(dtype), False
    return as_float(a, dtype), True


def line_multiple(n: int, itemsize: int) -> int:
    """``n`` values rounded up to whole cache lines (rows of :func:`aligned_empty` that each
    start on a line)."""
    per = CACHE_LINE // itemsize
    return -(-int(n) // per) * per


def check_shapes(fn: str, **named) -> None:
    """``name=(array or None, expected shape)``; raise one error naming every mismatch.

    The compiled loops do no bounds checking, so a wrong shape must stop here rather than read
    past an array's end.
    """
    bad = [
        f"argument '{name}' must have shape {expected}; got {np.shape(a)}"
        for name, (a, expected) in named.items()
        if a is not None and (a.shape if hasattr(a, "shape") else np.shape(a)) != expected
    ]
    if bad:
        raise ValueError(f"{fn}: " + "; ".join(bad))


# --- threads ------------------------------------------------------------------------------------
#
# Sequences in a batch never interact: every row of h, c, the gates and their gradients evolves
# on its own. So the time loop splits into independent loops over row slices, one per thread,
# with no synchronisation per step: each thread makes its own small BLAS call per step into its
# rows of the shared buffers (numba releases the GIL). The big products outside the loop (input
# projection, weight gradients) split over time chunks instead, each thread multiplying its
# contiguous block of rows and the partial weight gradients summed at the end.
#
# BLAS itself runs single-threaded on every one of those threads: ``openblas_set_num_threads_local``
# for both NumPy's OpenBLAS and SciPy's (the one numba's ``np.dot`` calls), set for the duration
# of each op and restored afterwards. (In OpenBLAS's pthreads builds that setting is process-wide,
# so another thread's BLAS calls during an op also run single-threaded.) OpenBLAS's own threading inside a
# (32 x 128) @ (128 x 512) product synchronises twice per step; on an idle machine that merely
# wastes time, and once a neighbour takes a core it costs 10x (measured: 920 us of CPU per
# product instead of 73 us). Coarse row/time splits degrade gracefully instead.

_THREADS: int | None = None
_POOL = None
_POOL_SIZE = 0
# Below this many multiply-adds a second thread's hand-off (~30 us) costs more than it saves:
# config B of benchmarks/bench_ops.py (batch 1, H 64) stays on one thread.
PARALLEL_MIN_MACS = 2e6
# OpenBLAS runs a product on one thread anyway below about this size (m * n * k).
OPENBLAS_THREADING_MACS = blas_threads.OPENBLAS_THREADING_MACS


def set_num_threads(n: int | None) -> None:
    """Threads for the compiled ops (``None``: ``LSTMKIT_NUM_THREADS``, else the CPUs this
    process may use)."""
    global _THREADS
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"set_num_threads: argument 'n' must be a positive int or None; got {n!r}")
    _THREADS = n


@contextlib.contextmanager
def limited_threads(n: int):
    """The compiled ops on ``n`` threads and this thread's BLAS on ``n`` (process-wide in
    OpenBLAS's pthreads builds) for the block; both as before afterwards (a ``set_num_threads``
    value or the environment's default)."""
    saved = _THREADS
    set_num_threads(n)
    if n == 1:  # a counted hold, like every other wish for one BLAS thread
        blas_threads.hold_single()
    else:  # (another count is one setting for the process: not for concurrent threads)
        blas = _set_local_threads(n)
    try:
        yield
    finally:
        if n == 1:
            blas_threads.release_single()
        else:
            _set_local_threads(blas)
        set_num_threads(saved)


_CPUS: int | None = None


def get_num_threads() -> int:
    global _CPUS
    if _THREADS is not None:
        return _THREADS
    env = os.environ.get("LSTMKIT_NUM_THREADS", "").strip()
    if env:
        return max(1, int(env))
    if _CPUS is None:
        from ..._system import usable_cpus

        _CPUS = usable_cpus()
    return _CPUS


_POOL_LOCK = threading.Lock()


def _pool(workers: int):
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            from concurrent.futures import ThreadPoolExecutor

            # A smaller pool another call may still be using is dropped, not shut down: its idle
            # threads exit once it is garbage.
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lstmkit")
            _POOL_SIZE = workers
        return _POOL


def _forget_pool_in_child() -> None:
    # A forked child has the executor object but none of its threads: work sent to it would wait
    # forever. Start afresh instead.
    global _POOL, _POOL_SIZE
    _POOL, _POOL_SIZE = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


_LOCAL = threading.local()


class serial:
    """``with serial():`` runs the ops called inside on this thread only (BLAS still
    single-threaded): for single steps (``*_step``), where a hand-off costs more than the step."""

    def __enter__(self):
        self.previous = getattr(_LOCAL, "serial", False)
        _LOCAL.serial = True

    def __exit__(self, *exc):
        _LOCAL.serial = self.previous


def split(n: int, macs: float, least: int = 1) -> list[tuple[int, int]]:
    """Split ``[0, n)`` (batch rows or time steps) into contiguous slices, one per thread and
    each at least ``least`` long; one slice when the work (``macs`` multiply-adds) is too small
    to share."""
    if getattr(_LOCAL, "serial", False):
        return [(0, n)]
    k = min(get_num_threads(), n // least)
    if k < 2 or macs < PARALLEL_MIN_MACS:
        return [(0, n)]
    edges = [round(n * i / k) for i in range(k + 1)]
    return [(edges[i], edges[i + 1]) for i in range(k)]


def in_parallel(slices, fn, blas_macs: float) -> list:
    """``[fn(a, b) for (a, b) in slices]``, the first on this thread and the rest offered to
    workers, all with single-threaded BLAS. ``fn`` must release the GIL (numba ``nogil``, NumPy's
    BLAS) for this to run in parallel. ``blas_macs``: multiply-adds of the largest single BLAS
    call ``fn`` makes; below OpenBLAS's own threading threshold the thread-count switch (~2 us)
    is skipped.

    Work stealing keeps a busy machine from making threads a loss: a slice no worker has started
    by the time this thread is done with its own is run here instead, so waiting on a worker that
    the OS has not scheduled costs nothing; only slices a worker has actually begun are waited for.
    """
    if len(slices) == 1 and blas_macs < OPENBLAS_THREADING_MACS:
        return [fn(*slices[0])]
    n = len(slices)
    taken = [False] * n
    lock = threading.Lock()
    skipped = object()

    def claim(i) -> bool:
        with lock:
            if taken[i]:
                return False
            taken[i] = True
            return True

    def worker(i):
        return fn(*slices[i]) if claim(i) else skipped

    # Set before any worker starts and restored after the last one is done: in OpenBLAS builds
    # with pthreads (NumPy's and SciPy's wheels) the "local" setting is in fact process-wide.
    blas_threads.hold_single()
    futures = {}
    results = [None] * n
    stolen = set()
    try:
        if n > 1:
            pool = _pool(n - 1)
            futures = {i: pool.submit(worker, i) for i in range(1, n)}
        claim(0)
        results[0] = fn(*slices[0])
        for i in range(1, n):
            if claim(i):  # no worker has started it: do it here
                stolen.add(i)
                results[i] = fn(*slices[i])
    finally:
        try:
            for i, f in futures.items():
                if i not in stolen:
                    results[i] = f.result()
        finally:
            blas_threads.release_single()
    return results


@njit(cache=JIT["cache"], nogil=True)
def _matmul_into(a, b, out):
    np.dot(a, b, out)  # numba's call into BLAS costs ~1 us; NumPy's matmul ~5 us on small inputs


def matmul(a, b) -> np.ndarray:
    """``a (n, k) @ b (k, m)``, rows of the result split over the threads."""
    n, k = a.shape
    m = b.shape[1]
    slices = split(n, n * k * m)
    if len(slices) == 1 and n * k * m < OPENBLAS_THREADING_MACS:
        return np.matmul(a, b)  # what in_parallel would run on one slice, without the closure
    out = np.empty((n, m), np.result_type(a, b))

    def rows(r0, r1):
        np.matmul(a[r0:r1], b, out=out[r0:r1])

    in_parallel(slices, rows, n * k * m / len(slices))
    return out


def input_projection(x, kernel, out) -> None:
    """``out (T, B, G) = x (T, B, D) @ kernel (D, G)``, split over time chunks."""
    T, B, D = x.shape
    G = kernel.shape[1]

    def chunk(t0, t1):
        _matmul_into(x[t0:t1].reshape(-1, D), kernel, out[t0:t1].reshape(-1, G))

    in_parallel(split(T, T * B * D * G), chunk, T * B * D * G)


def weight_gradients(x, kernel, h_in, dz, dz_rec=None):
    """The sums over time and batch that finish BPTT, split over time chunks.

    ``dz (T, B, G)`` is dL/d(input pre-activations), ``dz_rec`` dL/d(recurrent pre-activations)
    when they differ (GRU). Returns ``(dx (T, B, D), d_kernel (D, G), d_recurrent (H, G),
    d_bias_in (G,), d_bias_rec (G,))``.
    """
    T, B, D = x.shape
    H = h_in.shape[2]
    G = dz.shape[2]
    separate = dz_rec is not None
    dz_rec = dz_rec if separate else dz
    dx = np.empty_like(x)

    def chunk(t0, t1):
        n = (t1 - t0) * B
        dzc = dz[t0:t1].reshape(n, G)
        drc = dz_rec[t0:t1].reshape(n, G)
        np.matmul(dzc, kernel.T, out=dx[t0:t1].reshape(n, D))
        return (
            x[t0:t1].reshape(n, D).T @ dzc,
            h_in[t0:t1].reshape(n, H).T @ drc,
            dzc.sum(axis=0),
            drc.sum(axis=0) if separate else None,
        )

    parts = in_parallel(split(T, T * B * G * (2 * D + H)), chunk, T * B * G * max(D, H))

    def total(i):
        acc = parts[0][i]
        for p in parts[1:]:
            acc = acc + p[i]
        return acc

    return dx, total(0), total(1), total(2), (total(3) if parts[0][3] is not None else None)
