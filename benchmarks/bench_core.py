"""Forward and forward+backward time of an lstmkit LSTM layer against PyTorch nn.LSTM (CPU).

Same process, same thread count, float32, median of repeated runs. Configs (T, B, D, H):
A (100,32,32,128), B (100,1,8,64), C (50,64,64,256), D (200,16,16,32).

    python benchmarks/bench_core.py [--threads 2] [--repeat 30] [--backend numpy|numba|auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

CONFIGS = {
    "A": (100, 32, 32, 128),
    "B": (100, 1, 8, 64),
    "C": (50, 64, 64, 256),
    "D": (200, 16, 16, 32),
}


def median_ms(fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def measure(LSTM, torch, np, T, B, D, H, repeat):
    """Median ms of forward and forward+backward for one config, lstmkit and PyTorch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    layer = LSTM(H, return_sequences=True)
    layer.build((T, D))

    def lk_fwd():
        layer.forward(x)

    def lk_fb():
        _, cache = layer.forward(x, training=True)
        layer.backward(dy, cache)

    m = torch.nn.LSTM(D, H, batch_first=True)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

    def t_fwd():
        with torch.no_grad():
            m(xt)

    def t_fb():
        m.zero_grad(set_to_none=True)
        out, _ = m(xt.detach().requires_grad_(True))  # lstmkit returns dx too
        out.backward(dyt)

    return {
        "lstmkit_fwd_ms": median_ms(lk_fwd, repeat),
        "torch_fwd_ms": median_ms(t_fwd, repeat),
        "lstmkit_fwdbwd_ms": median_ms(lk_fb, repeat),
        "torch_fwdbwd_ms": median_ms(t_fb, repeat),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--backend", default=None, help="lstmkit ops backend (default: auto)")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    args = ap.parse_args(argv)
    # BLAS threads must be set before NumPy loads its BLAS
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    from lstmkit.layers import LSTM
    from lstmkit.ops import backend

    if args.backend:
        backend.set_backend(args.backend)
    torch.set_num_threads(args.threads)
    rows = []
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"{args.threads} threads, torch {torch.__version__}, numpy {np.__version__}, "
        f"lstmkit backend {getattr(backend, 'get_backend', lambda: 'numpy')()}"
    )
    print(
        f"{'cfg':<4}{'T,B,D,H':<18}{'lstmkit fwd':>12}{'torch fwd':>11}{'ratio':>7}"
        f"{'lstmkit f+b':>13}{'torch f+b':>11}{'ratio':>7}"
    )
    for name, (T, B, D, H) in CONFIGS.items():
        r = {"config": name, "T": T, "B": B, "D": D, "H": H}
        r.update(measure(LSTM, torch, np, T, B, D, H, args.repeat))
        r["fwd_ratio"] = r["lstmkit_fwd_ms"] / r["torch_fwd_ms"]
        r["fwdbwd_ratio"] = r["lstmkit_fwdbwd_ms"] / r["torch_fwdbwd_ms"]
        rows.append(r)
        print(
            f"{name:<4}{f'{T},{B},{D},{H}':<18}{r['lstmkit_fwd_ms']:>10.2f}ms"
            f"{r['torch_fwd_ms']:>9.2f}ms{r['fwd_ratio']:>7.2f}{r['lstmkit_fwdbwd_ms']:>11.2f}ms"
            f"{r['torch_fwdbwd_ms']:>9.2f}ms{r['fwdbwd_ratio']:>7.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
