"""Buffers for the compiled kernels, owned by an object that the caller passes in.

The feature-major LSTM kernels (:mod:`.fast.lstm_fm`) need a few large buffers per call: at
config C of ``benchmarks/bench_speed.py`` (T 50, B 64, H 256) about 13 MB. Fresh from
``np.empty`` every call, their pages fault in on first touch, which cost 8-11 ms of a 25 ms
forward pass (measured, 1 thread). A :class:`Workspace` hands them out instead and takes them all
back at once::

    ws = Workspace()
    for batch in batches:          # one generation per training step
        ws.reset()                 # every buffer handed out before is free again
        a = ws.take((T, 4 * H, B), np.float32)   # the same buffer as last step's first take
        ...

- Within one generation every :meth:`~Workspace.take` is a distinct buffer, so two forwards of a
  layer shared twice in a graph keep both caches intact until their backwards.
- :meth:`~Workspace.reset` ends a generation. The same sequence of takes after a reset gets the
  same buffers back in the same order, so a training loop touches the same pages every step.
  Buffers that the generation just ended did not take are released (a model fed other shapes
  does not keep the old shapes' buffers).
- Scratch that does not outlive a kernel call (packed weights, one step's gradient) goes back
  with :meth:`~Workspace.give_back`, and a later take of the same shape in the same generation
  gets it again: the layers of a stack share one set, as they would with ``np.empty``. So do
  outputs that their consumer drops at once (:func:`lstmkit.ops.backend.give_back`: a
  ``Bidirectional`` merging its directions, a recurrent layer returning its last state only).
- Bounded: at most ``max_bytes`` (``LSTMKIT_WORKSPACE_MB``, default 512; ``0`` keeps nothing)
  are kept; a take beyond that, or one smaller than :data:`SMALL_BYTES`, is a fresh array
  (correct, just not reused). Small buffers are kept too: a fresh :func:`aligned_empty` costs
  about 3.5 us, a kept one about 1; the forecaster's step takes 15 of them (issue 18).
- Every buffer handed out starts on a cache line (:func:`aligned_empty`), so the kernels'
  vector loads and stores of a row never straddle two lines when the row's bytes are a
  multiple of 64 (``B`` a multiple of 16 in float32); ``np.empty`` gives 16 bytes.

Who owns one: the trainer and ``predict`` (:class:`lstmkit.models.training.Trainable`), one per
model and purpose, checked out for one training step or one ``predict``/``evaluate`` call (reset
before each of its batches), so two threads never share one; the kernels receive it as an argument (``ws=None``: every buffer fresh). Nothing here
is global or thread-local, and no reference count decides anything: what a generation handed out
stays valid until its owner resets it, and an array that must outlive the generation (a
prediction returned to the user) is handed over by the owner (:meth:`~Workspace.detach`).
"""

from __future__ import annotations

import math
import os

import numpy as np

#: Buffers smaller than this (a cache line) are not kept: each take is a fresh
#: :func:`aligned_empty`. Bigger ones are: malloc serves a small buffer from memory already
#: mapped, but making it start on a cache line costs ~3.5 us (:func:`aligned_empty`), a kept
#: one ~1 us, and a small model's step takes a dozen (it was 64 KiB until 2026-12-07).
SMALL_BYTES = 64

#: Bytes of a cache line: where every buffer handed out here starts (:func:`aligned_empty`).
CACHE_LINE = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts at a cache-line boundary (C-contiguous; its
    ``base`` is the ``uint8`` array that owns the memory).

    ``np.empty`` aligns to 16 bytes only: a buffer malloc maps fresh starts 16 bytes past a
    page, one taken from the heap anywhere. The micro-kernel's 32-byte vector loads and stores
    of such a buffer then straddle two lines every other time (64-byte ones on AVX-512: every
    time); at config C (rows of 64 float32, the product's input streamed from L2) that cost 12 %
    of an inference step on the AVX2 EPYC (docs/speed.md, "Issue 20: inference on an AVX2
    CPU"). About 4 us a call against 1 for ``np.empty``: the pool makes them once."""
    dtype = np.dtype(dtype)
    shape = tuple(map(int, shape))
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + CACHE_LINE, np.uint8)
    skip = -raw.__array_interface__["data"][0] % CACHE_LINE
    return np.ndarray(shape, dtype, raw, skip)


def default_max_bytes() -> int:
    """``LSTMKIT_WORKSPACE_MB`` (default 512) in bytes."""
    raw = os.environ.get("LSTMKIT_WORKSPACE_MB", "").strip() or "512"
    try:
        mb = int(raw)
    except ValueError:
        mb = -1
    if mb < 0:
        raise ValueError(
            f"environment variable LSTMKIT_WORKSPACE_MB must be a non-negative int; got {raw!r}"
        )
    return mb * 2**20


class Workspace:
    """Reusable C-contiguous buffers, handed out by ``(shape, dtype)`` for one generation at a
    time (see the module docstring). Not thread-safe: one owner, one thread at a time."""

    def __init__(self, max_bytes: int | None = None):
        if max_bytes is None:
            max_bytes = default_max_bytes()
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(
                f"Workspace: argument 'max_bytes' must be a non-negative int; got {max_bytes!r}"
            )
        self.max_bytes = max_bytes
        self.pid = os.getpid()  # the process that made it (a forked child makes its own)
        self.generation = 0
        self.bytes = 0  # kept in the pool
        self._all: dict = {}  # (shape, dtype.str) -> [buffers], in the order first taken
        self._free: dict = {}  # the same keys -> buffers not taken this generation (a stack)
        self._used: dict = {}  # keys -> how many of its buffers are out now
        self._peak: dict = {}  # keys -> the most that were out at once in this generation
        self._owner: dict = {}  # id of the memory's owner (a.base) -> (the kept buffer a, key)
        self._keys: dict = {}  # (shape, dtype) as a take got them -> (key, nbytes)

    def take(self, shape, dtype) -> np.ndarray:
        """An uninitialised C-contiguous array like ``np.empty(shape, dtype)`` starting on a
        cache line, distinct from every other array taken in this generation (until given
        back)."""
        key, nbytes = self._key(shape, dtype)  # key: (shape as ints, dtype.str)
        if nbytes < SMALL_BYTES:
            return aligned_empty(*key)
        free = self._free.get(key)
        if free:
            a = free.pop()
        else:
            a = aligned_empty(*key)
            if self.bytes + nbytes > self.max_bytes:
                return a  # beyond the cap: a plain array, not kept
            self._all.setdefault(key, []).append(a)
            self._owner[id(a.base)] = (a, key)
            self.bytes += nbytes
        n = self._used[key] = self._used.get(key, 0) + 1
        if n > self._peak.get(key, 0):
            self._peak[key] = n
        return a

    def _key(self, shape, dtype):
        """``((shape as ints, dtype.str), nbytes)`` of a take, remembered by the arguments as
        given (working them out cost ~1.7 us of a ~2 us take; a training step takes a dozen)."""
        try:
            known = self._keys.get((shape, dtype))
        except TypeError:  # an unhashable shape (a list)
            return _key_of(shape, dtype)
        if known is None:
            if len(self._keys) >= 256:  # (shapes that keep changing: start again)
                self._keys.clear()
            known = self._keys[(shape, dtype)] = _key_of(shape, dtype)
        return known

    def give_back(self, *arrays) -> None:
        """Return buffers that nothing reads again in this generation (scratch, an output its
        consumer has merged away): the next take of their shape gets them. ``arrays`` are the
        buffers or views of them; arrays the pool does not keep are ignored."""
        for a in arrays:
            # a buffer and its views share one base, the memory's owner (aligned_empty)
            # (only kept buffers have an owner entry: reset and detach remove theirs)
            owner = self._owner.get(id(a.base)) if isinstance(a, np.ndarray) else None
            if owner is None:
                continue
            a, key = owner
            free = self._free.get(key)
            if free is None:
                self._free[key] = [a]
                self._used[key] -= 1
            elif not _holds(free, a):  # (not given back twice)
                free.append(a)
                self._used[key] -= 1

    def reset(self) -> None:
        """End this generation: every buffer it handed out is free again, to be taken in the same
        order. Per shape, the pool keeps as many buffers as the generation held at once at most
        (the ones it used: takes go in creation order) and releases the others; a generation
        that took nothing (a step on the reference backend, a second reset) releases nothing."""
        self.generation += 1
        if not self._peak:
            return
        for key, kept in list(self._all.items()):
            n = self._peak.get(key, 0)
            if n < len(kept):  # (in a steady training loop, never)
                for a in kept[n:]:
                    self.bytes -= a.nbytes
                    del self._owner[id(a.base)]
                if n == 0:
                    del self._all[key]
                    self._free.pop(key, None)
                    continue
                del kept[n:]
            self._free[key] = kept[::-1]  # popped from the end: first made, first taken
        self._used.clear()
        self._peak.clear()

    def clear(self) -> None:
        """Release every buffer (the next takes allocate afresh)."""
        self._all.clear()
        self._free.clear()
        self._used.clear()
        self._peak.clear()
        self._owner.clear()
        self.bytes = 0

    def detach(self, a) -> None:
        """Hand the buffers behind ``a`` (an array taken from here, or a view of one) over to
        whoever keeps ``a``: the pool forgets them, so no later take returns them, and a later
        generation takes new ones instead. What ``predict`` does with the arrays it returns: no
        copy, and nothing of the user's is ever overwritten."""
        if not isinstance(a, np.ndarray) or a.nbytes == 0:
            return
        for key, kept in list(self._all.items()):
            for b in [b for b in kept if np.may_share_memory(a, b)]:
                _remove(kept, b)
                del self._owner[id(b.base)]
                self.bytes -= b.nbytes
                if not _remove(self._free.get(key, []), b):  # it was out: one fewer out
                    self._used[key] -= 1
                    self._peak[key] -= 1

    def holds(self, a) -> bool:
        """Whether ``a`` may share memory with a buffer kept here (which a later generation
        overwrites)."""
        if not isinstance(a, np.ndarray) or a.nbytes == 0:
            return False
        return any(np.may_share_memory(a, b) for bs in self._all.values() for b in bs)


def _key_of(shape, dtype):
    """``((shape as ints, dtype.str), nbytes)``: the pool's key of a take and its size."""
    shape = tuple(map(int, shape))
    dtype = np.dtype(dtype)
    return (shape, dtype.str), math.prod(shape) * dtype.itemsize


def _remove(arrays: list, a) -> bool:
    """Remove ``a`` from ``arrays`` by identity (``list.remove`` would compare arrays with
    ``==``); whether it was there."""
    for i, b in enumerate(arrays):
        if b is a:
            del arrays[i]
            return True
    return False


def _holds(arrays, a) -> bool:
    """Whether ``a`` itself (not an equal array) is in ``arrays`` (a loop: ``any`` over a
    generator is one Python call per item)."""
    for b in arrays:
        if b is a:
            return True
    return False
