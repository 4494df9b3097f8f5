"""LSTM variants over a whole sequence: forward, backward (BPTT) and one streaming step.

One cell with switches; with every switch off it is :mod:`lstmkit.ops.lstm` exactly. Time-major
``x (T, B, D)``; the present gates are stored in the order i, f, g, o with the absent one's block
left out, so ``kernel (D, G*H)``, ``recurrent_kernel (H, G*H)``, ``bias (G*H,)`` with ``G = 4``,
or ``G = 3`` for CIFG (f, g, o) and for no forget gate (i, g, o)::

    zx_t = LN_x(x_t @ kernel) + bias              LN_x(v) = γ_x ⊙ (v - mean v) / std v  (over G*H)
    zh_t = LN_h(h_{t-1} @ recurrent_kernel)      LN_h likewise with γ_h; without layer_norm LN = id
    z = zx_t + zh_t                                                          # (B, G*H)
    i = σ(z_i + p_i ⊙ c_{t-1})     f = σ(z_f + p_f ⊙ c_{t-1})     g = tanh(z_g)
        cifg: i = 1 - f                          no forget gate: f = 1 (the 1997 cell)
    ĉ_t = f ⊙ c_{t-1} + i ⊙ g                                                # the new cell
    o = σ(z_o + p_o ⊙ ĉ_t)
    ĥ_t = o ⊙ tanh(LN_c(ĉ_t))                    LN_c(v) = γ_c ⊙ (v - mean v) / std v + β_c (over H)
    zoneout: c_t = d_c ⊙ c_{t-1} + (1 - d_c) ⊙ ĉ_t      h_t = d_h ⊙ h_{t-1} + (1 - d_h) ⊙ ĥ_t

- Peepholes (Gers & Schmidhuber 2000): ``peephole (3, H)`` rows p_i, p_f, p_o; i and f look at
  the previous cell, o at the new one. With CIFG the row p_i is unused (its gradient is 0); with no
  forget gate the row p_f is unused.
- Layer normalisation (Ba, Kiros & Hinton 2016): ``ln (γ_x (G*H,), γ_h (G*H,), γ_c (H,),
  β_c (H,))``, ``std v = sqrt(var v + LN_EPSILON)``. The paper also gives LN_x and LN_h
  a shift β; it would only add to ``bias``, so ``bias`` is the one shift here.
- Zoneout (Krueger et al. 2017): ``zoneout (d_c, d_h)`` arrays broadcastable to ``(T, B, H)``
  holding the weight of the *previous* state: in training a Bernoulli(rate) draw per unit and
  step, at inference the rate itself (the expectation). ``None`` means no zoneout.

Masking and recurrent dropout exactly as in :mod:`lstmkit.ops.lstm`: a masked step carries h and
c over unchanged (after zoneout); ``recurrent_mask (B, H)`` multiplies h_{t-1} before the
recurrent product.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import dsigmoid, dtanh, sigmoid
from .lstm import lstm_output_backward, lstm_state, lstm_state_backward

LN_EPSILON = 1e-5


class Variant(NamedTuple):
    """Which switches are on. ``gates`` lists the present gate blocks in storage order."""

    cifg: bool = False
    forget_gate: bool = True

    @property
    def gates(self) -> tuple[str, ...]:
        if self.cifg and not self.forget_gate:
            raise ValueError(
                "LSTM variant: 'cifg=True' (i = 1 - f) needs the forget gate; got forget_gate=False"
            )
        if self.cifg:
            return ("f", "g", "o")
        return ("i", "f", "g", "o") if self.forget_gate else ("i", "g", "o")

    def block(self, gate: str, H: int) -> slice | None:
        """The columns of ``gate`` in ``kernel``/``bias``, or None when the gate is absent."""
        gates = self.gates
        if gate not in gates:
            return None
        k = gates.index(gate)
        return slice(k * H, (k + 1) * H)


PLAIN = Variant()  # every switch off: the cell of lstmkit.ops.lstm


class LNParams(NamedTuple):
    gamma_x: np.ndarray  # (G*H,)
    gamma_h: np.ndarray  # (G*H,)
    gamma_c: np.ndarray  # (H,)
    beta_c: np.ndarray  # (H,)


class LSTMVariantCache(NamedTuple):
    """Exactly what backward needs; produced by forward, consumed by backward, never mutated."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, G*H)
    recurrent_kernel: np.ndarray  # (H, G*H)
    variant: Variant
    gates: np.ndarray  # (T, B, G*H) activated gates, storage order
    c: np.ndarray  # (T+1, B, H) carried cell, c[0] = c0
    h: np.ndarray  # (T+1, B, H) carried h, h[0] = h0 (zoneout mixes it back in)
    c_new: np.ndarray  # (T, B, H) ĉ_t, the cell before zoneout
    tanh_c: np.ndarray  # (T, B, H) tanh(LN_c(ĉ_t))
    h_in: np.ndarray  # (T, B, H) the h that entered the recurrent product
    peephole: np.ndarray | None  # (3, H)
    ln: LNParams | None
    ln_stats: tuple | None  # (x_hat (T,B,GH), x_rstd (T,B,1), h_hat, h_rstd, c_hat (T,B,H), c_rstd)
    zoneout: tuple | None  # (d_c, d_h) broadcastable to (T, B, H)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)


def _ln(v):
    """``(v - mean) / sqrt(var + eps)`` over the last axis -> (v_hat, rstd (..., 1))."""
    mu = v.mean(axis=-1, keepdims=True)
    d = v - mu
    rstd = 1.0 / np.sqrt((d * d).mean(axis=-1, keepdims=True) + LN_EPSILON)
    return d * rstd, rstd


def _ln_backward(dv_hat, v_hat, rstd):
    """dLoss/dv from dLoss/dv_hat for ``v_hat = (v - mean v) * rstd``."""
    return rstd * (
        dv_hat
        - dv_hat.mean(axis=-1, keepdims=True)
        - v_hat * (dv_hat * v_hat).mean(axis=-1, keepdims=True)
    )


def _cell(z, c_prev, variant, H, peephole, ln):
    """One step's pointwise part from pre-activations ``z (B, G*H)`` (modified in place).

    Returns ``(a, c_new, tanh_c, h_new, c_hat, c_rstd)``; i = 1 - f and f = 1 are not stored.
    """
    si, sf, sg, so = (variant.block(n, H) for n in ("i", "f", "g", "o"))
    if peephole is not None:
        if si is not None:
            z[:, si] += peephole[0] * c_prev
        if sf is not None:
            z[:, sf] += peephole[1] * c_prev
    a = np.empty_like(z)
    for s in (si, sf):
        if s is not None:
            a[:, s] = sigmoid(z[:, s])
    a[:, sg] = np.tanh(z[:, sg])
    f = a[:, sf] if sf is not None else 1.0
    i = a[:, si] if si is not None else 1.0 - f
    c_new = lstm_state(i, f, a[:, sg], c_prev)
    z_o = z[:, so] if peephole is None else z[:, so] + peephole[2] * c_new
    a[:, so] = o = sigmoid(z_o)
    c_hat = c_rstd = None
    if ln is not None:
        c_hat, c_rstd = _ln(c_new)
        tanh_c = np.tanh(ln.gamma_c * c_hat + ln.beta_c)
    else:
        tanh_c = np.tanh(c_new)
    return a, c_new, tanh_c, o * tanh_c, c_hat, c_rstd


def lstm_variants_step(
    x_t,
    h,
    c,
    kernel,
    recurrent_kernel,
    bias,
    variant=PLAIN,
    peephole=None,
    ln=None,
    zoneout=None,
):
    """One time step for streaming inference: ``(B, D), (B, H), (B, H) -> (h, c)``.

    ``zoneout`` here is the pair of *rates* (the inference-time expectation), or None.
    """
    H = h.shape[-1]
    zx, zh = x_t @ kernel, h @ recurrent_kernel
    if ln is not None:
        zx, zh = _ln(zx)[0] * ln.gamma_x, _ln(zh)[0] * ln.gamma_h
    _, c_new, _, h_new, _, _ = _cell(zx + bias + zh, c, variant, H, peephole, ln)
    if zoneout is not None:
        d_c, d_h = zoneout
        c_new = d_c * c + (1 - d_c) * c_new
        h_new = d_h * h + (1 - d_h) * h_new
    return h_new, c_new


def lstm_variants_forward(
    x,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    bias,
    mask=None,
    recurrent_mask=None,
    *,
    variant=PLAIN,
    peephole=None,
    ln=None,
    zoneout=None,
):
    """Run the variant cell over ``x (T, B, D)``. Returns ``(hs (T, B, H), (h_T, c_T), cache)``."""
    T, B, _ = x.shape
    H = h0.shape[-1]
    GH = len(variant.gates) * H
    if kernel.shape[-1] != GH:
        raise ValueError(
            f"lstm_variants_forward: argument 'kernel' must have {GH} columns for gates "
            f"{variant.gates} and H={H}; got shape {kernel.shape}"
        )
    dt = x.dtype
    zx = x @ kernel  # (T, B, G*H): the input projection for every step at once
    ln_stats = None
    if ln is not None:
        x_hat, x_rstd = _ln(zx)
        zx = x_hat * ln.gamma_x
        h_hat = np.empty((T, B, GH), dt)
        h_rstd = np.empty((T, B, 1), dt)
        c_hat = np.empty((T, B, H), dt)
        c_rstd = np.empty((T, B, 1), dt)
        ln_stats = (x_hat, x_rstd, h_hat, h_rstd, c_hat, c_rstd)
    zx = zx + bias
    gates = np.empty((T, B, GH), dt)
    c = np.empty((T + 1, B, H), dt)
    h = np.empty((T + 1, B, H), dt)
    c_new = np.empty((T, B, H), dt)
    tanh_c = np.empty((T, B, H), dt)
    h_in = np.empty((T, B, H), dt)
    c[0], h[0] = c0, h0
    for t in range(T):
        h_in[t] = h[t] if recurrent_mask is None else h[t] * recurrent_mask
        zh = h_in[t] @ recurrent_kernel
        if ln is not None:
            h_hat[t], h_rstd[t] = _ln(zh)
            zh = h_hat[t] * ln.gamma_h
        a, c_new[t], tanh_c[t], h_t, ch, cr = _cell(zx[t] + zh, c[t], variant, H, peephole, ln)
        gates[t] = a
        if ln is not None:
            c_hat[t], c_rstd[t] = ch, cr
        c_t = c_new[t]
        if zoneout is not None:
            d_c, d_h = (np.broadcast_to(d, (T, B, H))[t] for d in zoneout)
            c_t = d_c * c[t] + (1 - d_c) * c_t
            h_t = d_h * h[t] + (1 - d_h) * h_t
        if mask is not None:  # skipped steps carry h and c over unchanged
            m = mask[t][:, None]
            c_t = np.where(m, c_t, c[t])
            h_t = np.where(m, h_t, h[t])
        c[t + 1], h[t + 1] = c_t, h_t
    cache = LSTMVariantCache(
        x,
        kernel,
        recurrent_kernel,
        variant,
        gates,
        c,
        h,
        c_new,
        tanh_c,
        h_in,
        peephole,
        ln,
        ln_stats,
        zoneout,
        mask,
        recurrent_mask,
    )
    return h[1:].copy(), (h[T].copy(), c[T].copy()), cache


def lstm_variants_backward(dhs, dh_T, dc_T, cache: LSTMVariantCache):
    """BPTT through :func:`lstm_variants_forward`.

    Returns a dict of fresh arrays: ``x, h0, c0, kernel, recurrent_kernel, bias`` and, when
    present, ``peephole (3, H)`` and ``ln_gamma_x, ln_gamma_h, ln_gamma_c, ln_beta_c``.
    """
    (
        x,
        kernel,
        U,
        variant,
        gates,
        c,
        _h,
        c_new,
        tanh_c,
        h_in,
        peep,
        ln,
        ln_stats,
        zoneout,
        mask,
        rmask,
    ) = cache
    T, B, _ = x.shape
    H = c.shape[-1]
    GH = gates.shape[-1]
    si, sf, sg, so = (variant.block(n, H) for n in ("i", "f", "g", "o"))
    dt = x.dtype
    dz = np.zeros((T, B, GH), dt)  # dLoss/dz (z = zx + zh), rows of skipped steps stay 0
    dzh = dz if ln is None else np.zeros((T, B, GH), dt)  # dLoss/d(h_in @ U)
    dpeep = None if peep is None else np.zeros((3, H), dt)
    if ln is not None:
        x_hat, x_rstd, h_hat, h_rstd, c_hat, c_rstd = ln_stats
        dgamma_h = np.zeros(GH, dt)
        dgamma_c = np.zeros(H, dt)
        dbeta_c = np.zeros(H, dt)
    dh = np.zeros((B, H), dt) if dh_T is None else np.array(dh_T, dtype=dt)
    dc = np.zeros((B, H), dt) if dc_T is None else np.array(dc_T, dtype=dt)
    for t in range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        # a skipped step passes dh and dc straight through; its own contributions are zeroed by m
        m = None if mask is None else mask[t][:, None].astype(dt)
        dh_step = dh if m is None else dh * m
        dc_step = dc if m is None else dc * m
        if zoneout is not None:
            d_c, d_h = (np.broadcast_to(d, (T, B, H))[t] for d in zoneout)
            dh_prev = d_h * dh_step
            dc_prev = d_c * dc_step
            dh_new, dc_new = (1 - d_h) * dh_step, (1 - d_c) * dc_step
        else:
            dh_prev = np.zeros_like(dh)
            dc_prev = np.zeros_like(dc)
            dh_new, dc_new = dh_step, dc_step
        a = gates[t]
        o, g = a[:, so], a[:, sg]
        f = a[:, sf] if sf is not None else 1.0
        i = a[:, si] if si is not None else (1.0 - f)
        d = dz[t]
        do, dtc = lstm_output_backward(dh_new, o, tanh_c[t])
        dtc *= dtanh(tanh_c[t])  # dLoss/d(the argument of tanh)
        d[:, so] = dz_o = do * dsigmoid(o)
        if ln is not None:
            dgamma_c += (dtc * c_hat[t]).sum(axis=0)
            dbeta_c += dtc.sum(axis=0)
            dtc = _ln_backward(dtc * ln.gamma_c, c_hat[t], c_rstd[t])
        dcn = dc_new + dtc  # dLoss/dĉ_t
        if peep is not None:
            dcn = dcn + dz_o * peep[2]
            dpeep[2] += (dz_o * c_new[t]).sum(axis=0)
        c_prev = c[t]
        di, df, dg, dc_cell = lstm_state_backward(dcn, i, f, g, c_prev)
        d[:, sg] = dg * dtanh(g)
        dc_prev += dc_cell
        if sf is not None:
            if si is None:  # cifg: i = 1 - f
                df -= di
            d[:, sf] = dz_f = df * dsigmoid(f)
        if si is not None:
            d[:, si] = dz_i = di * dsigmoid(i)
        if peep is not None:
            if si is not None:
                dc_prev += dz_i * peep[0]
                dpeep[0] += (dz_i * c_prev).sum(axis=0)
            if sf is not None:
                dc_prev += dz_f * peep[1]
                dpeep[1] += (dz_f * c_prev).sum(axis=0)
        if ln is not None:
            dgamma_h += (d * h_hat[t]).sum(axis=0)
            dzh[t] = _ln_backward(d * ln.gamma_h, h_hat[t], h_rstd[t])
        dh_in = dzh[t] @ U.T
        dh_prev += dh_in if rmask is None else dh_in * rmask
        if m is not None:
            dh_prev += dh * (1 - m)
            dc_prev += dc * (1 - m)
        dh, dc = dh_prev, dc_prev
    dz2 = dz.reshape(T * B, GH)
    out = {"bias": dz2.sum(axis=0)}
    if ln is not None:
        out["ln_gamma_x"] = (dz2 * x_hat.reshape(T * B, GH)).sum(axis=0)
        dzx = _ln_backward(dz * ln.gamma_x, x_hat, x_rstd).reshape(T * B, GH)
        out.update(ln_gamma_h=dgamma_h, ln_gamma_c=dgamma_c, ln_beta_c=dbeta_c)
    else:
        dzx = dz2
    out.update(
        x=(dzx @ kernel.T).reshape(x.shape),
        h0=dh,
        c0=dc,
        kernel=x.reshape(T * B, -1).T @ dzx,
        recurrent_kernel=h_in.reshape(T * B, H).T @ dzh.reshape(T * B, GH),
    )
    if peep is not None:
        out["peephole"] = dpeep
    return out
