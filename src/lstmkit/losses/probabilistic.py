"""Probabilistic losses: binary, categorical and sparse categorical cross-entropy (from
probabilities or logits) and the Kullback-Leibler divergence."""

from __future__ import annotations

import numpy as np

from ..ops import backend
from ..ops.activations import log_softmax, softmax
from .base import EPSILON, Loss, _Elementwise, float_dtype, sigmoid

_KERNEL_FLOATS = (np.float32, np.float64)  # the compiled pass's float types (else NumPy's form)


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
            return sigmoid(y) - t
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
        fast = backend.fast_ops()
        if fast is not None and y.flags.c_contiguous and labels.size and y.dtype in _KERNEL_FLOATS:
            return self._fast_value_and_grad(fast, labels, y)
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

    @staticmethod
    def _fast_value_and_grad(fast, labels, y):
        """``value_and_grad`` from logits in one compiled pass (``ops/fast/xent.py``)."""
        C = y.shape[-1]
        grad = np.empty_like(y)
        n = labels.size
        total = fast.sparse_xent(
            y.reshape(-1, C), labels.reshape(-1).astype(np.int64, copy=False),
            y.dtype.type(1 / n), grad.reshape(-1, C),
        )  # fmt: skip
        return float(total / n), grad

    def _labels(self, y_true, y_pred):
        """``(integer class ids of shape y_pred.shape[:-1], y_pred as floats)``, checked."""
        owner = type(self).__name__
        y_pred = np.asarray(y_pred)
        self._check_rank(y_pred)
        y_pred = y_pred.astype(float_dtype(y_pred), copy=False)
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


class KLDivergence(Loss):
    """Kullback-Leibler divergence ``l = sum_k t' log(t' / y')`` over the last axis, with
    ``t' = clip(t, eps, 1)`` and ``y' = clip(y, eps, 1)`` (Keras); ``dl/dy = -t' / y'`` where
    ``eps <= y <= 1`` and 0 outside, where the clip is flat."""

    name = "kl_divergence"

    def _check_rank(self, y_pred):
        if y_pred.ndim < 2:
            raise ValueError(
                f"KLDivergence: argument 'y_pred' must have shape (batch, classes) or "
                f"(batch, timesteps, classes); got {y_pred.shape}"
            )

    def _values(self, t, y):
        self._check_rank(y)
        t, q = np.clip(t, EPSILON, 1), np.clip(y, EPSILON, 1)
        return np.sum(t * np.log(t / q), axis=-1)

    def _dvalues(self, t, y):
        self._check_rank(y)
        t, q = np.clip(t, EPSILON, 1), np.clip(y, EPSILON, 1)
        inside = (y >= EPSILON) & (y <= 1)
        return np.where(inside, -t / q, 0).astype(y.dtype, copy=False)
