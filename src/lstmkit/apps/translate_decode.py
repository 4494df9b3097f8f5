"""Batched greedy and beam-search decoding of a :class:`~.translate_model.Translator`.

The encoder runs once per batch; every step is the model's own ``decoder_step`` (the one the
trainer differentiates), in inference mode (the streaming LSTM step, no dropout).

Beam search keeps ``K`` live hypotheses per sentence. A hypothesis that emits ``EOS`` is
finished; its score is its total log-probability divided by ``length ** alpha`` (length = tokens
emitted, EOS included; ``alpha = 0``: raw log-probability, ``alpha = 1``: the mean per token,
the default). Hypotheses still alive after ``max_len`` tokens are scored the same way. A
sentence stops early only when no live hypothesis can beat its best finished one: log p only
falls as a hypothesis grows, so ``score / max_len ** alpha`` bounds what a live hypothesis
can still reach, and stopping there returns what running to ``max_len`` would.

Outputs are token-id lists without ``BOS`` and ``EOS``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .translate_model import BOS, EOS, PAD, DecoderState, Memory, Translator


class Decoded(NamedTuple):
    tokens: list  # per sentence: list of int ids (no BOS/EOS)
    # (B,) log-probability of each output (EOS included) / length ** alpha; greedy: alpha = 1
    scores: np.ndarray
    attention: list | None  # per sentence: (len(tokens) + 1, source length) or None


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _step(model: Translator, state, y, memory):
    """Feed ``y (N,)`` -> ``(state, log p (N, Vt), attention (N, S))``."""
    emb = model.params["tgt_embedding.embeddings"][y]
    state, h_tilde, att, _ = model.decoder_step(state, emb, memory)
    return state, _log_softmax(model.output_logits(h_tilde)), att


def _check(src, max_len, beam, alpha):
    src = np.asarray(src)
    if src.ndim != 2 or src.shape[0] == 0:
        raise ValueError(
            f"decode: argument 'src' must have shape (batch >= 1, tokens); got {src.shape}"
        )
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"decode: argument 'max_len' must be a positive int; got {max_len!r}")
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ValueError(f"decode: argument 'beam' must be a positive int; got {beam!r}")
    if not isinstance(alpha, (int, float)) or not 0 <= alpha <= 10:
        raise ValueError(f"decode: argument 'alpha' must be a number in [0, 10]; got {alpha!r}")
    return src


def greedy_decode(model: Translator, src, max_len=None, return_attention=False) -> Decoded:
    """The most probable token at each step, for a padded batch ``src (B, S)``."""
    max_len = model.config.decode_max_len if max_len is None else max_len
    src = _check(src, max_len, 1, 0)
    memory, state, _ = model.encode(src)
    B = src.shape[0]
    y = np.full(B, BOS)
    out = np.full((B, max_len), PAD)
    logp_sum, length = np.zeros(B), np.zeros(B, int)
    done = np.zeros(B, bool)
    atts = []
    for t in range(max_len):
        state, logp, att = _step(model, state, y, memory)
        y = logp.argmax(axis=1)
        logp_sum += np.where(done, 0, logp[np.arange(B), y])
        length += ~done
        out[:, t] = np.where(done, PAD, y)
        atts.append(att)
        done |= y == EOS
        if done.all():
            break
    tokens = [_strip(row) for row in out]
    att = _per_sentence(np.stack(atts, 1), tokens, src) if return_attention else None
    return Decoded(tokens, logp_sum / length, att)


def _strip(row) -> list:
    row = list(map(int, row))
    return row[: row.index(EOS)] if EOS in row else [t for t in row if t != PAD]


def _per_sentence(att, tokens, src) -> list:
    """``att (B, steps, S)`` -> per sentence ``(len(tokens) + 1, source length)``."""
    lengths = (np.asarray(src) != PAD).sum(1)
    return [att[b, : len(tokens[b]) + 1, : lengths[b]] for b in range(len(tokens))]


def _repeat(memory: Memory, state: DecoderState, K: int):
    return Memory(*(np.repeat(a, K, axis=0) for a in memory)), DecoderState(
        *(np.repeat(a, K, axis=0) for a in state)
    )


class _Best:
    """The best finished hypothesis of each sentence so far."""

    def __init__(self, B):
        self.score = np.full(B, -np.inf)
        self.tokens = [[] for _ in range(B)]
        self.att = [None] * B

    def offer(self, scores, b_idx, hyps, atts):
        for s, b, h, a in zip(scores, b_idx, hyps, atts):
            if s > self.score[b]:
                self.score[b], self.tokens[b], self.att[b] = s, h, a


def beam_search(
    model: Translator, src, beam=None, max_len=None, alpha=None, return_attention=False
) -> Decoded:
    """Beam search of width ``beam`` over a padded batch ``src (B, S)`` (module docstring)."""
    cfg = model.config
    K = cfg.beam if beam is None else beam
    max_len = cfg.decode_max_len if max_len is None else max_len
    alpha = cfg.length_alpha if alpha is None else alpha
    src = _check(src, max_len, K, alpha)
    B, S = src.shape
    memory, state, _ = model.encode(src)
    memory, state = _repeat(memory, state, K)
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0  # one live hypothesis to start with
    hist = np.zeros((B * K, 0), int)
    att_hist = np.zeros((B * K, 0, S), model.dtype)
    y, best, alive = np.full(B * K, BOS), _Best(B), np.ones(B, bool)
    for t in range(max_len):
        state, logp, att = _step(model, state, y, memory)
        V = logp.shape[1]
        cand = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
        top = np.argpartition(-cand, 2 * K - 1, axis=1)[:, : 2 * K] if K * V > 2 * K else None
        top = np.argsort(-cand, axis=1)[:, : 2 * K] if top is None else top
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(cand, top, 1), 1), 1)
        top_scores = np.take_along_axis(cand, top, 1)  # (B, 2K) best first
        beam_of, tok = top // V, top % V
        # as fairseq: an EOS finishes a hypothesis only from the top K candidates (so K = 1
        # is greedy search); the K best others live on
        eos = (tok == EOS) & np.isfinite(top_scores) & alive[:, None]
        final = eos & (np.arange(2 * K) < K)
        rows = np.arange(B)[:, None] * K + beam_of  # (B, 2K) index into the B*K hypotheses
        length = t + 1
        h_all = np.concatenate([hist[rows], tok[..., None]], axis=2)  # (B, 2K, t+1)
        a_all = None
        if return_attention:
            a_all = np.concatenate([att_hist, att[:, None]], axis=1)  # (B*K, t+1, S)
        b_idx, j_idx = np.nonzero(final)
        best.offer(
            top_scores[b_idx, j_idx] / length**alpha,
            b_idx,
            [list(map(int, h[:-1])) for h in h_all[b_idx, j_idx]],
            [None] * len(b_idx) if a_all is None else list(a_all[rows[b_idx, j_idx]]),
        )
        keep = np.argsort(eos, axis=1, kind="stable")[:, :K]  # the K best non-EOS candidates
        scores = np.take_along_axis(top_scores, keep, 1)
        sel = np.take_along_axis(rows, keep, 1).ravel()
        y = np.take_along_axis(tok, keep, 1).ravel()
        hist = np.take_along_axis(h_all, keep[..., None], 1).reshape(B * K, length)
        att_hist = a_all[sel] if return_attention else att_hist
        state = DecoderState(*(a[sel] for a in state))
        alive &= best.score < scores.max(axis=1) / max_len**alpha
        scores[~alive] = -np.inf
        if not alive.any():
            break
    else:  # hypotheses still alive at max_len are scored as they stand
        live = np.isfinite(scores)
        b_idx, k_idx = np.nonzero(live)
        best.offer(
            scores[b_idx, k_idx] / max_len**alpha,
            b_idx,
            [list(map(int, h)) for h in hist[b_idx * K + k_idx]],
            list(att_hist[b_idx * K + k_idx]) if return_attention else [None] * len(b_idx),
        )
    atts = None
    if return_attention:
        lengths = (src != PAD).sum(1)
        atts = [None if a is None else a[:, : lengths[b]] for b, a in enumerate(best.att)]
    return Decoded(best.tokens, best.score, atts)


def translate_ids(
    model: Translator,
    sources,
    beam=1,
    max_len=None,
    alpha=None,
    batch_size=None,
    return_attention=False,
) -> Decoded:
    """Decode a list of source id sequences in length-sorted batches of ``batch_size`` (default:
    the model's) with greedy search (``beam == 1``) or beam search; results in input order."""
    from .translate_train import padded

    sources = [list(s) for s in sources]
    if not sources or min(map(len, sources)) == 0:
        raise ValueError("translate_ids: argument 'sources' must be non-empty id sequences")
    batch_size = batch_size or model.config.batch_size
    order = np.argsort([len(s) for s in sources], kind="stable")
    tokens, scores = [None] * len(sources), np.empty(len(sources))
    atts = [None] * len(sources) if return_attention else None
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        src = padded([sources[j] for j in idx])
        if beam == 1:
            out = greedy_decode(model, src, max_len, return_attention)
        else:
            out = beam_search(model, src, beam, max_len, alpha, return_attention)
        for k, j in enumerate(idx):
            tokens[j], scores[j] = out.tokens[k], out.scores[k]
            if return_attention:
                atts[j] = out.attention[k]
    return Decoded(tokens, scores, atts)
