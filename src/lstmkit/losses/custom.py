"""User losses: a NumPy function of ``(y_true, y_pred)`` and its stated gradient.

lstmkit has no automatic differentiation, so a loss written by the user must come with its
gradient. Write the loss as Keras does, per sample, and the gradient of the *sum* of those values
with respect to ``y_pred`` (for per-sample values: each sample's own derivative)::

    import numpy as np
    from lstmkit import losses

    def quartic_grad(y_true, y_pred):        # d/dy_pred of sum(quartic(y_true, y_pred))
        d = y_pred - y_true
        return 4 * d**3 / d.shape[-1]

    @losses.with_gradient(quartic_grad)
    def quartic(y_true, y_pred):             # one value per sample, like keras.losses functions
        return np.mean((y_pred - y_true) ** 4, axis=-1)

    model.compile(optimizer="adam", loss=quartic)
    losses.check_gradient(quartic, y_true, y_pred)   # max relative error, ~1e-9 if right

or, without the decorator, ``LossFunctionWrapper(fn, grad=grad_fn, name="quartic")``. Extra
keyword arguments of the wrapper are passed to both functions. The wrapped loss reduces as every
built-in loss: ``L = sum(w * values) / values.size`` (Keras' ``"sum_over_batch_size"``), so
``values`` may be per sample ``(B,)``, per step ``(B, T)``, per element (the shape of
``y_pred``) or one number (no ``sample_weight`` then). Both functions receive ``y_true`` as
floats of ``y_pred``'s dtype, with a missing trailing axis of size 1 restored, as in Keras.
A user loss is saved by name only (functions are never pickled): load such a model with
``load_model(path, compile=False)`` and compile it again.
"""

from __future__ import annotations

import numpy as np

from .base import Loss

#: the dtype kinds of np.number (np.issubdtype(dtype, np.number), without its Python calls: the
#: loss of every training step checks two arrays)
_NUMBER = "iufcm"


class LossFunctionWrapper(Loss):
    """A loss from ``fn(y_true, y_pred) -> values`` and ``grad(y_true, y_pred) -> d sum(values)
    / d y_pred`` (see the module docstring)."""

    def __init__(self, fn, grad=None, name=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"LossFunctionWrapper: argument 'fn' must be callable; got {fn!r}")
        label = name or getattr(fn, "__name__", type(fn).__name__)
        if grad is None:
            raise ValueError(_no_gradient_message(label, "LossFunctionWrapper"))
        if not callable(grad):
            raise ValueError(
                f"LossFunctionWrapper: argument 'grad' must be callable (the gradient of "
                f"{label!r}); got {grad!r}"
            )
        self.fn, self.gradient_fn, self.name, self.fn_kwargs = fn, grad, str(label), kwargs
        self.__name__ = self.name  # what compile and the logs call it

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        y_true, y_pred = self._prepare(y_true, y_pred)
        values = self._user_values(y_true, y_pred)
        w = self._user_weights(sample_weight, values)
        return float(np.sum(values * w) / values.size)

    def grad(self, y_true, y_pred, sample_weight=None) -> np.ndarray:
        return self.value_and_grad(y_true, y_pred, sample_weight)[1]

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = self._prepare(y_true, y_pred)
        values = self._user_values(y_true, y_pred)
        w = None if sample_weight is None else self._user_weights(sample_weight, values)
        g = np.asarray(self.gradient_fn(y_true, y_pred, **self.fn_kwargs))
        if g.shape != y_pred.shape or g.dtype.kind not in _NUMBER:
            raise ValueError(
                f"{self.name}: the gradient function must return an array of the shape of "
                f"'y_pred' {y_pred.shape}; got {g.shape} of {g.dtype}"
            )
        if w is None and g.dtype == values.dtype:
            # the weight is a 1 of their dtype: the products by it change no bit (skipped)
            dy = (g / values.size).astype(y_pred.dtype, copy=False)
            return float(np.add.reduce(values, axis=None) / values.size), dy  # (np.sum's sum)
        w = self._user_weights(sample_weight, values) if w is None else w
        w_full = np.reshape(w, np.shape(w) + (1,) * (y_pred.ndim - np.ndim(w)))
        dy = (g * w_full / values.size).astype(y_pred.dtype, copy=False)
        return float(np.sum(values * w) / values.size), dy

    def _user_values(self, y_true, y_pred):
        values = np.asarray(self.fn(y_true, y_pred, **self.fn_kwargs))
        if values.shape != y_pred.shape[: values.ndim] or values.dtype.kind not in _NUMBER:
            raise ValueError(
                f"{self.name}: the loss function must return numbers of shape (), (batch,), ... "
                f"up to 'y_pred' {y_pred.shape} (a prefix of it); got {values.shape} of "
                f"{values.dtype}"
            )
        return values.astype(y_pred.dtype, copy=False)

    def _user_weights(self, sample_weight, values):
        if sample_weight is None:
            return np.ones((), values.dtype)
        if values.ndim == 0:
            raise ValueError(
                f"{self.name}: argument 'sample_weight' needs a loss function that returns one "
                "value per sample; this one returns a single number"
            )
        return self._weights(sample_weight, values)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        raise ValueError(
            f"losses.get: the user loss {config.get('name')!r} was saved by name only; lstmkit "
            "never pickles functions. Load the model with load_model(path, compile=False) and "
            "compile it again with the loss"
        )

    def __repr__(self):
        return f"LossFunctionWrapper({self.name})"


def with_gradient(grad, name=None, **kwargs):
    """Decorator: ``@with_gradient(grad_fn)`` over ``def my_loss(y_true, y_pred)`` makes
    ``my_loss`` a ``LossFunctionWrapper`` that ``compile(loss=my_loss)`` accepts."""

    def wrap(fn):
        return LossFunctionWrapper(fn, grad=grad, name=name, **kwargs)

    return wrap


def check_gradient(loss, y_true, y_pred, sample_weight=None, step=1e-6) -> float:
    """The largest error of ``loss.grad`` against central finite differences of ``loss`` in
    float64, relative to the largest gradient entry: about 1e-9 for a right gradient, O(1) for a
    wrong one. Costs two loss evaluations per element of ``y_pred``: use a small batch."""
    y_pred = np.asarray(y_pred, np.float64)
    if y_pred.size > 10_000:
        raise ValueError(
            f"check_gradient: argument 'y_pred' must have at most 10000 elements (two loss "
            f"evaluations each); got {y_pred.size}"
        )
    analytic = np.asarray(loss.grad(y_true, y_pred, sample_weight), np.float64)
    numeric = np.zeros_like(y_pred)
    for i in np.ndindex(y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[i] += step
        down[i] -= step
        numeric[i] = (loss(y_true, up, sample_weight) - loss(y_true, down, sample_weight)) / (
            2 * step
        )
    scale = max(np.max(np.abs(numeric)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def _no_gradient_message(label, where):
    return (
        f"{where}: the loss {label!r} has no gradient. lstmkit has no automatic "
        "differentiation: give the gradient of sum(values) with respect to y_pred, as "
        f"LossFunctionWrapper({label}, grad=...) or by decorating {label} with "
        "@lstmkit.losses.with_gradient(grad_fn) (see lstmkit.losses.custom)"
    )
