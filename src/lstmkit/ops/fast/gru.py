"""Compiled GRU (``reset_after=True``): whole-sequence forward and BPTT, one numba call each.

Same equations, signatures, return types and cache (:class:`lstmkit.ops.gru.GRUCache`) as the
NumPy reference :mod:`lstmkit.ops.gru`, so either backward consumes either forward's cache::

    xw_t = x_t @ kernel + bias[0]                  # (B, 3H), one GEMM for all steps
    hu_t = h_in @ recurrent_kernel + bias[1]       # (B, 3H), BLAS inside the loop
    z = σ(xw_z + hu_z)   r = σ(xw_r + hu_r)   n = tanh(xw_n + r ⊙ hu_n)
    h_t = z ⊙ h_{t-1} + (1 - z) ⊙ n

The time loops are those of every cell (:mod:`.rows`): big GEMMs outside the loop, one BLAS
call per step into preallocated buffers, one fused vectorised pass for the gates.
"""

from __future__ import annotations

import numpy as np

from .. import gru as _reference
from ..gru import GRUActCache, GRUCache
from .common import as_float, check_shapes, serial, weight_gradients
from .elementwise import DEFAULT, gated_acts
from .elementwise import compiles as compiles_name
from .rows import backward, forward, prepare


def _run(fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask, store, acts):
    x, h0, _, kernel, U, bias = prepare(
        fn, x, h0, None, kernel, recurrent_kernel, bias, mask, recurrent_mask, 3, (2,)
    )
    dt = x.dtype
    T, B, _ = x.shape
    H = h0.shape[-1]
    n = T if store else 1
    gates, hu_n = np.empty((n, B, 3 * H), dtype=dt), np.empty((n, B, H), dtype=dt)
    h_in = np.empty((n, B, H), dtype=dt)
    h = np.empty((T + 1, B, H), dtype=dt)  # h0 first, as the reference's cache holds it
    h[0] = h0
    forward(
        (gates, hu_n),
        acts,
        x,
        kernel,
        (bias[0], bias[1]),
        h[0],
        U,
        mask,
        recurrent_mask,
        h[1:],
        h_in,
        store,
    )
    return x, kernel, U, gates, hu_n, h, h_in


def gru_forward(
    x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
    recurrent_activation="sigmoid",
):  # fmt: skip
    """Run the GRU over ``x (T, B, D)``; returns ``(hs (T, B, H), h_T (B, H), cache)``. Any pair
    of :data:`.elementwise.COMPILED` activations: the cache is then a :class:`GRUActCache`
    without pre-activations (the derivatives read the outputs)."""
    acts = gated_acts("gru_forward", activation, recurrent_activation)
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
    acts = gated_acts("gru_infer", activation, recurrent_activation)
    h = _run("gru_infer", x, h0, kernel, recurrent_kernel, bias, mask, None, False, acts)[5]
    return h[1:], h[-1].copy()


def gru_step(
    x_t, h, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid"
):
    """One time step for streaming inference: ``(B, D), (B, H) -> h (B, H)``."""
    x_t, h, _, kernel, U, bias = prepare(
        "gru_step", np.asarray(x_t)[None], h, None, kernel, recurrent_kernel, bias, None, None,
        3, (2,),
    )  # fmt: skip
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
    acts = gated_acts("gru_backward", *pair)
    x, kernel, U, gates, hu_n, h, h_in, mask, rmask = cache[:9]
    dt = gates.dtype
    T, B, _ = x.shape
    H = h.shape[-1]
    check_shapes("gru_backward", dhs=(dhs, (T, B, H)), dh_T=(dh_T, (B, H)))
    x, kernel, U = as_float(x, dt), as_float(kernel, dt), as_float(U, dt)
    gates, hu_n, h, h_in = (as_float(a, dt) for a in (gates, hu_n, h, h_in))
    dxw, dhu = np.empty((T, B, 3 * H), dtype=dt), np.empty((T, B, 3 * H), dtype=dt)
    dh = backward((gates, hu_n, h, dxw, dhu), acts, dhs, dh_T, U, mask, rmask)
    # Weight gradients: sums over every step and row, so big GEMMs after the loop.
    dx, dW, dU, db_in, db_rec = weight_gradients(x, kernel, h_in, dxw, dhu)
    return {
        "x": dx,
        "h0": dh,
        "kernel": dW,
        "recurrent_kernel": dU,
        "bias": np.stack([db_in, db_rec]),
    }
