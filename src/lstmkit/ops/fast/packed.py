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
  multiply-adds. ``NR = NV * lanes`` follows from the variant's vector width (below): float32
  ``6 x 32`` on AVX-512, ``6 x 16`` on AVX2 (12 registers of 8 lanes, the shape of the Haswell
  kernels of OpenBLAS and BLIS), ``6 x 8`` generic; float64 half as wide.

The micro-kernel is LLVM IR written with llvmlite (:func:`_kernel_function`): numba's vectoriser
does not keep a 2-D accumulator in registers. A half-width kernel (``MR x NR / 2``) takes narrow
column blocks; the last, partial panel goes through a small scratch block. Measured (before the
variants, AVX2 kernel) with
``benchmarks/bench_step_gemm.py`` on one core of the 2-vCPU AMD EPYC (AVX2, 1024^3 GEMM 72
GFLOP/s) this was written on, float32, per product: config A ``(512, 161) @ (161, 32)`` 64 us
(83 GFLOP/s) against OpenBLAS ``sgemm``'s 76 us (152 us row-major), C 539 against 638 us, D
2.6 against 4.0 us.
"""

from __future__ import annotations

import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .. import compiled
from ._jit import JIT as _JIT

MR = 6  # rows of a panel (every variant and float type)
NV = 2  # vectors per row of a block: NR = NV * lanes columns (and a half-width kernel)
L2_BYTES = 2**18  # packed weights per group of rows in matmul_packed


# --- the variants: one generator, compiled per CPU level ------------------------------------------
#
# The micro-kernel is generated once (:func:`_kernel_function`) with the vector width as a
# parameter: ``lanes = register bytes / item size`` (avx512: 16 float32 / 8 float64, avx2: 8 / 4,
# generic: 4 / 2) and the block ``MR x NV * lanes`` (2 * MR accumulator registers: 12 of AVX2's
# 16, 12 of AVX-512's 32). Each variant is compiled by llvmlite for its own CPU features into
# machine code of its own (a few ms, at the first product of the process), and the numba kernels
# call it through its address (:func:`kernels`), like BLAS: numba's cached code is the same for
# every variant, so forcing one (``LSTMKIT_KERNEL``, :func:`set_variant`) recompiles nothing and
# can never pick up another variant's code.

_forced: list = [None]  # set_variant's choice, else compiled.kernel_variant()
_built: dict = {}  # variant -> (execution engine, {itemsize: int64 [full, half, NR]})
_lock = threading.Lock()


def set_variant(name: str | None) -> str:
    """Run the micro-kernel variant ``name`` (``"avx512"``, ``"avx2"``, ``"generic"``; None: back
    to ``LSTMKIT_KERNEL`` or the CPU's best) from the next call on; returns the variant in use.
    A ValueError if this CPU cannot run it."""
    _forced[0] = None if name is None else compiled.check_variant(name)
    return variant()


def variant() -> str:
    """The micro-kernel variant the kernels run now."""
    return _forced[0] or compiled.kernel_variant()


def lanes(itemsize: int, name: str | None = None) -> int:
    """Vector lanes of a variant (default: the one in use) for a float of ``itemsize`` bytes."""
    return compiled.KERNEL_VARIANTS[name or variant()][1] // itemsize


def block_columns(itemsize: int, name: str | None = None) -> int:
    """NR: the columns of one micro-kernel block for a float of ``itemsize`` bytes."""
    return NV * lanes(itemsize, name)


def pass_phases(name: str | None = None) -> int:
    """How the inference kernels run the LSTM's pointwise pass under variant ``name`` (default:
    the one in use): 2, the gate activations of a whole block and then the state update
    (:func:`.cells.lstm_pass_infer`), where a vector register file of 16 (AVX2, SSE) cannot
    hold one loop's two chains of activations (on the AVX2 EPYC 3.7 -> 3.2 ns a cell, the
    same bits); 1, one loop, on AVX-512 (32 registers), where the extra pass over the block
    was never measured to pay (docs/speed.md, "inference at C and A on the AVX2 CPU")."""
    return 1 if (name or variant()) == "avx512" else 2


def kernels(dtype, name: str | None = None) -> np.ndarray:
    """``int64 [address of the MR x NR kernel, of the MR x NR/2 one, NR, pass phases, address
    of the transposing copy]`` of variant ``name`` (default: the one in use) for ``dtype``: the
    argument ``mk`` of :func:`matmul_packed` and of the inference kernels (:func:`pass_phases`,
    :func:`.transpose.transpose_into`)."""
    name = name or variant()
    with _lock:
        if name not in _built:
            _built[name] = _build(name)
    return _built[name][1][np.dtype(dtype).itemsize]


def _build(name):
    """Compile variant ``name``'s four kernels (float32 / float64, full / half width) and its
    two transposing copies (:mod:`.transpose`)."""
    import llvmlite.binding as llvm

    from .transpose import transpose_function

    feats, _ = compiled.KERNEL_VARIANTS[name]
    target = llvm.Target.from_triple(llvm.get_process_triple())
    tm = target.create_target_machine(
        cpu="generic", features=",".join("+" + f for f in feats), opt=3, jit=True
    )
    module = ir.Module(name=f"lstmkit_microkernels_{name}")
    module.triple = llvm.get_process_triple()
    names = {}
    for itemsize in (4, 8):
        n = lanes(itemsize, name)
        names[itemsize] = [_kernel_function(module, itemsize == 8, nv, n, bool(feats)).name
                           for nv in (NV, NV // 2)]  # fmt: skip
        names[itemsize].append(transpose_function(module, itemsize == 8, n).name)
    mod = llvm.parse_assembly(str(module))
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    table = {}
    for size, fns in names.items():
        addresses = [engine.get_function_address(f) for f in fns]
        full, half, tr = addresses
        table[size] = np.array([full, half, NV * lanes(size, name), pass_phases(name), tr],
                               np.int64)  # fmt: skip
        table[size].flags.writeable = False
    return engine, table


@intrinsic
def _call(typingctx, fn, ap, x, z, K, ldx, ldz):
    """Call the micro-kernel at address ``fn`` (see :func:`_kernel_function`) with six i64
    arguments."""
    if not all(isinstance(t, types.Integer) for t in (fn, ap, x, z, K, ldx, ldz)):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vals = [context.cast(builder, a, t, types.int64) for a, t in zip(args, signature.args)]
        fnty = ir.FunctionType(ir.VoidType(), [i64] * 6)
        builder.call(builder.inttoptr(vals[0], fnty.as_pointer()), vals[1:])
        return context.get_dummy_value()

    return types.void(fn, ap, x, z, K, ldx, ldz), codegen


def _kernel_function(module, is64, NV, lanes, fused):
    """The LLVM function ``void (ap, x, z, K, ldx, ldz)`` (all i64) computing
    ``z[0:MR, 0:NR] = ap_panel (MR, K) @ x[0:K, 0:NR]``, ``NR = NV * lanes``, on raw addresses:
    ``ap`` one packed panel (k-major, ``MR`` values per k), ``x`` and ``z`` row-major with row
    strides ``ldx`` and ``ldz`` elements. ``fused``: ``llvm.fma`` (one rounding, the CPU has
    FMA), else ``llvm.fmuladd`` (a multiply and an add where it has not)."""
    name = f"lstmkit_microkernel_{'f64' if is64 else 'f32'}_{MR}x{NV * lanes}"
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64] * 6), name=name)
    fty = ir.DoubleType() if is64 else ir.FloatType()
    vty = ir.VectorType(fty, lanes)
    fp, vp = fty.as_pointer(), vty.as_pointer()
    fma_name = f"llvm.{'fma' if fused else 'fmuladd'}.v{lanes}{'f64' if is64 else 'f32'}"
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
def matmul_packed(Ap, p0, rows, X, Z, mk):
    """``Z[:rows] = A @ X`` for ``X (K, N)``, ``Z (>= rows, N)`` (2-D arrays with unit column
    stride), ``A``'s rows packed in panels ``p0, p0 + 1, ...`` of ``Ap`` (:func:`pack_rows`),
    by the micro-kernels of ``mk = kernels(dtype)`` (a variant's addresses and its ``NR``).

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
    half = mk[2] // 2
    if N >= half:
        _blocks(Ap, p0, rows, X, Z, mk)
        return
    xs = np.zeros((K, half), Ap.dtype)  # through a zero-padded copy
    for k in range(K):  # (loops: 2-D slice assignment is slow to compile)
        for c in range(N):
            xs[k, c] = X[k, c]
    zh = np.empty((rows, half), Ap.dtype)
    _blocks(Ap, p0, rows, xs, zh, mk)
    for r in range(rows):
        for c in range(N):
            Z[r, c] = zh[r, c]


@njit(**_JIT)
def _blocks(Ap, p0, rows, X, Z, mk):
    """:func:`matmul_packed` for N >= NR / 2."""
    K = Ap.shape[1]
    N = X.shape[1]
    s = Ap.itemsize
    NR = mk[2]
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
            fn = mk[0] if w == NR else mk[1]
            for p in range(q0, q1):
                _call(fn, a + p * step, x + n0 * s, z + (p * MR * ldz + n0) * s, K, ldx, ldz)
            if last and q0 + per > full:  # this group holds the partial panel
                _call(fn, a + full * step, x + n0 * s, zs.ctypes.data, K, ldx, NR)
                for r in range(last):
                    for c in range(w):
                        Z[full * MR + r, n0 + c] = zs[r, c]
