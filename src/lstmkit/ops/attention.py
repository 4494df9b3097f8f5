"""Dot-product attention: forward and its exact backward (the core the attention layers and the
translation decoder share).

Equations (batch-major; ``q (B, Tq, D)``, ``k (B, Tv, D)``, ``v (B, Tv, Dv)``)::

    s = scale * q @ kᵀ                          # (B, Tq, Tv) scores
    s = s - 1e9 * (1 - mask)                     # masked keys (Keras' convention)
    a = softmax(s, axis=-1)                      # (B, Tq, Tv) attention weights
    out = a @ v                                  # (B, Tq, Dv) context

``mask`` broadcasts to ``(B, Tq, Tv)``, True where a query may attend to a key (a padding mask
``(B, 1, Tv)``, a causal mask ``(1, Tq, Tv)``, or both combined). As in Keras, a query whose
keys are all masked gets uniform weights (its scores all become -1e9 in float32; in float64 the
scores still tell apart), not NaN.

Luong's "general" score ``qᵀ W k`` is this op on ``k @ W``; Luong "dot" is ``scale=1``; the
scaled dot product of Vaswani et al. is ``scale=1/sqrt(D)``.

Backward (``da`` from ``out`` plus any gradient on the returned weights)::

    da = dout @ vᵀ (+ dweights)                 dv = aᵀ @ dout
    ds = a * (da - sum(da * a, axis=-1))        (the softmax Jacobian; masked entries get ~0)
    dq = scale * ds @ k                         dk = scale * dsᵀ @ q
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: what Keras subtracts from masked scores (``keras.layers.Attention._apply_scores``)
MASK_PENALTY = 1.0e9


class AttentionCache(NamedTuple):
    """What backward needs: the inputs, the weights and the scale."""

    q: np.ndarray  # (B, Tq, D)
    k: np.ndarray  # (B, Tv, D)
    v: np.ndarray  # (B, Tv, Dv)
    weights: np.ndarray  # (B, Tq, Tv) softmax output
    scale: float


def masked_softmax(scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Softmax over the last axis after subtracting ``MASK_PENALTY`` where ``mask`` is False."""
    if mask is not None:
        scores = scores - MASK_PENALTY * (~np.asarray(mask, dtype=bool)).astype(scores.dtype)
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Gradient through ``a = softmax(s)`` over the last axis: ``a * (da - Σ da·a)``."""
    return a * (da - np.sum(da * a, axis=-1, keepdims=True))


def attention_forward(q, k, v, mask=None, scale: float = 1.0):
    """-> ``out (B, Tq, Dv)``, ``weights (B, Tq, Tv)``, :class:`AttentionCache`."""
    scores = np.matmul(q, np.swapaxes(k, -1, -2))  # (B, Tq, Tv)
    if scale != 1.0:
        scores = scores * np.asarray(scale, dtype=scores.dtype)
    a = masked_softmax(scores, mask)
    out = np.matmul(a, v)  # (B, Tq, Dv)
    return out, a, AttentionCache(q, k, v, a, scale)


def attention_backward(dout, cache: AttentionCache, dweights=None):
    """-> ``dq, dk, dv`` for ``dout (B, Tq, Dv)`` and an optional ``dweights (B, Tq, Tv)``."""
    q, k, v, a, scale = cache
    da = np.matmul(dout, np.swapaxes(v, -1, -2))  # (B, Tq, Tv)
    if dweights is not None:
        da = da + dweights
    dv = np.matmul(np.swapaxes(a, -1, -2), dout)  # (B, Tv, Dv)
    ds = softmax_backward(da, a)
    if scale != 1.0:
        ds = ds * np.asarray(scale, dtype=ds.dtype)
    dq = np.matmul(ds, k)  # (B, Tq, D)
    dk = np.matmul(np.swapaxes(ds, -1, -2), q)  # (B, Tv, D)
    return dq, dk, dv
