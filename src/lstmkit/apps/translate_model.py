"""The translation model: a bidirectional LSTM encoder, an LSTM decoder with Luong "general"
attention and input feeding, exact forward and backward in NumPy (the recipe of issue 16).

Shapes: ``src (B, S)`` and ``tgt (B, T+1)`` are post-padded int token ids (``PAD = 0``); ``tgt``
starts with ``BOS`` and holds ``EOS``; the decoder reads ``tgt[:, :-1]`` and predicts
``tgt[:, 1:]``. ``E`` embedding size, ``He`` encoder units per direction, ``Hd`` decoder units.

Equations (gate order i, f, g, o; Keras role names; ``[a; b]`` concatenation)::

    x_s = E_src[src_s]                                       (dropout)
    h→_s = LSTM_fwd(x),  h←_s = LSTM_bwd(x) within each length   (masked; lstmkit.ops.lstm)
    m_s = [h→_s; h←_s]                   (B, S, 2He)       k_s = m_s @ W_a   (B, S, Hd)
    h_0 = tanh([h→_S; h←_1] @ W_h + b_h),   c_0 = [c→_S; c←_1] @ W_c0 + b_c0
    x_t = [E_tgt[y_{t-1}]; h~_{t-1}]     (input feeding, h~_0 = 0)
    h_t, c_t = LSTMCell(x_t, h_{t-1}, c_{t-1})
    a_t = softmax(h_t · k_s, source padding masked);   ctx_t = Σ_s a_ts m_s
    h~_t = tanh([ctx_t; h_t] @ W_comb)                 (dropout)
    logits = H~ @ W_out + b_out          one product over all non-pad steps, after the loop
    loss = mean over non-pad targets of (1-ε) (-log p_y) + ε mean_j (-log p_j)

Parameters (dotted names): ``src_embedding.embeddings (Vs, E)``, ``tgt_embedding.embeddings
(Vt, E)``, ``encoder_fwd`` / ``encoder_bwd`` / ``decoder`` ``.kernel .recurrent_kernel .bias``,
``init_h.kernel (2He, Hd)``, ``init_h.bias``, ``init_c.kernel``, ``init_c.bias``,
``attention.kernel (2He, Hd)``, ``combine.kernel (2He + Hd, Hd)``, ``output.kernel (Hd, Vt)``,
``output.bias (Vt,)``. Dropout (on both embeddings and on h~) runs only when an ``rng`` is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np

from ..ops.attention import attention_forward
from ..ops.backend import ops_for
from ..ops.sequence import reverse_sequences
from .translate_teacher import teacher_backward, teacher_forward

PAD, BOS, EOS, UNK = 0, 1, 2, 3


@dataclass(frozen=True)
class TranslatorConfig:
    """Every default of the recipe, once (architecture, training and decoding)."""

    embedding_dim: int = 256
    encoder_units: int = 256  # per direction
    decoder_units: int = 512
    dropout: float = 0.2
    label_smoothing: float = 0.1
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    batch_size: int = 64
    max_len: int = 30  # longest sentence kept for training, in tokens
    epochs: int = 100
    patience: int = 3  # epochs without improvement of the monitored metric before stopping
    pool_batches: int = 50  # batches per length-sorted pool
    beam: int = 5
    length_alpha: float = 1.0  # beam score = log p / length ** alpha
    decode_max_len: int = 60  # most tokens a decoder emits
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self):
        for name in ("embedding_dim", "encoder_units", "decoder_units", "batch_size", "max_len"):
            _check_positive_int(name, getattr(self, name))
        for name in ("epochs", "pool_batches", "beam", "decode_max_len"):
            _check_positive_int(name, getattr(self, name))
        for name in ("dropout", "label_smoothing"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ValueError(
                    f"TranslatorConfig: argument {name!r} must be in [0, 1); got {v!r}"
                )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(
                f"TranslatorConfig: argument 'dtype' must be 'float32' or 'float64'; "
                f"got {self.dtype!r}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> TranslatorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TranslatorConfig: unknown settings {unknown}")
        return cls(**d)


def _check_positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"TranslatorConfig: argument {name!r} must be a positive int; got {v!r}")


class Memory(NamedTuple):
    """What the encoder leaves for every decoder step."""

    enc: np.ndarray  # (B, S, 2He) the values attended to
    keys: np.ndarray  # (B, S, Hd) enc @ W_a
    mask: np.ndarray  # (B, 1, S) bool, True on real source tokens


class DecoderState(NamedTuple):
    h: np.ndarray  # (B, Hd)
    c: np.ndarray  # (B, Hd)
    feed: np.ndarray  # (B, Hd) h~ of the previous step (after dropout)


def _dropout(shape, rate, rng, dtype):
    """Inverted-dropout multiplier, or None when off."""
    if rng is None or rate == 0:
        return None
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))


def param_shapes(src_vocab: int, tgt_vocab: int, cfg: TranslatorConfig) -> dict:
    """``{name: shape}`` of every parameter (derived without allocating)."""
    E, He, Hd = cfg.embedding_dim, cfg.encoder_units, cfg.decoder_units
    shapes = {
        "src_embedding.embeddings": (src_vocab, E),
        "tgt_embedding.embeddings": (tgt_vocab, E),
    }
    for name, D, H in (("encoder_fwd", E, He), ("encoder_bwd", E, He), ("decoder", E + Hd, Hd)):
        shapes.update(
            {
                f"{name}.kernel": (D, 4 * H),
                f"{name}.recurrent_kernel": (H, 4 * H),
                f"{name}.bias": (4 * H,),
            }
        )
    for name in ("init_h", "init_c"):
        shapes.update({f"{name}.kernel": (2 * He, Hd), f"{name}.bias": (Hd,)})
    shapes["attention.kernel"] = (2 * He, Hd)
    shapes["combine.kernel"] = (2 * He + Hd, Hd)
    shapes["output.kernel"] = (Hd, tgt_vocab)
    shapes["output.bias"] = (tgt_vocab,)
    return shapes


def _init_params(shapes, dtype, rng) -> dict:
    """PyTorch's default initialisation: embeddings N(0, 1) with the PAD row zero, LSTMs
    U(±1/sqrt(H)) (the one bias is the sum of torch's two), Linear U(±1/sqrt(fan_in))."""
    params = {}
    for name, shape in shapes.items():
        layer, role = name.split(".")
        if role == "embeddings":
            p = rng.standard_normal(shape)
            p[PAD] = 0
        elif layer.startswith(("encoder", "decoder")):
            bound = 1 / np.sqrt(shapes[f"{layer}.recurrent_kernel"][0])
            p = rng.uniform(-bound, bound, shape)
            if role == "bias":  # torch's bias_ih + bias_hh: a sum of two, not U(±2 bound)
                p = p + rng.uniform(-bound, bound, shape)
        else:
            bound = 1 / np.sqrt(shapes[f"{layer}.kernel"][0])
            p = rng.uniform(-bound, bound, shape)
        params[name] = np.ascontiguousarray(p, dtype=dtype)
    return params


class Translator:
    """The model: parameters by dotted name, the encoder, the decoder step and the loss."""

    def __init__(self, src_vocab: int, tgt_vocab: int, config: TranslatorConfig | None = None):
        self.config = config or TranslatorConfig()
        for name, v in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= UNK:
                raise ValueError(f"Translator: argument {name!r} must be an int > 3; got {v!r}")
        self.src_vocab, self.tgt_vocab = int(src_vocab), int(tgt_vocab)
        self.dtype = np.dtype(self.config.dtype)
        shapes = param_shapes(self.src_vocab, self.tgt_vocab, self.config)
        self.params = _init_params(shapes, self.dtype, np.random.default_rng(self.config.seed))
        self.metadata: dict = {}
        # The NumPy reference LSTM, through ops_for: every product is one BLAS call, so BLAS's
        # threads serve the whole step. Measured (B=64, 1 thread, a busy machine): the compiled
        # feature-major kernels repack the weights at every call, which made the decoder's
        # one-step sequence 1.3x slower forward and 1.4x backward; for the encoder (T ~ 10)
        # they were no faster (whole train step 11.4-12.2 s against 11.8-14.0 s per 6 steps).
        self.lstm = ops_for("lstm", backend="numpy")

    def get_config(self) -> dict:
        return {
            "src_vocab": self.src_vocab,
            "tgt_vocab": self.tgt_vocab,
            "config": asdict(self.config),
        }

    # -- checks ------------------------------------------------------------------------------
    def _ids(self, name, ids, vocab, min_len=1):
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or ids.shape[1] < min_len:
            raise ValueError(
                f"Translator: argument {name!r} must be a 2-D int array (batch, tokens >= "
                f"{min_len}); got {ids.dtype} with shape {ids.shape}"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise ValueError(
                f"Translator: argument {name!r} must hold token ids in [0, {vocab}); got "
                f"values in [{ids.min()}, {ids.max()}]"
            )
        return ids

    # -- encoder -----------------------------------------------------------------------------
    def encode(self, src, rng=None):
        """``src (B, S)`` -> ``(Memory, DecoderState, cache)``; the cache feeds
        :meth:`encode_backward`."""
        src = self._ids("src", src, self.src_vocab)
        mask = src != PAD  # (B, S)
        if not mask[:, 0].all():
            raise ValueError("Translator: argument 'src' has an empty (all-PAD) row")
        p, dt = self.params, self.dtype
        B, S = src.shape
        He = self.config.encoder_units
        drop = _dropout((B, S, self.config.embedding_dim), self.config.dropout, rng, dt)
        x = p["src_embedding.embeddings"][src]  # (B, S, E)
        if drop is not None:
            x = x * drop
        z = np.zeros((B, He), dt)
        fwd, (hf, cf), cache_f = self.lstm.forward(
            np.ascontiguousarray(x.transpose(1, 0, 2)), z, z, *self._w("encoder_fwd"), mask=mask.T
        )
        xr = reverse_sequences(x, mask).transpose(1, 0, 2)  # (S, B, E), each row reversed
        bwd, (hb, cb), cache_b = self.lstm.forward(
            np.ascontiguousarray(xr), z, z, *self._w("encoder_bwd"), mask=mask.T
        )
        bwd = reverse_sequences(bwd.transpose(1, 0, 2), mask)  # (B, S, He) back in order
        enc = np.concatenate([fwd.transpose(1, 0, 2), bwd], axis=-1)  # (B, S, 2He)
        keys = enc @ p["attention.kernel"]  # (B, S, Hd)
        h_cat, c_cat = np.concatenate([hf, hb], -1), np.concatenate([cf, cb], -1)  # (B, 2He)
        h0 = np.tanh(h_cat @ p["init_h.kernel"] + p["init_h.bias"])
        c0 = c_cat @ p["init_c.kernel"] + p["init_c.bias"]
        memory = Memory(enc, keys, mask[:, None, :])
        state = DecoderState(h0, c0, np.zeros_like(h0))
        cache = (src, mask, drop, cache_f, cache_b, h_cat, c_cat, h0)
        return memory, state, cache

    def _w(self, layer):
        p = self.params
        return p[f"{layer}.kernel"], p[f"{layer}.recurrent_kernel"], p[f"{layer}.bias"]

    def encode_backward(self, d_enc, d_keys, d_h0, d_c0, memory, cache, grads):
        """Accumulate the encoder's parameter gradients into ``grads`` from the gradients on
        the memory (``d_enc (B, S, 2He)``, ``d_keys (B, S, Hd)``) and the initial state."""
        src, mask, drop, cache_f, cache_b, h_cat, c_cat, h0 = cache
        p, He = self.params, self.config.encoder_units
        B, S = src.shape
        grads["attention.kernel"] = memory.enc.reshape(B * S, -1).T @ d_keys.reshape(B * S, -1)
        d_enc = d_enc + d_keys @ p["attention.kernel"].T
        d_pre = d_h0 * (1 - h0 * h0)  # through tanh
        grads["init_h.kernel"], grads["init_h.bias"] = h_cat.T @ d_pre, d_pre.sum(0)
        grads["init_c.kernel"], grads["init_c.bias"] = c_cat.T @ d_c0, d_c0.sum(0)
        d_hcat = d_pre @ p["init_h.kernel"].T  # (B, 2He)
        d_ccat = d_c0 @ p["init_c.kernel"].T
        gf = self.lstm.backward(
            np.ascontiguousarray(d_enc[..., :He].transpose(1, 0, 2)),
            d_hcat[:, :He],
            d_ccat[:, :He],
            cache_f,
        )
        d_bwd = reverse_sequences(d_enc[..., He:], mask).transpose(1, 0, 2)
        gb = self.lstm.backward(
            np.ascontiguousarray(d_bwd), d_hcat[:, He:], d_ccat[:, He:], cache_b
        )
        for layer, g in (("encoder_fwd", gf), ("encoder_bwd", gb)):
            for role in ("kernel", "recurrent_kernel", "bias"):
                grads[f"{layer}.{role}"] = g[role]
        dx = gf["x"].transpose(1, 0, 2) + reverse_sequences(gb["x"].transpose(1, 0, 2), mask)
        if drop is not None:
            dx = dx * drop
        grads["src_embedding.embeddings"] = _embedding_grad(
            self.params["src_embedding.embeddings"], src, dx
        )

    # -- decoder step (training and inference share it) --------------------------------------
    def decoder_step(self, state: DecoderState, emb, memory: Memory, rng=None, keep_cache=False):
        """One step: ``emb (B, E)`` the embedded previous token -> ``(state, h~ (B, Hd),
        attention (B, S), cache)``. With ``keep_cache`` the LSTM runs as a one-step sequence
        and the cache holds its :class:`~lstmkit.ops.lstm.LSTMCache` (what ``inspect`` reads),
        else as the streaming step. Training runs the same equations over the whole target at
        once (:mod:`.translate_teacher`)."""
        p = self.params
        x = np.concatenate([emb, state.feed], axis=1)  # (B, E + Hd): input feeding
        w = self._w("decoder")
        if keep_cache:
            _, (h, c), lstm_cache = self.lstm.forward(x[None], state.h, state.c, *w)
        else:
            (h, c), lstm_cache = self.lstm.step(x, state.h, state.c, *w), None
        ctx, a, att_cache = attention_forward(h[:, None, :], memory.keys, memory.enc, memory.mask)
        cat = np.concatenate([ctx[:, 0], h], axis=1)  # (B, 2He + Hd)
        t = np.tanh(cat @ p["combine.kernel"])  # (B, Hd)
        drop = _dropout(t.shape, self.config.dropout, rng, self.dtype)
        h_tilde = t if drop is None else t * drop
        cache = (lstm_cache, att_cache, cat, t, drop) if keep_cache else None
        return DecoderState(h, c, h_tilde), h_tilde, a[:, 0], cache

    def output_logits(self, h_tilde):
        """``h~ (N, Hd)`` -> logits ``(N, Vt)``."""
        return h_tilde @ self.params["output.kernel"] + self.params["output.bias"]

    # -- the whole batch -----------------------------------------------------------------------
    def loss_and_grads(self, src, tgt, rng=None):
        """Teacher-forced loss (mean label-smoothed cross-entropy over non-PAD targets), the
        number of those targets, and ``{name: gradient}``. Dropout only with an ``rng``."""
        from .translate_loss import smoothed_cross_entropy

        tgt = self._ids("tgt", tgt, self.tgt_vocab, min_len=2)
        if tgt.shape[0] != np.shape(src)[0]:
            raise ValueError(
                f"Translator: arguments 'src' and 'tgt' must have the same batch size; got "
                f"{np.shape(src)[0]} and {tgt.shape[0]}"
            )
        src, tgt, rows, valid = _sort_by_target_length(np.asarray(src), tgt)
        memory, state, enc_cache = self.encode(src, rng)
        y_in, labels = tgt[:, :-1].T[valid], tgt[:, 1:].T[valid]  # (N,) packed, step-major
        table = self.params["tgt_embedding.embeddings"]
        emb, cfg, dt = table[y_in], self.config, self.dtype  # (N, E)
        emb_drop = _dropout(emb.shape, cfg.dropout, rng, dt)
        if emb_drop is not None:
            emb *= emb_drop
        h_drop = _dropout((len(y_in), cfg.decoder_units), cfg.dropout, rng, dt)
        tilde, dec_cache = teacher_forward(self, state.h, state.c, emb, memory, h_drop, rows)
        # the packed rows are exactly the scored steps
        loss, d_logits = smoothed_cross_entropy(
            self.output_logits(tilde), labels, self.config.label_smoothing
        )
        grads = {"output.kernel": tilde.T @ d_logits, "output.bias": d_logits.sum(0)}
        d_tilde = d_logits @ self.params["output.kernel"].T
        d_emb, d_h, d_c, d_keys, d_enc = teacher_backward(self, d_tilde, memory, dec_cache, grads)
        if emb_drop is not None:
            d_emb *= emb_drop
        grads["tgt_embedding.embeddings"] = _embedding_grad(table, y_in, d_emb)
        self.encode_backward(d_enc, d_keys, d_h, d_c, memory, enc_cache, grads)
        return loss, len(labels), grads


def _sort_by_target_length(src, tgt):
    """The batch's rows by decreasing target length (the loss is a mean over tokens: the order
    does not matter), so that decoder step ``t`` runs only the leading ``rows[t]`` rows, those
    still in their sentence: ``-> src, tgt (sorted), rows (T,), valid (T, B)`` (the scored
    (step, row) pairs, exactly the ones run)."""
    valid = tgt[:, 1:] != PAD  # (B, T)
    if (valid[:, 1:] & ~valid[:, :-1]).any():
        bad = int(np.nonzero((valid[:, 1:] & ~valid[:, :-1]).any(axis=1))[0][0])
        raise ValueError(
            f"Translator: argument 'tgt' must be post-padded (no PAD id {PAD} before a token); "
            f"got row {bad}: {tgt[bad].tolist()}"
        )
    order = np.argsort(-valid.sum(axis=1), kind="stable")
    valid = valid[order].T  # (T, B)
    return src[order], tgt[order], valid.sum(axis=1), valid


def _embedding_grad(table, ids, d):
    """``d (B, T, E)`` summed into the rows ``ids (B, T)`` of a zero table-shaped array; the
    PAD row gets nothing (it never moves, as torch's ``padding_idx``)."""
    g = np.zeros_like(table)
    np.add.at(g, ids.ravel(), d.reshape(-1, d.shape[-1]))
    g[PAD] = 0
    return g
