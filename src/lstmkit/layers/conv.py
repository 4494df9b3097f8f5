"""1-D convolution and pooling for CNN-LSTM models (Keras 3 semantics, ``channels_last``).

``Conv1D``: ``x (B, L, C)`` -> ``y (B, L_out, filters)``::

    y[b, t, f] = activation(bias[f] + sum_{j, c} xp[b, t * strides + j * dilation_rate, c]
                                                  * kernel[j, c, f])

with Keras' kernel layout ``(kernel_size, C, filters)`` and ``xp`` the padded input:
``valid`` none, ``same`` ``total = max((ceil(L / s) - 1) s + (k - 1) d + 1 - L, 0)`` split
``total // 2`` left and the rest right, ``causal`` ``(k - 1) d`` on the left only. The windows
are gathered once (``im2col``, ``(B, L_out, k, C)``) and multiplied by the kernel in one
product; backward scatters the window gradients back tap by tap (k vectorised additions).

``MaxPooling1D`` takes the maximum over windows of ``pool_size`` every ``strides`` steps
(``same`` pads as above with -inf: only real steps can win); the gradient goes to the first
maximum of each window. ``GlobalAveragePooling1D`` averages over time, over unmasked steps only
when a mask is given (a sequence with no unmasked step gives 0 where Keras gives NaN);
``GlobalMaxPooling1D`` takes the maximum over time (it ignores masks, as Keras does). With
``data_format="channels_first"`` inputs are ``(B, C, L)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import initializers
from ..ops import backend
from ..ops.activations import activation_spec, activation_vjp
from .base import Layer, check_array, check_mask, fmt_shape
from .core import activation_name, initializer_config

PADDINGS = ("valid", "same", "causal")
DATA_FORMATS = ("channels_last", "channels_first")


def _positive_int(layer, arg, v):
    if isinstance(v, (list, tuple)) and len(v) == 1:  # Keras accepts (3,) for 3
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(
            f"{type(layer).__name__}: argument '{arg}' must be a positive int; got {v!r}"
        )
    return int(v)


def _choice(layer, arg, v, allowed):
    if v not in allowed:
        raise ValueError(
            f"{type(layer).__name__}: argument '{arg}' must be one of {allowed}; got {v!r}"
        )
    return v


def _data_format(layer, v):
    return _choice(layer, "data_format", v or "channels_last", DATA_FORMATS)


def _pads(padding, L, k, s, d):
    """``(left, right)`` padding of a length-``L`` axis for window ``k``, stride ``s``,
    dilation ``d`` (Keras/TensorFlow rules)."""
    span = (k - 1) * d + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    total = max((math.ceil(L / s) - 1) * s + span - L, 0)
    return total // 2, total - total // 2


def _out_len(padding, L, k, s, d):
    if L is None:
        return None
    left, right = _pads(padding, L, k, s, d)
    n = (L + left + right - ((k - 1) * d + 1)) // s + 1
    return max(n, 0)


def _windows(xp, L_out, k, s, d):
    """``xp (B, Lp, C)`` -> ``(B, L_out, k, C)``: window t holds steps ``t*s + j*d``."""
    idx = np.arange(L_out)[:, None] * s + np.arange(k)[None, :] * d  # (L_out, k)
    return xp[:, idx, :]


def _scatter(dwin, Lp, s, d):
    """Adjoint of :func:`_windows`: ``(B, L_out, k, C)`` -> ``(B, Lp, C)``, one add per tap."""
    B, L_out, k, C = dwin.shape
    dxp = np.zeros((B, Lp, C), dwin.dtype)
    for j in range(k):  # k vectorised additions (windows of one tap never overlap each other)
        start = j * d
        dxp[:, start : start + (L_out - 1) * s + 1 : s, :] += dwin[:, :, j, :]
    return dxp


class _Temporal(Layer):
    """Shared prologue: validate ``(batch, steps, channels)`` (or channels first), build on
    first use, move channels last."""

    def _prepare(self, x, rng):
        x = check_array(self, x, rank=3)
        if not self.built:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        exp = tuple(self.built_input_shape)
        if not all(e is None or e == g for e, g in zip(exp, x.shape[1:])):
            raise ValueError(
                f"{type(self).__name__}: argument 'x' must have shape {fmt_shape((None,) + exp)}; "
                f"got {x.shape}"
            )
        x = x.astype(self.dtype, copy=False)
        return x.transpose(0, 2, 1) if self.data_format == "channels_first" else x

    def _steps_channels(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__}: input must have shape (batch, steps, channels); got "
                f"{fmt_shape((None,) + tuple(input_shape))}"
            )
        L, C = input_shape
        return (C, L) if self.data_format == "channels_first" else (L, C)

    def _out(self, y):
        return (
            np.ascontiguousarray(y.transpose(0, 2, 1))
            if self.data_format == "channels_first"
            else y
        )

    def _in_grad(self, dx):
        return (
            np.ascontiguousarray(dx.transpose(0, 2, 1))
            if self.data_format == "channels_first"
            else dx
        )

    def _shape(self, L, C):
        return (C, L) if self.data_format == "channels_first" else (L, C)


class ConvCache(NamedTuple):
    cols: np.ndarray  # (B * L_out, k * C) the gathered windows
    Lp: int  # padded length
    pads: tuple
    z: np.ndarray | None
    y: np.ndarray


class Conv1D(_Temporal):
    """1-D convolution; ``kernel (kernel_size, channels, filters)``, ``bias (filters,)``."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _positive_int(self, "filters", filters)
        self.kernel_size = _positive_int(self, "kernel_size", kernel_size)
        self.strides = _positive_int(self, "strides", strides)
        self.dilation_rate = _positive_int(self, "dilation_rate", dilation_rate)
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "Conv1D: strides > 1 cannot be combined with dilation_rate > 1 (as in Keras); "
                f"got strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.padding = _choice(self, "padding", padding, PADDINGS)
        self.data_format = _data_format(self, data_format)
        if self.padding == "causal" and self.data_format == "channels_first":
            raise ValueError("Conv1D: padding='causal' needs data_format='channels_last' (Keras)")
        if groups != 1:
            raise ValueError(
                f"Conv1D: argument 'groups' must be 1 (grouped convolution is not supported); got {groups!r}"
            )
        self.activation = activation_name(self, activation)
        spec = activation_spec(activation)
        self._act, self._vjp, self._keep_z = spec.fn, activation_vjp(activation), spec.needs_input
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    @property
    def weight_names(self):
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def _geometry(self):
        return self.kernel_size, self.strides, self.dilation_rate

    def _build(self, input_shape, rng):
        _, C = self._steps_channels(input_shape)
        k = self.kernel_size
        self.add_weight(
            "kernel", (k, C, self.filters), initializers.get(self.kernel_initializer), rng
        )
        if self.use_bias:
            self.add_weight("bias", (self.filters,), initializers.get(self.bias_initializer), rng)

    def compute_output_shape(self, input_shape):
        L, _ = self._steps_channels(input_shape)
        return self._shape(_out_len(self.padding, L, *self._geometry()), self.filters)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)  # (B, L, C)
        B, L, C = x.shape
        k, s, d = self._geometry()
        pads = _pads(self.padding, L, k, s, d)
        L_out = _out_len(self.padding, L, k, s, d)
        if L_out < 1:
            raise ValueError(
                f"Conv1D: {L} steps are fewer than the kernel's span {(k - 1) * d + 1} with "
                f"padding={self.padding!r}"
            )
        xp = np.pad(x, ((0, 0), pads, (0, 0))) if any(pads) else x
        cols = _windows(xp, L_out, k, s, d).reshape(B * L_out, k * C)
        z = backend.matmul(cols, self.params["kernel"].reshape(k * C, self.filters))
        if self.use_bias:
            z += self.params["bias"]
        z = z.reshape(B, L_out, self.filters)
        y = self._act(z)
        cache = ConvCache(cols, xp.shape[1], pads, z if self._keep_z else None, y)
        return self._out(y), cache

    def backward(self, dy, cache):
        cols, Lp, (left, right), z, y = cache
        dz = self._vjp(self._in_grad(dy), y, z)  # (B, L_out, F)
        B, L_out, F = dz.shape
        k, s, d = self._geometry()
        dz2 = dz.reshape(B * L_out, F)
        kernel = self.params["kernel"]
        grads = {"kernel": backend.matmul(cols.T, dz2).reshape(kernel.shape)}
        if self.use_bias:
            grads["bias"] = dz2.sum(axis=0)
        dcols = backend.matmul(dz2, kernel.reshape(-1, F).T).reshape(B, L_out, k, -1)
        dxp = _scatter(dcols, Lp, s, d)
        return self._out(dxp[:, left : Lp - right, :]), grads

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=1,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=initializer_config(
                self, "kernel_initializer", self.kernel_initializer
            ),
            bias_initializer=initializer_config(self, "bias_initializer", self.bias_initializer),
        )
        return cfg


class MaxPooling1D(_Temporal):
    """Maximum over windows of ``pool_size`` steps every ``strides`` (default ``pool_size``)."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _positive_int(self, "pool_size", pool_size)
        self.strides = (
            self.pool_size if strides is None else _positive_int(self, "strides", strides)
        )
        self.padding = _choice(self, "padding", padding, ("valid", "same"))
        self.data_format = _data_format(self, data_format)

    def compute_output_shape(self, input_shape):
        L, C = self._steps_channels(input_shape)
        return self._shape(_out_len(self.padding, L, self.pool_size, self.strides, 1), C)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        L = x.shape[1]
        p, s = self.pool_size, self.strides
        pads = _pads(self.padding, L, p, s, 1)
        L_out = _out_len(self.padding, L, p, s, 1)
        if L_out < 1:
            raise ValueError(f"MaxPooling1D: {L} steps are fewer than pool_size={p}")
        xp = np.pad(x, ((0, 0), pads, (0, 0)), constant_values=-np.inf) if any(pads) else x
        win = _windows(xp, L_out, p, s, 1)  # (B, L_out, p, C)
        arg = win.argmax(axis=2)  # first maximum of each window
        y = np.take_along_axis(win, arg[:, :, None, :], axis=2)[:, :, 0, :]
        return self._out(y), (arg, xp.shape[1], pads)

    def backward(self, dy, cache):
        arg, Lp, (left, right) = cache
        dy = self._in_grad(dy)
        onehot = arg[:, :, None, :] == np.arange(self.pool_size)[None, None, :, None]
        dwin = np.where(onehot, dy[:, :, None, :], dy.dtype.type(0))  # (B, L_out, p, C)
        dxp = _scatter(dwin, Lp, self.strides, 1)
        return self._out(dxp[:, left : Lp - right, :]), {}

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            pool_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )
        return cfg


class _GlobalPooling1D(_Temporal):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(self, data_format)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        _, C = self._steps_channels(input_shape)
        return self._shape(1, C) if self.keepdims else (C,)

    def compute_mask(self, x, mask):
        return None

    def _finish(self, y):
        """``(B, C)`` -> the output shape (keepdims, channels first)."""
        return self._out(y[:, None, :]) if self.keepdims else y

    def _dy(self, dy):
        """The output gradient as ``(B, 1, C)``."""
        return self._in_grad(dy) if self.keepdims else dy[:, None, :]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(data_format=self.data_format, keepdims=self.keepdims)
        return cfg


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over time; with a mask ``(batch, steps)`` the mean of the unmasked steps."""

    supports_masking = True

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        B, L, _ = x.shape
        if mask is None:
            w = np.full((B, L, 1), 1 / L, x.dtype)
        else:
            m = check_mask(self, mask, B, L).astype(x.dtype)[:, :, None]  # (B, L, 1)
            w = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        return self._finish(np.sum(x * w, axis=1)), w

    def backward(self, dy, cache):
        return self._out(self._dy(dy) * cache), {}


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Maximum over time (masks are ignored, as in Keras)."""

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        arg = x.argmax(axis=1)  # (B, C) the first maximum
        y = np.take_along_axis(x, arg[:, None, :], axis=1)[:, 0, :]
        return self._finish(y), (arg, x.shape)

    def backward(self, dy, cache):
        arg, shape = cache
        onehot = np.arange(shape[1])[None, :, None] == arg[:, None, :]  # (B, L, C)
        return self._out(np.where(onehot, self._dy(dy), self._dy(dy).dtype.type(0))), {}
