"""Weight and activity regularizers with Keras 3 names, defaults and penalties.

A regularizer maps an array to a penalty added to the training loss, and (lstmkit has no
autodiff) gives its gradient::

    L1(l1=0.01)            l1 * sum(|x|)                      grad  l1 * sign(x)
    L2(l2=0.01)            l2 * sum(x^2)    (no 1/2)          grad  2 * l2 * x
    L1L2(l1=0.0, l2=0.0)   both

By name: ``"l1"`` and ``"l2"`` give the 0.01 defaults; ``"l1_l2"`` gives ``L1L2(0.01, 0.01)``,
the default Keras documents for that name (Keras 3.15's registry spells it ``"l1l2"``, which it
builds as ``L1L2()`` with zeros: lstmkit does the same for ``"l1l2"``).

Where the penalties go (as in Keras 3): a layer's ``kernel_regularizer`` / ``recurrent_regularizer``
/ ``bias_regularizer`` add ``reg(weight)`` to the loss of every training step;
``activity_regularizer`` adds ``reg(output) / batch_size`` for each array the layer returns
(states included with ``return_state``). ``fit``'s reported ``loss`` includes them.

A custom regularizer subclasses :class:`Regularizer` and defines ``__call__`` and ``grad``.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import Configurable, from_config_dict, from_name, keras_config


class Regularizer(Configurable):
    def __call__(self, x) -> float:
        raise NotImplementedError

    def grad(self, x) -> np.ndarray:
        """d(penalty)/dx, same shape and dtype as ``x``."""
        raise NotImplementedError


def _factor(cls, arg, v):
    v = 0.0 if v is None else v
    if (
        not isinstance(v, (int, float, np.number))
        or isinstance(v, bool)
        or not math.isfinite(v)
        or v < 0
    ):
        raise ValueError(f"{cls}: argument '{arg}' must be a non-negative number; got {v!r}")
    return float(v)


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(type(self).__name__, "l1", l1)
        self.l2 = _factor(type(self).__name__, "l2", l2)

    def __call__(self, x):
        x = np.asarray(x)
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(x).sum(dtype=np.float64))
        if self.l2:
            total += self.l2 * float(np.square(x).sum(dtype=np.float64))
        return total

    def grad(self, x):
        x = np.asarray(x)
        g = np.zeros_like(x)
        if self.l1:
            g += self.l1 * np.sign(x)
        if self.l2:
            g += (2.0 * self.l2) * x
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


# Keras' lower-case exports are the classes: ``regularizers.l2(0.01)``, ``l1_l2(l1=.., l2=..)``.
l1, l2, l1_l2 = L1, L2, L1L2

CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
NAMES = {
    "l1": L1,
    "l2": L2,
    "l1l2": L1L2,
    "l1_l2": lambda: L1L2(0.01, 0.01),
}


def serialize(reg) -> dict | str | None:
    """An object -> Keras' config dict; a name stays a name; None stays None."""
    if reg is None or isinstance(reg, str):
        return reg
    if isinstance(reg, Regularizer) and type(reg).__name__ in CLASSES:
        return keras_config(reg, "keras.regularizers")
    raise ValueError(
        f"regularizer {reg!r} cannot be serialized; use 'l1', 'l2', 'l1_l2' or L1/L2/L1L2"
    )


def get(identifier, arg="regularizer"):
    """None, a name, a config dict or a :class:`Regularizer` -> a Regularizer or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        expected = f"one of {sorted(NAMES)} or an L1/L2/L1L2 object"
        return from_name(identifier, {**CLASSES, **NAMES}, "regularizer", arg, expected)
    if isinstance(identifier, dict):
        return from_config_dict(identifier, CLASSES, "regularizer", arg)
    if callable(identifier):
        raise ValueError(
            f"argument '{arg}': a plain function has no gradient in lstmkit (no autodiff); "
            "subclass lstmkit.regularizers.Regularizer and define __call__ and grad"
        )
    raise ValueError(
        f"argument '{arg}' must be None, a regularizer name, config dict or object; got "
        f"{identifier!r}"
    )


# -- what the trainer calls ------------------------------------------------------------------
def weight_penalty(layers) -> tuple[float, dict]:
    """``(penalty, gradients by dotted name)`` of every trainable layer's weight regularizers."""
    total, grads = 0.0, {}
    for layer in layers:
        if not layer.trainable:
            continue
        for role, reg in layer.weight_regularizers().items():
            w = layer.params[role]
            total += reg(w)
            grads[f"{layer.name}.{role}"] = reg.grad(w).astype(w.dtype, copy=False)
    return total, grads


def has_activity(layers) -> bool:
    """Whether any layer (or a Bidirectional's direction) has an activity regularizer."""
    for layer in layers:
        for part in (
            layer,
            getattr(layer, "forward_layer", None),
            getattr(layer, "backward_layer", None),
        ):
            if getattr(part, "activity_regularizer", None) is not None:
                return True
    return False


def activity_penalty(caches) -> float:
    """The sum of the ``activity_penalty`` fields found anywhere in a forward's caches (layers
    with an ``activity_regularizer`` record their penalty there; their backward adds its
    gradient)."""
    if isinstance(caches, np.ndarray) or caches is None:
        return 0.0
    own = getattr(caches, "activity_penalty", None)
    total = float(own) if own is not None else 0.0
    if isinstance(caches, dict):
        caches = list(caches.values())
    if isinstance(caches, (list, tuple)):
        total += sum(activity_penalty(c) for c in caches)
    return total
