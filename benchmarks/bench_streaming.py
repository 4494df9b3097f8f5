"""Streaming latency: one LSTM time step, lstmkit against PyTorch and onnxruntime.

    python benchmarks/bench_streaming.py                    # configs S, M, L; 1 thread everywhere
    python benchmarks/bench_streaming.py --threads 2 --configs M --json out.json

Configs are (B, D, H), float32: S (1, 8, 64)  M (1, 32, 128)  L (16, 64, 256). Every contender
takes ``x_t (B, D)`` and the state ``(h, c)`` and returns the new ``h`` and ``c``:

- ``model.step``: ``Sequential.step`` of a one-layer lstmkit model (the layer's ``step``, hence
  ``lstmkit.ops`` ``lstm_step`` of the active backend, plus input checks);
- ``runtime.step``: the same through :mod:`lstmkit.runtime` (``RuntimeModel.step``);
- ``ops.lstm_step``: the bare cell function of each backend (the floor under the two above);
- ``torch LSTMCell`` / ``torch LSTM T=1``: ``nn.LSTMCell`` and ``nn.LSTM`` on a length-1
  sequence, with autograd switched off (``torch.set_grad_enabled(False)``);
- ``onnxruntime T=1``: the model exported with ``to_onnx(streaming=True)``, one ``run`` with a
  length-1 sequence and ``initial_h``/``initial_c`` fed back.

Timing: microseconds per step, median over ``--rounds`` rounds of ``--steps`` steps; contenders are
interleaved round by round so that noise hits all alike. ``--threads N`` sets the BLAS/OpenMP
variables before NumPy or torch load, ``torch.set_num_threads(N)`` and onnxruntime's
``intra_op_num_threads``. Before timing, every contender's state after ``--steps`` steps is checked
against lstmkit's full-sequence forward.

Then the runtime's footprint, each number from a fresh interpreter: time to
``import lstmkit.runtime``, to ``load`` + first ``predict``, and the peak RSS, against the full
``lstmkit.load_model`` path, for each backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CONFIGS = {"S": (1, 8, 64), "M": (1, 32, 128), "L": (16, 64, 256)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="S,M,L", help="comma-separated subset of S,M,L")
    p.add_argument("--threads", type=int, default=1, help="threads for every contender")
    p.add_argument("--rounds", type=int, default=30, help="timed rounds")
    p.add_argument("--steps", type=int, default=100, help="steps per round")
    p.add_argument("--no-footprint", action="store_true", help="skip the runtime footprint")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # thread pools read these once, at library load
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np


def contenders(B, D, H, threads, tmp):
    """name -> (step(x_t, state) -> state, initial state, state -> (h, c) as NumPy)."""
    import onnxruntime as ort
    import torch

    from lstmkit import LSTM, Sequential, runtime
    from lstmkit.interop.onnx import to_onnx
    from lstmkit.interop.torch import to_torch
    from lstmkit.ops import backend

    model = Sequential([LSTM(H, return_sequences=True, input_shape=(None, D), name="lstm")])
    rng = np.random.default_rng(0)
    for p in model.params.values():
        p[...] = rng.uniform(-1, 1, p.shape) / np.sqrt(H)
    path = os.path.join(tmp, f"lstm_{B}_{D}_{H}.lstmkit")
    model.save(path)
    rt = runtime.load(path)
    zeros = np.zeros((B, H), np.float32)
    out = {}

    out["model.step"] = (lambda x, s: model.step(x, s)[1], None, lambda s: s[0])
    out["runtime.step"] = (lambda x, s: rt.step(x, s)[1], None, lambda s: s[0])
    p = model.layers[0].params
    K, U, b = p["kernel"], p["recurrent_kernel"], p["bias"]
    for name in ("numpy", "numba"):
        try:
            step = backend.ops_for("lstm", name).step
        except ImportError:
            continue
        out[f"ops.lstm_step ({name})"] = (
            lambda x, s, step=step: step(x, s[0], s[1], K, U, b),
            (zeros, zeros),
            lambda s: s,
        )

    torch.set_num_threads(threads)
    net = to_torch(model)[0]  # nn.LSTM(batch_first=True) holding the same weights
    cell = torch.nn.LSTMCell(D, H)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(net, n + "_l0"))
    tz = torch.zeros(B, H)

    # autograd off once for the whole process, as a streaming service would run (a per-step
    # `with torch.inference_mode():` would add several microseconds to every step)
    torch.set_grad_enabled(False)

    def torch_cell(x, s):
        return cell(torch.from_numpy(x), s)

    def torch_lstm(x, s):
        return net(torch.from_numpy(x)[:, None], s)[1]

    as_np = lambda s: tuple(t.numpy() for t in s)
    out["torch LSTMCell"] = (torch_cell, (tz, tz), as_np)
    out["torch LSTM T=1"] = (
        torch_lstm,
        (tz[None], tz[None]),
        lambda s: (s[0][0].numpy(), s[1][0].numpy()),
    )

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        to_onnx(model, streaming=True).SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    z3 = np.zeros((1, B, H), np.float32)

    def ort_step(x, s):
        _, h, c = sess.run(None, {"x": x[:, None], "lstm.h0": s[0], "lstm.c0": s[1]})
        return h, c

    out["onnxruntime T=1"] = (ort_step, (z3, z3), lambda s: (s[0][0], s[1][0]))
    return model, out


def bench_config(name, args, tmp):
    B, D, H = CONFIGS[name]
    model, cands = contenders(B, D, H, args.threads, tmp)
    xs = np.random.default_rng(1).standard_normal((B, args.steps, D)).astype(np.float32)
    # witness: the state after all steps equals the full-sequence forward's last output
    hs = model.predict(xs)
    checks = {}
    for k, (step, s0, to_np) in cands.items():
        s = s0
        for t in range(args.steps):
            s = step(xs[:, t], s)
        checks[k] = float(np.abs(to_np(s)[0] - hs[:, -1]).max())
        assert checks[k] < 1e-4, f"config {name}: {k} differs from the forward by {checks[k]}"
    times = {k: [] for k in cands}
    for _ in range(args.rounds):
        for k, (step, s0, _) in cands.items():
            s = s0
            t0 = time.perf_counter()
            for t in range(args.steps):
                s = step(xs[:, t], s)
            times[k].append((time.perf_counter() - t0) / args.steps * 1e6)
    return {
        k: {"median_us": float(np.median(v)), "p90_us": float(np.percentile(v, 90))}
        for k, v in times.items()
    } | {"max_abs_diff": checks}


# Peak RSS from /proc/self/status VmHWM: unlike ru_maxrss it starts afresh at exec (ru_maxrss
# would report the forking parent's peak, torch and all).
PEAK_RSS = """
def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

FOOTPRINT = (
    PEAK_RSS
    + """
import sys, time, json
t0 = time.perf_counter()
if sys.argv[1] == "runtime":
    import lstmkit.runtime as m
    load = m.load
else:
    from lstmkit.saving import load_model as load
t1 = time.perf_counter()
import numpy as np
model = load(sys.argv[2])
model.predict(np.zeros((1, 20, 8), np.float32))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_predict_s": t2 - t1,
                  "peak_rss_mb": peak_rss_mb(),
                  "modules": len(sys.modules)}))
"""
)


def footprint(tmp):
    from lstmkit import LSTM, Dense, Sequential

    model = Sequential([LSTM(64, input_shape=(20, 8)), Dense(1)])
    path = os.path.join(tmp, "fp.lstmkit")
    model.save(path)
    base = subprocess.run(
        [sys.executable, "-c", PEAK_RSS + "import numpy\nprint(peak_rss_mb())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = {"numpy alone": {"peak_rss_mb": float(base.stdout)}}
    for backend_name in ("numpy", "auto"):
        for kind in ("runtime", "load_model"):
            runs = []
            for _ in range(3):  # median of three fresh processes
                env = dict(os.environ, LSTMKIT_BACKEND=backend_name)
                r = subprocess.run(
                    [sys.executable, "-c", FOOTPRINT, kind, path],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs.append(json.loads(r.stdout))
            rows[f"{kind} [{backend_name}]"] = {
                k: float(np.median([r[k] for r in runs])) for k in runs[0]
            }
    return rows


def main():
    args = ARGS or parse_args()
    import onnxruntime
    import torch

    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    env = {
        "threads": args.threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results[name] = bench_config(name, args, tmp)
        fp = None if args.no_footprint else footprint(tmp)

    print(
        f"LSTM step latency, float32, {args.threads} thread(s): median us per step over "
        f"{args.rounds} rounds x {args.steps} steps (ratio = time / model.step)"
    )
    for name, r in results.items():
        print(f"\n{name} (B, D, H) = {CONFIGS[name]}")
        print(f"  {'contender':<24}{'median us':>11}{'p90 us':>10}{'ratio':>8}{'max diff':>11}")
        ref = r["model.step"]["median_us"]
        for k, v in r.items():
            if k == "max_abs_diff":
                continue
            print(
                f"  {k:<24}{v['median_us']:>11.1f}{v['p90_us']:>10.1f}"
                f"{v['median_us'] / ref:>8.2f}{r['max_abs_diff'][k]:>11.1e}"
            )
    if fp:
        print("\nruntime footprint (fresh interpreter, median of 3): model LSTM(64) + Dense(1)")
        print(f"  {'path [backend]':<24}{'import s':>10}{'load+predict s':>16}{'peak RSS MB':>13}")
        for k, v in fp.items():
            imp = f"{v['import_s']:.3f}" if "import_s" in v else "-"
            lp = f"{v['load_predict_s']:.3f}" if "load_predict_s" in v else "-"
            print(f"  {k:<24}{imp:>10}{lp:>16}{v['peak_rss_mb']:>13.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"env": env, "configs": CONFIGS, "results": results, "footprint": fp}, fh, indent=2
            )


if __name__ == "__main__":
    main()
