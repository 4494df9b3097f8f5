"""The transposing copy of the inference step (``lstmkit.ops.fast.transpose``) under every
micro-kernel variant this CPU can run, against NumPy's ``.T``: exact (a copy), on shapes that
fill the vector tiles, leave edges on either side or both, or hold no whole tile, with row
strides that are not the width (the views the kernel passes: ``out[:, t, j0:j1]``,
``xb[:, t + 1, d0:d1]``), and without writing outside the destination."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path

from lstmkit.ops import compiled
from lstmkit.ops.fast import packed
from lstmkit.ops.fast.transpose import transpose_into

SHAPES = [(1, 1), (3, 5), (8, 8), (4, 4), (2, 2), (16, 64), (17, 33), (256, 64), (7, 16),
          (64, 9), (128, 32), (33, 17)]  # fmt: skip


@pytest.mark.parametrize(("R", "C"), SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", compiled.runnable_variants())
def test_transpose_into_is_numpys_transpose(variant, dtype, R, C):
    rng = np.random.default_rng(R * 100 + C)
    X = rng.standard_normal((R + 2, C + 3)).astype(dtype)[1 : R + 1, 1 : C + 1]
    Y = np.full((C + 2, R + 5), 9, dtype)
    transpose_into(X, Y[1 : C + 1, 2 : R + 2], packed.kernels(dtype, variant))
    assert np.array_equal(Y[1 : C + 1, 2 : R + 2], X.T)
    Y[1 : C + 1, 2 : R + 2] = 9
    assert (Y == 9).all(), "wrote outside the destination"
