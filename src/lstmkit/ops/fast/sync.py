"""A spin barrier for threads that run a whole time loop inside one parallel region.

The feature-major kernels split each step's hidden units among P threads, and a step needs all
of the previous one (:mod:`.lstm_fm`). Opening a numba ``prange`` region per step to get that
meeting point costs about 4.5 us a region with the OpenMP layer on a quiet machine (10-30 us
loaded; measured on the 2-vCPU AMD EPYC Zen 4, a region with an empty body), and a training step
at config A opens 300 of them (100 forward, 200 backward). Here the region is opened once per
call: thread p runs chunk p of every step and the threads meet at :func:`wait`, an atomic counter
and generation number in a small int64 array (0.1-0.8 us a meeting, same machine).

A barrier can only be passed if all P parties run at the same time. numba gives each of the P
iterations of a ``prange(P)`` its own thread when it has P threads, but a runtime that runs them
one after the other (a nested region, a task-based layer) would leave the first party waiting for
ever. So a party that waits longer than ``TIMEOUT_CYCLES`` of the CPU's time-stamp counter (about
a second; on other CPUs ``MAX_WAITS`` turns, several seconds) raises the *abort* flag; every party gives up at its next meeting, and the caller redoes
the call on one thread (:func:`run_parallel`). A waiting party spins with ``pause`` for a few
microseconds, then gives its time slice back (``sched_yield``) so that a descheduled partner on a
busy machine gets the core.

State layout, ``state (4,) int64``: ``[arrived, generation, abort, spare]``; a fresh state is
zeros. Party p's g-th meeting (g = 1, 2, ...) waits until the generation reaches g.
"""

from __future__ import annotations

import ctypes
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._jit import JIT as _JIT

TIMEOUT_CYCLES = (
    2**31
)  # ~0.5-1 s of the cycle counter: only a party that can never be met waits so long
SPINS = 256  # pause instructions before the first yield (a few us)
MAX_WAITS = 2**24  # without a cycle counter: as many yields (several seconds)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _yield_address() -> int:
    """Address of the OS call that gives up the time slice (0 where none is found)."""
    for lib, name in ((None, "sched_yield"), ("kernel32", "SwitchToThread")):
        try:
            fn = getattr(ctypes.CDLL(lib) if lib is None else ctypes.WinDLL(lib), name)
        except (OSError, AttributeError, TypeError):  # TypeError: CDLL(None) on Windows
            continue
        return ctypes.cast(fn, ctypes.c_void_p).value or 0
    return 0


YIELD = _yield_address()


@intrinsic
def _atomic_add(typingctx, arr, idx, val):
    """``arr[idx] += val`` atomically (sequentially consistent); returns the old value."""
    sig = types.int64(arr, idx, val)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", builder.gep(ary.data, [args[1]]), args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _atomic_load(typingctx, arr, idx):
    """``arr[idx]`` read with acquire ordering (never hoisted out of a loop)."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.load_atomic(builder.gep(ary.data, [args[1]]), "acquire", 8)

    return sig, codegen


@intrinsic
def _cycles(typingctx):
    """The CPU's time-stamp counter on x86 (``llvm.readcyclecounter``); 0 elsewhere, where that
    intrinsic may read a register user code is not allowed to (AArch64's PMCCNTR_EL0): there
    only the count of waits bounds the wait."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(64), 0)
        fn = builder.module.declare_intrinsic(
            "llvm.readcyclecounter", fnty=ir.FunctionType(ir.IntType(64), [])
        )
        return builder.call(fn, [])

    return sig, codegen


@intrinsic
def _relax(typingctx, addr, spin):
    """``pause`` (x86) while ``spin`` is true, else the call ``void f(void)`` at ``addr``."""
    sig = types.void(addr, spin)

    def codegen(context, builder, signature, args):
        with builder.if_else(args[1]) as (then, otherwise):
            with then:
                if _X86:
                    pause = builder.module.declare_intrinsic(
                        "llvm.x86.sse2.pause", fnty=ir.FunctionType(ir.VoidType(), [])
                    )
                    builder.call(pause, [])
            with otherwise:
                fnty = ir.FunctionType(ir.VoidType(), [])
                with builder.if_then(builder.icmp_unsigned("!=", args[0], args[0].type(0))):
                    builder.call(builder.inttoptr(args[0], fnty.as_pointer()), [])
        return context.get_dummy_value()

    return sig, codegen


@njit(**_JIT)
def wait(state, P, g, yield_addr, timeout):
    """Party's g-th meeting of P parties; False once any party has given up (the caller stops)."""
    if _atomic_add(state, 0, 1) == P - 1:  # the last to arrive opens the next generation
        _atomic_add(state, 0, -P)
        _atomic_add(state, 1, 1)
        return _atomic_load(state, 2) == 0
    start = _cycles()
    n = 0
    while _atomic_load(state, 1) < g:
        if _atomic_load(state, 2) != 0:
            return False
        _relax(yield_addr, n < SPINS)
        n += 1
        if (n & 63) == 0 and (_cycles() - start > timeout or n > MAX_WAITS):
            _atomic_add(state, 2, 1)
            return False
    return _atomic_load(state, 2) == 0


def new_state() -> np.ndarray:
    return np.zeros(4, np.int64)


def aborted(state) -> bool:
    return bool(state[2])


# --- hand-over: a helper that joins a running loop (batch-split inference, :mod:`.lstm_fm`) ----
#
# The calling thread (the lead) starts on every batch slice at once; a helper thread, whenever the
# OS gets it running, takes a ticket, and the lead hands it a slice at its next step boundary. So
# the lead never waits for a helper to start (waking a sleeping thread took 0.15-0.3 ms here).
# ``state (2P,) int64``: ``[tickets, start_1 .. start_{P-1}, done_1 .. done_{P-1}]``, zeros when
# fresh; ``start_k`` is 1 + the step from which ticket k runs its slice, ``done_k`` 1 when it has.

CLOSED = 2**40  # added to the ticket count when the lead is done: later helpers find no work
SPIN_CYCLES = 2**16  # the lead spins this long (~25 us) for its helpers' end, then sleeps


@njit(**_JIT)
def take_ticket(state) -> int:
    """A helper's ticket: 1, 2, ... in order of arrival (larger than any slice once closed)."""
    return _atomic_add(state, 0, 1) + 1


@njit(**_JIT)
def tickets(state) -> int:
    """Tickets taken so far (the lead's view at a step boundary)."""
    return _atomic_load(state, 0)


@njit(**_JIT)
def close(state) -> int:
    """The lead is done: no ticket after this one is served; returns the tickets taken before."""
    return _atomic_add(state, 0, CLOSED)


@njit(**_JIT)
def post(state, i, value) -> None:
    """``state[i] = value`` for a slot that is still 0, published with every write before it."""
    _atomic_add(state, i, value)


@njit(**_JIT)
def await_post(state, i, yield_addr) -> int:
    """Wait until slot ``i`` is posted and return it. No time-out: whoever posts it runs a loop
    of bounded length (the lead, one step at most; a helper, its slice's remaining steps)."""
    n = 0
    while True:
        v = _atomic_load(state, i)
        if v != 0:
            return v
        _relax(yield_addr, n < SPINS)
        n += 1


@njit(**_JIT)
def await_flags(state, slots, max_cycles) -> bool:
    """Spin until every slot of ``state`` in ``slots`` is non-zero (True), or give up after
    ``max_cycles`` of the time-stamp counter (False; where there is none, after as many waits
    as ``SPINS``): the caller then sleeps instead of taking a core from the thread it waits
    for."""
    start = _cycles()
    n = 0
    for i in slots:
        while _atomic_load(state, i) == 0:
            _relax(0, True)
            n += 1
            if (n & 63) == 0 and (_cycles() - start > max_cycles or (not _X86 and n > SPINS)):
                return False
    return True


# --- helpers that stay awake between calls (the batch split's threads, :mod:`.lstm_fm`) ---------
#
# A pool thread that has gone to sleep wakes 0.1-0.3 ms after it is handed work (more under load:
# the OS must find it a core), and ``predict`` at config A on two threads takes 3.3 ms. So after
# each job a helper spins for the next one, ``SPIN_AFTER_CYCLES`` of the time-stamp counter (0.8 ms
# at this VM's 2.6 GHz; ``pause``, then ``sched_yield`` so that it gives its core away under load),
# and only then sleeps on an event; back-to-back calls (a loop over batches, ``predict`` called
# again) find it awake. onnxruntime's and the OpenMP runtimes' pools do the same.
#
# ``box (8 n,) int64``: helper k's row ``box[8 k : 8 k + 8]`` (a cache line each) holds
# ``[posted, parked, ...]``: ``posted`` counts the jobs posted to it, ``parked`` is 1 while it
# sleeps or is about to. Posting (``posted += 1``, then reading ``parked``) and parking
# (``parked = 1``, then reading ``posted``) are sequentially consistent, so either the poster sees
# ``parked`` and sets the event or the helper sees the job and does not sleep.

SPIN_AFTER_CYCLES = 2**21  # ~0.5-1 ms: covers the Python between two calls, not a user's pause
ROW = 8  # int64s per helper in ``box``
_HOLD = {k: v for k, v in _JIT.items() if k != "nogil"}  # called from Python: keep the GIL (a
# nogil call would hand it back and take it again, and may have to wait for a helper's turn)


@njit(**_HOLD)
def load(arr, i) -> int:
    """``arr[i]`` (acquire), from Python."""
    return _atomic_load(arr, i)


@njit(**_HOLD)
def add(arr, i, value) -> int:
    """``arr[i] += value`` atomically (sequentially consistent), from Python; the old value."""
    return _atomic_add(arr, i, value)


@njit(**_JIT)
def await_job(box, k, seen, max_cycles, yield_addr) -> int:
    """Helper k's spin: ``posted`` once it differs from ``seen``, or ``seen`` after ``max_cycles``
    (where there is no cycle counter: after ``MAX_WAITS // 64`` waits)."""
    start = _cycles()
    n = 0
    while True:
        v = _atomic_load(box, ROW * k)
        if v != seen:
            return v
        _relax(yield_addr, n < SPINS)
        n += 1
        if (n & 63) == 0 and (_cycles() - start > max_cycles or (not _X86 and n > MAX_WAITS // 64)):
            return seen


@njit(**_JIT)
def kick(box, kicks) -> None:
    """Post a job to every helper k with ``kicks[k]`` (the lead, inside its compiled loop, so that
    a spinning helper that sees it finds the GIL free)."""
    for k in range(kicks.shape[0]):
        if kicks[k]:
            _atomic_add(box, ROW * k, 1)


class Helpers:
    """``n`` daemon threads that run the jobs posted to them (:meth:`claim`, :meth:`post`), each
    spinning ``SPIN_AFTER_CYCLES`` after a job before it sleeps. A job that raises must tell its
    caller itself (the exception is only kept in ``last_error``; the thread lives on). Several
    callers at once: a helper serves one caller at a time (:meth:`claim`); a job run late, after
    its caller is done, must be harmless (the batch split's tickets make it so)."""

    def __init__(self, n: int):
        import threading

        self.box = np.zeros(ROW * n, np.int64)
        self.jobs = [None] * n
        self.events = [threading.Event() for _ in range(n)]
        self.claimed = [False] * n
        self.lock = threading.Lock()
        self.spin = SPIN_AFTER_CYCLES  # read by each helper at every wait (tests lower it)
        self.last_error = None  # the last exception a job raised
        self.sleeps = [0] * n  # times each helper has gone to sleep
        self.threads = [threading.Thread(target=self._serve, args=(k,), daemon=True,
                                         name=f"lstmkit-helper-{k}") for k in range(n)]  # fmt: skip
        for th in self.threads:
            th.start()

    def claim(self, n: int) -> list[int]:
        """Up to ``n`` helpers no other caller holds (fewer, none, when they are busy)."""
        with self.lock:
            got = [k for k, c in enumerate(self.claimed) if not c][:n]
            for k in got:
                self.claimed[k] = True
        return got

    def release(self, ks, kicks) -> None:
        """Give helpers ``ks`` back once their caller is done. One that fell asleep just before
        :func:`kick` (``kicks``) missed it: its event is set, so that it runs the job it holds
        (which finds nothing left to do, and compiles what it calls, as a pool thread would)
        and then lets go of it and of the caller's arrays."""
        with self.lock:
            for k in ks:
                self.claimed[k] = False
        for k in np.flatnonzero(kicks):
            if load(self.box, ROW * k + 1):
                self.events[k].set()

    def post(self, ks, job) -> np.ndarray:
        """Give ``job`` to helpers ``ks``: a sleeping one is posted to and woken now; the others are
        left to :func:`kick` (returned: the flags it reads), which the caller runs once it has
        released the GIL, so that a helper spinning on its flag does not then wait for the GIL.
        (One that falls asleep just before the kick misses it, and the caller runs its share:
        :meth:`release`.)"""
        kicks = np.zeros(len(self.jobs), np.int64)
        for k in ks:
            with self.lock:
                self.jobs[k] = job
            if load(self.box, ROW * k + 1):  # asleep, or about to be
                self.wake(k)
            else:
                kicks[k] = 1
        return kicks

    def wake(self, k) -> None:
        """Post to helper k and set its event if it sleeps (or is about to)."""
        add(self.box, ROW * k, 1)
        if load(self.box, ROW * k + 1):
            self.events[k].set()

    def _serve(self, k) -> None:
        seen = 0
        box, row = self.box, ROW * k
        while True:
            posted = await_job(box, k, seen, self.spin, YIELD)
            if posted == seen:  # nothing came while spinning: sleep until posted to
                add(box, row + 1, 1)
                if load(box, row) == seen:
                    self.sleeps[k] += 1
                    self.events[k].wait()
                self.events[k].clear()
                add(box, row + 1, -1)
                continue
            seen = posted
            with self.lock:
                job = self.jobs[k]
            if job is None:
                continue
            try:
                job()
            except BaseException as e:  # noqa: BLE001 - the job tells its caller; kept here
                self.last_error = e.with_traceback(None)  # (not its frames and arrays)
            with self.lock:  # done: keep nothing of its caller's (unless a new job came)
                if self.jobs[k] is job:
                    self.jobs[k] = None
            job = None
