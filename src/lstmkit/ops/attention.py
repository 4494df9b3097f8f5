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

Below them, the pieces Keras' attention layers are made of (``lstmkit.layers.attention``): the
score functions ``dot_scores_*`` (``scale * q @ kᵀ`` with a learnt scale) and ``tanh_scores_*``
(``Σ outer * tanh(inner * (q + k))``: Keras' "concat" and AdditiveAttention), and
``weighted_sum_*`` (masked softmax, dropout, ``@ v``), each forward with its backward under it.
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


# -- the score functions of Keras' attention layers, and the softmax-weighted sum they share ------
#
#   dot       s = scale * q @ kᵀ                                (Luong; scale a learnt scalar or 1)
#   concat    s = w * Σ_d tanh(scale * (q_d + k_d))             (Keras' "concat"; w a learnt scalar)
#   additive  s = Σ_d scale_d * tanh(q_d + k_d)                 (Bahdanau; scale a learnt (D,))
#
# then a = softmax(s - 1e9 * (1 - mask)), w = a * keep (dropout, keep = 0 or 1/(1-rate)) and
# out = w @ v. Each forward returns its cache; the backward below it takes only that cache.


class DotScoresCache(NamedTuple):
    q: np.ndarray  # (B, Tq, D)
    k: np.ndarray  # (B, Tv, D)
    raw: np.ndarray | None  # (B, Tq, Tv) q @ kᵀ, kept when scale is learnt
    scale: np.ndarray | None  # () or None


def dot_scores_forward(q, k, scale=None):
    """``s = scale * q @ kᵀ`` (``scale`` None: 1) -> ``s (B, Tq, Tv)``, cache."""
    raw = np.matmul(q, np.swapaxes(k, -1, -2))  # (B, Tq, Tv)
    if scale is None:
        return raw, DotScoresCache(q, k, None, None)
    return raw * scale, DotScoresCache(q, k, raw, scale)


def dot_scores_backward(ds, cache: DotScoresCache):
    """-> ``dq, dk, dscale`` (``dscale`` None without a scale)."""
    q, k, raw, scale = cache
    dscale = None
    if scale is not None:
        dscale = np.sum(ds * raw).astype(ds.dtype).reshape(np.shape(scale))
        ds = ds * scale
    return np.matmul(ds, k), np.matmul(np.swapaxes(ds, -1, -2), q), dscale


class TanhScoresCache(NamedTuple):
    t: np.ndarray  # (B, Tq, Tv, D) tanh(inner * (q + k))
    u: np.ndarray | None  # (B, Tq, Tv, D) q + k, kept when inner is learnt
    inner: np.ndarray | None  # () scale inside the tanh (concat), or None
    outer: np.ndarray | None  # () concat_score_weight or (D,) additive scale, or None


def tanh_scores_forward(q, k, inner=None, outer=None):
    """``s = Σ_d outer * tanh(inner * (q + k))`` over the last axis, broadcast over every
    (query, key) pair -> ``s (B, Tq, Tv)``, cache. Keras' "concat" is ``outer`` =
    ``concat_score_weight`` (a scalar: the same as scaling the sum) with ``inner`` = its
    ``scale``; AdditiveAttention is ``outer`` = its ``scale (D,)``. None: 1."""
    u = q[:, :, None, :] + k[:, None, :, :]  # (B, Tq, Tv, D)
    t = np.tanh(u if inner is None else u * inner)
    s = (t if outer is None else t * outer).sum(axis=-1)  # (B, Tq, Tv)
    return s, TanhScoresCache(t, u if inner is not None else None, inner, outer)


def tanh_scores_backward(ds, cache: TanhScoresCache):
    """-> ``dq, dk, dinner, douter`` (None for a factor that was None)."""
    t, u, inner, outer = cache
    g = ds[..., None]  # (B, Tq, Tv, 1)
    douter = None
    if outer is not None:
        douter = np.sum(g * t, axis=(0, 1, 2)).astype(ds.dtype)  # (D,)
        if np.ndim(outer) == 0:
            douter = douter.sum().reshape(())
        g = g * outer
    du = g * (1 - t * t)  # through tanh, from its stored output
    dinner = None
    if inner is not None:
        dinner = np.sum(du * u).astype(ds.dtype).reshape(())
        du = du * inner
    return du.sum(axis=2), du.sum(axis=1), dinner, douter


class WeightedSumCache(NamedTuple):
    a: np.ndarray  # (B, Tq, Tv) softmax output
    keep: np.ndarray | None  # (B, Tq, Tv) dropout factors (0 or 1/(1-rate)), or None
    w: np.ndarray  # (B, Tq, Tv) a * keep: the weights applied (and returned)
    v: np.ndarray  # (B, Tv, Dv)


def weighted_sum_forward(scores, v, mask=None, keep=None):
    """``a = masked_softmax(scores)``, ``w = a * keep``, ``out = w @ v`` -> ``out, w, cache``."""
    a = masked_softmax(scores, mask)
    w = a if keep is None else a * keep
    return np.matmul(w, v), w, WeightedSumCache(a, keep, w, v)


def weighted_sum_backward(dout, cache: WeightedSumCache, dw=None):
    """-> ``dscores, dv`` for ``dout (B, Tq, Dv)`` and an optional ``dw (B, Tq, Tv)``."""
    a, keep, w, v = cache
    dwt = np.matmul(dout, np.swapaxes(v, -1, -2))  # (B, Tq, Tv)
    if dw is not None:
        dwt = dwt + dw
    dv = np.matmul(np.swapaxes(w, -1, -2), dout)  # (B, Tv, Dv)
    da = dwt if keep is None else dwt * keep
    return softmax_backward(da, a), dv
