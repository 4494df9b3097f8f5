"""The GRU cell over a whole sequence: forward, backward (BPTT) and one streaming step.

Keras 3 ``GRU(reset_after=True)``, the cuDNN/PyTorch convention in which the reset gate multiplies
the recurrent product *after* the matrix product. Equations (time-major, ``x (T, B, D)``, gate
order z, r, n as Keras stores them)::

    xw_t = x_t @ kernel + bias[0]                  # (B, 3H) input part, all steps at once
    hu_t = h_{t-1} @ recurrent_kernel + bias[1]    # (B, 3H) recurrent part, in the loop
    z = σ(xw_z + hu_z)   r = σ(xw_r + hu_r)   n = tanh(xw_n + r ⊙ hu_n)
    h_t = z ⊙ h_{t-1} + (1 - z) ⊙ n

``kernel (D, 3H)``, ``recurrent_kernel (H, 3H)``, ``bias (2, 3H)`` = [input bias; recurrent
bias]. The input projection ``x @ kernel + bias[0]`` is one product for all steps; only
``h @ recurrent_kernel`` is in the loop.

Masking (Keras semantics): where ``mask[t, b]`` is False, step t of sequence b is skipped: h is
carried over unchanged and the step's output is the carried h.

Recurrent dropout (Keras 3): ``recurrent_mask (B, H)`` multiplies ``h_{t-1}`` before the
recurrent product (``h_in = h_{t-1} ⊙ recurrent_mask``), the same mask at every step, while the
blend ``z ⊙ h_{t-1}`` uses the undropped state. (Keras >= 3.8 draws one mask per gate; here the
three gates share one.)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import dsigmoid, dtanh, sigmoid


class GRUCache(NamedTuple):
    """Exactly what backward needs; produced by forward, consumed by backward, never mutated."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, 3H)
    recurrent_kernel: np.ndarray  # (H, 3H)
    gates: np.ndarray  # (T, B, 3H) activated: z, r, n
    hu_n: np.ndarray  # (T, B, H) h_in @ U_n + b_hn, the term the reset gate multiplies
    h: np.ndarray  # (T+1, B, H) h[0] = h0; h[t] is the state that entered step t
    h_in: np.ndarray  # (T, B, H) the h that entered the recurrent product (after recurrent dropout)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)


def gru_cell(xw_t, h_prev, h_in, recurrent_kernel, recurrent_bias):
    """One step from the input projection ``xw_t (B, 3H)``.

    ``h_in`` feeds the recurrent product, ``h_prev`` the blend (they differ only under recurrent
    dropout). Returns ``(h, gates (B, 3H) activated z, r, n, hu_n (B, H))``.
    """
    H = h_prev.shape[-1]
    hu = h_in @ recurrent_kernel + recurrent_bias  # (B, 3H)
    a = np.empty_like(hu)
    a[:, : 2 * H] = sigmoid(xw_t[:, : 2 * H] + hu[:, : 2 * H])  # z, r
    z, r = a[:, :H], a[:, H : 2 * H]
    hu_n = hu[:, 2 * H :]
    n = a[:, 2 * H :] = np.tanh(xw_t[:, 2 * H :] + r * hu_n)
    h = z * h_prev + (1 - z) * n
    return h, a, hu_n


def gru_step(x_t, h, kernel, recurrent_kernel, bias):
    """One time step for streaming inference: ``(B, D), (B, H) -> h (B, H)``."""
    h, _, _ = gru_cell(x_t @ kernel + bias[0], h, h, recurrent_kernel, bias[1])
    return h


def gru_forward(x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None):
    """Run the GRU over ``x (T, B, D)``.

    Returns ``(hs (T, B, H), h_T (B, H), cache)``.
    """
    T, B, _ = x.shape
    H = h0.shape[-1]
    xw = x @ kernel + bias[0]  # (T, B, 3H): the input projection for every step at once
    gates = np.empty((T, B, 3 * H), dtype=x.dtype)
    hu_n = np.empty((T, B, H), dtype=x.dtype)
    h = np.empty((T + 1, B, H), dtype=x.dtype)
    h_in = np.empty((T, B, H), dtype=x.dtype)
    h[0] = h0
    for t in range(T):
        h_in[t] = h[t] if recurrent_mask is None else h[t] * recurrent_mask
        h_t, gates[t], hu_n[t] = gru_cell(xw[t], h[t], h_in[t], recurrent_kernel, bias[1])
        if mask is not None:  # skipped steps carry h over unchanged
            h_t = np.where(mask[t][:, None], h_t, h[t])
        h[t + 1] = h_t
    cache = GRUCache(x, kernel, recurrent_kernel, gates, hu_n, h, h_in, mask, recurrent_mask)
    return h[1:].copy(), h[T].copy(), cache


def gru_backward(dhs, dh_T, cache: GRUCache):
    """BPTT through :func:`gru_forward`.

    ``dhs (T, B, H)`` is dLoss/d(outputs) (or None), ``dh_T`` dLoss/d(final state) (or None).
    Returns a dict of fresh arrays: ``x, h0, kernel, recurrent_kernel, bias``.
    """
    x, kernel, U, gates, hu_n, h, h_in, mask, rmask = cache
    T, B, _ = x.shape
    H = h.shape[-1]
    dxw = np.empty_like(gates)  # (T, B, 3H) dLoss/d(xw): input-side pre-activations
    dhu = np.empty_like(gates)  # (T, B, 3H) dLoss/d(hu): recurrent-side pre-activations
    dh = np.zeros((B, H), x.dtype) if dh_T is None else np.array(dh_T, dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        a = gates[t]
        z, r, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        d = dxw[t]
        d[:, :H] = dh * (h[t] - n) * dsigmoid(z)
        d[:, 2 * H :] = dh * (1 - z) * dtanh(n)
        d[:, H : 2 * H] = d[:, 2 * H :] * hu_n[t] * dsigmoid(r)
        du = dhu[t]
        du[:, : 2 * H] = d[:, : 2 * H]
        du[:, 2 * H :] = d[:, 2 * H :] * r  # n sees hu_n only through r ⊙ hu_n
        dh_blend = dh * z
        if mask is not None:  # a skipped step passes its gradient straight through
            m = mask[t][:, None]
            d *= m
            du *= m
            dh_blend = np.where(m, dh_blend, dh)
        dh_prev = du @ U.T
        if rmask is not None:
            dh_prev *= rmask
        dh = dh_prev + dh_blend
    dxw2 = dxw.reshape(T * B, 3 * H)
    dhu2 = dhu.reshape(T * B, 3 * H)
    return {
        "x": (dxw2 @ kernel.T).reshape(x.shape),
        "h0": dh,
        "kernel": x.reshape(T * B, -1).T @ dxw2,
        "recurrent_kernel": h_in.reshape(T * B, H).T @ dhu2,
        "bias": np.stack([dxw2.sum(axis=0), dhu2.sum(axis=0)]),
    }
