"""Feature-major LSTM kernels: the state kept as ``(H, B)`` columns, one product per step.

Same equations, results and cache (:class:`lstmkit.ops.lstm.LSTMCache`) as :mod:`.lstm`, computed
in the transposed orientation, where OpenBLAS's small per-step products run fastest
(:mod:`.blas`). The input, the previous hidden state and a row of ones are stacked, so one
product gives every pre-activation, bias included::

    xh_t (1 + D + H, B) = [1; x_t.T; h_{t-1}.T]           # h_{t-1} after recurrent dropout
    W.T  (4H, 1 + D + H) = [bias | kernel.T | recurrent_kernel.T]
    z_t  (4H, B)         = W.T @ xh_t                       # gates i, f, g, o as row blocks
    c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)       # one flat pass over H * B values

Backward, per step from the last, with ``W (D + H, 4H) = [kernel; recurrent_kernel]``::

    dz_t (4H, B)                = gate derivatives (one flat pass)
    [dx_t.T; dh_{t-1}.T]        = W @ dz_t                  # one product
    [d bias | d kernel.T | d recurrent_kernel.T] += dz_t @ xh_t.T   # one product

so BPTT keeps no ``dz (T, B, 4H)`` and needs no separate weight-gradient pass. The pointwise
passes (:mod:`.cells`) are flat loops over contiguous ``(4H, B)`` / ``(H, B)`` blocks, which
numba vectorises (a loop per unit or per batch column does not: 3 vs 21-30 ns per cell).

The cache holds ``(T, B, ...)`` *views* of the feature-major buffers, so readers (the NumPy
backward, :mod:`lstmkit.inspect`) see the usual layout, and the buffers themselves in its last
field (:class:`FMBuffers`), which :func:`lstm_backward_fm` reads.

Threads: in training each step's hidden units are split among them (see "forward" below: they meet
once per step, forward and BPTT). Inference splits the batch instead when every thread gets at
least one vector and one cache line of columns (16 float32, :func:`infer_rows`): each slice has
its own buffers and time loop, the calling thread starts on all of them and hands slices to pool
threads as they arrive, and they never meet otherwise ("inference, the batch split" below);
smaller batches with big steps fall back to the unit split. The per-step products use the packed
weights of :mod:`.packed` (packed once per call), except the weight gradient, whose operands both
change every step (OpenBLAS through :mod:`.blas`).

Buffers: every entry point takes ``ws``, a :class:`lstmkit.ops.workspace.Workspace` whose owner
(the trainer, ``predict``) resets it between steps, or None for fresh ``np.empty`` arrays. What a
call returns and its cache live in buffers taken from it (valid until the owner's next reset); its
own scratch (packed weights, the backward's per-step gradient) goes back to it when the call ends.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from ..lstm import LSTMActCache, LSTMCache
from . import common as _common
from . import sync
from ._jit import JIT as _JIT
from .blas import gemm, gemm_address, gemm_scratch
from .cells import carry_over, lstm_pass, lstm_pass_grad, lstm_pass_infer
from .common import (
    aligned_empty,
    bool_or_dummy,
    float_dummy,
    float_or_dummy,
    in_parallel,
    line_multiple,
    split,
)
from .elementwise import DEFAULT, acts_for
from .packed import MR, kernels, lanes, matmul_packed
from .sync import wait
from .transpose import transpose_into

# Steps with fewer multiply-adds than this stay on one thread: the unit chunks meet once per
# step, and each pays a step's fixed cost (BLAS call, loop set-up) whatever its size. Measured: at A (2.6e6 per step) 2 threads train in 13 ms against
# 20 ms on one; at D (1e5) they took 5 ms against 2.6 ms, and inference 1.12 against 0.91 ms.
# Inference takes the unit split from an eighth of that: a step meets once, and with the spin
# barrier of .sync that costs well under a us (config D, 2 threads, predict: 0.74 against 0.89 ms
# on one thread; training at D stays faster on one, 2.69 against 2.78 ms; measured 2026-12-06,
# quiet, AMD EPYC Zen 4).
PARALLEL_STEP_MACS = 2**19


#: ``(1, 1, 1)`` stand-ins the backward's kernels never touch, made once per float type: its
#: ``dx`` without ``need_dx`` (its rows of ``W @ dz`` start at D: never written) and its ``dhs``
#: when none was given (``has_dhs`` False: never read)
_DUMMY_3D = {np.dtype(t).char: aligned_empty((1, 1, 1), t) for t in (np.float32, np.float64)}


def _take(ws, shape, dtype) -> np.ndarray:
    """A buffer from the workspace ``ws``, or a fresh one without; on a cache line either way."""
    return aligned_empty(shape, dtype) if ws is None else ws.take(shape, dtype)


def _give_back(ws, *arrays) -> None:
    if ws is not None:
        ws.give_back(*arrays)


# --- forward ------------------------------------------------------------------------------------
#
# With several threads the hidden units are split into P contiguous chunks, and each thread runs
# its chunk's rows of every step: one product for the 4 gate blocks of its units (the rows of
# W.T permuted once so that they are adjacent: "chunk-major" order) and the pointwise pass over
# its units, which are contiguous rows of every (H, B) block. A step needs all of h_{t-1}, so the
# threads meet once per step, forward and backward (dz of every unit feeds ``W @ dz``; see
# :func:`_backward_parallel`).
# They run the whole time loop in one numba ``prange`` region and meet at the spin barrier of
# :mod:`.sync` (0.1-0.8 us a meeting; a region per step cost ~4.5 us quiet, 10-30 us loaded). The
# buffers and the cache are the same as on one thread.


@njit(**_JIT)
def _forward_chunk(t, j0, j1, Ap, p0, mk, XH, Z, G, C, TC, out, h0, rm, has_rm, mask, has_mask,
                   acts):  # fmt: skip
    """Units j0:j1 of step t: their gate rows of ``W.T @ xh_t`` (packed from panel ``p0`` of
    ``Ap``) into ``Z``, then the pointwise pass, masked columns carried over, h_t into
    ``out (B, T, H)`` (the layer's output layout), and recurrent dropout on the h fed to the
    next step."""
    _, H4, B = G.shape
    H = H4 // 4
    K = XH.shape[1]
    r0 = K - H  # first h row of the stacked input
    hu = j1 - j0
    xh, nx = XH[t], XH[t + 1]
    matmul_packed(Ap, p0, 4 * hu, xh, Z, mk)
    lstm_pass(Z.ravel(), hu * B, G[t].ravel(), H * B, j0 * B, C[t].ravel(), C[t + 1].ravel(),
              TC[t].ravel(), nx.ravel(), r0 * B, hu * B, acts)  # fmt: skip
    if has_mask:
        carry_over(mask[t], C[t + 1, j0:j1].T, C[t, j0:j1].T)
        hp = h0[:, j0:j1] if t == 0 else out[:, t - 1, j0:j1]  # h_{t-1} before dropout
        carry_over(mask[t], nx[r0 + j0 : r0 + j1].T, hp)
    transpose_into(nx[r0 + j0 : r0 + j1], out[:, t, j0:j1], mk)  # h_t (hu, B) -> (B, hu)
    if has_rm:
        for j in range(j0, j1):
            for b in range(B):
                nx[r0 + j, b] *= rm[j, b]


@njit(**_JIT)
def _pack_chunk(p, W, edges, Ap, first):
    """Chunk p's panels of ``Ap`` (:func:`_packed_weights`), ``W = (kernel, U, bias, perm)``:
    each thread packs its own at the start of a parallel forward, which reads no other's."""
    fr = np.zeros(2, np.int64)
    fr[1] = first[p + 1] - first[p]
    _pack_stacked_T(W[0], W[1], W[2], W[3], edges[p : p + 2], fr, Ap[first[p] : first[p + 1]])


@njit(**_JIT)
def _forward_serial(edges, Ap, first, mk, XH, Z, G, C, TC, out, h0, rm, has_rm, mask, has_mask,
                    acts, W):  # fmt: skip
    """The whole forward pass on this thread (``edges`` = [0, H])."""
    _pack_chunk(0, W, edges, Ap, first)
    for t in range(G.shape[0]):
        _forward_chunk(t, 0, edges[1], Ap, 0, mk, XH, Z[0], G, C, TC, out, h0, rm, has_rm, mask,
                       has_mask, acts)  # fmt: skip


@njit(parallel=True, **_JIT)
def _forward_parallel(edges, Ap, first, mk, XH, Z, G, C, TC, out, h0, rm, has_rm, mask,
                      has_mask, acts, W, state, yield_addr, timeout):  # fmt: skip
    """The whole forward pass, unit chunk p = edges[p]:edges[p+1] on thread p, all in step:
    one parallel region, the threads meeting after each step (:mod:`.sync`); thread p packs
    its chunk's weights first (``W``: :func:`_pack_chunk`)."""
    P = edges.shape[0] - 1
    for p in prange(P):
        _pack_chunk(p, W, edges, Ap, first)
        for t in range(G.shape[0]):
            _forward_chunk(t, edges[p], edges[p + 1], Ap, first[p], mk, XH, Z[p], G, C, TC, out,
                           h0, rm, has_rm, mask, has_mask, acts)  # fmt: skip
            if not wait(state, P, t + 1, yield_addr, timeout):
                break


@functools.lru_cache(maxsize=64)
def _chunks(H, P):
    """Unit chunk edges ``(P+1,)`` and the chunk-major order of the 4H gate rows (cached, read
    only: computing them cost ~20 us per call)."""
    edges = np.array([round(H * p / P) for p in range(P + 1)], np.int64)
    perm = np.concatenate(
        [np.arange(g * H + edges[p], g * H + edges[p + 1]) for p in range(P) for g in range(4)]
    )
    edges.flags.writeable = perm.flags.writeable = False
    return edges, perm


@functools.lru_cache(maxsize=64)
def _widest_chunk(H, P) -> int:
    """The most units a chunk of :func:`_chunks` has (cached: np.diff + max cost ~3 us)."""
    return int(np.diff(_chunks(H, P)[0]).max())


@functools.lru_cache(maxsize=64)
def _panel_starts(counts):
    """First panel of each chunk of ``counts`` rows, and the total: ``(P+1,)`` (cached)."""
    first = np.zeros(len(counts) + 1, np.int64)
    first[1:] = np.cumsum([-(-int(n) // MR) for n in counts])
    first.flags.writeable = False
    return first


@functools.lru_cache(maxsize=64)
def _gate_panel_starts(edges):
    """:func:`_panel_starts` of the unit chunks ``edges`` (a tuple): 4 gate rows per unit
    (cached: a step's generator and tuple cost ~2 us)."""
    return _panel_starts(tuple(4 * (e1 - e0) for e0, e1 in itertools.pairwise(edges)))


@functools.lru_cache(maxsize=64)
def _range_panel_starts(lo, hi):
    """:func:`_panel_starts` of the row ranges ``lo[i]:hi[i]`` (tuples; cached)."""
    return _panel_starts(tuple(r1 - r0 for r0, r1 in zip(lo, hi)))


def _packed_weights(kernel, U, bias, perm, edges, ws):
    """The rows ``perm`` of ``W.T = [bias | kernel.T | recurrent_kernel.T]`` packed for
    :func:`.packed.matmul_packed`, unit chunk by unit chunk: chunk p's gate rows
    ``4 * edges[p] : 4 * edges[p + 1]`` of the permuted order from panel ``first[p]`` on.
    Returns ``(Ap, first)``."""
    Ap, first = _weight_panels(kernel, U, edges, ws)
    _pack_stacked_T(kernel, U, bias, perm, edges, first, Ap)
    return Ap, first


def _weight_panels(kernel, U, edges, ws):
    """The panels of :func:`_packed_weights`, not filled: ``(Ap, first)``."""
    first = _gate_panel_starts(tuple(edges.tolist()))
    Ap = _take(ws, (int(first[-1]), 1 + kernel.shape[0] + U.shape[0], MR), kernel.dtype)
    return Ap, first


@njit(**_JIT)
def _pack_stacked_T(kernel, U, bias, perm, edges, first, Ap):
    D = kernel.shape[0]
    K = Ap.shape[1]
    P = edges.shape[0] - 1
    n = Ap.shape[0]
    col = np.full(n * MR, -1, np.int64)  # the weight column behind each packed row, -1: padding
    for p in range(P):
        r0, r1 = 4 * edges[p], 4 * edges[p + 1]
        for q in range(r0, r1):
            col[first[p] * MR + q - r0] = perm[q]
    flat = Ap.reshape(n, K * MR)
    for k in range(K):  # along the rows of the weights: 2x faster than down their columns
        src = bias if k == 0 else (kernel[k - 1] if k <= D else U[k - 1 - D])
        for p in range(n):
            dst = flat[p]
            for r in range(MR):
                c = col[p * MR + r]
                if c >= 0:
                    dst[k * MR + r] = src[c]
                else:
                    dst[k * MR + r] = 0


def _stacked_input(x, h0, rm, ws):
    """``XH (T+1, 1+D+H, B)``: ones, x.T per step, and h_0 (after dropout) at t = 0."""
    T, B, D = x.shape
    H = h0.shape[1]
    XH = _take(ws, (T + 1, 1 + D + H, B), x.dtype)
    XH[:, 0] = 1
    XH[:T, 1 : 1 + D] = x.transpose(0, 2, 1)
    XH[T, 1 : 1 + D] = 0
    XH[0, 1 + D :] = (h0 if rm is None else h0 * rm).T
    return XH


class FMBuffers(NamedTuple):
    """The ``buffers`` field of a cache of :func:`lstm_forward_fm`: what its backward reads."""

    XH: np.ndarray  # (T+1, 1+D+H, B) stacked inputs [1; x_t.T; h_in_t.T]
    G: np.ndarray  # (T, 4H, B) gates
    C: np.ndarray  # (T+1, H, B)
    TC: np.ndarray  # (T, H, B) tanh(c_t)
    threads: int  # the forward's unit chunks, which the backward shares alike
    mk: np.ndarray  # the micro-kernels the forward ran (:func:`.packed.kernels`), the backward's
    views: tuple  # the cache's (x, gates, c, tanh_c, h_in) that these buffers stand for


def make_cache(fields, pair, buffers=None):
    """The cache of a forward with activations ``pair``: :class:`LSTMCache` for the defaults, else
    :class:`LSTMActCache` without pre-activations (``z`` None: the kernels' derivatives read the
    outputs, and so does the reference's backward when ``z`` is None)."""
    if pair == DEFAULT:
        return LSTMCache(*fields, buffers)
    return LSTMActCache(*fields, pair, None, buffers)


def lstm_forward_fm(x, h0, c0, kernel, U, bias, mask=None, recurrent_mask=None, threads=1,
                    acts=None, ws=None):  # fmt: skip
    """:func:`lstmkit.ops.fast.lstm.lstm_forward`, feature-major, on ``threads`` threads (unit
    chunks). Arguments already checked and cast by the caller (one C-contiguous float type);
    ``acts`` the activation pair (:mod:`.elementwise`, default tanh and sigmoid); ``ws`` the
    :class:`~lstmkit.ops.workspace.Workspace` that the output and the cache's buffers come from
    (None: fresh arrays)."""
    acts = acts_for(*DEFAULT) if acts is None else acts
    dt = x.dtype
    T, B, D = x.shape
    H = h0.shape[1]
    P = max(1, min(threads, H, numba.config.NUMBA_NUM_THREADS))
    rm = recurrent_mask
    XH = _stacked_input(x, h0, rm, ws)
    G = _take(ws, (T, 4 * H, B), dt)
    C = _take(ws, (T + 1, H, B), dt)
    C[0] = c0.T
    TC = _take(ws, (T, H, B), dt)
    out = _take(ws, (B, T, H), dt)  # h_t in the layout the layer returns
    rmT, has_rm = float_or_dummy(None if rm is None else rm.T, dt)
    m, has_m = bool_or_dummy(mask)
    h0 = np.ascontiguousarray(h0)
    edges, perm = _chunks(H, P)
    Ap, first = _weight_panels(kernel, U, edges, ws)  # chunk-major rows, packed by the kernel
    Z = _take(ws, (P, 4 * _widest_chunk(H, P), B), dt)
    W = (kernel, U, bias, perm)
    mk = kernels(dt)
    args = (edges, Ap, first, mk, XH, Z, G, C, TC, out, h0, rmT, has_rm, m, has_m, acts, W)
    # (no BLAS product in the forward, the packed micro-kernels make them all: no BLAS threads
    # to switch, as for inference; the switch's four library calls were ~4 us of a small step)
    met = _in_step(P, _forward_serial, _forward_parallel, args, 0)
    _give_back(ws, Ap, Z)  # scratch of this call only
    if not met:  # the threads could not all meet: on one thread
        return lstm_forward_fm(x, h0, c0, kernel, U, bias, mask, recurrent_mask, 1, acts, ws)
    views = (x, *(a.transpose(0, 2, 1) for a in (G, C, TC, XH[:T, 1 + D :])))  # (T, B, ...)
    fm = FMBuffers(XH, G, C, TC, P, mk, views)
    cache = make_cache((x, kernel, U, *views[1:], mask, recurrent_mask), (acts.act, acts.rec), fm)
    h_T = out[:, T - 1].copy() if T > 0 else h0
    return out.transpose(1, 0, 2), (h_T, C[T].T.copy()), cache  # final states never alias C


_SYNC_FAILED = [False]  # a parallel region whose threads could not all meet (see .sync)


def _in_step(P, serial, parallel, args, macs) -> bool:
    """Run ``serial(*args)`` or, for ``P > 1``, ``parallel(*args, state, ...)`` (P threads in one
    region meeting at every step, :mod:`.sync`); False when the threads could not all meet (the
    caller redoes the call on one thread, and later calls stay on one). ``macs``: multiply-adds
    of the largest BLAS product the kernel makes (0: none), which decides whether BLAS is made
    single-threaded around it (:func:`.common.in_parallel`)."""
    if P == 1:  # what in_parallel does with one slice, without its set-up (a small step's ~5 us)
        if macs < _common.OPENBLAS_THREADING_MACS:
            serial(*args)
            return True
        with _common.blas_threads.single_threaded():  # (the weight gradient's product)
            serial(*args)
        return True
    if _SYNC_FAILED[0]:
        return False
    state = sync.new_state()

    def loop(_a, _b):
        with _numba_threads(P):
            parallel(*args, state, sync.YIELD, sync.TIMEOUT_CYCLES)

    in_parallel([(0, 1)], loop, macs)  # single-threaded BLAS when it matters
    if sync.aborted(state):
        _SYNC_FAILED[0] = True
        return False
    return True


class _numba_threads:
    """numba's thread count set to ``n`` for a parallel kernel, restored afterwards."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        if self.n > 1:
            self.previous = numba.get_num_threads()
            numba.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n > 1:
            numba.set_num_threads(self.previous)


# --- backward -----------------------------------------------------------------------------------


@njit(**_JIT)
def _backward_gates(addr, t, j0, j1, XH, G, C, TC, dhs, has_dhs, dh, dc, mask, has_mask, DZ,
                    dWTp, keep_dh, keep_dc, iw, fw, acts):  # fmt: skip
    """Units j0:j1 of step t: dz of their gate rows into ``DZ`` (chunk-major), and their rows of
    the weight gradient ``dWTp += dz @ xh_t.T`` (``=`` at the last step, the first done: no
    zeroing pass over ``dWTp``)."""
    _, H4, B = G.shape
    H = H4 // 4
    K = XH.shape[1]
    hu = j1 - j0
    if has_dhs:  # dhs (B, T, H), the layer's layout: strided adds, ~1 us at (128, 32)
        for j in range(j0, j1):
            for b in range(B):
                dh[j, b] += dhs[b, t, j]
    if has_mask:  # (explicit loops: 2-D slice assignment triples this function's compile time)
        for j in range(j0, j1):
            for b in range(B):
                keep_dh[j, b] = dh[j, b]
                keep_dc[j, b] = dc[j, b]
    zo = 4 * j0 * B
    lstm_pass_grad(G[t].ravel(), H * B, j0 * B, TC[t].ravel(), C[t].ravel(), dh.ravel(),
                   dc.ravel(), DZ.ravel(), zo, hu * B, hu * B, acts)  # fmt: skip
    if has_mask:  # a skipped step passes dh and dc straight through, no gradient
        carry_over(mask[t], dc[j0:j1].T, keep_dc[j0:j1].T)
        for b in range(B):
            if not mask[t, b]:
                for r in range(4 * j0, 4 * j1):
                    DZ[r, b] = 0
    s = DZ.itemsize
    beta = 0.0 if t == G.shape[0] - 1 else 1.0
    gemm(addr, False, True, 4 * hu, K, B, 1.0, DZ.ctypes.data + zo * s, B, XH[t].ctypes.data, B,
         beta, dWTp.ctypes.data + 4 * j0 * K * s, K, iw, fw)  # fmt: skip


@njit(**_JIT)
def _backward_inputs(t, r0, r1, Wp, p0, mk, DZ, out, dx, dh, rm, has_rm, mask, has_mask,
                     keep_dh):  # fmt: skip
    """Rows r0:r1 of ``[dx_t.T; dh_{t-1}.T] = W @ dz`` (all of dz; those rows of ``W`` packed
    from panel ``p0`` of ``Wp``) into ``out (D+H, B)``: the x rows go to ``dx (B, T, D)`` (the
    layer's layout), the h rows become dL/dh_{t-1} (recurrent dropout, masked columns passing dh
    through)."""
    H4, B = DZ.shape
    D = out.shape[0] - H4 // 4
    matmul_packed(Wp, p0, r1 - r0, DZ, out[r0:], mk)
    if r0 < D:
        for b in range(B):
            row = dx[b, t]
            for d in range(r0, min(r1, D)):
                row[d] = out[d, b]
    for r in range(max(r0, D), r1):
        j = r - D
        for b in range(B):
            dh[j, b] = out[r, b] * rm[j, b] if has_rm else out[r, b]
    if has_mask:
        j0, j1 = max(r0, D) - D, max(r1, D) - D
        carry_over(mask[t], dh[j0:j1].T, keep_dh[j0:j1].T)


@njit(**_JIT)
def _backward_rows(t, p, lo, hi, Wp, first, mk, DZ, out, dx, dh, rm, has_rm, mask, has_mask,
                   keep_dh):  # fmt: skip
    """Thread p's rows of ``W @ dz``: its ranges ``lo[2p + i]:hi[2p + i]`` (i = 0, 1: x rows,
    then the h rows of its own units)."""
    for i in range(2 * p, 2 * p + 2):
        if hi[i] > lo[i]:
            _backward_inputs(t, lo[i], hi[i], Wp, first[i], mk, DZ, out, dx, dh, rm, has_rm,
                             mask, has_mask, keep_dh)  # fmt: skip


@njit(**_JIT)
def _unpermute(dWTp, perm, q0, q1, dW, dU, db):
    """Rows ``q0:q1`` of ``dWTp`` (chunk-major ``[d bias | d kernel.T | d recurrent_kernel.T]``)
    into their columns ``perm[q]`` of ``dW (D, 4H)``, ``dU (H, 4H)``, ``db (4H,)``."""
    D = dW.shape[0]
    for a in range(q0, q1, 16):  # tiles of 16 rows: their lines stay in L1 across the columns
        b = min(a + 16, q1)
        for q in range(a, b):
            db[perm[q]] = dWTp[q, 0]
        for d in range(D):
            for q in range(a, b):
                dW[d, perm[q]] = dWTp[q, 1 + d]
        for j in range(dU.shape[0]):
            for q in range(a, b):
                dU[j, perm[q]] = dWTp[q, 1 + D + j]


@njit(**_JIT)
def _backward_serial(addr, edges, lo, hi, Wp, first, mk, XH, G, C, TC, dhs, has_dhs, dh, dc, rm,
                     has_rm, mask, has_mask, DZ, out, dx, dWTp, keep_dh, keep_dc, perm, dW, dU,
                     db, acts, W):  # fmt: skip
    """BPTT over the buffers of the forward pass on this thread (see :func:`_backward_parallel`)."""
    _pack_W(W[0], W[1], perm, lo, hi, first, Wp)
    iw, fw = gemm_scratch(G)
    for t in range(G.shape[0] - 1, -1, -1):
        _backward_gates(addr, t, 0, edges[1], XH, G, C, TC, dhs, has_dhs, dh, dc, mask, has_mask,
                        DZ[0], dWTp, keep_dh, keep_dc, iw, fw, acts)  # fmt: skip
        _backward_rows(t, 0, lo, hi, Wp, first, mk, DZ[0], out, dx, dh, rm, has_rm, mask,
                       has_mask, keep_dh)  # fmt: skip
    _unpermute(dWTp, perm, 0, 4 * edges[1], dW, dU, db)


@njit(parallel=True, **_JIT)
def _backward_parallel(addr, edges, lo, hi, Wp, first, mk, XH, G, C, TC, dhs, has_dhs, dh, dc,
                       rm, has_rm, mask, has_mask, DZ, out, dx, dWTp, keep_dh, keep_dc, perm, dW,
                       dU, db, acts, W, state, yield_addr, timeout):  # fmt: skip
    """BPTT, from the last step: ``dh, dc (H, B)`` hold dL/dh_T, dL/dc_T on entry and dL/dh_0,
    dL/dc_0 on exit; ``dhs (B, T, H)``: upstream gradients of every h_t; fills
    ``dx (B, T, D)`` and ``dWTp`` (chunk-major rows of [d bias | d kernel.T |
    d recurrent_kernel.T]), then scatters ``dWTp`` into ``dW``, ``dU``, ``db``.

    Thread p: the gate rows of unit chunk ``edges[p]:edges[p+1]``, then (all of dz: the threads
    meet between the two) its rows of ``W @ dz``: a share of the x rows and the h rows of its
    own units, so dL/dh_{t-1} of its units is its own work and the next step's gate pass needs
    no second meeting. dz alternates between ``DZ[0]`` and ``DZ[1]``: a thread may write step
    t - 1's while the other still reads step t's (it cannot be two steps ahead: it would have
    passed a meeting the other has not reached). One meeting per step (was two). Each thread
    packs its own rows of ``W`` first (``W = (kernel, U)``), which no other reads."""
    P = edges.shape[0] - 1
    T = G.shape[0]
    for p in prange(P):
        _pack_W(W[0], W[1], perm, lo[2 * p : 2 * p + 2], hi[2 * p : 2 * p + 2],
                first[2 * p : 2 * p + 2], Wp)  # fmt: skip
        iw, fw = gemm_scratch(G)
        for t in range(T - 1, -1, -1):
            dz = DZ[t % 2]
            _backward_gates(addr, t, edges[p], edges[p + 1], XH, G, C, TC, dhs, has_dhs, dh, dc,
                            mask, has_mask, dz, dWTp, keep_dh, keep_dc, iw, fw,
                            acts)  # fmt: skip
            if not wait(state, P, T - t, yield_addr, timeout):
                break
            _backward_rows(t, p, lo, hi, Wp, first, mk, dz, out, dx, dh, rm, has_rm, mask,
                           has_mask, keep_dh)  # fmt: skip
        _unpermute(dWTp, perm, 4 * edges[p], 4 * edges[p + 1], dW, dU, db)


def buffers_of(cache):
    """``cache.buffers`` if they stand behind this very cache's arrays, else None (another
    forward's cache, or one rebuilt around other arrays, e.g. ``inspect``'s one-step caches)."""
    fm = getattr(cache, "buffers", None)
    same = fm is not None and all(a is b for a, b in zip(fm.views, (cache.x, *cache[3:7])))
    return fm if same else None


def _packed_input_weights(kernel, U, perm, rows, ws):
    """Rows ``rows[p]:rows[p+1]`` of ``W = [kernel; recurrent_kernel] (D + H, 4H)``, columns in
    the chunk-major order ``perm``, packed for :func:`.packed.matmul_packed` chunk by chunk
    (chunk p from panel ``first[p]`` on). Returns ``(Wp, first)``."""
    lo, hi = rows[:-1], rows[1:]
    first = _range_panel_starts(tuple(lo.tolist()), tuple(hi.tolist()))
    Wp = _row_panels(kernel, first, ws)
    _pack_W(kernel, U, perm, lo, hi, first, Wp)
    return Wp, first


def _row_panels(kernel, first, ws):
    """Panels for the row ranges of ``W`` (as above) whose range i starts at panel
    ``first[i]`` (:func:`_range_panel_starts`), not filled (:func:`_pack_W` fills them)."""
    return _take(ws, (int(first[-1]), kernel.shape[1], MR), kernel.dtype)


@njit(**_JIT)
def _pack_W(kernel, U, perm, lo, hi, first, Wp):
    D = kernel.shape[0]
    H4 = kernel.shape[1]
    for p in range(lo.shape[0]):
        for q in range(lo[p], hi[p], MR):
            panel = Wp[first[p] + (q - lo[p]) // MR]
            for r in range(MR):
                i = q + r
                if i < hi[p]:
                    src = kernel[i] if i < D else U[i - D]
                    for k in range(H4):
                        panel[k, r] = src[perm[k]]
                else:
                    for k in range(H4):
                        panel[k, r] = 0


@functools.lru_cache(maxsize=64)
def _row_ranges(D, H, P, need_dx):
    """Each thread's rows of ``W @ dz``, ``(lo, hi, first)`` of ``2P`` ranges: thread p's are
    ``2p`` (its share of the D x rows, none without dx) and ``2p + 1`` (the h rows of its unit
    chunk of :func:`_chunks`); range i packed from panel ``first[i]`` on
    (:func:`_range_panel_starts`). One thread: a single range, all rows it needs. (Cached, read
    only: the same arrays at every step.)"""
    edges = _chunks(H, P)[0]
    r0 = 0 if need_dx else D
    if P == 1:
        lo, hi = np.array([r0, D + H], np.int64), np.array([D + H, D + H], np.int64)
    else:
        xe = [round(D * p / P) if need_dx else 0 for p in range(P + 1)]
        lo = np.array([v for p in range(P) for v in (xe[p], D + edges[p])], np.int64)
        hi = np.array([v for p in range(P) for v in (xe[p + 1], D + edges[p + 1])], np.int64)
    return lo, hi, _range_panel_starts(tuple(lo.tolist()), tuple(hi.tolist()))


def lstm_backward_fm(dhs, dh_T, dc_T, cache, need_dx=True, acts=None, ws=None, threads=None):
    """:func:`lstmkit.ops.fast.lstm.lstm_backward` from the buffers a :func:`lstm_forward_fm`
    cache carries, on as many threads as its forward (or ``threads``); shapes already checked by
    the caller. ``need_dx=False`` leaves out the x rows of every step's ``W @ dz``. ``ws``: where
    its scratch comes from (None: fresh arrays); the gradients it returns are fresh arrays."""
    acts = acts_for(*DEFAULT) if acts is None else acts
    XH, G, C, TC, P, mk, _ = cache.buffers
    P = P if threads is None else threads
    x, kernel, U = cache[:3]
    mask, rmask = cache.mask, cache.recurrent_mask
    dt = G.dtype
    T, H4, B = G.shape
    H = H4 // 4
    D = x.shape[2]
    K = 1 + D + H
    dh, dc = _state_grad(dh_T, H, B, dt, ws), _state_grad(dc_T, H, B, dt, ws)
    has_dhs = dhs is not None
    dhs_ = _DUMMY_3D[dt.char] if not has_dhs else _batch_major(dhs, dt, ws)
    rmT, has_rm = float_or_dummy(None if rmask is None else np.asarray(rmask).T, dt)
    m, has_m = bool_or_dummy(mask)
    edges, perm = _chunks(H, P)
    lo, hi, first = _row_ranges(D, H, P, need_dx)
    Wp = _row_panels(kernel, first, ws)  # packed by the kernel, each thread its rows
    DZ = _take(ws, (min(P, 2), H4, B), dt)  # threads: dz of even and odd steps, in turn
    out = _take(ws, (D + H, B), dt)  # one step's W @ dz
    # dx is returned (never from ws); without it, a stand-in no step writes (rows from D on)
    dx = aligned_empty((B, T, D), dt) if need_dx else _DUMMY_3D[dt.char]
    dWTp = _take(ws, (H4, K), dt)  # the first step's product overwrites it ...
    if T == 0:
        dWTp.fill(0)  # ... unless there is none
    keep_dh = _take(ws, (H, B), dt) if has_m else float_dummy(dt)  # read only with a mask
    keep_dc = _take(ws, (H, B), dt) if has_m else float_dummy(dt)
    # dWTp's rows are in the chunk-major order perm: each thread scatters its own back into
    # the gradients, without an unpermuted (4H, K) copy
    dW, dU, db = np.empty((D, H4), dt), np.empty((H, H4), dt), np.empty(H4, dt)
    args = (gemm_address(dt), edges, lo, hi, Wp, first, mk, XH, G, C, TC, dhs_,
            has_dhs, dh, dc, rmT, has_rm, m, has_m, DZ, out, dx, dWTp, keep_dh, keep_dc, perm,
            dW, dU, db, acts, (kernel, U))  # fmt: skip
    scratch = (Wp, DZ, dWTp, dhs_, out, keep_dh, keep_dc)  # (dhs_ only if taken here)
    if not _in_step(P, _backward_serial, _backward_parallel, args, B * H4 * K):
        _give_back(ws, *scratch, dh, dc)
        return lstm_backward_fm(dhs, dh_T, dc_T, cache, need_dx, acts, ws, threads=1)
    grads = {
        "x": dx.transpose(1, 0, 2) if need_dx else None,  # a view of the layer's (B, T, D)
        # copies, always (dh and dc go back to ws; at H = 1, dh.T is contiguous already and
        # ascontiguousarray would hand out the workspace's buffer)
        "h0": dh.T.copy(),
        "c0": dc.T.copy(),
        "kernel": dW,
        "recurrent_kernel": dU,
        "bias": db,
    }
    _give_back(ws, *scratch, dh, dc)  # scratch of this call only
    return grads


def _state_grad(d, H, B, dt, ws=None):
    """``(H, B)``, on a cache line (from ``ws``: scratch of the backward): ``d (B, H)``
    transposed (cast to ``dt``), zeros if None."""
    out = _take(ws, (H, B), dt)
    if d is None:
        out.fill(0)
    else:
        out[...] = np.asarray(d, dt).T
    return out


def _batch_major(dhs, dt, ws):
    """``dhs (T, B, H)`` as the C-contiguous ``(B, T, H)`` the kernels read: a view when it is
    one of the layer's ``(B, T, H)`` gradient, else a copy into a buffer of ``ws`` (a half of a
    ``Bidirectional``'s gradient is strided), which lives only for this call."""
    d = np.asarray(dhs).transpose(1, 0, 2)
    if d.dtype == dt and d.flags.c_contiguous:
        return d
    out = _take(ws, d.shape, dt)
    np.copyto(out, d)
    return out


# --- inference ----------------------------------------------------------------------------------


@njit(**_JIT)
def _infer_chunk(t, j0, j1, d0, d1, Ap, p0, mk, xb, XH, Z, Cb, out, mask, has_mask, acts):
    """Units j0:j1 of inference step t, all batch columns: their gate rows of ``W.T @ xh_t``
    (packed from panel ``p0`` of ``Ap``), c_t and h_t, h_t into ``xh_{t+1}`` and
    ``out (B, T, H)``, and x rows d0:d1 of ``xh_{t+1}``. ``XH (2, 1+D+H, B)``, ``Cb (2, H, B)``:
    ping-pong buffers."""
    _, T, D = xb.shape
    B = XH.shape[2]
    r0 = 1 + D
    hu = j1 - j0
    xh, nx = XH[t % 2], XH[(t + 1) % 2]
    matmul_packed(Ap, p0, 4 * hu, xh, Z, mk)
    cp, cn = Cb[t % 2], Cb[(t + 1) % 2]
    lstm_pass_infer(Z.ravel(), cp.ravel()[j0 * B : j1 * B], cn.ravel()[j0 * B : j1 * B],
                    nx.ravel()[(r0 + j0) * B : (r0 + j1) * B], hu * B, acts, mk[3])  # fmt: skip
    if has_mask:
        carry_over(mask[t], cn[j0:j1].T, cp[j0:j1].T)
        carry_over(mask[t], nx[r0 + j0 : r0 + j1].T, xh[r0 + j0 : r0 + j1].T)
    transpose_into(nx[r0 + j0 : r0 + j1], out[:, t, j0:j1], mk)  # h_t (hu, B) -> (B, hu)
    if t + 1 < T:
        transpose_into(xb[:, t + 1, d0:d1], nx[1 + d0 : 1 + d1], mk)


@njit(**_JIT)
def _infer_serial(edges, dedges, Ap, first, mk, xb, XH, Z, Cb, out, mask, has_mask, acts):
    """Inference on this thread (``edges`` = [0, H], ``dedges`` = [0, D])."""
    for t in range(xb.shape[1]):
        _infer_chunk(t, 0, edges[1], 0, dedges[1], Ap, 0, mk, xb, XH, Z[0], Cb, out, mask,
                     has_mask, acts)  # fmt: skip


@njit(parallel=True, **_JIT)
def _infer_parallel(edges, dedges, Ap, first, mk, xb, XH, Z, Cb, out, mask, has_mask, acts,
                    state, yield_addr, timeout):  # fmt: skip
    """Inference with the units split among the threads (chunk p: units ``edges[p]:edges[p+1]``
    and x rows ``dedges[p]:dedges[p+1]`` of the next step), meeting once per step (the
    ping-pong buffers of step t + 1 are those step t - 1 read)."""
    P = edges.shape[0] - 1
    for p in prange(P):
        for t in range(xb.shape[1]):
            _infer_chunk(t, edges[p], edges[p + 1], dedges[p], dedges[p + 1], Ap, first[p], mk,
                         xb, XH, Z[p], Cb, out, mask, has_mask, acts)  # fmt: skip
            if not wait(state, P, t + 1, yield_addr, timeout):
                break


def infer_rows(B, macs, itemsize) -> list[tuple[int, int]]:
    """How inference shares a batch of ``B`` columns (``macs`` multiply-adds in all) among the
    threads: one slice ``(b0, b1)`` per thread, each with its own time loop and buffers
    (:func:`_infer_lead`, :func:`_infer_helper`), and each at least one vector of the
    micro-kernel in use and one cache line (16 float32, 8 float64 columns), so that no slice's
    product goes through the zero-padded copy of :func:`.packed.matmul_packed` and no slice runs
    a block narrower than a line. The batch split rests on the lead running every slice at the
    rate of one whole pass when no helper comes; narrower slices break that: two 8-column
    float32 slices on AVX2 (the 6 x 8 half block, 6 accumulators) cost 1.37x one 16-column
    pass on the AVX2 EPYC, and config D on two threads took 2.0 ms against 1.2 on one
    (docs/speed.md, "Issue 20: inference on an AVX2 CPU"). AVX-512's half block (16 float32,
    one line) keeps the rate: the rule there is what it was (one vector). A batch with no such
    split (config D: 16 columns) falls back to the unit split or one thread
    (:func:`lstm_infer_fm`)."""
    return split(B, macs, least=max(lanes(itemsize), _common.CACHE_LINE // itemsize))


# --- inference, the batch split -------------------------------------------------------------
#
# Each slice of the batch has its own buffers from the start, so whoever runs its next step needs
# nothing else. The calling thread (the lead) runs the steps of every slice, one step of each in
# turn; a helper thread of the pool takes a ticket when it starts, and at its next step boundary
# the lead hands it the last slice it still runs (ticket k: slice P - k), from that step on
# (:mod:`.sync`, "hand-over"). The lead never waits for a helper to wake (0.15-0.3 ms after an
# idle gap here, and a thread the OS has not scheduled never comes): the slices it has not handed
# over it runs itself, at the same rate (the products of two 16-column slices take what one
# 32-column product does). It waits at the end only for the helpers it handed work to.


@njit(**_JIT)
def _slice_step(t, q, sl, Ap, mk, xb, XH, Z, Cb, out, M, has_mask, acts):
    """Step t of batch slice q (columns ``sl[q]:sl[q+1]``, width w): its buffers are rows q of
    ``XH (P, >= 2 K w)``, ``Z (P, >= 4 H w)``, ``Cb (P, >= 2 H w)`` and ``M (P, >= T w)`` (its
    mask), shaped here as :func:`_infer_chunk` reads them."""
    b0, b1 = sl[q], sl[q + 1]
    w = b1 - b0
    _, T, D = xb.shape
    H = out.shape[2]
    K = 1 + D + H
    m = M[q, : T * w].reshape((T, w)) if has_mask else M[q, :1].reshape((1, 1))
    _infer_chunk(t, 0, H, 0, D, Ap, 0, mk, xb[b0:b1], XH[q, : 2 * K * w].reshape((2, K, w)),
                 Z[q, : 4 * H * w].reshape((4 * H, w)), Cb[q, : 2 * H * w].reshape((2, H, w)),
                 out[b0:b1], m, has_mask, acts)  # fmt: skip


@njit(**_JIT)
def _final_c(q, sl, Cb, c_T, T):
    """c_T of slice q, from its ping-pong buffer, into rows ``sl[q]:sl[q+1]`` of ``c_T (B, H)``."""
    b0, w = sl[q], sl[q + 1] - sl[q]
    H = c_T.shape[1]
    c = Cb[q, (T % 2) * H * w : (T % 2 + 1) * H * w]
    for b in range(w):
        for j in range(H):
            c_T[b0 + b, j] = c[j * w + b]


@njit(**_JIT)
def _infer_lead(state, sl, Ap, mk, xb, XH, Z, Cb, out, M, has_mask, acts, c_T, yield_addr):
    """The calling thread's part of a batch split into ``P = len(sl) - 1`` slices: every step of
    every slice not yet handed to a helper (ticket k takes slice P - k, handed over at the
    lead's first step boundary after it arrived), then c_T of its slices. Returns how many
    helpers it handed work to (tickets 1 to that), which the caller waits for."""
    P = sl.shape[0] - 1
    T = xb.shape[1]
    g = 0  # slices handed over: P - 1, ..., P - g
    for t in range(T):
        arrived = min(sync.tickets(state), P - 1)
        while g < arrived:
            g += 1
            sync.post(state, g, t + 1)  # ticket g runs slice P - g from step t
        for q in range(P - g):
            _slice_step(t, q, sl, Ap, mk, xb, XH, Z, Cb, out, M, has_mask, acts)
    _close_late(state, g, P, T)
    for q in range(P - g):
        _final_c(q, sl, Cb, c_T, T)
    return g


@njit(**_JIT)
def _close_late(state, g, P, T):
    """No ticket is served after this; the tickets after ``g`` (the helpers that came after the
    last hand-over, or every one when the lead ran nothing) are posted past the end, so that
    they return instead of waiting for a slice."""
    late = min(sync.close(state), P - 1)
    for k in range(g + 1, late + 1):
        sync.post(state, k, T + 1)


@njit(**_JIT)
def _infer_helper(state, sl, Ap, mk, xb, XH, Z, Cb, out, M, has_mask, acts, c_T, yield_addr):
    """A pool thread's part: take a ticket k, wait for the step the lead hands slice P - k over
    at, run the rest of that slice and its c_T, then say so. A ticket past the lead's end (or
    past the slices) does nothing."""
    P = sl.shape[0] - 1
    T = xb.shape[1]
    k = sync.take_ticket(state)
    if k > P - 1:
        return
    start = sync.await_post(state, k, yield_addr) - 1
    if start >= T:  # the lead had already run every step
        return
    q = P - k
    for t in range(start, T):
        _slice_step(t, q, sl, Ap, mk, xb, XH, Z, Cb, out, M, has_mask, acts)
    _final_c(q, sl, Cb, c_T, T)
    sync.post(state, P - 1 + k, 1)


def _pool_helpers(helper, n) -> None:
    """Start ``n`` calls of ``helper()`` on the pool's threads, and return at once."""
    from .common import _pool

    pool = _pool(n)
    for _ in range(n):  # (a helper that comes too late finds the state closed)
        pool.submit(helper)


def _run_helper(args, done, failed) -> None:
    """A helper's call on its pool thread: its share, then wake the lead if it sleeps. A helper
    that raises says so in ``failed`` and wakes the lead too, which would otherwise wait forever
    for the done flag of a slice that nobody finishes."""
    try:
        _infer_helper(*args)
    except BaseException as e:
        failed.append(e)
        raise
    finally:
        with done:
            done.notify_all()


def _infer_start(XH, Cb, xb, h0, c0) -> None:
    """Step 0 of inference's ping-pong buffers for the batch columns of ``xb (w, T, D)``:
    ``XH (2, K, w)`` the stacked input ``[1; x_0.T; h_0.T]`` (the ones row in both halves),
    ``Cb (2, H, w)`` c_0 in its first half. (The whole batch, or one slice of the batch split.)"""
    D = xb.shape[2]
    XH[:, 0] = 1
    if xb.shape[1] > 0:
        XH[0, 1 : 1 + D] = xb[:, 0].T
    XH[0, 1 + D :] = h0.T
    Cb[0] = c0.T


def _infer_batch_split(rows, weights, xb, h0, c0, out, mask, acts, ws=None,
                       launch=_pool_helpers):  # fmt: skip
    """Inference over the batch slices ``rows`` (two or more), the calling thread and helpers
    sharing them (see above); ``weights`` = ``(kernel, recurrent_kernel, bias)``. Returns c_T
    ``(B, H)`` (h_t goes into ``out``). ``launch(helper, n)`` starts ``n`` calls of ``helper()``
    elsewhere (tests start them when they choose): first thing, so that a helper's wake-up
    overlaps the packing of the weights (it waits for the lead's first step)."""
    B, T, D = xb.shape
    H = h0.shape[1]
    K = 1 + D + H
    P = len(rows)
    dt = xb.dtype
    sl = np.array([r[0] for r in rows] + [rows[-1][1]], np.int64)
    wide = max(b1 - b0 for b0, b1 in rows)
    edges, perm = _chunks(H, 1)
    first = _panel_starts((4 * H,))
    Ap = _take(ws, (int(first[-1]), K, MR), dt)
    n = dt.itemsize  # each slice's buffers from a cache line on
    XH = aligned_empty((P, line_multiple(2 * K * wide, n)), dt)
    Cb = aligned_empty((P, line_multiple(2 * H * wide, n)), dt)
    Z = aligned_empty((P, line_multiple(4 * H * wide, n)), dt)
    M = np.empty((P, T * wide if mask is not None else 1), np.bool_)
    c_T = np.empty((B, H), dt)
    state = np.zeros(2 * P, np.int64)
    args = (state, sl, Ap, kernels(dt), xb, XH, Z, Cb, out, M, mask is not None, acts, c_T,
            sync.YIELD)  # fmt: skip
    done, failed = threading.Condition(), []
    launch(functools.partial(_run_helper, args, done, failed), P - 1)
    try:
        _pack_stacked_T(*weights, perm, edges, first, Ap)
        for q, (b0, b1) in enumerate(rows):
            w = b1 - b0
            _infer_start(XH[q, : 2 * K * w].reshape(2, K, w), Cb[q, : 2 * H * w].reshape(2, H, w),
                         xb[b0:b1], h0[b0:b1], c0[b0:b1])  # fmt: skip
            if mask is not None:
                M[q, : T * w].reshape(T, w)[...] = mask[:, b0:b1]
        handed = _infer_lead(*args)
    except BaseException:  # Ctrl-C or SIGTERM before the loop: the helpers must not wait on
        _close_late(state, 0, P, T)  # a hand-over that never comes (they held the process)
        raise
    finished = [P - 1 + k for k in range(1, handed + 1)]  # their done flags
    if not sync.await_flags(state, np.array(finished, np.int64), sync.SPIN_CYCLES):
        with done:  # one still runs: sleep rather than spin on a core it may need
            done.wait_for(lambda: failed or all(state[i] for i in finished))
    _give_back(ws, Ap)
    if failed:  # a slice handed to it may be unfinished: never return it
        raise RuntimeError(f"LSTM inference: a helper thread failed ({failed[0]!r})") from failed[0]
    return c_T


def lstm_infer_fm(x, h0, c0, kernel, U, bias, mask=None, acts=None, ws=None):
    """:func:`lstmkit.ops.fast.lstm.lstm_infer`, feature-major (no cache: one step's buffers,
    used in turn); arguments already checked and cast by the caller. ``ws``: the
    :class:`~lstmkit.ops.workspace.Workspace` that the output comes from (None: fresh arrays).

    Threads: a batch of at least one vector and one cache line per thread (16 float32 columns) is
    split into slices that the calling thread and the pool's helpers share, handed over as the
    helpers arrive, never meeting otherwise (:func:`_infer_lead`); a smaller batch with big
    steps has its units split as in training."""
    acts = acts_for(*DEFAULT) if acts is None else acts
    dt = x.dtype
    T, B, D = x.shape
    H = h0.shape[1]
    K = 1 + D + H
    macs = T * B * 4 * H * K
    rows = infer_rows(B, macs, dt.itemsize)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))  # (B, T, D): a view of the layer's input
    out = _take(ws, (B, T, H), dt)  # the layer's layout
    if len(rows) > 1:
        c_T = _infer_batch_split(rows, (kernel, U, bias), xb, h0, c0, out, mask, acts, ws)
        return out.transpose(1, 0, 2), (out[:, T - 1].copy(), c_T)
    P = 1
    if B * 4 * H * K >= PARALLEL_STEP_MACS // 8 and not _SYNC_FAILED[0]:
        P = max(1, min(len(split(H, macs)), numba.config.NUMBA_NUM_THREADS))
    edges, perm = _chunks(H, P)
    Ap, first = _packed_weights(kernel, U, bias, perm, edges, ws)  # chunk-major rows
    met, c_T = _infer_units(P, edges, Ap, first, kernels(dt), xb, h0, c0, out, mask, acts)
    _give_back(ws, Ap)
    if not met:  # the threads could not all meet: on one thread
        _give_back(ws, out)
        return lstm_infer_fm(x, h0, c0, kernel, U, bias, mask, acts, ws)
    if T == 0:
        return out.transpose(1, 0, 2), (h0, c0)
    return out.transpose(1, 0, 2), (out[:, T - 1].copy(), c_T)


def _infer_units(P, edges, Ap, first, mk, xb, h0, c0, out, mask, acts):
    """The whole batch on this thread (``P`` 1) or with its units split among ``P`` threads
    meeting once per step; returns ``(met, c_T)``, ``met`` False when the threads could not all
    meet (:func:`_in_step`)."""
    B, T, D = xb.shape
    H = h0.shape[1]
    K = 1 + D + H
    dt = xb.dtype
    XH, Cb = aligned_empty((2, K, B), dt), aligned_empty((2, H, B), dt)  # step t's: [t % 2]
    _infer_start(XH, Cb, xb, h0, c0)
    widest = max(int(e1 - e0) for e0, e1 in itertools.pairwise(edges))  # units
    Z = aligned_empty((P, 4 * widest, B), dt)
    m, has_m = bool_or_dummy(mask)
    dedges = np.array([round(D * p / P) for p in range(P + 1)], np.int64)
    args = (edges, dedges, Ap, first, mk, xb, XH, Z, Cb, out, m, has_m, acts)
    met = _in_step(P, _infer_serial, _infer_parallel, args, 0)
    return met, Cb[T % 2].T.copy()
