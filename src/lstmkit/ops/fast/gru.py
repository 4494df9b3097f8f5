"""Compiled GRU (``reset_after=True``): whole-sequence forward and BPTT, one numba call each.

Same equations, signatures, return types and cache (:class:`lstmkit.ops.gru.GRUCache`) as the
NumPy reference :mod:`lstmkit.ops.gru`, so either backward consumes either forward's cache::

    xw_t = x_t @ kernel + bias[0]                  # (B, 3H), one GEMM for all steps
    hu_t = h_in @ recurrent_kernel + bias[1]       # (B, 3H), BLAS inside the loop
    z = σ(xw_z + hu_z)   r = σ(xw_r + hu_r)   n = tanh(xw_n + r ⊙ hu_n)
    h_t = z ⊙ h_{t-1} + (1 - z) ⊙ n

The layout of the work mirrors :mod:`.lstm`: big GEMMs outside the loop, one BLAS call per step
into preallocated buffers, one fused vectorised pass for the gates.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import gru as _reference
from ..gru import GRUActCache, GRUCache
from ._jit import JIT as _JIT
from .cells import carry_over, gru_pass, gru_pass_grad
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
from .elementwise import DEFAULT, acts_for
from .elementwise import compiles as compiles_name


@njit(**_JIT)
def _gru_forward_loop(
    b0, b1, xw, bi, U, bu, mask, has_mask, rmask, has_rmask, gates, hu_n, h, h_in, u, store, acts
):
    """Rows b0:b1. h (T+1, B, H) holds h0 in h[0] on entry; fills gates, hu_n, h[1:], h_in.
    u (B, 3H) is scratch for the recurrent product. Without ``store`` (inference) gates, hu_n
    and h_in are (1, B, ...) scratch reused at every step."""
    T = xw.shape[0]
    H = h.shape[2]
    for t in range(T):
        s = t if store else 0
        hin = h_in[s, b0:b1]
        if has_rmask:
            for b in range(b1 - b0):
                for j in range(H):
                    hin[b, j] = h[t, b0 + b, j] * rmask[b0 + b, j]
        else:
            hin[:] = h[t, b0:b1]
        np.dot(hin, U, u[b0:b1])  # (nb, 3H)
        for b in range(b0, b1):
            gru_pass(u[b], bu, xw[t, b], bi, h[t, b], gates[s, b], hu_n[s, b], h[t + 1, b], H,
                     acts)  # fmt: skip
        if has_mask:
            carry_over(mask[t, b0:b1], h[t + 1, b0:b1], h[t, b0:b1])


@njit(**_JIT)
def _gru_backward_loop(
    b0,
    b1,
    dhs,
    has_dhs,
    dh,
    UT,
    gates,
    hu_n,
    h,
    mask,
    has_mask,
    rmask,
    has_rmask,
    dxw,
    dhu,
    blend,
    dh_prev,
    acts,
):
    """Rows b0:b1 of BPTT; dh (B, H) holds dL/dh_T on entry and dL/dh0 on exit; fills dxw and dhu
    (T, B, 3H); blend and dh_prev (B, H) are scratch."""
    T = gates.shape[0]
    H = dh.shape[1]
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            dhr = dh[b]
            if has_dhs:
                for j in range(H):
                    dhr[j] += dhs[t, b, j]
            if not has_mask or mask[t, b]:
                gru_pass_grad(gates[t, b], hu_n[t, b], h[t, b], dhr, dxw[t, b], dhu[t, b],
                              blend[b], H, acts)  # fmt: skip
            else:  # a skipped step passes its gradient straight through
                dxw[t, b] = 0
                dhu[t, b] = 0
                blend[b] = dhr
        np.dot(dhu[t, b0:b1], UT, dh_prev[b0:b1])  # (nb, H)
        for b in range(b0, b1):
            if has_rmask:
                for j in range(H):
                    dh[b, j] = dh_prev[b, j] * rmask[b, j] + blend[b, j]
            else:
                for j in range(H):
                    dh[b, j] = dh_prev[b, j] + blend[b, j]


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
        kernel=(kernel, (D, 3 * H)),
        recurrent_kernel=(recurrent_kernel, (H, 3 * H)),
        bias=(bias, (2, 3 * H)),
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


def _acts(fn, activation, recurrent_activation):
    """The kernels' :class:`.elementwise.Acts` (Keras' ``None`` is linear for both)."""
    rec = "linear" if recurrent_activation is None else recurrent_activation
    return acts_for(activation, rec, fn)


def _run(fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask, store, acts):
    x, h0, kernel, U, bias = _prepare(
        fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask
    )
    dt = x.dtype
    T, B, _ = x.shape
    H = h0.shape[-1]
    xw = np.empty((T, B, 3 * H), dtype=dt)
    input_projection(x, kernel, xw)  # x @ kernel for all steps at once (bias[0]: in the loop)
    n = T if store else 1
    gates = np.empty((n, B, 3 * H), dtype=dt)
    hu_n = np.empty((n, B, H), dtype=dt)
    h_in = np.empty((n, B, H), dtype=dt)
    h = np.empty((T + 1, B, H), dtype=dt)
    h[0] = h0
    u = np.empty((B, 3 * H), dtype=dt)
    m, has_m = bool_or_dummy(mask)
    rm, has_rm = float_or_dummy(recurrent_mask, dt)

    def loop(b0, b1):
        _gru_forward_loop(
            b0, b1, xw, bias[0], U, bias[1], m, has_m, rm, has_rm, gates, hu_n, h, h_in, u, store,
            acts,
        )  # fmt: skip

    in_parallel(split(B, T * B * 3 * H * H), loop, B * 3 * H * H)
    return x, kernel, U, gates, hu_n, h, h_in


def gru_forward(
    x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
    recurrent_activation="sigmoid",
):  # fmt: skip
    """Run the GRU over ``x (T, B, D)``; returns ``(hs (T, B, H), h_T (B, H), cache)``. Any pair
    of :data:`.elementwise.COMPILED` activations: the cache is then a :class:`GRUActCache`
    without pre-activations (the derivatives read the outputs)."""
    acts = _acts("gru_forward", activation, recurrent_activation)
    x, kernel, U, gates, hu_n, h, h_in = _run(
        "gru_forward", x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask, True, acts
    )
    fields = (x, kernel, U, gates, hu_n, h, h_in, mask, recurrent_mask)
    pair = (acts.act, acts.rec)
    cache = GRUCache(*fields) if pair == DEFAULT else GRUActCache(*fields, pair, True, None)
    T = x.shape[0]
    return h[1:].copy(), h[T].copy(), cache


def gru_infer(
    x, h0, kernel, recurrent_kernel, bias, mask=None, activation="tanh",
    recurrent_activation="sigmoid",
):  # fmt: skip
    """Inference only: :func:`gru_forward` without the cache. Returns ``(hs, h_T)``."""
    acts = _acts("gru_infer", activation, recurrent_activation)
    h = _run("gru_infer", x, h0, kernel, recurrent_kernel, bias, mask, None, False, acts)[5]
    return h[1:], h[-1].copy()


def gru_step(
    x_t, h, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid"
):
    """One time step for streaming inference: ``(B, D), (B, H) -> h (B, H)``."""
    x_t, h, kernel, U, bias = _prepare(
        "gru_step", np.asarray(x_t)[None], h, kernel, recurrent_kernel, bias, None, None
    )
    with serial():  # one step is too little work to share between threads
        return gru_infer(x_t, h, kernel, U, bias, None, activation, recurrent_activation)[1]


def gru_backward(dhs, dh_T, cache):
    """BPTT through :func:`gru_forward` (or the reference's forward: same cache).

    Returns a dict of fresh arrays: ``x, h0, kernel, recurrent_kernel, bias``. A cache of options
    the kernels lack (``reset_after=False``, other activations) goes to the reference's backward.
    """
    general = isinstance(cache, GRUActCache)
    pair = cache.activations if general else DEFAULT
    if (general and not cache.reset_after) or not all(map(compiles_name, pair)):
        return _reference.gru_backward(dhs, dh_T, cache)
    acts = _acts("gru_backward", *pair)
    x, kernel, U, gates, hu_n, h, h_in, mask, rmask = cache[:9]
    dt = gates.dtype
    T, B, _ = x.shape
    H = h.shape[-1]
    check_shapes("gru_backward", dhs=(dhs, (T, B, H)), dh_T=(dh_T, (B, H)))
    x, kernel, U = as_float(x, dt), as_float(kernel, dt), as_float(U, dt)
    gates, hu_n, h, h_in = (as_float(a, dt) for a in (gates, hu_n, h, h_in))
    dh = np.zeros((B, H), dt) if dh_T is None else np.array(dh_T, dtype=dt, order="C")
    has_dhs = dhs is not None
    dhs_ = as_float(dhs, dt) if has_dhs else np.zeros((1, 1, 1), dt)
    m, has_m = bool_or_dummy(mask)
    rm, has_rm = float_or_dummy(rmask, dt)
    dxw = np.empty((T, B, 3 * H), dtype=dt)
    dhu = np.empty((T, B, 3 * H), dtype=dt)
    UT = np.ascontiguousarray(U.T)  # (3H, H)
    blend = np.empty((B, H), dtype=dt)
    dh_prev = np.empty((B, H), dtype=dt)

    def loop(b0, b1):
        _gru_backward_loop(
            b0,
            b1,
            dhs_,
            has_dhs,
            dh,
            UT,
            gates,
            hu_n,
            h,
            m,
            has_m,
            rm,
            has_rm,
            dxw,
            dhu,
            blend,
            dh_prev,
            acts,
        )

    in_parallel(split(B, T * B * 3 * H * H), loop, B * 3 * H * H)
    # Weight gradients: sums over every step and row, so big GEMMs after the loop.
    dx, dW, dU, db_in, db_rec = weight_gradients(x, kernel, h_in, dxw, dhu)
    return {
        "x": dx,
        "h0": dh,
        "kernel": dW,
        "recurrent_kernel": dU,
        "bias": np.stack([db_in, db_rec]),
    }
