"""The packed-weights product of the compiled kernels (``lstmkit.ops.fast.packed``) against
NumPy in float64, for every micro-kernel variant this CPU can run: full ``MR x NR`` blocks, a
partial last panel, narrow last column blocks, strided views, and nothing written outside the
output block."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path

from lstmkit.ops import compiled
from lstmkit.ops.fast.packed import MR, block_columns, kernels, matmul_packed, pack_rows, panels

VARIANTS = compiled.runnable_variants()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("M", "K", "N"),
    [(1, 1, 1), (1, 3, 1), (7, 5, 3), (6, 4, 16), (13, 9, 17), (128, 49, 16), (30, 40, 40)]
    + [(11, 7, 8), (13, 9, 24), (7, 6, 15), (20, 30, 12), (9, 11, 29), (512, 161, 32)],
)
def test_matches_numpy(M, K, N, dtype, variant):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    X = rng.standard_normal((K, N + 3)).astype(dtype)[:, 1 : N + 1]  # a view, row stride N + 3
    Ap = np.full((panels(M) + 1, K, MR), np.nan, dtype)  # panel 0 unused: the offset matters
    assert pack_rows(A, 0, M, Ap, 1) == 1 + panels(M)
    assert np.all(Ap[1:].transpose(0, 2, 1).reshape(-1, K)[:M] == A)
    assert np.all(Ap[1:].transpose(0, 2, 1).reshape(-1, K)[M:] == 0)  # padding rows are zeros
    Z = np.full((M + 2, N + 5), 7.0, dtype)
    matmul_packed(Ap, 1, M, X, Z[1 : M + 1, 2 : N + 2], kernels(dtype, variant))
    want = A.astype(np.float64) @ X.astype(np.float64)
    got = Z[1 : M + 1, 2 : N + 2]
    tol = (1e-12 if dtype == np.float64 else 1e-6) * max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tol
    outside = np.ones(Z.shape, bool)
    outside[1 : M + 1, 2 : N + 2] = False
    assert np.all(Z[outside] == 7.0)  # nothing written around the block


@pytest.mark.parametrize("variant", VARIANTS)
def test_rows_of_a_bigger_matrix_and_block_width(variant):
    """Packing rows r0:r1 (a unit chunk) gives the product of those rows alone."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 21))
    X = rng.standard_normal((21, 11))
    Ap = np.zeros((panels(17), 21, MR))
    pack_rows(A, 9, 26, Ap, 0)
    Z = np.zeros((17, 11))
    matmul_packed(Ap, 0, 17, X, Z, kernels(np.float64, variant))
    np.testing.assert_allclose(Z, A[9:26] @ X, rtol=0, atol=1e-12)
    # the register blocking follows the vector width: 2 vectors per row of the block
    width = {"avx512": 64, "avx2": 32, "generic": 16}[variant]
    assert block_columns(4, variant) == 2 * width // 4 and block_columns(8, variant) == width // 4
    assert kernels(np.float32, variant)[2] == block_columns(4, variant)


def test_the_fma_variants_agree_to_the_bit_and_generic_rounds_twice():
    """Every column of Z is the same chain of fused multiply-adds whatever the block width, so
    the AVX2 and AVX-512 kernels give the same bits; the generic kernel (no FMA on the baseline
    CPU) multiplies and adds separately: different bits, same values to float32 accuracy. This is
    also the witness that a forced variant runs its own code."""
    rng = np.random.default_rng(3)
    M, K, N = 50, 161, 37
    A = rng.standard_normal((M, K)).astype(np.float32)
    X = rng.standard_normal((K, N)).astype(np.float32)
    Ap = np.zeros((panels(M), K, MR), np.float32)
    pack_rows(A, 0, M, Ap, 0)
    out = {}
    for v in VARIANTS:
        out[v] = np.zeros((M, N), np.float32)
        matmul_packed(Ap, 0, M, X, out[v], kernels(np.float32, v))
    fma = [v for v in VARIANTS if v != "generic"]
    for v in fma[1:]:
        assert np.array_equal(out[v], out[fma[0]]), v
    if fma:
        assert not np.array_equal(out["generic"], out[fma[0]])
    want = A.astype(np.float64) @ X
    for v in VARIANTS:
        assert np.abs(out[v] - want).max() <= 1e-5 * np.abs(want).max(), v
