"""``TimeDistributed``: one layer applied to every time step of ``(batch, timesteps, ...)``.

The time axis is folded into the batch (``(B, T, ...) -> (B * T, ...)``), the inner layer runs
once on all steps, and its output is unfolded back to ``(B, T, ...)``; backward folds ``dy`` the
same way. Parameters are the inner layer's, under the inner layer's roles (``kernel``, ``bias``
...), so the dotted names are ``"time_distributed.kernel"``; ``get_weights`` is the inner
layer's (Keras order). The mask passes through unchanged (Keras); a mask-aware inner layer gets
it folded to ``(B * T,)``.

Differences from Keras 3, which calls the inner layer once per step: where the inner layer
mixes samples in training (``BatchNormalization``) the batch statistics are over all
``B * T`` rows rather than per step; dropout draws independent masks either way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, fmt_shape


class TimeDistributedCache(NamedTuple):
    inner: object
    bt: tuple  # (B, T)


class TimeDistributed(Layer):
    supports_masking = True

    def __init__(self, layer, **kwargs):
        from . import deserialize

        if isinstance(layer, dict):
            layer = deserialize(layer)
        if not isinstance(layer, Layer) or layer.multi_input:
            raise ValueError(
                "TimeDistributed: argument 'layer' must be an lstmkit layer taking one input; "
                f"got {type(layer).__name__}"
            )
        super().__init__(**kwargs)
        self.layer = layer

    @property
    def weight_names(self):
        return self.layer.weight_names

    @property
    def non_trainable_roles(self):
        return self.layer.non_trainable_roles

    # -- shapes ----------------------------------------------------------------------------------
    def _check_rank(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                "TimeDistributed: input must have shape (batch, timesteps, ...); got "
                f"{fmt_shape((None,) + tuple(input_shape))}"
            )

    def build(self, input_shape, rng=None, dtype=None):
        self._check_rank(input_shape)
        super().build(input_shape, rng, dtype)
        if not self.layer.built:
            self.layer.build(tuple(input_shape[1:]), rng, self.dtype)
        self.params = self.layer.params  # the same dict: the inner layer's arrays, its roles

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        inner = self.layer.compute_output_shape(tuple(input_shape[1:]))
        if isinstance(inner, list):
            raise ValueError(
                f"TimeDistributed: the inner layer {self.layer.name!r} returns several outputs; "
                "it must return one array"
            )
        return (input_shape[0],) + tuple(inner)

    # -- computation -----------------------------------------------------------------------------
    def _fold(self, x, mask):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(
                "TimeDistributed: argument 'x' must have shape (batch, timesteps, ...); got "
                f"shape {x.shape}"
            )
        B, T = x.shape[:2]
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (B, T):
                raise ValueError(
                    f"TimeDistributed: argument 'mask' must have shape (batch, timesteps) = "
                    f"({B}, {T}); got {mask.shape}"
                )
            mask = mask.reshape(B * T) if self.layer.supports_masking else None
        return x.reshape((B * T,) + x.shape[2:]), mask, (B, T)

    def forward(self, x, *, training=False, mask=None, rng=None):
        if not self.built:
            x = np.asarray(x)
            self._check_rank(x.shape[1:])
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        x2, m2, bt = self._fold(x, mask)
        y2, cache = self.layer.forward(x2, training=training, mask=m2, rng=rng)
        return y2.reshape(bt + y2.shape[1:]), TimeDistributedCache(cache, bt)

    def infer(self, x, mask=None):
        if not self.built:
            return self.forward(x, mask=mask)[0]
        x2, m2, bt = self._fold(x, mask)
        y2 = self.layer.infer(x2, mask=m2)
        return y2.reshape(bt + y2.shape[1:])

    def _unfold_dx(self, dx2, bt):
        return None if dx2 is None else dx2.reshape(bt + dx2.shape[1:])

    def backward(self, dy, cache):
        B, T = cache.bt
        dx2, grads = self.layer.backward(dy.reshape((B * T,) + dy.shape[2:]), cache.inner)
        return self._unfold_dx(dx2, cache.bt), grads

    def param_grads(self, dy, cache):
        B, T = cache.bt
        return self.layer.param_grads(dy.reshape((B * T,) + dy.shape[2:]), cache.inner)

    def state_updates(self, cache):
        return self.layer.state_updates(cache.inner)

    def output_logits(self, cache):
        z = self.layer.output_logits(cache.inner)
        return None if z is None else z.reshape(cache.bt + z.shape[1:])

    def backward_from_logits(self, dz, cache):
        B, T = cache.bt
        dz2 = dz.reshape((B * T,) + dz.shape[2:])
        dx2, grads = self.layer.backward_from_logits(dz2, cache.inner)
        return self._unfold_dx(dx2, cache.bt), grads

    def get_config(self):
        from . import serialize

        cfg = super().get_config()
        cfg["layer"] = serialize(self.layer)
        return cfg
