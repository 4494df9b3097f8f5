"""Compiled simple RNN: whole-sequence forward and BPTT, one numba call each.

Same equations, signatures, return types and cache (:class:`lstmkit.ops.rnn.RNNCache`) as the
NumPy reference :mod:`lstmkit.ops.rnn`, so either backward consumes either forward's cache::

    h_t = φ(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)      # (B, H)

``φ`` is any activation of :data:`.elementwise.COMPILED`, bound at compile time (one machine
code per activation, no branch in the loops).
"""

from __future__ import annotations

import numpy as np

from .. import rnn as _reference
from ..rnn import RNNCache
from .common import as_float, check_shapes, serial, weight_gradients
from .elementwise import acts_for, compiles
from .rows import backward, forward, prepare


def _run(fn, x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask, activation, store):
    act = acts_for(activation, None, fn)
    x, h0, _, kernel, U, bias = prepare(
        fn, x, h0, None, kernel, recurrent_kernel, bias, mask, recurrent_mask, 1
    )
    dt = x.dtype
    T, B, _ = x.shape
    H = h0.shape[-1]
    n = T if store else 1
    y, h_in = np.empty((n, B, H), dtype=dt), np.empty((n, B, H), dtype=dt)
    hs = np.empty((T, B, H), dtype=dt)
    forward((y,), act, x, kernel, bias, h0, U, mask, recurrent_mask, hs, h_in, store)
    h_T = hs[T - 1].copy() if T > 0 else h0.copy()
    return x, kernel, U, y, h_in, hs, h_T


def rnn_forward(
    x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh"
):
    """Run the RNN over ``x (T, B, D)``; returns ``(hs (T, B, H), h_T (B, H), cache)``."""
    x, kernel, U, y, h_in, hs, h_T = _run(
        "rnn_forward", x, h0, kernel, recurrent_kernel, bias, mask, recurrent_mask, activation, True
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
    dz = np.empty((T, B, H), dtype=dt)
    dh = backward((y, dz, dz), act, dhs, dh_T, U, mask, rmask)
    # Weight gradients: sums over every step and row, so big GEMMs after the loop.
    dx, dW, dU, db, _ = weight_gradients(x, kernel, h_in, dz)
    return {"x": dx, "h0": dh, "kernel": dW, "recurrent_kernel": dU, "bias": db}
