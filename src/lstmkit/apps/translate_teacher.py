"""The decoder of :class:`~.translate_model.Translator` over a whole teacher-forced target, forward
and backward, arranged for speed: the same equations as ``Translator.decoder_step`` (module
docstring of :mod:`.translate_model`), with every product that does not sit on the recurrence
taken out of the step loop. Time-major: ``T`` steps, ``B`` rows, ``E`` embedding, ``Hd`` decoder
units, ``M = 2He`` encoder outputs per source token, ``S`` source tokens.

The decoder LSTM's input is ``x_t = [e_t; h~_{t-1}]`` with ``kernel = [K_e; K_f]`` split by rows,
so (with ``U`` the recurrent kernel)::

    z_t = (e_t @ K_e + b)  +  [h~_{t-1}; h_{t-1}] @ [K_f; U]          # (B, 4H)
          one product for all steps    the only product in the loop

Backward, per step only what the recurrence needs (``dz_t @ [K_f; U]ᵀ`` -> ``d h~_{t-1}``,
``d h_{t-1}``; ``d_pre @ W_combᵀ``; the attention's ``ds @ k``); after the loop, one product each
for the gradients of ``kernel``, ``recurrent_kernel``, ``bias``, ``combine.kernel``, the target
embeddings, and the attention's keys and values (summed over the steps as one batched product:
``d keys = Σ_t ds_t h_tᵀ = DSᵀ @ H``, ``d enc = Σ_t a_t dctx_tᵀ = Aᵀ @ DCTX``).

Per-step products with 64 rows (the batch) use BLAS poorly; the hoisted ones have ``T * B`` rows.
Measured with ``benchmarks/translate_speed.py`` (docs/translate.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ops.activations import sigmoid
from ..ops.attention import masked_softmax


class TeacherCache(NamedTuple):
    """Exactly what :func:`teacher_backward` needs (time-major). Rows ``rows[t]:`` of step ``t``
    are never computed (their sentences have ended) and stay zero."""

    rows: np.ndarray  # (T,) int: how many (leading) rows step t runs
    emb: np.ndarray  # (T, B, E) target embeddings after dropout
    hin: np.ndarray  # (T, B, 2Hd) [h~_{t-1}; h_{t-1}], the rows multiplied by [K_f; U]
    gates: np.ndarray  # (T, B, 4H) activated i, f, g, o
    c: np.ndarray  # (T+1, B, H) c[0] = c_0
    tanh_c: np.ndarray  # (T, B, H)
    att: np.ndarray  # (B, T, S) attention weights
    hs: np.ndarray  # (B, T, Hd) decoder LSTM outputs (the attention queries)
    cat: np.ndarray  # (T, B, M + Hd) [ctx_t; h_t]
    t: np.ndarray  # (T, B, Hd) tanh(cat @ W_comb), before dropout
    drop: np.ndarray | None  # (T, B, Hd) dropout multiplier on h~, or None


def steps_rows(lengths, T: int) -> np.ndarray:
    """``lengths (B,)`` scored steps per row, in non-increasing order -> ``(T,)`` the number of
    rows each step must run (a sentence's steps after its last label feed nothing scored)."""
    lengths = np.asarray(lengths)
    if lengths.size and (np.diff(lengths) > 0).any():
        raise ValueError(
            f"steps_rows: argument 'lengths' must be in non-increasing order; got {lengths}"
        )
    return (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1)


def teacher_forward(model, h0, c0, emb, memory, drop, rows):
    """``emb (T, B, E)`` (after dropout), the initial state, the encoder's ``memory``, the h~
    dropout multiplier ``drop (T, B, Hd)`` or None and ``rows (T,)`` (:func:`steps_rows`) ->
    ``h~ (T, B, Hd)`` (zero on the steps not run), :class:`TeacherCache`."""
    p, dt = model.params, model.dtype
    T, B, E = emb.shape
    H, M, S = h0.shape[1], memory.enc.shape[2], memory.enc.shape[1]
    kernel = p["decoder.kernel"]  # (E + Hd, 4H)
    w_rec = np.concatenate([kernel[E:], p["decoder.recurrent_kernel"]])  # (2Hd, 4H)
    w_comb = p["combine.kernel"]
    xe = (emb.reshape(T * B, E) @ kernel[:E] + p["decoder.bias"]).reshape(T, B, 4 * H)
    # zeros, not empty: the hoisted products of the backward read the rows not run
    hin, gates = np.zeros((T, B, 2 * H), dt), np.zeros((T, B, 4 * H), dt)
    c, tanh_c = np.zeros((T + 1, B, H), dt), np.zeros((T, B, H), dt)
    hs, att = np.zeros((B, T, H), dt), np.zeros((B, T, S), dt)
    cat, tt, tilde = np.zeros((T, B, M + H), dt), np.zeros((T, B, H), dt), np.zeros((T, B, H), dt)
    c[0], hin[0, :, H:] = c0, h0
    keys, enc, mask = memory.keys, memory.enc, memory.mask[:, 0]
    for t, n in enumerate(rows):
        z = xe[t, :n] + hin[t, :n] @ w_rec  # (n, 4H)
        a = gates[t, :n]
        a[...] = sigmoid(z)
        np.tanh(z[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c[t + 1, :n] = f * c[t, :n] + i * g
        np.tanh(c[t + 1, :n], out=tanh_c[t, :n])
        h = hs[:n, t] = o * tanh_c[t, :n]  # (n, H)
        # Luong "general": scores = keys · h, masked softmax over the source, context = a @ enc
        scores = np.matmul(keys[:n], h[:, :, None])[:, :, 0]  # (n, S)
        att[:n, t] = masked_softmax(scores, mask[:n])
        cat[t, :n, :M] = np.matmul(att[:n, t, None, :], enc[:n])[:, 0]  # (n, M)
        cat[t, :n, M:] = h
        np.tanh(cat[t, :n] @ w_comb, out=tt[t, :n])
        tilde[t, :n] = tt[t, :n] if drop is None else tt[t, :n] * drop[t, :n]
        if t + 1 < T:
            m = rows[t + 1]
            hin[t + 1, :m, :H], hin[t + 1, :m, H:] = tilde[t, :m], h[:m]
    return tilde, TeacherCache(rows, emb, hin, gates, c, tanh_c, att, hs, cat, tt, drop)


def teacher_backward(model, d_tilde, memory, cache: TeacherCache, grads):
    """``d_tilde (T, B, Hd)`` the loss's gradient on every h~ -> ``(d_emb (T, B, E), d_h0,
    d_c0, d_keys (B, S, Hd), d_enc (B, S, M))``; the decoder's and the combination's parameter
    gradients go into ``grads``."""
    p = model.params
    rows, emb, hin, gates, c, tanh_c, att, hs, cat, tt, drop = cache
    T, B, E = emb.shape
    H, M = c.shape[2], memory.enc.shape[2]
    kernel = p["decoder.kernel"]
    w_rec = np.concatenate([kernel[E:], p["decoder.recurrent_kernel"]])  # (2Hd, 4H)
    w_comb = p["combine.kernel"]
    dz, d_pre = np.zeros_like(gates), np.zeros_like(tt)  # on z (T, B, 4H); through tanh
    d_ctx, ds = np.zeros((B, T, M), model.dtype), np.zeros_like(att)  # ds on the scores
    # what flows back into step t from step t+1 (zero for rows whose sentence has ended)
    d_feed, dh, dc = (np.zeros((B, H), model.dtype) for _ in range(3))
    for t in range(T - 1, -1, -1):
        n = rows[t]
        d_t = d_tilde[t, :n] + d_feed[:n]
        if drop is not None:
            d_t *= drop[t, :n]
        d_pre[t, :n] = d_t * (1 - tt[t, :n] * tt[t, :n])
        d_cat = d_pre[t, :n] @ w_comb.T  # (n, M + Hd)
        d_ctx[:n, t] = d_cat[:, :M]
        # through the softmax: ds = a (da - Σ a da), da = enc · dctx
        da = np.matmul(memory.enc[:n], d_cat[:, :M, None])[:, :, 0]  # (n, S)
        a = att[:n, t]
        ds[:n, t] = a * (da - (a * da).sum(axis=1, keepdims=True))
        dq = np.matmul(ds[:n, t, None, :], memory.keys[:n])[:, 0]  # (n, Hd)
        dh_t = dh[:n] + d_cat[:, M:] + dq
        dc[:n] = _cell_backward(dh_t, dc[:n], gates[t, :n], c[t, :n], tanh_c[t, :n], dz[t, :n])
        d_hin = dz[t, :n] @ w_rec.T  # (n, 2Hd)
        d_feed[:n], dh[:n] = d_hin[:, :H], d_hin[:, H:]
    _weight_grads(p, emb, hin, dz, cat, d_pre, grads)
    d_emb = (dz.reshape(T * B, 4 * H) @ kernel[:E].T).reshape(T, B, E)
    d_keys = np.matmul(ds.transpose(0, 2, 1), hs)  # (B, S, Hd) = Σ_t ds_t ⊗ h_t
    d_enc = np.matmul(att.transpose(0, 2, 1), d_ctx)  # (B, S, M) = Σ_t a_t ⊗ dctx_t
    return d_emb, dh, dc, d_keys, d_enc


def _cell_backward(dh, dc, a, c_prev, tanh_c, d):
    """The LSTM cell's pointwise backward (sigmoid i, f, o; tanh g; ``c = f c_prev + i g``,
    ``h = o tanh(c)``): writes ``dz`` into ``d (B, 4H)``, returns ``d c_prev``."""
    H = c_prev.shape[1]
    i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    dc_t = dc + dh * o * (1 - tanh_c * tanh_c)
    d[:, :H] = dc_t * g * i * (1 - i)
    d[:, H : 2 * H] = dc_t * c_prev * f * (1 - f)
    d[:, 2 * H : 3 * H] = dc_t * i * (1 - g * g)
    d[:, 3 * H :] = dh * tanh_c * o * (1 - o)
    return dc_t * f


def _weight_grads(p, emb, hin, dz, cat, d_pre, grads):
    """The decoder LSTM's and the combination's weight gradients, one product each over all
    ``T * B`` rows."""
    T, B, E = emb.shape
    H = hin.shape[2] // 2
    dz2 = dz.reshape(T * B, -1)
    w_rec = hin.reshape(T * B, 2 * H).T @ dz2  # (2Hd, 4H): [d K_f; d U]
    grads["decoder.kernel"] = np.concatenate([emb.reshape(T * B, E).T @ dz2, w_rec[:H]])
    grads["decoder.recurrent_kernel"] = np.ascontiguousarray(w_rec[H:])
    grads["decoder.bias"] = dz2.sum(axis=0)
    grads["combine.kernel"] = cat.reshape(T * B, -1).T @ d_pre.reshape(T * B, -1)
