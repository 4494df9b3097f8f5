"""Scalar activations for the compiled kernels, one implementation per float type.

numba compiles ``math.tanh`` / ``math.exp`` to scalar libm calls (~15 ns each) that LLVM cannot
vectorise, and in a gate loop they cost more than the recurrent GEMM. For float32 we therefore use
Eigen's rational approximation of tanh (odd degree-13 over even degree-6 polynomial, the
coefficients Eigen, MLAS and XLA use), which is plain arithmetic and vectorises.

Evaluated in float32, as those libraries do, its error reaches 3.6e-7 (6 float32 ulp near 1,
at x = -5.92, from rounding in the Horner sums). We evaluate it in float64 instead, clamped at
+-9, and round once: max absolute error 5.4e-8 against float64 ``np.tanh`` (float32 ``np.tanh``
itself: 6.0e-8), i.e. float32 accuracy, checked over [-10, 10] at 2**-16 spacing by
``tests/test_fast_ops.py::test_tanh32_accuracy``. It costs ~1.4x the float32 evaluation in the gate
loop, and the float32 version's error, amplified through BPTT, breaks the 1e-6 agreement with the
reference the tests ask for. float64 keeps the exact ``math.tanh``.

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
from numba.extending import intrinsic, overload, register_jitable

# Eigen 3.4 ``generic_fast_tanh_float`` (Eigen/src/Core/MathFunctionsImpl.h): numerator
# x * P(x^2), odd, degree 13; denominator Q(x^2), even, degree 6.
_P = (
    -2.76076847742355e-16,
    2.00018790482477e-13,
    -8.60467152213735e-11,
    5.12229709037114e-08,
    1.48572235717979e-05,
    6.37261928875436e-04,
    4.89352455891786e-03,
)
_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
# Where the float64-evaluated rational rounds to +-1 in float32 (Eigen's float32 clamp, 7.905,
# stops short of that and costs 2.4e-7 of accuracy out there).
_CLAMP = 9.0
_HALF32 = np.float32(0.5)
_ONE32 = np.float32(1.0)


def tanh32_reference(x: np.ndarray) -> np.ndarray:
    """The compiled float32 tanh in NumPy, for tests and for documenting the error. (Its Horner
    steps round twice where the compiled ones fuse: the float64 values differ by ~1e-16, which
    changes a float32 result only where it straddles a rounding boundary.)"""
    x = np.asarray(x, np.float32)
    xc = np.clip(x.astype(np.float64), -_CLAMP, _CLAMP)
    x2 = xc * xc
    p = np.zeros_like(x2)
    for a in _P:
        p = p * x2 + a
    q = np.zeros_like(x2)
    for b in _Q:
        q = q * x2 + b
    return (p * xc / q).astype(np.float32)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``fma``, which vectorises), for float64 arguments.
    numba never fuses on its own (no ``contract`` outside fastmath), and a fastmath function
    would also fuse the gate arithmetic, which the NumPy reference does unfused."""
    if not all(t == types.float64 for t in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@register_jitable
def _tanh32(x):
    """tanh of a float32, the rational evaluated in float64 (still branch-free and vectorised:
    the loop runs at half the float32 width) and rounded once to float32. The Horner steps are
    fused multiply-adds: one instruction each instead of two, 1.9 against 2.7 ns per LSTM cell
    (5 activations) in inference at A and C, and no less accurate."""
    xd = np.float64(x)
    xc = min(max(xd, -_CLAMP), _CLAMP)
    x2 = xc * xc
    p = _fma(_P[0], x2, _P[1])
    p = _fma(p, x2, _P[2])
    p = _fma(p, x2, _P[3])
    p = _fma(p, x2, _P[4])
    p = _fma(p, x2, _P[5])
    p = _fma(p, x2, _P[6])
    q = _fma(_Q[0], x2, _Q[1])
    q = _fma(q, x2, _Q[2])
    q = _fma(q, x2, _Q[3])
    return np.float32(p * xc / q)


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
