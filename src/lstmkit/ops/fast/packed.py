"""A small matrix product with the fixed operand packed once, for the per-step products.

A recurrent step multiplies the same weights by a new ``(K, B)`` block of columns at every step:
``z_t = W.T @ xh_t``. BLAS ``gemm`` repacks both operands into its own panel layout on every
call, which for these small products (``(512, 161) @ (161, 32)`` at config A) costs a large part
of the step; PyTorch (oneDNN) and onnxruntime (MLAS) pack the weights once and reuse them. This
module does the same:

- :func:`pack_rows` copies the rows of ``A (M, K)`` into panels of ``MR`` rows, k-major:
  ``Ap[p, k, r] = A[p * MR + r, k]`` (zero rows pad the last panel);
- :func:`matmul_packed` computes ``Z (M, N) = A @ X`` for a row-major ``X (K, N)`` (any row
  stride), one ``MR x NR`` block of ``Z`` at a time, in a micro-kernel that keeps the whole block
  in vector registers for the length of ``K``: per ``k``, ``MR`` broadcasts of ``Ap[p, k, :]``,
  ``NR / lanes`` vector loads of ``X[k, n0 : n0 + NR]`` and ``MR * NR / lanes`` fused
  multiply-adds. float32: ``MR x NR = 6 x 16`` (12 AVX2 registers of 8 lanes), float64:
  ``6 x 8``; the shape of the Haswell kernels of OpenBLAS and BLIS.

The micro-kernel is LLVM IR written with llvmlite (:func:`_kernel_function`): numba's vectoriser
does not keep a 2-D accumulator in registers. A half-width kernel (``6 x 8`` float32) takes narrow
column blocks; the last, partial panel goes through a small scratch block. Measured with
``benchmarks/bench_step_gemm.py`` on one core of the 2-vCPU AMD EPYC (AVX2, 1024^3 GEMM 72
GFLOP/s) this was written on, float32, per product: config A ``(512, 161) @ (161, 32)`` 64 us
(83 GFLOP/s) against OpenBLAS ``sgemm``'s 76 us (152 us row-major), C 539 against 638 us, D
2.6 against 4.0 us.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._jit import JIT as _JIT

MR = 6  # rows of a panel (both float types)
LANES = {4: 8, 8: 4}  # vector lanes of a 256-bit register, by item size
NV = 2  # vectors per row of a block: NR = NV * lanes columns (and a half-width kernel)
L2_BYTES = 2**18  # packed weights per group of rows in matmul_packed


def block_columns(itemsize: int) -> int:
    """NR: the columns of one micro-kernel block for a float of ``itemsize`` bytes."""
    return NV * LANES[itemsize]


def _make_microkernel(NV):
    """The micro-kernel with ``NV`` vectors per row (``NR = NV * lanes`` columns)."""

    @intrinsic
    def kernel(typingctx, like, ap, x, z, K, ldx, ldz):
        if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
            return None
        return types.void(like, ap, x, z, K, ldx, ldz), _codegen(like.dtype == types.float64, NV)

    return kernel


def _codegen(is64, NV):
    """Codegen of a call to the micro-kernel function (see :func:`_kernel_function`)."""

    def codegen(context, builder, signature, args):
        fn = _kernel_function(builder.module, is64, NV)
        builder.call(fn, [builder.zext(a, ir.IntType(64)) if a.type.width < 64 else a
                          for a in args[1:7]])  # fmt: skip
        return context.get_dummy_value()

    return codegen


def _kernel_function(module, is64, NV):
    """The LLVM function ``void (ap, x, z, K, ldx, ldz)`` (all i64) computing
    ``z[0:MR, 0:NR] = ap_panel (MR, K) @ x[0:K, 0:NR]`` on raw addresses: ``ap`` one packed panel
    (k-major, ``MR`` values per k), ``x`` and ``z`` row-major with row strides ``ldx`` and
    ``ldz`` elements. Defined once per module and never inlined: inlined at every call site, the
    loop made LLVM's optimisation of the callers (and so the first, compiling call) 3x slower."""
    lanes = LANES[8 if is64 else 4]
    name = f"lstmkit_microkernel_{'f64' if is64 else 'f32'}_{MR}x{NV * lanes}"
    if name in module.globals:
        return module.globals[name]
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64] * 6), name=name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fty = ir.DoubleType() if is64 else ir.FloatType()
    vty = ir.VectorType(fty, lanes)
    fp, vp = fty.as_pointer(), vty.as_pointer()
    fma_name = f"llvm.fma.v{lanes}{'f64' if is64 else 'f32'}"
    fma = module.globals.get(fma_name) or ir.Function(
        module, ir.FunctionType(vty, [vty] * 3), name=fma_name
    )
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    builder = ir.IRBuilder(entry)
    apf, xf, zf = (builder.inttoptr(a, fp) for a in fn.args[:3])
    K, ldx, ldz = fn.args[3:6]
    zero = ir.Constant(vty, [0.0] * lanes)
    builder.cbranch(builder.icmp_signed(">", K, ir.Constant(i64, 0)), loop, done)

    # the k loop: acc[r][v] += broadcast(ap[k, r]) * x[k, v*lanes : (v+1)*lanes]
    builder.position_at_end(loop)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), entry)
    acc = [[builder.phi(vty) for _ in range(NV)] for _ in range(MR)]
    xrow = builder.gep(xf, [builder.mul(k, ldx)])
    xptr = [
        builder.bitcast(builder.gep(xrow, [ir.Constant(i64, v * lanes)]), vp) for v in range(NV)
    ]
    xv = [builder.load(ptr, align=4) for ptr in xptr]
    arow = builder.gep(apf, [builder.mul(k, ir.Constant(i64, MR))])
    undef = ir.Constant(vty, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
    new = []
    for r in range(MR):
        a = builder.load(builder.gep(arow, [ir.Constant(i64, r)]))
        a = builder.shuffle_vector(builder.insert_element(undef, a, ir.Constant(i32, 0)), undef,
                                   splat)  # fmt: skip
        new.append([builder.call(fma, [a, xv[v], acc[r][v]]) for v in range(NV)])
    k1 = builder.add(k, ir.Constant(i64, 1))
    k.add_incoming(k1, loop)
    for r in range(MR):
        for v in range(NV):
            acc[r][v].add_incoming(zero, entry)
            acc[r][v].add_incoming(new[r][v], loop)
    builder.cbranch(builder.icmp_signed("<", k1, K), loop, done)

    # store the block
    builder.position_at_end(done)
    result = [[builder.phi(vty) for _ in range(NV)] for _ in range(MR)]  # phis first
    for r in range(MR):
        zrow = builder.gep(zf, [builder.mul(ir.Constant(i64, r), ldz)])
        for v in range(NV):
            result[r][v].add_incoming(zero, entry)
            result[r][v].add_incoming(new[r][v], loop)
            ptr = builder.bitcast(builder.gep(zrow, [ir.Constant(i64, v * lanes)]), vp)
            builder.store(result[r][v], ptr, align=4)
    builder.ret_void()
    return fn


_microkernel = _make_microkernel(NV)  # MR x NR
_microkernel_half = _make_microkernel(NV // 2)  # MR x NR / 2


@njit(**_JIT)
def panels(rows):
    """Panels of ``MR`` rows that hold ``rows`` rows."""
    return (rows + MR - 1) // MR


@njit(**_JIT)
def pack_rows(A, r0, r1, Ap, p0):
    """Pack rows ``r0:r1`` of ``A (M, K)`` into panels ``p0, p0 + 1, ...`` of ``Ap (_, K, MR)``
    (zero rows pad the last one); returns the panel after them."""
    K = A.shape[1]
    p = p0
    for q in range(r0, r1, MR):
        panel = Ap[p]
        for r in range(MR):
            if q + r < r1:
                row = A[q + r]
                for k in range(K):
                    panel[k, r] = row[k]
            else:
                for k in range(K):
                    panel[k, r] = 0
        p += 1
    return p


@njit(**_JIT)
def matmul_packed(Ap, p0, rows, X, Z):
    """``Z[:rows] = A @ X`` for ``X (K, N)``, ``Z (>= rows, N)`` (2-D arrays with unit column
    stride), ``A``'s rows packed in panels ``p0, p0 + 1, ...`` of ``Ap`` (:func:`pack_rows`).

    Columns go in blocks of NR, then one block of NR or NR / 2 ending at column N: it may
    overlap the previous block, whose columns it computes again to the same bits (every column
    is the same chain of fused multiply-adds wherever its block starts). Only N < NR / 2 goes
    through a zero-padded copy of X. Rows go in groups whose panels fit in half of a 512 KiB L2
    cache, and each group meets every column block while it is there (config C's 1.3 MB of
    weights would otherwise come from L3 once per column block). Few helper levels: every
    compiled function re-optimises the code of those it calls, and the first, compiling call of
    a model paid a second or more for each level."""
    K = Ap.shape[1]
    N = X.shape[1]
    half = NV * (8 if Ap.itemsize == 4 else 4) // 2
    if N >= half:
        _blocks(Ap, p0, rows, X, Z)
        return
    xs = np.zeros((K, half), Ap.dtype)  # through a zero-padded copy
    for k in range(K):  # (loops: 2-D slice assignment is slow to compile)
        for c in range(N):
            xs[k, c] = X[k, c]
    zh = np.empty((rows, half), Ap.dtype)
    _blocks(Ap, p0, rows, xs, zh)
    for r in range(rows):
        for c in range(N):
            Z[r, c] = zh[r, c]


@njit(**_JIT)
def _blocks(Ap, p0, rows, X, Z):
    """:func:`matmul_packed` for N >= NR / 2."""
    K = Ap.shape[1]
    N = X.shape[1]
    s = Ap.itemsize
    NR = NV * (8 if s == 4 else 4)
    half = NR // 2
    # column blocks (start, width)
    starts = np.empty(N // NR + 2, np.int64)
    widths = np.empty(N // NR + 2, np.int64)
    nb = 0
    for n0 in range(0, N - NR + 1, NR):
        starts[nb], widths[nb] = n0, NR
        nb += 1
    rem = N - nb * NR
    if rem == half or (0 < rem < half and N >= half):
        starts[nb], widths[nb] = N - half, half
        nb += 1
    elif rem > half and N >= NR:
        starts[nb], widths[nb] = N - NR, NR
        nb += 1
    elif rem > half:  # half < N < NR: two half blocks
        starts[nb], widths[nb] = 0, half
        starts[nb + 1], widths[nb + 1] = N - half, half
        nb += 2
    ldx, ldz = X.strides[0] // s, Z.strides[0] // s
    step = K * MR * s  # bytes per panel
    a, x, z = Ap.ctypes.data + p0 * step, X.ctypes.data, Z.ctypes.data
    zs = np.empty((MR, NR), Ap.dtype)  # the last, partial panel's block
    full = rows // MR
    last = rows - full * MR
    per = max(1, L2_BYTES // step)  # panels per group
    for q0 in range(0, full + (1 if last else 0), per):
        q1 = min(q0 + per, full)
        for b in range(nb):
            n0, w = starts[b], widths[b]
            for p in range(q0, q1):
                if w == NR:
                    _microkernel(Ap, a + p * step, x + n0 * s, z + (p * MR * ldz + n0) * s, K,
                                 ldx, ldz)  # fmt: skip
                else:
                    _microkernel_half(Ap, a + p * step, x + n0 * s, z + (p * MR * ldz + n0) * s,
                                      K, ldx, ldz)  # fmt: skip
            if last and q0 + per > full:  # this group holds the partial panel
                if w == NR:
                    _microkernel(Ap, a + full * step, x + n0 * s, zs.ctypes.data, K, ldx, NR)
                else:
                    _microkernel_half(Ap, a + full * step, x + n0 * s, zs.ctypes.data, K, ldx, NR)
                for r in range(last):
                    for c in range(w):
                        Z[full * MR + r, n0 + c] = zs[r, c]
