"""The metric functions: ``metric(y_true, y_pred) -> float`` over a whole batch (and all time
steps), and the per-sample values the metric objects accumulate. Formulas: see the package
docstring."""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-7  # keras.config.epsilon()


def _pair(name, y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        # A missing trailing axis of size 1 on either side is fine (Keras does the same).
        if y_pred.shape == y_true.shape + (1,):
            y_true = y_true[..., None]
        elif y_true.shape == y_pred.shape + (1,):
            y_true = y_true[..., 0]
        else:
            raise ValueError(
                f"{name}: argument 'y_true' must have the shape of 'y_pred' {y_pred.shape}; "
                f"got {y_true.shape}"
            )
    return y_true.astype(np.float64), y_pred.astype(np.float64)


def _samplewise(e):
    """Per-element values -> per-sample values: the mean over the last (features) axis; a 1-D
    ``y_pred`` has one output per sample."""
    return e.mean(axis=-1) if e.ndim > 1 else e


def _inverse_norm(x):
    # Keras' ops.normalize: x * min(1 / ||x||, 1 / eps), so a zero vector stays zero
    with np.errstate(divide="ignore"):
        r = 1.0 / np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    return np.minimum(r, 1.0 / EPSILON)


def _rows(name, y_pred):
    if y_pred.ndim < 2:
        raise ValueError(
            f"{name}: argument 'y_pred' must have shape (batch, features) or (batch, timesteps, "
            f"features); got {y_pred.shape}"
        )


def _absolute_error_values(y_true, y_pred, name="mae"):
    t, y = _pair(name, y_true, y_pred)
    return _samplewise(np.abs(y - t))


def _squared_error_values(y_true, y_pred, name="mse"):
    t, y = _pair(name, y_true, y_pred)
    return _samplewise(np.square(y - t))


def _percentage_error_values(y_true, y_pred, name="mape"):
    t, y = _pair(name, y_true, y_pred)
    return _samplewise(100.0 * np.abs(y - t) / np.maximum(np.abs(t), EPSILON))


def _squared_log_error_values(y_true, y_pred, name="msle"):
    t, y = _pair(name, y_true, y_pred)
    d = np.log1p(np.maximum(y, EPSILON)) - np.log1p(np.maximum(t, EPSILON))
    return _samplewise(d * d)


def _log_cosh_values(y_true, y_pred, name="log_cosh_error"):
    t, y = _pair(name, y_true, y_pred)
    d = y - t
    return _samplewise(d + np.logaddexp(0.0, -2.0 * d) - math.log(2.0))


def _cosine_values(y_true, y_pred, name="cosine_similarity"):
    t, y = _pair(name, y_true, y_pred)
    _rows(name, y)
    return np.sum(t * _inverse_norm(t) * y * _inverse_norm(y), axis=-1)


def mae(y_true, y_pred) -> float:
    return float(np.mean(_absolute_error_values(y_true, y_pred, "mae")))


def mse(y_true, y_pred) -> float:
    return float(np.mean(_squared_error_values(y_true, y_pred, "mse")))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean(_squared_error_values(y_true, y_pred, "rmse"))))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, ``100 |y - t| / max(|t|, 1e-7)`` (Keras)."""
    return float(np.mean(_percentage_error_values(y_true, y_pred)))


def msle(y_true, y_pred) -> float:
    """Mean squared logarithmic error, ``(log1p(max(y, eps)) - log1p(max(t, eps)))^2``."""
    return float(np.mean(_squared_log_error_values(y_true, y_pred)))


def log_cosh_error(y_true, y_pred) -> float:
    """Mean ``log(cosh(y - t))`` (Keras' ``LogCoshError``, computed without overflow)."""
    return float(np.mean(_log_cosh_values(y_true, y_pred)))


def cosine_similarity(y_true, y_pred) -> float:
    """Mean over samples of the cosine between ``y_true`` and ``y_pred`` along the last axis
    (+1 for the same direction; the LOSS of the same name is its negative, as in Keras)."""
    return float(np.mean(_cosine_values(y_true, y_pred)))


def naive_scale(y_train, seasonality: int = 1) -> float:
    """MASE denominator: in-sample MAE of the seasonal naive forecast ``x_s = x_{s-m}`` along
    axis 0 (time) of ``y_train``."""
    y = np.asarray(y_train, dtype=np.float64)
    if not isinstance(seasonality, int) or seasonality < 1 or y.shape[0] <= seasonality:
        raise ValueError(
            "naive_scale: argument 'seasonality' must be an int in [1, len(y_train)); "
            f"got {seasonality!r} for len(y_train) = {y.shape[0]}"
        )
    return float(np.mean(np.abs(y[seasonality:] - y[:-seasonality])))


def mase(y_true, y_pred, scale: float | None = None) -> float:
    """Mean absolute scaled error: ``mae / scale`` (``scale`` from ``naive_scale``)."""
    if scale is None:
        raise ValueError(
            "mase: argument 'scale' is required (the in-sample naive MAE from naive_scale); got "
            "None. In compile(metrics=...) use metrics.mase_metric(scale)"
        )
    if not isinstance(scale, (int, float, np.number)) or not scale > 0:
        raise ValueError(f"mase: argument 'scale' must be a positive number; got {scale!r}")
    t, y = _pair("mase", y_true, y_pred)
    return float(np.mean(np.abs(y - t)) / scale)


def mase_metric(scale: float):
    """``mase`` with ``scale`` bound, named ``"mase"``: for ``compile(metrics=[...])``."""
    mase(np.zeros(1), np.zeros(1), scale)  # validate now, not at the first batch

    def mase_(y_true, y_pred) -> float:
        return mase(y_true, y_pred, scale)

    mase_.__name__ = "mase"
    return mase_


def _logit_cut(name, threshold):
    """The logit whose sigmoid is ``threshold``: ``sigmoid(x) > threshold`` iff ``x > cut``."""
    if isinstance(threshold, bool) or not (
        isinstance(threshold, (int, float, np.number)) and 0.0 < threshold < 1.0
    ):
        raise ValueError(
            f"{name}: argument 'threshold' must be a probability in (0, 1) with from_logits=True; "
            f"got {threshold!r}"
        )
    return math.log(threshold) - math.log1p(-threshold)


def _labels(name, y_true, y_pred, threshold, from_logits):
    """``(true_ids, predicted_ids, binary)`` for the three accuracy cases."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.ndim == 0 or y_pred.size == 0:
        raise ValueError(f"{name}: argument 'y_pred' must be a non-empty array; got {y_pred!r}")
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:  # one output per sample: binary
        t, y = _pair(name, y_true, y_pred)
        cut = _logit_cut(name, threshold) if from_logits else threshold
        return t.reshape(-1), (y > cut).astype(np.float64).reshape(-1), True
    if y_true.shape == y_pred.shape[:-1] or y_true.shape == y_pred.shape[:-1] + (1,):
        return y_true.reshape(-1), np.argmax(y_pred, axis=-1).reshape(-1), False  # sparse
    if y_true.shape == y_pred.shape:
        return np.argmax(y_true, axis=-1).reshape(-1), np.argmax(y_pred, axis=-1).reshape(-1), False
    raise ValueError(
        f"{name}: argument 'y_true' must have shape {y_pred.shape} (one-hot) or "
        f"{y_pred.shape[:-1]} (class ids) for 'y_pred' of shape {y_pred.shape}; "
        f"got {y_true.shape}"
    )


def accuracy(y_true, y_pred, threshold: float = 0.5, from_logits: bool = False) -> float:
    """Keras' ``"accuracy"``: binary, sparse categorical or categorical from the shapes."""
    t, p, _ = _labels("accuracy", y_true, y_pred, threshold, from_logits)
    return float(np.mean(t == p))


def f1(y_true, y_pred, threshold: float = 0.5, from_logits: bool = False) -> float:
    """Binary F1 (positive class 1) or macro F1 over the classes present, chosen like accuracy."""
    t, p, binary = _labels("f1", y_true, y_pred, threshold, from_logits)

    def one(cls):
        tp = np.sum((p == cls) & (t == cls))
        denominator = np.sum(p == cls) + np.sum(t == cls)  # 2TP + FP + FN
        return 2.0 * tp / denominator if denominator else 0.0

    if binary:
        return float(one(1.0))
    classes = np.union1d(t, p)
    return float(np.mean([one(c) for c in classes])) if classes.size else 0.0


def _positive_int(name, arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: argument '{arg}' must be a positive int; got {value!r}")
    return int(value)


def _class_ids(name, y_true, y_pred):
    """Sparse targets: integer class ids of shape ``y_pred.shape[:-1]`` (a trailing 1 allowed),
    each in ``[0, classes)``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _rows(name, y_pred)
    if y_true.shape == y_pred.shape[:-1] + (1,):
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"{name}: argument 'y_true' must hold class ids of shape {y_pred.shape[:-1]} "
            f"(y_pred.shape[:-1]); got {y_true.shape}"
        )
    C = y_pred.shape[-1]
    if not (np.issubdtype(y_true.dtype, np.integer) or np.issubdtype(y_true.dtype, np.floating)):
        raise ValueError(f"{name}: argument 'y_true' must be numeric; got dtype {y_true.dtype}")
    with np.errstate(invalid="ignore"):
        ids = y_true.astype(np.int64)
    if np.any(ids != y_true) or (ids.size and (ids.min() < 0 or ids.max() >= C)):
        raise ValueError(
            f"{name}: argument 'y_true' must hold integer class ids in [0, {C}); got values "
            f"in [{y_true.min()}, {y_true.max()}]"
        )
    return ids


def _one_hot_ids(name, y_true, y_pred):
    """Categorical targets: one-hot (or soft) rows of the shape of ``y_pred`` -> argmax ids."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _rows(name, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: argument 'y_true' must be one-hot of the shape of 'y_pred' {y_pred.shape}; "
            f"got {y_true.shape} (class ids go with sparse_{name})"
        )
    return np.argmax(y_true, axis=-1)


def _in_top_k(ids, y_pred, k):
    """Keras' ``in_top_k``: the target's score is at least the k-th largest (ties count in);
    every class is in the top k when k >= classes."""
    C = y_pred.shape[-1]
    if k >= C:
        return np.ones(ids.shape, dtype=np.float64)
    kth = np.partition(y_pred, C - k, axis=-1)[..., C - k]
    target = np.take_along_axis(y_pred, ids[..., None], axis=-1)[..., 0]
    return (target >= kth).astype(np.float64)


def _binary_accuracy_values(y_true, y_pred, threshold=0.5):
    # per element, as Keras (a weight may be given per element); the mean reduces per sample
    t, y = _pair("binary_accuracy", y_true, y_pred)
    return (t == (y > threshold)).astype(np.float64)


def _categorical_accuracy_values(y_true, y_pred):
    ids = _one_hot_ids("categorical_accuracy", y_true, y_pred)
    return (ids == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _sparse_categorical_accuracy_values(y_true, y_pred):
    ids = _class_ids("sparse_categorical_accuracy", y_true, y_pred)
    return (ids == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _top_k_values(y_true, y_pred, k=5):
    k = _positive_int("top_k_categorical_accuracy", "k", k)
    ids = _one_hot_ids("top_k_categorical_accuracy", y_true, y_pred)
    return _in_top_k(ids, np.asarray(y_pred, np.float64), k)


def _sparse_top_k_values(y_true, y_pred, k=5):
    k = _positive_int("sparse_top_k_categorical_accuracy", "k", k)
    ids = _class_ids("sparse_top_k_categorical_accuracy", y_true, y_pred)
    return _in_top_k(ids, np.asarray(y_pred, np.float64), k)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> float:
    """Keras' ``binary_accuracy``: the fraction of ``y_true == (y_pred > threshold)``."""
    return float(np.mean(_binary_accuracy_values(y_true, y_pred, threshold)))


def categorical_accuracy(y_true, y_pred) -> float:
    """``argmax(y_true) == argmax(y_pred)`` for one-hot ``y_true`` of ``y_pred``'s shape."""
    return float(np.mean(_categorical_accuracy_values(y_true, y_pred)))


def sparse_categorical_accuracy(y_true, y_pred) -> float:
    """``y_true == argmax(y_pred)`` for class ids ``y_true`` of shape ``y_pred.shape[:-1]``."""
    return float(np.mean(_sparse_categorical_accuracy_values(y_true, y_pred)))


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> float:
    """How often the one-hot target's class scores among the ``k`` highest (ties count in)."""
    return float(np.mean(_top_k_values(y_true, y_pred, k)))


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> float:
    """How often the class id ``y_true`` scores among the ``k`` highest (ties count in)."""
    return float(np.mean(_sparse_top_k_values(y_true, y_pred, k)))


def bits_per_char(mean_nats: float) -> float:
    return float(mean_nats) / math.log(2.0)


def perplexity(mean_nats: float) -> float:
    return math.exp(float(mean_nats))
