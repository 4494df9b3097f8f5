"""``Activation``: an activation function as a layer (Keras ``layers.Activation``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ops.activations import activation_spec, activation_vjp
from .base import Layer, check_array
from .core import activation_name


class ActivationCache(NamedTuple):
    y: np.ndarray
    z: np.ndarray | None  # the input, kept when the derivative reads it (and for softmax)


class Activation(Layer):
    """``y = activation(x)`` for any name of :mod:`lstmkit.ops.activations`; masks pass through.

    ``Activation("softmax")`` at the end of a model is fused with a cross-entropy loss by the
    trainer (see :meth:`output_logits`)."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation_name(self, activation)
        spec = activation_spec(activation)
        self._fn, self._vjp = spec.fn, activation_vjp(activation)
        self._keep_z = spec.needs_input or activation == "softmax"

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = check_array(self, x)
        if not self.built:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        x = x.astype(self.dtype, copy=False)
        y = self._fn(x)
        return y, ActivationCache(y, x if self._keep_z else None)

    def backward(self, dy, cache):
        return self._vjp(dy, cache.y, cache.z), {}

    def output_logits(self, cache):
        return cache.z if self.activation == "softmax" else None

    def backward_from_logits(self, dz, cache):
        return dz, {}

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg
