"""Layers that only move numbers around: ``RepeatVector``, ``Flatten``, ``Reshape``, ``Permute``.

Keras 3 semantics; shapes exclude the batch axis. None of them supports masking (as in Keras:
the mask stops here). Backward is the inverse movement (RepeatVector: the sum over the copies).
"""

from __future__ import annotations

import math

import numpy as np

from .base import Layer, check_array, fmt_shape


def _positive_int(layer, arg, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(
            f"{type(layer).__name__}: argument '{arg}' must be a positive int; got {v!r}"
        )
    return int(v)


class _Reshaping(Layer):
    """Shared ``forward`` prologue: validate, build on first use, keep the dtype."""

    def _prepare(self, x, rng):
        x = check_array(self, x)
        if self.built:
            expected = tuple(self.built_input_shape)
            fits = len(expected) == x.ndim - 1 and all(
                e is None or e == d for e, d in zip(expected, x.shape[1:])
            )
            if not fits:
                raise ValueError(
                    f"{type(self).__name__}: argument 'x' must have shape "
                    f"{fmt_shape((None,) + expected)}; got {x.shape}"
                )
        else:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        return x.astype(self.dtype, copy=False) if x.dtype.kind != "f" else x


class RepeatVector(_Reshaping):
    """``(batch, features) -> (batch, n, features)``: the input repeated ``n`` times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _positive_int(self, "n", n)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"RepeatVector: input must have shape (batch, features); got "
                f"{fmt_shape((None,) + tuple(input_shape))}"
            )
        return (self.n, input_shape[0])

    def build(self, input_shape, rng=None, dtype=None):
        self.compute_output_shape(input_shape)  # validates the rank
        super().build(input_shape, rng, dtype)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        return np.repeat(x[:, None, :], self.n, axis=1), None  # (B, n, D)

    def backward(self, dy, cache):
        return dy.sum(axis=1), {}

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


class Flatten(_Reshaping):
    """``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``; ``data_format="channels_first"``
    moves axis 1 last first (Keras)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(
                "Flatten: argument 'data_format' must be 'channels_last' or 'channels_first'; "
                f"got {data_format!r}"
            )
        self.data_format = data_format or "channels_last"

    def compute_output_shape(self, input_shape):
        return (None,) if None in input_shape else (math.prod(input_shape),)

    def _axes(self, ndim):
        return (0, *range(2, ndim), 1)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        if self.data_format == "channels_first" and x.ndim > 2:
            x = x.transpose(self._axes(x.ndim))
        return x.reshape(len(x), -1), x.shape

    def backward(self, dy, cache):
        dx = dy.reshape(cache)
        if self.data_format == "channels_first" and len(cache) > 2:
            dx = dx.transpose(np.argsort(self._axes(len(cache))))
        return dx, {}

    def get_config(self):
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg


class Reshape(_Reshaping):
    """``(batch, ...) -> (batch, *target_shape)``; one entry of ``target_shape`` may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"Reshape: argument 'target_shape' must be a tuple of ints; got {target_shape!r}"
            ) from None
        if any(d < 1 and d != -1 for d in target) or target.count(-1) > 1:
            raise ValueError(
                "Reshape: argument 'target_shape' must hold positive ints and at most one -1; "
                f"got {target_shape!r}"
            )
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        if None in input_shape:  # a variable-length axis: the -1 entry is unknown until called
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        resolved = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(resolved) != size:
            raise ValueError(
                f"Reshape: argument 'target_shape' {self.target_shape} does not fit an input of "
                f"shape {fmt_shape((None,) + tuple(input_shape))} ({size} values per sample)"
            )
        return resolved

    def build(self, input_shape, rng=None, dtype=None):
        self.compute_output_shape(input_shape)  # validates the sizes
        super().build(input_shape, rng, dtype)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        return x.reshape((len(x),) + self.compute_output_shape(x.shape[1:])), x.shape

    def backward(self, dy, cache):
        return dy.reshape(cache), {}

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


class Permute(_Reshaping):
    """Permutes the non-batch axes: ``dims`` is a permutation of ``1..rank`` (Keras, 1-indexed),
    e.g. ``Permute((2, 1))`` swaps time and features."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(int(d) for d in dims)
        except (TypeError, ValueError):
            raise ValueError(
                f"Permute: argument 'dims' must be a tuple of ints; got {dims!r}"
            ) from None
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Permute: argument 'dims' must be a permutation of 1..rank (the batch axis 0 "
                f"stays first); got {dims!r}"
            )
        self.dims = dims

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims):
            raise ValueError(
                f"Permute: dims {self.dims} need inputs of rank {len(self.dims) + 1}; got shape "
                f"{fmt_shape((None,) + tuple(input_shape))}"
            )
        return tuple(input_shape[d - 1] for d in self.dims)

    def build(self, input_shape, rng=None, dtype=None):
        self.compute_output_shape(input_shape)
        super().build(input_shape, rng, dtype)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._prepare(x, rng)
        return np.ascontiguousarray(x.transpose((0, *self.dims))), None

    def backward(self, dy, cache):
        inverse = (0, *(int(i) + 1 for i in np.argsort(self.dims)))
        return np.ascontiguousarray(dy.transpose(inverse)), {}

    def get_config(self):
        cfg = super().get_config()
        cfg["dims"] = list(self.dims)
        return cfg
