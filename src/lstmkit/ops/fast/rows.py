"""The row-major time loops of every cell, written once: forward and BPTT, masking around the step.

Each loop runs rows ``b0:b1`` of the batch (one slice per thread, :func:`.common.in_parallel`)
over every step: the recurrent input ``h_in = h_{t-1} ⊙ recurrent_mask``, one product
``h_in @ U`` per step through numba's ``np.dot`` into a preallocated buffer, then the cell's
row step of :mod:`.cells` (picked by its buffer tuple when numba compiles the loop), then the
mask: a skipped step carries the state (h, and the LSTM's c) unchanged. BPTT mirrors it: a
skipped step passes dL/dh (and dL/dc) straight through and contributes no gradient. The input
projection and the weight gradients are big GEMMs outside the loops. Direction is the layer's:
``go_backwards`` hands the kernels a reversed view (:mod:`lstmkit.layers.recurrent`).

These run the GRU and the SimpleRNN at every batch size and the LSTM's training at B = 1
(wider LSTM batches take :mod:`.lstm_fm`). Nothing is allocated inside the loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import JIT as _JIT
from .cells import carry_over, carry_state, row_grad, row_step
from .common import (
    as_float,
    bool_or_dummy,
    check_shapes,
    float_or_dummy,
    in_parallel,
    input_projection,
    split,
)


@njit(**_JIT)
def forward_rows(b0, b1, cell, acts, xw, bias, h0, U, mask, has_mask, rmask, has_rmask, h_in, u,
                 hs, store):  # fmt: skip
    """Rows b0:b1 of the forward pass. ``xw (T, B, G)`` is x @ kernel (the step adds the bias);
    fills h_in (n, B, H), the cell's buffers and ``hs (T, B, H)``; ``u (B, G)`` is scratch for
    the recurrent product. Without ``store`` (inference) n = 1: step buffers reused each step."""
    T = xw.shape[0]
    H = h0.shape[1]
    z = np.empty(u.shape[1], u.dtype)  # one row's pre-activations (the LSTM's step)
    for t in range(T):
        s = t if store else 0
        hp = h0[b0:b1] if t == 0 else hs[t - 1, b0:b1]  # (nb, H) h_{t-1}
        hin = h_in[s, b0:b1]
        if has_rmask:
            for b in range(b1 - b0):
                for j in range(H):
                    hin[b, j] = hp[b, j] * rmask[b0 + b, j]
        else:
            hin[:] = hp
        np.dot(hin, U, u[b0:b1])  # (nb, G) the recurrent product
        for b in range(b0, b1):
            row_step(cell, acts, t, s, b, u[b], xw[t, b], bias, hp[b - b0], hs[t, b], z)
        if has_mask:
            carry_over(mask[t, b0:b1], hs[t, b0:b1], hp)
            carry_state(cell, mask[t, b0:b1], t, b0, b1)


@njit(**_JIT)
def backward_rows(b0, b1, cell, acts, dhs, has_dhs, dh, UT, mask, has_mask, rmask, has_rmask,
                  dh_prev):  # fmt: skip
    """Rows b0:b1 of BPTT. dh (B, H) holds dL/dh_T on entry and dL/dh0 on exit; fills the cell's
    ``dzx, dzr (T, B, G)``; dh_prev (B, H) is scratch."""
    dzx, dzr = cell[-2], cell[-1]
    T = dzr.shape[0]
    H = dh.shape[1]
    # the part of dL/dh_{t-1} that skips U: the GRU's rows write it; -0.0 is the additive
    # identity to the bit (x + 0.0 turns -0.0 into 0.0)
    blend = np.full((b1 - b0, H), -0.0, dh.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            if has_dhs:
                for j in range(H):
                    dh[b, j] += dhs[t, b, j]
            if not has_mask or mask[t, b]:
                row_grad(cell, acts, t, b, dh[b], blend[b - b0])
            else:  # a skipped step passes dh (and dc) straight through, no gradient
                dzx[t, b] = 0
                dzr[t, b] = 0
        np.dot(dzr[t, b0:b1], UT, dh_prev[b0:b1])  # (nb, H)
        for b in range(b0, b1):
            if has_mask and not mask[t, b]:
                continue  # dh[b] carries over unchanged
            if has_rmask:
                for j in range(H):
                    dh[b, j] = dh_prev[b, j] * rmask[b, j] + blend[b - b0, j]
            else:
                for j in range(H):
                    dh[b, j] = dh_prev[b, j] + blend[b - b0, j]


def prepare(fn, x, h0, c0, kernel, U, bias, mask, rmask, gates, bias_rows=(), contiguous=True):
    """Check shapes (the compiled loops do not) and cast to ``x``'s float type, C-contiguous (``x``
    too unless ``contiguous`` is False: the feature-major LSTM reads the layer's ``(T, B, D)``
    view as it is). ``c0``: the LSTM's, else None; ``gates``: G / H. Returns
    ``(x, h0, c0, kernel, U, bias)``."""
    x = np.asarray(x)
    if x.dtype != np.float32 and x.dtype != np.float64:
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x) if contiguous else x
    if x.ndim != 3:
        raise ValueError(f"{fn}: argument 'x' must have shape (T, B, D); got {x.shape}")
    dt = x.dtype
    h0, kernel, U, bias = (
        as_float(h0, dt),
        as_float(kernel, dt),
        as_float(U, dt),
        as_float(bias, dt),
    )
    c0 = None if c0 is None else as_float(c0, dt)
    T, B, D = x.shape
    H = h0.shape[-1] if h0.ndim == 2 else U.shape[0]
    G = gates * H
    check_shapes(
        fn,
        h0=(h0, (B, H)),
        c0=(c0, (B, H)),  # (None: not checked)
        kernel=(kernel, (D, G)),
        recurrent_kernel=(U, (H, G)),
        bias=(bias, (*bias_rows, G)),
        mask=(mask, (T, B)),
        recurrent_mask=(rmask, (B, H)),
    )
    return x, h0, c0, kernel, U, bias


def forward(cell, acts, x, kernel, bias, h0, U, mask, rmask, hs, h_in, store=True) -> None:
    """Run :func:`forward_rows` over the batch, rows split among the threads: ``x (T, B, D)``
    C-contiguous, fills ``hs (T, B, H)``, ``h_in`` and the cell's buffers."""
    T, B, _ = x.shape
    H, G = U.shape
    xw = np.empty((T, B, G), dtype=x.dtype)
    input_projection(x, kernel, xw)  # x @ kernel for all steps at once: one GEMM (per thread)
    u = np.empty((B, G), dtype=x.dtype)
    m, has_m = bool_or_dummy(mask)
    rm, has_rm = float_or_dummy(rmask, x.dtype)

    def loop(b0, b1):
        forward_rows(b0, b1, cell, acts, xw, bias, h0, U, m, has_m, rm, has_rm, h_in, u, hs, store)

    in_parallel(split(B, T * B * G * H), loop, B * G * H)


def backward(cell, acts, dhs, dh_T, U, mask, rmask) -> np.ndarray:
    """Run :func:`backward_rows` over the batch from dL/dhs ``(T, B, H)`` and dL/dh_T (either
    None: zero); fills the cell's ``dzx, dzr`` and returns dL/dh0 ``(B, H)``."""
    T, B, G = cell[-1].shape
    H = U.shape[0]
    dt = cell[-1].dtype
    dh = np.zeros((B, H), dt) if dh_T is None else np.array(dh_T, dtype=dt, order="C")
    has_dhs = dhs is not None
    dhs_ = as_float(dhs, dt) if has_dhs else np.zeros((1, 1, 1), dt)
    m, has_m = bool_or_dummy(mask)
    rm, has_rm = float_or_dummy(rmask, dt)
    UT = np.ascontiguousarray(U.T)  # (G, H) so the loop's product is a plain row-major GEMM
    dh_prev = np.empty((B, H), dtype=dt)

    def loop(b0, b1):
        backward_rows(b0, b1, cell, acts, dhs_, has_dhs, dh, UT, m, has_m, rm, has_rm,
                      dh_prev)  # fmt: skip

    in_parallel(split(B, T * B * G * H), loop, B * G * H)
    return dh
