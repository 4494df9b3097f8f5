"""Label-smoothed cross-entropy over a vocabulary, fused with its gradient, in the logits' dtype.

For ``logits (N, V)``, targets ``y (N,)`` and smoothing ε (PyTorch's ``F.cross_entropy(...,
label_smoothing=ε)`` with ``reduction="mean"``)::

    log p_j = z_j - max(z) - log Σ_k exp(z_k - max(z))
    loss    = mean_n [ (1 - ε) (-log p_{n, y_n}) + ε mean_j (-log p_{n, j}) ]
    dz      = (softmax(z) - (1 - ε) onehot(y) - ε / V) / N

The softmax is computed in place over the logits (the largest array of a training step: no
second (N, V) temporary, no float64 copy).
"""

from __future__ import annotations

import numpy as np


def smoothed_cross_entropy(logits: np.ndarray, y: np.ndarray, smoothing: float = 0.0):
    """-> ``(loss float, d_logits (N, V))``; ``logits`` is overwritten (it becomes the gradient)."""
    N, V = logits.shape
    if N == 0:
        raise ValueError("smoothed_cross_entropy: argument 'y' has no targets (all PAD)")
    dt = logits.dtype.type
    rows = np.arange(N)
    z_y = logits[rows, y].astype(np.float64)  # (N,)
    z_sum = logits.sum(axis=1, dtype=np.float64)  # (N,) Σ_j z_j, for the smoothing term
    m = logits.max(axis=1, keepdims=True)  # (N, 1)
    logits -= m
    np.exp(logits, out=logits)
    s = logits.sum(axis=1, keepdims=True)  # (N, 1)
    logits *= 1 / s  # the softmax, in place
    lse = np.log(s[:, 0].astype(np.float64)) + m[:, 0]  # (N,) log Σ exp z
    nll = lse - z_y
    smooth = lse - z_sum / V  # mean_j (-log p_j)
    loss = float(np.mean((1 - smoothing) * nll + smoothing * smooth))
    if smoothing:
        logits -= dt(smoothing / V)
    logits[rows, y] -= dt(1 - smoothing)
    logits *= dt(1 / N)
    return loss, logits
