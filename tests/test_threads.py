"""Thread sharing of whole steps (``backend.compute_scope``, ``backend.matmul``) and the
segment-sum Embedding gradient: the numbers do not change with the thread count."""

import contextlib
import os

import numpy as np
import pytest
import torch

import lstmkit
from forked import in_forked_child
from lstmkit.layers import LSTM, Dense, Embedding
from lstmkit.ops import backend

numba_only = pytest.mark.skipif(
    not backend._numba_available(), reason="needs numba (the fast path)"
)


@pytest.fixture
def fast_threads(monkeypatch):
    """numba backend with ``n`` lstmkit threads; restores the previous setting."""
    from lstmkit.ops.fast import common

    before = backend.get_backend()

    def use(n):
        backend.set_backend("numba")
        monkeypatch.setattr(common, "_THREADS", n)
        monkeypatch.setattr(common, "PARALLEL_MIN_MACS", 0)  # split even small products

    yield use
    backend.set_backend(before)


@numba_only
@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 4, 6), (64, 33, 17)])
def test_matmul_shared_over_threads_equals_numpy(fast_threads, shape):
    n, k, m = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    fast_threads(3)
    got = backend.matmul(a, b)
    np.testing.assert_allclose(got, a @ b, rtol=1e-13, atol=1e-13)
    got_t = backend.matmul(a.T.copy().T, b)  # a non-contiguous operand
    np.testing.assert_allclose(got_t, a @ b, rtol=1e-13, atol=1e-13)


@numba_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_small_product_on_two_threads_is_one_direct_matmul(fast_threads, monkeypatch, dtype):
    """A product below the parallel threshold (the forecaster's Dense layers: (64, 40) @
    (40, 32)) is one ``np.matmul``, no slices handed to ``in_parallel``: the bits of
    ``a @ b``, a transposed operand too; a big one is still shared out."""
    from lstmkit.ops.fast import common

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 40)).astype(dtype), rng.standard_normal((40, 32)).astype(dtype)
    fast_threads(2)
    monkeypatch.setattr(common, "PARALLEL_MIN_MACS", 2e6)  # the default
    shared = []
    real = common.in_parallel
    monkeypatch.setattr(common, "in_parallel", lambda *x: shared.append(x[0]) or real(*x))
    assert np.array_equal(backend.matmul(a, b), a @ b)
    assert np.array_equal(backend.matmul(a.T.copy().T, b), a @ b)
    assert np.array_equal(backend.matmul(b.T, a.T), b.T @ a.T)
    assert shared == []
    big = rng.standard_normal((512, 256)).astype(dtype)
    np.testing.assert_allclose(backend.matmul(big, big.T), big @ big.T, rtol=1e-4, atol=1e-3)
    assert len(shared) == 1 and len(shared[0]) == 2


@numba_only
def test_the_lstm_forward_switches_no_blas_threads_its_backward_does(fast_threads, monkeypatch):
    """The feature-major LSTM's forward makes no BLAS product (the packed micro-kernels make
    them all), so a training forward on one thread leaves BLAS's thread count alone; its
    backward's weight gradient is a BLAS product, single-threaded around it once big enough
    (the forecaster's: 64 x 128 x 37 multiply-adds a step)."""
    from lstmkit.ops import blas_threads
    from lstmkit.ops.fast import lstm as fast_lstm

    fast_threads(1)
    holds = []
    real = blas_threads.hold_single
    monkeypatch.setattr(blas_threads, "hold_single", lambda: holds.append(1) or real())
    rng = np.random.default_rng(0)
    T, B, D, H = 4, 64, 4, 32
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    h0, c0 = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
    k, u = (rng.standard_normal((n, 4 * H)).astype(np.float32) for n in (D, H))
    _, (h, _), cache = fast_lstm.lstm_forward(x, h0, c0, k, u, np.zeros(4 * H, np.float32))
    assert holds == []
    fast_lstm.lstm_backward(None, np.ones_like(h), None, cache, need_dx=False)
    assert holds == [1]


@numba_only
def test_compute_scope_makes_blas_single_threaded_and_restores_it(fast_threads):
    fast_threads(2)
    inside, after, n = _blas_threads_in_and_after_a_scope()
    assert inside == [1] * n
    assert after == [2] * n


def _blas_in_force() -> list:
    """The BLAS thread count of every library, read through the setter (which returns the value
    it replaces) and put back."""
    from lstmkit.ops import blas_threads

    now = blas_threads.set_local_threads(2)
    blas_threads.set_local_threads(now)
    return now


@contextlib.contextmanager
def _blas_from_two():
    """Two BLAS threads for the block (the count a hold must save and give back), the earlier
    count after it; yields how many libraries. Skips where the BLAS has no per-thread setting."""
    from lstmkit.ops import blas_threads

    if not blas_threads.setters():
        pytest.skip("this BLAS has no openblas_set_num_threads_local")
    previous = blas_threads.set_local_threads(2)
    try:
        yield len(previous)
    finally:
        blas_threads.set_local_threads(previous)


def _blas_threads_in_and_after_a_scope():
    """The BLAS thread counts in force inside a ``compute_scope`` and after it, starting from 2,
    and how many libraries."""
    with _blas_from_two() as n:
        with backend.compute_scope():
            inside = _blas_in_force()
        after = _blas_in_force()
    return inside, after, n


def _held_by_b_after_a_left(a_block):
    """Two Python threads, overlapping: A enters ``a_block()``, B holds BLAS single-threaded,
    A leaves, B reads the count in force, B leaves. Returns what B read."""
    import threading

    from lstmkit.ops import blas_threads

    a_in, a_out, b_in = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def a():
        with a_block():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with blas_threads.single_threaded():
            b_in.set()
            a_out.wait(10)
            seen.append(_blas_in_force())

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return seen[0]


@numba_only
def test_predict_switches_blas_threads_only_for_batches_of_two_or_more(fast_threads, monkeypatch):
    """The rule (not its timing): with two lstmkit threads, ``predict`` makes BLAS
    single-threaded around a batch of 2 or more, and leaves it alone for a batch of one (whose
    recurrent kernels run on the calling thread); the outputs are the same either way."""
    from lstmkit.ops import blas_threads

    fast_threads(2)
    switches = []
    real = blas_threads.set_local_threads
    previous = real(2)  # two BLAS threads to begin with: the scope has something to restore
    monkeypatch.setattr(blas_threads, "set_local_threads", lambda n: switches.append(n) or real(n))
    try:
        lstmkit.set_random_seed(0)
        model = lstmkit.Sequential([LSTM(5, input_shape=(4, 3)), Dense(2)])
        model.build()
        x = np.random.default_rng(0).standard_normal((3, 4, 3)).astype("float32")
        one = model.predict(x[:1])
        assert switches == []
        with backend.compute_scope(rows=1):
            assert switches == []
        both = model.predict(x[:2], batch_size=2)
        if not blas_threads.setters():
            pytest.skip("this BLAS has no openblas_set_num_threads_local")
        assert switches[0] == 1 and len(switches) >= 2  # set to 1 on entry, restored on exit
        switches.clear()
        singles = model.predict(x[:2], batch_size=1)  # batches of one row each
        assert switches == []
    finally:
        real(previous)
    np.testing.assert_allclose(one, both[:1], rtol=1e-6, atol=1e-6)  # row and batch kernels
    np.testing.assert_array_equal(singles[:1], one)


@numba_only
def test_training_is_the_same_with_one_or_two_threads(fast_threads):
    """A char-LM-like model (Embedding, LSTM, Dense over a sequence): three Adam steps give the
    same weights whatever the thread count (threads split rows; no sum changes order)."""

    def run(n):
        fast_threads(n)
        lstmkit.set_random_seed(0)
        m = lstmkit.Sequential(
            [Embedding(11, 4, input_shape=(9,)), LSTM(6, return_sequences=True), Dense(11)],
            dtype="float64",
        )
        m.compile("adam", lstmkit.losses.SparseCategoricalCrossentropy(from_logits=True), seed=0)
        rng = np.random.default_rng(1)
        x, y = rng.integers(0, 11, (8, 9)), rng.integers(0, 11, (8, 9))
        losses = [m.train_on_batch(x, y) for _ in range(3)]
        return losses, m.get_weights(), m.predict(x)

    l1, w1, p1 = run(1)
    l2, w2, p2 = run(2)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p1, p2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ids_shape", [(5, 7), (1, 1), (3, 40)])
def test_embedding_gradient_equals_pytorch(ids_shape):
    rng = np.random.default_rng(2)
    V, E = 9, 4
    layer = Embedding(V, E, dtype="float64")
    layer.build(ids_shape[1:])
    ids = rng.integers(0, V, ids_shape)
    ids.flat[0] = ids.flat[-1]  # at least one repeated id
    dy = rng.standard_normal(ids_shape + (E,))
    _, cache = layer.forward(ids)
    _, grads = layer.backward(dy, cache)
    emb = torch.nn.Embedding(V, E, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(layer.params["embeddings"]))
    emb(torch.from_numpy(ids)).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(grads["embeddings"], emb.weight.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_dense_on_a_transposed_sequence_view_equals_pytorch():
    """Dense over a (B, T, H) view of a time-major array: one 2-D product, same numbers."""
    rng = np.random.default_rng(3)
    hs = rng.standard_normal((6, 4, 5))  # (T, B, H)
    x = hs.transpose(1, 0, 2)  # (B, T, H), not contiguous
    layer = Dense(3, dtype="float64")
    layer.build((6, 5))
    y, cache = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx, g = layer.backward(dy, cache)
    lin = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer.params["kernel"].T.copy()))
        lin.bias.copy_(torch.from_numpy(layer.params["bias"]))
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = lin(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["kernel"], lin.weight.grad.numpy().T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["bias"], lin.bias.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("busy", [True, False])
def test_reference_keeps_blas_on_one_thread_while_kernels_compile(numpy_backend, monkeypatch, busy):
    """On the NumPy backend a step's scope makes BLAS single-threaded exactly while kernels are
    being compiled in the background (the compiler holds a core), and restores it after."""
    from lstmkit.ops import compiled

    monkeypatch.setattr(compiled, "busy", lambda: busy)
    inside, after, n = _blas_threads_in_and_after_a_scope()
    assert inside == [1 if busy else 2] * n
    assert after == [2] * n


def test_busy_while_a_worker_runs_or_another_process_holds_the_lock(monkeypatch, tmp_path):
    """``compiled.busy``: a worker this process started and still running, or the compile lock
    held by another process, each make it True; neither, False."""
    import subprocess
    import sys

    from lstmkit.ops import compiled

    monkeypatch.setenv(compiled.ENV_DIR, str(tmp_path))
    monkeypatch.setenv(compiled.ENV_MODE, "background")  # the tests' own mode is "now"
    monkeypatch.setattr(compiled, "_started", {})
    monkeypatch.setattr(compiled, "_BUSY", [0.0, False])

    def fresh():
        compiled._BUSY[0] = 0.0  # the answer is kept for a second: read again
        return compiled.busy()

    assert not fresh()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        compiled._started["float32"] = worker
        assert fresh()
    finally:
        worker.kill()
        worker.wait()
    assert not fresh()
    compiled._started.clear()
    hold = (
        "import time; from lstmkit.ops import compiled; compiled.writable(); "
        "lock = compiled._lock('float64', blocking=True); print('held', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert fresh()
    finally:
        holder.kill()
        holder.wait()
    assert not fresh()


def test_single_threaded_blas_holds_from_two_threads_overlap_without_losing_the_setting():
    """Two Python threads each hold BLAS single-threaded, overlapping (A in, B in, A out, B out):
    BLAS stays on one thread until the last holder leaves, then gets back the count found by the
    first. (Each saving and restoring on its own gave B two BLAS threads after A left, and two
    models trained at once then differed from their serial runs in the last bit.)"""
    from lstmkit.ops import blas_threads

    with _blas_from_two() as n:
        assert _held_by_b_after_a_left(blas_threads.single_threaded) == [1] * n
        assert blas_threads.holders() == 0
        assert _blas_in_force() == [2] * n


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_child_forked_during_another_threads_hold_starts_with_no_hold():
    """Only the forking thread lives on in a child: a hold of another thread would never end
    there. The child starts with no hold and BLAS's count from before the hold; its own holds
    restore it again."""
    import threading

    from lstmkit.ops import blas_threads

    held, go = threading.Event(), threading.Event()

    def holder():
        with blas_threads.single_threaded():
            held.set()
            go.wait(10)

    def child(n):
        start = (blas_threads.holders(), _blas_in_force())
        with blas_threads.single_threaded():
            inside = _blas_in_force()
        after = (blas_threads.holders(), _blas_in_force())
        return start == after == (0, [2] * n) and inside == [1] * n

    with _blas_from_two() as n:
        t = threading.Thread(target=holder)
        t.start()
        try:
            held.wait(10)
            assert in_forked_child(lambda: child(n))
            assert blas_threads.holders() == 1  # the parent's holder is still in its block
        finally:
            go.set()
            t.join(30)
    assert blas_threads.holders() == 0


@numba_only
def test_limited_threads_of_one_is_a_hold_like_the_others():
    """``limited_threads(1)`` in one thread, ending while another thread holds BLAS
    single-threaded, leaves BLAS on one thread for the other's whole block."""
    from lstmkit.ops import blas_threads
    from lstmkit.ops.fast import common

    with _blas_from_two() as n:
        assert _held_by_b_after_a_left(lambda: common.limited_threads(1)) == [1] * n
        assert _blas_in_force() == [2] * n
        blas_threads.release_single()  # one release too many: nothing to end, nothing changes
        assert blas_threads.holders() == 0
        assert _blas_in_force() == [2] * n
