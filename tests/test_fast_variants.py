"""Every micro-kernel variant this CPU can run (``lstmkit.ops.fast.packed``: avx512, avx2,
generic), forced in turn, against the NumPy reference through the layers users call: a
bidirectional LSTM (both directions), forward, every gradient and the cache-free inference, in
float32 and float64, with and without a mask, on batches that take the full-width block, the
half-width one, the overlapping last block and the zero-padded narrow path of each variant.

Tolerances as in ``test_fast_ops.py``: float64 1e-12; float32 1e-6 plus twice the float32
reference's own error (against the reference in float64), relative to the array's largest
magnitude when that exceeds 1. Forcing a variant that the CPU cannot run is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path

import lstmkit
from lstmkit.layers import LSTM, Bidirectional
from lstmkit.ops import backend, compiled
from lstmkit.ops.fast import packed

VARIANTS = compiled.runnable_variants()
T, D, H = 6, 7, 13  # odd sizes: partial panels (4H = 52 rows = 8 panels of 6 + 4)
BATCHES = (2, 5, 12, 33)  # below, at and above every variant's NR / 2 and NR (4 .. 32)


@pytest.fixture(params=VARIANTS)
def variant(request):
    before = backend.get_backend()
    packed.set_variant(request.param)
    yield request.param
    packed.set_variant(None)
    backend.set_backend(before)


def _run(layer, x, mask, dy, name):
    backend.set_backend(name)
    y, cache = layer.forward(x, training=True, mask=mask)
    dx, grads = layer.backward(dy, cache)
    return {"y": y, "dx": dx, "infer": layer.infer(x, mask=mask), **grads}


def _case(B, dtype, masked, seed):
    rng = np.random.default_rng(seed)
    lstmkit.set_random_seed(seed)
    layer = Bidirectional(LSTM(H, return_sequences=True, bias_initializer="uniform"))
    layer.build((T, D), dtype=dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    mask = None
    if masked:  # post-padded, lengths 1..T
        mask = np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]
    dy = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    return layer, x, mask, dy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("masked", [False, True])
def test_every_variant_matches_the_reference(variant, dtype, masked):
    for B in BATCHES:
        layer, x, mask, dy = _case(B, dtype, masked, seed=B)
        got = _run(layer, x, mask, dy, "numba")
        want = _run(layer, x, mask, dy, "numpy")
        own = dict.fromkeys(want, 0.0)
        if dtype == "float32":  # the float32 reference's own error, against float64
            wide = _case(B, "float64", masked, seed=B)[0]
            for role, p in layer.params.items():
                wide.params[role][...] = p
            exact = _run(wide, x.astype(np.float64), mask, dy.astype(np.float64), "numpy")
            own = {k: float(np.abs(want[k] - exact[k]).max()) for k in want}
        for k in want:
            scale = max(1.0, float(np.abs(want[k]).max()))
            err = float(np.abs(np.asarray(got[k], np.float64) - want[k]).max()) / scale
            tol = (1e-6 if dtype == "float32" else 1e-12) + 2 * own[k] / scale
            assert got[k].dtype == want[k].dtype, (variant, B, k)
            assert err <= tol, f"{variant}, B={B}, {k}: scaled error {err:.3g} > {tol:.3g}"


def test_a_variant_the_cpu_lacks_is_refused(monkeypatch):
    monkeypatch.setattr(compiled, "host_features", lambda: frozenset({"sse2", "avx", "avx2"}))
    assert compiled.runnable_variants() == ["generic"]  # avx2 alone is not enough: no fma
    with pytest.raises(ValueError, match=r"'avx512' needs CPU features \['avx512bw'"):
        packed.set_variant("avx512")
    monkeypatch.setenv("LSTMKIT_KERNEL", "avx2")
    with pytest.raises(ValueError, match=r"LSTMKIT_KERNEL: kernel variant 'avx2' needs .*'fma'"):
        compiled.kernel_variant()
    monkeypatch.setenv("LSTMKIT_KERNEL", "sse9")
    with pytest.raises(ValueError, match=r"LSTMKIT_KERNEL must be one of .*got 'sse9'"):
        compiled.kernel_variant()


def test_the_env_var_and_the_cpu_choose(monkeypatch):
    monkeypatch.delenv("LSTMKIT_KERNEL", raising=False)
    assert packed.variant() == VARIANTS[0]  # the best this CPU runs
    for v in VARIANTS:
        monkeypatch.setenv("LSTMKIT_KERNEL", v)
        assert packed.variant() == v
        assert packed.kernels(np.float32)[2] == packed.block_columns(4, v)
    monkeypatch.setenv("LSTMKIT_KERNEL", "auto")
    monkeypatch.setattr(compiled, "cpu_target", lambda: {"features": "+sse2,-avx2"})
    assert packed.variant() == "generic"  # numba told to target a baseline CPU: so do we


def _info(tmp_path, kernel):
    env = dict(os.environ, LSTMKIT_BACKEND="numba", LSTMKIT_KERNEL=kernel)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(lstmkit.__file__).parents[1]), *sys.path])
    out = subprocess.run([sys.executable, "-m", "lstmkit", "info", "--json"], env=env,
                         capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_info_reports_the_variant_that_runs(tmp_path):
    forced = VARIANTS[-1]  # "generic": every CPU runs it
    report = _info(tmp_path, forced)
    v = report["variant"]
    assert v["kernel"] == forced and v["forced"] == forced and v["runnable"] == VARIANTS
    assert v["block"]["float32"] == f"6x{packed.block_columns(4, forced)}"
    assert f"{forced}: 6x{packed.block_columns(4, forced)} float32" in report["kernels"]["lstm"]
    report = _info(tmp_path, "sse9")  # a bad value is reported, not a crash of info
    assert report["variant"]["kernel"] is None and "got 'sse9'" in report["variant"]["error"]
