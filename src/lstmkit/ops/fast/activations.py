"""Scalar activations for the compiled kernels, one implementation per float type.

numba compiles ``math.tanh`` / ``math.exp`` to scalar libm calls (~15 ns each) that LLVM cannot
vectorise, and in a gate loop they cost more than the recurrent GEMM. For float32 we therefore use
Eigen's rational approximation of tanh (a 13/6 odd/even rational on ``[-7.9053, 7.9053]``, the
same coefficients oneDNN, MLAS and XLA use), which is plain arithmetic and vectorises. Measured
against float64 ``np.tanh`` on ``[-10, 10]`` at 2**-16 spacing (see
``tests/test_fast_ops.py::test_tanh32_accuracy``): max absolute error 3.6e-7 (at x = -5.92, about
6 float32 ulp near 1; float32 ``np.tanh`` is within 6e-8), relative error < 1e-6 for |x| < 1.
That is well inside the 1e-6 agreement the fast path is tested to. float64 keeps the exact
``math.tanh``.

``sigmoid(x) = 0.5 * tanh(0.5 * x) + 0.5`` exactly, as in :mod:`lstmkit.ops.activations`, so the
approximation is needed once.

``tanh_`` and ``sigmoid_`` are dispatched on the argument's type at compile time through
``numba.extending.overload``; constants are typed float32 globals so that float32 arithmetic never
silently widens to float64 (numba types ``1 - x`` as float64 for a float32 ``x``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

# Eigen 3.4 ``generic_fast_tanh_float`` (Eigen/src/Core/MathFunctionsImpl.h).
_CLAMP = np.float32(7.90531110763549805)
_TINY = np.float32(0.0004)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF32 = np.float32(0.5)
_ONE32 = np.float32(1.0)


def tanh32_reference(x: np.ndarray) -> np.ndarray:
    """The same approximation in NumPy float32, for tests and for documenting the error."""
    x = np.asarray(x, np.float32)
    xc = np.clip(x, -_CLAMP, _CLAMP)
    x2 = xc * xc
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * xc
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return np.where(np.abs(x) < _TINY, x, p / q)


@register_jitable
def _tanh32_f64(x):
    """Eigen's rational, evaluated in float64 with clamp 9 (where it rounds to 1 in float32)."""
    xd = np.float64(x)
    xc = min(max(xd, -9.0), 9.0)
    x2 = xc * xc
    p = -2.76076847742355e-16 * x2 + 2.00018790482477e-13
    p = p * x2 + -8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    p = p * xc
    q = 1.19825839466702e-06 * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03
    return np.float32(p / q)


@register_jitable
def _tanh32(x):
    xc = min(max(x, -_CLAMP), _CLAMP)
    x2 = xc * xc
    p = _A13 * x2 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    p = p * x2 + _A1
    p = p * xc
    q = _B6 * x2 + _B4
    q = q * x2 + _B2
    q = q * x2 + _B0
    # tanh(x) = x to float32 precision for |x| < 4e-4; keeps tiny values' relative accuracy.
    return x if abs(x) < _TINY else p / q


def tanh_(x):
    """Compile-time dispatch: rational tanh for float32, exact libm tanh for float64."""
    return math.tanh(x)


def sigmoid_(x):
    return 0.5 * math.tanh(0.5 * x) + 0.5


def one_(x):
    """The constant 1 in the float type of ``x`` (a scalar or an array's dtype): numba would widen
    a literal ``1`` to float64."""
    return 1.0


def half_(x):
    return 0.5


@overload(tanh_, inline="always")
def _ov_tanh(x):
    if x == types.float32:

        def impl(x):
            return _tanh32(x)

        return impl
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)
    return None


@overload(sigmoid_, inline="always")
def _ov_sigmoid(x):
    if x == types.float32:

        def impl(x):
            return _HALF32 * _tanh32(_HALF32 * x) + _HALF32

        return impl
    if isinstance(x, types.Float):
        return lambda x: 0.5 * math.tanh(0.5 * x) + 0.5
    return None


def _dtype_of(x):
    return x.dtype if isinstance(x, types.Array) else x


@overload(one_, inline="always")
def _ov_one(x):
    if _dtype_of(x) == types.float32:
        return lambda x: _ONE32
    if isinstance(_dtype_of(x), types.Float):
        return lambda x: 1.0
    return None


@overload(half_, inline="always")
def _ov_half(x):
    if _dtype_of(x) == types.float32:
        return lambda x: _HALF32
    if isinstance(_dtype_of(x), types.Float):
        return lambda x: 0.5
    return None
