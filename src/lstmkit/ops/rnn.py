"""The simple (Elman) RNN cell over a whole sequence: forward, backward (BPTT) and one step.

Equations (time-major, ``x (T, B, D)``; Keras ``SimpleRNN``)::

    h_t = φ(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)      # (B, H)

``kernel (D, H)``, ``recurrent_kernel (H, H)``, ``bias (H,)``; ``φ`` is any element-wise name
:func:`get_elementwise` knows (``"tanh"`` by default). The input projection ``x @ kernel + bias``
is one product for all steps. For tanh, relu, sigmoid and linear the derivative is a function
of the output, and the cache is :class:`RNNCache`; any other φ gets :class:`RNNActCache`, which
adds the pre-activations. The compiled kernels give an :class:`RNNCache` for every activation
they run (all whose derivative is a function of the output), and consume both.

Masking (Keras semantics): where ``mask[t, b]`` is False, step t of sequence b is skipped: h is
carried over unchanged and the step's output is the carried h.

Recurrent dropout (Keras 3): ``recurrent_mask (B, H)`` multiplies ``h_{t-1}`` before the
recurrent product, the same mask at every step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import get_elementwise


class RNNCache(NamedTuple):
    """Exactly what backward needs; produced by forward, consumed by backward, never mutated."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, H)
    recurrent_kernel: np.ndarray  # (H, H)
    y: np.ndarray  # (T, B, H) φ's output at every step (before masking)
    h_in: np.ndarray  # (T, B, H) the h that entered the recurrent product (after recurrent dropout)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)
    activation: str | None


class RNNActCache(NamedTuple):
    """:class:`RNNCache` plus the pre-activations, for a φ whose derivative needs them."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, H)
    recurrent_kernel: np.ndarray  # (H, H)
    y: np.ndarray  # (T, B, H)
    h_in: np.ndarray  # (T, B, H)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)
    activation: str | None
    z: np.ndarray  # (T, B, H) pre-activations


#: φ whose derivative is a function of the output (relu: y > 0 exactly when z > 0)
OUTPUT_DERIVATIVE = (None, "linear", "tanh", "sigmoid", "relu")


def rnn_step(x_t, h, kernel, recurrent_kernel, bias, activation="tanh"):
    """One time step for streaming inference: ``(B, D), (B, H) -> h (B, H)``."""
    phi, _ = get_elementwise(activation)
    return phi(x_t @ kernel + bias + h @ recurrent_kernel)


def rnn_forward(
    x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh"
):
    """Run the RNN over ``x (T, B, D)``.

    Returns ``(hs (T, B, H), h_T (B, H), cache)``.
    """
    phi, _ = get_elementwise(activation)  # validates the name before any work
    T, B, _ = x.shape
    H = h0.shape[-1]
    xw = x @ kernel + bias  # (T, B, H): the input projection for every step at once
    y = np.empty((T, B, H), dtype=x.dtype)
    z = None if activation in OUTPUT_DERIVATIVE else np.empty((T, B, H), dtype=x.dtype)
    h_in = np.empty((T, B, H), dtype=x.dtype)
    hs = np.empty((T, B, H), dtype=x.dtype)
    h = h0
    for t in range(T):
        h_in[t] = h if recurrent_mask is None else h * recurrent_mask
        z_t = xw[t] + h_in[t] @ recurrent_kernel
        if z is not None:
            z[t] = z_t
        y[t] = phi(z_t)
        h_t = y[t] if mask is None else np.where(mask[t][:, None], y[t], h)
        hs[t] = h = h_t
    fields = (x, kernel, recurrent_kernel, y, h_in, mask, recurrent_mask, activation)
    cache = RNNCache(*fields) if z is None else RNNActCache(*fields, z)
    return hs, h.copy(), cache


def rnn_backward(dhs, dh_T, cache):
    """BPTT through :func:`rnn_forward`.

    ``dhs (T, B, H)`` is dLoss/d(outputs) (or None), ``dh_T`` dLoss/d(final state) (or None).
    Returns a dict of fresh arrays: ``x, h0, kernel, recurrent_kernel, bias``.
    """
    x, kernel, U, y, h_in, mask, rmask, activation = cache[:8]
    # An RNNCache's φ has a derivative that is a function of its output alone (relu: y > 0
    # exactly when z > 0; the compiled kernels' softsign: 1 - |y| = 1 / (1 + |z|)): no z then.
    z = cache.z if isinstance(cache, RNNActCache) else None
    _, dphi = get_elementwise(activation)
    T, B, _ = x.shape
    H = y.shape[-1]
    dz = np.empty_like(y)  # (T, B, H) dLoss/d(pre-activation)
    dh = np.zeros((B, H), x.dtype) if dh_T is None else np.array(dh_T, dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        d = dh * dphi(y[t], None if z is None else z[t])
        if mask is not None:  # a skipped step passes its gradient straight through
            m = mask[t][:, None]
            d *= m
        dz[t] = d
        dh_prev = d @ U.T
        if rmask is not None:
            dh_prev *= rmask
        if mask is not None:
            dh_prev += np.where(m, 0, dh)
        dh = dh_prev
    dz2 = dz.reshape(T * B, H)
    return {
        "x": (dz2 @ kernel.T).reshape(x.shape),
        "h0": dh,
        "kernel": x.reshape(T * B, -1).T @ dz2,
        "recurrent_kernel": h_in.reshape(T * B, H).T @ dz2,
        "bias": dz2.sum(axis=0),
    }
