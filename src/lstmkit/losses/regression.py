"""Regression losses: ``mse``, ``mae``, ``huber``, ``mape``, ``msle``, ``log_cosh`` and
``cosine_similarity`` (formulas in the package docstring)."""

from __future__ import annotations

import numpy as np

from .base import EPSILON, Loss, _Elementwise


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


class MeanAbsolutePercentageError(_Elementwise):
    """``100 |t - y| / max(|t|, eps)``; a zero target divides by eps (1e-7), as in Keras."""

    name = "mean_absolute_percentage_error"

    def _e(self, t, y):
        return 100.0 * np.abs(y - t) / np.maximum(np.abs(t), EPSILON)

    def _de(self, t, y):
        return 100.0 * np.sign(y - t) / np.maximum(np.abs(t), EPSILON)


class MeanSquaredLogarithmicError(_Elementwise):
    """``(log(1 + max(y, eps)) - log(1 + max(t, eps)))^2``; predictions below eps get no
    gradient (the max is flat there), as in Keras."""

    name = "mean_squared_logarithmic_error"

    def _d(self, t, y):
        return np.log1p(np.maximum(y, EPSILON)) - np.log1p(np.maximum(t, EPSILON))

    def _e(self, t, y):
        return np.square(self._d(t, y))

    def _de(self, t, y):
        de = 2.0 * self._d(t, y) / (1.0 + np.maximum(y, EPSILON))
        return np.where(y > EPSILON, de, 0).astype(y.dtype, copy=False)


class LogCosh(_Elementwise):
    """``log(cosh(d))`` with ``d = y - t``, as Keras computes it without overflow:
    ``d + softplus(-2 d) - log 2``; the derivative is ``tanh(d)``."""

    name = "log_cosh"

    def _e(self, t, y):
        d = y - t
        return d + np.logaddexp(0.0, -2.0 * d) - np.log(2.0).astype(d.dtype)

    def _de(self, t, y):
        return np.tanh(y - t)


class CosineSimilarity(Loss):
    """``l = -sum(normalize(t) * normalize(y))`` over the last axis: -1 for the same direction,
    +1 for opposite ones, 0 when either vector is zero. ``normalize(x) = x * min(1 / ||x||,
    1 / eps)`` (Keras' ``ops.normalize``: no division by zero). With ``a = normalize(t)`` and
    ``r = 1 / ||y||``::

        dl/dy = -(r a - (a . y) r^3 y)     where r < 1 / eps
        dl/dy = -a / eps                   where ||y|| <= eps (the flat branch of the min)
    """

    name = "cosine_similarity"

    def __init__(self, axis=-1):
        if axis != -1:
            raise ValueError(
                f"CosineSimilarity: argument 'axis' must be -1 (the features axis); got {axis!r}"
            )
        self.axis = -1

    def _check_rank(self, y_pred):
        if y_pred.ndim < 2:
            raise ValueError(
                f"{type(self).__name__}: argument 'y_pred' must have shape (batch, features) or "
                f"(batch, timesteps, features); got {y_pred.shape}"
            )

    @staticmethod
    def _inverse_norm(x):
        with np.errstate(divide="ignore"):
            r = 1.0 / np.sqrt(np.sum(x * x, axis=-1, keepdims=True))  # inf for a zero vector
        return np.minimum(r, 1.0 / EPSILON).astype(x.dtype, copy=False)

    def _values(self, t, y):
        self._check_rank(y)
        return -np.sum(t * self._inverse_norm(t) * y * self._inverse_norm(y), axis=-1)

    def _dvalues(self, t, y):
        self._check_rank(y)
        a = t * self._inverse_norm(t)
        with np.errstate(divide="ignore"):
            r = 1.0 / np.sqrt(np.sum(y * y, axis=-1, keepdims=True))
        flat = r >= 1.0 / EPSILON
        r = np.where(flat, 0, r)  # no inf * 0 below; the flat branch is taken by np.where
        inside = r * a - np.sum(a * y, axis=-1, keepdims=True) * r**3 * y
        return -np.where(flat, a / EPSILON, inside).astype(y.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}
