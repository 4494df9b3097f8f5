"""The per-step recurrent product, alone: why configs A and C miss the speed targets.

    python benchmarks/bench_step_gemm.py [--threads 1]

Times ``h (B, H) @ U (H, 4H)`` as the compiled time loop calls it (numba's ``np.dot`` into a
preallocated buffer: OpenBLAS ``sgemm``), the same product in the transposed orientation
``U.T (4H, H) @ h.T (H, B)``, and a hand-written numba loop over a pre-packed ``U``, for the
issue-4 shapes; prints microseconds per product and GFLOP/s, next to the 1024^3 GEMM rate.
Compare with onnxruntime's whole LSTM step (``bench_speed.py``: A ~61 us per step at 1 thread,
input projection and gates included).
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

    @njit(fastmath=True)
    def packed(h, P, out):  # P (4H / 16, H, 16): column panels of U, contiguous per panel
        B, H = h.shape
        for r in range(B):
            for jb in range(P.shape[0]):
                acc = np.zeros(16, np.float32)
                for k in range(H):
                    hk = h[r, k]
                    for j in range(16):
                        acc[j] += hk * P[jb, k, j]
                out[r, jb * 16 : jb * 16 + 16] = acc

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
    print(f"{'config':<8}{'B':>4}{'H':>5}{'h @ U':>14}{'U.T @ h.T':>14}{'packed numba':>16}")
    for name, (B, H) in {"A": (32, 128), "B": (1, 64), "C": (64, 256), "D": (16, 32)}.items():
        rng = np.random.default_rng(1)
        h = rng.standard_normal((B, H)).astype(np.float32)
        U = rng.standard_normal((H, 4 * H)).astype(np.float32)
        flops = 2 * B * H * 4 * H
        t_row = per_call(product, h, U, np.empty((B, 4 * H), np.float32))
        t_col = per_call(
            product, np.ascontiguousarray(U.T), np.ascontiguousarray(h.T),
            np.empty((4 * H, B), np.float32),
        )  # fmt: skip
        P = np.ascontiguousarray(U.reshape(H, 4 * H // 16, 16).transpose(1, 0, 2))
        z = np.empty((B, 4 * H), np.float32)
        t_pk = per_call(packed, h, P, z)
        assert np.allclose(z, h @ U, rtol=1e-3, atol=1e-3)

        def cell(t, flops=flops):
            return f"{t * 1e6:6.1f} us {flops / t / 1e9:3.0f}G"

        print(f"{name:<8}{B:>4}{H:>5}{cell(t_row):>14}{cell(t_col):>14}{cell(t_pk):>16}")


if __name__ == "__main__":
    main()
