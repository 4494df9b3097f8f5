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


@pytest.mark.parametrize("lanes", [2, 4, 8, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tile_loop_of_every_width_is_a_transpose(lanes, dtype):
    """The generator at every tile width a variant uses (16: AVX-512's float32, which this CPU
    may not run) built for this CPU with LLVM's generic target, so that each width's IR runs
    here (LLVM splits or widens the vectors, the shuffles' meaning is the IR's), and called
    directly: tiles along ``x``'s rows into ``y``'s columns, nothing else written."""
    import ctypes

    import llvmlite.binding as llvm
    from llvmlite import ir

    from lstmkit.ops.fast.transpose import transpose_function

    module = ir.Module(name="transpose_test")
    module.triple = llvm.get_process_triple()
    name = transpose_function(module, dtype == np.float64, lanes).name
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    tm = llvm.Target.from_triple(module.triple).create_target_machine(cpu="generic", jit=True)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 6)(engine.get_function_address(name))
    n = 3  # tiles
    rng = np.random.default_rng(lanes)
    X = rng.standard_normal((n * lanes + 1, lanes + 2)).astype(dtype)  # rows: tiles and one more
    Y = np.full((lanes + 1, n * lanes + 3), 9, dtype)
    fn(X.ctypes.data, X.shape[1], Y.ctypes.data, Y.shape[1], n, 0)
    assert np.array_equal(Y[:lanes, : n * lanes], X[: n * lanes, :lanes].T)
    Y[:lanes, : n * lanes] = 9
    assert (Y == 9).all(), "wrote outside the tiles"
    del engine  # (after the last call through its address)
