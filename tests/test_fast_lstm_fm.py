"""The feature-major LSTM kernels (``lstmkit.ops.fast.lstm_fm``) against the NumPy reference.

``tests/test_fast_ops.py`` already runs them through ``lstmkit.ops.fast.lstm`` on small random
configs (the dispatch picks them for every batch of 2 or more on one thread); here they are
called directly, on the shapes where their layout matters (B = 1, odd B and H, masks that skip
t = 0, recurrent dropout), and the dispatch itself is checked.

Tolerances as in ``test_fast_ops.py``: float64 1e-12, float32 1e-6 plus twice the float32
reference's own error (against the reference in float64), relative to the array's largest
magnitude when that exceeds 1.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path

from lstmkit.ops import lstm as ref
from lstmkit.ops.fast import common, lstm_fm
from lstmkit.ops.fast import lstm as fast
from lstmkit.ops.workspace import Workspace

SHAPES = [  # (T, B, D, H)
    (1, 1, 1, 1),
    (1, 2, 3, 1),
    (6, 1, 4, 5),
    (7, 3, 2, 9),
    (12, 2, 5, 16),
    (9, 33, 7, 13),
    (20, 16, 8, 32),
]
MASKS = (None, "ragged", "holes")


def problem(T, B, D, H, dtype, mask, rmask, seed=0):
    rng = np.random.default_rng(seed)
    s = 1.5 / np.sqrt(H)  # large enough that some gates saturate
    args = {
        "x": rng.standard_normal((T, B, D)),
        "h0": 0.5 * rng.standard_normal((B, H)),
        "c0": 0.5 * rng.standard_normal((B, H)),
        "kernel": rng.uniform(-s, s, (D, 4 * H)),
        "recurrent_kernel": rng.uniform(-s, s, (H, 4 * H)),
        "bias": rng.uniform(-s, s, (4 * H,)),
    }
    args = {k: v.astype(dtype) for k, v in args.items()}
    if mask == "ragged":  # post-padded, lengths 0..T (length 0 carries h0 and c0 throughout)
        args["mask"] = np.arange(T)[:, None] < rng.integers(0, T + 1, B)[None]
    elif mask == "holes":  # arbitrary skipped steps, t = 0 included
        args["mask"] = rng.random((T, B)) < 0.6
    if rmask:
        args["recurrent_mask"] = ((rng.random((B, H)) < 0.7) / 0.7).astype(dtype)
    upstream = [rng.standard_normal(s).astype(dtype) for s in ((T, B, H), (B, H), (B, H))]
    return args, upstream


def positional(args):
    return [args[k] for k in ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias")]


def reference(args, upstream):
    hs, (h_T, c_T), cache = ref.lstm_forward(**args)
    grads = ref.lstm_backward(*upstream, cache)
    return {"hs": hs, "h_T": h_T, "c_T": c_T, **grads}, cache


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(initial=0))


def tolerances(args, upstream, want):
    """Per output: the bound of the module docstring."""
    dtype = args["x"].dtype
    if dtype == np.float64:
        return dict.fromkeys(want, 1e-12)
    wide = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in args.items()}
    want64, _ = reference(wide, [u.astype(np.float64) for u in upstream])
    tol = {}
    for k in want:
        scale = max(1.0, float(np.abs(want[k]).max(initial=0)))
        tol[k] = 1e-6 + 2 * max_diff(want[k], want64[k]) / scale
    return tol


def assert_close(got, want, tol, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    err = max_diff(got, want) / scale
    assert err <= tol, f"{what}: scaled error {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rmask", [False, True], ids=["", "rdrop"])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize(("T", "B", "D", "H"), SHAPES)
def test_training_kernels_match_reference(T, B, D, H, mask, rmask, dtype, threads):
    """threads > 1: the units split into chunks, one per thread (as many as numba has)."""
    args, upstream = problem(T, B, D, H, dtype, mask, rmask)
    want, ref_cache = reference(args, upstream)
    tol = tolerances(args, upstream, want)
    hs, (h_T, c_T), cache = lstm_fm.lstm_forward_fm(
        *positional(args), args.get("mask"), args.get("recurrent_mask"), threads=threads
    )
    assert lstm_fm.buffers_of(cache) is not None
    got = {"hs": hs, "h_T": h_T, "c_T": c_T}
    got.update(lstm_fm.lstm_backward_fm(*upstream, cache))
    assert set(got) == set(want)
    for k in want:
        assert_close(got[k], want[k], tol[k], k)
    # Without dx (a first layer): the rows of W @ dz from D on, split among the threads alike.
    no_dx = lstm_fm.lstm_backward_fm(*upstream, cache, need_dx=False)
    assert no_dx.pop("x") is None and set(no_dx) == set(want) - {"hs", "h_T", "c_T", "x"}
    for k in no_dx:
        assert_close(no_dx[k], want[k], tol[k], f"need_dx=False: {k}")
    # The cache reads like the reference's (the reference backward consumes it) ...
    assert type(cache) is type(ref_cache)
    for field in ("gates", "c", "tanh_c", "h_in"):
        assert_close(getattr(cache, field), getattr(ref_cache, field), max(tol.values()), field)
    from_ref = ref.lstm_backward(*upstream, cache)
    for k in from_ref:
        assert_close(from_ref[k], want[k], tol[k], f"reference backward on the fm cache: {k}")
    # ... and the fast backward takes either cache, the same numbers.
    from_fast = fast.lstm_backward(*upstream, ref_cache)
    for k in from_fast:
        assert_close(from_fast[k], want[k], tol[k], f"row-major backward: {k}")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize(("T", "B", "D", "H"), SHAPES + [(30, 64, 16, 64)])
def test_infer_matches_reference(T, B, D, H, mask, dtype, threads, monkeypatch):
    monkeypatch.setattr(
        common, "PARALLEL_MIN_MACS", 0
    )  # split even tiny problems (units among threads)
    monkeypatch.setattr(lstm_fm, "PARALLEL_STEP_MACS", 0)
    common.set_num_threads(threads)
    try:
        args, upstream = problem(T, B, D, H, dtype, mask, False)
        want, _ = reference(args, upstream)
        tol = tolerances(args, upstream, want)
        hs, (h_T, c_T) = lstm_fm.lstm_infer_fm(*positional(args), args.get("mask"))
    finally:
        common.set_num_threads(None)
    for k, v in (("hs", hs), ("h_T", h_T), ("c_T", c_T)):
        assert_close(v, want[k], tol[k], k)


def test_dispatch_takes_feature_major_from_batch_2_on_one_thread(monkeypatch):
    calls = []
    for name in ("lstm_forward_fm", "lstm_backward_fm", "lstm_infer_fm"):
        real = getattr(lstm_fm, name)
        monkeypatch.setattr(
            lstm_fm, name, lambda *a, _r=real, _n=name, **k: calls.append(_n) or _r(*a, **k)
        )
    for B, expected in ((1, []), (2, ["lstm_forward_fm", "lstm_backward_fm", "lstm_infer_fm"])):
        calls.clear()
        args, upstream = problem(5, B, 3, 4, np.float32, None, False)
        _, _, cache = fast.lstm_forward(**args)
        fast.lstm_backward(*upstream, cache)
        fast.lstm_infer(*positional(args))
        assert calls == expected, B


def test_training_splits_units_over_threads_when_steps_are_big(monkeypatch):
    seen = []
    real = lstm_fm.lstm_forward_fm
    monkeypatch.setattr(lstm_fm, "lstm_forward_fm", lambda *a: seen.append(a[8]) or real(*a))
    common.set_num_threads(2)
    try:
        for B, H, expected in ((16, 32, 1), (32, 128, 2)):
            args, upstream = problem(3, B, 8, H, np.float32, None, False)
            _, _, cache = fast.lstm_forward(**args)
            want = ref.lstm_backward(*upstream, ref.lstm_forward(**args)[2])
            got = fast.lstm_backward(*upstream, cache)
            assert seen[-1] == expected and lstm_fm.buffers_of(cache).threads == expected
            for k in want:
                assert_close(got[k], want[k], 1e-5, k)
    finally:
        common.set_num_threads(None)


def spy_backward_fm(monkeypatch):
    """The list of calls of the feature-major backward through the dispatch."""
    calls = []
    real = lstm_fm.lstm_backward_fm
    monkeypatch.setattr(
        lstm_fm, "lstm_backward_fm", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    return calls


def test_each_backward_reads_the_buffers_of_its_own_forward(monkeypatch):
    """Two caches of the same shapes alive at once (pooled buffers: the gates alone are 80 KiB):
    each backward runs the feature-major kernels on its own forward's buffers, in any order."""
    calls = spy_backward_fm(monkeypatch)
    problems = [problem(10, 8, 5, 32, np.float64, "holes", True, seed=s) for s in (1, 2)]
    caches = [fast.lstm_forward(**args)[2] for args, _ in problems]
    for k in (1, 0, 1):  # the older cache between two calls on the newer one
        (args, upstream), cache = problems[k], caches[k]
        got = fast.lstm_backward(*upstream, cache)
        want = ref.lstm_backward(*upstream, ref.lstm_forward(**args)[2])
        for name in want:
            assert_close(got[name], want[name], 1e-12, f"cache {k}: {name}")
    assert len(calls) == 3


def test_a_cache_from_elsewhere_takes_the_row_major_backward(monkeypatch):
    """The reference's cache, and a feature-major cache rebuilt around other arrays (one step cut
    out of it, its buffers field left in), give the reference's gradients without the
    feature-major backward; ``inspect``'s one-step caches drop the buffers."""
    from lstmkit.inspect.gradflow import step_cache

    calls = spy_backward_fm(monkeypatch)
    args, upstream = problem(5, 3, 2, 6, np.float64, "holes", True)
    _, _, cache = fast.lstm_forward(**args)
    _, _, ref_cache = ref.lstm_forward(**args)
    t = 2
    cut = {"x": slice(t, t + 1), "gates": slice(t, t + 1), "c": slice(t, t + 2)}
    cut.update(tanh_c=cut["x"], h_in=cut["x"], mask=cut["x"])

    def one_step(c):
        return c._replace(**{name: getattr(c, name)[s] for name, s in cut.items()})

    up = [upstream[0][t : t + 1], upstream[1], upstream[2]]
    cases = (  # (name, cache given, its upstream gradients, the reference's cache of the same)
        ("reference", ref_cache, upstream, ref_cache),
        ("one step", one_step(cache), up, one_step(ref_cache)),
    )
    for name, c, u, witness in cases:
        got = fast.lstm_backward(*u, c)
        want = ref.lstm_backward(*u, witness)
        for k in want:
            assert_close(got[k], want[k], 1e-12, f"{name}: {k}")
    assert calls == []
    assert cache.buffers is not None and step_cache(cache, t).buffers is None


def test_a_reset_workspace_gives_the_next_call_the_same_buffers():
    """A training loop touches the same pages every step: after ``reset()`` the same calls get
    the same buffers, and the results stay those of the reference."""
    args, upstream = problem(10, 8, 5, 32, np.float64, None, False)  # gates: 80 KiB, pooled
    want, _ = reference(args, upstream)
    ws = Workspace()
    addresses = []
    for _ in range(2):
        ws.reset()
        hs, _, cache = fast.lstm_forward(**args, ws=ws)
        assert_close(hs, want["hs"], 1e-12, "hs")
        addresses.append(cache.buffers.G.ctypes.data)  # (hs: 20 KiB, not pooled)
    assert addresses[0] == addresses[1]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("mask", [None, "holes"])
def test_scratch_is_written_before_it_is_read(mask, need_dx, threads, monkeypatch):
    """Every buffer the kernels take (packed weights, dz, the weight gradient the first step's
    product overwrites rather than adds to, ...) is filled with NaN when taken: nothing of it
    may reach the results, on one thread or with the units split (each thread packs, fills and
    scatters only its own part)."""
    monkeypatch.setattr(lstm_fm, "_take", lambda ws, shape, dtype: np.full(shape, np.nan, dtype))
    args, upstream = problem(11, 5, 6, 13, np.float64, mask, True)
    want, _ = reference(args, upstream)
    hs, (h_T, c_T), cache = lstm_fm.lstm_forward_fm(
        *positional(args), args.get("mask"), args["recurrent_mask"], threads=threads
    )
    assert lstm_fm.buffers_of(cache).threads == threads
    got = {"hs": hs, "h_T": h_T, "c_T": c_T}
    got.update(lstm_fm.lstm_backward_fm(*upstream, cache, need_dx=need_dx))
    if not need_dx:
        assert got.pop("x") is None
        want.pop("x")
    for k in want:
        assert_close(got[k], want[k], 1e-12, k)


def test_empty_sequence():
    args, _ = problem(1, 3, 2, 4, np.float32, None, False)
    args["x"] = args["x"][:0]
    hs, (h_T, c_T), cache = lstm_fm.lstm_forward_fm(*positional(args))
    assert hs.shape == (0, 3, 4)
    np.testing.assert_array_equal(h_T, args["h0"])
    np.testing.assert_array_equal(c_T, args["c0"])
    g = lstm_fm.lstm_backward_fm(None, None, None, cache)
    assert g["x"].shape == (0, 3, 2) and not g["kernel"].any()
    hs, (h_T, c_T) = lstm_fm.lstm_infer_fm(*positional(args))
    assert hs.shape == (0, 3, 4)
    np.testing.assert_array_equal(c_T, args["c0"])


@pytest.mark.parametrize("ws", [None, "one generation"])
def test_outputs_and_caches_survive_later_calls(ws):
    """What an earlier call returned must not change: fresh arrays without a workspace, distinct
    buffers within one generation of one (a layer shared twice in a graph: two forwards, then
    two backwards)."""
    ws = Workspace() if ws else None
    args, upstream = problem(30, 8, 16, 64, np.float64, None, False, seed=1)
    other, _ = problem(30, 8, 16, 64, np.float64, None, False, seed=2)
    hs, (h_T, c_T), cache = fast.lstm_forward(**args, ws=ws)
    out_inf, _ = fast.lstm_infer(*positional(args), ws=ws)
    live = (hs, h_T, c_T, out_inf, cache.gates, cache.c, cache.tanh_c, cache.h_in)
    kept = [np.array(a) for a in live]
    for _ in range(3):  # later calls of the same shapes, with other numbers
        _, _, c2 = fast.lstm_forward(**other, ws=ws)
        fast.lstm_backward(*upstream, c2, ws=ws)
        fast.lstm_infer(*positional(other), ws=ws)
    for a, b in zip(kept, live):
        np.testing.assert_array_equal(a, b)
    got = fast.lstm_backward(*upstream, cache, ws=ws)
    want = ref.lstm_backward(*upstream, ref.lstm_forward(**args)[2])
    for k in want:
        assert_close(got[k], want[k], 1e-12, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize(("T", "D", "H"), [(1, 1, 1), (9, 8, 64), (25, 3, 17)])
def test_single_row_inference_matches_reference(T, D, H, mask, dtype):
    """B = 1 takes the BLAS-free row kernel of ``lstmkit.ops.fast.lstm`` instead."""
    args, upstream = problem(T, 1, D, H, dtype, mask, False, seed=3)
    want, _ = reference(args, upstream)
    tol = tolerances(args, upstream, want)
    hs, (h_T, c_T) = fast.lstm_infer(*positional(args), args.get("mask"))
    for k, v in (("hs", hs), ("h_T", h_T), ("c_T", c_T)):
        assert_close(v, want[k], tol[k], k)


def test_inference_threads_take_slices_of_at_least_one_vector(monkeypatch):
    """The rule of :func:`lstm_fm.infer_rows` (not its timing): a batch is split among the
    threads only when each gets at least one vector of the micro-kernel in use and one cache
    line (16 float32 / 8 float64 columns on AVX-512 and on AVX2, whose vectors are narrower),
    and only when there is enough work."""
    from lstmkit.ops.fast import packed

    big, small = 1e9, 1e3  # multiply-adds of the whole call
    rows = lstm_fm.infer_rows
    common.set_num_threads(2)
    try:
        monkeypatch.setattr(packed, "variant", lambda: "avx512")
        assert rows(16, big, 4) == [(0, 16)]  # config D: one thread
        assert rows(32, big, 4) == [(0, 16), (16, 32)]  # config A
        assert rows(33, big, 4) == [(0, 16), (16, 33)]
        assert rows(16, big, 8) == [(0, 8), (8, 16)]  # float64: 8 lanes
        assert rows(64, small, 4) == [(0, 64)]  # too little work to share
        monkeypatch.setattr(packed, "variant", lambda: "avx2")
        assert rows(16, big, 4) == [(0, 16)]  # config D: 8 lanes, but a line is 16 float32
        assert rows(31, big, 4) == [(0, 31)]
        assert rows(32, big, 4) == [(0, 16), (16, 32)]  # config A: as on AVX-512
        assert rows(16, big, 8) == [(0, 8), (8, 16)]  # float64: 4 lanes, a line of 8
        assert rows(15, big, 8) == [(0, 15)]
        monkeypatch.setattr(packed, "variant", lambda: "generic")
        assert rows(16, big, 4) == [(0, 16)]
        assert rows(32, big, 4) == [(0, 16), (16, 32)]
        common.set_num_threads(1)
        assert rows(64, big, 4) == [(0, 64)]
    finally:
        common.set_num_threads(None)


def test_threads_that_cannot_meet_fall_back_to_one_thread(monkeypatch):
    """The unit split's threads meet at a spin barrier inside one parallel region
    (:mod:`lstmkit.ops.fast.sync`). If the runtime runs the P parties one after the other (here:
    numba given one thread for a 2-chunk region), the first would wait for ever: it must give up
    after the timeout, and the call be redone on one thread, forward, backward and inference,
    with the reference's results; later calls then stay on one thread."""
    import numba

    from lstmkit.ops.fast import sync

    class _one_thread:  # numba's team of one for the region of P = 2 chunks
        def __init__(self, n):
            pass

        def __enter__(self):
            self.previous = numba.get_num_threads()
            numba.set_num_threads(1)

        def __exit__(self, *exc):
            numba.set_num_threads(self.previous)

    args, upstream = problem(8, 4, 3, 10, np.float64, "holes", True)
    want, _ = reference(args, upstream)
    fwd = (*positional(args), args["mask"], args["recurrent_mask"])
    _, _, cache2 = lstm_fm.lstm_forward_fm(*fwd, threads=2)  # the threads meet: a P = 2 cache
    assert lstm_fm.buffers_of(cache2).threads == 2
    monkeypatch.setattr(lstm_fm, "_numba_threads", _one_thread)
    monkeypatch.setattr(sync, "TIMEOUT_CYCLES", 2**22)  # a few ms
    monkeypatch.setattr(lstm_fm, "_SYNC_FAILED", [False])
    hs, (h_T, c_T), cache = lstm_fm.lstm_forward_fm(*fwd, threads=2)
    assert lstm_fm._SYNC_FAILED[0]
    assert lstm_fm.buffers_of(cache).threads == 1  # redone on one thread
    got = {"hs": hs, "h_T": h_T, "c_T": c_T}
    monkeypatch.setattr(lstm_fm, "_SYNC_FAILED", [False])
    got.update(lstm_fm.lstm_backward_fm(*upstream, cache2))  # a 2-thread cache, redone on one
    assert lstm_fm._SYNC_FAILED[0]
    for k in want:
        assert_close(got[k], want[k], 1e-12, k)
    monkeypatch.setattr(lstm_fm, "_SYNC_FAILED", [False])
    monkeypatch.setattr(lstm_fm, "PARALLEL_STEP_MACS", 0)
    monkeypatch.setattr(common, "PARALLEL_MIN_MACS", 0)  # units split even at this size
    common.set_num_threads(2)
    try:
        hs_i, (h_i, c_i) = lstm_fm.lstm_infer_fm(*fwd[:6], args["mask"])
    finally:
        common.set_num_threads(None)
    assert lstm_fm._SYNC_FAILED[0]
    want_i = ref.lstm_forward(**{k: v for k, v in args.items() if k != "recurrent_mask"})
    assert_close(hs_i, want_i[0], 1e-12, "infer hs")
    assert_close(h_i, want_i[1][0], 1e-12, "infer h_T")
    assert_close(c_i, want_i[1][1], 1e-12, "infer c_T")


def test_inference_splits_units_from_smaller_steps_than_training(monkeypatch):
    """The rule (not a timing): on two threads, a batch too narrow for two slices of rows splits
    its units from steps of ``PARALLEL_STEP_MACS // 8`` multiply-adds on (config D: T 200, B 16,
    D 16, H 32, 1e5 per step), where training stays on one thread; smaller steps stay on one."""
    seen = []
    real = lstm_fm._in_step

    def spy(P, *rest):
        seen.append(P)
        return real(P, *rest)

    monkeypatch.setattr(lstm_fm, "_in_step", spy)
    monkeypatch.setattr(lstm_fm, "_SYNC_FAILED", [False])
    common.set_num_threads(2)
    try:
        for D, H, want in ((16, 32, 2), (4, 8, 1)):
            args, _ = problem(30, 16, D, H, np.float32, None, False)
            seen.clear()
            lstm_fm.lstm_infer_fm(*positional(args))
            assert seen == [want], (D, H, seen)
            seen.clear()
            fast.lstm_forward(*positional(args))
            assert seen == [1], (D, H, seen)  # training: one thread below PARALLEL_STEP_MACS
    finally:
        common.set_num_threads(None)


def _spin_only_barrier() -> list:
    """``test_barrier_without_an_os_yield``'s body, run in a fresh interpreter: no OS yield
    found (``sync.YIELD`` 0), the results of every attempt checked against the reference; the
    attempts' ``(threads, gave up)``."""
    import ctypes

    from lstmkit.ops.fast import sync

    def no_library(*args, **kwargs):
        raise TypeError("no library")  # what CDLL(None) raises on Windows

    ctypes.CDLL = ctypes.WinDLL = no_library
    assert sync._yield_address() == 0
    sync.YIELD = 0
    # a spinning party never gives its core back: on a busy machine the partner can wait longer
    # than the default ~0.7 s for one; ~6 s still ends a real deadlock
    sync.TIMEOUT_CYCLES = 2**34
    args, upstream = problem(9, 33, 7, 13, np.float64, "holes", True)
    want, _ = reference(args, upstream)
    met = []
    for _ in range(3):  # a region that gave up (the machine's scheduling) is redone on one thread
        lstm_fm._SYNC_FAILED[0] = False
        hs, (h_T, c_T), cache = lstm_fm.lstm_forward_fm(
            *positional(args), args["mask"], args["recurrent_mask"], threads=2
        )
        got = {"hs": hs, "h_T": h_T, "c_T": c_T, **lstm_fm.lstm_backward_fm(*upstream, cache)}
        for k in want:
            assert_close(got[k], want[k], 1e-12, k)
        met.append((lstm_fm.buffers_of(cache).threads, lstm_fm._SYNC_FAILED[0]))
        if met[-1] == (2, False):
            break
    return met


def test_barrier_without_an_os_yield():
    """Where no ``sched_yield``/``SwitchToThread`` is found (``sync.YIELD`` 0), the waiting
    threads only spin: the two-thread kernels still give the reference's results, and the two
    threads meet. In a fresh interpreter: inside a full parallel test run, the worker's earlier
    tests' threads (OpenMP's and BLAS's, which spin after their work) left the two spinning
    parties unable to meet within ~6 s, three attempts in a row, in two runs of two; alone,
    beside a busy core, they always met."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    code = (f"import sys; sys.path.insert(0, {str(here)!r}); import {Path(__file__).stem} as t; "
            "print(t._spin_only_barrier())")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent / "src"), str(here)])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    met = run.stdout.strip().splitlines()[-1]
    assert met.endswith("(2, False)]"), met  # the two threads met at every step at least once


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aligned_empty_starts_on_a_cache_line(dtype):
    """:func:`common.aligned_empty`: an uninitialised C-contiguous array of the shape and type
    asked for, its data on a 64-byte boundary, writable to its last value; ``line_multiple``
    rounds a row up to whole lines."""
    for shape in [(1,), (7,), (3, 5), (2, 49, 16), (2, 321, 64)]:
        a = common.aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % common.CACHE_LINE == 0, shape
        a[...] = 1  # the whole span is ours
        assert a.sum() == a.size
    n = np.dtype(dtype).itemsize
    assert [common.line_multiple(k, n) for k in (0, 1, 64 // n, 64 // n + 1)] == [
        0, 64 // n, 64 // n, 128 // n,
    ]  # fmt: skip


def test_inference_step_buffers_start_on_cache_lines(monkeypatch):
    """The scratch of both inference paths starts on a cache line (np.empty's 16-byte
    alignment made every other 32-byte load of the product's input straddle two lines: 12 % of
    a step at config C on the AVX2 EPYC): the one-pass / unit-split buffers ``XH``, ``Z``,
    ``Cb``, and every slice's row of the batch split's; the results still match the
    reference."""
    seen = {}
    real_units, real_lead = lstm_fm._in_step, lstm_fm._infer_lead

    def units(P, serial, parallel, args, macs):
        seen["units"] = [args[i] for i in (6, 7, 8)]  # XH, Z, Cb
        return real_units(P, serial, parallel, args, macs)

    def lead(*args):
        seen["split"] = [args[i] for i in (5, 6, 7)]  # XH, Z, Cb: a row per slice
        return real_lead(*args)

    monkeypatch.setattr(lstm_fm, "_in_step", units)
    monkeypatch.setattr(lstm_fm, "_infer_lead", lead)
    monkeypatch.setattr(common, "PARALLEL_MIN_MACS", 0)  # split even this small a call
    common.set_num_threads(2)
    try:
        for B in (5, 42):  # 5: one pass; 42: the batch split (slices 21 / 21: odd rows)
            args, upstream = problem(6, B, 7, 13, np.float32, None, False)
            want, _ = reference(args, upstream)
            tol = tolerances(args, upstream, want)
            hs, _ = lstm_fm.lstm_infer_fm(*positional(args))
            assert_close(hs, want["hs"], tol["hs"], f"hs, B {B}")
    finally:
        common.set_num_threads(None)
    for a in seen["units"]:
        assert a.ctypes.data % common.CACHE_LINE == 0, a.shape
    for a in seen["split"]:
        assert a.shape[0] == 2
        for row in a:
            assert row.ctypes.data % common.CACHE_LINE == 0, a.shape
