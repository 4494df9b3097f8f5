"""The packed-weights product of the compiled kernels (``lstmkit.ops.fast.packed``) against
NumPy in float64: full ``MR x NR`` blocks, a partial last panel, narrow last column blocks,
strided views, and nothing written outside the output block."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path

from lstmkit.ops.fast.packed import MR, block_columns, matmul_packed, pack_rows, panels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("M", "K", "N"),
    [(1, 1, 1), (1, 3, 1), (7, 5, 3), (6, 4, 16), (13, 9, 17), (128, 49, 16), (30, 40, 40)]
    + [(11, 7, 8), (13, 9, 24), (7, 6, 15), (20, 30, 12), (9, 11, 29), (512, 161, 32)],
)
def test_matches_numpy(M, K, N, dtype):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    X = rng.standard_normal((K, N + 3)).astype(dtype)[:, 1 : N + 1]  # a view, row stride N + 3
    Ap = np.full((panels(M) + 1, K, MR), np.nan, dtype)  # panel 0 unused: the offset matters
    assert pack_rows(A, 0, M, Ap, 1) == 1 + panels(M)
    assert np.all(Ap[1:].transpose(0, 2, 1).reshape(-1, K)[:M] == A)
    assert np.all(Ap[1:].transpose(0, 2, 1).reshape(-1, K)[M:] == 0)  # padding rows are zeros
    Z = np.full((M + 2, N + 5), 7.0, dtype)
    matmul_packed(Ap, 1, M, X, Z[1 : M + 1, 2 : N + 2])
    want = A.astype(np.float64) @ X.astype(np.float64)
    got = Z[1 : M + 1, 2 : N + 2]
    tol = (1e-12 if dtype == np.float64 else 1e-6) * max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= tol
    outside = np.ones(Z.shape, bool)
    outside[1 : M + 1, 2 : N + 2] = False
    assert np.all(Z[outside] == 7.0)  # nothing written around the block


def test_rows_of_a_bigger_matrix_and_block_width():
    """Packing rows r0:r1 (a unit chunk) gives the product of those rows alone."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 21))
    X = rng.standard_normal((21, 11))
    Ap = np.zeros((panels(17), 21, MR))
    pack_rows(A, 9, 26, Ap, 0)
    Z = np.zeros((17, 11))
    matmul_packed(Ap, 0, 17, X, Z)
    np.testing.assert_allclose(Z, A[9:26] @ X, rtol=0, atol=1e-12)
    assert block_columns(4) == 16 and block_columns(8) == 8
