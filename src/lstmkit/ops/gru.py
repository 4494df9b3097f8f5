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

Other conventions and activations (Keras' ``activation`` φ, ``recurrent_activation`` ρ, and
``reset_after=False``, the Keras 2 / TF default, where r multiplies h *before* the product and
there is no recurrent bias: ``bias (3H,)``)::

    z = ρ(xw_z + h_in @ U_z)   r = ρ(xw_r + h_in @ U_r)   n = φ(xw_n + (r ⊙ h_in) @ U_n)

One loop serves every combination; with the defaults (tanh, sigmoid, reset_after=True) the cache
is :class:`GRUCache` (what the compiled kernels also produce and consume), otherwise
:class:`GRUActCache`, which adds the names, the convention and the pre-activations (``z``
None from the compiled kernels, which run output-derivable activations with reset_after=True).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import get_elementwise

#: Keras' defaults ``(activation, recurrent_activation)``: the pair whose cache is GRUCache
DEFAULT_ACTIVATIONS = ("tanh", "sigmoid")


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


class GRUActCache(NamedTuple):
    """:class:`GRUCache` for other activations or ``reset_after=False``: the same first nine
    fields (``hu_n`` is None with reset_after=False), then the names, the convention and the
    pre-activations."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, 3H)
    recurrent_kernel: np.ndarray  # (H, 3H)
    gates: np.ndarray  # (T, B, 3H) activated: z, r, n
    hu_n: np.ndarray | None  # (T, B, H) reset_after=True: h_in @ U_n + b_hn
    h: np.ndarray  # (T+1, B, H)
    h_in: np.ndarray  # (T, B, H)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)
    activations: tuple  # (activation, recurrent_activation) names
    reset_after: bool
    z: np.ndarray | None  # (T, B, 3H) pre-activations; None from the compiled kernels


def split_bias(bias, reset_after=True):
    """``(input bias (3H,), recurrent bias (3H,) or None)``: Keras' ``bias (2, 3H)`` rows, or
    ``bias (3H,)`` with reset_after=False (no recurrent bias)."""
    return (bias[0], bias[1]) if reset_after else (bias, None)


def gru_cell(
    xw_t, h_prev, h_in, recurrent_kernel, recurrent_bias, activations=DEFAULT_ACTIVATIONS,
    reset_after=True,
):  # fmt: skip
    """One step from the input projection ``xw_t (B, 3H)``.

    ``h_in`` feeds the recurrent product, ``h_prev`` the blend (they differ only under recurrent
    dropout). Returns ``(h, gates (B, 3H) activated z, r, n, hu_n (B, H) or None,
    pre (B, 3H) pre-activations)``.
    """
    act = get_elementwise(activations[0])[0]
    rec = get_elementwise(activations[1])[0]
    H = h_prev.shape[-1]
    U = recurrent_kernel
    if reset_after:
        hu = h_in @ U + recurrent_bias  # (B, 3H)
    else:
        hu = h_in @ U[:, : 2 * H]  # (B, 2H): no recurrent bias, n's product comes after r
    pre = np.empty((h_prev.shape[0], 3 * H), dtype=h_prev.dtype)
    a = np.empty_like(pre)
    pre[:, : 2 * H] = xw_t[:, : 2 * H] + hu[:, : 2 * H]
    a[:, : 2 * H] = rec(pre[:, : 2 * H])  # z, r
    z, r = a[:, :H], a[:, H : 2 * H]
    if reset_after:
        hu_n = hu[:, 2 * H :]
        pre[:, 2 * H :] = xw_t[:, 2 * H :] + r * hu_n
    else:
        hu_n = None
        pre[:, 2 * H :] = xw_t[:, 2 * H :] + (r * h_in) @ U[:, 2 * H :]
    n = a[:, 2 * H :] = act(pre[:, 2 * H :])
    h = z * h_prev + (1 - z) * n
    return h, a, hu_n, pre


def gru_step(
    x_t, h, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid",
    reset_after=True,
):  # fmt: skip
    """One time step for streaming inference: ``(B, D), (B, H) -> h (B, H)``."""
    b_in, b_rec = split_bias(bias, reset_after)
    pair = (activation, recurrent_activation)
    return gru_cell(x_t @ kernel + b_in, h, h, recurrent_kernel, b_rec, pair, reset_after)[0]


def gru_forward(
    x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
    recurrent_activation="sigmoid", reset_after=True,
):  # fmt: skip
    """Run the GRU over ``x (T, B, D)``.

    Returns ``(hs (T, B, H), h_T (B, H), cache)``; the cache is a :class:`GRUCache` for the
    defaults, a :class:`GRUActCache` otherwise.
    """
    pair = (activation, recurrent_activation)
    for name in pair:
        get_elementwise(name)  # validates both names before any work
    general = pair != DEFAULT_ACTIVATIONS or not reset_after
    T, B, _ = x.shape
    H = h0.shape[-1]
    b_in, b_rec = split_bias(bias, reset_after)
    xw = x @ kernel + b_in  # (T, B, 3H): the input projection for every step at once
    gates = np.empty((T, B, 3 * H), dtype=x.dtype)
    pre = np.empty((T, B, 3 * H), dtype=x.dtype) if general else None
    hu_n = np.empty((T, B, H), dtype=x.dtype) if reset_after else None
    h = np.empty((T + 1, B, H), dtype=x.dtype)
    h_in = np.empty((T, B, H), dtype=x.dtype)
    h[0] = h0
    for t in range(T):
        h_in[t] = h[t] if recurrent_mask is None else h[t] * recurrent_mask
        h_t, gates[t], hu_n_t, pre_t = gru_cell(
            xw[t], h[t], h_in[t], recurrent_kernel, b_rec, pair, reset_after
        )
        if reset_after:
            hu_n[t] = hu_n_t
        if general:
            pre[t] = pre_t
        if mask is not None:  # skipped steps carry h over unchanged
            h_t = np.where(mask[t][:, None], h_t, h[t])
        h[t + 1] = h_t
    fields = (x, kernel, recurrent_kernel, gates, hu_n, h, h_in, mask, recurrent_mask)
    cache = GRUActCache(*fields, pair, bool(reset_after), pre) if general else GRUCache(*fields)
    return h[1:].copy(), h[T].copy(), cache


def _gate_grads(dh, t, cache, pre_t, U, H):
    """``(dxw (B, 3H), dhu (B, 3H), dh_in (B, H))`` of step ``t``, before masking.

    ``dxw`` is dLoss/d(input-side pre-activations), ``dhu`` dLoss/d(recurrent-side ones) (with
    reset_after=False its n block is dLoss/d((r ⊙ h_in) @ U_n)), ``dh_in`` dLoss/d(h_in) through
    the gates."""
    general = isinstance(cache, GRUActCache)
    act_name, rec_name = cache.activations if general else DEFAULT_ACTIVATIONS
    dact, drec = get_elementwise(act_name)[1], get_elementwise(rec_name)[1]
    reset_after = cache.reset_after if general else True
    zz, zr, zn = (None,) * 3 if pre_t is None else (pre_t[:, k * H : (k + 1) * H] for k in range(3))
    a = cache.gates[t]
    z, r, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
    d = np.empty_like(a)
    d[:, :H] = dh * (cache.h[t] - n) * drec(z, zz)
    d[:, 2 * H :] = dh * (1 - z) * dact(n, zn)
    du = np.empty_like(a)
    if reset_after:
        d[:, H : 2 * H] = d[:, 2 * H :] * cache.hu_n[t] * drec(r, zr)
        du[:, : 2 * H] = d[:, : 2 * H]
        du[:, 2 * H :] = d[:, 2 * H :] * r  # n sees hu_n only through r ⊙ hu_n
        return d, du, None
    d_rh = d[:, 2 * H :] @ U[:, 2 * H :].T  # (B, H) dLoss/d(r ⊙ h_in)
    d[:, H : 2 * H] = d_rh * cache.h_in[t] * drec(r, zr)
    du[:] = d
    return d, du, d_rh * r


def gru_backward(dhs, dh_T, cache):
    """BPTT through :func:`gru_forward`.

    ``dhs (T, B, H)`` is dLoss/d(outputs) (or None), ``dh_T`` dLoss/d(final state) (or None).
    Returns a dict of fresh arrays: ``x, h0, kernel, recurrent_kernel, bias``.
    """
    x, kernel, U, gates, _, h, h_in, mask, rmask = cache[:9]
    general = isinstance(cache, GRUActCache)
    reset_after = cache.reset_after if general else True
    T, B, _ = x.shape
    H = h.shape[-1]
    dxw = np.empty_like(gates)  # (T, B, 3H) dLoss/d(xw): input-side pre-activations
    dhu = np.empty_like(gates)  # (T, B, 3H) dLoss/d(hu): recurrent-side pre-activations
    dh = np.zeros((B, H), x.dtype) if dh_T is None else np.array(dh_T, dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        pre_t = cache.z[t] if general and cache.z is not None else None  # None: compiled forward
        d, du, dh_in_r = _gate_grads(dh, t, cache, pre_t, U, H)
        dh_blend = dh * gates[t][:, :H]  # dh * z
        if mask is not None:  # a skipped step passes its gradient straight through
            m = mask[t][:, None]
            d *= m
            du *= m
            dh_in_r = None if dh_in_r is None else dh_in_r * m
            dh_blend = np.where(m, dh_blend, dh)
        dxw[t], dhu[t] = d, du
        if reset_after:
            dh_prev = du @ U.T
        else:
            dh_prev = du[:, : 2 * H] @ U[:, : 2 * H].T + dh_in_r
        if rmask is not None:
            dh_prev *= rmask
        dh = dh_prev + dh_blend
    return _weight_grads(x, kernel, U, gates, h_in, dxw, dhu, dh, reset_after)


def _weight_grads(x, kernel, U, gates, h_in, dxw, dhu, dh0, reset_after):
    T, B, _ = x.shape
    H = h_in.shape[-1]
    dxw2 = dxw.reshape(T * B, 3 * H)
    dhu2 = dhu.reshape(T * B, 3 * H)
    h_in2 = h_in.reshape(T * B, H)
    if reset_after:
        dU = h_in2.T @ dhu2
        dbias = np.stack([dxw2.sum(axis=0), dhu2.sum(axis=0)])
    else:  # the n block's product took r ⊙ h_in
        rh2 = (gates[..., H : 2 * H] * h_in).reshape(T * B, H)
        dU = np.concatenate([h_in2.T @ dhu2[:, : 2 * H], rh2.T @ dhu2[:, 2 * H :]], axis=1)
        dbias = dxw2.sum(axis=0)
    return {
        "x": (dxw2 @ kernel.T).reshape(x.shape),
        "h0": dh0,
        "kernel": x.reshape(T * B, -1).T @ dxw2,
        "recurrent_kernel": dU,
        "bias": dbias,
    }
