"""Element-wise activations and their derivatives written in terms of the stored *outputs*.

Backward passes never recompute pre-activations: ``dsigmoid(s) = s * (1 - s)`` where ``s`` is the
sigmoid's output, ``dtanh(t) = 1 - t * t`` where ``t`` is tanh's output.
"""

from __future__ import annotations

import numpy as np


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


# name -> (forward, derivative from the output y and input z) for Dense/SimpleRNN activations.
def _linear_grad(y, z):
    return np.ones_like(y)


ACTIVATIONS = {
    "linear": (lambda z: z, _linear_grad),
    "sigmoid": (sigmoid, lambda y, z: dsigmoid(y)),
    "tanh": (np.tanh, lambda y, z: dtanh(y)),
    "relu": (relu, lambda y, z: (z > 0).astype(y.dtype)),
}


def get_activation(name: str | None):
    """Return ``(fn, grad_fn)`` for an activation name; ``None`` means linear."""
    key = "linear" if name is None else name
    if key not in ACTIVATIONS:
        raise ValueError(
            f"argument 'activation' must be one of {sorted(ACTIVATIONS)} or None; got {name!r}"
        )
    return ACTIVATIONS[key]


# -- more Keras activations for the recurrent layers' activation / recurrent_activation ----------
# (issue 15, recurrent-layer arguments.) Each is element-wise: forward ``fn(z)`` and derivative
# ``grad(y, z)`` with ``y = fn(z)``; Keras 3 (torch backend) definitions and default constants.
# They are looked up through get_elementwise (below), not added to ACTIVATIONS: Dense keeps its
# pre-activation only for relu, so it must not be offered derivatives that read z.
def _erf(z):
    """Error function to libm precision: scipy's ufunc when installed, else ``math.erf``."""
    try:
        from scipy.special import erf
    except ImportError:  # scipy is optional (lstmkit[fast]); the Python loop is exact, slower
        import math

        return np.vectorize(math.erf, otypes=[z.dtype])(z)
    return erf(z).astype(z.dtype, copy=False)


_SQRT_HALF, _SQRT_2PI = 0.7071067811865476, 2.5066282746310002  # Python floats keep float32


def _gelu(z):
    return 0.5 * z * (1.0 + _erf(z * _SQRT_HALF))


def _dgelu(y, z):
    pdf = np.exp(-0.5 * z * z) / _SQRT_2PI  # φ(z)
    return 0.5 * (1.0 + _erf(z * _SQRT_HALF)) + z * pdf


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _softplus(z):
    return np.logaddexp(0, z).astype(z.dtype, copy=False)


def _swish(z):
    return z * sigmoid(z)


def _dswish(y, z):
    s = sigmoid(z)
    return s + z * s * (1 - s)


def _mish(z):
    return z * np.tanh(_softplus(z))


def _dmish(y, z):
    t = np.tanh(_softplus(z))
    return t + z * (1 - t * t) * sigmoid(z)


def _where(cond, a, b, like):
    return np.where(cond, a, b).astype(like.dtype, copy=False)


_MORE_ACTIVATIONS = {
    "elu": (
        lambda z: _where(z > 0, z, np.expm1(np.minimum(z, 0)), z),
        lambda y, z: _where(z > 0, 1.0, y + 1.0, y),
    ),
    "selu": (
        lambda z: (
            _SELU_SCALE
            * _where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0)), z).astype(z.dtype)
        ),
        lambda y, z: _where(z > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA, y),
    ),
    "celu": (
        lambda z: _where(z > 0, z, np.expm1(np.minimum(z, 0)), z),
        lambda y, z: _where(z > 0, 1.0, y + 1.0, y),
    ),
    "gelu": (_gelu, _dgelu),
    "softplus": (_softplus, lambda y, z: sigmoid(z)),
    "softsign": (lambda z: z / (1 + np.abs(z)), lambda y, z: 1 / (1 + np.abs(z)) ** 2),
    "silu": (_swish, _dswish),
    "swish": (_swish, _dswish),
    "mish": (_mish, _dmish),
    "exponential": (np.exp, lambda y, z: y),
    "relu6": (
        lambda z: np.clip(z, 0, 6).astype(z.dtype, copy=False),
        lambda y, z: _where((z > 0) & (z < 6), 1.0, 0.0, y),
    ),
    "leaky_relu": (
        lambda z: _where(z > 0, z, 0.2 * z, z),
        lambda y, z: _where(z > 0, 1.0, 0.2, y),
    ),
    "hard_sigmoid": (
        lambda z: np.clip(z / 6 + 0.5, 0, 1).astype(z.dtype, copy=False),
        lambda y, z: _where((z > -3) & (z < 3), 1 / 6, 0.0, y),
    ),
    "hard_silu": (
        lambda z: z * np.clip(z / 6 + 0.5, 0, 1).astype(z.dtype, copy=False),
        lambda y, z: _where(z >= 3, 1.0, _where(z > -3, (2 * z + 3) / 6, 0.0, y), y),
    ),
    "hard_tanh": (
        lambda z: np.clip(z, -1, 1).astype(z.dtype, copy=False),
        lambda y, z: _where((z > -1) & (z < 1), 1.0, 0.0, y),
    ),
    "log_sigmoid": (lambda z: -_softplus(-z), lambda y, z: sigmoid(-z)),
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
_MORE_ACTIVATIONS["hard_swish"] = _MORE_ACTIVATIONS["hard_silu"]


def get_elementwise(name: str | None):
    """:func:`get_activation` for the recurrent cells (which keep their pre-activations): its
    names, then the ones above. ``(fn, grad_fn(y, z))``; ``None`` means linear."""
    key = "linear" if name is None else name
    if key in ACTIVATIONS:
        return ACTIVATIONS[key]
    if key in _MORE_ACTIVATIONS:
        return _MORE_ACTIVATIONS[key]
    raise ValueError(
        f"argument 'activation' must be one of {sorted({*ACTIVATIONS, *_MORE_ACTIVATIONS})} or "
        f"None; got {name!r}"
    )
