"""A small transposing copy in vector tiles, for the inference step's ``(H, B)`` <-> ``(B, H)`` moves.

Inference keeps the state feature-major (``h_t (H, B)``, rows of ``xh_t``) and the layer's output
batch-major (``out (B, T, H)``), so every step copies ``h_t`` into the output transposed, and the
next step's ``x_{t+1} (B, D)`` into ``xh`` the other way. As scalar loops (a strided load and a
store an element) those cost 16 us of config C's ~530 us step on the AVX2 EPYC (3.5 cycles an
element, in cache or not, and tiling the loop did not help), about what the step's pointwise
pass costs. Here a tile of ``L x L`` (``L`` = the variant's vector lanes: 8 float32 on AVX2) is
``L`` vector loads, a transpose in registers and ``L`` vector stores: ``log2 L`` rounds of
interleaving pairs of rows ``i`` and ``i + L/2`` (a perfect shuffle of the index bits; after
``log2 L`` rounds row ``c`` holds column ``c``), which LLVM lowers to the CPU's shuffles.

The tile loop is LLVM IR built with llvmlite, compiled with each variant's micro-kernels
(:func:`.packed.kernels`, entry 4 of its table) and called through its address; the edges that
do not fill a tile are copied by scalar loops. A copy: the same bits whatever the path.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit

from ._jit import JIT as _JIT
from .packed import NV, _call


def transpose_function(module, is64, lanes):
    """The LLVM function ``void (x, ldx, y, ldy, n, _)`` (all i64): for ``k < n``, the tile of
    ``x`` (raw address, row stride ``ldx`` elements) at rows ``kL:(k+1)L``, columns ``0:L``
    into rows ``0:L``, columns ``kL:(k+1)L`` of ``y`` (row stride ``ldy``), transposed;
    ``L = lanes``. Along ``y``'s rows, so that each of its ``L`` rows is written in order,
    whole cache lines in turn (along ``x``'s columns instead, ``h_t`` into config C's output
    took 6.1 against 3.0 us a step). The last argument is unused (the six-argument call of the micro-kernels)."""
    name = f"lstmkit_transpose_{'f64' if is64 else 'f32'}_{lanes}"
    i32, i64 = ir.IntType(32), ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64] * 6), name=name)
    fty = ir.DoubleType() if is64 else ir.FloatType()
    vp = ir.VectorType(fty, lanes).as_pointer()
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    builder = ir.IRBuilder(entry)
    xf, yf = (builder.inttoptr(a, fty.as_pointer()) for a in (fn.args[0], fn.args[2]))
    ldx, ldy, n = fn.args[1], fn.args[3], fn.args[4]
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)

    builder.position_at_end(loop)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), entry)
    first = builder.mul(k, ir.Constant(i64, lanes))  # x's first row, y's first column
    rows = []
    for r in range(lanes):
        at = builder.mul(builder.add(first, ir.Constant(i64, r)), ldx)
        rows.append(builder.load(builder.bitcast(builder.gep(xf, [at]), vp), align=4))
    half = lanes // 2
    lo = ir.Constant(ir.VectorType(i32, lanes), [q // 2 + (q % 2) * lanes for q in range(lanes)])
    hi = ir.Constant(ir.VectorType(i32, lanes),
                     [half + q // 2 + (q % 2) * lanes for q in range(lanes)])  # fmt: skip
    for _ in range(lanes.bit_length() - 1):  # log2 L rounds of interleaving
        pairs = [(rows[i], rows[i + half]) for i in range(half)]
        rows = [builder.shuffle_vector(a, b, m) for a, b in pairs for m in (lo, hi)]
    for c in range(lanes):
        at = builder.add(builder.mul(ir.Constant(i64, c), ldy), first)
        builder.store(rows[c], builder.bitcast(builder.gep(yf, [at]), vp), align=4)
    k1 = builder.add(k, ir.Constant(i64, 1))
    k.add_incoming(k1, loop)
    builder.cbranch(builder.icmp_signed("<", k1, n), loop, done)
    builder.position_at_end(done)
    builder.ret_void()
    return fn


@njit(**_JIT)
def transpose_into(X, Y, mk):
    """``Y (C, R) = X (R, C).T`` for 2-D arrays with unit column stride (any row stride), by the
    tile loop of the variant in ``mk = packed.kernels(dtype)``; scalar loops for the edges."""
    R, C = X.shape
    L = mk[2] // NV  # the variant's lanes
    R1, C1 = R - R % L, C - C % L
    s = X.itemsize
    ldx, ldy = X.strides[0] // s, Y.strides[0] // s
    if R1 > 0:
        for c0 in range(0, C1, L):  # Y's rows c0:c0+L, written in order
            _call(mk[4], X.ctypes.data + c0 * s, ldx, Y.ctypes.data + c0 * ldy * s, ldy,
                  R1 // L, 0)  # fmt: skip
    for r in range(R1):
        for c in range(C1, C):
            Y[c, r] = X[r, c]
    for r in range(R1, R):
        for c in range(C):
            Y[c, r] = X[r, c]
