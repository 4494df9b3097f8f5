"""Scalar activations for the compiled kernels, one implementation per float type.

numba compiles ``math.tanh`` / ``math.exp`` to scalar libm calls (~15 ns each) that LLVM cannot
vectorise, and in a gate loop they cost more than the recurrent GEMM. float32 therefore gets its
own tanh and sigmoid, evaluated in float32 arithmetic (so a loop of them vectorises at the full
float32 width, 8 lanes on AVX2, 16 on AVX-512) and branch-free (both sides computed, one
selected):

- ``exp32(v)``: ``v = n ln2 + r`` (``n`` rounded to nearest with the 1.5 * 2**23 trick, ``ln2``
  split in two for an exact ``r``), ``exp(r) = 1 + r + r^2 Q(r)`` with ``Q`` a degree-4 minimax
  fit on ``|r| <= ln2 / 2``, times ``2**n`` built from exponent bits, in two factors so that
  results down to the subnormals come out right (arguments in [-104, 88]).
- ``tanh(x)``: for ``|x| < 0.875`` the odd polynomial ``x + x^3 P(x^2)`` (``P`` degree 7,
  minimax for the relative error); beyond, ``1 - 2 / (exp(2|x|) + 1)``, whose error shrinks with
  the result's distance from 1 (no cancellation: the subtracted term is below 0.42); sign
  restored with ``copysign``, ``|x|`` clamped at 9.5 (where tanh rounds to 1).
- ``sigmoid(x) = e / (1 + e)`` for ``x < 0`` and ``1 / (1 + e)`` for ``x >= 0``, ``e = exp(-|x|)``:
  one exp, never overflowing, accurate in relative terms down to the subnormals (the reference's
  ``0.5 * tanh(0.5 x) + 0.5`` is only accurate in absolute terms; both are within 3e-8 of it).

Error against tanh and sigmoid computed in float64, over every float32 (all 2**32 bit patterns,
``tests/test_fast_activations.py::test_every_float32``, marked slow; the default tests sweep every
61st pattern, two whole binades, the extremes and the specials): tanh at most 1.050 ulp (at
x = 0.87845), sigmoid at most 2.402 ulp (at x = -4.1573); an ulp is the float32 spacing in the
exact value's binade, 2**-149 for subnormal results. Both are odd /
complementary to the bit (``tanh(-x) = -tanh(x)``), stay in [-1, 1] / [0, 1], give +-1, 0 and 1 at
the infinities and NaN for NaN; -0.0 keeps its sign. The previous float64-evaluated rational
(Eigen's coefficients) erred by 5.4e-8 absolute and ran at half the float32 width; Eigen's
rational evaluated in float32 errs by up to 6 ulp near 1 (3.6e-7), which broke the 1e-6 agreement
of BPTT with the reference. float64 keeps the exact ``math.tanh``.

``tanh_`` and ``sigmoid_`` are dispatched on the argument's type at compile time through
``numba.extending.overload``; constants are typed float32 globals so that float32 arithmetic never
silently widens to float64 (numba types ``1 - x`` as float64 for a float32 ``x``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

_F = np.float32
# exp(r) = 1 + r + r^2 * Q(r), |r| <= ln2 / 2: Q's coefficients, degree 0 first (relative error
# of the fit 3e-9)
_EXP_Q = tuple(
    _F(c)
    for c in (0.49999993450796854, 0.16666520680903707, 0.04166838754460059,
              0.008368710654732481, 0.0013814604481085994)
)  # fmt: skip
# tanh(x) = x + x^3 * P(x^2), |x| < 0.875: P's coefficients, degree 0 first (fit 5e-11 relative)
_TANH_P = tuple(
    _F(c)
    for c in (-0.333333326643148, 0.1333330461433666, -0.05396400634486078, 0.0218387715644324,
              -0.008738256776692743, 0.003287088164334936, -0.000998733969622907,
              0.00016981214597989135)
)  # fmt: skip
_TANH_SPLIT = _F(0.875)  # polynomial below, 1 - 2 / (exp(2|x|) + 1) from here
_TANH_CLAMP = _F(9.5)  # tanh rounds to 1 in float32 beyond 9.02
_EXP_LOW = _F(-104.0)  # exp rounds to 0 below -103.97
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # 9 significant bits: n * _LN2_HI is exact for |n| < 2**15
_LN2_LO = _F(-2.12194440e-4)
_ROUND = _F(1.5 * 2**23)  # (v + _ROUND) - _ROUND rounds v to the nearest integer
_HALF32 = _F(0.5)
_ONE32 = _F(1.0)
_TWO32 = _F(2.0)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``fma``, which vectorises), for three arguments of the
    same float type. numba never fuses on its own (no ``contract`` outside fastmath), and a
    fastmath function would also fuse the gate arithmetic, which the NumPy reference does
    unfused."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, a, a), codegen


@intrinsic
def _pow2(typingctx, n):
    """``2.0 ** n`` for a float32 ``n`` holding an integer in [-126, 127]: ``n + 127`` put in the
    exponent bits (integer ops that vectorise, unlike ``ldexp``)."""
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(k, ir.Constant(i32, 23)), ir.FloatType())

    return types.float32(types.float32), codegen


@register_jitable
def _exp32(v):
    """exp of a float32 ``v`` in [-104, 88], in float32 arithmetic (see the module docstring)."""
    n = (v * _LOG2E + _ROUND) - _ROUND
    r = _fma(n, -_LN2_HI, v)
    r = _fma(n, -_LN2_LO, r)  # v - n ln2, |r| <= ln2 / 2 (a hair more where n rounded up)
    q = _fma(_EXP_Q[4], r, _EXP_Q[3])
    q = _fma(q, r, _EXP_Q[2])
    q = _fma(q, r, _EXP_Q[1])
    q = _fma(q, r, _EXP_Q[0])
    p = _ONE32 + _fma(r * r, q, r)
    n1 = (n * _HALF32 + _ROUND) - _ROUND  # 2**n in two factors: n in [-150, 127]
    return p * _pow2(n1) * _pow2(n - n1)


@register_jitable
def _tanh32(x):
    """tanh of a float32 in float32 arithmetic, at most 1.050 ulp from the exact value."""
    a = abs(x)
    # a NaN is clamped too (the comparison is false), so no NaN reaches the exp; restored below
    a = a if a < _TANH_CLAMP else _TANH_CLAMP  # noqa: FURB136
    s = a * a
    p = _fma(_TANH_P[7], s, _TANH_P[6])
    p = _fma(p, s, _TANH_P[5])
    p = _fma(p, s, _TANH_P[4])
    p = _fma(p, s, _TANH_P[3])
    p = _fma(p, s, _TANH_P[2])
    p = _fma(p, s, _TANH_P[1])
    p = _fma(p, s, _TANH_P[0])
    near0 = _fma(a * s, p, a)
    far = _ONE32 - _TWO32 / (_exp32(a + a) + _ONE32)
    t = math.copysign(near0 if a < _TANH_SPLIT else far, x)
    return t if x == x else x  # noqa: PLR0124  (NaN in, NaN out)


@register_jitable
def _sigmoid32(x):
    """sigmoid of a float32 in float32 arithmetic, at most 2.402 ulp from the exact value."""
    v = -abs(x)
    v = v if v > _EXP_LOW else _EXP_LOW  # noqa: FURB136  (a NaN too; restored below)
    e = _exp32(v)  # exp(-|x|), in (0, 1]
    s = (_ONE32 if x >= 0 else e) / (_ONE32 + e)
    return s if x == x else x  # noqa: PLR0124  (NaN in, NaN out)


def tanh32_reference(x: np.ndarray) -> np.ndarray:
    """The compiled float32 tanh in NumPy, for tests and for documenting it (its fused
    multiply-adds are emulated in float64: an exact product, a sum rounded twice, which changes a
    float32 result only where it straddles a rounding boundary)."""
    x = np.asarray(x, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.minimum(np.abs(x), _TANH_CLAMP)
        s = a * a
        p = np.full_like(s, _TANH_P[7])
        for c in _TANH_P[6::-1]:
            p = _fma_np(p, s, c)
        near0 = _fma_np(a * s, p, a)
        far = _ONE32 - _TWO32 / (_exp32_reference(a + a) + _ONE32)
        t = np.copysign(np.where(a < _TANH_SPLIT, near0, far), x)
    return np.where(np.isnan(x), x, t)


def _fma_np(a, b, c):
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


def _exp32_reference(v):
    n = (v * _LOG2E + _ROUND) - _ROUND
    r = _fma_np(n, -_LN2_HI, v)
    r = _fma_np(n, -_LN2_LO, r)
    q = np.full_like(r, _EXP_Q[4])
    for c in _EXP_Q[3::-1]:
        q = _fma_np(q, r, c)
    p = _ONE32 + _fma_np(r * r, q, r)
    n1 = (n * _HALF32 + _ROUND) - _ROUND
    return p * np.ldexp(_ONE32, n1.astype(np.int32)) * np.ldexp(_ONE32, (n - n1).astype(np.int32))


def tanh_(x):
    """Compile-time dispatch: float32 tanh in float32 arithmetic, exact libm tanh for float64."""
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
        return lambda x: _tanh32(x)
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)
    return None


@overload(sigmoid_, inline="always")
def _ov_sigmoid(x):
    if x == types.float32:
        return lambda x: _sigmoid32(x)
    if isinstance(x, types.Float):
        return lambda x: 0.5 * math.tanh(0.5 * x) + 0.5
    return None


def _dtype_of(x):
    return x.dtype if isinstance(x, types.Array) else x


def _constant(value, value32):
    """The overload of a constant in the float type of its argument (``value32`` for float32)."""

    def resolve(x):
        if _dtype_of(x) == types.float32:
            return lambda x: value32
        if isinstance(_dtype_of(x), types.Float):
            return lambda x: value
        return None

    return resolve


overload(one_, inline="always")(_constant(1.0, _ONE32))
overload(half_, inline="always")(_constant(0.5, _HALF32))
