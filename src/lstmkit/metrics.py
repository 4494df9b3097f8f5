"""Stateless metrics: ``metric(y_true, y_pred) -> float`` over a whole batch (and all time steps).

    mae   = mean |y - t|          mse = mean (y - t)^2          rmse = sqrt(mse)
    mase  = mae / scale           scale = mean |x_s - x_{s-m}| of the training series (Hyndman &
                                  Koehler 2006), see ``naive_scale``
    accuracy  binary       mean[t == (y > threshold)]      last axis of y_pred has size 1 (or 1-D);
                           from_logits: mean[t == (sigmoid(y) > threshold)]
              sparse       mean[t == argmax(y)]            t holds class ids, one axis fewer
              categorical  mean[argmax(t) == argmax(y)]    t one-hot, the shape of y_pred
    f1    binary: 2 TP / (2 TP + FP + FN); multiclass: the unweighted mean of the per-class F1 over
          the classes that occur in t or in the prediction (scikit-learn's ``average="macro"``);
          0 when there is nothing to score.

``bits_per_char`` and ``perplexity`` convert a mean cross-entropy in nats (what the losses return):
``bpc = nats / ln 2``, ``perplexity = exp(nats)``.
"""

from __future__ import annotations

import math

import numpy as np


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


def mae(y_true, y_pred) -> float:
    t, y = _pair("mae", y_true, y_pred)
    return float(np.mean(np.abs(y - t)))


def mse(y_true, y_pred) -> float:
    t, y = _pair("mse", y_true, y_pred)
    return float(np.mean(np.square(y - t)))


def rmse(y_true, y_pred) -> float:
    t, y = _pair("rmse", y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(y - t))))


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


def bits_per_char(mean_nats: float) -> float:
    return float(mean_nats) / math.log(2.0)


def perplexity(mean_nats: float) -> float:
    return math.exp(float(mean_nats))


METRICS = {
    "mae": mae,
    "mean_absolute_error": mae,
    "mse": mse,
    "mean_squared_error": mse,
    "rmse": rmse,
    "root_mean_squared_error": rmse,
    "mase": mase,
    "accuracy": accuracy,
    "acc": accuracy,
    "f1": f1,
    "f1_score": f1,
}


def get(name):
    """The metric function for a name (any case); a callable is returned unchanged."""
    if callable(name):
        return name
    if isinstance(name, str) and name.lower() in METRICS:
        return METRICS[name.lower()]
    raise ValueError(
        f"metrics.get: argument 'name' must be one of {sorted(METRICS)} or a callable; got {name!r}"
    )
