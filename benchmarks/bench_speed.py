"""Speed through the public API: lstmkit ``predict`` / ``train_on_batch`` against PyTorch and
onnxruntime, side by side in one process, with the GEMM rate of the same run.

    python benchmarks/bench_speed.py --threads 1 --json out/bench/speed_t1.json
    python benchmarks/bench_speed.py --threads 2 --configs A,C,E --repeats 50

Configs ``(T, B, D, H)``, float32, batch-first as users call it: A (100, 32, 32, 128),
B (100, 1, 8, 64), C (50, 64, 64, 256), D (200, 16, 16, 32), and E = A with two stacked
bidirectional LSTM layers (``Bidirectional(LSTM(128, return_sequences=True))`` x 2).

What is timed (wall milliseconds, median of ``--repeats`` rounds; contenders interleaved round by
round, each timed call after a short sleep and one untimed call; see ``bench_ops.py`` for why):

- train: lstmkit ``model.train_on_batch(x, y)`` (loss ``"mse"``, ``SGD``; the model is just the
  LSTM layer(s) with ``return_sequences=True``, ``y (B, T, H)``) against PyTorch doing the same
  step: ``zero_grad``, forward, ``mse_loss``, ``backward``, ``SGD.step`` (oneDNN's fused LSTM).
  lstmkit also with the NumPy reference backend (``LSTMKIT_BACKEND=numpy``).
- infer: lstmkit ``model.predict(x, batch_size=B)`` against an onnxruntime session's ``run`` of
  the same model exported with ``lstmkit.interop.onnx.to_onnx`` (a standard ``LSTM`` operator)
  and PyTorch under ``torch.no_grad()`` (the model from ``lstmkit.interop.torch.to_torch``).
- GEMM: ``np.matmul`` of two float32 1024 x 1024 matrices (NumPy's OpenBLAS) in the same run;
  each contender's arithmetic rate is reported as a share of it. An LSTM layer's forward costs
  ``2 * T * B * 4H * (D + H)`` flops per direction; a training step about three times that.
- memory (``--memory``): peak resident memory added by one training step, in a fresh process per
  contender after two warm-up steps (Linux: ``/proc/self/clear_refs`` resets ``VmHWM``; glibc's
  ``MALLOC_MMAP_THRESHOLD_`` is fixed at 64 KiB so freed arrays go back to the system in both
  libraries and the figure is the true high-water mark).
- first call (``--first-call``; ``--first-call-only`` runs nothing else): seconds from a fresh
  process's start to the end of its first ``train_on_batch`` at config A, in a fresh virtual
  environment installed from the wheel of this checkout (no extras; ``--first-call-venv PATH``
  reuses one), in turn: cold (empty ``LSTMKIT_CACHE_DIR``: the NumPy reference runs while a
  background process compiles), warm (once that process is done: the kernels load from the
  cache) and the old behaviour (``LSTMKIT_COMPILE=now``, empty cache: compiled in the process);
  and ``lstmkit forecast demo`` cold, whole command. See ``lstmkit.ops.compiled``.

All contenders get the same thread count (``--threads``: BLAS, numba, ``torch.set_num_threads``,
onnxruntime ``intra_op_num_threads``). Outputs are checked against each other before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    "A": (100, 32, 32, 128, 1),
    "B": (100, 1, 8, 64, 1),
    "C": (50, 64, 64, 256, 1),
    "D": (200, 16, 16, 32, 1),
    "E": (100, 32, 32, 128, 2),  # two stacked bidirectional layers
}
TARGETS = {  # issue 20 (was issue 4's 1.0 / 1.5): train vs PyTorch, infer vs onnxruntime
    "train_vs_torch": {"A": 0.9, "B": 0.9, "C": 0.9, "D": 0.9, "E": 0.9},
    "infer_vs_ort": {"A": 1.0, "B": 1.25, "C": 1.0, "D": 1.25},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="A,B,C,D,E")
    p.add_argument("--threads", type=int, default=1, help="threads for every contender")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--cooldown", type=float, default=0.01, help="sleep before each timed call")
    p.add_argument("--no-reference", action="store_true", help="skip the NumPy reference")
    p.add_argument("--memory", action="store_true", help="peak memory of a training step")
    p.add_argument("--first-call", action="store_true", help="first-call latency (subprocesses)")
    p.add_argument("--first-call-only", action="store_true", help="only the first-call latency")
    p.add_argument("--first-call-venv", default=None, help="a venv with the wheel installed")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["LSTMKIT_NUM_THREADS"] = str(n)
    os.environ["NUMBA_NUM_THREADS"] = str(max(n, 1))


# -- the problem, three ways ---------------------------------------------------------------------
def build(name, seed=0):
    """lstmkit model (compiled: mse + SGD), x, y for config ``name``."""
    import numpy as np

    import lstmkit
    from lstmkit.layers import LSTM, Bidirectional
    from lstmkit.optimizers import SGD

    T, B, D, H, layers = CONFIGS[name]
    lstmkit.set_random_seed(seed)
    if layers == 1:
        model = lstmkit.Sequential([LSTM(H, return_sequences=True, input_shape=(T, D))])
        out = H
    else:
        model = lstmkit.Sequential(
            [Bidirectional(LSTM(H, return_sequences=True), input_shape=(T, D))]
            + [Bidirectional(LSTM(H, return_sequences=True)) for _ in range(layers - 1)]
        )
        out = 2 * H
    model.build()
    for layer in model.layers:  # a non-zero bias, so a dropped bias would show in the checks
        for k, v in layer.params.items():
            if k.endswith("bias"):
                v[...] = np.random.default_rng(seed + 1).uniform(-0.1, 0.1, v.shape)
    model.compile(SGD(0.01), "mse", seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    y = rng.standard_normal((B, T, out)).astype(np.float32)
    return model, x, y


def flops(name):
    T, B, D, H, layers = CONFIGS[name]
    dirs = 1 if layers == 1 else 2
    fwd = 0
    for k in range(layers):
        d_in = D if k == 0 else dirs * H
        fwd += dirs * 2 * T * B * 4 * H * (d_in + H)
    return fwd, 3 * fwd


def torch_contenders(model, x, y, threads):
    import torch

    from lstmkit.interop.torch import to_torch

    torch.set_num_threads(threads)
    net = to_torch(model)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def train():
        net.train()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(X), Y)
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        net.eval()
        with torch.no_grad():
            return net(X).numpy()

    return train, infer


def ort_contender(model, x, threads):
    import onnxruntime as ort

    from lstmkit.interop.onnx import to_onnx

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        to_onnx(model).SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    out = sess.get_outputs()[0].name

    def infer():
        return sess.run([out], {name: x})[0]

    return infer


def gemm_rate(repeats=10, clock=time.perf_counter):
    """GFLOP/s of a float32 1024^3 ``np.matmul`` (median), per second of ``clock`` (wall time by
    default; ``time.process_time``: per CPU second of the process, all its threads)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    b = a.T.copy()
    a @ b
    ts = []
    for _ in range(repeats):
        t0 = clock()
        a @ b
        ts.append(clock() - t0)
    return 2 * 1024**3 / float(np.median(ts)) / 1e9


# -- timing ------------------------------------------------------------------------------------
def bench_config(name, args):
    import numpy as np

    from lstmkit.ops import backend

    model, x, y = build(name)
    B = x.shape[0]
    t_train, t_infer = torch_contenders(model, x, y, args.threads)
    o_infer = ort_contender(model, x, args.threads)

    def on(backend_name, f):
        def run():
            before = backend.get_backend()
            backend.set_backend(backend_name)
            try:
                return f()
            finally:
                backend.set_backend(before)

        return run

    def predict():
        return model.predict(x, batch_size=B)

    def train():
        return model.train_on_batch(x, y)

    # witnesses: every inference agrees (training changes weights, so it is checked first on a
    # copy of the starting point: the first loss of each library from the same weights)
    ref = on("numpy", predict)()
    for label, got in (("fast", on("numba", predict)()), ("ort", o_infer()), ("torch", t_infer())):
        d = float(np.abs(got - ref).max())
        assert d < 1e-4, f"config {name}: {label} inference differs from the reference by {d}"
    w0 = model.get_weights()
    lk_loss, th_loss = train(), t_train()
    assert abs(lk_loss - th_loss) < 1e-5 * max(1.0, th_loss), (name, lk_loss, th_loss)
    model.set_weights(w0)

    contenders = {
        "lstmkit_train": on("numba", train),
        "torch_train": t_train,
        "lstmkit_predict": on("numba", predict),
        "ort_infer": o_infer,
        "torch_infer": t_infer,
    }
    if not args.no_reference:
        contenders["reference_train"] = on("numpy", train)
        contenders["reference_predict"] = on("numpy", predict)
    for f in contenders.values():  # warm-up: compilation, oneDNN primitives, allocator
        f()
        f()
    times = {k: [] for k in contenders}
    for r in range(args.repeats):
        for k, f in contenders.items():
            if k.startswith("reference") and r >= max(5, args.repeats // 4):
                continue  # slow and steady: fewer rounds suffice
            time.sleep(args.cooldown)
            f()
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    fwd, step = flops(name)
    res = {"ms": ms, "flops_forward": fwd, "flops_train": step}
    res["train_vs_torch"] = ms["lstmkit_train"] / ms["torch_train"]
    res["infer_vs_ort"] = ms["lstmkit_predict"] / ms["ort_infer"]
    res["infer_vs_torch"] = ms["lstmkit_predict"] / ms["torch_infer"]
    if "reference_train" in ms:
        res["reference_train_vs_torch"] = ms["reference_train"] / ms["torch_train"]
        res["reference_predict_vs_ort"] = ms["reference_predict"] / ms["ort_infer"]
    res["gflops"] = {k: (step if "train" in k else fwd) / (v * 1e-3) / 1e9 for k, v in ms.items()}
    return res


# -- memory and first call: fresh processes ------------------------------------------------------
_MEMORY_CODE = r"""
import gc, json, sys
sys.path.insert(0, {bench!r})
import bench_speed as bs
bs.set_threads({threads})
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
model, x, y = bs.build({name!r})
if {lib!r} == "torch":
    step, _ = bs.torch_contenders(model, x, y, {threads})
else:
    from lstmkit.ops import backend
    backend.set_backend({lib!r})
    step = lambda: model.train_on_batch(x, y)
step(); step()
if {lib!r} != "torch":
    # lstmkit keeps its large buffers for the next step (the model's workspace): drop them
    # so the measured step allocates them again, counted like every other allocation
    model.release_buffers()
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = rss("VmRSS:")
step()
print(json.dumps({{"peak_bytes": rss("VmHWM:") - before}}))
"""


def step_memory(name, lib, threads):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    code = _MEMORY_CODE.format(
        bench=str(Path(__file__).resolve().parent), threads=threads, name=name, lib=lib
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"memory probe {name}/{lib} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_bytes"]


_FIRST_CODE = r"""
import sys, time
sys.path.insert(0, {bench!r})
import bench_speed as bs
import lstmkit
from lstmkit.ops import backend, compiled
assert "site-packages" in lstmkit.__file__, lstmkit.__file__  # the wheel's, not the checkout's
model, x, y = bs.build("A")
t_built = time.time()
model.train_on_batch(x, y)
t_end = time.time()
ran = backend.get_backend()  # what ran the first step
if sys.argv[1] == "wait":  # leave the cache complete for the next run
    compiled.wait("float32", timeout=1800)
print(t_built, t_end, ran)
"""


def _wheel_venv(tmp):
    """Build the wheel of this checkout and install it (no extras) into a fresh venv."""
    root = Path(__file__).resolve().parents[1]
    src = Path(tmp, "src")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((root / name).read_bytes())
    subprocess.run(["cp", "-r", str(root / "src"), str(src)], check=True)
    subprocess.run(["find", str(src), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}",
                    "+"], check=True)  # fmt: skip
    dist = Path(tmp, "dist")
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(dist), str(src)], check=True)
    venv = Path(tmp, "venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(dist.glob("lstmkit-*.whl"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", "install", str(wheel)],
                   check=True)  # fmt: skip
    return venv


def _first_run(python, cache, wait, threads, **env):
    """Seconds from launching a fresh process to the end of its first train_on_batch at A."""
    code = _FIRST_CODE.format(bench=str(Path(__file__).resolve().parent))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LSTMKIT_", "NUMBA_"))}
    clean.pop("PYTHONPATH", None)
    env = dict(clean, LSTMKIT_CACHE_DIR=str(cache), LSTMKIT_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), **env)  # fmt: skip
    t0 = time.time()
    r = subprocess.run([str(python), "-c", code, "wait" if wait else "no"], env=env,
                       capture_output=True, text=True, check=False, cwd=cache.parent)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    built, end, name = r.stdout.split()
    return {"to_first_step_end_s": round(float(end) - t0, 3),
            "first_step_s": round(float(end) - float(built), 3), "backend": name}  # fmt: skip


def first_call(threads=1, venv=None):
    """Cold, warm and old-behaviour first calls at A, and a cold ``lstmkit forecast demo``, in a
    fresh venv from the wheel (see the module docstring)."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as d:
        venv = Path(venv) if venv else _wheel_venv(d)
        python = venv / "bin" / "python"
        work = Path(d, "work")
        work.mkdir()
        # the demo first: its background compilation is the one the cold run at A then awaits
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LSTMKIT_", "NUMBA_"))}
        env.pop("PYTHONPATH", None)
        env.update(LSTMKIT_CACHE_DIR=str(work / "cache"), MPLBACKEND="Agg")
        t0 = time.time()
        subprocess.run([str(venv / "bin" / "lstmkit"), "forecast", "demo", "--out",
                        str(work / "demo")], env=env, check=True, capture_output=True, cwd=work)  # fmt: skip
        out["forecast_demo_cold_s"] = round(time.time() - t0, 2)
        out["cold"] = _first_run(python, work / "cache", True, threads)
        out["warm"] = _first_run(python, work / "cache", False, threads)
        out["old_compile_now"] = _first_run(python, work / "cache_now", False, threads,
                                            LSTMKIT_COMPILE="now")  # fmt: skip
    return out


# -- report ------------------------------------------------------------------------------------
def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    from lstmkit.ops.fast.common import openblas_kernels

    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        # which OpenBLAS kernels NumPy and SciPy (numba's BLAS) run, and whether they were forced
        "openblas_kernels": openblas_kernels(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }


def _first_call_machine(threads):
    """CPU, its vector level and the load (the figures depend on both)."""
    cpu = platform.processor() or platform.machine()
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu
        )
        flags = set(
            next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), ())
        )
    except OSError:
        pass
    level = "avx512" if "avx512f" in flags else "avx2+fma" if {"avx2", "fma"} <= flags else "plain"
    return {"cpu": cpu, "level": level, "logical_cpus": os.cpu_count(), "threads": threads,
            "load_average": os.getloadavg()}  # fmt: skip


def print_table(results, gemm):
    print(f"\nGEMM (float32 1024^3, np.matmul): {gemm:.0f} GFLOP/s")
    head = (
        f"{'cfg':<4}{'train lk':>10}{'torch':>9}{'ratio':>7}{'ref':>9}  "
        f"{'predict lk':>10}{'ort':>8}{'ratio':>7}{'torch':>8}{'ref':>9}  "
        f"{'%GEMM tr':>8}{'%GEMM inf':>10}"
    )
    print(head)
    for name, r in results.items():
        ms = r["ms"]
        ref_t = ms.get("reference_train", float("nan"))
        ref_p = ms.get("reference_predict", float("nan"))
        g = r["gflops"]
        print(
            f"{name:<4}{ms['lstmkit_train']:>10.2f}{ms['torch_train']:>9.2f}"
            f"{r['train_vs_torch']:>7.2f}{ref_t:>9.2f}  {ms['lstmkit_predict']:>10.3f}"
            f"{ms['ort_infer']:>8.3f}{r['infer_vs_ort']:>7.2f}{ms['torch_infer']:>8.3f}"
            f"{ref_p:>9.2f}  {100 * g['lstmkit_train'] / gemm:>7.0f}%"
            f"{100 * g['lstmkit_predict'] / gemm:>9.0f}%"
        )
        if "memory" in r:
            m = r["memory"]
            print(
                f"     peak memory added by a training step: lstmkit {m['numba'] / 2**10:.0f} KiB, "
                f"torch {m['torch'] / 2**10:.0f} KiB (ratio {m['numba'] / max(m['torch'], 1):.2f}); "
                f"reference {m['numpy'] / 2**10:.0f} KiB"
            )


def _kernel_variant() -> str:
    """The packed micro-kernel variant lstmkit runs (``LSTMKIT_KERNEL`` or the CPU's best)."""
    from lstmkit.ops.fast import packed

    return packed.variant()


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    if args.first_call_only:
        out = {"environment": _first_call_machine(args.threads)}
        out["first_call"] = first_call(args.threads, args.first_call_venv)
        print("first call (s):", json.dumps(out, indent=1))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(out, indent=1))
        return
    import numba
    import numpy as np
    import onnxruntime
    import torch

    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; choose from {sorted(CONFIGS)}")
    env = {
        **machine(),
        "threads": args.threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "kernel_variant": _kernel_variant(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "repeats": args.repeats,
        "load_average_before": os.getloadavg(),
    }
    gemm = gemm_rate()
    results = {}
    for name in names:
        results[name] = bench_config(name, args)
        if args.memory:
            results[name]["memory"] = {
                lib: step_memory(name, lib, args.threads) for lib in ("numba", "torch", "numpy")
            }
        print(f"config {name} done", flush=True)
    env["load_average_after"] = os.getloadavg()
    out = {"environment": env, "gemm_gflops": gemm, "configs": results, "targets": TARGETS}
    if args.first_call:
        out["first_call"] = first_call(args.threads, args.first_call_venv)
    print_table(results, gemm)
    print(
        f"OpenBLAS kernels: {env['openblas_kernels']} (OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']})"
    )
    print(f"lstmkit micro-kernel variant: {env['kernel_variant']} (LSTMKIT_KERNEL to force one)")
    misses = [
        f"{k} {n}: {results[n][k]:.2f} > {t}"
        for k, per in TARGETS.items()
        for n, t in per.items()
        if n in results and results[n][k] > t
    ]
    print("targets missed: " + ("; ".join(misses) if misses else "none"))
    if "first_call" in out:
        print("first call (s):", json.dumps(out["first_call"]))
    print(f"load average before {env['load_average_before']}, after {env['load_average_after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
