"""The LSTM cell over a whole sequence: forward, backward (BPTT) and one streaming step.

Equations (time-major, ``x (T, B, D)``, gate order i, f, g, o as Keras stores them)::

    z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel      # (B, 4H)
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

``kernel (D, 4H)``, ``recurrent_kernel (H, 4H)``, ``bias (4H,)``. The input projection
``x @ kernel + bias`` is one product for all steps; only ``h @ recurrent_kernel`` is in the loop.

The pointwise step (activated gates and ``c_{t-1}`` -> ``c_t, φ(c_t), h_t``) is written once,
:func:`lstm_cell` (from :func:`lstm_state`), and so is its derivative, :func:`lstm_cell_backward`
(from :func:`lstm_state_backward` and :func:`lstm_output_backward`); this module's forward, step
and backward, :mod:`lstmkit.ops.lstm_variants` (around its extra terms) and the translation
decoder's packed loop (``apps/translate_teacher``) all call them, on blocks of any leading shape.

Masking (Keras semantics): where ``mask[t, b]`` is False, step t of sequence b is skipped: h and c
are carried over unchanged and the step's output is the carried h.

Recurrent dropout (Keras 3): ``recurrent_mask (B, H)`` multiplies ``h_{t-1}`` before the
recurrent product, the same mask at every step.

Other activations (Keras' ``activation`` φ for g and for the cell output, ``recurrent_activation``
ρ for i, f, o; any element-wise name :func:`get_elementwise` knows)::

    i = ρ(z_i)   f = ρ(z_f)   g = φ(z_g)   o = ρ(z_o)   c_t = f ⊙ c_{t-1} + i ⊙ g   h_t = o ⊙ φ(c_t)

The same loop serves every pair; with the defaults (tanh, sigmoid) the cache is
:class:`LSTMCache` (what the compiled kernels also produce and consume), otherwise
:class:`LSTMActCache`, which adds the names and the pre-activations ``z``: a derivative such as
gelu's or swish's is not a function of the output alone. The compiled kernels produce both
(:class:`LSTMActCache` with ``z`` None for pairs of output-derivable activations, whose
derivatives this backward then also takes from the outputs) and consume both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import get_elementwise
from .gates import block, split

#: Keras' defaults ``(activation, recurrent_activation)``: the pair whose cache is LSTMCache
DEFAULT_ACTIVATIONS = ("tanh", "sigmoid")


class LSTMCache(NamedTuple):
    """Exactly what backward needs; produced by forward, consumed by backward, never mutated."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, 4H)
    recurrent_kernel: np.ndarray  # (H, 4H)
    gates: np.ndarray  # (T, B, 4H) activated: i, f, g, o
    c: np.ndarray  # (T+1, B, H) c[0] = c0
    tanh_c: np.ndarray  # (T, B, H)
    h_in: np.ndarray  # (T, B, H) the h that entered the recurrent product (after recurrent dropout)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)
    # The compiled forward's own buffers behind these arrays (``ops.fast.lstm_fm.FMBuffers``),
    # which its backward reads; None from every other forward. Everyone else ignores it.
    buffers: object = None


class LSTMActCache(NamedTuple):
    """:class:`LSTMCache` for activations other than (tanh, sigmoid): the same first nine fields
    (``act_c = φ(c)`` where the default cache has ``tanh_c``), then the activation names and the
    pre-activations. The compiled kernels (which run the activations whose derivative is a
    function of their output) leave ``z`` None and may fill ``buffers``."""

    x: np.ndarray  # (T, B, D)
    kernel: np.ndarray  # (D, 4H)
    recurrent_kernel: np.ndarray  # (H, 4H)
    gates: np.ndarray  # (T, B, 4H) activated: i, f, g, o
    c: np.ndarray  # (T+1, B, H) c[0] = c0
    act_c: np.ndarray  # (T, B, H) φ(c_t)
    h_in: np.ndarray  # (T, B, H)
    mask: np.ndarray | None  # (T, B) bool
    recurrent_mask: np.ndarray | None  # (B, H)
    activations: tuple  # (activation, recurrent_activation) names
    z: np.ndarray | None  # (T, B, 4H) pre-activations; None from the compiled kernels
    buffers: object = None  # as in LSTMCache: the compiled forward's own buffers


def _pair(activations):
    """``(φ, φ', ρ, ρ')`` for ``(activation, recurrent_activation)`` names."""
    act, dact = get_elementwise(activations[0])
    rec, drec = get_elementwise(activations[1])
    return act, dact, rec, drec


def _apply(fn, x, out):
    """``fn(x)``, written into ``out`` when given (a ufunc such as np.tanh writes it directly)."""
    if out is None:
        return fn(x)
    if isinstance(fn, np.ufunc):
        return fn(x, out=out)
    out[...] = fn(x)
    return out


def lstm_gates(z: np.ndarray, H: int, activations=DEFAULT_ACTIVATIONS, out=None) -> np.ndarray:
    """Activate pre-activations ``z (..., 4H)``: ρ on i, f, o; φ on g. Into ``out`` when given,
    else into a fresh array."""
    act, _, rec, _ = _pair(activations)
    if out is None:
        out = rec(z)
        if np.shares_memory(out, z):  # "linear" returns its argument
            out = out.copy()
    else:
        out[...] = rec(z)
    _apply(act, z[..., block(2, H)], out[..., block(2, H)])
    return out


# -- the pointwise step and its derivative: every NumPy LSTM (this module, the variants, the
# translation decoder) runs these; the compiled kernels inline ops.fast.cells' copy of them
def lstm_state(i, f, g, c_prev, out=None):
    """``c = f ⊙ c_prev + i ⊙ g`` on blocks of any shape (``f`` may be the scalar 1 and ``i``
    ``1 - f``: the variants); into ``out`` when given."""
    c = np.multiply(f, c_prev, out=out)
    c += i * g
    return c


def lstm_state_backward(dc, i, f, g, c_prev, out=(None, None, None)):
    """The derivative of :func:`lstm_state`: ``dc = dLoss/dc`` -> ``(di, df, dg, dc_prev)``,
    dLoss/d of the activated gates and of ``c_prev``; ``di, df, dg`` into ``out`` when given."""
    di = np.multiply(dc, g, out=out[0])
    df = np.multiply(dc, c_prev, out=out[1])
    return di, df, np.multiply(dc, i, out=out[2]), dc * f


def lstm_output_backward(dh, o, act_c, out=None):
    """The derivative of ``h = o ⊙ φ(c)``: ``dh`` -> ``(do, dLoss/dφ(c))``; ``do`` into ``out``
    when given."""
    return np.multiply(dh, act_c, out=out), dh * o


def lstm_cell(a, c_prev, act=np.tanh, out=(None, None, None)):
    """One pointwise step: activated gates ``a (..., 4H)`` (i, f, g, o) and ``c_prev (..., H)``
    -> ``(c, act_c = φ(c), h = o ⊙ act_c)``, each ``(..., H)``, written into ``out`` (three
    arrays or Nones) when given."""
    i, f, g, o = split(a, 4)
    c = lstm_state(i, f, g, c_prev, out[0])
    act_c = _apply(act, c, out[1])
    return c, act_c, np.multiply(o, act_c, out=out[2])


#: ``(φ', ρ')`` of the default pair: what :func:`lstm_cell_backward` takes unless told
DEFAULT_DERIVATIVES = (_pair(DEFAULT_ACTIVATIONS)[1], _pair(DEFAULT_ACTIVATIONS)[3])


def lstm_cell_backward(dh, dc, a, c_prev, c, act_c, derivs=DEFAULT_DERIVATIVES, z=None, out=None):
    """The derivative of :func:`lstm_cell` from its stored values: ``dh``, ``dc`` (dLoss/d of
    the step's h and c from later on, ``(..., H)``) -> ``dc_prev``; dLoss/d(pre-activations)
    ``(..., 4H)`` goes into ``out`` (fresh when None). ``derivs = (φ', ρ')`` read the outputs
    and, when stored, the pre-activations ``z (..., 4H)`` (and ``c``, the argument of φ)."""
    dact, drec = derivs
    i, f, g, o = split(a, 4)
    zi, zf, zg, zo = split(z, 4)
    d = np.empty_like(a) if out is None else out
    dzi, dzf, dzg, dzo = split(d, 4)
    # first dLoss/d(activated gates) into d's blocks, then times the activations' derivatives
    dc_t = lstm_output_backward(dh, o, act_c, out=dzo)[1]
    dc_t *= dact(act_c, c)
    dc_t += dc  # dLoss/dc through both paths
    dc_prev = lstm_state_backward(dc_t, i, f, g, c_prev, out=(dzi, dzf, dzg))[3]
    dzi *= drec(i, zi)
    dzf *= drec(f, zf)
    dzg *= dact(g, zg)
    dzo *= drec(o, zo)
    return dc_prev


def lstm_step(
    x_t, h, c, kernel, recurrent_kernel, bias, activation="tanh", recurrent_activation="sigmoid"
):
    """One time step for streaming inference: ``(B, D), (B, H), (B, H) -> (h, c)``."""
    pair = (activation, recurrent_activation)
    a = lstm_gates(x_t @ kernel + bias + h @ recurrent_kernel, h.shape[-1], pair)
    c, _, h = lstm_cell(a, c, _pair(pair)[0])
    return h, c


def lstm_forward(
    x,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    bias,
    mask=None,
    recurrent_mask=None,
    activation="tanh",
    recurrent_activation="sigmoid",
):
    """Run the LSTM over ``x (T, B, D)``.

    Returns ``(hs (T, B, H), (h_T, c_T), cache)``; the cache is an :class:`LSTMCache` for the
    default activations, an :class:`LSTMActCache` otherwise.
    """
    pair = (activation, recurrent_activation)
    act = _pair(pair)[0]  # validates both names before any work
    general = pair != DEFAULT_ACTIVATIONS
    T, B, _ = x.shape
    H = h0.shape[-1]
    xw = x @ kernel + bias  # (T, B, 4H): the input projection for every step at once
    gates = np.empty((T, B, 4 * H), dtype=x.dtype)
    z = np.empty((T, B, 4 * H), dtype=x.dtype) if general else None
    c = np.empty((T + 1, B, H), dtype=x.dtype)
    act_c = np.empty((T, B, H), dtype=x.dtype)
    h_in = np.empty((T, B, H), dtype=x.dtype)
    hs = np.empty((T, B, H), dtype=x.dtype)
    c[0] = c0
    h = h0
    for t in range(T):
        h_in[t] = h if recurrent_mask is None else h * recurrent_mask
        z_t = xw[t] + h_in[t] @ recurrent_kernel
        if general:
            z[t] = z_t
        a = lstm_gates(z_t, H, pair, out=gates[t])
        lstm_cell(a, c[t], act, out=(c[t + 1], act_c[t], hs[t]))
        if mask is not None:  # skipped steps carry h and c over unchanged
            skip = ~mask[t][:, None]
            np.copyto(c[t + 1], c[t], where=skip)
            np.copyto(hs[t], h, where=skip)
        h = hs[t]
    fields = (x, kernel, recurrent_kernel, gates, c, act_c, h_in, mask, recurrent_mask)
    cache = LSTMActCache(*fields, pair, z) if general else LSTMCache(*fields)
    return hs, (h.copy(), c[T]), cache  # h_T apart from hs, as callers may write into hs


def lstm_backward(dhs, dh_T, dc_T, cache, need_dx=True):
    """BPTT through :func:`lstm_forward`.

    ``dhs (T, B, H)`` is dLoss/d(outputs) (or None), ``dh_T``/``dc_T`` dLoss/d(final state)
    (or None). Returns a dict of fresh arrays: ``x, h0, c0, kernel, recurrent_kernel, bias``;
    ``x`` is None with ``need_dx=False`` (a first layer: nothing upstream wants it).
    """
    x, kernel, U, gates, c, act_c, h_in, mask, rmask = cache[:9]
    general = isinstance(cache, LSTMActCache)
    derivs = _pair(cache.activations)[1::2] if general else DEFAULT_DERIVATIVES
    z = cache.z if general else None
    T, B, _ = x.shape
    H = c.shape[-1]
    dz = np.empty_like(gates)  # (T, B, 4H) dLoss/d(pre-activations)
    dh = np.zeros((B, H), x.dtype) if dh_T is None else np.array(dh_T, dtype=x.dtype)
    dc = np.zeros((B, H), x.dtype) if dc_T is None else np.array(dc_T, dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[t]
        # c[t + 1] is c_t on every valid step (skipped steps get d = 0 below)
        z_t = None if z is None else z[t]
        d = dz[t]
        dc_prev = lstm_cell_backward(dh, dc, gates[t], c[t], c[t + 1], act_c[t], derivs, z_t, d)
        if mask is not None:  # a skipped step passes its gradients straight through
            m = mask[t][:, None]
            d *= m
            dc_prev = np.where(m, dc_prev, dc)
        dh_prev = d @ U.T
        if rmask is not None:
            dh_prev *= rmask
        if mask is not None:
            dh_prev += np.where(m, 0, dh)
        dh, dc = dh_prev, dc_prev
    dz2 = dz.reshape(T * B, 4 * H)
    return {
        "x": (dz2 @ kernel.T).reshape(x.shape) if need_dx else None,
        "h0": dh,
        "c0": dc,
        "kernel": x.reshape(T * B, -1).T @ dz2,
        "recurrent_kernel": h_in.reshape(T * B, H).T @ dz2,
        "bias": dz2.sum(axis=0),
    }
