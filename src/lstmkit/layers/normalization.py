"""``LayerNormalization`` and ``BatchNormalization`` (Keras 3 definitions and defaults).

LayerNormalization normalises each sample over ``axis`` (default the features)::

    mu = mean(x, axis)    var = mean((x - mu)^2, axis)    x^ = (x - mu) / sqrt(var + eps)
    y = gamma * x^ + beta                       gamma, beta of shape x.shape[axis]

BatchNormalization normalises each feature (``axis``, default -1) over every other axis (batch
and time). In training (``training=True`` and the layer trainable) it uses the batch's ``mu`` and
biased ``var`` (with a mask: only unmasked steps count, divided by ``count + 1e-7`` as Keras
does); at inference the moving statistics. Weights in Keras order: ``gamma, beta, moving_mean,
moving_variance``; the moving statistics are non-trainable.

The moving statistics are **not** changed by ``forward``: a training forward puts the updated
values ``moving * momentum + batch * (1 - momentum)`` in its cache, and the model assigns
``state_updates(cache)`` after the optimizer step (what Keras does inside ``call``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import initializers
from .base import Layer, check_array, fmt_shape
from .core import initializer_config

KERAS_EPSILON = 1e-7  # keras.config.epsilon(): BatchNormalization's masked-count guard


def _flag(layer, arg, v):
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{type(layer).__name__}: argument '{arg}' must be a bool; got {v!r}")
    return bool(v)


def _positive_float(layer, arg, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(
            f"{type(layer).__name__}: argument '{arg}' must be a positive number; got {v!r}"
        )
    return float(v)


class _Normalization(Layer):
    supports_masking = True

    def _axes(self, rank):
        """The normalised axes (``axis`` argument) as non-negative axes of batched inputs."""
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        out = sorted(a + rank if a < 0 else a for a in axes)
        if any(not 1 <= a < rank for a in out) or len(set(out)) != len(out):
            raise ValueError(
                f"{type(self).__name__}: argument 'axis' {self.axis} must name distinct non-batch "
                f"axes of inputs of rank {rank}"
            )
        return out

    def _param_shape(self, input_shape):
        shape = tuple(input_shape[a - 1] for a in self._axes(len(input_shape) + 1))
        if None in shape:
            raise ValueError(
                f"{type(self).__name__}: the normalised axes must have a known size; input "
                f"{fmt_shape((None,) + tuple(input_shape))}, axis {self.axis}"
            )
        return shape

    def _broadcast(self, p, ndim):
        """A parameter of the normalised axes' shape, reshaped to broadcast against the input."""
        shape = [1] * ndim
        for a, n in zip(self._axes(ndim), p.shape):
            shape[a] = n
        return p.reshape(shape)

    def _prepare(self, x, rng):
        x = check_array(self, x)
        if not self.built:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        expected = self._param_shape(self.built_input_shape)
        if x.ndim != len(self.built_input_shape) + 1 or self._param_shape(x.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__}: argument 'x' must have shape "
                f"{fmt_shape((None,) + tuple(self.built_input_shape))}; got {x.shape}"
            )
        return x.astype(self.dtype, copy=False)

    def compute_output_shape(self, input_shape):
        self._axes(len(input_shape) + 1)
        return tuple(input_shape)

    def _affine_grads(self, dy, xhat, red):
        grads = {}
        if self.scale:
            grads["gamma"] = np.sum(dy * xhat, axis=red).reshape(self.params["gamma"].shape)
        if self.center:
            grads["beta"] = np.sum(dy, axis=red).reshape(self.params["beta"].shape)
        return grads

    def _affine(self, xhat):
        y = xhat * self._broadcast(self.params["gamma"], xhat.ndim) if self.scale else xhat.copy()
        if self.center:
            y += self._broadcast(self.params["beta"], xhat.ndim)
        return y

    def _dxhat(self, dy):
        return dy * self._broadcast(self.params["gamma"], dy.ndim) if self.scale else dy


class LayerNormCache(NamedTuple):
    xhat: np.ndarray
    inv: np.ndarray  # 1 / sqrt(var + eps), keepdims over the normalised axes


class LayerNormalization(_Normalization):
    """Per-sample normalisation over ``axis`` (an int or a list of non-batch axes)."""

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = [int(a) for a in axis]
        elif isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(
                f"LayerNormalization: argument 'axis' must be an int or a list of ints; got {axis!r}"
            )
        self.axis = axis if isinstance(axis, list) else int(axis)
        self.epsilon = _positive_float(self, "epsilon", epsilon)
        self.center = _flag(self, "center", center)
        self.scale = _flag(self, "scale", scale)
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer

    @property
    def weight_names(self):
        return ("gamma",) * self.scale + ("beta",) * self.center

    def _build(self, input_shape, rng):
        shape = self._param_shape(input_shape)
        if self.scale:
            self.add_weight("gamma", shape, initializers.get(self.gamma_initializer), rng)
        if self.center:
            self.add_weight("beta", shape, initializers.get(self.beta_initializer), rng)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        axes = tuple(self._axes(x.ndim))
        xc = x - x.mean(axis=axes, keepdims=True)
        var = np.mean(xc * xc, axis=axes, keepdims=True)
        inv = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        xhat = xc * inv
        return self._affine(xhat), LayerNormCache(xhat, inv)

    def backward(self, dy, cache):
        xhat, inv = cache
        axes = tuple(self._axes(dy.ndim))
        red = tuple(a for a in range(dy.ndim) if a not in axes)
        g = self._dxhat(dy)
        # dx = inv * (g - mean(g) - x^ * mean(g * x^)), means over the normalised axes
        dx = inv * (
            g
            - g.mean(axis=axes, keepdims=True)
            - xhat * np.mean(g * xhat, axis=axes, keepdims=True)
        )
        return dx, self._affine_grads(dy, xhat, red)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            axis=self.axis,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=initializer_config(self, "beta_initializer", self.beta_initializer),
            gamma_initializer=initializer_config(self, "gamma_initializer", self.gamma_initializer),
        )
        return cfg


class BatchNormCache(NamedTuple):
    training: bool
    xhat: np.ndarray
    inv: np.ndarray  # 1 / sqrt(var + eps), keepdims
    xc: np.ndarray | None  # x - mu (training)
    w: np.ndarray | None  # (broadcastable) 0/1 weights of the mask, or None (training)
    count: float  # the normaliser N of the batch statistics (training)
    updates: dict  # new moving statistics (training), else {}


class BatchNormalization(_Normalization):
    """Per-feature normalisation over the batch (and time) axes; ``axis`` is the feature axis."""

    non_trainable_roles = ("moving_mean", "moving_variance")

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"BatchNormalization: argument 'axis' must be an int; got {axis!r}")
        self.axis = int(axis)
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not (0 <= momentum <= 1)
        ):
            raise ValueError(
                f"BatchNormalization: argument 'momentum' must be in [0, 1]; got {momentum!r}"
            )
        self.momentum = float(momentum)
        self.epsilon = _positive_float(self, "epsilon", epsilon)
        self.center = _flag(self, "center", center)
        self.scale = _flag(self, "scale", scale)
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer

    @property
    def weight_names(self):
        return ("gamma",) * self.scale + ("beta",) * self.center + self.non_trainable_roles

    def _build(self, input_shape, rng):
        shape = self._param_shape(input_shape)
        if self.scale:
            self.add_weight("gamma", shape, initializers.get(self.gamma_initializer), rng)
        if self.center:
            self.add_weight("beta", shape, initializers.get(self.beta_initializer), rng)
        self.add_weight("moving_mean", shape, initializers.get(self.moving_mean_initializer), rng)
        self.add_weight(
            "moving_variance", shape, initializers.get(self.moving_variance_initializer), rng
        )

    def _weights(self, x, mask):
        """0/1 weights of the mask spread over the feature axis (None without a mask)."""
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != x.shape[:-1] or m.dtype.kind not in "biuf":
            raise ValueError(
                f"BatchNormalization: argument 'mask' must have shape {x.shape[:-1]} (the input "
                f"without its feature axis); got {m.shape}"
            )
        return (m != 0).astype(x.dtype)[..., None]

    def _batch_stats(self, x, w, red):
        """Keras' moments: plain means, or with a mask sums over unmasked entries / (n + 1e-7)."""
        if w is None:
            count = float(np.prod([x.shape[a] for a in red]))
            mu = x.mean(axis=red, keepdims=True)
            xc = x - mu
            return xc, np.mean(xc * xc, axis=red, keepdims=True), count, mu
        wb = np.broadcast_to(w, x.shape)
        count = wb.sum(axis=red, keepdims=True) + x.dtype.type(KERAS_EPSILON)
        mu = np.sum(wb * x, axis=red, keepdims=True) / count
        xc = x - mu
        return xc, np.sum(wb * xc * xc, axis=red, keepdims=True) / count, count, mu

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        axes = self._axes(x.ndim)
        red = tuple(a for a in range(x.ndim) if a not in axes)
        eps = x.dtype.type(self.epsilon)
        if not (training and self.trainable):  # the moving statistics, nothing to update
            mm = self._broadcast(self.params["moving_mean"], x.ndim)
            inv = 1 / np.sqrt(self._broadcast(self.params["moving_variance"], x.ndim) + eps)
            xhat = (x - mm) * inv
            return self._affine(xhat), BatchNormCache(False, xhat, inv, None, None, 0.0, {})
        w = self._weights(x, mask) if mask is not None and axes == [x.ndim - 1] else None
        xc, var, count, mu = self._batch_stats(x, w, red)
        inv = 1 / np.sqrt(var + eps)
        xhat = xc * inv
        m = x.dtype.type(self.momentum)
        updates = {
            "moving_mean": self.params["moving_mean"] * m + mu.reshape(-1) * (1 - m),
            "moving_variance": self.params["moving_variance"] * m + var.reshape(-1) * (1 - m),
        }
        updates = {k: v.reshape(self.params[k].shape) for k, v in updates.items()}
        return self._affine(xhat), BatchNormCache(True, xhat, inv, xc, w, count, updates)

    def state_updates(self, cache):
        return dict(cache.updates)

    def backward(self, dy, cache):
        axes = self._axes(dy.ndim)
        red = tuple(a for a in range(dy.ndim) if a not in axes)
        g = self._dxhat(dy)
        grads = self._affine_grads(dy, cache.xhat, red)
        if not cache.training:
            return g * cache.inv, grads
        return self._batch_backward(g, cache, red), grads

    @staticmethod
    def _batch_backward(g, cache, red):
        # mu = sum(w x) / N, var = sum(w xc^2) / N, x^ = xc * inv, inv = (var + eps)^-1/2;
        # w = 1 and N = count without a mask. The chain rule through mu and var, unsimplified
        # (with a mask sum(w xc) is not exactly 0: N carries Keras' 1e-7).
        _, _, inv, xc, w, N, _ = cache
        w = np.ones((1,) * g.ndim, g.dtype) if w is None else w
        dvar = np.sum(g * xc, axis=red, keepdims=True) * (-0.5 * inv**3)
        dmu = -inv * np.sum(g, axis=red, keepdims=True) - dvar * (
            2 * np.sum(np.broadcast_to(w, xc.shape) * xc, axis=red, keepdims=True) / N
        )
        return g * inv + w * (dvar * 2 * xc + dmu) / N

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
        )
        for arg in (
            "beta_initializer",
            "gamma_initializer",
            "moving_mean_initializer",
            "moving_variance_initializer",
        ):
            cfg[arg] = initializer_config(self, arg, getattr(self, arg))
        return cfg
