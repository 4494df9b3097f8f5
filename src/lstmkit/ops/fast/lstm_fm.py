"""Feature-major LSTM kernels: the state kept as ``(H, B)`` columns, one BLAS call per step.

Same equations, results and cache (:class:`lstmkit.ops.lstm.LSTMCache`) as :mod:`.lstm`, computed
in the transposed orientation, where OpenBLAS's small per-step products run fastest
(:mod:`.blas`). The input, the previous hidden state and a row of ones are stacked, so one
product gives every pre-activation, bias included::

    xh_t (1 + D + H, B) = [1; x_t.T; h_{t-1}.T]           # h_{t-1} after recurrent dropout
    W.T  (4H, 1 + D + H) = [bias | kernel.T | recurrent_kernel.T]
    z_t  (4H, B)         = W.T @ xh_t                       # gates i, f, g, o as row blocks
    c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)       # one flat pass over H * B values

Backward, per step from the last, with ``W (D + H, 4H) = [kernel; recurrent_kernel]``::

    dz_t (4H, B)                = gate derivatives (one flat pass)
    [dx_t.T; dh_{t-1}.T]        = W @ dz_t                  # one product
    [d bias | d kernel.T | d recurrent_kernel.T] += dz_t @ xh_t.T   # one product

so BPTT keeps no ``dz (T, B, 4H)`` and needs no separate weight-gradient pass. The pointwise
passes are flat loops over contiguous ``(4H, B)`` / ``(H, B)`` blocks, which numba vectorises
(a loop per unit or per batch column does not: measured 3 vs 21-30 ns per cell).

The cache holds ``(T, B, ...)`` *views* of the feature-major buffers, so readers (the NumPy
backward, :mod:`lstmkit.inspect`) see the usual layout; :func:`lstm_backward_fm` finds the
buffers behind a cache this module made through a registry keyed on the cache's arrays.

Training runs one thread per call (the buffers must be contiguous per step, which a batch-column
split is not); :mod:`.lstm` uses these kernels when its row-split would run one slice anyway and
keeps the row-major kernels for several threads. Inference has no cache, so each thread gets its
own contiguous buffers for its batch slice.
"""

from __future__ import annotations

import weakref

import numpy as np
from numba import njit

from ..lstm import LSTMCache
from .activations import one_, sigmoid_, tanh_
from .blas import gemm, gemm_address, gemm_scratch
from .common import in_parallel, split

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# --- forward ------------------------------------------------------------------------------------


@njit(**_JIT)
def _cells_forward(z, cp, cn, tc, hs, xh_next, n):
    """One step's pointwise pass, flat: ``z`` (4n,) pre-activations in, activations out (in
    place); ``cp, cn, tc, hs, xh_next`` (n,) = c_{t-1}, c_t, tanh(c_t), h_t and the h rows of the
    next step's stacked input, each an (H, B) block."""
    for k in range(n):
        i = sigmoid_(z[k])
        f = sigmoid_(z[n + k])
        g = tanh_(z[2 * n + k])
        o = sigmoid_(z[3 * n + k])
        z[k] = i
        z[n + k] = f
        z[2 * n + k] = g
        z[3 * n + k] = o
        c = f * cp[k] + i * g
        t = tanh_(c)
        cn[k] = c
        tc[k] = t
        h = o * t
        hs[k] = h
        xh_next[k] = h


@njit(**_JIT)
def _cells_infer(z, cp, cn, xh_next, n):
    """:func:`_cells_forward` keeping only c_t and h_t."""
    for k in range(n):
        i = sigmoid_(z[k])
        f = sigmoid_(z[n + k])
        g = tanh_(z[2 * n + k])
        o = sigmoid_(z[3 * n + k])
        c = f * cp[k] + i * g
        cn[k] = c
        xh_next[k] = o * tanh_(c)


@njit(**_JIT)
def _forward_loop(addr, WT, XH, G, C, TC, HS, h0T, rm, has_rm, mask, has_mask):
    """The whole forward pass. ``XH (T+1, 1+D+H, B)`` holds the ones row, x_t.T and (row block
    1+D on) h_0 at t = 0 on entry; fills the h rows of steps 1..T, ``G (T, 4H, B)`` activations,
    ``C (T+1, H, B)`` (C[0] = c0 on entry), ``TC``, ``HS (T, H, B)``. ``rm (H, B)``: recurrent
    dropout mask applied to the h that enters each product."""
    T, H4, B = G.shape
    H = H4 // 4
    K = XH.shape[1]
    r0 = K - H  # first h row of the stacked input
    n = H * B
    iw, fw = gemm_scratch(G)
    rmf = rm.ravel()
    for t in range(T):
        xh, z = XH[t], G[t]
        gemm(addr, False, False, H4, B, K, 1.0, WT.ctypes.data, K, xh.ctypes.data, B,
             0.0, z.ctypes.data, B, iw, fw)  # fmt: skip
        nxt = XH[t + 1].ravel()[r0 * B :]
        _cells_forward(z.ravel(), C[t].ravel(), C[t + 1].ravel(), TC[t].ravel(), HS[t].ravel(),
                       nxt, n)  # fmt: skip
        if has_mask:  # a skipped step carries h and c over unchanged
            for b in range(B):
                if not mask[t, b]:
                    for j in range(H):
                        C[t + 1, j, b] = C[t, j, b]
                        HS[t, j, b] = h0T[j, b] if t == 0 else HS[t - 1, j, b]
                        nxt[j * B + b] = HS[t, j, b]
        if has_rm:
            for k in range(n):
                nxt[k] *= rmf[k]


def _stacked_weights_T(kernel, U, bias):
    """``[bias | kernel.T | recurrent_kernel.T]`` as a C-contiguous (4H, 1+D+H) array."""
    return np.ascontiguousarray(np.concatenate([bias[None], kernel, U]).T)


def _stacked_input(x, h0, rm):
    """``XH (T+1, 1+D+H, B)``: ones, x.T per step, and h_0 (after dropout) at t = 0."""
    T, B, D = x.shape
    H = h0.shape[1]
    XH = np.empty((T + 1, 1 + D + H, B), dtype=x.dtype)
    XH[:, 0] = 1
    XH[:T, 1 : 1 + D] = x.transpose(0, 2, 1)
    XH[T, 1 : 1 + D] = 0
    XH[0, 1 + D :] = (h0 if rm is None else h0 * rm).T
    return XH


# Buffers behind the caches made here, keyed by id of the cache's gates view (removed with it).
_BUFFERS: dict[int, tuple] = {}


def lstm_forward_fm(x, h0, c0, kernel, U, bias, mask=None, recurrent_mask=None):
    """:func:`lstmkit.ops.fast.lstm.lstm_forward` on one thread, feature-major. Arguments already
    checked and cast by the caller (one C-contiguous float type)."""
    dt = x.dtype
    T, B, D = x.shape
    H = h0.shape[1]
    rm = None if recurrent_mask is None else recurrent_mask
    XH = _stacked_input(x, h0, rm)
    G = np.empty((T, 4 * H, B), dt)
    C = np.empty((T + 1, H, B), dt)
    C[0] = c0.T
    TC = np.empty((T, H, B), dt)
    HS = np.empty((T, H, B), dt)
    rmT = np.ones((1, 1), dt) if rm is None else np.ascontiguousarray(rm.T)
    m = np.ones((1, 1), np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
    h0T = np.ascontiguousarray(h0.T)
    WT = _stacked_weights_T(kernel, U, bias)

    def loop(_a, _b):
        _forward_loop(gemm_address(dt), WT, XH, G, C, TC, HS, h0T, rmT, rm is not None, m,
                      mask is not None)  # fmt: skip

    in_parallel([(0, B)], loop, B * 4 * H * (1 + D + H))  # single-threaded BLAS when it matters
    gates = G.transpose(0, 2, 1)
    h_in = XH[:T, 1 + D :].transpose(0, 2, 1)
    cache = LSTMCache(
        x, kernel, U, gates, C.transpose(0, 2, 1), TC.transpose(0, 2, 1), h_in, mask,
        recurrent_mask,
    )  # fmt: skip
    key = id(gates)
    _BUFFERS[key] = (weakref.ref(gates), weakref.ref(h_in), XH, G, C, TC)
    weakref.finalize(gates, _BUFFERS.pop, key, None)
    hs = HS.transpose(0, 2, 1)
    h_T = np.ascontiguousarray(HS[T - 1].T) if T > 0 else h0
    return hs, (h_T, np.ascontiguousarray(C[T].T)), cache


# --- backward -----------------------------------------------------------------------------------


@njit(**_JIT)
def _cells_backward(a, tc, cp, dh, dc, dz, n):
    """One step's gate derivatives, flat: ``a`` (4n,) activations i, f, g, o; ``tc, cp`` tanh(c_t),
    c_{t-1}; ``dh, dc`` (n,) dL/dh_t, dL/dc_t in, dc becomes dL/dc_{t-1}; ``dz`` (4n,) out."""
    one = one_(dh)
    for k in range(n):
        i = a[k]
        f = a[n + k]
        g = a[2 * n + k]
        o = a[3 * n + k]
        t = tc[k]
        d = dc[k] + dh[k] * o * (one - t * t)
        dz[k] = d * g * (i * (one - i))
        dz[n + k] = d * cp[k] * (f * (one - f))
        dz[2 * n + k] = d * i * (one - g * g)
        dz[3 * n + k] = dh[k] * t * (o * (one - o))
        dc[k] = d * f


@njit(**_JIT)
def _backward_loop(addr, W, XH, G, C, TC, dhs, has_dhs, dh, dc, rm, has_rm, mask, has_mask,
                   dz, DXH, dWT, keep_dh, keep_dc):  # fmt: skip
    """BPTT over the buffers of :func:`_forward_loop`. ``dh, dc (H, B)``: dL/dh_T, dL/dc_T in,
    dL/dh_0, dL/dc_0 out; ``dhs (T, B, H)`` upstream gradients of every h_t. Fills
    ``DXH (T, D+H, B)`` with [dx_t.T; dL/dh_{t-1}.T before dropout] and accumulates
    ``dWT (4H, 1+D+H)`` (zero on entry). ``dz (4H, B)``, ``keep_dh``, ``keep_dc``: scratch."""
    T, H4, B = G.shape
    H = H4 // 4
    K = XH.shape[1]
    DH = K - 1
    D = DH - H
    n = H * B
    iw, fw = gemm_scratch(G)
    dhf, dcf, dzf, rmf = dh.ravel(), dc.ravel(), dz.ravel(), rm.ravel()
    for t in range(T - 1, -1, -1):
        if has_dhs:
            for b in range(B):
                for j in range(H):
                    dh[j, b] += dhs[t, b, j]
        if has_mask:
            keep_dh[:] = dh
            keep_dc[:] = dc
        _cells_backward(G[t].ravel(), TC[t].ravel(), C[t].ravel(), dhf, dcf, dzf, n)
        if has_mask:  # a skipped step passes dh and dc straight through, no gradient
            for b in range(B):
                if not mask[t, b]:
                    for r in range(H4):
                        dz[r, b] = 0
                    for j in range(H):
                        dc[j, b] = keep_dc[j, b]
        out = DXH[t]
        gemm(addr, False, False, DH, B, H4, 1.0, W.ctypes.data, H4, dz.ctypes.data, B,
             0.0, out.ctypes.data, B, iw, fw)  # fmt: skip
        gemm(addr, False, True, H4, K, B, 1.0, dz.ctypes.data, B, XH[t].ctypes.data, B,
             1.0, dWT.ctypes.data, K, iw, fw)  # fmt: skip
        dhp = out.ravel()[D * B :]
        if has_rm:
            for k in range(n):
                dhf[k] = dhp[k] * rmf[k]
        else:
            dhf[:] = dhp
        if has_mask:
            for b in range(B):
                if not mask[t, b]:
                    for j in range(H):
                        dh[j, b] = keep_dh[j, b]


def buffers_of(cache):
    """The feature-major buffers behind ``cache`` if :func:`lstm_forward_fm` made it, else None."""
    entry = _BUFFERS.get(id(cache.gates))
    if entry is None or entry[0]() is not cache.gates or entry[1]() is not cache.h_in:
        return None
    return entry[2:]


def lstm_backward_fm(dhs, dh_T, dc_T, cache, buffers):
    """:func:`lstmkit.ops.fast.lstm.lstm_backward` for a cache of :func:`lstm_forward_fm`
    (``buffers = buffers_of(cache)``); shapes already checked by the caller."""
    XH, G, C, TC = buffers
    x, kernel, U, _, _, _, _, mask, rmask = cache
    dt = G.dtype
    T, H4, B = G.shape
    H = H4 // 4
    D = x.shape[2]
    dh = np.zeros((H, B), dt) if dh_T is None else np.array(np.asarray(dh_T, dt).T, order="C")
    dc = np.zeros((H, B), dt) if dc_T is None else np.array(np.asarray(dc_T, dt).T, order="C")
    has_dhs = dhs is not None
    dhs_ = np.ascontiguousarray(dhs, dt) if has_dhs else np.zeros((1, 1, 1), dt)
    rmT = np.ones((1, 1), dt) if rmask is None else np.ascontiguousarray(np.asarray(rmask, dt).T)
    m = np.ones((1, 1), np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
    W = np.ascontiguousarray(np.concatenate([kernel, U]), dtype=dt)
    dz = np.empty((H4, B), dt)
    DXH = np.empty((T, D + H, B), dt)
    dWT = np.zeros((H4, 1 + D + H), dt)
    keep_dh = np.empty((H, B), dt)
    keep_dc = np.empty((H, B), dt)

    def loop(_a, _b):
        _backward_loop(gemm_address(dt), W, XH, G, C, TC, dhs_, has_dhs, dh, dc, rmT,
                       rmask is not None, m, mask is not None, dz, DXH, dWT, keep_dh, keep_dc)  # fmt: skip

    in_parallel([(0, B)], loop, B * H4 * (1 + D + H))
    return {
        "x": np.ascontiguousarray(DXH[:, :D].transpose(0, 2, 1)),
        "h0": np.ascontiguousarray(dh.T),
        "c0": np.ascontiguousarray(dc.T),
        "kernel": np.ascontiguousarray(dWT[:, 1 : 1 + D].T),
        "recurrent_kernel": np.ascontiguousarray(dWT[:, 1 + D :].T),
        "bias": dWT[:, 0].copy(),
    }


# --- inference ----------------------------------------------------------------------------------


@njit(**_JIT)
def _infer_loop(addr, b0, b1, WT, x, h0, c0, mask, has_mask, XH, Z, Cb, hs):
    """Rows b0:b1 of inference. ``XH (2, 1+D+H, nb)``, ``Z (4H, nb)``, ``Cb (2, H, nb)``: this
    slice's own scratch (contiguous per step); writes ``hs[:, b0:b1]``. On exit c_T is
    ``Cb[T % 2]`` (feature-major)."""
    T, _, D = x.shape
    H = h0.shape[1]
    nb = b1 - b0
    K = XH.shape[1]
    r0 = 1 + D
    n = H * nb
    iw, fw = gemm_scratch(Z)
    for s in range(2):
        for b in range(nb):
            XH[s, 0, b] = 1
    for j in range(H):
        for b in range(nb):
            XH[0, r0 + j, b] = h0[b0 + b, j]
            Cb[0, j, b] = c0[b0 + b, j]
    for t in range(T):
        xh, nx = XH[t % 2], XH[(t + 1) % 2]
        for b in range(nb):
            for d in range(D):
                xh[1 + d, b] = x[t, b0 + b, d]
        gemm(addr, False, False, 4 * H, nb, K, 1.0, WT.ctypes.data, K, xh.ctypes.data, nb,
             0.0, Z.ctypes.data, nb, iw, fw)  # fmt: skip
        cp, cn = Cb[t % 2], Cb[(t + 1) % 2]
        _cells_infer(Z.ravel(), cp.ravel(), cn.ravel(), nx.ravel()[r0 * nb :], n)
        if has_mask:
            for b in range(nb):
                if not mask[t, b0 + b]:
                    for j in range(H):
                        cn[j, b] = cp[j, b]
                        nx[r0 + j, b] = xh[r0 + j, b]
        for b in range(nb):
            for j in range(H):
                hs[t, b0 + b, j] = nx[r0 + j, b]


def lstm_infer_fm(x, h0, c0, kernel, U, bias, mask=None):
    """:func:`lstmkit.ops.fast.lstm.lstm_infer`, feature-major, each thread on its own batch
    slice; arguments already checked and cast by the caller."""
    dt = x.dtype
    T, B, D = x.shape
    H = h0.shape[1]
    K = 1 + D + H
    WT = _stacked_weights_T(kernel, U, bias)
    hs = np.empty((T, B, H), dt)
    m = np.ones((1, 1), np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
    c_T = np.empty((B, H), dt)
    addr = gemm_address(dt)

    def loop(b0, b1):
        nb = b1 - b0
        Cb = np.empty((2, H, nb), dt)
        _infer_loop(addr, b0, b1, WT, x, h0, c0, m, mask is not None, np.empty((2, K, nb), dt),
                    np.empty((4 * H, nb), dt), Cb, hs)  # fmt: skip
        c_T[b0:b1] = Cb[T % 2].T

    in_parallel(split(B, T * B * 4 * H * K), loop, B * 4 * H * K)
    if T == 0:
        return hs, (h0, c0)
    return hs, (hs[T - 1].copy(), c_T)
