"""The decoder of :class:`~.translate_model.Translator` over a whole teacher-forced target, forward
and backward, arranged for speed: the same equations as ``Translator.decoder_step`` (module
docstring of :mod:`.translate_model`), with every product that does not sit on the recurrence
taken out of the step loop. ``T`` steps, ``B`` rows, ``E`` embedding, ``Hd`` decoder units,
``M = 2He`` encoder outputs per source token, ``S`` source tokens.

Packed steps: the batch's rows are sorted by decreasing target length (the caller does it), so
step ``t`` runs only the first ``rows[t]`` rows, those whose sentence has a label at ``t`` (a
step after a sentence's last label feeds nothing that is scored: skipping it is exact). Per-step
arrays are packed, step after step, ``N = Σ rows`` rows in all, exactly the scored targets.

The decoder LSTM's input is ``x_t = [e_t; h~_{t-1}]`` with ``kernel = [K_e; K_f]`` split by rows,
so (with ``U`` the recurrent kernel)::

    z_t = (e_t @ K_e + b)  +  [h~_{t-1}; h_{t-1}] @ [K_f; U]          # (rows[t], 4H)
          one product for all steps    the only LSTM product in the loop

Backward, per step only what the recurrence needs (``dz_t @ [K_f; U]ᵀ`` -> ``d h~_{t-1}``,
``d h_{t-1}``; ``d_pre @ W_combᵀ``; the attention's ``ds @ k``); after the loop, one product each
for the gradients of ``kernel``, ``recurrent_kernel``, ``bias``, ``combine.kernel``, the target
embeddings, and the attention's keys and values (summed over the steps as one batched product:
``d keys = Σ_t ds_t h_tᵀ = DSᵀ @ H``, ``d enc = Σ_t a_t dctx_tᵀ = Aᵀ @ DCTX``).

Products with at most 64 rows (one step of the batch) use BLAS poorly and spread badly over
threads; the hoisted ones have ``N`` rows. Measured with ``benchmarks/translate_speed.py``
(docs/translate.md, "Training speed").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ops.attention import masked_softmax
from ..ops.lstm import lstm_cell, lstm_cell_backward, lstm_gates


class TeacherCache(NamedTuple):
    """Exactly what :func:`teacher_backward` needs. Packed arrays hold step ``t``'s rows at
    ``off[t]:off[t + 1]``; the batch-major ones are zero where a step did not run."""

    off: np.ndarray  # (T+1,) int: step t's rows in the packed arrays
    emb: np.ndarray  # (N, E) packed target embeddings after dropout
    hin: np.ndarray  # (N, 2Hd) packed [h~_{t-1}; h_{t-1}], the rows multiplied by [K_f; U]
    gates: np.ndarray  # (N, 4H) packed activated i, f, g, o
    c: np.ndarray  # (T+1, B, H) c[0] = c_0
    tanh_c: np.ndarray  # (N, H) packed
    att: np.ndarray  # (B, T, S) attention weights
    hs: np.ndarray  # (B, T, Hd) decoder LSTM outputs (the attention queries)
    cat: np.ndarray  # (N, M + Hd) packed [ctx_t; h_t]
    t: np.ndarray  # (N, Hd) packed tanh(cat @ W_comb), before dropout
    drop: np.ndarray | None  # (N, Hd) packed dropout multiplier on h~, or None


def offsets(rows) -> np.ndarray:
    """``rows (T,)`` rows run per step, non-increasing (the batch sorted by decreasing target
    length) -> ``(T+1,)`` where each step's rows start in the packed arrays."""
    rows = np.asarray(rows)
    if (np.diff(rows) > 0).any() or (rows < 0).any():
        raise ValueError(f"offsets: argument 'rows' must be non-increasing and >= 0; got {rows}")
    return np.concatenate([[0], np.cumsum(rows)])


def teacher_forward(model, h0, c0, emb, memory, drop, rows):
    """Packed ``emb (N, E)`` (after dropout; step ``t`` runs the first ``rows[t]`` rows of the
    batch), the initial state ``(B, Hd)`` twice, the encoder's ``memory`` and the packed h~
    dropout multiplier ``drop (N, Hd)`` or None -> packed ``h~ (N, Hd)``, :class:`TeacherCache`.
    """
    p, dt = model.params, model.dtype
    off = offsets(rows)
    N, E = emb.shape
    T, B, H = len(rows), h0.shape[0], h0.shape[1]
    M, S = memory.enc.shape[2], memory.enc.shape[1]
    kernel = p["decoder.kernel"]  # (E + Hd, 4H)
    w_rec = np.concatenate([kernel[E:], p["decoder.recurrent_kernel"]])  # (2Hd, 4H)
    w_comb = p["combine.kernel"]
    xe = emb @ kernel[:E] + p["decoder.bias"]  # (N, 4H)
    hin, gates, tanh_c = np.empty((N, 2 * H), dt), np.empty((N, 4 * H), dt), np.empty((N, H), dt)
    cat, tt, tilde = np.empty((N, M + H), dt), np.empty((N, H), dt), np.empty((N, H), dt)
    # zeros: the batched products of the backward read the (row, step) pairs not run
    c, hs, att = np.zeros((T + 1, B, H), dt), np.zeros((B, T, H), dt), np.zeros((B, T, S), dt)
    c[0] = c0
    hin[: rows[0], :H], hin[: rows[0], H:] = 0, h0[: rows[0]]
    keys, enc, mask = memory.keys, memory.enc, memory.mask[:, 0]
    for t in range(T):
        n, sl = rows[t], slice(off[t], off[t + 1])
        z = xe[sl] + hin[sl] @ w_rec  # (n, 4H)
        a = lstm_gates(z, H, out=gates[sl])
        h = lstm_cell(a, c[t, :n], out=(c[t + 1, :n], tanh_c[sl], hs[:n, t]))[2]  # (n, H)
        # Luong "general": scores = keys · h, masked softmax over the source, context = a @ enc
        scores = np.matmul(keys[:n], h[:, :, None])[:, :, 0]  # (n, S)
        att[:n, t] = masked_softmax(scores, mask[:n])
        cat[sl, :M] = np.matmul(att[:n, t, None, :], enc[:n])[:, 0]  # (n, M)
        cat[sl, M:] = h
        np.tanh(cat[sl] @ w_comb, out=tt[sl])
        tilde[sl] = tt[sl] if drop is None else tt[sl] * drop[sl]
        if t + 1 < T:
            m, nxt = rows[t + 1], off[t + 1]
            hin[nxt : nxt + m, :H], hin[nxt : nxt + m, H:] = tilde[sl][:m], h[:m]
    return tilde, TeacherCache(off, emb, hin, gates, c, tanh_c, att, hs, cat, tt, drop)


def teacher_backward(model, d_tilde, memory, cache: TeacherCache, grads):
    """Packed ``d_tilde (N, Hd)``, the loss's gradient on every h~ -> ``(d_emb (N, E) packed,
    d_h0 (B, Hd), d_c0 (B, Hd), d_keys (B, S, Hd), d_enc (B, S, M))``; the decoder's and the
    combination's parameter gradients go into ``grads``."""
    p = model.params
    off, emb, hin, gates, c, tanh_c, att, hs, cat, tt, drop = cache
    T, B, H = c.shape[0] - 1, c.shape[1], c.shape[2]
    E, M = emb.shape[1], memory.enc.shape[2]
    kernel = p["decoder.kernel"]
    w_rec = np.concatenate([kernel[E:], p["decoder.recurrent_kernel"]])  # (2Hd, 4H)
    w_comb = p["combine.kernel"]
    dz, d_pre = np.empty_like(gates), np.empty_like(tt)  # on z (N, 4H); through tanh (N, Hd)
    d_ctx, ds = np.zeros((B, T, M), model.dtype), np.zeros_like(att)  # ds on the scores
    # what flows back into step t from step t+1 (zero for rows whose sentence has ended)
    d_feed, dh, dc = (np.zeros((B, H), model.dtype) for _ in range(3))
    for t in range(T - 1, -1, -1):
        sl = slice(off[t], off[t + 1])
        n = sl.stop - sl.start
        d_t = d_tilde[sl] + d_feed[:n]
        if drop is not None:
            d_t *= drop[sl]
        d_pre[sl] = d_t * (1 - tt[sl] * tt[sl])
        d_cat = d_pre[sl] @ w_comb.T  # (n, M + Hd)
        d_ctx[:n, t] = d_cat[:, :M]
        # through the softmax: ds = a (da - Σ a da), da = enc · dctx
        da = np.matmul(memory.enc[:n], d_cat[:, :M, None])[:, :, 0]  # (n, S)
        a = att[:n, t]
        ds[:n, t] = a * (da - (a * da).sum(axis=1, keepdims=True))
        dq = np.matmul(ds[:n, t, None, :], memory.keys[:n])[:, 0]  # (n, Hd)
        dh_t = dh[:n] + d_cat[:, M:] + dq
        dc[:n] = lstm_cell_backward(
            dh_t, dc[:n], gates[sl], c[t, :n], c[t + 1, :n], tanh_c[sl], out=dz[sl]
        )
        d_hin = dz[sl] @ w_rec.T  # (n, 2Hd)
        d_feed[:n], dh[:n] = d_hin[:, :H], d_hin[:, H:]
    _weight_grads(p, emb, hin, dz, cat, d_pre, grads)
    d_emb = dz @ kernel[:E].T  # (N, E)
    d_keys = np.matmul(ds.transpose(0, 2, 1), hs)  # (B, S, Hd) = Σ_t ds_t ⊗ h_t
    d_enc = np.matmul(att.transpose(0, 2, 1), d_ctx)  # (B, S, M) = Σ_t a_t ⊗ dctx_t
    return d_emb, dh, dc, d_keys, d_enc


def _weight_grads(p, emb, hin, dz, cat, d_pre, grads):
    """The decoder LSTM's and the combination's weight gradients, one product each over all
    ``N`` packed rows."""
    H = hin.shape[1] // 2
    w_rec = hin.T @ dz  # (2Hd, 4H): [d K_f; d U]
    grads["decoder.kernel"] = np.concatenate([emb.T @ dz, w_rec[:H]])
    grads["decoder.recurrent_kernel"] = np.ascontiguousarray(w_rec[H:])
    grads["decoder.bias"] = dz.sum(axis=0)
    grads["combine.kernel"] = cat.T @ d_pre
