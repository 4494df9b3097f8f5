"""Weight constraints with Keras 3 names, defaults and formulas.

A constraint is a projection applied to a weight after every optimizer step (Keras 3 applies
``variable.assign(constraint(variable))`` after the update). Norms are taken along ``axis`` (0 by
default: for a ``kernel (D, G*H)`` each column, the weights into one unit), ``eps = 1e-7``::

    MaxNorm(max_value=2, axis=0)     w * clip(n, 0, max_value) / (eps + n)
    NonNeg()                         max(w, 0)
    UnitNorm(axis=0)                 w / (eps + n)
    MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)
                                     w * (rate * clip(n, min, max) + (1 - rate) * n) / (eps + n)

with ``n = sqrt(sum(w^2, axis, keepdims=True))``. Names: ``"max_norm"``, ``"non_neg"``,
``"unit_norm"``, ``"min_max_norm"`` (and the class names); config dicts as Keras writes them.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import Configurable, from_config_dict, from_name, keras_config

EPSILON = 1e-7  # keras.backend.epsilon()


class Constraint(Configurable):
    def __call__(self, w) -> np.ndarray:
        return w


def _number(cls, arg, v, low=0.0):
    if (
        not isinstance(v, (int, float, np.number))
        or isinstance(v, bool)
        or not math.isfinite(v)
        or v < low
    ):
        raise ValueError(f"{cls}: argument '{arg}' must be a finite number >= {low}; got {v!r}")
    return v


def _axis(cls, axis):
    if isinstance(axis, (list, tuple)) and all(isinstance(a, int) for a in axis):
        return list(axis)
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    raise ValueError(f"{cls}: argument 'axis' must be an int or a list of ints; got {axis!r}")


def _norms(w, axis):
    ax = tuple(axis) if isinstance(axis, list) else axis
    return np.sqrt(np.sum(np.square(w), axis=ax, keepdims=True))


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value = _number("MaxNorm", "max_value", max_value)
        self.axis = _axis("MaxNorm", axis)

    def __call__(self, w):
        n = _norms(w, self.axis)
        return w * (np.clip(n, 0, self.max_value) / (EPSILON + n))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = _axis("UnitNorm", axis)

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number("MinMaxNorm", "min_value", min_value)
        self.max_value = _number("MinMaxNorm", "max_value", max_value)
        if self.max_value < self.min_value:
            raise ValueError(
                f"MinMaxNorm: argument 'max_value' ({max_value}) must be >= 'min_value' "
                f"({min_value})"
            )
        self.rate = _number("MinMaxNorm", "rate", rate)
        self.axis = _axis("MinMaxNorm", axis)

    def __call__(self, w):
        n = _norms(w, self.axis)
        desired = self.rate * np.clip(n, self.min_value, self.max_value) + (1 - self.rate) * n
        return w * (desired / (EPSILON + n))

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


# Keras' lower-case exports are the classes: ``constraints.max_norm(3)``.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

CLASSES = {c.__name__: c for c in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}


def serialize(con) -> dict | str | None:
    if con is None or isinstance(con, str):
        return con
    if isinstance(con, Constraint) and type(con).__name__ in CLASSES:
        return keras_config(con, "keras.constraints")
    raise ValueError(f"constraint {con!r} cannot be serialized; use {sorted(NAMES)}")


def get(identifier, arg="constraint"):
    """None, a name, a config dict or a :class:`Constraint` -> a Constraint or None."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str):
        lookup = {**CLASSES, **NAMES}
        return from_name(identifier, lookup, "constraint", arg, f"one of {sorted(NAMES)}")
    if isinstance(identifier, dict):
        return from_config_dict(identifier, CLASSES, "constraint", arg)
    raise ValueError(
        f"argument '{arg}' must be None, a constraint name, config dict or a "
        f"lstmkit.constraints.Constraint; got {identifier!r}"
    )


def apply_constraints(layers) -> None:
    """Project every trainable layer's constrained weights in place (after an optimizer step)."""
    for layer in layers:
        if not layer.trainable:
            continue
        for role, con in layer.weight_constraints().items():
            w = layer.params[role]
            w[...] = con(w)
