"""Activations with Keras 3 names and definitions, and their exact derivatives.

Element-wise activations ``y = φ(z)`` come with ``dφ/dz`` written in terms of the stored output
``y`` wherever that is exact and cheap (``dsigmoid(s) = s * (1 - s)``, ``dtanh(t) = 1 - t * t``,
relu: ``y > 0``), and in terms of the input ``z`` otherwise (gelu, swish, softsign, ...).
``softmax`` and ``log_softmax`` act along the last axis: their backward is a vector-Jacobian
product, never a materialised Jacobian.

Definitions (Keras 3 defaults; ``σ`` is the logistic sigmoid, ``Φ`` the standard normal CDF)::

    linear       z                                  1
    relu         max(z, 0)                          y > 0
    relu6        min(max(z, 0), 6)                  0 < y < 6
    leaky_relu   z if z > 0 else 0.2 z              1 if y > 0 else 0.2
    elu          z if z > 0 else e^z - 1            1 if y > 0 else y + 1
    selu         s z if z > 0 else s a (e^z - 1)    s if y > 0 else y + s a
                 (a = 1.6732632423543772, s = 1.0507009873554805)
    sigmoid      σ(z)                               y (1 - y)
    hard_sigmoid min(max(z + 3, 0), 6) / 6          1/6 if 0 < y < 1 else 0
    tanh         tanh(z)                            1 - y^2
    softplus     log(1 + e^z)                       σ(z) = 1 - e^-y
    softsign     z / (1 + |z|)                      1 / (1 + |z|)^2
    exponential  e^z                                y
    gelu         z Φ(z)  (exact erf form)           Φ(z) + z φ(z)
    swish, silu  z σ(z)                             σ(z) (1 + z (1 - σ(z)))
    hard_silu,   z hard_sigmoid(z)                  hard_sigmoid(z) + z/6 on (-3, 3)
    hard_swish
    mish         z tanh(softplus(z))                t + z σ(z) (1 - t^2),  t = tanh(softplus(z))
    log_sigmoid  -softplus(-z)                      σ(-z) = 1 - e^y
    softmax      e^z / Σ e^z   (last axis)          dz = y (dy - Σ dy y)
    log_softmax  z - log Σ e^z (last axis)          dz = dy - e^y Σ dy

``get_activation(name) -> (fn, grad)`` is the registry every layer and cell uses; ``grad(y, z)``
is the element-wise derivative (``z`` may be ``None`` when :func:`needs_input` is False).
``activation_vjp(name)`` gives ``vjp(dy, y, z) -> dz`` for every activation, softmax included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's default negative_slope
_SQRT_HALF = 0.7071067811865475244008443621048  # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014326779399460599344  # 1 / sqrt(2 pi)


# -- the functions the recurrent kernels import directly -------------------------------------
def sigmoid(z: np.ndarray) -> np.ndarray:
    # 0.5 * tanh(0.5 z) + 0.5 is exactly the logistic function, never overflows, and is one ufunc.
    return 0.5 * np.tanh(0.5 * z) + 0.5


def dsigmoid(s: np.ndarray) -> np.ndarray:
    return s * (1 - s)


def dtanh(t: np.ndarray) -> np.ndarray:
    return 1 - t * t


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# -- the rest of Keras 3's activations -------------------------------------------------------
def _erf(x: np.ndarray) -> np.ndarray:
    """erf to the last bit: SciPy's ufunc when installed (imported here, so the NumPy-only
    runtime never pulls it in for models without gelu), else ``math.erf`` per element."""
    try:
        from scipy.special import erf
    except ImportError:  # NumPy-only deployment: exact but slow
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return erf(x)


def _normal_cdf(z):
    return 0.5 * (1 + _erf(z * z.dtype.type(_SQRT_HALF)))


def gelu(z):
    return 0.5 * z * (1 + _erf(z * z.dtype.type(_SQRT_HALF)))


def _dgelu(y, z):
    return _normal_cdf(z) + z * (_INV_SQRT_2PI * np.exp(-0.5 * z * z))


def elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def selu(z):
    neg = SELU_ALPHA * np.expm1(np.minimum(z, 0))
    return (SELU_SCALE * np.where(z > 0, z, neg)).astype(z.dtype, copy=False)


def softplus(z):
    return np.logaddexp(z.dtype.type(0), z)  # max(z, 0) + log1p(exp(-|z|)): never overflows


def softsign(z):
    return z / (1 + np.abs(z))


def swish(z):
    return z * sigmoid(z)


def _dswish(y, z):
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


def hard_sigmoid(z):
    # PyTorch's (Keras 3 torch backend's) rounding order: relu6(z + 3) / 6
    return np.clip(z + 3, 0, 6) / z.dtype.type(6)


def hard_silu(z):
    return z * hard_sigmoid(z)


def _dhard_silu(y, z):
    inside = (z > -3) & (z < 3)
    return hard_sigmoid(z) + np.where(inside, z / z.dtype.type(6), 0)


def mish(z):
    return z * np.tanh(softplus(z))


def _dmish(y, z):
    t = np.tanh(softplus(z))
    return t + z * sigmoid(z) * (1 - t * t)


def log_sigmoid(z):
    return -softplus(-z)


def leaky_relu(z):
    return np.where(z > 0, z, z * z.dtype.type(LEAKY_SLOPE))


def relu6(z):
    return np.clip(z, 0, 6)


def linear(z):
    return z


# -- derivatives from the output y (z unused) ------------------------------------------------
def _one(y, z):
    return np.ones_like(y)


def _step(y, z):
    return (y > 0).astype(y.dtype)


def _dleaky(y, z):
    return np.where(y > 0, y.dtype.type(1), y.dtype.type(LEAKY_SLOPE))


def _delu(y, z):
    return np.where(y > 0, y.dtype.type(1), y + 1)


def _dselu(y, z):
    return np.where(y > 0, y.dtype.type(SELU_SCALE), y + y.dtype.type(SELU_SCALE * SELU_ALPHA))


def _drelu6(y, z):
    return ((y > 0) & (y < 6)).astype(y.dtype)


def _dhard_sigmoid(y, z):
    return np.where((y > 0) & (y < 1), y.dtype.type(1 / 6), y.dtype.type(0))


def _dsoftplus(y, z):
    return -np.expm1(-y)  # σ(z) = 1 - e^-softplus(z), exact in both tails


def _dlog_sigmoid(y, z):
    return -np.expm1(y)  # σ(-z) = 1 - e^log_sigmoid(z)


def _dsoftsign(y, z):
    if z is None:  # from the output, as the compiled kernels store it: 1 - |y| = 1 / (1 + |z|)
        d = 1 - np.abs(y)
        return d * d
    d = 1 + np.abs(z)
    return 1 / (d * d)


def _along_axis(y, z):
    raise ValueError(
        "softmax/log_softmax act along the last axis and have no element-wise derivative; "
        "use activation_vjp(name)(dy, y, z)"
    )


# -- vector-Jacobian products for the two activations that act along the last axis ------------
def _softmax_vjp(dy, y, z):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _log_softmax_vjp(dy, y, z):
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


class Activation(NamedTuple):
    """One registry entry: ``fn(z)``, element-wise ``grad(y, z)``, whether ``grad`` reads ``z``,
    and the vector-Jacobian product for activations that are not element-wise."""

    fn: Callable
    grad: Callable
    needs_input: bool = False
    vjp: Callable | None = None


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(linear, _one),
    "relu": Activation(relu, _step),
    "relu6": Activation(relu6, _drelu6),
    "leaky_relu": Activation(leaky_relu, _dleaky),
    "elu": Activation(elu, _delu),
    "selu": Activation(selu, _dselu),
    "sigmoid": Activation(sigmoid, lambda y, z: dsigmoid(y)),
    "hard_sigmoid": Activation(hard_sigmoid, _dhard_sigmoid),
    "tanh": Activation(np.tanh, lambda y, z: dtanh(y)),
    "softplus": Activation(softplus, _dsoftplus),
    "softsign": Activation(softsign, _dsoftsign, needs_input=True),
    "exponential": Activation(np.exp, lambda y, z: y),
    "gelu": Activation(gelu, _dgelu, needs_input=True),
    "swish": Activation(swish, _dswish, needs_input=True),
    "silu": Activation(swish, _dswish, needs_input=True),
    "hard_silu": Activation(hard_silu, _dhard_silu, needs_input=True),
    "hard_swish": Activation(hard_silu, _dhard_silu, needs_input=True),
    "mish": Activation(mish, _dmish, needs_input=True),
    "log_sigmoid": Activation(log_sigmoid, _dlog_sigmoid),
    "softmax": Activation(softmax, _along_axis, vjp=_softmax_vjp),
    "log_softmax": Activation(log_softmax, _along_axis, vjp=_log_softmax_vjp),
}


def activation_spec(name) -> Activation:
    """The registry entry for ``name`` (``None`` means linear); ValueError for unknown names."""
    key = "linear" if name is None else name
    if not isinstance(key, str) or key not in ACTIVATIONS:
        raise ValueError(
            f"argument 'activation' must be one of {sorted(ACTIVATIONS)} or None; got {name!r}"
        )
    return ACTIVATIONS[key]


def get_activation(name):
    """Return ``(fn, grad)`` for an activation name; ``None`` means linear. ``grad(y, z)`` is
    the element-wise derivative from the output ``y`` (and the input ``z`` when
    :func:`needs_input`); softmax/log_softmax have none (use :func:`activation_vjp`)."""
    spec = activation_spec(name)
    return spec.fn, spec.grad


def needs_input(name) -> bool:
    """True when the derivative reads the pre-activation ``z``, so a cache must keep it."""
    return activation_spec(name).needs_input


def is_elementwise(name) -> bool:
    return activation_spec(name).vjp is None


def activation_vjp(name):
    """``vjp(dy, y, z) -> dz = dLoss/dz`` given ``dy = dLoss/dy``; for every activation."""
    spec = activation_spec(name)
    if spec.vjp is not None:
        return spec.vjp
    if name in (None, "linear"):
        return lambda dy, y, z: dy
    grad = spec.grad
    return lambda dy, y, z: dy * grad(y, z)


# -- further Keras activations, for the recurrent layers only ------------------------------------
# Element-wise ``fn(z)`` with ``grad(y, z)``, Keras 3 definitions; the recurrent cells keep their
# pre-activations, so derivatives may read z. Every name ACTIVATIONS has is taken from there
# (get_elementwise): these are the ones it lacks.
def _where(cond, a, b, like):
    return np.where(cond, a, b).astype(like.dtype, copy=False)


_MORE_ACTIVATIONS = {
    "celu": (
        lambda z: _where(z > 0, z, np.expm1(np.minimum(z, 0)), z),
        lambda y, z: _where(z > 0, 1.0, y + 1.0, y),
    ),
    "hard_tanh": (
        lambda z: np.clip(z, -1, 1).astype(z.dtype, copy=False),
        lambda y, z: _where(np.abs(y if z is None else z) < 1, 1.0, 0.0, y),  # z None: from y
    ),
    "tanh_shrink": (lambda z: z - np.tanh(z), lambda y, z: np.tanh(z) ** 2),
    "squareplus": (
        lambda z: (z + np.sqrt(z * z + 4)) / 2,
        lambda y, z: (1 + z / np.sqrt(z * z + 4)) / 2,
    ),
    "hard_shrink": (
        lambda z: _where(np.abs(z) > 0.5, z, 0.0, z),
        lambda y, z: _where(np.abs(z) > 0.5, 1.0, 0.0, y),
    ),
    "soft_shrink": (
        lambda z: _where(z > 0.5, z - 0.5, _where(z < -0.5, z + 0.5, 0.0, z), z),
        lambda y, z: _where(np.abs(z) > 0.5, 1.0, 0.0, y),
    ),
    "sparse_plus": (
        lambda z: _where(z >= 1, z, _where(z > -1, (z + 1) ** 2 / 4, 0.0, z), z),
        lambda y, z: _where(z >= 1, 1.0, _where(z > -1, (z + 1) / 2, 0.0, y), y),
    ),
    "sparse_sigmoid": (
        lambda z: np.clip((z + 1) / 2, 0, 1).astype(z.dtype, copy=False),
        lambda y, z: _where((z > -1) & (z < 1), 0.5, 0.0, y),
    ),
}


#: the element-wise activations whose derivative is a function of their output (softsign:
#: ``(1 - |y|)^2``, hard_tanh: ``|y| < 1``): the compiled kernels run these
#: (:mod:`lstmkit.ops.fast.elementwise` writes each once); the others need the pre-activation and
#: run on the NumPy reference
OUTPUT_DERIVED = (
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh",
    "hard_tanh", "softplus", "softsign", "exponential", "log_sigmoid",
)  # fmt: skip


def compiles(name) -> bool:
    """Whether the compiled kernels run activation ``name`` (``None`` is linear)."""
    return ("linear" if name is None else name) in OUTPUT_DERIVED


def get_elementwise(name: str | None):
    """:func:`get_activation` for the recurrent cells (which keep their pre-activations): its
    element-wise names, then the ones above. ``(fn, grad_fn(y, z))``; ``None`` means linear."""
    key = "linear" if name is None else name
    if key in ACTIVATIONS and is_elementwise(key):
        return get_activation(key)
    if key in _MORE_ACTIVATIONS:
        return _MORE_ACTIVATIONS[key]
    raise ValueError(
        f"argument 'activation' must be one of {sorted({*ACTIVATIONS, *_MORE_ACTIVATIONS})} or "
        f"None; got {name!r}"
    )
