"""The per-step LSTM product, alone: OpenBLAS against the packed-weights micro-kernel.

    python benchmarks/bench_step_gemm.py [--threads 1]

Times the product every LSTM step makes, ``z_t = W.T (4H, 1+D+H) @ xh_t (1+D+H, B)`` (gates,
input, recurrent state and bias in one), for the issue-4 shapes, three ways: OpenBLAS ``sgemm``
row-major (``xh.T @ W``, numba's ``np.dot`` into a preallocated buffer), OpenBLAS feature-major
(``W.T @ xh``), and :func:`lstmkit.ops.fast.packed.matmul_packed` on weights packed once (what
the kernels run); microseconds per product and GFLOP/s, next to the 1024^3 GEMM rate.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot calls SciPy's BLAS)
    from numba import njit

    @njit
    def product(a, b, out):
        np.dot(a, b, out)

    @njit
    def repeat(f, a, b, out, n):
        for _ in range(n):
            f(a, b, out)

    def per_call(f, a, b, out):
        repeat(f, a, b, out, 3)
        t0 = time.perf_counter()
        repeat(f, a, b, out, args.calls)
        return (time.perf_counter() - t0) / args.calls

    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    out = np.empty_like(a)
    big = per_call(product, a, a, out)
    print(f"GEMM 1024^3: {2 * 1024**3 / big / 1e9:.0f} GFLOP/s, {args.threads} thread(s)")
    from lstmkit.ops.fast.packed import MR, kernels, matmul_packed, pack_rows, panels, variant

    print(f"packed micro-kernel variant: {variant()} (LSTMKIT_KERNEL to force another)")
    mk = kernels(np.float32)

    @njit
    def packed(Ap, x, z):
        matmul_packed(Ap, 0, z.shape[0], x, z, mk)

    print(f"{'config':<8}{'B':>4}{'K':>5}{'4H':>5}{'xh.T @ W':>14}{'W.T @ xh':>14}{'packed':>14}")
    shapes = {"A": (32, 32, 128), "B": (1, 8, 64), "C": (64, 64, 256), "D": (16, 16, 32)}
    for name, (B, D, H) in shapes.items():
        rng = np.random.default_rng(1)
        K = 1 + D + H
        xh = rng.standard_normal((K, B)).astype(np.float32)
        WT = rng.standard_normal((4 * H, K)).astype(np.float32)
        flops = 2 * B * K * 4 * H
        t_row = per_call(
            product, np.ascontiguousarray(xh.T), np.ascontiguousarray(WT.T),
            np.empty((B, 4 * H), np.float32),
        )  # fmt: skip
        t_col = per_call(product, WT, xh, np.empty((4 * H, B), np.float32))
        Ap = np.empty((panels(4 * H), K, MR), np.float32)
        pack_rows(WT, 0, 4 * H, Ap, 0)
        z = np.empty((4 * H, B), np.float32)
        t_pk = per_call(packed, Ap, xh, z)
        assert np.allclose(z, WT @ xh, rtol=1e-4, atol=1e-4)

        def cell(t, flops=flops):
            return f"{t * 1e6:6.1f} us {flops / t / 1e9:3.0f}G"

        print(f"{name:<8}{B:>4}{K:>5}{4 * H:>5}{cell(t_row):>14}{cell(t_col):>14}{cell(t_pk):>14}")


if __name__ == "__main__":
    main()
