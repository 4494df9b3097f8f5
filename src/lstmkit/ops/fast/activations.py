"""Scalar activations for the compiled kernels, one implementation per float type.

numba compiles ``math.tanh`` / ``math.exp`` to scalar libm calls (~15 ns each) that LLVM cannot
vectorise, and in a gate loop they cost more than the recurrent GEMM. float32 therefore gets its
own tanh and sigmoid, evaluated in float32 arithmetic (so a loop of them vectorises at the full
float32 width, 8 lanes on AVX2, 16 on AVX-512), branch-free, with one division each. Both
rest on one range reduction and one polynomial (:func:`_reduce`, :func:`_expm1_r`):

- ``v = n ln2 + r``: ``n`` rounded to nearest by the shifter (``fma(v, log2 e, 1.5 * 2**23)``,
  whose low mantissa bits then hold ``n``), ``ln2`` split in two for an exact ``r``;
  ``exp(r) - 1 = r + r^2 Q(r)``, ``Q`` a degree-4 minimax fit on ``|r| <= ln2 / 2``; ``2**n``
  made by shifting the shifter's bits into the exponent field (two integer ops, no float to
  integer conversion).
- ``tanh(x)`` from ``em = exp(2|x|) - 1 = 2**n (exp(r) - 1) + (2**n - 1)`` (one fused
  multiply-add; ``n >= 0``): ``em / (em + 2)`` for ``|x| < 0.875``, ``1 - 2 / (em + 2)`` from
  there (the subtracted term is below 0.42, so its error is damped near 1), one division of a
  selected numerator; relative accuracy down to the subnormals (for ``n = 0``, ``em`` is
  ``2|x|`` times a factor near 1); sign restored with ``copysign``, ``|x|`` clamped at 9.5
  (where tanh rounds to 1).
- ``sigmoid(x) = e / (1 + e)`` for ``x < 0`` and ``1 / (1 + e)`` for ``x >= 0``, ``e = exp(-|x|)``
  (``-|x|`` clamped at -104, where exp rounds to 0), both scaled by ``2**24``: ``2**24 e =
  2**(n + 24) + 2**(n + 24) (exp(r) - 1)`` (one fused multiply-add), the first factor a normal
  float for every ``n`` in [-150, 0], and the division the one rounding of results in the
  subnormals. One exp, never overflowing, accurate in relative terms (the reference's
  ``0.5 * tanh(0.5 x) + 0.5`` is only accurate in absolute terms; both are within 3e-8 of it).

A NaN passes through every step unselected (the clamps keep it; the integer ops give some
finite factor that multiplies a NaN), so NaN in gives NaN out without a select.

Error against tanh and sigmoid computed in float64, over every float32 (all 2**32 bit patterns,
``tests/test_fast_activations.py::test_every_float32``, marked slow; the default tests sweep every
61st pattern, three whole binades, the extremes and the specials): tanh at most 2.606 ulp (at
x = 0.062416; at most 1.050 ulp from 0.875 on), sigmoid at most 2.402 ulp (at x = -4.1573); an
ulp is the float32 spacing in the exact value's binade, 2**-149 for subnormal results. Both are
odd / complementary to the bit (``tanh(-x) = -tanh(x)``), stay in [-1, 1] / [0, 1], give +-1, 0
and 1 at the infinities and NaN for NaN; -0.0 keeps its sign. Below 0.875 tanh's three
roundings (``em``, ``em + 2``, the quotient) cost it up to 2.606 ulp, where the previous form
(``x + x^3 P(x^2)``, ``P`` of degree 7, computed besides the exp and one of the two selected) had
1.050; that form took about 45 vector ops a tanh against 25 now (docs/speed.md, "A cheaper
pointwise pass"). From 0.875 on, where the BPTT agreement is decided, the error is what it was.
The older float64-evaluated rational (Eigen's coefficients) erred by 5.4e-8 absolute and ran at
half the float32 width; Eigen's rational evaluated in float32 errs by up to 6 ulp near 1
(3.6e-7), which broke the 1e-6 agreement of BPTT with the reference. float64 keeps the exact
``math.tanh``.

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
_TANH_SPLIT = _F(0.875)  # em / (em + 2) below, 1 - 2 / (em + 2) from here
_TANH_CLAMP = _F(9.5)  # tanh rounds to 1 in float32 beyond 9.02
_EXP_LOW = _F(-104.0)  # exp rounds to 0 below -103.97
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # 9 significant bits: n * _LN2_HI is exact for |n| < 2**15
_LN2_LO = _F(-2.12194440e-4)
_ROUND = _F(1.5 * 2**23)  # (v + _ROUND) - _ROUND rounds v to the nearest integer (the shifter)
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


def _pow2_bias(bias):
    """An intrinsic ``2.0 ** (n + bias - 127)`` from ``k = n + 1.5 * 2**23`` (a float32 holding
    the integer ``n`` in its low mantissa bits, as :func:`_reduce` leaves it; ``n + bias`` in
    [1, 254]): those bits shifted into the exponent field, plus ``bias``. Two integer ops that
    vectorise, and defined for every ``k`` (a NaN gives some float, multiplied by a NaN
    anyway), unlike ``fptosi``."""

    @intrinsic
    def pow2(typingctx, k):
        if k != types.float32:
            return None

        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            bits = builder.shl(builder.bitcast(args[0], i32), ir.Constant(i32, 23))
            return builder.bitcast(builder.add(bits, ir.Constant(i32, bias << 23)), ir.FloatType())

        return types.float32(types.float32), codegen

    return pow2


_pow2 = _pow2_bias(127)  # 2**n, n in [-126, 127]
_pow2_24 = _pow2_bias(127 + 24)  # 2**(n + 24), n in [-150, 103]: a normal float down to n = -150
_BIG = _F(2.0**24)


@register_jitable
def _reduce(v):
    """``v = n ln2 + r`` -> ``(k, r)``: ``k = n + 1.5 * 2**23`` (``n`` = ``v / ln2`` rounded, by
    the shifter) and ``r`` (exact: ``ln2`` split in two), ``|r| <= ln2 / 2`` (a hair more where
    the fused rounding of ``k`` went up)."""
    k = _fma(v, _LOG2E, _ROUND)
    n = k - _ROUND
    r = _fma(n, -_LN2_HI, v)
    return k, _fma(n, -_LN2_LO, r)


@register_jitable
def _expm1_r(r):
    """``exp(r) - 1 = r + r^2 Q(r)`` for ``|r| <= ln2 / 2``, accurate relative to the result."""
    q = _fma(_EXP_Q[4], r, _EXP_Q[3])
    q = _fma(q, r, _EXP_Q[2])
    q = _fma(q, r, _EXP_Q[1])
    q = _fma(q, r, _EXP_Q[0])
    return _fma(r * r, q, r)


@register_jitable
def _exp32_24(v):
    """``2**24 exp(v)`` of a float32 ``v`` in [-104, 0], in float32 arithmetic (see the module
    docstring): ``2**(n + 24) (1 + (exp(r) - 1))`` in one fused multiply-add, a normal float for
    every ``n`` in [-150, 0] (the caller's division brings it back to scale: one rounding of
    results in the subnormals)."""
    k, r = _reduce(v)
    s = _pow2_24(k)
    return _fma(s, _expm1_r(r), s)


@register_jitable
def _tanh32(x):
    """tanh of a float32 in float32 arithmetic, at most 2.606 ulp from the exact value (1.050
    from 0.875 on)."""
    a = abs(x)
    a = _TANH_CLAMP if a > _TANH_CLAMP else a  # noqa: FURB136  (a NaN stays a NaN)
    k, r = _reduce(a + a)
    s = _pow2(k)  # 2**n, n in [0, 28]
    em = _fma(s, _expm1_r(r), s - _ONE32)  # exp(2|x|) - 1
    near = a < _TANH_SPLIT  # (False for a NaN)
    q = (em if near else _TWO32) / (em + _TWO32)
    return math.copysign(q if near else _ONE32 - q, x)


@register_jitable
def _sigmoid32(x):
    """sigmoid of a float32 in float32 arithmetic, at most 2.402 ulp from the exact value."""
    v = -abs(x)
    v = _EXP_LOW if v < _EXP_LOW else v  # noqa: FURB136  (a NaN stays a NaN)
    e = _exp32_24(v)  # 2**24 exp(-|x|), in (0, 2**24]
    return (_BIG if x >= 0 else e) / (_BIG + e)  # 1 / (1 + e) or e / (1 + e), scaled by 2**24


def tanh32_reference(x: np.ndarray) -> np.ndarray:
    """The compiled float32 tanh in NumPy, for tests and for documenting it (its fused
    multiply-adds are emulated in float64: an exact product, a sum rounded twice, which changes a
    float32 result only where it straddles a rounding boundary)."""
    x = np.asarray(x, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        v = np.minimum(np.abs(x), _TANH_CLAMP) * _TWO32
        n = _fma_np(v, _LOG2E, _ROUND) - _ROUND
        r = _fma_np(n, -_LN2_HI, v)
        r = _fma_np(n, -_LN2_LO, r)
        q = np.full_like(r, _EXP_Q[4])
        for c in _EXP_Q[3::-1]:
            q = _fma_np(q, r, c)
        s = np.ldexp(_ONE32, n.astype(np.int32))
        em = _fma_np(s, _fma_np(r * r, q, r), s - _ONE32)  # exp(2|x|) - 1
        near = v < _TWO32 * _TANH_SPLIT
        q = np.where(near, em, _TWO32) / (em + _TWO32)
        t = np.copysign(np.where(near, q, _ONE32 - q), x)
    return np.where(np.isnan(x), x, t)


def _fma_np(a, b, c):
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


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
