"""``gemm`` callable from compiled code, in any orientation, straight into a preallocated buffer.

numba's ``np.dot`` computes row-major ``C = A @ B`` only, and for the small per-step products of
a recurrent loop the orientation matters (``benchmarks/bench_step_gemm.py``): OpenBLAS's
``sgemm`` is 25-60% faster when the output is feature-major, ``(4H, B)`` rather than ``(B, 4H)``.
So the feature-major kernels call BLAS ``?gemm`` themselves: the same library numba uses
(SciPy's ``scipy.linalg.cython_blas``), reached through its exported function address.

The address is looked up at run time and passed to the compiled code as an integer
(:func:`gemm_address`), which calls it through :func:`_call13`; nothing process-specific is baked
into the machine code, so numba's on-disk cache stays valid across processes.

BLAS is column-major. A row-major ``(r, c)`` array is a column-major ``(c, r)`` one, so the
row-major product ``C (m, n) = A (m, k) @ B (k, n)`` is ``gemm("N", "N", n, m, k, B, A)``: the
helpers below take row-major shapes and do that swap, so callers read like NumPy.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import get_cython_function_address, intrinsic

from ._jit import JIT as _JIT

_ADDRESS: dict = {}


def gemm_address(dtype) -> int:
    """Address of SciPy's ``sgemm`` (float32) or ``dgemm`` (float64)."""
    dt = np.dtype(dtype)
    if dt not in _ADDRESS:
        name = {np.dtype(np.float32): "sgemm", np.dtype(np.float64): "dgemm"}[dt]
        _ADDRESS[dt] = get_cython_function_address("scipy.linalg.cython_blas", name)
    return _ADDRESS[dt]


@intrinsic
def _call13(typingctx, addr, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13):
    """Call the ``void f(void*, ... 13 times)`` at integer ``addr`` with 13 integer addresses."""
    sig = types.void(addr, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13)

    def codegen(context, builder, signature, args):
        vp = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [vp] * 13)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, [builder.inttoptr(a, vp) for a in args[1:]])
        return context.get_dummy_value()

    return sig, codegen


@njit(**_JIT)
def gemm_scratch(dtype_like):
    """Per-call scratch for :func:`gemm`: 8 int32 (flags, sizes) and 2 floats (alpha, beta)."""
    return np.zeros(8, np.int32), np.zeros(2, dtype_like.dtype)


@njit(**_JIT)
def gemm(addr, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, iw, fw):
    """Row-major ``c (m, n) = alpha op(a) @ op(b) + beta c`` on raw addresses.

    ``a``, ``b``, ``c``: addresses (``arr.ctypes.data`` plus a byte offset) of row-major matrices
    with row strides ``lda``, ``ldb``, ``ldc`` elements; ``ta``/``tb`` true to use a transpose
    (``op(a)`` is then ``(m, k)`` read from a ``(k, m)`` matrix). ``iw``/``fw``: scratch from
    :func:`gemm_scratch` (BLAS takes every argument by pointer).
    """
    # column-major: c.T (n, m) = op(b).T @ op(a).T
    iw[0] = 84 if tb else 78  # "T" or "N": BLAS reads the first byte of each
    iw[1] = 84 if ta else 78
    iw[2] = n
    iw[3] = m
    iw[4] = k
    iw[5] = ldb
    iw[6] = lda
    iw[7] = ldc
    fw[0] = alpha
    fw[1] = beta
    ip = iw.ctypes.data
    fp = fw.ctypes.data
    s = fw.itemsize
    _call13(
        addr, ip, ip + 4, ip + 8, ip + 12, ip + 16, fp, b, ip + 20, a, ip + 24, fp + s, c, ip + 28
    )
