"""Ops-level speed: the compiled LSTM against the NumPy reference, PyTorch and onnxruntime.

    python benchmarks/bench_ops.py                  # configs A-D, 2 threads everywhere
    python benchmarks/bench_ops.py --threads 1 --configs B,D --json out.json

Configs are (T, B, D, H), float32, time-major:
A (100, 32, 32, 128)  B (100, 1, 8, 64)  C (50, 64, 64, 256)  D (200, 16, 16, 32).

What is timed (milliseconds, median over ``--repeats`` rounds; the implementations are interleaved
round by round so a noisy neighbour hurts them all alike):

- train: forward + backward with dL/d(outputs) given. lstmkit computes every gradient (x, h0, c0,
  kernel, recurrent_kernel, bias); PyTorch ``nn.LSTM`` is asked for the same (x, h0 and c0 require
  grad) and runs oneDNN's fused RNN kernel.
- infer: lstmkit ``lstm_infer`` (no cache) and ``lstm_forward`` (with the training cache), PyTorch
  under ``torch.no_grad()``, onnxruntime's ``LSTM`` operator (a one-node model built with
  ``onnx.helper``, weights as initializers).

Rounds are interleaved, and each timed call follows a short sleep (``--cooldown``) and one untimed
call of the same contender: OpenMP (PyTorch) and onnxruntime keep their worker threads spinning
for a while after each call, which would otherwise steal a core from whichever contender runs next
in the same process (and inflate its process CPU time, reported in the JSON as ``cpu_ms``); the
untimed call re-warms the caches. So the figures are warm, back-to-back-call figures.

Threads: ``--threads N`` sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS /
LSTMKIT_NUM_THREADS before NumPy, SciPy (whose OpenBLAS numba's ``np.dot`` calls) or torch load,
``torch.set_num_threads(N)`` and onnxruntime's ``intra_op_num_threads = N``: every contender gets
the same N. (lstmkit spends them on batch rows: each thread runs the time loop for its slice of the
batch with single-threaded BLAS; see ``lstmkit/ops/fast/common.py``.) Every result is
checked against the reference before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

CONFIGS = {
    "A": (100, 32, 32, 128),
    "B": (100, 1, 8, 64),
    "C": (50, 64, 64, 256),
    "D": (200, 16, 16, 32),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="A,B,C,D", help="comma-separated subset of A,B,C,D")
    p.add_argument("--threads", type=int, default=2, help="threads for every contender")
    p.add_argument("--repeats", type=int, default=30, help="timed rounds per implementation")
    p.add_argument("--no-reference", action="store_true", help="skip the slow NumPy reference")
    p.add_argument(
        "--cooldown",
        type=float,
        default=0.02,
        help="seconds of sleep before each timed call (lets other libraries' spinning threads rest)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # thread pools read these once, at library load: set them before any import
    for var in (
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "LSTMKIT_NUM_THREADS",
    ):
        os.environ[var] = str(ARGS.threads)

import numpy as np


def make_problem(T, B, D, H, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    p = {
        "x": rng.standard_normal((T, B, D)),
        "h0": 0.5 * rng.standard_normal((B, H)),
        "c0": 0.5 * rng.standard_normal((B, H)),
        "kernel": rng.uniform(-s, s, (D, 4 * H)),
        "recurrent_kernel": rng.uniform(-s, s, (H, 4 * H)),
        "bias": rng.uniform(-s, s, 4 * H),
        "dhs": rng.standard_normal((T, B, H)),
    }
    return {k: v.astype(dtype) for k, v in p.items()}


def torch_lstm(p, threads):
    import torch

    torch.set_num_threads(threads)
    D, H = p["kernel"].shape[0], p["h0"].shape[1]
    lstm = torch.nn.LSTM(D, H)  # PyTorch's gate order i, f, g, o equals Keras's
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(p["kernel"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(p["recurrent_kernel"].T.copy()))
        # Both bias vectors non-zero (STYLE 9): their sum is lstmkit's bias.
        lstm.bias_ih_l0.copy_(torch.from_numpy(0.25 * p["bias"]))
        lstm.bias_hh_l0.copy_(torch.from_numpy(0.75 * p["bias"]))
    x = torch.from_numpy(p["x"])
    h0 = torch.from_numpy(p["h0"])[None]
    c0 = torch.from_numpy(p["c0"])[None]
    dhs = torch.from_numpy(p["dhs"])

    def train():
        xg, hg, cg = (t.detach().requires_grad_(True) for t in (x, h0, c0))
        for q in lstm.parameters():
            q.grad = None
        out, _ = lstm(xg, (hg, cg))
        out.backward(dhs)
        return out, xg.grad

    def infer():
        with torch.no_grad():
            return lstm(x, (h0, c0))[0]

    return train, infer


def onnx_lstm(p, threads):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    D, H = p["kernel"].shape[0], p["h0"].shape[1]
    T, B, _ = p["x"].shape

    def iofc(a):  # (..., 4H) blocks i, f, g, o -> ONNX's i, o, f, c
        i, f, g, o = np.split(a, 4, axis=-1)
        return np.concatenate([i, o, f, g], axis=-1)

    inits = [
        numpy_helper.from_array(iofc(p["kernel"]).T[None].copy(), "W"),  # (1, 4H, D)
        numpy_helper.from_array(iofc(p["recurrent_kernel"]).T[None].copy(), "R"),  # (1, 4H, H)
        numpy_helper.from_array(  # Wb + Rb, both non-zero
            np.concatenate([0.25 * iofc(p["bias"]), 0.75 * iofc(p["bias"])])[None], "B"
        ),
    ]
    node = helper.make_node(
        "LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h", "Y_c"], hidden_size=H
    )
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "lstm",
        [
            helper.make_tensor_value_info("X", f32, [T, B, D]),
            helper.make_tensor_value_info("h0", f32, [1, B, H]),
            helper.make_tensor_value_info("c0", f32, [1, B, H]),
        ],
        [helper.make_tensor_value_info("Y", f32, [T, 1, B, H])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"X": p["x"], "h0": p["h0"][None], "c0": p["c0"][None]}

    def infer():
        return sess.run(["Y"], feeds)[0][:, 0]

    return infer


def median_ms(times):
    return float(np.median(times) * 1e3)


def bench_config(name, threads, repeats, with_reference, cooldown=0.02):
    from lstmkit.ops import lstm as ref
    from lstmkit.ops.fast import lstm as fast

    T, B, D, H = CONFIGS[name]
    p = make_problem(T, B, D, H)
    args = (p["x"], p["h0"], p["c0"], p["kernel"], p["recurrent_kernel"], p["bias"])

    def fast_train():
        hs, _, cache = fast.lstm_forward(*args)
        return hs, fast.lstm_backward(p["dhs"], None, None, cache)

    def ref_train():
        hs, _, cache = ref.lstm_forward(*args)
        return hs, ref.lstm_backward(p["dhs"], None, None, cache)

    torch_train, torch_infer = torch_lstm(p, threads)
    ort_infer = onnx_lstm(p, threads)

    # Witnesses before timing: everything agrees with the NumPy reference (max abs difference,
    # relative to the largest magnitude when that exceeds 1: float32 sums of 3200 terms).
    hs_ref, g_ref = ref_train()
    hs_fast, g_fast = fast_train()
    out_t, dx_t = torch_train()

    def diff(a, b):
        return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))

    checks = {
        "fast_hs": diff(hs_fast, hs_ref),
        "fast_grads": max(diff(g_fast[k], g_ref[k]) for k in g_ref),
        "infer_hs": diff(fast.lstm_infer(*args)[0], hs_ref),
        "torch_hs": diff(out_t.detach().numpy(), hs_ref),
        "torch_dx": diff(dx_t.numpy(), g_ref["x"]),
        "ort_hs": diff(ort_infer(), hs_ref),
    }
    for k, v in checks.items():
        assert v < 1e-4, f"config {name}: {k} differs from the reference by {v}"

    contenders = {
        "fast_train": fast_train,
        "torch_train": torch_train,
        "fast_infer": lambda: fast.lstm_infer(*args),
        "fast_forward": lambda: fast.lstm_forward(*args),
        "ort_infer": ort_infer,
        "torch_infer": torch_infer,
    }
    if with_reference:
        contenders["ref_train"] = ref_train
        contenders["ref_forward"] = lambda: ref.lstm_forward(*args)
    times = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    for f in contenders.values():  # warm-up (compilation, oneDNN primitive creation)
        f()
        f()
    for r in range(repeats):
        for k, f in contenders.items():
            if k.startswith("ref_") and r >= max(5, repeats // 4):
                continue  # the reference is slow and steady: fewer rounds suffice
            time.sleep(cooldown)  # see the module docstring
            f()  # untimed: warms the caches the sleep let other processes take
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    ms = {k: median_ms(v) for k, v in times.items()}
    # CPU time of the whole process (all threads): on a busy machine wall time also counts the
    # waits for a core, CPU time does not.
    ms["cpu_ms"] = {k: median_ms(v) for k, v in cpu.items()}
    ms["train_vs_torch"] = ms["fast_train"] / ms["torch_train"]
    ms["infer_vs_ort"] = ms["fast_infer"] / ms["ort_infer"]
    ms["max_abs_diff"] = {k: float(v) for k, v in checks.items()}
    return ms


def first_call_latency():
    """Seconds for the first fast train step in a fresh process: cold (compiling, no numba
    on-disk cache) and warm (cache present). Runs subprocesses with a private cache dir."""
    import subprocess
    import tempfile

    code = (
        "import time; t0 = time.perf_counter();"
        "import numpy as np; from lstmkit.ops.fast import lstm as f;"
        "x = np.ones((3, 2, 4), np.float32); h = np.zeros((2, 5), np.float32);"
        "W = np.ones((4, 20), np.float32) * .1; U = np.ones((5, 20), np.float32) * .1;"
        "b = np.zeros(20, np.float32);"
        "hs, _, c = f.lstm_forward(x, h, h, W, U, b); f.lstm_backward(hs, None, None, c);"
        "f.lstm_infer(x, h, h, W, U, b);"
        "print(time.perf_counter() - t0)"
    )
    out = {}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        for label in ("cold", "warm"):
            r = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out[label] = float(r.stdout.strip())
    return out


def main():
    args = ARGS or parse_args()
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    import numba
    import onnxruntime
    import torch

    env = {
        "threads": args.threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpu": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "load_average_before": os.getloadavg(),
    }
    results = {}
    for name in names:
        results[name] = bench_config(
            name, args.threads, args.repeats, not args.no_reference, args.cooldown
        )
    latency = first_call_latency()

    cols = ["fast_train", "torch_train", "train_vs_torch", "fast_infer", "fast_forward"]
    cols += ["ort_infer", "infer_vs_ort", "torch_infer"]
    if not args.no_reference:
        cols += ["ref_train", "ref_forward"]
    env["load_average_after"] = os.getloadavg()
    print(
        f"lstm float32, {args.threads} thread(s), median wall ms of {args.repeats} rounds "
        f"(load average {env['load_average_before'][0]:.1f} before, "
        f"{env['load_average_after'][0]:.1f} after on {os.cpu_count()} CPUs)"
    )
    print(f"{'cfg':<4}{'(T, B, D, H)':<20}" + "".join(f"{c:>15}" for c in cols))
    for name, r in results.items():
        row = f"{name:<4}{CONFIGS[name]!s:<20}"
        for c in cols:
            row += f"{r[c]:>14.2f}x" if c.endswith(("_torch", "_ort")) else f"{r[c]:>15.3f}"
        print(row)
    print(
        f"first call (forward+backward+infer, fresh process): cold {latency['cold']:.2f} s "
        f"(compiling), warm {latency['warm']:.2f} s (numba on-disk cache)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"env": env, "configs": CONFIGS, "results": results, "first_call_s": latency},
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
