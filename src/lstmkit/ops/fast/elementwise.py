"""Keras' element-wise activations on the compiled path, each written once: a scalar forward and
its derivative *from the output*, which is what the kernels store (``i``, ``g``, ``φ(c)``, ...).

The kernels take an :class:`Acts` argument, the layer's ``(activation, recurrent_activation)``
pair. Its numba type carries the two names, so numba compiles one machine code per pair (on its
first use, then keeps it in the cache like every kernel) and :func:`phi`, :func:`rho` and their
derivatives resolve to one scalar function each *at compile time*: the vectorised inner loops hold
no branch on the activation, and the default pair (tanh, sigmoid) compiles to the code it had
before the pair existed. ``COMPILED`` lists the activations the kernels have. Their definitions
are those of :mod:`lstmkit.ops.activations` (its table; hard_tanh: ``min(max(z, -1), 1)``);
the derivative each one takes here from the output ``y = φ(z)``::

    linear 1            relu y > 0          relu6 0 < y < 6       leaky_relu 1 if y > 0 else 0.2
    elu 1 if y > 0 else y + 1               selu s if y > 0 else y + s a
    sigmoid y (1 - y)   hard_sigmoid 1/6 if 0 < y < 1 else 0      tanh 1 - y^2
    hard_tanh -1 < y < 1                    softplus 1 - e^-y     softsign (1 - |y|)^2
    exponential y       log_sigmoid -(e^y - 1)

The others (gelu, swish/silu, hard_silu, mish, tanh_shrink, celu, squareplus, the shrinks,
sparse_plus, sparse_sigmoid) need the pre-activation or were left out; they run on the NumPy
reference (:func:`lstmkit.ops.backend.compiled_supports`). tanh and sigmoid are those of
:mod:`.activations` (float32 arithmetic for float32); the exponential ones use libm
(``expm1``/``log1p``: exact near 0, but LLVM does not vectorise them).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import types
from numba.extending import (
    NativeValue,
    models,
    overload,
    register_jitable,
    register_model,
    typeof_impl,
    unbox,
)

from ..activations import LEAKY_SLOPE, OUTPUT_DERIVED, SELU_ALPHA, SELU_SCALE
from .activations import one_, sigmoid_, tanh_

DEFAULT = ("tanh", "sigmoid")


class ActsType(types.Dummy):
    """numba type of an :class:`Acts`: the names are part of the type, so each pair compiles apart
    (and is cached apart: the names are in the signature)."""

    def __init__(self, act: str, rec: str | None):
        self.act, self.rec = act, rec
        super().__init__(name=f"Acts({act}, {rec})")


class Acts:
    """``(activation, recurrent_activation)`` as the kernels take it (``rec`` None: SimpleRNN).
    Build with :func:`acts_for`. ``_numba_type_`` lets numba's dispatcher type it without a
    Python call."""

    __slots__ = ("_numba_type_", "act", "rec")

    def __init__(self, act: str, rec: str | None):
        self.act, self.rec = act, rec
        self._numba_type_ = ActsType(act, rec)

    def __repr__(self):
        return f"Acts({self.act!r}, {self.rec!r})"


@typeof_impl.register(Acts)
def _typeof_acts(val, c):
    return val._numba_type_


register_model(ActsType)(models.OpaqueModel)


@unbox(ActsType)
def _unbox_acts(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())  # no value: everything is in the type


# --- constants in the argument's float type (a float64 literal would widen float32 arithmetic) ---
def as_(x, v):
    return v


@overload(as_, inline="always")
def _ov_as(x, v):
    if x == types.float32:
        return lambda x, v: np.float32(v)
    if isinstance(x, types.Float):
        return lambda x, v: np.float64(v)
    return None


# --- the activations: forward, derivative from the output -----------------------------------------
@register_jitable
def _linear(x):
    return x


@register_jitable
def _d_one(y):
    return one_(y)


@register_jitable
def _relu(x):
    return x if x > 0 else as_(x, 0.0)


@register_jitable
def _d_relu(y):
    return one_(y) if y > 0 else as_(y, 0.0)


@register_jitable
def _relu6(x):
    v = x if x > 0 else as_(x, 0.0)
    return v if v < 6 else as_(x, 6.0)


@register_jitable
def _d_relu6(y):
    return one_(y) if y > 0 and y < 6 else as_(y, 0.0)


@register_jitable
def _leaky_relu(x):
    return x if x > 0 else x * as_(x, LEAKY_SLOPE)


@register_jitable
def _d_leaky_relu(y):
    return one_(y) if y > 0 else as_(y, LEAKY_SLOPE)


@register_jitable
def _elu(x):
    return x if x > 0 else math.expm1(x)


@register_jitable
def _d_elu(y):
    return one_(y) if y > 0 else y + one_(y)


@register_jitable
def _selu(x):
    return as_(x, SELU_SCALE) * (x if x > 0 else as_(x, SELU_ALPHA) * math.expm1(x))


@register_jitable
def _d_selu(y):
    return as_(y, SELU_SCALE) if y > 0 else y + as_(y, SELU_SCALE * SELU_ALPHA)


@register_jitable
def _sigmoid(x):
    return sigmoid_(x)


@register_jitable
def _d_sigmoid(y):
    return y * (one_(y) - y)


@register_jitable
def _hard_sigmoid(x):
    return _relu6(x + as_(x, 3.0)) / as_(x, 6.0)  # PyTorch's (Keras 3 torch's) rounding order


@register_jitable
def _d_hard_sigmoid(y):
    return as_(y, 1 / 6) if y > 0 and y < 1 else as_(y, 0.0)


@register_jitable
def _tanh(x):
    return tanh_(x)


@register_jitable
def _d_tanh(y):
    return one_(y) - y * y


@register_jitable
def _hard_tanh(x):
    v = x if x > -1 else as_(x, -1.0)
    return v if v < 1 else one_(x)


@register_jitable
def _d_hard_tanh(y):
    return one_(y) if y > -1 and y < 1 else as_(y, 0.0)


@register_jitable
def _softplus(x):
    return (x if x > 0 else as_(x, 0.0)) + math.log1p(math.exp(-abs(x)))  # never overflows


@register_jitable
def _d_softplus(y):
    return -math.expm1(-y)  # σ(z) = 1 - e^-softplus(z)


@register_jitable
def _softsign(x):
    return x / (one_(x) + abs(x))


@register_jitable
def _d_softsign(y):
    d = one_(y) - abs(y)  # 1 / (1 + |z|)
    return d * d


@register_jitable
def _exponential(x):
    return math.exp(x)


@register_jitable
def _d_exponential(y):
    return y


@register_jitable
def _log_sigmoid(x):
    return -_softplus(-x)


@register_jitable
def _d_log_sigmoid(y):
    return -math.expm1(y)  # σ(-z) = 1 - e^log_sigmoid(z)


#: name -> (forward, derivative from the output)
COMPILED = {
    "linear": (_linear, _d_one),
    "relu": (_relu, _d_relu),
    "relu6": (_relu6, _d_relu6),
    "leaky_relu": (_leaky_relu, _d_leaky_relu),
    "elu": (_elu, _d_elu),
    "selu": (_selu, _d_selu),
    "sigmoid": (_sigmoid, _d_sigmoid),
    "hard_sigmoid": (_hard_sigmoid, _d_hard_sigmoid),
    "tanh": (_tanh, _d_tanh),
    "hard_tanh": (_hard_tanh, _d_hard_tanh),
    "softplus": (_softplus, _d_softplus),
    "softsign": (_softsign, _d_softsign),
    "exponential": (_exponential, _d_exponential),
    "log_sigmoid": (_log_sigmoid, _d_log_sigmoid),
}


assert tuple(COMPILED) == OUTPUT_DERIVED  # the list the backend reads without importing numba


def name(activation) -> str:
    """Keras' ``None`` is linear."""
    return "linear" if activation is None else activation


def compiles(activation) -> bool:
    """Whether the kernels have ``activation``."""
    return isinstance(name(activation), str) and name(activation) in COMPILED


@functools.cache
def acts_for(activation="tanh", recurrent_activation=None, who="ops") -> Acts:
    """The :class:`Acts` of a pair (``recurrent_activation`` None: a cell without one, SimpleRNN);
    ValueError naming the argument when the kernels lack an activation."""
    act = name(activation)
    for arg, value in (("activation", act), ("recurrent_activation", recurrent_activation)):
        if value is not None and not compiles(value):
            raise ValueError(
                f"{who}: argument '{arg}' must be one of {sorted(COMPILED)} on the compiled "
                f"path; got {value!r} (the NumPy reference, lstmkit.ops.lstm/gru/rnn, runs "
                "every element-wise activation)"
            )
    return Acts(act, recurrent_activation)


def gated_acts(who, activation, recurrent_activation) -> Acts:
    """The :class:`Acts` of a gated cell (LSTM, GRU): Keras' ``None`` is linear for both."""
    rec = "linear" if recurrent_activation is None else recurrent_activation
    return acts_for(activation, rec, who)


# --- what the cells call: resolved at compile time from the Acts type --------------------------
def phi(acts, x):
    """``activation(x)``."""


def dphi(acts, y):
    """``activation'`` from its output ``y``."""


def rho(acts, x):
    """``recurrent_activation(x)``."""


def drho(acts, y):
    """``recurrent_activation'`` from its output ``y``."""


def _resolver(which: str, k: int):
    def resolve(acts, x):
        if not isinstance(acts, ActsType):
            return None
        fn = COMPILED[getattr(acts, which)][k]
        return lambda acts, x: fn(x)

    return resolve


for _fn, _which, _k in ((phi, "act", 0), (dphi, "act", 1), (rho, "rec", 0), (drho, "rec", 1)):
    overload(_fn, inline="always")(_resolver(_which, _k))
