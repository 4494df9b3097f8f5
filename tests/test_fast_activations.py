"""The compiled float32 tanh and sigmoid (``lstmkit.ops.fast.activations``) over the whole float32
range, against the same functions computed in float64 by NumPy (``np.tanh``; the sigmoid as
``exp(-|x|)`` over ``1 + exp(-|x|)``, exact to float64 rounding for every float32 input).

The error is counted in ulps of the exact value: the float32 spacing in its binade (2**-149 for
subnormal results). The bounds are the module's stated maxima (2.606 and 2.402 ulp), found by the
exhaustive sweep of all 2**32 bit patterns (``test_every_float32``, marked slow: 11 minutes on
one busy core); the default run sweeps every 61st bit pattern (70 million values, every binade),
every value of the binades where each function errs most, and the specials.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")  # the only reason to skip: numba is an optional dependency

from lstmkit.ops import fast
from lstmkit.ops.fast.activations import sigmoid_, tanh32_reference, tanh_

TANH_ULP = 2.606
SIGMOID_ULP = 2.402
TANH_FAR_ULP = 1.050  # from 0.875 on
CHUNK = 2**24


@numba.njit(error_model="numpy")
def _tanh32(x, out):
    for k in range(x.size):  # a vectorised loop, as in the kernels
        out[k] = tanh_(x[k])


@numba.njit(error_model="numpy")
def _sigmoid32(x, out):
    for k in range(x.size):
        out[k] = sigmoid_(x[k])


@numba.njit(error_model="numpy")
def _worst_ulps(got, exact):
    """Largest ``|got - exact|`` in float32 ulps of ``exact``, and where; NaN must match NaN."""
    worst, at = 0.0, 0
    for k in range(got.size):
        e, g = exact[k], np.float64(got[k])
        if np.isnan(e) or np.isnan(g):
            if not (np.isnan(e) and np.isnan(g)):
                return np.inf, k
            continue
        a = abs(e)
        binade = np.floor(np.log2(a)) if a >= 2.0**-126 else -126.0
        err = abs(g - e) / 2.0 ** (binade - 23)
        if err > worst:
            worst, at = err, k
    return worst, at


def _exact_sigmoid(x64):
    e = np.exp(-np.abs(x64))
    return np.where(x64 >= 0, 1.0, e) / (1.0 + e)


def _sweep(step, start=0, stop=2**32):
    """Worst ulps of tanh and sigmoid over every ``step``-th float32 bit pattern, with the
    arguments where they occur."""
    worst = {"tanh": (0.0, 0.0), "sigmoid": (0.0, 0.0)}
    for c in range(start, stop, CHUNK * step):
        bits = np.arange(c, min(c + CHUNK * step, stop), step, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        out = np.empty_like(x)
        with np.errstate(invalid="ignore", over="ignore"):
            x64 = x.astype(np.float64)
            for name, fn, exact in (("tanh", _tanh32, np.tanh), ("sigmoid", _sigmoid32,
                                                                 _exact_sigmoid)):  # fmt: skip
                fn(x, out)
                err, k = _worst_ulps(out, exact(x64))
                if err > worst[name][0]:
                    worst[name] = (err, float(x[k]))
    return worst


def test_error_over_the_float32_range():
    worst = _sweep(61)
    assert worst["tanh"][0] <= TANH_ULP, worst
    assert worst["sigmoid"][0] <= SIGMOID_ULP, worst
    assert worst["tanh"][0] > 0.5 and worst["sigmoid"][0] > 0.5  # (the sweep saw real inputs)


def test_error_in_the_worst_binades():
    """Every float32 of [0.75, 1) (around the tanh's switch from ``em / (em + 2)`` to
    ``1 - 2 / (em + 2)``, where it errs most from 0.875 on), [2**-5, 2**-4) (where the tanh errs
    most) and [-8, -2) (the sigmoid's worst binades)."""
    edges = (0.75, 0.875, 1.0, 2.0**-5, 2.0**-4, -2.0, -8.0)
    bits = [int(np.float32(v).view(np.uint32)) for v in edges]
    assert _sweep(1, bits[0], bits[1])["tanh"][0] <= TANH_ULP
    worst = _sweep(1, bits[1], bits[2])
    assert worst["tanh"][0] <= TANH_FAR_ULP, worst
    worst = _sweep(1, bits[3], bits[4])
    assert worst["tanh"][0] <= TANH_ULP, worst
    assert worst["tanh"][0] > TANH_ULP - 0.01, worst  # where the exhaustive sweep found the worst
    worst = _sweep(1, bits[5], bits[6])
    assert worst["sigmoid"][0] <= SIGMOID_ULP, worst


@pytest.mark.slow
def test_every_float32():
    worst = _sweep(1)
    assert worst["tanh"][0] <= TANH_ULP, worst
    assert worst["sigmoid"][0] <= SIGMOID_ULP, worst


def test_specials_extremes_and_symmetry():
    f = np.float32
    tiny, big = np.finfo(f).smallest_subnormal, np.finfo(f).max
    x = np.array([0.0, -0.0, tiny, -tiny, np.finfo(f).tiny, big, -big, np.inf, -np.inf, 9.0,
                  -9.0, 9.02, 20.0, -87.0, -88.7, -103.0, -103.98, -110.0, 88.8], f)  # fmt: skip
    t, s = np.empty_like(x), np.empty_like(x)
    _tanh32(x, t)
    _sigmoid32(x, s)
    x64 = x.astype(np.float64)
    assert np.array_equal(t, np.tanh(x64).astype(f))  # rounded exact values: 0 ulp here
    np.testing.assert_array_equal(np.signbit(t), np.signbit(x))  # -0.0 stays -0.0
    want = _exact_sigmoid(x64).astype(f)
    assert np.all(np.abs(s.astype(np.float64) - want) <= 2.0**-149 + 3 * np.spacing(want)), (
        s,
        want,
    )
    assert t[7] == 1 and t[8] == -1 and s[7] == 1 and s[8] == 0
    nan = np.array([np.nan, -np.nan], f)
    out = np.empty_like(nan)
    _tanh32(nan, out)
    assert np.isnan(out).all()
    _sigmoid32(nan, out)
    assert np.isnan(out).all()
    # odd / complementary over a range of values
    v = np.linspace(-12, 12, 100_001, dtype=f)
    tv, tneg, sv, sneg = (np.empty_like(v) for _ in range(4))
    _tanh32(v, tv)
    _tanh32(-v, tneg)
    assert np.array_equal(tv, -tneg)
    _sigmoid32(v, sv)
    _sigmoid32(-v, sneg)
    # the stated error of the one at or above 1/2 plus that of the one below
    assert np.abs(sv.astype(np.float64) + sneg - 1).max() <= SIGMOID_ULP * (2.0**-24 + 2.0**-25)
    assert np.all((np.abs(tv) <= 1) & (sv >= 0) & (sv <= 1))


def test_the_numpy_description_is_the_compiled_one():
    """``tanh32_reference`` (the documented algorithm) gives the compiled bits except where the
    emulated fused multiply-add rounds twice (at most 1 ulp apart, and rarely)."""
    x = np.linspace(-12, 12, 1_000_001, dtype=np.float32)
    got = np.empty_like(x)
    _tanh32(x, got)
    ref = tanh32_reference(x)
    diff = np.abs(got.astype(np.float64) - ref)
    assert np.all(diff <= np.spacing(np.abs(ref)))
    assert np.mean(diff > 0) < 1e-3


def test_the_kernels_use_them():
    """One LSTM step with zero weights except the bias isolates the activations: the gates are
    sigmoid(b) and tanh(b), within the stated error of the exact values, in the feature-major
    kernel (B = 2) and the row-major one (B = 1)."""
    H = 64
    b = np.linspace(-12, 12, 4 * H).astype(np.float32)
    b64 = b.astype(np.float64)
    want = _exact_sigmoid(b64)
    want[2 * H : 3 * H] = np.tanh(b64[2 * H : 3 * H])
    for B in (1, 2):
        zeros = np.zeros((B, H), np.float32)
        _, _, cache = fast.lstm_forward(
            np.zeros((1, B, 1), np.float32),
            zeros,
            zeros,
            np.zeros((1, 4 * H), np.float32),
            np.zeros((H, 4 * H), np.float32),
            b,
        )
        g = cache.gates[0, 0].astype(np.float64)
        ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        assert np.all(np.abs(g - want) <= SIGMOID_ULP * ulp), B
