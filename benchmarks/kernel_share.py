"""Per kernel, the share of the machine's peak: every compiled kernel of the fast path timed alone.

    python benchmarks/kernel_share.py --threads 1 --json out/bench/kshare_t1.json
    python benchmarks/kernel_share.py --threads 2 --kernel all      # every variant this CPU runs
    python benchmarks/kernel_share.py --quick                       # tiny sizes, seconds
    python benchmarks/kernel_share.py --from-json out/bench/kshare_t1.json --kernel avx512,avx2

For configs A-E of ``bench_speed.py`` (its ``CONFIGS``; E is two stacked bidirectional layers,
so its kernels run at two input widths, twice each) and one GRU and one SimpleRNN at A, each
kernel is called alone, as the fast path calls it, with the shapes of the config (float32,
median of ``--repeats`` interleaved rounds after two warm-up calls; each timed call follows a
short sleep and one untimed call, as in ``bench_speed.py``). Per kernel: wall ms, process CPU ms,
the FLOPs of its products, GFLOP/s, and

- % GEMM: the share of the float32 1024^3 ``np.matmul`` rate measured in the same run at the
  same thread count (``bench_speed.gemm_rate``): what this machine's best product reaches;
- % GEMM (CPU): the same from process CPU time, the kernel's FLOPs per CPU second over the
  GEMM's (all threads counted; a thread spinning at a barrier counts as spent): on a busy
  machine wall time also counts the waits for a core, CPU time does not;
- % FMA: the share of the theoretical peak, ``threads x clock x FLOP/cycle``, with the nominal
  clock of ``/proc/cpuinfo`` (boost clocks run higher, so a measured rate may pass it) and
  FLOP/cycle = 2 (multiply + add) x float32 lanes x FMA pipes (see :func:`fma_peak`);
- % step: the share of the same config's ``train_on_batch`` (or, for inference, ``predict``)
  wall time that the kernel takes, times the calls a step makes of it: where the time goes.

FLOPs are those of the matrix products only, ``2 * m * n * k`` each (see :func:`lstm_flops`);
the pointwise work (activations, cell update, masks) is not counted: it is timed inside the
recurrences but earns no FLOPs, so a recurrence's rate is below its product's.

The kernels, LSTM, batch of 2 or more (``lstmkit/ops/fast/lstm_fm.py``, feature-major):

- ``forward``: ``lstm_forward`` with the training cache; per step one packed product
  ``z_t (4H, B) = W.T (4H, 1+D+H) @ xh_t`` and the pointwise pass;
  ``forward.product``: those T products alone (``packed.matmul_packed``, the variant's
  micro-kernel, threads splitting the units as the forward does);
- ``backward``: ``lstm_backward`` (BPTT) as the layer calls it (the first layer skips dx);
  ``backward.product``: ``[dx_t; dh_{t-1}] = W @ dz_t`` alone (packed);
  ``weight_grads``: ``dWT += dz_t @ xh_t.T`` alone (OpenBLAS ``sgemm`` per step, through
  ``blas.gemm``);
- ``infer``: ``lstm_infer`` (no cache; the batch split among threads);
- ``input_projection``: ``x @ kernel`` for all steps, one GEMM (``common.input_projection``);
  this path does not call it (the product above folds the input in), shown as a reference.

Batch 1 (config B, ``lstmkit/ops/fast/lstm.py``, row-major): ``forward`` = the input projection
plus the recurrence (``forward.recurrence``: ``rows.forward_rows``, ``h @ U`` per step through
numba's ``np.dot``); ``backward`` = ``backward.recurrence`` (``rows.backward_rows``) plus
``weight_grads`` (``common.weight_gradients``: dx, d kernel, d recurrent_kernel as big GEMMs);
``infer`` = ``_lstm_infer_rows`` (BLAS-free axpy rows). GRU and SimpleRNN (row-major, whole
sequence): ``gru_forward`` / ``gru_backward``, ``rnn_forward`` / ``rnn_backward``.

``--kernel`` picks the packed micro-kernel variant(s) (``avx512``, ``avx2``, ``generic``, ``all``
for every one this CPU can run; default: the one lstmkit picks, ``LSTMKIT_KERNEL`` or the CPU's
best); variants are switched in-process (``packed.set_variant``), interleaved round by round.
Only the kernels that run the micro-kernel differ between variants; the others are timed once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_speed

FM_MIN_BATCH = 2  # lstmkit.ops.fast.lstm.FM_MIN_BATCH (checked against it in main)


# --- FLOPs, from the shapes -------------------------------------------------------------------
def lstm_flops(T, B, D, H, need_dx=True):
    """FLOPs of the products of each LSTM kernel, ``2 * m * n * k`` per product; the pointwise
    part is not counted. ``need_dx``: whether the backward computes dx (a model's first layer
    does not)."""
    G, K = 4 * H, 1 + D + H  # gate rows; stacked input [1; x_t; h_{t-1}], the bias row included
    f = {"input_projection": 2 * T * B * D * G}  # (T*B, D) @ (D, 4H)
    if B >= FM_MIN_BATCH:
        product = 2 * T * G * K * B  # per step W.T (4H, K) @ xh_t (K, B)
        rows = D + H if need_dx else H
        f["forward"] = f["forward.product"] = f["infer"] = product
        f["backward.product"] = 2 * T * rows * G * B  # per step W (rows, 4H) @ dz_t (4H, B)
        f["weight_grads"] = 2 * T * G * B * K  # per step dz_t (4H, B) @ xh_t.T (B, K)
        f["backward"] = f["backward.product"] + f["weight_grads"]
    else:
        f["forward.recurrence"] = 2 * T * B * H * G  # per step h_{t-1} (B, H) @ U (H, 4H)
        f["forward"] = f["input_projection"] + f["forward.recurrence"]
        f["infer"] = 2 * T * B * (D + H) * G  # per step x_t @ kernel + h_{t-1} @ U, as axpy rows
        f["backward.recurrence"] = 2 * T * B * G * H  # per step dz_t (B, 4H) @ U.T (4H, H)
        # dx = dz @ kernel.T, d kernel = x.T @ dz, d recurrent_kernel = h_in.T @ dz
        f["weight_grads"] = 2 * T * B * G * (D + D + H)
        f["backward"] = f["backward.recurrence"] + f["weight_grads"]
    return f


def rowmajor_flops(T, B, D, H, gates):
    """GRU (``gates`` 3) or SimpleRNN (1): forward = input projection ``(T*B, D) @ (D, gH)`` and
    ``h @ U`` per step; backward = ``dz @ U.T`` per step and the three weight-gradient GEMMs."""
    G = gates * H
    return {
        "forward": 2 * T * B * G * (D + H),
        "backward": 2 * T * B * G * H + 2 * T * B * G * (D + D + H),
    }


# --- the machine ------------------------------------------------------------------------------
def cpu_info():
    """Model, vendor, family, nominal MHz and vector flags from /proc/cpuinfo (Linux)."""
    info = {"model": platform.processor() or platform.machine(), "vendor": "", "family": None,
            "mhz": None, "flags": []}  # fmt: skip
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return info
    first = {}
    for ln in lines:
        if ":" in ln:
            k, v = (s.strip() for s in ln.split(":", 1))
            first.setdefault(k, v)
    info["model"] = first.get("model name", info["model"])
    info["vendor"] = first.get("vendor_id", "")
    info["family"] = int(first["cpu family"]) if first.get("cpu family", "").isdigit() else None
    info["mhz"] = float(first["cpu MHz"]) if "cpu MHz" in first else None
    flags = first.get("flags", "").split()
    info["flags"] = sorted(f for f in flags if f.startswith(("avx", "fma")))
    return info


def fma_peak(cpu, threads):
    """``(GFLOP/s, FLOP/cycle, why)``: the float32 FMA peak at the nominal clock, or None without
    a clock. FMA pipes: 2 on AVX2 cores (Intel Haswell on, AMD Zen); AVX-512 is 2 x 512-bit on
    Intel Xeon Gold/Platinum (some Silver/Bronze parts have 1) and 2 x 256-bit on AMD Zen 4,
    which runs a 512-bit FMA as two halves; without AVX2 the SSE baseline, 4 lanes, a multiply
    and an add pipe."""
    flags = set(cpu["flags"])
    if "avx512f" in flags and cpu["vendor"] == "AuthenticAMD":
        per, why = 2 * 8 * 2, "AMD AVX-512 (Zen 4): 2 FMA pipes x 8 float32 lanes (256-bit) x 2"
    elif "avx512f" in flags:
        per, why = 2 * 16 * 2, "Intel AVX-512: 2 FMA pipes x 16 float32 lanes x 2 (assumed 2 pipes)"
    elif {"avx2", "fma"} <= flags:
        per, why = 2 * 8 * 2, "AVX2+FMA: 2 FMA pipes x 8 float32 lanes x 2"
    else:
        per, why = 4 * 2, "SSE: 4 float32 lanes, a multiply and an add per cycle"
    if not cpu["mhz"]:
        return None, per, why
    return threads * cpu["mhz"] * 1e-3 * per, per, why


# --- the kernels, called alone ----------------------------------------------------------------
def _drivers():
    """numba loops over T steps that make the per-step calls of the feature-major kernels, with
    the same functions and arguments (``lstm_fm._forward_chunk``, ``_backward_gates``,
    ``_backward_inputs``), the threads splitting the work as they do."""
    import numpy as np
    from numba import njit, prange

    from lstmkit.ops.fast.blas import gemm
    from lstmkit.ops.fast.packed import matmul_packed

    def products(Ap, first, counts, offs, X, Z, mk, steps):
        """Per step t: ``Z[offs[p]:][:counts[p]] = rows of chunk p (panels from first[p]) @
        X[t % len(X)]``, chunk p on thread p."""
        for t in range(steps):
            x = X[t % X.shape[0]]
            for p in prange(counts.shape[0]):
                matmul_packed(Ap, first[p], counts[p], x, Z[offs[p] :], mk)

    def weight_grads(addr, edges, DZ, XH, dWTp, steps):
        """Per step, from the last: ``dWTp[4 j0 : 4 j1] += DZ[4 j0 : 4 j1] @ XH[t].T`` for the
        unit chunk ``j0:j1`` of each thread (``sgemm``/``dgemm``)."""
        P = edges.shape[0] - 1
        B = DZ.shape[1]
        K = XH.shape[1]
        s = DZ.itemsize
        iw = np.zeros((P, 8), np.int32)
        fw = np.zeros((P, 2), DZ.dtype)
        for t in range(steps - 1, -1, -1):
            for p in prange(P):
                j0 = edges[p]
                hu = edges[p + 1] - j0
                gemm(addr, False, True, 4 * hu, K, B, 1.0, DZ.ctypes.data + 4 * j0 * B * s, B,
                     XH[t].ctypes.data, B, 1.0, dWTp.ctypes.data + 4 * j0 * K * s, K, iw[p],
                     fw[p])  # fmt: skip

    # one thread: compiled without ``parallel`` (a prange region costs ~1 us a step), as the
    # kernels' ``_serial`` loops are; several: in step, as their ``_parallel`` loops
    return {
        parallel: (njit(parallel=parallel, nogil=True)(products),
                   njit(parallel=parallel, nogil=True)(weight_grads))
        for parallel in (False, True)
    }  # fmt: skip


def _problem(T, B, D, H, seed=0):
    """Weights and inputs in the layouts the layer passes: x and dhs as (T, B, .) views of
    (B, T, .) arrays."""
    import numpy as np

    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-s, s, shape).astype(np.float32)

    return {
        "x": rng.standard_normal((B, T, D)).astype(np.float32).transpose(1, 0, 2),
        "h0": u(B, H),
        "c0": u(B, H),
        "kernel": u(D, 4 * H),
        "U": u(H, 4 * H),
        "bias": u(4 * H),
        "dhs": rng.standard_normal((B, T, H)).astype(np.float32).transpose(1, 0, 2),
    }


def _blas_single(fn):
    """``fn`` run as the kernels run their loops: BLAS single-threaded (``common.in_parallel``)."""
    from lstmkit.ops.fast import common

    return lambda: common.in_parallel([(0, 1)], lambda a, b: fn(), 2**30)[0]


def lstm_kernels(T, B, D, H, need_dx, drivers):
    """``{name: (call, threads, uses the micro-kernel)}`` for one LSTM shape."""
    import numpy as np

    from lstmkit.ops.fast import common
    from lstmkit.ops.fast import lstm as fl

    p = _problem(T, B, D, H)
    x, h0, c0, W, U, b, dhs = (p[k] for k in ("x", "h0", "c0", "kernel", "U", "bias", "dhs"))
    _, _, cache = fl.lstm_forward(x, h0, c0, W, U, b)
    xw = np.empty((T, B, 4 * H), np.float32)
    out = {
        "forward": (lambda: fl.lstm_forward(x, h0, c0, W, U, b), None),
        "backward": (lambda: fl.lstm_backward(dhs, None, None, cache, need_dx), None),
        "infer": (lambda: fl.lstm_infer(x, h0, c0, W, U, b), None),
        "input_projection": (
            lambda: common.input_projection(np.ascontiguousarray(x), W, xw),
            len(common.split(T, T * B * D * 4 * H)),
        ),
    }
    if B >= FM_MIN_BATCH:
        out.update(_fm_parts(T, B, D, H, need_dx, p, drivers))
        P = fl._fm_threads(T, B, D, H)
        for k in ("forward", "backward"):
            out[k] = (out[k][0], P)
        from lstmkit.ops.fast.packed import lanes

        rows = common.split(B, T * B * 4 * H * (1 + D + H), least=lanes(4))
        out["infer"] = (out["infer"][0], len(rows) if len(rows) > 1 else P)
        return {k: (f, n, k != "input_projection" and k != "weight_grads") for k, (f, n) in
                out.items()}  # fmt: skip
    out.update(_row_parts(T, B, D, H, p, cache))
    for k in ("forward", "backward", "infer"):
        out[k] = (out[k][0], 1)
    return {k: (f, n, False) for k, (f, n) in out.items()}


def _fm_parts(T, B, D, H, need_dx, p, drivers):
    """The per-step products of the feature-major kernels, alone (see :func:`_drivers`)."""
    import numpy as np

    from lstmkit.ops.fast import blas, lstm_fm
    from lstmkit.ops.fast import lstm as fl
    from lstmkit.ops.fast.packed import kernels

    rng = np.random.default_rng(1)
    P = fl._fm_threads(T, B, D, H)
    products, weight_grads = drivers[P > 1]
    K = 1 + D + H
    edges, perm = lstm_fm._chunks(H, P)
    Ap, first = lstm_fm._packed_weights(p["kernel"], p["U"], p["bias"], perm, edges, None)
    XH = rng.standard_normal((T + 1, K, B)).astype(np.float32)
    XH[:, 0] = 1
    Z = np.empty((4 * H, B), np.float32)
    fwd_counts, fwd_offs = 4 * np.diff(edges), 4 * edges[:-1]
    r0 = 0 if need_dx else D
    rows = np.array([r0 + round((D + H - r0) * q / P) for q in range(P + 1)], np.int64)
    Wp, wfirst = lstm_fm._packed_input_weights(p["kernel"], p["U"], perm, rows, None)
    DZ = rng.standard_normal((1, 4 * H, B)).astype(np.float32)  # one buffer, every step
    dout = np.empty((D + H, B), np.float32)
    dWTp = np.zeros((4 * H, K), np.float32)
    addr = blas.gemm_address(np.float32)

    def fwd_product():
        mk = kernels(np.float32)  # the variant in use now
        with lstm_fm._numba_threads(P):
            products(Ap, first, fwd_counts, fwd_offs, XH, Z, mk, T)

    def bwd_product():
        mk = kernels(np.float32)
        with lstm_fm._numba_threads(P):
            products(Wp, wfirst, np.diff(rows), rows[:-1], DZ, dout, mk, T)

    def wgrad():
        with lstm_fm._numba_threads(P):
            weight_grads(addr, edges, DZ[0], XH, dWTp, T)

    # witnesses, once: the drivers compute the products they stand for (NumPy)
    WT = np.concatenate([p["bias"][:, None], p["kernel"].T, p["U"].T], axis=1)[perm]  # (4H, K)
    _blas_single(fwd_product)()
    _close(Z, WT @ XH[T - 1], "forward.product")
    _blas_single(bwd_product)()
    Wfull = np.concatenate([p["kernel"], p["U"]])[:, perm]  # (D + H, 4H), chunk-major columns
    _close(dout[r0:], Wfull[r0:] @ DZ[0], "backward.product")
    dWTp[:] = 0
    _blas_single(wgrad)()
    _close(dWTp, sum(DZ[0] @ XH[t].T for t in range(T)), "weight_grads")
    return {
        "forward.product": (_blas_single(fwd_product), P),
        "backward.product": (_blas_single(bwd_product), P),
        "weight_grads": (_blas_single(wgrad), P),
    }


def _row_parts(T, B, D, H, p, cache):
    """The batch-1 recurrences alone, and the weight-gradient GEMMs."""
    import numpy as np

    from lstmkit.ops.fast import common
    from lstmkit.ops.fast import rows as fl
    from lstmkit.ops.fast.elementwise import acts_for

    acts = acts_for("tanh", "sigmoid")
    x = np.ascontiguousarray(p["x"])
    xw = np.empty((T, B, 4 * H), np.float32)
    common.input_projection(x, p["kernel"], xw)
    m, _ = common.bool_or_dummy(None)
    rm, _ = common.float_or_dummy(None, np.float32)
    gates, c, tanh_c, h_in, hs = (np.empty_like(a) for a in (cache.gates, cache.c, cache.tanh_c,
                                                             cache.h_in, cache.h_in))  # fmt: skip
    dhs = np.ascontiguousarray(p["dhs"])
    dz = np.empty((T, B, 4 * H), np.float32)
    UT = np.ascontiguousarray(p["U"].T)
    dh_prev = np.empty((B, H), np.float32)
    u = np.empty((B, 4 * H), np.float32)
    cg, cc, ctc, chin = cache.gates, cache.c, cache.tanh_c, cache.h_in
    c[0] = p["c0"]

    def fwd_loop():
        fl.forward_rows(0, B, (gates, c, tanh_c), acts, xw, p["bias"], p["h0"], p["U"], m,
                        False, rm, False, h_in, u, hs, True)  # fmt: skip

    def bwd_loop():
        dh = np.zeros((B, H), np.float32)
        dc = np.zeros((B, H), np.float32)
        fl.backward_rows(0, B, (cg, cc, ctc, dc, dz, dz), acts, dhs, True, dh, UT, m, False, rm,
                         False, dh_prev)  # fmt: skip

    bwd_loop()  # fills dz for the weight gradients
    return {
        "forward.recurrence": (fwd_loop, 1),
        "backward.recurrence": (bwd_loop, 1),
        "weight_grads": (
            lambda: common.weight_gradients(x, p["kernel"], chin, dz),
            len(common.split(T, T * B * 4 * H * (2 * D + H))),
        ),
    }


def _close(got, want, what):
    import numpy as np

    err = float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))
    assert err < 1e-4, f"{what}: the timed call differs from NumPy's product by {err}"


def cell_kernels(T, B, D, H):
    """GRU and SimpleRNN forward (training, with cache) and backward at one shape."""
    import numpy as np

    from lstmkit.ops.fast import common, gru, rnn

    p = _problem(T, B, D, H)
    x, h0, dhs = (np.ascontiguousarray(p[k]) for k in ("x", "h0", "dhs"))
    rng = np.random.default_rng(2)
    s = 1 / np.sqrt(H)
    gw = [rng.uniform(-s, s, sh).astype(np.float32) for sh in ((D, 3 * H), (H, 3 * H), (2, 3 * H))]
    rw = [rng.uniform(-s, s, sh).astype(np.float32) for sh in ((D, H), (H, H), (H,))]
    _, _, gcache = gru.gru_forward(x, h0, *gw)
    _, _, rcache = rnn.rnn_forward(x, h0, *rw)
    g_threads = len(common.split(B, T * B * 3 * H * H))
    r_threads = len(common.split(B, T * B * H * H))
    return {
        ("GRU", "forward"): (lambda: gru.gru_forward(x, h0, *gw), g_threads),
        ("GRU", "backward"): (lambda: gru.gru_backward(dhs, None, gcache), g_threads),
        ("RNN", "forward"): (lambda: rnn.rnn_forward(x, h0, *rw), r_threads),
        ("RNN", "backward"): (lambda: rnn.rnn_backward(dhs, None, rcache), r_threads),
    }


# --- timing -----------------------------------------------------------------------------------
def layer_shapes(cfg):
    """``[(tag, (T, B, D_in, H), need_dx, calls per step)]`` of the LSTM layers of a config."""
    T, B, D, H, layers = cfg
    if layers == 1:
        return [("", (T, B, D, H), False, 1)]
    # stacked Bidirectional: two directions per layer; the first layer's input D, the others' 2H
    return [(f"l{k + 1}", (T, B, D if k == 0 else 2 * H, H), k > 0, 2) for k in range(layers)]


def time_all(contenders, repeats, cooldown):
    """``{key: (wall ms, cpu ms)}``: medians of interleaved rounds. ``contenders``: key ->
    (call, variant or None)."""
    import numpy as np

    from lstmkit.ops.fast import packed

    def run(f, v):
        if v is not None:
            packed.set_variant(v)
        f()

    for f, v in contenders.values():  # warm-up: compilation, workspace, caches
        run(f, v)
        run(f, v)
    wall = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    for _ in range(repeats):
        for k, (f, v) in contenders.items():
            if v is not None:
                packed.set_variant(v)
            time.sleep(cooldown)
            f()
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    packed.set_variant(None)
    return {k: (1e3 * float(np.median(wall[k])), 1e3 * float(np.median(cpu[k]))) for k in wall}


def bench_config(name, cfg, configs, variants, args, drivers):
    """Rows of one config: each kernel and the step and predict it sits in, per variant."""
    from lstmkit.ops import backend

    model, x, y = _build(name, configs)
    B = x.shape[0]
    backend.set_backend("numba")
    contenders, meta = {}, {}
    vs = variants if B >= FM_MIN_BATCH else [None]  # batch 1 never runs the micro-kernel
    for v in vs:
        contenders[(v, "step", "train_on_batch")] = (lambda: model.train_on_batch(x, y), v)
        contenders[(v, "step", "predict")] = (lambda: model.predict(x, batch_size=B), v)
    for tag, shape, need_dx, calls in layer_shapes(cfg):
        flops = lstm_flops(*shape, need_dx=need_dx)
        for k, (f, threads, micro) in lstm_kernels(*shape, need_dx, drivers).items():
            for v in vs if micro else [None]:
                contenders[(v, tag, k)] = (f, v)
                meta[(v, tag, k)] = {"shape": shape, "need_dx": need_dx, "calls": calls,
                                     "threads": threads, "flops": flops[k]}  # fmt: skip
    times = time_all(contenders, args.repeats, args.cooldown)
    rows = []
    for key, m in meta.items():
        v, tag, k = key
        step_key = "predict" if k == "infer" else "train_on_batch"
        step_ms = times[(v if (v, "step", step_key) in times else vs[0], "step", step_key)][0]
        in_step = not (k == "input_projection" and cfg[1] >= FM_MIN_BATCH)
        ms, cpu_ms = times[key]
        rows.append({"config": name, "variant": v, "layer": tag, "kernel": k, **m,
                     "ms": ms, "cpu_ms": cpu_ms, "step": step_key,
                     "step_ms": step_ms, "share": m["calls"] * ms / step_ms if in_step else None})  # fmt: skip
    steps = {f"{v}/{s}": times[(v, "step", s)] for v in vs for s in ("train_on_batch", "predict")}
    for v in vs:  # what the top-level kernels leave of the step: Python, loss, optimizer, layout
        for k, step in (("forward+backward", "train_on_batch"), ("infer", "predict")):
            mine = [r for r in rows if r["variant"] in (v, None) and r["kernel"] in k.split("+")]
            steps[f"{v}/{step}"] += (sum(r["share"] for r in mine),)
    return rows, steps


def _build(name, configs):
    """``bench_speed.build`` at the sizes of ``configs`` (it reads its module's table)."""
    saved = bench_speed.CONFIGS
    bench_speed.CONFIGS = configs
    try:
        return bench_speed.build(name)
    finally:
        bench_speed.CONFIGS = saved


# --- report -----------------------------------------------------------------------------------
def rate_columns(row, gemm, gemm_cpu, fma):
    """GFLOP/s from wall time and per CPU second, and their shares of the peaks."""
    g = row["flops"] / (row["ms"] * 1e-3) / 1e9
    row["gflops"] = g
    row["pct_gemm"] = 100 * g / gemm
    row["pct_fma"] = 100 * g / fma if fma else None
    row["gflops_cpu"] = row["flops"] / (max(row["cpu_ms"], 1e-6) * 1e-3) / 1e9
    row["pct_gemm_cpu"] = 100 * row["gflops_cpu"] / gemm_cpu
    return row


ORDER = ("forward", "forward.product", "forward.recurrence", "backward", "backward.product",
         "backward.recurrence", "weight_grads", "infer", "input_projection")  # fmt: skip


def is_part(r):
    """A part of the forward or backward listed above it (batch 1: the input projection too)."""
    batch1_projection = r["kernel"] == "input_projection" and r["shape"][1] < FM_MIN_BATCH
    return "." in r["kernel"] or r["kernel"] == "weight_grads" or batch1_projection


def _rank(r):
    if r["kernel"] == "input_projection" and r["shape"][1] < FM_MIN_BATCH:
        return ORDER.index("forward") + 0.5  # batch 1: part of the forward
    return ORDER.index(r["kernel"])


def ordered(rows):
    """Config by config (as run), layer by layer, each kernel's parts under it."""
    configs = list(dict.fromkeys(r["config"] for r in rows))
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    return sorted(rows, key=lambda r: (r["layer"] in ("GRU", "RNN"), configs.index(r["config"]),
                                       layers.index(r["layer"]), _rank(r)))  # fmt: skip


def print_rows(rows):
    head = (f"{'cfg':<4}{'variant':<8}{'kernel':<26}{'(T, B, D, H)':<20}{'thr':>4}{'calls':>6}"
            f"{'ms':>10}{'cpu ms':>10}{'GFLOP':>9}{'GFLOP/s':>9}{'%GEMM':>7}{'%FMA':>6}"
            f"{'%GEMMcpu':>9}{'%step':>7}")  # fmt: skip
    print(head)
    for r in ordered(rows):
        name = (f"{r['layer']}." if r["layer"] else "") + r["kernel"]
        if is_part(r):
            name = "  " + name  # a part of the forward or backward above it
        share = "-" if r["share"] is None else f"{100 * r['share']:.0f}"
        fma = "-" if r["pct_fma"] is None else f"{r['pct_fma']:.0f}"
        print(f"{r['config']:<4}{r['variant'] or '-':<8}{name:<26}{r['shape']!s:<20}"
              f"{r['threads']:>4}{r['calls']:>6}{r['ms']:>10.3f}{r['cpu_ms']:>10.3f}"
              f"{r['flops'] / 1e9:>9.4f}{r['gflops']:>9.1f}{r['pct_gemm']:>7.0f}{fma:>6}"
              f"{r['pct_gemm_cpu']:>9.0f}{share:>7}")  # fmt: skip


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="A,B,C,D,E", help="subset of bench_speed's A-E")
    p.add_argument("--threads", type=int, choices=(1, 2), default=1,
                   help="threads for BLAS and numba alike")  # fmt: skip
    p.add_argument("--kernel", default="auto",
                   help="micro-kernel variant(s): auto, all, or a comma list of avx512,avx2,generic")  # fmt: skip
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--cooldown", type=float, default=0.005, help="sleep before each timed call")
    p.add_argument("--cell-config", default="A", help="the config of the GRU and RNN rows")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 3 repeats (a smoke test)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    p.add_argument("--from-json", default=None, help="no timing: print the Markdown of a --json")
    return p.parse_args(argv)


def quick_configs():
    """``bench_speed.CONFIGS`` shrunk to a few steps and units (batch 1 kept at 1)."""
    return {k: (min(T, 4), B if B == 1 else min(B, 3), min(D, 5), min(H, 6), layers)
            for k, (T, B, D, H, layers) in bench_speed.CONFIGS.items()}  # fmt: skip


def pick_variants(arg):
    from lstmkit.ops import compiled

    if arg == "auto":
        return [compiled.kernel_variant()]
    if arg == "all":
        return compiled.runnable_variants()
    return [compiled.check_variant(v.strip(), "--kernel") for v in arg.split(",") if v.strip()]


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        only = None if args.kernel in ("auto", "all") else args.kernel.split(",")
        print(markdown(json.loads(Path(args.from_json).read_text()), only))
        return
    bench_speed.set_threads(args.threads)  # before NumPy, SciPy or numba load
    if args.quick:
        args.repeats, args.cooldown = 3, 0.0
    configs = quick_configs() if args.quick else bench_speed.CONFIGS
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(names) - set(configs))
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; choose from {sorted(configs)}")
    if args.cell_config not in configs:
        raise SystemExit(f"--cell-config: unknown {args.cell_config!r}; choose from {sorted(configs)}")  # fmt: skip
    import numpy as np

    from lstmkit.ops import compiled
    from lstmkit.ops.fast import common
    from lstmkit.ops.fast import lstm as fl

    assert fl.FM_MIN_BATCH == FM_MIN_BATCH, "lstmkit's batch threshold moved: update this file"
    try:
        variants = pick_variants(args.kernel)
    except ValueError as e:  # a variant this CPU cannot run, or no such variant
        raise SystemExit(f"kernel_share.py: {e}") from None
    cpu = cpu_info()
    env = {
        "cpu": cpu,
        "threads": args.threads,
        "kernel_variant_picked": compiled.kernel_variant(),
        "variants_runnable": compiled.runnable_variants(),
        "variants_timed": variants,
        "openblas_kernels": common.openblas_kernels(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "numpy": np.__version__,
        "repeats": args.repeats,
        "quick": args.quick,
        "load_average_before": os.getloadavg(),
    }
    gemm = bench_speed.gemm_rate(3 if args.quick else 10)
    # per CPU second: on a busy machine wall time also counts the waits for a core
    gemm_cpu = bench_speed.gemm_rate(3 if args.quick else 10, clock=time.process_time)
    fma, per_cycle, why = fma_peak(cpu, args.threads)
    drivers = _drivers()
    rows, steps = [], {}
    for name in names:
        r, s = bench_config(name, configs[name], configs, variants, args, drivers)
        rows += r
        steps[name] = s
        print(f"config {name} done", flush=True)
    T, B, D, H, _ = configs[args.cell_config]
    cells = cell_kernels(T, B, D, H)
    ctimes = time_all({k: (f, None) for k, (f, _) in cells.items()}, args.repeats, args.cooldown)
    for (cell, k), (f, threads) in cells.items():
        fl_ = rowmajor_flops(T, B, D, H, 3 if cell == "GRU" else 1)[k]
        ms, cpu_ms = ctimes[(cell, k)]
        rows.append({"config": args.cell_config, "variant": None, "layer": cell, "kernel": k,
                     "shape": (T, B, D, H), "need_dx": True, "calls": 0, "threads": threads,
                     "flops": fl_, "ms": ms, "cpu_ms": cpu_ms, "step": None, "step_ms": None,
                     "share": None})  # fmt: skip
    rows = [rate_columns(r, gemm, gemm_cpu, fma) for r in rows]
    env["load_average_after"] = os.getloadavg()
    report(env, (gemm, gemm_cpu), fma, per_cycle, why, rows, steps)
    if args.json:
        out = {"environment": env, "gemm_gflops": gemm, "gemm_gflops_per_cpu_s": gemm_cpu,
               "fma_peak_gflops": fma,
               "fma_flops_per_cycle": per_cycle, "fma_peak_basis": why, "steps_ms": steps,
               "kernels": rows}  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")
    if args.markdown:
        res = {"environment": env, "kernels": rows, "steps_ms": steps}
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(json.loads(json.dumps(res))) + "\n")
        print(f"wrote {args.markdown}")


def markdown(res, only=None):
    """The kernels of a ``--json`` result as one Markdown table, the variants side by side
    (``only``: these variants)."""
    variants = [v for v in res["environment"]["variants_timed"] if not only or v in only]
    rows = [r for r in res["kernels"] if r["variant"] is None or r["variant"] in variants]
    cols = " | ".join(f"{v}: ms (CPU ms) / GFLOP/s / % GEMM (CPU) / % FMA" for v in variants)
    out = [f"| config | kernel | (T, B, D, H) | thr | {cols} | % step (CPU) |",
           "|" + "---|" * (5 + len(variants))]  # fmt: skip
    seen = {}
    for r in ordered(rows):  # one line per (config, layer, kernel); variants in their columns
        seen.setdefault((r["config"], r["layer"], r["kernel"]), {})[r["variant"]] = r

    def share(r):  # of the step's wall time (and of its CPU time)
        if r["share"] is None:
            return None
        steps = res["steps_ms"][r["config"]]
        key = f"{r['variant']}/{r['step']}"
        key = key if key in steps else next(k for k in steps if k.endswith(f"/{r['step']}"))
        return f"{100 * r['share']:.0f} ({100 * r['calls'] * r['cpu_ms'] / steps[key][1]:.0f})"

    def cell(r):
        fma = "-" if r["pct_fma"] is None else f"{r['pct_fma']:.0f}"
        return (f"{r['ms']:.3g} ({r['cpu_ms']:.3g}) / {r['gflops']:.0f} / {r['pct_gemm']:.0f} "
                f"({r['pct_gemm_cpu']:.0f}) / {fma}")  # fmt: skip

    for (cfg, layer, kernel), by in seen.items():
        first = next(iter(by.values()))
        name = (f"{layer}." if layer else "") + kernel
        if is_part(first):
            name = "↳ " + name  # a part of the forward or backward above it
        if first["calls"] > 1:
            name += f" (x{first['calls']})"
        cells = [cell(by[v]) if v in by else "" for v in variants]
        if None in by:  # the same for every variant: once, in the first column
            cells = [cell(by[None])] + ["same"] * (len(variants) - 1)
        shares = [share(r) for r in by.values() if r["share"] is not None]
        shape = ", ".join(str(n) for n in first["shape"])
        out.append(f"| {cfg} | {name} | ({shape}) | {first['threads']} | " + " | ".join(cells)
                   + f" | {' / '.join(shares) or '-'} |")  # fmt: skip
    return "\n".join(out)


def report(env, gemms, fma, per_cycle, why, rows, steps):
    cpu = env["cpu"]
    gemm, gemm_cpu = gemms
    print(f"\nCPU: {cpu['model']} ({cpu['vendor']}, family {cpu['family']}); vector flags: "
          f"{' '.join(cpu['flags']) or 'none'}")  # fmt: skip
    print(f"lstmkit micro-kernel variant picked: {env['kernel_variant_picked']} (runnable: "
          f"{', '.join(env['variants_runnable'])}; timed: {', '.join(env['variants_timed'])})")  # fmt: skip
    print(f"OpenBLAS kernels: {env['openblas_kernels']} (OPENBLAS_CORETYPE="
          f"{env['OPENBLAS_CORETYPE']})")  # fmt: skip
    print(f"threads {env['threads']}; float32 GEMM 1024^3 in this run: {gemm:.0f} GFLOP/s wall, "
          f"{gemm_cpu:.0f} per CPU second")  # fmt: skip
    if fma:
        print(f"theoretical FMA peak: {fma:.0f} GFLOP/s = {env['threads']} x "
              f"{cpu['mhz']:.0f} MHz (nominal, /proc/cpuinfo) x {per_cycle} FLOP/cycle ({why})")  # fmt: skip
    else:
        print(f"theoretical FMA peak: no clock in /proc/cpuinfo ({per_cycle} FLOP/cycle: {why})")
    print("steps (wall ms, CPU ms, share of the recurrence kernels):")
    for n, s in steps.items():
        print(f"  {n}: " + "; ".join(f"{k} {w:.3f}, {c:.3f}, {100 * f:.0f}%"
                                     for k, (w, c, f) in s.items()))  # fmt: skip
    print("FLOPs: the products only (2 m n k); %step: calls x ms over the step's (train_on_batch;"
          " infer: predict); indented rows are parts of the row above\n")  # fmt: skip
    print_rows(rows)
    print(f"\nload average before {env['load_average_before']}, after {env['load_average_after']}")


if __name__ == "__main__":
    main()
