"""Compiled simple RNN: whole-sequence forward and BPTT, one numba call each.

Same equations, signatures, return types and cache (:class:`lstmkit.ops.rnn.RNNCache`) as the
NumPy reference :mod:`lstmkit.ops.rnn`, so either backward consumes either forward's cache::

    h_t = φ(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)      # (B, H)

``φ`` is any activation of :data:`.elementwise.COMPILED`, bound at compile time (one machine
code per activation, no branch in the loops).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import rnn as _reference
from ..rnn import RNNCache
from ._jit import JIT as _JIT
from .cells import carry_over, rnn_pass, rnn_pass_grad
from .common import (
    as_float,
    bool_or_dummy,
    check_shapes,
    float_or_dummy,
    in_parallel,
    input_projection,
    serial,
    split,
    weight_gradients,
)
from .elementwise import acts_for, compiles


@njit(**_JIT)
def _rnn_forward_loop(
    b0, b1, xw, bias, h0, U, acts, mask, has_mask, rmask, has_rmask, y, h_in, hs, u, store
):
    """Rows b0:b1. Fills y (φ's output), h_in (if store) and hs; u (B, H) is scratch for the
    recurrent product. Without ``store`` h_in and y are (1, B, H) scratch reused at every step."""
    T = xw.shape[0]
    H = h0.shape[1]
    for t in range(T):
        hp = h0[b0:b1] if t == 0 else hs[t - 1, b0:b1]  # (nb, H)
        s = t if store else 0
        hin = h_in[s, b0:b1]
        if has_rmask:
            for b in range(b1 - b0):
                for j in range(H):
                    hin[b, j] = hp[b, j] * rmask[b0 + b, j]
        else:
            hin[:] = hp
        np.dot(hin, U, u[b0:b1])  # (nb, H) recurrent product
        for b in range(b0, b1):
            rnn_pass(u[b], xw[t, b], bias, y[s, b], acts, H)
            hs[t, b] = y[s, b]
        if has_mask:
            carry_over(mask[t, b0:b1], hs[t, b0:b1], hp)


@njit(**_JIT)
def _rnn_backward_loop(
    b0, b1, dhs, has_dhs, dh, UT, y, acts, mask, has_mask, rmask, has_rmask, dz, dh_prev
):
    """Rows b0:b1 of BPTT; dh (B, H) holds dL/dh_T on entry and dL/dh0 on exit; fills dz."""
    T, _, H = y.shape
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            dhr = dh[b]
            if has_dhs:
                for j in range(H):
                    dhr[j] += dhs[t, b, j]
            if has_mask and not mask[t, b]:
                dz[t, b] = 0  # a skipped step passes its gradient straight through
            else:
                rnn_pass_grad(y[t, b], dhr, dz[t, b], acts, H)
        np.dot(dz[t, b0:b1], UT, dh_prev[b0:b1])  # (nb, H)
        for b in range(b0, b1):
            if not has_mask or mask[t, b]:
                if has_rmask:
                    for j in range(H):
                        dh[b, j] = dh_prev[b, j] * rmask[b, j]
                else:
                    dh[b] = dh_prev[b]


def _prepare(fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask):
    """Check shapes (the compiled loops do not) and cast to one C-contiguous float type."""
    x = as_float(x)
    dt = x.dtype
    if x.ndim != 3:
        raise ValueError(f"{fn}: argument 'x' must have shape (T, B, D); got {x.shape}")
    T, B, D = x.shape
    H = np.shape(h0)[-1] if np.ndim(h0) == 2 else np.shape(recurrent_kernel)[0]
    check_shapes(
        fn,
        h0=(h0, (B, H)),
        kernel=(kernel, (D, H)),
        recurrent_kernel=(recurrent_kernel, (H, H)),
        bias=(bias, (H,)),
        mask=(mask, (T, B)),
        recurrent_mask=(recurrent_mask, (B, H)),
    )
    return (
        x,
        as_float(h0, dt),
        as_float(kernel, dt),
        as_float(recurrent_kernel, dt),
        as_float(bias, dt),
    )


def _run(fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask, activation, store):
    act = acts_for(activation, None, fn)
    x, h0, kernel, U, bias = _prepare(
        fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask
    )
    dt = x.dtype
    T, B, _ = x.shape
    H = h0.shape[-1]
    xw = np.empty((T, B, H), dtype=dt)
    input_projection(x, kernel, xw)  # x @ kernel for all steps at once (bias: in the loop)
    n = T if store else 1
    y = np.empty((n, B, H), dtype=dt)
    h_in = np.empty((n, B, H), dtype=dt)
    hs = np.empty((T, B, H), dtype=dt)
    m, has_m = bool_or_dummy(mask)
    rm, has_rm = float_or_dummy(recurrent_mask, dt)
    u = np.empty((B, H), dtype=dt)

    def loop(b0, b1):
        _rnn_forward_loop(b0, b1, xw, bias, h0, U, act, m, has_m, rm, has_rm, y, h_in, hs, u, store)

    in_parallel(split(B, T * B * H * H), loop, B * H * H)
    h_T = hs[T - 1].copy() if T > 0 else h0.copy()
    return x, kernel, U, y, h_in, hs, h_T


def rnn_forward(
    x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh"
):
    """Run the RNN over ``x (T, B, D)``; returns ``(hs (T, B, H), h_T (B, H), cache)``."""
    x, kernel, U, y, h_in, hs, h_T = _run(
        "rnn_forward",
        x,
        h0,
        kernel,
        recurrent_kernel,
        bias,
        mask,
        recurrent_mask,
        activation,
        True,
    )
    cache = RNNCache(x, kernel, U, y, h_in, mask, recurrent_mask, activation)
    return hs, h_T, cache


def rnn_infer(x, h0, kernel, recurrent_kernel, bias, mask=None, activation="tanh"):
    """Inference only: :func:`rnn_forward` without the cache. Returns ``(hs, h_T)``."""
    *_, hs, h_T = _run(
        "rnn_infer", x, h0, kernel, recurrent_kernel, bias, mask, None, activation, False
    )
    return hs, h_T


def rnn_step(x_t, h, kernel, recurrent_kernel, bias, activation="tanh"):
    """One time step for streaming inference: ``(B, D), (B, H) -> h (B, H)``."""
    with serial():  # one step is too little work to share between threads
        return rnn_infer(
            np.asarray(x_t)[None], h, kernel, recurrent_kernel, bias, activation=activation
        )[1]


def rnn_backward(dhs, dh_T, cache: RNNCache):
    """BPTT through :func:`rnn_forward` (or the reference's forward: same cache).

    Returns a dict of fresh arrays: ``x, h0, kernel, recurrent_kernel, bias``.
    """
    x, kernel, U, y, h_in, mask, rmask, activation = cache[:8]
    if not compiles(activation):  # the reference's forward ran an activation the kernels lack
        return _reference.rnn_backward(dhs, dh_T, cache)
    act = acts_for(activation, None, "rnn_backward")
    dt = y.dtype
    T, B, _ = x.shape
    H = y.shape[-1]
    check_shapes("rnn_backward", dhs=(dhs, (T, B, H)), dh_T=(dh_T, (B, H)))
    x, kernel, U, y, h_in = (as_float(a, dt) for a in (x, kernel, U, y, h_in))
    dh = np.zeros((B, H), dt) if dh_T is None else np.array(dh_T, dtype=dt, order="C")
    has_dhs = dhs is not None
    dhs_ = as_float(dhs, dt) if has_dhs else np.zeros((1, 1, 1), dt)
    m, has_m = bool_or_dummy(mask)
    rm, has_rm = float_or_dummy(rmask, dt)
    dz = np.empty((T, B, H), dtype=dt)
    UT = np.ascontiguousarray(U.T)
    dh_prev = np.empty((B, H), dtype=dt)

    def loop(b0, b1):
        _rnn_backward_loop(b0, b1, dhs_, has_dhs, dh, UT, y, act, m, has_m, rm, has_rm, dz, dh_prev)

    in_parallel(split(B, T * B * H * H), loop, B * H * H)
    # Weight gradients: sums over every step and row, so big GEMMs after the loop.
    dx, dW, dU, db, _ = weight_gradients(x, kernel, h_in, dz)
    return {"x": dx, "h0": dh, "kernel": dW, "recurrent_kernel": dU, "bias": db}
