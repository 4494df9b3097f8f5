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
