"""Compiled LSTM: the whole time loop of forward and of BPTT in one numba call each.

Same equations, signatures, return types and cache (:class:`lstmkit.ops.lstm.LSTMCache`) as the
NumPy reference :mod:`lstmkit.ops.lstm`, so either backward consumes either forward's cache::

    z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel      # (B, 4H), gates i, f, g, o
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Which kernel runs (measured in ``benchmarks/bench_speed.py``, see ``docs/speed.md``):

- batches of 2 or more: the feature-major kernels of :mod:`.lstm_fm` (state as ``(H, B)``
  columns, one BLAS call per step, units split over threads);
- B = 1, training: the row-major time loops of :mod:`.rows`, shared with the GRU and the RNN
  (``h @ U`` per step through numba's ``np.dot`` into preallocated buffers, the input
  projection and the weight gradients as big GEMMs outside the loop, one pass per row);
- B = 1, inference: :func:`_lstm_infer_rows`, no BLAS at all (its fixed cost is most of a step);
- the streaming step: one compiled call with both products and the gates.

Every one of them runs the step and its derivative of :mod:`.cells` (one definition), with the
mask applied around it by :func:`.cells.carry_over`. Nothing is allocated inside the loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import lstm as _reference
from ..lstm import LSTMActCache
from . import lstm_fm
from ._jit import JIT as _JIT
from .activations import _fma
from .cells import add_row, lstm_pass_infer
from .common import as_float, bool_or_dummy, check_shapes, in_parallel, split, weight_gradients
from .elementwise import DEFAULT, gated_acts
from .elementwise import compiles as compiles_name
from .rows import backward, forward, prepare

# forward, infer and backward take ``ws`` (a :class:`lstmkit.ops.workspace.Workspace`): the ops
# namespace (:func:`lstmkit.ops.backend.ops_for`) passes the one of the compute scope they run in
TAKES_WORKSPACE = True


@njit(**_JIT)
def _add_product(z, v, M):
    """``z += v @ M`` for one row ``v (K,)`` and ``M (K, G)``, four rows of ``M`` per pass: each
    pass reads ``z`` once and adds four products by fused multiply-adds, as flat loops over
    contiguous rows that vectorise at the full width (zmm on AVX-512, ymm on AVX2). For a single
    row this beats a BLAS call, whose fixed cost is most of a step at B = 1, and the one-row
    axpy form, which loads and stores ``z`` once per row of ``M`` (the row kernel at T = 100,
    measured side by side: H = 64, D = 8 97 against 129 us; H = 32, D = 16 45 against 111 us;
    unrolling by 8 or 16 rows gained nothing more: see docs/speed.md)."""
    K, G = M.shape
    k = 0
    while k + 4 <= K:
        a0, a1, a2, a3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        m0, m1, m2, m3 = M[k], M[k + 1], M[k + 2], M[k + 3]
        for g in range(G):
            s = _fma(a0, m0[g], z[g])
            s = _fma(a1, m1[g], s)
            s = _fma(a2, m2[g], s)
            z[g] = _fma(a3, m3[g], s)
        k += 4
    while k < K:
        a = v[k]
        m = M[k]
        for g in range(G):
            z[g] = _fma(a, m[g], z[g])
        k += 1


@njit(**_JIT)
def _lstm_preact_row(xr, hr, kernel, U, bias, z):
    """``z = bias + x kernel + h U`` for one row (``z (4H,)`` apart from every operand)."""
    z[:] = bias
    _add_product(z, xr, kernel)
    _add_product(z, hr, U)


@njit(**_JIT)
def _lstm_infer_rows(x, h0, c0, kernel, U, bias, mask, has_mask, acts):
    """Inference row by row without BLAS (for batches too narrow for :mod:`.lstm_fm`): returns
    ``hs (T, B, H)``, h_T and c_T ``(B, H)``. Scratch and outputs are allocated here, not passed
    in: numba checks the type of every argument at every call.
    c_{t-1} and c_t sit in the two rows of ``cc`` in turn: given the same array for both, the
    pass cannot be vectorised (LLVM's run-time overlap check sends it to the scalar loop: 8x
    slower at H = 64)."""
    T, B, _ = x.shape
    H = h0.shape[1]
    hs = np.empty((T, B, H), h0.dtype)
    h_out, c_out = np.empty_like(h0), np.empty_like(c0)
    z = np.empty(4 * H, h0.dtype)  # (4H,) pre-activations of one row
    h, cc = np.empty(H, h0.dtype), np.empty((2, H), c0.dtype)
    for b in range(B):
        for j in range(H):
            h[j] = h0[b, j]
            cc[0, j] = c0[b, j]
        k = 0  # the row of cc holding c_{t-1}
        for t in range(T):
            if has_mask and not mask[t, b]:
                for j in range(H):
                    hs[t, b, j] = h[j]
                continue
            _lstm_preact_row(x[t, b], h, kernel, U, bias, z)  # bias included
            lstm_pass_infer(z, cc[k], cc[1 - k], h, H, acts)
            k = 1 - k
            hs[t, b] = h
        for j in range(H):
            h_out[b, j] = h[j]
            c_out[b, j] = cc[k, j]
    return hs, h_out, c_out


# Batches at least this wide take the feature-major kernels (:mod:`.lstm_fm`): on one thread
# 1.2-2x faster from B = 2 on, 2-4x slower at B = 1, where OpenBLAS's gemm with a single column
# is slower than the row-major product (measured at H = 16..256, T = 50).
FM_MIN_BATCH = 2


def _fm_threads(T, B, D, H):
    step = B * 4 * H * (1 + D + H)
    if step < lstm_fm.PARALLEL_STEP_MACS:
        return 1
    return len(split(H, T * step))


def lstm_forward(
    x, h0, c0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
    recurrent_activation="sigmoid",
    ws=None,
):  # fmt: skip
    """Run the LSTM over ``x (T, B, D)``; returns ``(hs (T, B, H), (h_T, c_T), cache)``. Any pair
    of :data:`.elementwise.COMPILED` activations. ``ws``: the
    :class:`~lstmkit.ops.workspace.Workspace` that ``hs`` and the cache's buffers come from, valid
    until its owner resets it (None: fresh arrays)."""
    acts = gated_acts("lstm_forward", activation, recurrent_activation)
    x, h0, c0, kernel, U, bias = prepare(
        "lstm_forward", x, h0, c0, kernel, recurrent_kernel, bias, mask,
        recurrent_mask, 4, contiguous=False,
    )  # fmt: skip
    dt = x.dtype
    T, B, _ = x.shape
    H = h0.shape[-1]
    if B >= FM_MIN_BATCH:
        P = _fm_threads(T, B, kernel.shape[0], H)
        return lstm_fm.lstm_forward_fm(
            x, h0, c0, kernel, U, bias, mask, recurrent_mask, P, acts, ws
        )
    x = np.ascontiguousarray(x)
    gates = np.empty((T, B, 4 * H), dtype=dt)
    c = np.empty((T + 1, B, H), dtype=dt)
    c[0] = c0
    tanh_c, h_in, hs = np.empty((T, B, H), dt), np.empty((T, B, H), dt), np.empty((T, B, H), dt)
    forward((gates, c, tanh_c), acts, x, kernel, bias, h0, U, mask, recurrent_mask, hs, h_in)
    fields = (x, kernel, U, gates, c, tanh_c, h_in, mask, recurrent_mask)
    cache = lstm_fm.make_cache(fields, (acts.act, acts.rec))
    h_T = hs[T - 1].copy() if T > 0 else h0
    return hs, (h_T, c[T]), cache


def lstm_infer(
    x, h0, c0, kernel, recurrent_kernel, bias, mask=None, activation="tanh",
    recurrent_activation="sigmoid",
    ws=None,
):  # fmt: skip
    """Inference only: :func:`lstm_forward` without building the cache (less memory traffic).

    Returns ``(hs (T, B, H), (h_T, c_T))``; ``hs`` from ``ws`` as in :func:`lstm_forward`.
    """
    acts = gated_acts("lstm_infer", activation, recurrent_activation)
    x, h0, c0, kernel, U, bias = prepare(
        "lstm_infer", x, h0, c0, kernel, recurrent_kernel, bias, mask, None, 4,
        contiguous=False,
    )  # fmt: skip
    return lstm_infer_checked(x, h0, c0, kernel, U, bias, mask, acts, ws)


def lstm_infer_plan(
    shape, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid"
):
    """For many calls of :func:`lstm_infer` on ``x`` of ``shape (T, B, D)`` and of the weights'
    float type, states ``(B, H)`` of that type, C-contiguous, no mask, and these weight arrays
    (``Model.predict``'s plan, :mod:`lstmkit.layers.infer_plan`; it holds the caller to that):
    ``infer(x, h0, c0)`` without the checks, made here once. None when the weights would need
    a cast or a copy, or their shapes do not fit (``lstm_infer`` then says why)."""
    acts = gated_acts("lstm_infer", activation, recurrent_activation)
    D = shape[2]  # x (T, B, D)
    dt, H = kernel.dtype, recurrent_kernel.shape[0]
    fits = zip((kernel, recurrent_kernel, bias), ((D, 4 * H), (H, 4 * H), (4 * H,)))
    if dt not in (np.float32, np.float64) or not all(
        a.dtype == dt and a.flags.c_contiguous and a.shape == want for a, want in fits
    ):
        return None

    if shape[1] >= FM_MIN_BATCH:

        def infer(x, h0, c0):
            return lstm_infer_checked(x, h0, c0, kernel, recurrent_kernel, bias, None, acts)

        return infer

    def infer_rows(x, h0, c0):  # lstm_infer_checked's row branch, T > 0, no mask
        hs, h_T, c_T = _lstm_infer_rows(
            np.ascontiguousarray(x), h0, c0, kernel, recurrent_kernel, bias, _NO_MASK, False, acts
        )
        return hs, (h_T, c_T)

    return infer_rows if shape[0] > 0 else None


_NO_MASK = bool_or_dummy(None)[0]


def lstm_infer_checked(x, h0, c0, kernel, U, bias, mask, acts, ws=None):
    """:func:`lstm_infer` after its checks: every array as :func:`.rows.prepare` returns it (one
    float type, C-contiguous but for ``x``, the shapes it checks), ``acts`` from
    :func:`.elementwise.gated_acts`, ``ws`` as there. The compiled loops do not bounds check:
    only callers that made those checks call this."""
    T, B, _ = x.shape
    if B >= FM_MIN_BATCH:
        return lstm_fm.lstm_infer_fm(x, h0, c0, kernel, U, bias, mask, acts, ws)
    m, has_m = bool_or_dummy(mask)
    hs, h_T, c_T = _lstm_infer_rows(
        np.ascontiguousarray(x), h0, c0, kernel, U, bias, m, has_m, acts
    )
    return hs, ((h0, c0) if T == 0 else (h_T, c_T))


@njit(**_JIT)
def _lstm_step_kernel(x, kernel, bias, h, c, U, xw, z, h_out, c_out, acts):
    np.dot(x, kernel, xw)  # (B, 4H)
    np.dot(h, U, z)
    for b in range(h.shape[0]):
        add_row(z[b], z[b], xw[b], bias)
        lstm_pass_infer(z[b], c[b], c_out[b], h_out[b], h.shape[1], acts)


def lstm_step(
    x_t, h, c, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid"
):
    """One time step for streaming inference: ``(B, D), (B, H), (B, H) -> (h, c)``.

    One compiled call with both products and the gates; no threads (too little work to share).
    """
    acts = gated_acts("lstm_step", activation, recurrent_activation)
    x_t = as_float(x_t)
    dt = x_t.dtype
    h, c, kernel, U, bias = (as_float(a, dt) for a in (h, c, kernel, recurrent_kernel, bias))
    if h.ndim != 2 or x_t.ndim != 2:
        raise ValueError(
            f"lstm_step: arguments 'x_t' and 'h' must have shapes (B, D) and (B, H); "
            f"got {x_t.shape} and {h.shape}"
        )
    B, H = h.shape
    D = x_t.shape[1]
    check_shapes(
        "lstm_step",
        x_t=(x_t, (B, D)),
        c=(c, (B, H)),
        kernel=(kernel, (D, 4 * H)),
        recurrent_kernel=(U, (H, 4 * H)),
        bias=(bias, (4 * H,)),
    )
    xw = np.empty((B, 4 * H), dtype=dt)
    z = np.empty((B, 4 * H), dtype=dt)
    h_out = np.empty((B, H), dtype=dt)
    c_out = np.empty((B, H), dtype=dt)

    def step(_a, _b):
        _lstm_step_kernel(x_t, kernel, bias, h, c, U, xw, z, h_out, c_out, acts)

    in_parallel([(0, B)], step, B * 4 * H * max(D, H))  # BLAS single-threaded when it matters
    return h_out, c_out


def lstm_backward(dhs, dh_T, dc_T, cache, need_dx=True, ws=None):
    """BPTT through :func:`lstm_forward` (or the reference's forward: same cache).

    Returns a dict of fresh arrays: ``x, h0, c0, kernel, recurrent_kernel, bias``; ``x`` is
    None with ``need_dx=False``. A cache of activations the kernels lack (the reference's forward
    ran them) goes to the reference's backward. ``ws``: where the scratch of the feature-major
    backward comes from (None: fresh arrays).
    """
    pair = cache.activations if isinstance(cache, LSTMActCache) else DEFAULT
    if not all(map(compiles_name, pair)):
        return _reference.lstm_backward(dhs, dh_T, dc_T, cache, need_dx)
    acts = gated_acts("lstm_backward", *pair)
    x, kernel, U, gates, c, tanh_c, h_in, mask, rmask = cache[:9]
    dt = gates.dtype
    T, B, _ = x.shape
    H = c.shape[-1]
    check_shapes("lstm_backward", dhs=(dhs, (T, B, H)), dh_T=(dh_T, (B, H)), dc_T=(dc_T, (B, H)))
    if lstm_fm.buffers_of(cache) is not None:  # the feature-major forward's own cache
        return lstm_fm.lstm_backward_fm(dhs, dh_T, dc_T, cache, need_dx, acts, ws)
    x, kernel, U = as_float(x, dt), as_float(kernel, dt), as_float(U, dt)
    gates, c, tanh_c, h_in = (as_float(a, dt) for a in (gates, c, tanh_c, h_in))
    dc = np.zeros((B, H), dt) if dc_T is None else np.array(dc_T, dtype=dt, order="C")
    dz = np.empty((T, B, 4 * H), dtype=dt)
    dh = backward((gates, c, tanh_c, dc, dz, dz), acts, dhs, dh_T, U, mask, rmask)
    # Weight gradients: sums over every step and row, so big GEMMs after the loop.
    dx, dW, dU, db, _ = weight_gradients(x, kernel, h_in, dz)
    dx = dx if need_dx else None  # (B = 1 here: the products it would save are small)
    return {"x": dx, "h0": dh, "c0": dc, "kernel": dW, "recurrent_kernel": dU, "bias": db}
