"""The first call of a fresh process waits on no compiler (issue 20, ``lstmkit.ops.compiled``).

Each test runs fresh Python processes with their own empty cache directory
(``LSTMKIT_CACHE_DIR``) and the default ``LSTMKIT_COMPILE=background``. Witnesses, none of them a
timing: numba's own record of each kernel (``Dispatcher.signatures``: compiled or loaded in this
process; ``stats.cache_misses``: compiled here rather than loaded from the cache), whether
``lstmkit.ops.fast`` was imported at all, the marker and lock files of the cache, and the
NumPy reference's results (tested against PyTorch in ``test_ops.py``) against the compiled
path's, to the tolerance of ``test_fast_ops.py``.

The tests that wait for a background compilation (about 40 s of CPU per CPU target) are marked
``slow``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

SRC = Path(__file__).resolve().parents[1] / "src"

# One process: a seeded train_on_batch, then (with wait=1) the background compilation awaited
# inside a one_path scope, and the same step from the same weights again. Prints one JSON line.
PROBE = r"""
import json, sys
import numpy as np
import lstmkit
from lstmkit.layers import LSTM, Dense
from lstmkit.ops import backend, compiled

def fast_kernels():
    # name -> [signatures, loaded from the cache, compiled here]; None: numba never imported
    if "lstmkit.ops.fast" not in sys.modules:
        return None
    from numba.core.registry import CPUDispatcher
    out = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("lstmkit.ops.fast"):
            for k, v in vars(mod).items():
                if isinstance(v, CPUDispatcher):
                    st = v.stats
                    out[name + "." + k] = [len(v.signatures), sum(st.cache_hits.values()),
                                           sum(st.cache_misses.values())]
    return out

def step():
    lstmkit.set_random_seed(0)
    m = lstmkit.Sequential([LSTM(16, return_sequences=True, input_shape=(7, 3)), Dense(2)])
    m.compile("sgd", "mse", seed=0)
    for layer in m.layers:  # non-zero biases
        for k, v in layer.params.items():
            if k.endswith("bias"):
                v[...] = np.linspace(-0.2, 0.3, v.size).reshape(v.shape)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    y = rng.standard_normal((5, 7, 2)).astype(np.float32)
    loss = m.train_on_batch(x, y)
    return {"backend": backend.get_backend(), "loss": float(loss),
            "weights": [w.tolist() for w in m.get_weights()], "pred": m.predict(x).tolist()}

out = {"first": step(), "first_kernels": fast_kernels(), "status": compiled.status()}
if sys.argv[1] == "wait":
    with backend.one_path_scope():
        out["ready"] = compiled.wait("float32", timeout=900)
        out["inside_scope"] = backend.get_backend()
    out["second"] = step()
    out["second_kernels"] = fast_kernels()
print(json.dumps(out))
"""


def _env(cache, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSTMKIT_", "NUMBA_"))}
    env.update(PYTHONPATH=str(SRC), LSTMKIT_CACHE_DIR=str(cache), OPENBLAS_NUM_THREADS="1")
    env.update(extra)
    return env


def _probe(cache, wait, **env):
    r = subprocess.run(
        [sys.executable, "-c", PROBE, "wait" if wait else "no"],
        env=_env(cache, **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _stop_worker(status):
    """End the background compilation this test's subprocess started (by its pid)."""
    pid = status["dtypes"]["float32"].get("worker_pid")
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _agree(a, b, what):
    """The compiled path against the reference: float32, the tolerance of test_fast_ops.py
    (1e-6 relative to the scale) widened for one SGD update and a Dense layer on top."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= 1e-5 * scale, (what, np.abs(a - b).max())


def test_first_train_on_batch_runs_the_reference_and_compiles_nothing(tmp_path):
    out = _probe(tmp_path / "cache", wait=False)
    try:
        assert out["first"]["backend"] == "numpy"
        # numba was not even imported in the foreground: nothing of it can have been compiled
        assert out["first_kernels"] is None
        state = out["status"]["dtypes"]["float32"]
        assert state["state"] == "compiling" and state["worker_pid"] > 0, out["status"]
        assert out["status"]["dtypes"]["float64"]["state"] == "pending"  # only what is used
    finally:
        _stop_worker(out["status"])


def test_an_unwritable_cache_falls_back_to_the_reference_and_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    cache = blocker / "cache"  # cannot be created, even by root
    out = _probe(cache, wait=False)
    assert out["first"]["backend"] == "numpy" and out["first_kernels"] is None
    status = out["status"]
    assert not status["cache_writable"] and "NotADirectoryError" in status["cache_error"]
    assert status["dtypes"]["float32"] == {"state": "no cache"}  # no worker started
    info = subprocess.run(
        [sys.executable, "-m", "lstmkit", "info"],
        env=_env(cache),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert info.returncode == 0, info.stderr
    assert re.search(r"^  cache +no cache: .* is not writable \(NotADirectoryError", info.stdout,
                     re.MULTILINE), info.stdout  # fmt: skip


def _cpu_level():
    """From /proc/cpuinfo, not from LLVM (which lstmkit info reads)."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "avx512f" in flags:
        return "avx512"
    return "avx2+fma" if {"avx2", "fma"} <= flags else "plain"


def _best_variant():
    """The micro-kernel variant lstmkit should pick here, from /proc/cpuinfo."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "avx512"
    return "avx2" if {"avx", "avx2", "fma"} <= flags else "generic"


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo (Linux)")
def test_info_prints_the_compile_state_the_cache_and_the_kernel_variant(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "lstmkit", "info", "--json"],
        env=_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    # info looks, it starts nothing: no compilation, no worker, numba not needed to say so
    assert report["compile"]["dtypes"]["float32"] == {"state": "pending"}
    assert report["backend"]["name"] == "numpy" and "pending" in report["backend"]["reason"]
    assert report["compile"]["cache_dir"].startswith(str(tmp_path / "cache"))
    assert report["variant"]["level"] == _cpu_level()
    assert report["variant"]["kernel"] == _best_variant() and report["variant"]["forced"] is None
    text = subprocess.run(
        [sys.executable, "-m", "lstmkit", "info"],
        env=_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    for row in (r"  compile +background \(LSTMKIT_COMPILE\); float32 pending, float64 pending",
                rf"  cache +{re.escape(report['compile']['cache_dir'])}$", rf"  variant +{_best_variant()} \(auto: .*numba targets CPU level {re.escape(_cpu_level())} "):  # fmt: skip
        assert re.search(row, text, re.MULTILINE), (row, text)
    assert re.search(r"^threads ", text, re.MULTILINE) and re.search(r"^blas ", text, re.MULTILINE)


def _check_switch(out):
    first, second = out["first"], out["second"]
    assert first["backend"] == "numpy" and out["first_kernels"] is None
    assert out["ready"], out["status"]
    # the compiled kernels were ready inside the scope, but the switch waited for its end
    assert out["inside_scope"] == "numpy"
    assert second["backend"] == "numba"
    used = {k: v for k, v in out["second_kernels"].items() if v[0]}
    assert used, "the second step ran no compiled kernel"
    compiled_here = {k: v for k, v in used.items() if v[2]}
    assert not compiled_here, f"compiled in the foreground: {compiled_here}"
    assert all(v[1] >= 1 for v in used.values())  # every kernel used came from the cache
    _agree(second["loss"], first["loss"], "loss")
    for i, (a, b) in enumerate(zip(second["weights"], first["weights"])):
        _agree(a, b, f"weight {i} after one update")
    _agree(second["pred"], first["pred"], "predict")


@pytest.mark.slow
def test_the_compiled_kernels_load_from_the_cache_at_the_next_safe_point_and_agree(tmp_path):
    cache = tmp_path / "cache"
    _check_switch(_probe(cache, wait=True))
    # a second CPU target (a forced NUMBA_CPU_NAME, as on another machine) finds nothing of its
    # own in the cache: it runs the reference, compiles its own kernels, then loads those
    out = _probe(cache, wait=True, NUMBA_CPU_NAME="x86-64")
    _check_switch(out)
    markers = sorted(p.name for p in cache.rglob("ready-float32-*.json"))
    assert len(markers) == 2 and any("-x86-64-" in m for m in markers), markers


def test_ctrl_c_during_a_cold_start_gets_lstmkit_s_own_message(tmp_path):
    """On a cold cache the foreground never sits in numba's compiler, which used to swallow
    SIGINT: Ctrl-C lands in training and lstmkit answers it. The background compilation, in a
    session of its own, does not get the terminal's SIGINT and carries on."""
    t = np.arange(3000)
    rows = "\n".join(f"{i},{20 + 8 * np.sin(2 * np.pi * i / 12):.6f}" for i in t)
    (tmp_path / "long.csv").write_text("t,y\n" + rows + "\n")
    argv = ["forecast", "train", str(tmp_path / "long.csv"), "--engine", "single", "--column", "y"]
    argv += ["--lookback", "12"]
    argv += ["--horizon", "4", "--epochs", "300", "--patience", "300", "--transform", "none"]
    argv += ["--out", str(tmp_path / "m.lstmkit")]
    run = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from lstmkit.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    cache = tmp_path / "cache"
    env = _env(cache, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-c", run, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)  # fmt: skip
    worker, survived = None, False
    try:
        first = proc.stdout.readline()
        assert first.startswith("read 3000 rows"), first + proc.stderr.read()
        time.sleep(1.5)
        assert proc.poll() is None, "the command ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        worker = _worker_pid(cache)
        survived = worker is not None and _alive(worker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if worker is not None:
            _stop_worker({"dtypes": {"float32": {"worker_pid": worker}}})
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.splitlines() == ["lstmkit forecast: interrupted; nothing written"], stderr
    assert survived, "the background compilation stopped with the foreground"


def _worker_pid(cache, timeout=30.0):
    """The pid the background worker wrote into its lock file (it may still be starting)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for lock in cache.rglob("lock-float32-*.lock"):
            text = lock.read_text().strip()
            if text:
                return int(text)
        time.sleep(0.1)
    return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_float_type_not_ready_runs_the_reference_and_starts_its_compilation(monkeypatch):
    """In-process, with the background mode's state set by hand: float32 ready, float64 not.
    A float64 call must run the reference (bit for bit) and ask for float64's compilation; a
    float32 call runs the compiled kernel (a spy on it says which ran)."""
    import time as time_mod

    import lstmkit.ops.fast.lstm as fast_lstm
    from lstmkit.ops import backend, compiled
    from lstmkit.ops import lstm as ref_lstm

    ran, started = [], []
    real = fast_lstm.lstm_forward

    def spy(x, *args, **kwargs):
        ran.append(np.asarray(x).dtype.name)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(fast_lstm, "lstm_forward", spy)
    monkeypatch.setattr(compiled, "start", started.append)
    for name, value in (("_namespaces", {}), ("_by_request", {}), ("_choice", "auto"),
                        ("_DEFERRED", True), ("_auto", backend._AutoState())):  # fmt: skip
        monkeypatch.setattr(backend, name, value)
    backend._auto.ready = frozenset({"float32"})
    backend._auto.checked = time_mod.monotonic() + 1e9  # no re-reading of the markers
    assert backend.get_backend() == "numba"
    ops = backend.ops_for("lstm")
    rng = np.random.default_rng(0)
    T, B, D, H = 5, 3, 4, 6
    args = [rng.standard_normal(s) for s in ((T, B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H))]
    args.append(rng.standard_normal(4 * H))
    hs, (h, c), cache = ops.forward(*args)  # float64
    assert h.dtype == np.float64
    want_hs, (_, want_c), want_cache = ref_lstm.lstm_forward(*args)
    assert ran == [] and started == ["float64"]
    assert np.array_equal(hs, want_hs) and np.array_equal(c, want_c)
    dhs = rng.standard_normal((T, B, H))
    got, want = ops.backward(dhs, None, None, cache), ref_lstm.lstm_backward(dhs, None, None,
                                                                             want_cache)  # fmt: skip
    for k in want:
        assert np.array_equal(got[k], want[k]), k
    ops.forward(*[a.astype(np.float32) for a in args])
    assert ran == ["float32"]


def test_the_safe_point_reads_the_package_versions_once_per_process(monkeypatch):
    """Every ``predict``/``fit``/``*_on_batch`` enters a one-path scope, a safe point that looks
    at the ready markers, whose names hold numba's and llvmlite's versions. Reading a version
    parses the package's metadata file (``importlib.metadata``): at every call that cost about
    1 ms, 3x lstmkit's whole predict at config B. The versions are read once per process."""
    import importlib.metadata

    from lstmkit.ops import compiled

    calls, real = [], importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: calls.append(d) or real(d))
    compiled._version.cache_clear()
    for _ in range(50):
        compiled.ready("float32")
        compiled.ready("float64")
    assert sorted(calls) == ["llvmlite", "numba"]


def test_calls_in_quick_succession_look_at_the_markers_at_most_every_recheck_interval(
    monkeypatch,
):
    """The safe point at the start of every ``predict``/``fit`` call looks for newly compiled
    kernels at most every ``RECHECK_S`` seconds, not at every call (each look is file-system
    work, about 0.1 ms: most of a small model's predict when done every time); a look after
    the interval still finds a float type that became ready."""
    from lstmkit.ops import backend, compiled

    looks, ready = [], {"float32"}

    def fake_ready(dt):
        looks.append(dt)
        return dt in ready

    monkeypatch.setattr(compiled, "ready", fake_ready)
    monkeypatch.setattr(compiled, "start", lambda dt: None)
    for name, value in (("_choice", "auto"), ("_DEFERRED", True), ("_auto", backend._AutoState())):
        monkeypatch.setattr(backend, name, value)
    clock = [1000.0]
    monkeypatch.setattr(backend.time, "monotonic", lambda: clock[0])
    for _ in range(200):  # 200 calls within 0.2 s
        with backend.one_path_scope():
            pass
        clock[0] += 0.001
    assert len(looks) == len(compiled.DTYPES)  # one look, at the first call
    assert backend._auto.ready == frozenset({"float32"})
    ready.add("float64")
    clock[0] += backend._AutoState.RECHECK_S
    with backend.one_path_scope():
        pass
    assert backend._auto.ready == frozenset({"float32", "float64"})


def test_another_installation_of_the_same_sources_gets_its_own_cache(monkeypatch, tmp_path):
    """numba keeps its cache entries per source directory and drops those whose file's stamp
    changed, so the ready marker is keyed on where the kernels' sources are and their stamps as
    well as their contents: a second venv (or a reinstall) compiles in the background instead of
    finding "ready" and compiling in the foreground."""
    import os
    import shutil

    from lstmkit.ops import compiled

    def key(fast_dir):
        monkeypatch.setattr(compiled, "_FAST_DIR", fast_dir)
        compiled.sources_hash.cache_clear()
        return compiled.sources_hash()

    a, b = tmp_path / "venv-a" / "fast", tmp_path / "venv-b" / "fast"
    shutil.copytree(compiled._FAST_DIR, a, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(a, b, copy_function=shutil.copy2)  # same contents and modification times
    try:
        first = key(a)
        assert key(a) == first  # the same installation, untouched: the same cache
        assert key(b) != first  # the same sources elsewhere: another cache
        one = min(a.glob("*.py"))
        st = one.stat()
        os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # reinstalled in place
        assert key(a) != first
    finally:
        compiled.sources_hash.cache_clear()
