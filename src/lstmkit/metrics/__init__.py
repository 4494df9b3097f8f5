"""Metrics: stateless functions over one batch, and Keras-style objects that accumulate exactly.

Functions ``metric(y_true, y_pred) -> float`` score a whole batch (and all its time steps)::

    mae   = mean |y - t|          mse = mean (y - t)^2          rmse = sqrt(mse)
    mape  = mean 100 |y - t| / max(|t|, eps)                    eps = 1e-7 (Keras' epsilon)
    msle  = mean (log1p(max(y, eps)) - log1p(max(t, eps)))^2
    log_cosh_error = mean log(cosh(y - t))
    cosine_similarity = mean over samples of sum(normalize(t) * normalize(y)) over the last axis,
          normalize(x) = x * min(1 / ||x||, 1 / eps)  (+1: same direction; the LOSS is -cos)
    mase  = mae / scale           scale = mean |x_s - x_{s-m}| of the training series (Hyndman &
                                  Koehler 2006), see ``naive_scale``
    binary_accuracy             mean[t == (y > threshold)], threshold 0.5
    sparse_categorical_accuracy mean[t == argmax(y)]         t class ids, one axis fewer than y
    categorical_accuracy        mean[argmax(t) == argmax(y)] t one-hot, the shape of y
    (sparse_)top_k_categorical_accuracy  mean[y[target] >= k-th largest y], k = 5 (ties count in;
                                every class is in the top k when k >= classes)
    accuracy  one of the three above, chosen from the shapes (like ``compile``'s "accuracy"):
              binary when y_pred is 1-D or its last axis has size 1 (``from_logits``: threshold
              on sigmoid(y)), sparse when t has one axis fewer (or a trailing 1), else categorical
    f1    binary: 2 TP / (2 TP + FP + FN); multiclass: the unweighted mean of the per-class F1 over
          the classes that occur in t or in the prediction (scikit-learn's ``average="macro"``);
          0 when there is nothing to score.

``bits_per_char`` and ``perplexity`` convert a mean cross-entropy in nats (what the losses return):
``bpc = nats / ln 2``, ``perplexity = exp(nats)``.

Differences from Keras' metric *functions*: these return one float for the batch (Keras: one
value per sample); ``categorical_accuracy`` refuses class-id targets and the sparse metrics
refuse ids outside ``[0, classes)`` (Keras silently compares them); a 1-D ``y_pred`` is one
output per sample.

The object protocol (``lstmkit.metrics.objects``)
-------------------------------------------------
A metric object ``m`` has::

    m.name                                   the key in the logs
    m.update_state(y_true, y_pred, sample_weight=None)   add one batch to the running sums
    m.result() -> float                      the value over every batch since the last reset
    m.reset_state()                          forget them (call at each epoch's start)
    m(y_true, y_pred, sample_weight=None)    the value on THIS batch alone; state untouched
                                             (Keras' __call__ also updates the state)
    m.get_config() / cls.from_config(cfg)    the constructor arguments

``result()`` after updating with batches B1..Bn equals the metric on their concatenation exactly:
means keep ``[sum of per-sample values, number of samples]`` (Keras' ``Mean``: a per-sample value
is the mean over the sample's features and time steps; ``sample_weight`` (B,) or the per-sample
values' shape weights them, and the count is the sum of weights), ``RootMeanSquaredError`` is
the root of the accumulated mean square, ``F1`` sums TP / predicted / true counts per class.
``MeanMetricWrapper(fn)`` turns any per-sample function into an object; a function returning one
number per batch counts for ``len(y_pred)`` samples.

For the trainer: ``get_metric(identifier, y_true=None, y_pred=None)`` returns a fresh object for
a name, function, class, instance or config, named like Keras (the string given, else the
object's name). ``"accuracy"``/``"acc"`` (any case) are resolved as Keras 3's ``compile`` does
from the first batch's ``y_true``/``y_pred`` (``keras/src/trainers/compile_utils.py``):
``BinaryAccuracy`` if ``y_pred.shape[-1] == 1``; else ``SparseCategoricalAccuracy`` if
``y_true.ndim < y_pred.ndim`` or ``y_true.shape[-1] == 1``; else ``CategoricalAccuracy``.
Without shapes it wraps the shape-resolving ``accuracy`` function instead. ``get(identifier)``
still returns something callable on ``(y_true, y_pred)`` (a function or an object).
"""

from __future__ import annotations

import numpy as np

from . import objects
from .functions import (
    accuracy,
    binary_accuracy,
    bits_per_char,
    categorical_accuracy,
    cosine_similarity,
    f1,
    log_cosh_error,
    mae,
    mape,
    mase,
    mase_metric,
    mse,
    msle,
    naive_scale,
    perplexity,
    rmse,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from .objects import (
    F1,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    CosineSimilarity,
    LogCoshError,
    Mean,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanMetricWrapper,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Metric,
    RootMeanSquaredError,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
)

METRICS = {
    "mae": mae,
    "mean_absolute_error": mae,
    "mse": mse,
    "mean_squared_error": mse,
    "rmse": rmse,
    "root_mean_squared_error": rmse,
    "mape": mape,
    "mean_absolute_percentage_error": mape,
    "msle": msle,
    "mean_squared_logarithmic_error": msle,
    "log_cosh_error": log_cosh_error,
    "logcosh": log_cosh_error,
    "log_cosh": log_cosh_error,
    "cosine_similarity": cosine_similarity,
    "mase": mase,
    "accuracy": accuracy,
    "acc": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "f1": f1,
    "f1_score": f1,
}

#: the object that accumulates each function exactly
OBJECT_FOR = {
    mae: MeanAbsoluteError,
    mse: MeanSquaredError,
    rmse: RootMeanSquaredError,
    mape: MeanAbsolutePercentageError,
    msle: MeanSquaredLogarithmicError,
    log_cosh_error: LogCoshError,
    cosine_similarity: CosineSimilarity,
    binary_accuracy: BinaryAccuracy,
    categorical_accuracy: CategoricalAccuracy,
    sparse_categorical_accuracy: SparseCategoricalAccuracy,
    top_k_categorical_accuracy: TopKCategoricalAccuracy,
    sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy,
    f1: F1,
}

#: Keras class names, matched in any case ("MeanSquaredError", "binaryaccuracy" ...)
CLASSES = {
    cls.__name__.lower(): cls
    for cls in (
        Accuracy,
        BinaryAccuracy,
        CategoricalAccuracy,
        CosineSimilarity,
        F1,
        LogCoshError,
        MeanAbsoluteError,
        MeanAbsolutePercentageError,
        MeanSquaredError,
        MeanSquaredLogarithmicError,
        RootMeanSquaredError,
        SparseCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        TopKCategoricalAccuracy,
    )
}


def get(name):
    """Something callable on ``(y_true, y_pred)``: a fresh object for a Keras class name spelled
    exactly (``"Accuracy"``, ``"F1"``), the function for a metric name (any case), a fresh
    object for a class name in another case, a class or ``{"class_name", "config"}``; a callable
    (a function or a metric object) is returned unchanged."""
    if isinstance(name, type) and issubclass(name, Metric):
        return name()
    if callable(name):
        return name
    exact = {cls.__name__: cls for cls in CLASSES.values()}
    if isinstance(name, str) and name in exact:  # "Accuracy", "F1": the class, as in Keras
        return exact[name]()
    if isinstance(name, str) and name.lower() in METRICS:
        return METRICS[name.lower()]
    if isinstance(name, str) and name.lower() in CLASSES:
        return CLASSES[name.lower()]()
    if isinstance(name, dict) and str(name.get("class_name")).lower() in CLASSES:
        return CLASSES[name["class_name"].lower()].from_config(dict(name.get("config", {})))
    raise ValueError(
        f"metrics.get: argument 'name' must be one of {sorted(METRICS)}, a Keras metric class "
        f"name, a Metric or a callable; got {name!r}"
    )


def get_metric(identifier, y_true=None, y_pred=None) -> Metric:
    """A fresh metric object for ``compile(metrics=[identifier])``, named as Keras names it:
    the string given, else the object's own name. ``"accuracy"``/``"acc"`` become Binary,
    Sparse or Categorical accuracy from the shapes of ``y_true``/``y_pred`` (see the module
    docstring); an unknown function is wrapped in ``MeanMetricWrapper``."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return _accuracy_object(identifier, y_true, y_pred)
    metric = get(identifier)
    if isinstance(metric, Metric):
        return metric
    name = identifier if isinstance(identifier, str) else getattr(metric, "__name__", None)
    if metric is accuracy:
        return _accuracy_object(name, y_true, y_pred)
    if metric is mase:
        raise ValueError(
            "metrics.get_metric: 'mase' needs the in-sample scale; pass "
            "metrics.mase_metric(scale) instead"
        )
    cls = OBJECT_FOR.get(metric)
    return cls(name=name) if cls is not None else MeanMetricWrapper(metric, name=name)


def _accuracy_object(name, y_true, y_pred):
    if y_true is None or y_pred is None:
        return MeanMetricWrapper(accuracy, name=name)
    t_shape, p_shape = np.shape(y_true), np.shape(y_pred)
    if len(p_shape) and p_shape[-1] == 1:  # Keras' is_binary_or_sparse_categorical
        return BinaryAccuracy(name=name)
    if len(t_shape) < len(p_shape) or (len(t_shape) and t_shape[-1] == 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def serialize(metric):
    """A metric object as ``{"class_name", "config"}``; a function as its registered name."""
    if isinstance(metric, Metric) and type(metric).__name__.lower() in CLASSES:
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    names = {fn: n for n, fn in reversed(list(METRICS.items()))}  # the short name first
    if metric in names:
        return names[metric]
    raise ValueError(
        f"metrics.serialize: argument 'metric' must be a built-in metric object or function; "
        f"got {metric!r} (user metrics are not saved: compile again after loading)"
    )


__all__ = [
    "F1",
    "METRICS",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "CosineSimilarity",
    "LogCoshError",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "accuracy",
    "binary_accuracy",
    "bits_per_char",
    "categorical_accuracy",
    "cosine_similarity",
    "f1",
    "get",
    "get_metric",
    "log_cosh_error",
    "mae",
    "mape",
    "mase",
    "mase_metric",
    "mse",
    "msle",
    "naive_scale",
    "objects",
    "perplexity",
    "rmse",
    "serialize",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]
