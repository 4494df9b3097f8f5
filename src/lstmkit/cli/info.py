"""``lstmkit info [--json]``: what this installation runs on.

Version, Python, NumPy, the ops backend in use and why, the compiled kernels and the CPU features
numba targets, threads, BLAS, and the packages found: lstmkit's dependencies and the optional
extras (``torch``, ``onnx``, ``keras``, ``forecast``, ``translate``, ``ray``: :data:`EXTRAS`).
Package versions come from ``importlib.metadata``, so torch, Keras and ONNX are never imported;
numba and SciPy are imported only when the compiled backend is the one in use (then they are
loaded anyway by the first training step).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import sys

from .._system import usable_cpus
from ..ops import compiled

# distribution -> lstmkit extra that installs it
EXTRAS = {
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "keras": "keras",
    "h5py": "keras",
    "statsforecast": "forecast",
    "sentencepiece": "translate",
    "ray": "ray",
}
DEPENDENCIES = (
    "numpy", "numba", "llvmlite", "scipy", "tqdm", "matplotlib", "safetensors", "sacrebleu",
)  # fmt: skip
# used by tests, benchmarks or info itself when present; listed only if installed
OTHERS = (
    "threadpoolctl",
    "scikit-learn",
    "statsmodels",
    "pytest",
    "hypothesis",
)
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    report = collect()
    print(json.dumps(report, indent=2) if args.json else format_text(report))
    return 0


# --- collect ------------------------------------------------------------------------------------
def collect() -> dict:
    """Everything ``lstmkit info`` prints, as plain JSON-able values."""
    import numpy as np

    from .. import __version__

    backend = _backend()
    name = backend["name"] if backend["available"] else None  # what the sections below describe
    compile_ = _compile(backend)
    return {
        "lstmkit": {"version": __version__, "path": os.path.dirname(os.path.dirname(__file__))},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "numpy": np.__version__,
        "backend": backend,
        "kernels": _kernels(name),
        "compile": compile_,
        "variant": _variant(compile_),
        "cpu": _cpu(),
        "threads": _threads(name),
        "blas": _blas(name),
        "dependencies": {d: _version(d) for d in DEPENDENCIES},
        "extras": {d: {"version": _version(d), "extra": e} for d, e in EXTRAS.items()},
        "others": {d: v for d in OTHERS if (v := _version(d)) is not None},
    }


def _version(dist: str) -> str | None:
    names = (dist, "onnxruntime-gpu") if dist == "onnxruntime" else (dist,)
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None


def _backend() -> dict:
    """``{"name", "requested", "available", "reason"}``: the backend of
    :mod:`lstmkit.ops.backend`, and whether it can run (``LSTMKIT_BACKEND=numba`` is taken at its
    word until the first compiled call)."""
    from ..ops import backend

    env = os.environ.get("LSTMKIT_BACKEND")
    requested = (env or "auto").strip().lower() or "auto"
    try:
        name = backend.peek_backend()  # what runs now, without starting a compilation
    except ValueError as e:  # a bad LSTMKIT_BACKEND or LSTMKIT_COMPILE: say so instead of failing
        return {"name": None, "requested": requested, "available": False, "reason": str(e)}
    if requested == "auto" and backend.waits_for_compilation():
        states = {dt: compiled.state(dt) for dt in compiled.DTYPES}
        if name == "numba":
            ready = [dt for dt, st in states.items() if st == "ready"]
            reason = f"auto: compiled kernels ready in the cache for {', '.join(ready)}"
        else:
            reason = (
                f"auto: compiled kernels {states['float32']} (float32); the NumPy reference runs "
                "until they are in the cache, then the compiled ones from the next fit or predict"
            )
        return {"name": name, "requested": requested, "available": True, "reason": reason}
    if name == "numba" and (error := _fast_import_error()):
        reason = f"LSTMKIT_BACKEND=numba, but the compiled kernels cannot run ({error})"
        return {"name": name, "requested": requested, "available": False, "reason": reason}
    if env and requested != "auto":
        reason = f"LSTMKIT_BACKEND={requested}"
    elif name == "numba":
        reason = "auto: numba and SciPy import, so the compiled kernels run"
        if compiled.mode() == "now":
            reason += " (LSTMKIT_COMPILE=now: compiled in this process at first use)"
    elif compiled.mode() == "off":
        reason = "auto with LSTMKIT_COMPILE=off: NumPy reference"
    elif compiled.toolchain_available() and (error := compiled.writable()) is not None:
        reason = (
            f"auto: no writable cache for the compiled kernels ({error}); NumPy reference "
            "(set LSTMKIT_CACHE_DIR, or LSTMKIT_COMPILE=now to compile in every process)"
        )
    else:
        reason = f"auto: the compiled kernels cannot run ({_fast_import_error()}); NumPy reference"
    return {"name": name, "requested": requested, "available": True, "reason": reason}


def _compile(backend: dict) -> dict | None:
    """Who compiles the kernels, where they are cached and which are ready
    (:func:`lstmkit.ops.compiled.status`); None when the compiled path is out of the picture
    (the NumPy backend asked for by name, or numba missing: then nothing of it is imported)."""
    if backend["name"] is None or not compiled.toolchain_available():
        return None
    if backend["requested"] == "numpy":
        return None
    return compiled.status()


def _variant(compile_: dict | None) -> dict | None:
    """The packed micro-kernel variant that runs (``LSTMKIT_KERNEL`` or the best the target CPU
    has; :func:`lstmkit.ops.compiled.kernel_variant`), its register block, the variants this CPU
    can run, and the CPU level numba compiles the rest for (``NUMBA_CPU_NAME`` /
    ``NUMBA_CPU_FEATURES`` win over the host)."""
    if compile_ is None:
        return None
    target = compiled.cpu_target()
    feats = {f[1:] for f in target["features"].split(",") if f.startswith("+")}
    if "avx512f" in feats:
        level = "avx512"
    elif {"avx2", "fma"} <= feats:
        level = "avx2+fma"
    else:
        level = "plain"
    forced = os.environ.get(compiled.ENV_KERNEL, "").strip().lower() or None
    out = {"target_cpu": target["cpu"], "level": level, "forced": forced,
           "runnable": compiled.runnable_variants()}  # fmt: skip
    try:
        name = compiled.kernel_variant()
    except ValueError as e:  # a bad LSTMKIT_KERNEL: say so (the kernels would refuse to run)
        return {**out, "kernel": None, "error": str(e)}
    width = compiled.KERNEL_VARIANTS[name][1]
    # the block: MR rows x 2 vectors (lstmkit.ops.fast.packed, imported only with numba)
    return {**out, "kernel": name, "vector_bits": 8 * width,
            "block": {"float32": f"6x{2 * width // 4}", "float64": f"6x{2 * width // 8}"}}  # fmt: skip


def _fast_import_error() -> str | None:
    try:
        importlib.import_module("lstmkit.ops.fast")
    except ImportError as e:
        return f"{type(e).__name__}: {e}"
    return None


def _kernels(name) -> dict:
    if name != "numba":
        return {
            "compiled": False,
            "cells": "NumPy reference (lstmkit.ops.lstm, gru, rnn); products through numpy.matmul",
        }
    import llvmlite
    import llvmlite.binding as llvm
    import numba

    from ..ops.fast import packed

    cpu_name = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features() if not numba.config.CPU_NAME else {}
    try:
        name = packed.variant()
        block = (
            f"{packed.MR}x{packed.block_columns(4)} float32, {packed.MR}x{packed.block_columns(8)}"
        )
        block = f"{name}: {block} float64, {8 * compiled.KERNEL_VARIANTS[name][1]}-bit vectors"
    except ValueError as e:
        block = str(e)
    return {
        "compiled": True,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "target_cpu": cpu_name,
        "target_features": {f: bool(features.get(f)) for f in CPU_FLAGS} if features else None,
        "lstm": (
            f"batch >= 2: feature-major, one product per step through a packed micro-kernel "
            f"({block}); batch 1: row-major, no BLAS in inference"
        ),
        "gru_rnn": "row-major time loop, one BLAS call per step (SciPy's BLAS)",
        "float32_tanh": (
            "tanh and sigmoid in float32 arithmetic, vectorised (at most 2.61 and 2.41 ulp; "
            "lstmkit.ops.fast.activations)"
        ),
        "threading_layer": numba.config.THREADING_LAYER,
        "cache": _numba_cache(),
    }


def _numba_cache() -> dict:
    """Where numba keeps the compiled kernels and how many are there (0: the first call of each
    compiles, about 15 s in all)."""
    directory = str(compiled.cache_dir())
    count = 0
    for _root, _dirs, files in os.walk(directory):
        count += sum(f.endswith(".nbi") for f in files)
    return {"directory": directory, "compiled_functions": count}


def _cpu() -> dict:
    out = {"model": platform.processor() or None, "flags": None}
    try:
        with open("/proc/cpuinfo") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    for ln in lines:
        key, _, value = ln.partition(":")
        if key.strip() == "model name" and out["model"] in (None, "", "x86_64"):
            out["model"] = value.strip()
        if key.strip() in ("flags", "Features") and out["flags"] is None:
            have = set(value.split())
            out["flags"] = {f: f in have for f in CPU_FLAGS}
    out["cpus"] = os.cpu_count()
    out["usable_cpus"] = usable_cpus()
    return out


def _threads(name) -> dict:
    out = {
        "LSTMKIT_NUM_THREADS": os.environ.get("LSTMKIT_NUM_THREADS"),
        "default": usable_cpus(),
        "lstmkit": None,
        "blas_env": {
            k: os.environ[k]
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
    }
    if name == "numba":
        from ..ops.fast import common

        out["lstmkit"] = common.get_num_threads()
    return out


def _blas(name) -> dict:
    """BLAS libraries loaded: threadpoolctl's view when installed, else NumPy's build config.
    With the compiled backend SciPy's BLAS (the one the kernels call) is loaded first."""
    if name == "numba":
        importlib.import_module("scipy.linalg.cython_blas")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        libs = [_numpy_blas()]
        if name == "numba":  # every OpenBLAS loaded, SciPy's included, read through ctypes
            from ..ops.fast import common

            libs += [
                {"api": "openblas", "architecture": core, "file": f}
                for f, core in common.openblas_kernels().items()
            ]
        return {"source": "numpy.show_config and ctypes", "libraries": libs}
    libs = [
        {
            "api": i.get("internal_api"),
            "version": i.get("version"),
            "threads": i.get("num_threads"),
            "architecture": i.get("architecture"),
            # e.g. numpy.libs/libscipy_openblas64_-....so: whose copy it is
            "file": os.path.join(*i.get("filepath", "?").split(os.sep)[-2:]),
        }
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return {"source": "threadpoolctl", "libraries": libs}


def _numpy_blas() -> dict:
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # NumPy < 1.26 prints only
        return {"api": "unknown (NumPy < 1.26)"}
    return {"api": blas.get("name"), "version": blas.get("version"), "file": "numpy's"}


# --- text ---------------------------------------------------------------------------------------
def format_text(r: dict) -> str:
    py = r["python"]
    rows = [
        ("lstmkit", f"{r['lstmkit']['version']} ({r['lstmkit']['path']})"),
        ("python", f"{py['version']} ({py['implementation']}, {py['executable']})"),
        ("platform", py["platform"]),
        ("numpy", r["numpy"]),
        ("backend", f"{r['backend']['name']} ({r['backend']['reason']})"),
        *_kernel_rows(r["kernels"]),
        *_compile_rows(r.get("compile"), r.get("variant")),
        ("cpu", _cpu_text(r["cpu"])),
        ("threads", _threads_text(r["threads"])),
        ("blas", _blas_text(r["blas"])),
        ("dependencies", _versions_text({d: v for d, v in r["dependencies"].items()})),
        ("extras", _extras_text(r["extras"])),
        ("also found", _versions_text(r["others"]) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _kernel_rows(k: dict) -> list[tuple[str, str]]:
    if not k["compiled"]:
        return [("kernels", k["cells"])]
    feats = k["target_features"]
    flags = _flags_text(feats) if feats else "set by NUMBA_CPU_NAME"
    cache = k["cache"]
    return [
        (
            "kernels",
            f"numba {k['numba']} (llvmlite {k['llvmlite']}), target {k['target_cpu']}: {flags}",
        ),
        ("  lstm", k["lstm"]),
        ("  gru, rnn", k["gru_rnn"]),
        ("  float32 tanh", k["float32_tanh"]),
        ("  cached", f"{cache['compiled_functions']} compiled functions in {cache['directory']}"),
    ]


def _compile_rows(c: dict | None, variant: dict | None) -> list[tuple[str, str]]:
    if c is None:
        return []
    states = []
    for dt, info in c["dtypes"].items():
        text = f"{dt} {info['state']}"
        if info["state"] == "ready" and "seconds" in info:
            cpu = f", {info['cpu_seconds']} s of CPU" if "cpu_seconds" in info else ""
            text += f" ({info['functions']} functions compiled in {info['seconds']} s{cpu})"
        elif "worker_pid" in info and info["state"] == "compiling":
            text += f" (pid {info['worker_pid']})"
        elif info["state"] == "failed":
            text += f" ({info.get('error')})"
        states.append(text)
    if c["cache_writable"]:
        cache = c["cache_dir"]
    else:
        cache = f"no cache: {c['cache_dir']} is not writable ({c['cache_error']})"
        cache += "; set LSTMKIT_CACHE_DIR to a writable directory"
    rows = [
        ("  compile", f"{c['mode']} (LSTMKIT_COMPILE); {', '.join(states)}; CPU {c['cpu_key']}"),
        ("  cache", cache),
    ]
    if variant:
        rows.append(("  variant", _variant_text(variant)))
    return rows


def _variant_text(v: dict) -> str:
    numba_level = f"numba targets CPU level {v['level']} ({v['target_cpu']})"
    if v["kernel"] is None:
        return f"{v['error']}; {numba_level}"
    how = f"LSTMKIT_KERNEL={v['forced']}" if v["forced"] else "auto: the best this CPU runs"
    return (
        f"{v['kernel']} ({how}; runnable: {', '.join(v['runnable'])}): packed micro-kernel "
        f"{v['block']['float32']} float32, {v['block']['float64']} float64, "
        f"{v['vector_bits']}-bit vectors; {numba_level}"
    )


def _flags_text(flags: dict | None) -> str:
    if flags is None:
        return "unknown"
    have = [f for f, on in flags.items() if on]
    missing = [f for f, on in flags.items() if not on]
    return " ".join(have) + (f" (no {' '.join(missing)})" if missing else "")


def _cpu_text(c: dict) -> str:
    return f"{c['model']}, {c['usable_cpus']} of {c['cpus']} CPUs usable; {_flags_text(c['flags'])}"


def _threads_text(t: dict) -> str:
    env = t["LSTMKIT_NUM_THREADS"]
    source = f"LSTMKIT_NUM_THREADS={env}" if env else f"default: the {t['default']} usable CPUs"
    if t["lstmkit"] is None:
        text = "lstmkit runs no threads of its own on the NumPy backend (BLAS may)"
    else:
        text = f"{t['lstmkit']} ({source})"
    if t["blas_env"]:
        text += "; " + " ".join(f"{k}={v}" for k, v in t["blas_env"].items())
    return text


def _blas_text(b: dict) -> str:
    parts = []
    for lib in b["libraries"]:
        extra = ", ".join(
            f"{v}" if k != "threads" else f"{v} thread{'s' if v != 1 else ''}"
            for k, v in lib.items()
            if k in ("architecture", "threads") and v is not None
        )
        name = f"{lib.get('api')} {lib.get('version') or ''}".strip()
        parts.append(f"{name} ({extra}; {lib.get('file')})" if extra else f"{name} ({lib['file']})")
    return "; ".join(parts) or "none loaded"


def _versions_text(versions: dict) -> str:
    return ", ".join(f"{d} {v if v else 'MISSING'}" for d, v in versions.items())


def _extras_text(extras: dict) -> str:
    found = [f"{d} {e['version']}" for d, e in extras.items() if e["version"]]
    missing = sorted({e["extra"] for e in extras.values() if not e["version"]})
    text = ", ".join(found) or "none"
    if missing:
        text += "; not installed: " + ", ".join(f"'lstmkit[{m}]'" for m in missing)
    return text
