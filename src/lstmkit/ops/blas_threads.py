"""BLAS threads: which OpenBLAS libraries this process has loaded and their per-thread thread
count (``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27). No numba here: the NumPy backend
switches BLAS threads too (:func:`lstmkit.ops.backend.compute_scope`, while the compiled kernels
are being built in the background), and the fast path re-exports these from :mod:`.fast.common`.
"""

from __future__ import annotations

import os
import threading


def _openblas_paths() -> list[str]:
    """Files of every OpenBLAS this process has loaded (Linux; empty elsewhere), SciPy's (the one
    numba calls) loaded first."""
    import scipy.linalg.cython_blas  # noqa: F401  loads SciPy's library

    try:
        with open("/proc/self/maps") as fh:
            return sorted({ln.split()[-1] for ln in fh if "openblas" in ln and ".so" in ln})
    except OSError:
        return []


def _openblas_local_setters():
    """``openblas_set_num_threads_local`` of every OpenBLAS loaded (NumPy's and SciPy's); empty
    when they are other BLAS libraries or OpenBLAS older than 0.3.27 (then BLAS keeps its own
    threads: slower under load, still correct)."""
    import ctypes

    setters = []
    for path in _openblas_paths():
        fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
        if fn is not None:
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            setters.append(fn)
    return setters


def openblas_kernels() -> dict[str, str]:
    """``{library file: kernel set}`` of every OpenBLAS this process has loaded (Linux), e.g.
    ``"SkylakeX"`` (AVX-512) or ``"Haswell"`` (AVX2). The per-step products run 1.75x faster
    with the AVX-512 kernels where the CPU has them (``(512, 161) @ (161, 32)``, float32, one
    thread: 30 against 53 us on the AMD EPYC of ``docs/speed.md``); ``OPENBLAS_CORETYPE``
    overrides OpenBLAS's choice."""
    import ctypes

    out = {}
    for path in _openblas_paths():
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_get_corename", "scipy_openblas_get_corename64_",
                    "openblas_get_corename", "openblas_get_corename64_"):  # fmt: skip
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                out[os.path.basename(path)] = fn().decode()
                break
    return out


#: OpenBLAS runs a product on one thread below this size (``m * n * k``; its interface's
#: ``65536 * GEMM_MULTITHREAD_THRESHOLD``, 4 by default)
OPENBLAS_THREADING_MACS = 2**18

_SETTERS = None


def setters() -> list:
    """The ``openblas_set_num_threads_local`` of every OpenBLAS loaded (found at the first call)."""
    global _SETTERS
    if _SETTERS is None:
        _SETTERS = _openblas_local_setters()
    return _SETTERS


def set_local_threads(n) -> list[int]:
    """Set this thread's BLAS threads (an int for every library, or the list a previous call
    returned); returns the previous values."""
    fns = setters()
    ns = n if isinstance(n, list) else [n] * len(fns)
    return [fn(k) for fn, k in zip(fns, ns)]


# --- one thread for a while, across Python threads -------------------------------------------
# OpenBLAS's pthreads builds (NumPy's and SciPy's wheels) keep one thread count per process:
# ``openblas_set_num_threads_local`` sets it for everyone. Two Python threads that each saved,
# set 1 and restored it interleaved (A saves 2, B saves 1, A restores 2 while B's weight gradient
# runs): B's products then ran on two BLAS threads, whose partition rounds a few elements
# differently, so two models trained at once in two threads differed from their serial runs in
# the last bit about one time in 30 (tests/test_workspace.py). So every wish for single-threaded
# BLAS is a hold, counted under a lock: the first holder saves and sets, the last one restores.
_HOLD_LOCK = threading.Lock()
_hold = {"holders": 0, "restore": None}


def hold_single() -> None:
    """Make BLAS single-threaded until the matching :func:`release_single` (nested and
    concurrent holds from any thread are counted)."""
    with _HOLD_LOCK:
        if _hold["holders"] == 0:
            _hold["restore"] = set_local_threads(1)
        _hold["holders"] += 1


def release_single() -> None:
    """End a hold of :func:`hold_single`; the last one restores the thread count found by the
    first (unless that was one thread already: nothing to undo). A release with no hold in force
    (a hold taken before this process was forked: the fork ended it) does nothing."""
    with _HOLD_LOCK:
        if _hold["holders"] == 0:
            return
        _hold["holders"] -= 1
        if _hold["holders"] == 0:
            previous, _hold["restore"] = _hold["restore"], None
            if previous.count(1) != len(previous):
                set_local_threads(previous)


def holders() -> int:
    """How many holds are in force now (tests)."""
    return _hold["holders"]


class single_threaded:
    """``with single_threaded():``: :func:`hold_single` for the block."""

    __slots__ = ()

    def __enter__(self):
        hold_single()

    def __exit__(self, *exc):
        release_single()
        return False


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: the holds of the others would never end. A
    new lock (one held by another thread at the fork stays held in the child), no holds, and
    BLAS's thread count as it was before the first hold."""
    global _HOLD_LOCK
    _HOLD_LOCK = threading.Lock()
    previous = _hold["restore"]
    _hold["holders"], _hold["restore"] = 0, None
    if previous is not None and previous.count(1) != len(previous):
        set_local_threads(previous)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
