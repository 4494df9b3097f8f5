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
    mape    100 |d| / max(|t|, eps)               100 sign(d) / max(|t|, eps)
    msle    (log1p(y') - log1p(t'))^2             2 (log1p(y') - log1p(t')) / (1 + y')  (y > eps)
            y' = max(y, eps), t' = max(t, eps)    0                                     (y <= eps)
    logcosh d + softplus(-2 d) - log 2            tanh(d)
    hinge   max(1 - t y, 0)                       -t where t y < 1      (t in {-1, 1}: targets
    sq. h.  max(1 - t y, 0)^2                     -2 t max(1 - t y, 0)   all in {0, 1} -> 2t - 1)

Per-sample (over the last axis) rather than element-wise::

    kld     sum t' log(t' / y'),  t', y' = clip(., eps, 1)      -t' / y' where eps <= y <= 1
    cosine  -sum normalize(t) * normalize(y)                    see CosineSimilarity (the loss
            normalize(x) = x * min(1 / ||x||, 1 / eps)          is -cos: Keras' sign)

Categorical cross-entropy from probabilities renormalises first, ``q = clip(y / sum(y), eps,
1 - eps)``; from logits it uses ``log q = log_softmax(x)`` and the gradient
``softmax(x) * sum(t) - t``. Sparse targets are integer class ids of shape ``y_pred.shape[:-1]``
and behave exactly like their one-hot encoding. Logit forms never exponentiate a positive number,
so logits of +-1e4 give finite values and gradients.

A 1-D ``y_pred`` of shape ``(B,)`` is read as one output per sample; ``y_true`` of shape
``(B, T)`` against ``y_pred (B, T, 1)`` gets the trailing axis added, as Keras does.

``get`` accepts Keras' names (``"mape"``, ``"kld"``, ``"MeanSquaredError"``, any case), instances,
classes, Keras' function forms (``loss=losses.mean_squared_error``: the function returns
per-sample values as in Keras, compile uses its class), and user losses with a stated gradient
(``LossFunctionWrapper``, ``@with_gradient``: see ``lstmkit.losses.custom``). A plain function
without a gradient is refused with an explanation: lstmkit has no autodiff.

Layout: ``base.py`` (reduction, weights, shapes), ``regression.py``, ``probabilistic.py``,
``hinge.py``, ``custom.py`` (user losses).
"""

from __future__ import annotations

from .base import EPSILON, Loss
from .custom import LossFunctionWrapper, _no_gradient_message, check_gradient, with_gradient
from .hinge import Hinge, SquaredHinge
from .probabilistic import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    SparseCategoricalCrossentropy,
)
from .regression import (
    CosineSimilarity,
    Huber,
    LogCosh,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
)

CLASSES = (
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Huber,
    LogCosh,
    CosineSimilarity,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    KLDivergence,
    Hinge,
    SquaredHinge,
)
LOSSES = {cls.__name__.lower(): cls for cls in CLASSES}
ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "huber": Huber,
    "huber_loss": Huber,
    "log_cosh": LogCosh,
    "cosine_similarity": CosineSimilarity,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "kld": KLDivergence,
    "kl_divergence": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "squared_hinge": SquaredHinge,
}


def _function_form(cls, name):
    """Keras' function form of a loss: per-sample values, keyword arguments to the class."""

    def fn(y_true, y_pred, **kwargs):
        return cls(**kwargs).call(y_true, y_pred)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"``keras.losses.{name}``: the per-sample values of ``{cls.__name__}(**kwargs)``; "
        f"``compile(loss={name})`` uses ``{cls.__name__}()``."
    )
    fn.loss_class = cls
    return fn


mean_squared_error = _function_form(MeanSquaredError, "mean_squared_error")
mean_absolute_error = _function_form(MeanAbsoluteError, "mean_absolute_error")
mean_absolute_percentage_error = _function_form(
    MeanAbsolutePercentageError, "mean_absolute_percentage_error"
)
mean_squared_logarithmic_error = _function_form(
    MeanSquaredLogarithmicError, "mean_squared_logarithmic_error"
)
huber = _function_form(Huber, "huber")
log_cosh = _function_form(LogCosh, "log_cosh")
cosine_similarity = _function_form(CosineSimilarity, "cosine_similarity")
binary_crossentropy = _function_form(BinaryCrossentropy, "binary_crossentropy")
categorical_crossentropy = _function_form(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _function_form(
    SparseCategoricalCrossentropy, "sparse_categorical_crossentropy"
)
kl_divergence = _function_form(KLDivergence, "kl_divergence")
hinge = _function_form(Hinge, "hinge")
squared_hinge = _function_form(SquaredHinge, "squared_hinge")
# Keras' short names for the same functions
mse, mae, mape, msle, kld = (
    mean_squared_error,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    kl_divergence,
)


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def get(identifier) -> Loss:
    """A loss from a name (``"mse"``, ``"mean_squared_error"``, ``"Huber"``...), an instance (or
    any object with ``__call__`` and ``grad``), a Loss class, one of Keras' function forms
    (``mean_squared_error``), or ``{"class_name": ..., "config": ...}``."""
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, Loss) or (
        callable(identifier) and callable(getattr(identifier, "grad", None))
    ):
        return identifier
    if getattr(identifier, "loss_class", None) in CLASSES:
        return identifier.loss_class()
    if callable(identifier):
        label = getattr(identifier, "__name__", type(identifier).__name__)
        raise ValueError(_no_gradient_message(label, "losses.get"))
    names = {**LOSSES, **ALIASES}
    if isinstance(identifier, str) and identifier.lower() in names:
        return names[identifier.lower()]()
    if isinstance(identifier, dict):
        classes = {**names, "lossfunctionwrapper": LossFunctionWrapper}
        cls = classes.get(str(identifier.get("class_name")).lower())
        if cls is not None:
            return cls.from_config(dict(identifier.get("config", {})))
    raise ValueError(
        f"losses.get: argument 'identifier' must be one of {sorted(names)} (any case), a Loss, "
        f"or {{'class_name': ..., 'config': ...}}; got {identifier!r}"
    )


__all__ = [
    "EPSILON",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "CosineSimilarity",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "LossFunctionWrapper",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "binary_crossentropy",
    "categorical_crossentropy",
    "check_gradient",
    "cosine_similarity",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "kld",
    "log_cosh",
    "mae",
    "mape",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "mse",
    "msle",
    "serialize",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "with_gradient",
]
