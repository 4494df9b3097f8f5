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
