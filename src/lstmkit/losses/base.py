"""The loss base class: shape checks, Keras' ``"sum_over_batch_size"`` reduction and sample
weights. Subclasses give per-sample values and their derivative (see the package docstring)."""

from __future__ import annotations

import numpy as np

from .._config import Configurable

EPSILON = 1e-7  # keras.config.epsilon()


def float_dtype(a):
    return a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)  # (kind f: np.floating)


def sigmoid(x):
    # exp(-softplus(-x)): exact relative precision in both tails, no overflow.
    return np.exp(-np.logaddexp(0.0, -x))


class Loss(Configurable):
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

    def call(self, y_true, y_pred) -> np.ndarray:
        """The per-sample values before reduction (Keras' ``Loss.call``): shape
        ``y_pred.shape[:-1]`` (``(B,)`` for a 1-D ``y_pred``)."""
        return self._values(*self._prepare(y_true, y_pred))

    # -- helpers shared by the subclasses
    def _prepare(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if y_pred.ndim == 0 or y_pred.size == 0:
            raise ValueError(
                f"{type(self).__name__}: argument 'y_pred' must be a non-empty array of shape "
                f"(batch, ...); got shape {y_pred.shape}"
            )
        y_pred = y_pred.astype(float_dtype(y_pred), copy=False)
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
