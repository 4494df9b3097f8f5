"""Keras 3's attention layers: ``Attention`` (Luong) and ``AdditiveAttention`` (Bahdanau).

Called on a list ``[query, value]`` or ``[query, value, key]`` (``key`` defaults to ``value``)::

    query (B, Tq, D)   value (B, Tv, Dv)   key (B, Tv, D)

    s   = score(query, key)                      # (B, Tq, Tv), see below
    s   = s - 1e9 where the key is masked        # value mask, and/or the causal mask j <= i
    w   = dropout(softmax(s, axis=-1))           # (B, Tq, Tv) (dropout only in training)
    out = w @ value                              # (B, Tq, Dv), zero where the query is masked

    Attention, score_mode="dot":     s = scale * query @ keyᵀ
    Attention, score_mode="concat":  s = concat_score_weight * Σ_d tanh(scale * (q_d + k_d))
    AdditiveAttention:               s = Σ_d scale_d * tanh(q_d + k_d)

Parameters (Keras names, shapes and initialisers): ``Attention`` has ``scale ()`` (ones) when
``use_scale`` and ``concat_score_weight ()`` (ones) when ``score_mode="concat"``;
``AdditiveAttention`` has ``scale (D,)`` (glorot_uniform) when ``use_scale`` (its default).
Without ``use_scale`` the factor is 1.

Call arguments as Keras: ``mask=[query_mask, value_mask]`` (masks flow from ``Embedding``/
``Masking`` in a functional model), ``use_causal_mask``, ``return_attention_scores`` (the output
is then ``(out, w)``, two tensors in a functional model). The output mask is the query mask.
The math is :mod:`lstmkit.ops.attention`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import initializers
from .. import random as _random
from ..ops import attention as ops
from .base import Layer, check_array, check_mask, fmt_shape

_ROLES = ("query", "value", "key")


class AttentionLayerCache(NamedTuple):
    scores: tuple  # the score function's cache (ops.DotScoresCache or ops.TanhScoresCache)
    wsum: ops.WeightedSumCache
    q_keep: np.ndarray | None  # (B, Tq, 1) the query mask, or None
    with_key: bool  # a separate key was given (else value served as key)
    listed: bool  # return_attention_scores: the layer returned (out, weights)


class Attention(Layer):
    """Dot-product (Luong) attention; ``score_mode="concat"`` for Keras' tanh-of-sum score."""

    multi_input = True
    supports_masking = True
    #: keyword arguments of a call that a functional model records with the node
    call_arguments = ("return_attention_scores", "use_causal_mask")

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                f"{who}: argument 'score_mode' must be one of {{'dot', 'concat'}}; "
                f"got {score_mode!r}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise ValueError(f"{who}: argument 'dropout' must be a float; got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{who}: argument 'dropout' must be in [0, 1); got {dropout!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"{who}: argument 'seed' must be None or an int >= 0; got {seed!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = None if seed is None else int(seed)
        # Keras' SeedGenerator: a seeded layer draws its dropout masks from its own stream
        self._seed_rng = None if seed is None else np.random.default_rng(seed)

    @property
    def weight_names(self):
        names = ("scale",) if self.use_scale else ()
        return names + (("concat_score_weight",) if self.score_mode == "concat" else ())

    # -- shapes -----------------------------------------------------------------------------------
    def _check_shapes(self, shapes):
        """``[query, value(, key)]`` shapes without the batch axis -> the three, key filled in."""
        who = type(self).__name__
        if not isinstance(shapes, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) for s in shapes
        ):
            raise ValueError(
                f"{who}: argument 'input_shape' must be a list of 2 or 3 shapes [query, value] "
                f"or [query, value, key]; got {shapes!r:.200}"
            )
        shapes = [tuple(s) for s in shapes]
        _check_count(who, len(shapes), "input_shape")
        for role, s in zip(_ROLES, shapes):
            if len(s) != 2:
                raise ValueError(
                    f"{who}: argument '{role}' must have shape (batch, timesteps, features); "
                    f"got {fmt_shape((None, *s))}"
                )
        q, v = shapes[:2]
        k = shapes[2] if len(shapes) > 2 else v
        _check_dims(who, q, v, k)
        return q, v, k

    def build(self, input_shape, rng=None, dtype=None):
        self._check_shapes(input_shape)
        super().build(input_shape, rng, dtype)

    def _build(self, input_shape, rng):
        if self.use_scale:
            self.add_weight("scale", (), initializers.get("ones"), rng)
        if self.score_mode == "concat":
            self.add_weight("concat_score_weight", (), initializers.get("ones"), rng)

    def compute_output_shape(
        self, input_shape, return_attention_scores=False, use_causal_mask=False
    ):
        q, v, k = self._check_shapes(input_shape)
        out = (*q[:-1], v[-1])  # (Tq, Dv)
        return [out, (q[0], k[0])] if return_attention_scores else out

    def compute_mask(self, xs, masks):
        """The query mask (Keras): masked queries stay masked downstream."""
        if masks is None or not isinstance(masks, (list, tuple)) or masks[0] is None:
            return None
        return np.asarray(masks[0], bool)

    # -- forward ------------------------------------------------------------------------------------
    def _prepare(self, xs, mask, rng):
        """Validate ``[query, value(, key)]`` and the masks; build on first use; cast."""
        who = type(self).__name__
        if not isinstance(xs, (list, tuple)):
            raise ValueError(
                f"{who}: argument 'x' must be a list [query, value] or [query, value, key]; "
                f"got {type(xs).__name__}"
            )
        _check_count(who, len(xs), "x")
        xs = [check_array(self, x, arg=role, rank=3) for role, x in zip(_ROLES, xs)]
        batches = {len(x) for x in xs}
        if len(batches) > 1:
            raise ValueError(
                f"{who}: arguments 'query', 'value' and 'key' must have the same batch size; "
                f"got shapes " + ", ".join(str(x.shape) for x in xs)
            )
        shapes = [x.shape[1:] for x in xs]
        if not self.built:
            first = xs[0].dtype
            self.build(shapes, rng, first if first.kind == "f" else None)
        else:
            self._check_shapes(shapes)
            self._check_built_dims(shapes)
        masks = self._prepare_masks(mask, xs)
        return [x.astype(self.dtype, copy=False) for x in xs], masks

    def _check_built_dims(self, shapes):
        pass  # Attention's parameters are scalars: any feature size fits

    def _prepare_masks(self, mask, xs):
        """-> ``(query_mask (B, Tq) | None, value_mask (B, Tv) | None)``."""
        if mask is None:
            return None, None
        who = type(self).__name__
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise ValueError(
                f"{who}: argument 'mask' must be None or a list [query_mask, value_mask] (or "
                f"[query_mask, value_mask, key_mask]); got {mask!r:.200}"
            )
        B = len(xs[0])
        q_mask = check_mask(self, mask[0], B, xs[0].shape[1], arg="mask[0]")
        v_mask = check_mask(self, mask[1], B, xs[1].shape[1], arg="mask[1]")
        return q_mask, v_mask  # Keras ignores a key mask: the value mask covers the keys

    def forward(
        self,
        x,
        *,
        training=False,
        mask=None,
        rng=None,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        (q, v, *rest), (q_mask, v_mask) = self._prepare(x, mask, rng)
        k = rest[0] if rest else v
        s, s_cache = self._scores_forward(q, k)  # (B, Tq, Tv)
        score_mask = _score_mask(v_mask, use_causal_mask, s.shape[1:])
        keep = self._dropout_keep(s.shape, training, rng)
        out, w, wsum = ops.weighted_sum_forward(s, v, score_mask, keep)
        q_keep = None
        if q_mask is not None:
            q_keep = q_mask[:, :, None]  # (B, Tq, 1)
            out = np.where(q_keep, out, out.dtype.type(0))
        cache = AttentionLayerCache(
            s_cache, wsum, q_keep, bool(rest), bool(return_attention_scores)
        )
        return ((out, w) if return_attention_scores else out), cache

    def infer(self, x, mask=None, **kwargs):
        return self.forward(x, training=False, mask=mask, **kwargs)[0]

    def _dropout_keep(self, shape, training, rng):
        """Inverted dropout on the weights: 0 or ``1 / (1 - rate)`` per entry (training only)."""
        if not training or self.dropout == 0:
            return None
        rng = self._seed_rng or (rng if rng is not None else _random.get_rng())
        scale = np.asarray(1.0 / (1.0 - self.dropout), self.dtype)
        return (rng.random(shape) >= self.dropout).astype(self.dtype) * scale

    def _scores_forward(self, q, k):
        scale = self.params.get("scale")
        if self.score_mode == "dot":
            return ops.dot_scores_forward(q, k, scale)
        return ops.tanh_scores_forward(q, k, inner=scale, outer=self.params["concat_score_weight"])

    # -- backward -----------------------------------------------------------------------------------
    def backward(self, dy, cache):
        """``dy``: d(out), or ``[d(out), d(weights) | None]`` after return_attention_scores ->
        ``([dquery, dvalue(, dkey)], grads)``."""
        dout, dw = (dy[0], dy[1]) if cache.listed else (dy, None)
        if cache.q_keep is not None:
            dout = np.where(cache.q_keep, dout, dout.dtype.type(0))
        ds, dv = ops.weighted_sum_backward(dout, cache.wsum, dw)
        dq, dk, grads = self._scores_backward(ds, cache.scores)
        if cache.with_key:
            return [dq, dv, dk], grads
        return [dq, dv + dk], grads  # value served as key too

    def _scores_backward(self, ds, scache):
        if self.score_mode == "dot":
            dq, dk, dscale = ops.dot_scores_backward(ds, scache)
            return dq, dk, ({"scale": dscale} if self.use_scale else {})
        dq, dk, dscale, dweight = ops.tanh_scores_backward(ds, scache)
        grads = {"concat_score_weight": dweight}
        if self.use_scale:
            grads["scale"] = dscale
        return dq, dk, grads

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            use_scale=self.use_scale,
            score_mode=self.score_mode,
            dropout=self.dropout,
            seed=self.seed,
        )
        return cfg


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: ``s = Σ_d scale_d * tanh(q_d + k_d)``."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        if "score_mode" in kwargs:
            raise ValueError(
                "AdditiveAttention: has no argument 'score_mode' (its score is always additive)"
            )
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    @property
    def weight_names(self):
        return ("scale",) if self.use_scale else ()

    def _build(self, input_shape, rng):
        if self.use_scale:
            dim = input_shape[0][-1]
            self.add_weight("scale", (dim,), initializers.get("glorot_uniform"), rng)

    def _check_built_dims(self, shapes):
        built = self.built_input_shape[0][-1]
        if shapes[0][-1] != built:
            raise ValueError(
                f"AdditiveAttention: argument 'query' must have shape (batch, timesteps, "
                f"{built}) (the layer was built for it); got {fmt_shape((None, *shapes[0]))}"
            )

    def _scores_forward(self, q, k):
        return ops.tanh_scores_forward(q, k, outer=self.params.get("scale"))

    def _scores_backward(self, ds, scache):
        dq, dk, _, dscale = ops.tanh_scores_backward(ds, scache)
        return dq, dk, ({"scale": dscale} if self.use_scale else {})

    def get_config(self):
        cfg = super().get_config()
        del cfg["score_mode"]
        return cfg


# -- helpers --------------------------------------------------------------------------------------
def _check_count(who, n, arg):
    if not 2 <= n <= 3:
        raise ValueError(
            f"{who}: argument '{arg}' must be a list of 2 or 3, [query, value] or "
            f"[query, value, key]; got a list of {n}"
        )


def _check_dims(who, q, v, k):
    """``q (Tq, D)``, ``v (Tv, Dv)``, ``k (Tv, D)`` (None: unknown, as in a functional model)."""
    if None not in (v[0], k[0]) and v[0] != k[0]:
        raise ValueError(
            f"{who}: arguments 'value' and 'key' must have the same number of timesteps; got "
            f"value {fmt_shape((None, *v))} and key {fmt_shape((None, *k))}"
        )
    if None not in (q[-1], k[-1]) and q[-1] != k[-1]:
        arg = "key" if k is not v else "value"
        raise ValueError(
            f"{who}: argument '{arg}' must have as many features as 'query' ({q[-1]}); got "
            f"query {fmt_shape((None, *q))} and {arg} {fmt_shape((None, *k))}"
        )


def _score_mask(v_mask, use_causal_mask, shape):
    """Where a query may attend to a key: ``(B, 1, Tv)`` from the value mask, ``(1, Tq, Tv)``
    causal (``j <= i``), both combined, or None."""
    m = None if v_mask is None else v_mask[:, None, :]
    if use_causal_mask:
        causal = np.tril(np.ones(shape, bool))[None]  # (1, Tq, Tv)
        m = causal if m is None else m & causal
    return m
