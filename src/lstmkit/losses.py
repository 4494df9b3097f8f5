"""Losses with Keras 3 values and their exact gradients with respect to ``y_pred``.

Every loss first computes one value per sample (per time step for 3-D input), then reduces as
Keras' ``"sum_over_batch_size"``::

    per-sample  l[b(, t)] = mean_k e(y_true[..., k], y_pred[..., k])   # element-wise losses
                l[b(, t)] = -sum_k y_true[..., k] * log q[..., k]        # cross-entropies
    L = sum(w * l) / l.size                                              # w = sample_weight or 1
    dL/dy_pred = w * dl/dy_pred / l.size                                 # same shape as y_pred

so without weights an element-wise loss is the mean over every element. Element-wise terms, with
``d = y_pred - y_true`` and ``p = clip(y_pred, eps, 1 - eps)``, ``eps = 1e-7`` (Keras'
``epsilon()``; the clip has zero gradient outside its range, as in Keras)::

    mse     d^2                                   2 d
    mae     |d|                                   sign(d)
    huber   d^2 / 2 if |d| <= delta               d
            delta * (|d| - delta / 2) otherwise   delta * sign(d)
    bce     -(t log p + (1 - t) log(1 - p))       -(t / p - (1 - t) / (1 - p))
    bce(x)  max(x, 0) - x t + log(1 + e^-|x|)     sigmoid(x) - t             (from logits)

Categorical cross-entropy from probabilities renormalises first, ``q = clip(y / sum(y), eps,
1 - eps)``; from logits it uses ``log q = log_softmax(x)`` and the gradient
``softmax(x) * sum(t) - t``. Sparse targets are integer class ids of shape ``y_pred.shape[:-1]``
and behave exactly like their one-hot encoding. Logit forms never exponentiate a positive number,
so logits of +-1e4 give finite values and gradients.

A 1-D ``y_pred`` of shape ``(B,)`` is read as one output per sample; ``y_true`` of shape
``(B, T)`` against ``y_pred (B, T, 1)`` gets the trailing axis added, as Keras does.
"""

from __future__ import annotations

import numpy as np

from .ops.activations import log_softmax, softmax

EPSILON = 1e-7  # keras.config.epsilon()


def _float_dtype(a):
    return a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)


def _sigmoid(x):
    # exp(-softplus(-x)): exact relative precision in both tails, no overflow.
    return np.exp(-np.logaddexp(0.0, -x))


class Loss:
    """Base: shape checks, the Keras reduction and sample weights. Subclasses implement
    ``_values(y_true, y_pred) -> l`` and ``_dvalues(y_true, y_pred) -> dl/dy_pred``."""

    name = "loss"
    sparse = False  # True when y_true holds class ids (one axis fewer than y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        y_true, y_pred = self._prepare(y_true, y_pred)
        values = self._values(y_true, y_pred)
        w = self._weights(sample_weight, values)
        return float(np.sum(values if w is None else w * values) / values.size)

    def grad(self, y_true, y_pred, sample_weight=None) -> np.ndarray:
        """``dL/dy_pred`` for ``L = self(y_true, y_pred, sample_weight)``; shape of ``y_pred``."""
        y_true, y_pred = self._prepare(y_true, y_pred)
        dvalues = self._dvalues(y_true, y_pred)
        n = dvalues.size // dvalues.shape[-1] if dvalues.ndim > 1 else dvalues.size  # l.size
        values_shape = dvalues.shape[:-1] if dvalues.ndim > 1 else dvalues.shape
        w = self._weights(sample_weight, np.empty(values_shape, dvalues.dtype))
        if w is not None:
            dvalues = dvalues * (w[..., None] if dvalues.ndim > 1 else w)
        return dvalues / dvalues.dtype.type(n)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        """``(self(...), self.grad(...))``; subclasses fuse the two where it saves passes over
        the data (training calls this once per step)."""
        return self(y_true, y_pred, sample_weight), self.grad(y_true, y_pred, sample_weight)

    # -- helpers shared by the subclasses
    def _prepare(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if y_pred.ndim == 0 or y_pred.size == 0:
            raise ValueError(
                f"{type(self).__name__}: argument 'y_pred' must be a non-empty array of shape "
                f"(batch, ...); got shape {y_pred.shape}"
            )
        y_pred = y_pred.astype(_float_dtype(y_pred), copy=False)
        y_true = np.asarray(y_true)
        if y_true.shape != y_pred.shape:
            # Keras' squeeze_or_expand_to_same_rank: a trailing axis of size 1 may be missing.
            if y_true.ndim == y_pred.ndim - 1 and y_pred.shape == y_true.shape + (1,):
                y_true = y_true[..., None]
            elif y_true.ndim == y_pred.ndim + 1 and y_true.shape == y_pred.shape + (1,):
                y_true = y_true[..., 0]
            else:
                raise ValueError(
                    f"{type(self).__name__}: argument 'y_true' must have the shape of 'y_pred' "
                    f"{y_pred.shape}; got {y_true.shape}"
                )
        return y_true.astype(y_pred.dtype, copy=False), y_pred

    def _weights(self, sample_weight, values):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=values.dtype)
        if w.ndim == values.ndim + 1 and w.shape[-1] == 1:
            w = w[..., 0]
        if w.ndim < values.ndim:  # (B,) weights for (B, T) per-step losses: one per sequence
            w = w.reshape(w.shape + (1,) * (values.ndim - w.ndim))
        try:
            return np.broadcast_to(w, values.shape)
        except ValueError:
            raise ValueError(
                f"{type(self).__name__}: argument 'sample_weight' must have shape "
                f"{values.shape} or a prefix of it (per-sample loss shape); "
                f"got {np.shape(sample_weight)}"
            ) from None

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Elementwise(Loss):
    """Element-wise ``e(t, y)``, averaged over the last axis (features) per sample."""

    def _e(self, t, y):
        raise NotImplementedError

    def _de(self, t, y):
        raise NotImplementedError

    def _values(self, y_true, y_pred):
        e = self._e(y_true, y_pred)
        return e.mean(axis=-1) if e.ndim > 1 else e

    def _dvalues(self, y_true, y_pred):
        de = self._de(y_true, y_pred)
        return de / de.dtype.type(de.shape[-1]) if de.ndim > 1 else de


class MeanSquaredError(_Elementwise):
    name = "mean_squared_error"

    def _e(self, t, y):
        return np.square(y - t)

    def _de(self, t, y):
        return 2 * (y - t)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            return super().value_and_grad(y_true, y_pred, sample_weight)
        y_true, y_pred = self._prepare(y_true, y_pred)
        d = y_pred - y_true  # the mean over features, then over samples: sum(d^2) / d.size
        value = float(np.sum(d * d) / d.size)
        d *= d.dtype.type(2 / d.size)
        return value, d


class MeanAbsoluteError(_Elementwise):
    name = "mean_absolute_error"

    def _e(self, t, y):
        return np.abs(y - t)

    def _de(self, t, y):
        return np.sign(y - t)


class Huber(_Elementwise):
    name = "huber_loss"

    def __init__(self, delta=1.0):
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or delta <= 0:
            raise ValueError(f"Huber: argument 'delta' must be a positive number; got {delta!r}")
        self.delta = float(delta)

    def _e(self, t, y):
        d = y - t
        a = np.abs(d)
        return np.where(a <= self.delta, 0.5 * d * d, self.delta * a - 0.5 * self.delta**2)

    def _de(self, t, y):
        d = y - t
        return np.where(np.abs(d) <= self.delta, d, self.delta * np.sign(d))

    def get_config(self):
        return {"delta": self.delta}


class BinaryCrossentropy(_Elementwise):
    name = "binary_crossentropy"

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def _e(self, t, y):
        if self.from_logits:
            return np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))
        p = np.clip(y, EPSILON, 1 - EPSILON)
        return -(t * np.log(p) + (1 - t) * np.log1p(-p))

    def _de(self, t, y):
        if self.from_logits:
            return _sigmoid(y) - t
        p = np.clip(y, EPSILON, 1 - EPSILON)
        inside = (y >= EPSILON) & (y <= 1 - EPSILON)  # the clip passes gradient only here
        return np.where(inside, (1 - t) / (1 - p) - t / p, 0).astype(y.dtype, copy=False)

    def get_config(self):
        return {"from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    """Targets are distributions over the last axis (one-hot or soft) of the shape of y_pred."""

    name = "categorical_crossentropy"

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def _check_rank(self, y_pred):
        if y_pred.ndim < 2:
            raise ValueError(
                f"{type(self).__name__}: argument 'y_pred' must have shape (batch, classes) or "
                f"(batch, timesteps, classes); got {y_pred.shape}"
            )

    def _values(self, t, y):
        self._check_rank(y)
        if self.from_logits:
            return -np.sum(t * log_softmax(y), axis=-1)
        q = y / np.sum(y, axis=-1, keepdims=True)
        return -np.sum(t * np.log(np.clip(q, EPSILON, 1 - EPSILON)), axis=-1)

    def _dvalues(self, t, y):
        self._check_rank(y)
        if self.from_logits:
            return softmax(y) * np.sum(t, axis=-1, keepdims=True) - t
        s = np.sum(y, axis=-1, keepdims=True)
        q = y / s
        inside = (q >= EPSILON) & (q <= 1 - EPSILON)
        gq = np.where(inside, -t / np.clip(q, EPSILON, 1 - EPSILON), 0)  # dl/dq
        # q = y / sum(y): dq_j/dy_k = (delta_jk - q_j) / s
        return ((gq - np.sum(gq * q, axis=-1, keepdims=True)) / s).astype(y.dtype, copy=False)

    def get_config(self):
        return {"from_logits": self.from_logits}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Targets are integer class ids of shape ``y_pred.shape[:-1]`` (a trailing 1 is allowed)."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def _prepare(self, y_true, y_pred):
        labels, y_pred = self._labels(y_true, y_pred)
        one_hot = (labels[..., None] == np.arange(y_pred.shape[-1])).astype(y_pred.dtype)
        return one_hot, y_pred

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None or not self.from_logits:
            return super().value_and_grad(y_true, y_pred, sample_weight)
        labels, y = self._labels(y_true, y_pred)
        # log p_label = z_label - max - log(sum(exp(z - max))); dl/dz = softmax(z) - onehot
        shifted = y - y.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=-1, keepdims=True)
        picked = np.take_along_axis(shifted, labels[..., None], axis=-1)
        n = labels.size
        value = float(np.sum(np.log(s) - picked) / n)
        e /= s
        np.put_along_axis(
            e, labels[..., None], np.take_along_axis(e, labels[..., None], -1) - 1, -1
        )
        e *= e.dtype.type(1 / n)
        return value, e

    def _labels(self, y_true, y_pred):
        """``(integer class ids of shape y_pred.shape[:-1], y_pred as floats)``, checked."""
        owner = type(self).__name__
        y_pred = np.asarray(y_pred)
        self._check_rank(y_pred)
        y_pred = y_pred.astype(_float_dtype(y_pred), copy=False)
        labels = np.asarray(y_true)
        if labels.shape == y_pred.shape[:-1] + (1,) and labels.shape != y_pred.shape[:-1]:
            labels = labels[..., 0]
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(
                f"{owner}: argument 'y_true' must hold class ids of shape {y_pred.shape[:-1]} "
                f"(y_pred.shape[:-1]); got {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            if not np.issubdtype(labels.dtype, np.floating) or np.any(labels != np.round(labels)):
                raise ValueError(
                    f"{owner}: argument 'y_true' must hold integer class ids; got dtype "
                    f"{labels.dtype} with non-integer values"
                )
            labels = labels.astype(np.int64)
        C = y_pred.shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= C):
            raise ValueError(
                f"{owner}: argument 'y_true' must hold class ids in [0, {C}) for y_pred with {C} "
                f"classes; got values in [{labels.min()}, {labels.max()}]"
            )
        return labels, y_pred


LOSSES = {
    cls.__name__.lower(): cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}
ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def get(identifier) -> Loss:
    """A loss from a name (``"mse"``, ``"mean_squared_error"``, ``"Huber"``...), an instance (or
    any object with ``__call__`` and ``grad``), or ``{"class_name": ..., "config": ...}``."""
    if isinstance(identifier, Loss) or (
        callable(identifier) and callable(getattr(identifier, "grad", None))
    ):
        return identifier
    names = {**LOSSES, **ALIASES}
    if isinstance(identifier, str) and identifier.lower() in names:
        return names[identifier.lower()]()
    if isinstance(identifier, dict) and str(identifier.get("class_name")).lower() in names:
        return names[identifier["class_name"].lower()].from_config(
            dict(identifier.get("config", {}))
        )
    raise ValueError(
        f"losses.get: argument 'identifier' must be one of {sorted(names)} (any case), a Loss, "
        f"or {{'class_name': ..., 'config': ...}}; got {identifier!r}"
    )
