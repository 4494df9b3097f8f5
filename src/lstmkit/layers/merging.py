"""Merging layers (Keras 3): ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum``, ``Concatenate``, ``Dot``, and their functional forms ``add([...])`` ...

Protocol for several inputs (``multi_input = True``): ``forward(xs, mask=masks)`` takes a list of
arrays and a list of masks (or None), ``backward(dy, cache)`` returns ``(list of dx, {})``,
``build``/``compute_output_shape`` take a list of shapes (without the batch axis) and
``compute_mask(xs, masks)`` returns the output mask.

Element-wise merges broadcast as Keras does: an input of lower rank gets axes inserted after the
batch axis, then NumPy broadcasting applies; backward sums each gradient back to its input's
shape. Masks as Keras: the output mask is the OR of the input masks when every input has one
(else None); ``Multiply`` treats masked entries as 1 (and zeroes the output where every input is
masked); ``Maximum``/``Minimum`` follow Keras' substitution of masked entries. Where inputs tie,
``Maximum``/``Minimum`` send the gradient to the first input holding the extreme value.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from .base import Layer, check_array, fmt_shape

EPSILON = 1e-7  # keras.config.epsilon(), Dot(normalize=True)'s floor on the norm


def _broadcast_shape(layer, shapes):
    """Keras' element-wise output shape of shapes without the batch axis (None: unknown)."""
    rank = max(len(s) for s in shapes)
    out = [1] * rank
    for s in shapes:
        s = (1,) * (rank - len(s)) + tuple(s)  # lower rank: axes inserted after the batch axis
        for k, d in enumerate(s):
            if d == 1 or d is None and out[k] != 1:
                continue  # 1 broadcasts; an unknown size defers to a known one
            if out[k] in (1, None):
                out[k] = d
            elif d != out[k]:
                raise ValueError(
                    f"{type(layer).__name__}: inputs must have compatible shapes; got "
                    + ", ".join(fmt_shape((None,) + tuple(t)) for t in shapes)
                )
    return tuple(out)


def _expand(x, rank):
    """Insert axes after the batch axis up to ``rank`` (Keras' merge of unequal ranks)."""
    return x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:])


def _reduce_to(d, shape):
    """Sum a broadcast gradient back to ``shape`` (the inverse of :func:`_expand` + broadcast)."""
    full = shape[:1] + (1,) * (d.ndim - len(shape)) + shape[1:]
    axes = tuple(k for k, (a, b) in enumerate(zip(full, d.shape)) if a == 1 and b != 1)
    return (d.sum(axis=axes, keepdims=True) if axes else d).reshape(shape)


def _or_masks(masks):
    if masks is None or any(m is None for m in masks):
        return None
    out = np.asarray(masks[0], bool)
    for m in masks[1:]:
        out = out | np.asarray(m, bool)
    return out


class _Merge(Layer):
    multi_input = True
    supports_masking = True
    n_inputs: int | None = None  # exactly this many (Subtract, Dot), else at least one

    def _check_count(self, n, what):
        name = type(self).__name__
        if self.n_inputs is not None and n != self.n_inputs:
            raise ValueError(
                f"{name}: argument '{what}' must be a list of {self.n_inputs}; got {n}"
            )
        if n < 1:
            raise ValueError(f"{name}: argument '{what}' must be a list of at least one; got 0")

    def _check_shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) for s in shapes
        ):
            raise ValueError(
                f"{type(self).__name__}: a merging layer takes a list of input shapes; got "
                f"{shapes!r}"
            )
        self._check_count(len(shapes), "input_shape")

    def build(self, input_shape, rng=None, dtype=None):
        self._check_shapes(input_shape)
        self.compute_output_shape(input_shape)  # validates compatibility
        super().build(input_shape, rng, dtype)

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        return _broadcast_shape(self, input_shape)

    def compute_mask(self, xs, masks):
        return _or_masks(masks)

    def _prepare(self, xs, mask, rng):
        """Validate the list of inputs (and masks); build on first use; cast to the dtype."""
        name = type(self).__name__
        if not isinstance(xs, (list, tuple)):
            raise ValueError(
                f"{name}: argument 'x' must be a list of arrays; got {type(xs).__name__}"
            )
        self._check_count(len(xs), "x")
        xs = [check_array(self, x, arg=f"x[{i}]") for i, x in enumerate(xs)]
        if len({len(x) for x in xs}) > 1:
            raise ValueError(
                f"{name}: the inputs must have the same batch size; got shapes "
                + ", ".join(str(x.shape) for x in xs)
            )
        if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) != len(xs)):
            raise ValueError(
                f"{name}: argument 'mask' must be None or a list of {len(xs)} masks (or None)"
            )
        shapes = [x.shape[1:] for x in xs]
        if not self.built:
            first = xs[0].dtype
            self.build(shapes, rng, first if first.kind == "f" else None)
        elif shapes != self.__dict__.get("_valid_shapes"):  # checked once per set of shapes
            self.compute_output_shape(shapes)
            self._valid_shapes = shapes  # (a training step meets the same shapes every time)
        return [x.astype(self.dtype, copy=False) for x in xs]


class _Elementwise(_Merge):
    """Merges whose value ignores masks: Add, Subtract, Average."""

    def forward(self, xs, *, training=False, mask=None, rng=None):
        xs = self._prepare(xs, mask, rng)
        rank = max(x.ndim for x in xs)
        y = self._merge([_expand(x, rank) for x in xs])
        return y, tuple(x.shape for x in xs)

    def backward(self, dy, cache):
        return [_reduce_to(d, s) for d, s in zip(self._grads(dy, len(cache)), cache)], {}


class Add(_Elementwise):
    """``y = x_1 + x_2 + ...``."""

    def _merge(self, xs):
        y = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
        for x in xs[2:]:
            y += x
        return y

    def _grads(self, dy, n):
        return [dy] * n


class Subtract(_Elementwise):
    """``y = x_1 - x_2`` (exactly two inputs)."""

    n_inputs = 2

    def _merge(self, xs):
        return xs[0] - xs[1]

    def _grads(self, dy, n):
        return [dy, -dy]


class Average(_Elementwise):
    """``y = (x_1 + ... + x_n) / n``."""

    def _merge(self, xs):
        y = Add._merge(self, xs)
        return y / y.dtype.type(len(xs))

    def _grads(self, dy, n):
        return [dy / dy.dtype.type(n)] * n


def _expanded_mask(m, x):
    """A ``(batch, ...)`` mask broadcast to ``x``'s shape over its trailing axes (Keras)."""
    m = np.asarray(m, bool)
    return np.broadcast_to(m.reshape(m.shape + (1,) * (x.ndim - m.ndim)), x.shape)


class MultiplyCache(NamedTuple):
    xs: list  # the factors after masked entries became 1, expanded to a common rank
    keep: list  # per input: where it was not masked (or None), expanded like xs
    out_keep: np.ndarray | None  # where the output is kept (every input has a mask)
    shapes: tuple


class Multiply(_Merge):
    """``y = x_1 * x_2 * ...``; masked entries count as 1, and where every input is masked the
    output is 0 (Keras 3)."""

    def forward(self, xs, *, training=False, mask=None, rng=None):
        xs = self._prepare(xs, mask, rng)
        shapes = tuple(x.shape for x in xs)
        masks = mask if mask is not None else [None] * len(xs)
        keep = [None if m is None else _expanded_mask(m, x) for m, x in zip(masks, xs)]
        xs = [x if k is None else np.where(k, x, x.dtype.type(1)) for x, k in zip(xs, keep)]
        rank = max(x.ndim for x in xs)
        xs = [_expand(x, rank) for x in xs]
        keep = [None if k is None else _expand(k, rank) for k in keep]
        y = xs[0].copy() if len(xs) == 1 else xs[0] * xs[1]
        for x in xs[2:]:
            y *= x
        out_keep = None
        if all(k is not None for k in keep):
            out_keep = np.logical_or.reduce(np.broadcast_arrays(*keep))
            y = np.where(out_keep, y, y.dtype.type(0))
        return y, MultiplyCache(xs, keep, out_keep, shapes)

    def backward(self, dy, cache):
        xs, keep, out_keep, shapes = cache
        if out_keep is not None:
            dy = np.where(out_keep, dy, dy.dtype.type(0))
        dxs = []
        for i in range(len(xs)):  # the product of the other factors: no division by a zero
            d = dy
            for j, x in enumerate(xs):
                if j != i:
                    d = d * x
            if keep[i] is not None:
                d = np.where(keep[i], d, d.dtype.type(0))
            dxs.append(_reduce_to(d, shapes[i]))
        return dxs, {}


class _Extremum(_Merge):
    """Maximum / Minimum with Keras' handling of masks; gradient to the selected input."""

    def _better(self, a, b):  # where a strictly beats b
        raise NotImplementedError

    def forward(self, xs, *, training=False, mask=None, rng=None):
        xs = self._prepare(xs, mask, rng)
        shapes = tuple(x.shape for x in xs)
        rank = max(x.ndim for x in xs)
        xs = [_expand(x, rank) for x in xs]
        masks = mask if mask is not None else [None] * len(xs)
        keep = [None if m is None else _expanded_mask(m, x) for m, x in zip(masks, xs)]
        out, out_keep = xs[0], keep[0]
        src = np.zeros(np.broadcast_shapes(*(x.shape for x in xs)), np.intp)  # who gave out
        for i in range(1, len(xs)):
            x, x_src = xs[i], np.full(src.shape, i, np.intp)
            if keep[i] is not None:  # a masked entry of x takes the running output's value
                x, x_src = np.where(keep[i], x, out), np.where(keep[i], x_src, src)
            if out_keep is not None:  # a masked entry of the output takes x's value
                out, src = np.where(out_keep, out, x), np.where(out_keep, src, x_src)
            out_keep = None if keep[i] is None or out_keep is None else out_keep | keep[i]
            take = self._better(x, out)
            out, src = np.where(take, x, out), np.where(take, x_src, src)
        out = np.broadcast_to(out, src.shape).astype(self.dtype, copy=True)
        return out, (src, shapes)

    def backward(self, dy, cache):
        src, shapes = cache
        zero = dy.dtype.type(0)
        return [_reduce_to(np.where(src == i, dy, zero), s) for i, s in enumerate(shapes)], {}


class Maximum(_Extremum):
    """Element-wise maximum of the inputs."""

    def _better(self, a, b):
        return a > b


class Minimum(_Extremum):
    """Element-wise minimum of the inputs."""

    def _better(self, a, b):
        return a < b


class Concatenate(_Merge):
    """Joins the inputs along ``axis`` (counted with the batch axis, as in Keras; -1: features).
    The output mask is Keras': each mask (all-True for an input without one) spread over its
    input's trailing axes, concatenated along ``axis``, then any() over the last axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(
                f"Concatenate: argument 'axis' must be a non-batch axis (an int other than 0); "
                f"got {axis!r}"
            )
        self.axis = int(axis)

    def _shape_axis(self, rank):
        """The axis in shapes without the batch axis, for inputs of ``rank`` (with batch)."""
        a = self.axis if self.axis > 0 else self.axis + rank
        if not 1 <= a < rank:
            raise ValueError(
                f"Concatenate: argument 'axis' {self.axis} is out of range for inputs of rank "
                f"{rank}"
            )
        return a - 1

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        ranks = {len(s) for s in input_shape}
        a = self._shape_axis(len(input_shape[0]) + 1)
        rest = {tuple(s[:a]) + tuple(s[a + 1 :]) for s in input_shape}
        if len(ranks) != 1 or len(rest) != 1:
            raise ValueError(
                "Concatenate: inputs must have the same shape except along the concatenation "
                f"axis {self.axis}; got "
                + ", ".join(fmt_shape((None,) + tuple(s)) for s in input_shape)
            )
        sizes = [s[a] for s in input_shape]
        out = list(input_shape[0])
        out[a] = None if None in sizes else sum(sizes)
        return tuple(out)

    def forward(self, xs, *, training=False, mask=None, rng=None):
        xs = self._prepare(xs, mask, rng)
        a = self._shape_axis(xs[0].ndim) + 1
        y = np.concatenate(xs, axis=a)
        sizes = tuple(x.shape[a] for x in xs)
        if self.__dict__.get("_splits", (None,))[0] != sizes:  # (the same at every step)
            splits = np.cumsum(sizes)[:-1]
            splits.flags.writeable = False
            self._splits = (sizes, splits)
        return y, (a, self._splits[1])

    def backward(self, dy, cache):
        a, splits = cache
        # each input's part of dy, copied (np.split's views, without its Python set-up)
        edges = [0, *splits.tolist(), dy.shape[a]]
        lead = (slice(None),) * a
        return [np.ascontiguousarray(dy[(*lead, slice(lo, hi))])
                for lo, hi in itertools.pairwise(edges)], {}  # fmt: skip

    def compute_mask(self, xs, masks):
        if masks is None or all(m is None for m in masks):
            return None
        full = [
            np.ones(np.shape(x), bool) if m is None else _expanded_mask(m, np.asarray(x))
            for x, m in zip(xs, masks)
        ]
        a = self._shape_axis(np.ndim(xs[0])) + 1
        return np.concatenate(full, axis=a).any(axis=-1)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


class DotCache(NamedTuple):
    X: np.ndarray  # (B, Px, K) the first input, summed axis last
    Y: np.ndarray  # (B, K, Py) the second input, summed axis second
    moved: tuple  # the two inputs' shapes after moving their summed axis
    axes: tuple
    norms: tuple | None  # (n1, inv1, n2, inv2) when normalize


class Dot(_Merge):
    """Batch-wise dot product of two inputs along ``axes`` (an int or a pair; never the batch
    axis 0). The output keeps the first input's other axes, then the second's; two 2-D inputs
    give ``(batch, 1)``. ``normalize=True`` divides each input by its L2 norm along its axis
    first (``x * min(1/||x||, 1/1e-7)``, Keras), making the output a cosine similarity."""

    n_inputs = 2
    supports_masking = True

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, (int, np.integer)) else tuple(axes)
        if len(pair) != 2 or not all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in pair
        ):
            raise ValueError(f"Dot: argument 'axes' must be an int or a pair of ints; got {axes!r}")
        self.axes = int(axes) if isinstance(axes, (int, np.integer)) else [int(a) for a in pair]
        self.normalize = bool(normalize)

    def _resolve(self, ranks):
        """Both summed axes as non-negative axes of the full (batched) inputs."""
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        out = tuple(a % r if a < 0 else a for a, r in zip(pair, ranks))
        if any(a == 0 or a >= r for a, r in zip(out, ranks)):
            raise ValueError(
                f"Dot: argument 'axes' {self.axes} must name a non-batch axis of inputs of rank "
                f"{ranks}"
            )
        return out

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        s1, s2 = (list(s) for s in input_shape)
        a1, a2 = self._resolve((len(s1) + 1, len(s2) + 1))
        if s1[a1 - 1] is not None and s2[a2 - 1] is not None and s1[a1 - 1] != s2[a2 - 1]:
            raise ValueError(
                f"Dot: the summed axes differ in size: {s1[a1 - 1]} (axis {a1} of "
                f"{fmt_shape([None] + s1)}) != {s2[a2 - 1]} (axis {a2} of {fmt_shape([None] + s2)})"
            )
        del s1[a1 - 1], s2[a2 - 1]
        out = tuple(s1 + s2)
        return out or (1,)

    def compute_mask(self, xs, masks):
        return None

    @staticmethod
    def _l2_normalize(x, axis):
        inv = np.minimum(1 / np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), 1 / EPSILON)
        inv = inv.astype(x.dtype, copy=False)
        return x * inv, inv

    def forward(self, xs, *, training=False, mask=None, rng=None):
        x1, x2 = self._prepare(xs, mask, rng)
        a1, a2 = self._resolve((x1.ndim, x2.ndim))
        norms = None
        if self.normalize:
            with np.errstate(divide="ignore"):  # a zero vector: 1/0 = inf, floored by 1/eps
                (x1, inv1), (x2, inv2) = self._l2_normalize(x1, a1), self._l2_normalize(x2, a2)
            norms = (x1, inv1, x2, inv2)
        m1, m2 = np.moveaxis(x1, a1, -1), np.moveaxis(x2, a2, 1)  # (B, ..., K), (B, K, ...)
        B, K = len(m1), m1.shape[-1]
        X, Y = m1.reshape(B, -1, K), m2.reshape(B, K, -1)
        y = np.matmul(X, Y).reshape((B,) + m1.shape[1:-1] + m2.shape[2:])  # (B, Px.., Py..)
        if y.ndim == 1:
            y = y[:, None]
        return y, DotCache(X, Y, (m1.shape, m2.shape), (a1, a2), norms)

    def backward(self, dy, cache):
        X, Y, (s1, s2), (a1, a2), norms = cache
        dR = dy.reshape(len(X), X.shape[1], Y.shape[2])
        dX = np.matmul(dR, Y.transpose(0, 2, 1))  # (B, Px, K)
        dY = np.matmul(X.transpose(0, 2, 1), dR)  # (B, K, Py)
        d1 = np.moveaxis(dX.reshape(s1), -1, a1)
        d2 = np.moveaxis(dY.reshape(s2), 1, a2)
        if norms is not None:
            n1, inv1, n2, inv2 = norms
            d1, d2 = (
                self._normalize_backward(d1, n1, inv1, a1),
                self._normalize_backward(d2, n2, inv2, a2),
            )
        return [d1, d2], {}

    @staticmethod
    def _normalize_backward(g, n, inv, axis):
        # n = x * inv, inv = 1/||x|| (unless floored at 1/eps, where inv is a constant):
        # dx = inv * (g - n * <g, n>)
        on_floor = inv >= 1 / EPSILON
        proj = np.where(on_floor, 0, np.sum(g * n, axis=axis, keepdims=True))
        return inv * (g - n * proj.astype(g.dtype, copy=False))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axes=self.axes, normalize=self.normalize)
        return cfg


# -- functional forms: build the layer and call it (on arrays; the graph makes them symbolic) --
def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
