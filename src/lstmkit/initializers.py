"""Weight initialisers with Keras 3 defaults, drawn from an explicit ``np.random.Generator``."""

from __future__ import annotations

import numpy as np


def glorot_uniform(shape, rng, dtype):
    """Keras' default kernel init: U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape, rng, dtype, gain=1.0):
    """Keras' default recurrent-kernel init: a (semi-)orthogonal matrix from a QR decomposition."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over orthogonal matrices)
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(dtype)


def zeros(shape, rng, dtype):
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng, dtype):
    return np.ones(shape, dtype=dtype)


def uniform(shape, rng, dtype, limit=0.05):
    """Keras' ``RandomUniform`` default, used for Embedding."""
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "ones": ones,
    "uniform": uniform,
}


def get(name):
    if callable(name):
        return name
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}")
    return INITIALIZERS[name]
