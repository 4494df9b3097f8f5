"""The compiled fast path (``lstmkit.ops.fast``) against the NumPy reference, and the backend switch.

The reference is itself checked against PyTorch and finite differences in ``test_ops.py``; here the
witness for every fast number is the reference run on the same inputs: outputs, final states and
every gradient, in float64 (1e-12) and float32 (1e-6), relative to the array's largest magnitude
when that exceeds 1 (float32 sums of many terms cannot agree better than a few ulp of their size).

In float32 the reference has rounding errors of its own, and where gates saturate BPTT amplifies
them (``1 - y*y`` for ``y`` near 1 keeps few significant bits), so two correct float32
implementations can differ by more than 1e-6. The float32 bound is therefore 1e-6 plus twice the
reference's own float32 error, measured against the reference run in float64 on the same inputs.
Caches are interchangeable: the reference backward consumes a fast cache and vice versa.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

numba = pytest.importorskip("numba")  # the only reason to skip: numba is an optional dependency

from forked import in_forked_child
from lstmkit.ops import backend, fast
from lstmkit.ops import gru as ref_gru
from lstmkit.ops import lstm as ref_lstm
from lstmkit.ops import rnn as ref_rnn

TOL = {np.float32: 1e-6, np.float64: 1e-12}
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "rnn_sigmoid")
N_GATES = {"lstm": 4, "gru": 3}
REF = {"lstm": ref_lstm, "gru": ref_gru, "rnn": ref_rnn}

CONFIG = {
    "T": st.integers(1, 6),
    "B": st.integers(1, 4),
    "D": st.integers(1, 5),
    "H": st.integers(1, 9),
    "dtype": st.sampled_from([np.float32, np.float64]),
    "mask": st.sampled_from([None, "ragged", "holes"]),
    "rmask": st.booleans(),
    "seed": st.integers(0, 2**32 - 1),
}
SMALLEST = {
    "T": 1,
    "B": 1,
    "D": 1,
    "H": 1,
    "dtype": np.float32,
    "mask": None,
    "rmask": False,
    "seed": 0,
}
FEW = settings(max_examples=40, deadline=None)


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(initial=0))


def close(fast_value, ref_value, dtype, what, ref_own_error=0.0):
    """``ref_own_error``: how far the float32 reference is from the float64 one (see above)."""
    fast_value, ref_value = np.asarray(fast_value), np.asarray(ref_value)
    assert fast_value.shape == ref_value.shape, what
    assert fast_value.dtype == ref_value.dtype, what
    scale = max(1.0, float(np.abs(ref_value).max(initial=0)))
    tol = TOL[dtype] + 2 * ref_own_error / scale
    err = max_diff(fast_value, ref_value) / scale
    assert err <= tol, f"{what}: scaled error {err:.3g} > {tol:.3g}"


def problem(cell, T, B, D, H, dtype, mask, rmask, seed):
    """Arguments for ``<cell>_forward`` and upstream gradients, shaped like a real training step."""
    rng = np.random.default_rng(seed)
    G = N_GATES.get(cell, 1)
    s = 1.5 / np.sqrt(H)  # large enough that some gates saturate past the tanh clamp
    args = {
        "x": rng.standard_normal((T, B, D)),
        "h0": 0.5 * rng.standard_normal((B, H)),
        "kernel": rng.uniform(-s, s, (D, G * H)),
        "recurrent_kernel": rng.uniform(-s, s, (H, G * H)),
        "bias": rng.uniform(-s, s, (2, 3 * H) if cell == "gru" else (G * H,)),
    }
    if cell == "lstm":
        args["c0"] = 0.5 * rng.standard_normal((B, H))
    args = {k: v.astype(dtype) for k, v in args.items()}
    if mask == "ragged":  # post-padded, lengths 0..T (a length-0 sequence carries h0 throughout)
        args["mask"] = np.arange(T)[:, None] < rng.integers(0, T + 1, B)[None]
    elif mask == "holes":
        args["mask"] = rng.random((T, B)) < 0.6
    if rmask:
        args["recurrent_mask"] = ((rng.random((B, H)) < 0.7) / 0.7).astype(dtype)
    grads = [rng.standard_normal((T, B, H)).astype(dtype) for _ in range(3)]
    return args, grads


def split(cell):
    base, _, act = cell.partition("_")
    return base, ({"activation": act} if act else {})


def run(mod, base, args, kw, grads):
    """Forward then backward; returns (outputs to compare, cache)."""
    dhs, dh_T, dc_T = grads[0], grads[1][0], grads[2][0]
    fwd = getattr(mod, f"{base}_forward")
    bwd = getattr(mod, f"{base}_backward")
    if base == "lstm":
        hs, (h_T, c_T), cache = fwd(**args, **kw)
        g = bwd(dhs, dh_T, dc_T, cache)
        return {"hs": hs, "h_T": h_T, "c_T": c_T, **g}, cache
    hs, h_T, cache = fwd(**args, **kw)
    g = bwd(dhs, dh_T, cache)
    return {"hs": hs, "h_T": h_T, **g}, cache


def backward_of(mod, base, cache, grads):
    dhs, dh_T, dc_T = grads[0], grads[1][0], grads[2][0]
    bwd = getattr(mod, f"{base}_backward")
    return bwd(dhs, dh_T, dc_T, cache) if base == "lstm" else bwd(dhs, dh_T, cache)


@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**CONFIG)
@example(**SMALLEST)
@example(**{**SMALLEST, "dtype": np.float64, "mask": "ragged", "rmask": True})
def test_fast_matches_reference(cell, T, B, D, H, dtype, mask, rmask, seed):
    base, kw = split(cell)
    args, grads = problem(base, T, B, D, H, dtype, mask, rmask, seed)
    ref_out, ref_cache = run(REF[base], base, args, kw, grads)
    fast_out, fast_cache = run(fast, base, args, kw, grads)
    own = dict.fromkeys(ref_out, 0.0)
    if dtype == np.float32:
        wide = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in args.items()}
        ref64, _ = run(REF[base], base, wide, kw, [g.astype(np.float64) for g in grads])
        own = {k: max_diff(ref_out[k], ref64[k]) for k in ref_out}
    assert set(fast_out) == set(ref_out)
    for k in ref_out:
        close(fast_out[k], ref_out[k], dtype, f"{cell} {k}", own[k])
    # Same cache type and contents, so the two backwards are interchangeable.
    assert type(fast_cache) is type(ref_cache)
    for field, a, b in zip(ref_cache._fields, fast_cache, ref_cache):
        if field == "buffers":  # the compiled LSTM forward's own buffers; None from the reference
            continue
        if isinstance(b, np.ndarray) and b.dtype.kind == "f":
            close(a, b, dtype, f"{cell} cache.{field}", max(own.values()))
        else:
            assert a is b or np.array_equal(a, b), f"{cell} cache.{field}"
    for mod, cache in ((REF[base], fast_cache), (fast, ref_cache)):
        g = backward_of(mod, base, cache, grads)
        for k in g:
            close(g[k], ref_out[k], dtype, f"{cell} {k} from the other backend's cache", own[k])


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=15, deadline=None)
@given(**CONFIG)
def test_infer_and_step_match_reference(cell, T, B, D, H, dtype, mask, rmask, seed):
    base, kw = split(cell)
    args, _ = problem(base, T, B, D, H, dtype, mask, False, seed)
    ref_fwd = getattr(REF[base], f"{base}_forward")
    ref_out = ref_fwd(**args, **kw)
    out = getattr(fast, f"{base}_infer")(**args, **kw)
    close(out[0], ref_out[0], dtype, f"{cell} infer hs")
    if base == "lstm":
        close(out[1][0], ref_out[1][0], dtype, "lstm infer h_T")
        close(out[1][1], ref_out[1][1], dtype, "lstm infer c_T")
    else:
        close(out[1], ref_out[1], dtype, f"{cell} infer h_T")
    # One streaming step from (h0, c0) equals the reference step.
    step_args = [args["x"][0], args["h0"]] + ([args["c0"]] if base == "lstm" else [])
    step_args += [args["kernel"], args["recurrent_kernel"], args["bias"]]
    want = getattr(REF[base], f"{base}_step")(*step_args, **kw)
    got = getattr(fast, f"{base}_step")(*step_args, **kw)
    for w, g in zip(*(((v,) if base != "lstm" else v) for v in (want, got))):
        close(g, w, dtype, f"{cell} step")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_and_steps_split_over_threads_match_reference(cell, dtype, monkeypatch):
    # Big problems run batch rows (the loop) and time chunks (the big GEMMs) on several threads;
    # force that on a small problem (it normally starts at benchmark sizes), with odd numbers of
    # rows, steps and threads so the slices are uneven.
    from lstmkit.ops.fast import common

    monkeypatch.setattr(common, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(common, "_THREADS", 3)
    assert common.split(7, 1.0) == [(0, 2), (2, 5), (5, 7)]
    base, kw = split(cell)
    args, grads = problem(base, 9, 7, 4, 5, dtype, "holes", True, 7)
    ref_out, _ = run(REF[base], base, args, kw, grads)
    fast_out, _ = run(fast, base, args, kw, grads)
    for k in ref_out:
        close(fast_out[k], ref_out[k], dtype, f"{cell} {k}", 1e-6 if dtype == np.float32 else 0)
    infer = getattr(fast, f"{base}_infer")(
        **{k: v for k, v in args.items() if k != "recurrent_mask"}, **kw
    )
    ref_hs = getattr(REF[base], f"{base}_forward")(
        **{k: v for k, v in args.items() if k != "recurrent_mask"}, **kw
    )[0]
    close(infer[0], ref_hs, dtype, f"{cell} infer", 1e-6 if dtype == np.float32 else 0)


def test_in_parallel_keeps_order_and_steals_what_no_worker_started(monkeypatch):
    import threading

    from lstmkit.ops.fast import common

    slices = [(0, 2), (2, 5), (5, 7)]
    assert common.in_parallel(slices, lambda a, b: (a, b), 1e9) == slices
    # Keep the only worker busy: the second slice must then run on the calling thread rather
    # than wait for the worker (which is what happens when the OS does not schedule it).
    monkeypatch.setattr(common, "_POOL", None)
    monkeypatch.setattr(common, "_POOL_SIZE", 0)
    release = threading.Event()
    blocker = common._pool(1).submit(release.wait, 30)
    try:
        me = threading.get_ident()
        out = common.in_parallel([(0, 1), (1, 2)], lambda a, b: threading.get_ident(), 1e9)
        assert out == [me, me]
    finally:
        release.set()
        blocker.result()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_threads_work_in_a_forked_child(monkeypatch):
    # The worker pool is per process: a child forked after the parent used it starts its own.
    from lstmkit.ops.fast import common

    monkeypatch.setattr(common, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(common, "_THREADS", 2)
    args, _ = problem("lstm", 4, 4, 2, 3, np.float64, None, False, 3)
    want = fast.lstm_infer(**args)[0]
    assert in_forked_child(lambda: np.array_equal(fast.lstm_infer(**args)[0], want))


def test_no_upstream_gradients_and_empty_sequence():
    args, _grads = problem("lstm", 3, 2, 2, 3, np.float64, "ragged", True, 1)
    _, _, cache = fast.lstm_forward(**args)
    got = fast.lstm_backward(None, None, None, cache)
    want = ref_lstm.lstm_backward(None, None, None, cache)
    for k in want:
        close(got[k], want[k], np.float64, k)
    args, _ = problem("lstm", 0, 2, 2, 3, np.float32, None, False, 1)
    hs, (h_T, c_T), _ = fast.lstm_forward(**args)
    assert hs.shape == (0, 2, 3)
    np.testing.assert_array_equal(h_T, args["h0"])
    np.testing.assert_array_equal(c_T, args["c0"])


def test_wrong_shapes_raise_naming_the_arguments():
    args, _ = problem("lstm", 3, 2, 2, 3, np.float32, None, False, 1)
    with pytest.raises(ValueError, match="'recurrent_kernel' must have shape \\(3, 12\\)"):
        fast.lstm_forward(**{**args, "recurrent_kernel": args["recurrent_kernel"][:, :8]})
    with pytest.raises(ValueError, match="'mask'.*'recurrent_mask'"):
        fast.lstm_forward(**args, mask=np.ones((2, 2), bool), recurrent_mask=np.ones((3, 3)))
    gargs, _ = problem("gru", 3, 2, 2, 3, np.float32, None, False, 1)
    with pytest.raises(ValueError, match="gru_forward: argument 'bias'"):
        fast.gru_forward(**{**gargs, "bias": gargs["bias"][0]})


def test_rnn_unknown_activation_is_the_reference_error():
    args, _ = problem("rnn", 2, 1, 1, 1, np.float32, None, False, 0)
    with pytest.raises(ValueError, match="'activation'"):
        fast.rnn_forward(**args, activation="swish2")


# --- the backend switch -------------------------------------------------------------------------


@pytest.fixture
def restore_backend():
    saved = backend._choice
    yield
    backend._choice = saved


def test_backend_selects_implementations(restore_backend):
    assert backend.set_backend("numpy") == "numpy"
    ops = backend.ops_for("lstm")
    assert ops.forward is ref_lstm.lstm_forward and ops.backward is ref_lstm.lstm_backward
    assert backend.set_backend("numba") == "numba"
    for cell in ("lstm", "gru", "rnn"):
        ops = backend.ops_for(cell)
        # (the LSTM's given the scope's workspace by a thin wrapper: backend._in_workspace)
        assert getattr(ops.forward, "__wrapped__", ops.forward) is getattr(fast, f"{cell}_forward")
        assert ops.step is getattr(fast, f"{cell}_step")
        assert ops.backend == "numba"
    assert backend.set_backend("auto") == "numba"  # numba is importable here
    assert backend.ops_for("gru", backend="numpy").forward is ref_gru.gru_forward
    with pytest.raises(ValueError, match="argument 'name' must be one of"):
        backend.set_backend("cuda")
    with pytest.raises(ValueError, match="argument 'cell'"):
        backend.ops_for("transformer")


def test_reference_infer_drops_the_cache(restore_backend):
    args, _ = problem("gru", 3, 2, 2, 3, np.float64, None, False, 1)
    hs, h_T = backend.ops_for("gru", backend="numpy").infer(**args)
    want_hs, want_h, _ = ref_gru.gru_forward(**args)
    np.testing.assert_array_equal(hs, want_hs)
    np.testing.assert_array_equal(h_T, want_h)


def _run_python(code, **env):
    full_env = {**os.environ, **env}
    r = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_env_var_and_numba_stays_optional():
    # The environment variable picks the starting backend; nothing imports numba before it is
    # needed; with numba made unimportable, 'auto' falls back to NumPy and 'numba' says why.
    code = (
        "import sys\n"
        "import lstmkit\n"
        "from lstmkit.ops import backend\n"
        "assert 'numba' not in sys.modules\n"
        "print(backend.get_backend(), 'numba' in sys.modules)\n"
    )
    assert _run_python(code, LSTMKIT_BACKEND="numpy") == "numpy False"
    assert _run_python(code, LSTMKIT_BACKEND="auto") == "numba True"
    blocked = (
        "import sys\n"
        "sys.modules['numba'] = None  # makes `import numba` raise ImportError\n"
        "from lstmkit.ops import backend\n"
        "print(backend.get_backend())\n"
        "try:\n"
        "    backend.set_backend('numba')\n"
        "except ImportError as e:\n"
        "    print('ImportError', 'lstmkit[fast]' in str(e))\n"
    )
    assert _run_python(blocked, LSTMKIT_BACKEND="auto").split("\n") == [
        "numpy",
        "ImportError True",
    ]
