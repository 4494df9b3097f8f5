"""Metric objects: exact accumulation over batches (the protocol is in the package docstring).

Every object keeps a few float64 running sums (its *statistics*); ``update_state`` adds one
batch's statistics, ``result`` turns the sums into the value, ``__call__`` turns one batch's own
statistics into that batch's value without touching the state.
"""

from __future__ import annotations

import math

import numpy as np

from . import functions as fx


class Metric:
    """Base: ``update_state``, ``result``, ``reset_state``, ``__call__``, ``name``, config."""

    default_name = "metric"

    def __init__(self, name=None, dtype=None):
        self.name = str(name) if name is not None else self.default_name
        self.dtype = dtype  # accepted for Keras compatibility; results are Python floats
        self.reset_state()

    # -- the protocol
    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        self._totals = self._totals + self._statistics(y_true, y_pred, sample_weight)

    def result(self) -> float:
        return self._result(self._totals)

    def reset_state(self) -> None:
        self._totals = np.zeros(self._size(), dtype=np.float64)

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """The value on this batch alone; the accumulated state is left as it was."""
        return self._result(self._statistics(y_true, y_pred, sample_weight))

    # -- what subclasses define
    def _size(self) -> int:
        return 2

    def _statistics(self, y_true, y_pred, sample_weight) -> np.ndarray:
        raise NotImplementedError

    def _result(self, totals) -> float:
        raise NotImplementedError

    # -- config
    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _samplewise_sums(values, sample_weight, name):
    """Keras' ``reduce_to_samplewise_values`` then ``Mean``: ``[sum of weighted per-sample
    values, sum of weights]``. ``values`` (B,) or (B, T); ``sample_weight`` None, (B,) or the
    shape of ``values``; a scalar ``values`` counts once per batch."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is None:
        if values.ndim > 1:
            values = values.reshape(len(values), -1).mean(axis=1)
        return np.array([values.sum(), values.shape[0] if values.ndim else 1.0])
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == values.ndim + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.shape != values.shape[: w.ndim] or (values.ndim and w.ndim == 0):
        raise ValueError(
            f"{name}: argument 'sample_weight' must have shape {values.shape[:1]} or "
            f"{values.shape} (a prefix of the per-sample values' shape); got {w.shape}"
        )
    weighted = values * w.reshape(w.shape + (1,) * (values.ndim - w.ndim))
    if weighted.ndim > w.ndim:  # reduce the values to the weights' rank (mean), as Keras
        weighted = weighted.reshape(w.shape + (-1,)).mean(axis=-1)
    if w.ndim > 1:  # then both to one number per sample (mean), as Keras
        weighted = weighted.reshape(len(w), -1).mean(axis=1)
        w = w.reshape(len(w), -1).mean(axis=1)
    return np.array([weighted.sum(), w.sum()])


class Mean(Metric):
    """The (weighted) mean of the values given: ``update_state(values, sample_weight=None)``."""

    default_name = "mean"

    def update_state(self, values, sample_weight=None):
        self._totals = self._totals + _samplewise_sums(values, sample_weight, self.name)

    def __call__(self, values, sample_weight=None):
        return self._result(_samplewise_sums(values, sample_weight, self.name))

    def _result(self, totals):
        return float(totals[0] / totals[1]) if totals[1] else 0.0  # Keras' divide_no_nan


class MeanMetricWrapper(Mean):
    """The mean over samples of ``fn(y_true, y_pred, **kwargs)``, a function returning one value
    per sample (``(B,)`` or ``(B, T)``). A function that returns one number for the batch counts
    for ``len(y_pred)`` samples (Keras counts it once per batch), so a batch mean such as
    ``mase_metric(scale)`` accumulates exactly."""

    default_name = "mean_metric_wrapper"

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"MeanMetricWrapper: argument 'fn' must be callable; got {fn!r}")
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._totals = self._totals + self._statistics(y_true, y_pred, sample_weight)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._result(self._statistics(y_true, y_pred, sample_weight))

    def _statistics(self, y_true, y_pred, sample_weight):
        values = np.asarray(self._fn(y_true, y_pred, **self._fn_kwargs), dtype=np.float64)
        if values.ndim == 0:  # a batch value: weight it by the samples it stands for
            n = len(np.asarray(y_pred))
            w = n if sample_weight is None else float(np.sum(sample_weight))
            return np.array([float(values) * w, w])
        return _samplewise_sums(values, sample_weight, self.name)

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs}


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of ``|y - t|``."""

    default_name = "mean_absolute_error"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(fx._absolute_error_values, name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    """Mean of ``(y - t)^2``."""

    default_name = "mean_squared_error"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(fx._squared_error_values, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean of ``100 |y - t| / max(|t|, 1e-7)``."""

    default_name = "mean_absolute_percentage_error"

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(fx._percentage_error_values, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """Mean of ``(log1p(max(y, eps)) - log1p(max(t, eps)))^2``."""

    default_name = "mean_squared_logarithmic_error"

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(fx._squared_log_error_values, name=name, dtype=dtype)


class LogCoshError(MeanMetricWrapper):
    """Mean of ``log(cosh(y - t))``."""

    default_name = "logcosh"

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(fx._log_cosh_values, name=name, dtype=dtype)


class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine of ``y_true`` and ``y_pred`` along the last axis (+1: same direction)."""

    default_name = "cosine_similarity"

    def __init__(self, name="cosine_similarity", dtype=None):
        super().__init__(fx._cosine_values, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """Fraction of ``y_true == (y_pred > threshold)``."""

    default_name = "binary_accuracy"

    def __init__(self, name="binary_accuracy", threshold=0.5, dtype=None):
        super().__init__(fx._binary_accuracy_values, name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """Fraction of ``argmax(y_true) == argmax(y_pred)``, ``y_true`` one-hot."""

    default_name = "categorical_accuracy"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(fx._categorical_accuracy_values, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Fraction of ``y_true == argmax(y_pred)``, ``y_true`` class ids."""

    default_name = "sparse_categorical_accuracy"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(fx._sparse_categorical_accuracy_values, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """Fraction of one-hot targets among the ``k`` highest scores (ties count in)."""

    default_name = "top_k_categorical_accuracy"

    def __init__(self, name="top_k_categorical_accuracy", k=5, dtype=None):
        super().__init__(fx._top_k_values, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """Fraction of class ids among the ``k`` highest scores (ties count in)."""

    default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, name="sparse_top_k_categorical_accuracy", k=5, dtype=None):
        super().__init__(fx._sparse_top_k_values, name=name, dtype=dtype, k=k)


def _equal_values(y_true, y_pred):
    t, y = fx._pair("accuracy", y_true, y_pred)
    return (t == y).astype(np.float64)  # per element, as Keras


class Accuracy(MeanMetricWrapper):
    """Keras' ``metrics.Accuracy`` class: the fraction of ``y_true == y_pred`` EXACTLY (labels
    against labels). The string ``"accuracy"`` in compile means something else: see
    ``metrics.get_metric``."""

    default_name = "accuracy"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(_equal_values, name=name, dtype=dtype)


class RootMeanSquaredError(MeanSquaredError):
    """``sqrt`` of the accumulated mean squared error (not a mean of per-batch roots)."""

    default_name = "root_mean_squared_error"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _result(self, totals):
        return math.sqrt(super()._result(totals))


class F1(Metric):
    """lstmkit's ``f1`` accumulated exactly: binary F1 ``2 TP / (2 TP + FP + FN)`` from summed
    counts, or the macro mean over the classes seen in any batch's targets or predictions of
    the per-class F1 from summed counts. Binary or multiclass is fixed by the first batch."""

    default_name = "f1"

    def __init__(self, name="f1", threshold=0.5, from_logits=False, dtype=None):
        self.threshold, self.from_logits = threshold, bool(from_logits)
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self._binary = None
        self._counts = {}  # class -> [TP, predicted, true]

    def _batch_counts(self, y_true, y_pred, sample_weight):
        t, p, binary = fx._labels(self.name, y_true, y_pred, self.threshold, self.from_logits)
        w = np.ones(len(t)) if sample_weight is None else self._per_label(sample_weight, t)
        classes = [1.0] if binary else np.union1d(t, p)
        counts = {}
        for c in classes:
            counts[c] = np.array(
                [np.sum(w * ((p == c) & (t == c))), np.sum(w * (p == c)), np.sum(w * (t == c))]
            )
        return binary, counts

    def _per_label(self, sample_weight, t):
        w = np.asarray(sample_weight, dtype=np.float64)
        per = len(t) // max(len(w), 1) if w.ndim == 1 and len(w) else 0
        if w.ndim != 1 or per * len(w) != len(t):
            raise ValueError(
                f"{self.name}: argument 'sample_weight' must have one weight per sample (batch,); "
                f"got shape {w.shape} for {len(t)} labels"
            )
        return np.repeat(w, per)  # each sample's weight on each of its labels (time steps)

    def update_state(self, y_true, y_pred, sample_weight=None):
        binary, counts = self._batch_counts(y_true, y_pred, sample_weight)
        if self._binary is not None and binary != self._binary:
            raise ValueError(
                f"{self.name}: a {'binary' if binary else 'multiclass'} batch after "
                f"{'binary' if self._binary else 'multiclass'} ones; call reset_state() first"
            )
        self._binary = binary
        for c, v in counts.items():
            self._counts[c] = self._counts.get(c, 0.0) + v

    def result(self):
        return self._f1(self._counts)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._f1(self._batch_counts(y_true, y_pred, sample_weight)[1])

    @staticmethod
    def _f1(counts):
        def one(tp, predicted, true):
            return 2.0 * tp / (predicted + true) if predicted + true else 0.0

        scores = [one(*v) for v in counts.values()]
        return float(np.mean(scores)) if scores else 0.0

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold, "from_logits": self.from_logits}
