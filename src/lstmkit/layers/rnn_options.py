"""Keras 3 constructor arguments of the recurrent layers: validation and config serialisation.

What :class:`lstmkit.layers.recurrent.RNNBase` accepts besides the shape and time arguments:

- ``activation`` / ``recurrent_activation``: any element-wise name
  :func:`lstmkit.ops.activations.get_elementwise` knows (``None`` is ``"linear"``, as in Keras).
  Softmax-like activations (``softmax``, ``log_softmax``, ``glu``, ``sparsemax``) act across the
  units and have no element-wise derivative: refused.
- ``kernel_initializer`` / ``recurrent_initializer`` / ``bias_initializer``: see
  :mod:`lstmkit.initializers`; a name stays a name in the config, an object becomes Keras'
  config dict.
- ``kernel_regularizer`` / ``recurrent_regularizer`` / ``bias_regularizer`` /
  ``activity_regularizer``: see :mod:`lstmkit.regularizers`; config dicts.
- ``kernel_constraint`` / ``recurrent_constraint`` / ``bias_constraint``: see
  :mod:`lstmkit.constraints`; config dicts.
- ``seed``, ``unroll`` (accepted, no effect: the loop is the same), ``use_cudnn`` (accepted, no
  effect: there is no GPU path), ``implementation`` (Keras 2's 1 or 2; accepted and dropped, as
  Keras 3 does).
"""

from __future__ import annotations

import numpy as np

from .. import constraints, initializers, regularizers
from ..ops.activations import get_elementwise

#: activations that act across units: no element-wise derivative, so no recurrent use
NOT_ELEMENTWISE = ("softmax", "log_softmax", "glu", "sparsemax")

INITIALIZER_ARGS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")
REGULARIZER_ARGS = (
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
)
CONSTRAINT_ARGS = ("kernel_constraint", "recurrent_constraint", "bias_constraint")
#: (argument, parameter role) of the weight regularizers and of the constraints
ROLES = {
    "regularizer": (
        ("kernel_regularizer", "kernel"),
        ("recurrent_regularizer", "recurrent_kernel"),
        ("bias_regularizer", "bias"),
    ),
    "constraint": (
        ("kernel_constraint", "kernel"),
        ("recurrent_constraint", "recurrent_kernel"),
        ("bias_constraint", "bias"),
    ),
}


def activation(who: str, arg: str, name) -> str:
    """A validated activation name (``None`` -> ``"linear"``)."""
    name = "linear" if name is None else name
    if not isinstance(name, str):
        raise ValueError(
            f"{who}: argument '{arg}' must be an activation name (lstmkit needs the derivative, "
            f"so functions are not accepted); got {name!r}"
        )
    if name in NOT_ELEMENTWISE:
        raise ValueError(
            f"{who}: argument '{arg}' must be an element-wise activation; got {name!r}, which "
            "acts across the units"
        )
    try:
        get_elementwise(name)
    except ValueError as e:  # its message says 'activation'; name the argument given
        raise ValueError(f"{who}: " + str(e).replace("'activation'", f"'{arg}'", 1)) from None
    return name


def flag(who: str, arg: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{who}: argument '{arg}' must be True or False; got {value!r}")
    return bool(value)


def seed(who: str, value):
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{who}: argument 'seed' must be None or a non-negative int; got {value!r}"
        )
    return int(value)


def use_cudnn(who: str, value):
    if value not in ("auto", True, False):
        raise ValueError(
            f"{who}: argument 'use_cudnn' must be 'auto', True or False; got {value!r}"
        )
    return value


def implementation(who: str, value):
    """Keras 3 accepts and ignores it (0, 1, 2: legacy kernel choices); so does lstmkit."""
    if not isinstance(value, int) or isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(f"{who}: argument 'implementation' must be 0, 1 or 2; got {value!r}")


def initializer(who: str, arg: str, value):
    """Names stay names (the config keeps them); dicts become objects; both are checked."""
    try:
        resolved = initializers.get(value, arg)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None
    return value if isinstance(value, str) else resolved


def regularizer(who: str, arg: str, value):
    try:
        return regularizers.get(value, arg)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None


def constraint(who: str, arg: str, value):
    try:
        return constraints.get(value, arg)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None


def config(layer) -> dict:
    """The weight arguments of ``layer`` in Keras' config form."""
    cfg = {}
    for arg in INITIALIZER_ARGS:
        v = getattr(layer, arg)
        cfg[arg] = v if callable(v) and not hasattr(v, "get_config") else initializers.serialize(v)
    for arg in REGULARIZER_ARGS:
        cfg[arg] = regularizers.serialize(getattr(layer, arg))
    for arg in CONSTRAINT_ARGS:
        cfg[arg] = constraints.serialize(getattr(layer, arg))
    return cfg


def by_role(layer, kind: str) -> dict:
    """Parameter role -> regularizer (``kind="regularizer"``) or constraint of ``layer``."""
    out = {}
    for arg, role in ROLES[kind]:  # runs at every training step: kept to attribute reads
        obj = getattr(layer, arg)
        if obj is not None and role in layer.params:
            out[role] = obj
    return out
