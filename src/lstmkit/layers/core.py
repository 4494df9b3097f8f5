"""Non-recurrent layers: Dense, Embedding, Dropout, Masking (Keras semantics)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import initializers
from .. import random as _random
from ..ops import backend
from ..ops.activations import activation_spec, activation_vjp
from .base import Layer, check_array


def activation_name(layer, activation):
    """Validate an ``activation=`` argument: a Keras activation name or None (linear)."""
    try:
        activation_spec(activation)
    except ValueError as e:
        raise ValueError(f"{type(layer).__name__}: {e}") from None
    return activation


def initializer_config(layer, arg, init):
    """The JSON form of an initializer argument: names stay names; objects with ``get_config``
    become Keras' ``{"class_name": ..., "config": ...}``; the built-in functions their names."""
    if init is None or isinstance(init, (str, dict)):
        return init
    if hasattr(init, "get_config"):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    name = getattr(init, "__name__", None)
    if initializers.INITIALIZERS.get(name) is init:
        return name
    raise ValueError(
        f"{type(layer).__name__}: argument '{arg}' cannot be saved: {init!r} is neither an "
        "initializer name nor an object with get_config()"
    )


class DenseCache(NamedTuple):
    x: np.ndarray
    z: np.ndarray | None  # pre-activation, kept when the derivative reads it (and for softmax)
    y: np.ndarray


class Dense(Layer):
    """``y = activation(x @ kernel + bias)``; ``kernel (D, units)``, ``bias (units,)``.

    On 3-D input ``(batch, timesteps, D)`` it applies at every time step, as in Keras, and passes
    the mask on. ``activation`` is any name of :mod:`lstmkit.ops.activations` (None: linear).
    With ``"softmax"`` the trainer takes a categorical cross-entropy from the logits (see
    :meth:`output_logits`), so saturated outputs keep finite losses and exact gradients.
    """

    supports_masking = True

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: argument 'units' must be a positive int; got {units!r}")
        self.units = int(units)
        self.activation = activation_name(self, activation)
        spec = activation_spec(activation)
        self._act, self._vjp = spec.fn, activation_vjp(activation)
        self._keep_z = spec.needs_input or activation == "softmax"
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    @property
    def weight_names(self):
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def _build(self, input_shape, rng):
        self.add_weight(
            "kernel", (input_shape[-1], self.units), initializers.get(self.kernel_initializer), rng
        )
        if self.use_bias:
            self.add_weight("bias", (self.units,), initializers.get(self.bias_initializer), rng)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, *, training=False, mask=None, rng=None):
        D = self.built_input_shape[-1] if self.built else None
        x = check_array(self, x, last_dim=D)
        if x.ndim < 2:
            raise ValueError(
                f"Dense: argument 'x' must have shape (batch, ..., features); got {x.shape}"
            )
        if not self.built:
            self.build(x.shape[1:], rng)
        x = x.astype(self.dtype, copy=False)
        # one 2-D product (a stack of per-sample products is slow; a transposed view is copied)
        z = backend.matmul(x.reshape(-1, x.shape[-1]), self.params["kernel"])
        z = z.reshape(x.shape[:-1] + (self.units,))
        if self.use_bias:
            z += self.params["bias"]
        y = self._act(z)
        return y, DenseCache(x, z if self._keep_z else None, y)

    def output_logits(self, cache):
        """The logits ``z`` when the output is ``softmax(z)`` over the last axis, else None: the
        trainer then takes the cross-entropy from ``z`` and calls :meth:`backward_from_logits`."""
        return cache.z if self.activation == "softmax" else None

    def backward(self, dy, cache):
        return self.backward_from_logits(self._vjp(dy, cache.y, cache.z), cache)

    def backward_from_logits(self, dz, cache):
        """Backward from ``dz = dLoss/d(pre-activation)``."""
        x = cache.x
        D = x.shape[-1]
        dz2 = dz.reshape(-1, self.units)
        grads = {"kernel": backend.matmul(x.reshape(-1, D).T, dz2)}
        if self.use_bias:
            grads["bias"] = np.add.reduce(dz2, axis=0)  # dz2.sum(axis=0) without its wrapper
        dx = backend.matmul(dz2, self.params["kernel"].T)
        return dx.reshape(dz.shape[:-1] + (D,)), grads

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=initializer_config(
                self, "kernel_initializer", self.kernel_initializer
            ),
            bias_initializer=initializer_config(self, "bias_initializer", self.bias_initializer),
        )
        return cfg


class EmbeddingCache(NamedTuple):
    ids: np.ndarray


class Embedding(Layer):
    """Token ids ``(batch, timesteps)`` -> vectors ``(batch, timesteps, output_dim)``.

    ``mask_zero=True`` makes id 0 padding: the layer emits a mask that recurrent layers honour.
    """

    weight_names = ("embeddings",)

    def __init__(
        self,
        input_dim,
        output_dim,
        mask_zero=False,
        embeddings_initializer="uniform",
        input_length=None,
        **kwargs,
    ):
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Embedding: argument '{arg}' must be a positive int; got {v!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.mask_zero = bool(mask_zero)
        self.embeddings_initializer = embeddings_initializer

    @property
    def supports_masking(self):
        return self.mask_zero

    def _build(self, input_shape, rng):
        self.add_weight(
            "embeddings",
            (self.input_dim, self.output_dim),
            initializers.get(self.embeddings_initializer),
            rng,
        )

    def build(self, input_shape, rng=None, dtype=None):
        # the input is integer ids; the layer's own dtype is the embeddings' float type
        super().build(input_shape, rng, dtype if dtype in ("float32", "float64") else None)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return None
        m = np.asarray(x) != 0
        return m if mask is None else (m & mask)

    def forward(self, x, *, training=False, mask=None, rng=None):
        ids = check_array(self, x, kind="int")
        if not self.built:
            self.build(ids.shape[1:], rng)
        if ids.min() < 0 or ids.max() >= self.input_dim:
            raise ValueError(
                f"Embedding: argument 'x' must hold ids in [0, {self.input_dim}); "
                f"got values in [{ids.min()}, {ids.max()}]"
            )
        return self.params["embeddings"][ids], EmbeddingCache(ids)

    def backward(self, dy, cache):
        # the rows of dy summed per id: sorted (stably, so each id's rows keep their order)
        # and added by segments, far faster than np.add.at's one-row-at-a-time scatter
        ids = cache.ids.reshape(-1)
        rows = np.asarray(dy).reshape(-1, self.output_dim)
        d = np.empty_like(self.params["embeddings"])
        fast = backend.fast_ops()
        if fast is not None and rows.dtype == d.dtype and rows.flags.c_contiguous:
            # the same additions in one pass, no sort (ops/fast/scatter.py)
            fast.embedding_grad(ids.astype(np.int64, copy=False), rows, d)
            return None, {"embeddings": d}
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        d.fill(0)
        d[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return None, {"embeddings": d}

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            mask_zero=self.mask_zero,
            embeddings_initializer=self.embeddings_initializer,
        )
        return cfg


class Dropout(Layer):
    """Inverted dropout: zeroes a share ``rate`` of the inputs during training and scales the rest
    by ``1 / (1 - rate)``; the identity at inference. ``noise_shape`` as in Keras (``None`` entries
    follow the input)."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: argument 'rate' must be in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = check_array(self, x)
        if not self.built:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        if not training or self.rate == 0:
            return x, None
        rng = self._rng or rng or _random.get_rng()
        shape = (
            x.shape
            if self.noise_shape is None
            else tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        )
        keep = (rng.random(shape) >= self.rate).astype(x.dtype) / (1.0 - self.rate)
        return x * keep, keep

    def backward(self, dy, cache):
        return (dy if cache is None else dy * cache), {}

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return cfg


class Masking(Layer):
    """Marks time steps whose features all equal ``mask_value`` as padding (Keras ``Masking``):
    emits the mask ``any(x != mask_value, axis=-1)`` and zeroes the masked steps."""

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def compute_mask(self, x, mask):
        return np.any(np.asarray(x) != self.mask_value, axis=-1)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = check_array(self, x, rank=3)
        if not self.built:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        keep = np.any(x != self.mask_value, axis=-1, keepdims=True).astype(x.dtype)
        return x * keep, keep

    def backward(self, dy, cache):
        return dy * cache, {}

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg
