"""When the compiled kernels run: numba's cache, built on this machine by a background process.

A cold process used to compile every kernel (about 15 s of LLVM) before its first training step.
Two facts rule out doing that work at install time: pip runs no install hooks, and numba's
on-disk cache is keyed on the CPU (the index key holds ``codegen.magic_tuple()``: triple, CPU
name, features) and on each source file's contents, so a cache built elsewhere is never used.
Besides, ``__pycache__`` in site-packages may be read-only. So:

1. numba caches lstmkit's kernels in a directory of the user's (:func:`cache_dir`):
   ``$LSTMKIT_CACHE_DIR``, else the platform's cache directory (``~/.cache/lstmkit`` on Linux),
   then ``numba-<lstmkit>-<numba>/<hash of the ops/fast sources>``. The hash covers every file
   of :mod:`lstmkit.ops.fast`: numba itself only notices edits to the file holding a compiled
   function, not to the helpers it inlines from ``activations.py`` or ``common.py``.
   After each compilation the caches of removed or changed installations are deleted
   (:mod:`lstmkit.ops.cache_prune`).
2. With the ``"auto"`` backend, a process whose kernels are not in that cache for its CPU runs the
   NumPy reference (exact; tested against PyTorch) and starts :func:`main` in the background:
   a separate *process*, since numba's compiler holds the GIL. It compiles every kernel for one float type (float32 first; float64 when a float64 call asks for it),
   reniced, in its own session (Ctrl-C in the terminal does not reach it and does not stop it),
   and writes a marker ``ready-<dtype>-<cpu key>.json`` when done. A lock file keeps two
   processes from compiling the same thing.
3. The next safe point sees the marker and switches to the compiled kernels, which load from
   the cache in milliseconds each (:func:`lstmkit.ops.backend.one_path`: between ``fit``,
   ``predict``, ``evaluate`` and ``*_on_batch`` calls, never inside one, so one fit is one path).
   A different CPU, or a forced ``NUMBA_CPU_NAME``, has another CPU key: it runs the reference
   and builds its own entries in the same cache.

Determinism: the two paths agree to the tolerances of ``tests/test_fast_ops.py`` (float32 ~1e-6
relative), not bit for bit. A seeded run is bit-reproducible given the path, so for bit-identical
reruns whatever the state of the cache, pin it: ``LSTMKIT_COMPILE=now`` (or
``LSTMKIT_BACKEND=numba``) or ``LSTMKIT_BACKEND=numpy``.

``LSTMKIT_COMPILE`` (:data:`MODES`):

- ``background`` (default): as above.
- ``now``: the old behaviour: compile in this process at the first call of each kernel (still
  cached in :func:`cache_dir`). ``LSTMKIT_BACKEND=numba`` or ``set_backend("numba")`` also
  compile in-process: they ask for the compiled path by name.
- ``off``: the ``"auto"`` backend is the NumPy reference; nothing is compiled or started.

When no cache directory is writable, nothing could carry a background compilation over to this
process: ``background`` then runs the NumPy reference (``lstmkit info`` says why), ``now``
compiles in the process without a cache.

``LSTMKIT_KERNEL`` (:data:`KERNEL_VARIANTS`: ``avx512``, ``avx2``, ``generic``; default ``auto``,
the best one numba's target CPU has) picks the variant of the packed micro-kernel
(:mod:`lstmkit.ops.fast.packed`); a variant the CPU cannot run is refused with a ValueError. The
variants are not in numba's cache at all: each is compiled by llvmlite for its own features at the
first product of a process (a few ms) and called through its address, so numba's cached code is
the same for all of them, forcing one recompiles nothing, and no variant can run another's code.

This module imports neither numba nor the kernels: the foreground decides from files alone.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import cache_prune

MODES = ("background", "now", "off")
DTYPES = ("float32", "float64")
ENV_MODE = "LSTMKIT_COMPILE"
ENV_DIR = "LSTMKIT_CACHE_DIR"
_FAST_DIR = Path(__file__).resolve().parent / "fast"
_started: dict[str, subprocess.Popen] = {}  # dtype -> the worker this process started
# the worker's command (not ``-m lstmkit.ops.compiled``: runpy would load this module twice)
_WORKER = "import sys; from lstmkit.ops.compiled import main; sys.exit(main(sys.argv[1:]))"


def mode() -> str:
    """``LSTMKIT_COMPILE``: ``"background"`` (default), ``"now"`` or ``"off"``."""
    value = os.environ.get(ENV_MODE, "").strip().lower() or "background"
    if value not in MODES:
        raise ValueError(
            f"environment variable {ENV_MODE} must be one of {list(MODES)}; got {value!r}"
        )
    return value


def toolchain_available() -> bool:
    """Whether numba, llvmlite and SciPy are installed (found, not imported: that costs 0.7 s)."""
    return all(importlib.util.find_spec(m) is not None for m in ("numba", "llvmlite", "scipy"))


# --- where ----------------------------------------------------------------------------------------
def _platform_cache_home() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def base_dir() -> Path:
    """``$LSTMKIT_CACHE_DIR``, else ``<platform cache dir>/lstmkit``."""
    env = os.environ.get(ENV_DIR, "").strip()
    return Path(env).expanduser() if env else _platform_cache_home() / "lstmkit"


@functools.lru_cache(maxsize=1)
def sources_hash() -> str:
    """SHA-256 (16 hex digits) of every ``ops/fast/*.py``'s contents, and of where those files
    are and their modification times: any edit gives a fresh cache, and so does another
    installation of the same sources. numba keeps its entries per source directory and drops
    one whose file's stamp (modification time, size) changed; a ready marker keyed on the
    contents alone said "ready" to a second venv (or a reinstall) whose entries numba did not
    have, and that process then compiled in the foreground (a warm-looking ``lstmkit forecast
    demo`` in a new venv took 29 s instead of ~6; docs/speed.md, "The first call")."""
    return hash_of(_FAST_DIR)


def hash_of(fast_dir: Path) -> str:
    """:func:`sources_hash` of the ``ops/fast`` directory ``fast_dir`` (another installation's
    too: :mod:`lstmkit.ops.cache_prune` reads which caches are stale with it)."""
    h = hashlib.sha256(str(fast_dir).encode() + b"\0")
    for path in sorted(fast_dir.glob("*.py")):
        stamp = path.stat().st_mtime_ns
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0%d\0" % stamp)
    return h.hexdigest()[:16]


@functools.cache
def _version(dist: str) -> str:
    """The installed version of ``dist`` (read once: ``importlib.metadata`` parses the package's
    metadata file on every call, about 0.1 ms, and :func:`ready` runs at every ``predict``)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_dir() -> Path:
    """The directory numba caches lstmkit's kernels in (writable or not: :func:`writable`)."""
    from .. import __version__

    tag = f"numba-{__version__}-{_version('numba')}"
    return base_dir() / tag / sources_hash()


_WRITABLE: dict[str, str | None] = {}


def writable() -> str | None:
    """None when :func:`cache_dir` can be created and written to, else why not."""
    d = cache_dir()
    if str(d) not in _WRITABLE:
        try:
            d.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=d).close()
            _WRITABLE[str(d)] = None
        except OSError as e:
            _WRITABLE[str(d)] = f"{type(e).__name__}: {e.strerror or e}"
    return _WRITABLE[str(d)]


# --- for which CPU ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_target() -> dict:
    """What numba's cache key holds about the CPU (``codegen.magic_tuple()``), computed the way
    numba does it (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` override the host's), through
    llvmlite alone (0.1 s; numba is not imported)."""
    import llvmlite.binding as llvm

    name = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    features = os.environ.get("NUMBA_CPU_FEATURES")
    if features is None and name.lower() == "generic":
        features = ""  # numba's default for the generic CPU (numba.core.config)
    if features is None:
        try:
            host = llvm.get_host_cpu_features()
            if os.environ.get("NUMBA_ENABLE_AVX", "1").strip() in ("0", ""):
                for k in host:
                    if k.startswith("avx"):
                        host[k] = False
            features = host.flatten()
        except RuntimeError:
            features = ""
    return {"triple": llvm.get_process_triple(), "cpu": name, "features": features}


# --- which micro-kernel variant -----------------------------------------------------------------
ENV_KERNEL = "LSTMKIT_KERNEL"
# The variants of the packed micro-kernel (:mod:`lstmkit.ops.fast.packed`), best first: the LLVM
# features it is compiled with (the CPU must have every one; LLVM adds what they imply, e.g. FMA
# with AVX-512F) and the vector register width in bytes, from which the register blocking follows.
KERNEL_VARIANTS = {
    "avx512": (("avx512f", "avx512bw", "avx512dq", "avx512vl"), 64),
    "avx2": (("avx", "avx2", "fma"), 32),
    "generic": ((), 16),  # the baseline of every 64-bit CPU (SSE2, NEON): no FMA
}


@functools.lru_cache(maxsize=1)
def host_features() -> frozenset:
    """The features this CPU has (not numba's target: a forced ``NUMBA_CPU_NAME`` cannot give
    the CPU an instruction it lacks)."""
    import llvmlite.binding as llvm

    try:
        return frozenset(k for k, v in llvm.get_host_cpu_features().items() if v)
    except RuntimeError:  # llvmlite cannot tell on this platform: the baseline only
        return frozenset()


def runnable_variants() -> list[str]:
    """The kernel variants this CPU can run, best first (``"generic"`` always)."""
    return list(_runnable(host_features()))


@functools.lru_cache(maxsize=8)
def _runnable(have: frozenset) -> tuple:
    """:func:`runnable_variants` of a CPU with the features ``have`` (cached: every call of the
    feature-major LSTM kernels asks, through :func:`kernel_variant`)."""
    return tuple(v for v, (needs, _) in KERNEL_VARIANTS.items() if set(needs) <= have)


def kernel_variant() -> str:
    """The micro-kernel variant to run: ``LSTMKIT_KERNEL`` (``avx512``, ``avx2``, ``generic``)
    when set, refused with a ValueError if this CPU lacks its features; else (``auto``) the best
    one that numba's target CPU (:func:`cpu_target`) has, so that a forced ``NUMBA_CPU_NAME``
    picks the variant of that CPU too."""
    value = os.environ.get(ENV_KERNEL, "").strip().lower() or "auto"
    if value == "auto":
        return _best_variant(cpu_target()["features"], _runnable(host_features()))
    return check_variant(value, f"environment variable {ENV_KERNEL}")


@functools.lru_cache(maxsize=8)
def _best_variant(features: str, runnable: tuple) -> str:
    """The first of ``runnable`` whose features are all in numba's ``features`` string. Cached:
    parsing the string (about 120 features) cost 24 us, and every call of the feature-major LSTM
    kernels asks twice (predict at config D takes about 1 ms)."""
    target = {f[1:] for f in features.split(",") if f.startswith("+")}
    return next(v for v in runnable if set(KERNEL_VARIANTS[v][0]) <= target)


def check_variant(value: str, what: str = "argument 'variant'") -> str:
    """``value`` if it names a variant this CPU can run, else a ValueError saying why."""
    if value not in KERNEL_VARIANTS:
        raise ValueError(f"{what} must be one of {['auto', *KERNEL_VARIANTS]}; got {value!r}")
    missing = sorted(set(KERNEL_VARIANTS[value][0]) - host_features())
    if missing:
        raise ValueError(
            f"{what}: kernel variant {value!r} needs CPU features {missing}, which this CPU "
            f"lacks; it can run {runnable_variants()}"
        )
    return value


def cpu_key() -> str:
    t = cpu_target()
    raw = "\0".join((t["triple"], t["cpu"], t["features"], _version("llvmlite")))
    return f"{t['cpu']}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _file(kind: str, dtype: str) -> Path:
    return cache_dir() / f"{kind}-{dtype}-{cpu_key()}.json"


# --- state --------------------------------------------------------------------------------------
def ready(dtype: str) -> bool:
    """Whether the kernels for ``dtype`` are in the cache for this CPU."""
    return _file("ready", dtype).is_file()


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _lock_held(dtype: str) -> bool:
    """Whether some process is compiling ``dtype`` for this CPU now (it holds the lock)."""
    lock = _lock(dtype, blocking=False)
    if lock is None:
        return True
    lock.close()
    return False


def _lock(dtype: str, blocking: bool):
    """The compile lock for ``dtype`` as an open file, or None when another process holds it.
    ``flock`` is released by the kernel when its holder dies, so a killed worker leaves no lock
    behind. (Where ``fcntl`` is missing, no lock: two workers may compile the same thing.)"""
    path = _file("lock", dtype).with_suffix(".lock")
    fh = open(path, "a+")  # noqa: SIM115  (held open for the lock's lifetime)
    try:
        import fcntl
    except ImportError:
        return fh
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        fh.close()
        return None
    return fh


def state(dtype: str) -> str:
    """``"ready"``, ``"compiling"``, ``"failed"``, ``"pending"`` (not started) or
    ``"no cache"`` (no writable cache directory)."""
    if writable() is not None:
        return "no cache"
    if ready(dtype):
        return "ready"
    worker = _started.get(dtype)
    if (worker is not None and worker.poll() is None) or _lock_held(dtype):
        return "compiling"
    if _file("failed", dtype).is_file():
        return "failed"
    return "pending"


_BUSY = [0.0, False]  # [when read (time.monotonic), the answer]


def busy() -> bool:
    """Whether kernels are being compiled for this CPU in the background now (a worker this
    process started, or another process's: the lock of float32 or float64), read at most once a
    second. Then a core is the compiler's, and the NumPy reference that runs meanwhile keeps BLAS
    on one thread (:func:`lstmkit.ops.backend.compute_scope`)."""
    now = time.monotonic()
    if now - _BUSY[0] > 1.0:
        # this process's workers, activation pairs' jobs included; then :func:`state`'s reading
        # of the float types (its "compiling": not ready, and a live worker or the lock held)
        alive = any(w.poll() is None for w in _started.values())
        elsewhere = (
            mode() == "background"
            and toolchain_available()
            and any(state(dt) == "compiling" for dt in DTYPES)
        )
        _BUSY[:] = now, alive or elsewhere
    return _BUSY[1]


def start(dtype: str) -> int | None:
    """Start compiling ``dtype``'s kernels in the background unless they are ready, being
    compiled, failed before, or cannot be cached; returns the worker's pid when one started.
    ``dtype`` may name a job of an activation pair, ``"float32-lstm-relu-hard_sigmoid"``
    (:func:`lstmkit.ops.backend.compile_job`): that cell's kernels for that pair only."""
    if dtype in _started or state(dtype) != "pending":
        return None
    import lstmkit

    env = dict(os.environ, **{ENV_MODE: "now"})
    # the worker imports the same lstmkit, wherever this process found it (a checkout, a path
    # added at run time); an installed one it finds by itself
    root = Path(lstmkit.__file__).resolve().parent.parent
    if root not in _site_dirs():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    try:
        log = open(_file("log", dtype).with_suffix(".log"), "ab")  # noqa: SIM115
    except OSError:
        return None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, "--dtype", *dtype.split("-", 1)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal is the foreground's, not the worker's
            close_fds=True,
        )
    except OSError:  # no interpreter to start (embedded Python): stay on the reference
        return None
    finally:
        log.close()
    _started[dtype] = proc
    return proc.pid


def _site_dirs() -> set:
    import site

    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return {Path(d).resolve() for d in dirs}


def status() -> dict:
    """Everything ``lstmkit info`` says about compilation, as JSON-able values."""
    out = {
        "mode": mode(),
        "cache_dir": str(cache_dir()),
        "cache_writable": writable() is None,
        "cache_error": writable(),
        "cpu_key": cpu_key(),
        "dtypes": {},
    }
    for dt in DTYPES:
        info = {"state": state(dt)}
        if dt in _started:
            info["worker_pid"] = _started[dt].pid
        elif info["state"] == "compiling":  # by another process: its worker wrote its pid
            with contextlib.suppress(OSError, ValueError):
                info["worker_pid"] = int(_file("lock", dt).with_suffix(".lock").read_text())
        done = _read(_file("ready", dt)) or _read(_file("failed", dt))
        if done:
            keys = ("seconds", "cpu_seconds", "functions", "error")
            info.update({k: done[k] for k in keys if k in done})
        out["dtypes"][dt] = info
    return out


@contextlib.contextmanager
def numba_cache_dir():
    """Inside: numba's ``config.CACHE_DIR`` is :func:`cache_dir` (when writable), for the
    ``@njit(cache=True)`` decorators of :mod:`lstmkit.ops.fast` to pick up (numba chooses a
    function's cache directory when it is decorated). Restored afterwards: other numba users in
    the process keep their own setting. Yields whether the kernels can be cached at all."""
    from numba.core import config

    previous = config.CACHE_DIR
    ok = writable() is None
    if ok:
        config.CACHE_DIR = str(cache_dir())
    try:
        yield ok
    finally:
        config.CACHE_DIR = previous


# --- the worker ---------------------------------------------------------------------------------
def _compile_recorder():
    """Start recording numba's compile events; returns a function giving per-function
    ``(inclusive, exclusive)`` CPU seconds (exclusive: minus the compiles nested inside)."""
    from numba.core import event

    events = []

    class Listener(event.Listener):
        # CPU seconds of this process (numba compiles on one thread): unlike wall time, not
        # inflated by other processes on a busy machine
        def on_start(self, ev):
            events.append(("start", time.process_time(), ev))

        def on_end(self, ev):
            events.append(("end", time.process_time(), ev))

    event.register("numba:compile", Listener())

    def table() -> dict:
        stack, out = [], {}
        for kind, t, ev in events:
            if kind == "start":
                stack.append([t, 0.0])
                continue
            t0, nested = stack.pop()
            disp = ev.data["dispatcher"]
            name = f"{disp.py_func.__module__.rsplit('.', 1)[-1]}.{disp.py_func.__name__}"
            inc, exc = out.get(name, (0.0, 0.0))
            out[name] = (inc + t - t0, exc + (t - t0) - nested)
            if stack:
                stack[-1][1] += t - t0
        return out

    return table


def _worker(dtype: str) -> int:
    """Compile every kernel for ``dtype`` into the cache, then write the marker."""
    from .._atomic import atomic_write

    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # the foreground's work comes first
    if writable() is not None:
        print(f"lstmkit: cannot cache the kernels in {cache_dir()}: {writable()}", file=sys.stderr)
        return 1
    lock = _lock(dtype, blocking=False)
    if lock is None or ready(dtype):
        return 0  # another process is compiling it, or has
    lock.truncate(0)
    lock.write(str(os.getpid()))  # who is compiling, for lstmkit info
    lock.flush()
    cache_prune.record(cache_dir(), _FAST_DIR)  # whose kernels these are, for a later prune
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        table = _compile_recorder()
        from .fast import warmup

        warmup.run(*job_parts(dtype))
        times = table()
    except Exception as e:  # recorded, so that the next process does not start again
        info = {"error": f"{type(e).__name__}: {e}", "cpu": cpu_target()}
        atomic_write(_file("failed", dtype), lambda p: Path(p).write_text(json.dumps(info)))
        raise
    info = {
        "seconds": round(time.perf_counter() - t0, 2),
        "cpu_seconds": round(time.process_time() - c0, 2),  # wall time depends on the load
        "functions": len(times),
        "cpu": cpu_target(),
        "compile_cpu_seconds": {
            k: [round(a, 3), round(b, 3)] for k, (a, b) in sorted(times.items())
        },  # function: [inclusive, exclusive]
    }
    atomic_write(_file("ready", dtype), lambda p: Path(p).write_text(json.dumps(info, indent=1)))
    lock.close()
    print(f"lstmkit: compiled {len(times)} functions for {dtype} in {info['seconds']} s")
    for gone, why in cache_prune.prune(base_dir(), cache_dir(), hash_of):
        print(f"lstmkit: removed the kernel cache {gone}: {why}")
    return 0


def wait(dtype: str, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``dtype``'s kernels to be ready (tests, scripts)."""
    end = time.monotonic() + timeout
    while not ready(dtype):
        if time.monotonic() > end or state(dtype) == "failed":
            return False
        time.sleep(0.2)
    return True


def job_parts(job: str) -> tuple:
    """``"float32"`` -> ``("float32", None)``; ``"float32-lstm-relu-hard_sigmoid"`` ->
    ``("float32", ("lstm", "relu", "hard_sigmoid"))``."""
    dtype, _, rest = job.partition("-")
    return dtype, (tuple(rest.split("-")) if rest else None)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="lstmkit.ops.compiled.main", description=__doc__)
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("pair", nargs="?", help="an activation pair's job: cell-activation[-recurrent]")
    args = p.parse_args(argv)
    return _worker(args.dtype if args.pair is None else f"{args.dtype}-{args.pair}")


if __name__ == "__main__":
    sys.exit(main())
