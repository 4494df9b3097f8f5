"""Batch-split inference with helpers that join late (``lstm_fm._infer_batch_split``).

The calling thread (the lead) starts on every batch slice; a helper thread takes a ticket when it
starts and is handed the last slice the lead still runs at the lead's next step boundary. Which
step that is depends on when the OS runs the helper, so each timing is forced here through the
``launch`` hook: helpers that never come, helpers already waiting at step 0, a helper that joins
half-way, one that comes after the end. Whatever the timing, the outputs must be PyTorch's
(``nn.LSTM``, weights copied in, both bias vectors non-zero; with a mask, ``nn.LSTMCell`` stepped
with Keras' masking), every slice's h_t and c_T included.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")
from lstmkit.ops.fast import lstm_fm, sync
from lstmkit.ops.fast.elementwise import DEFAULT, acts_for
from oracles import torch_cell_run, torch_run


def problem(T, B, D, H, dtype, masked, seed=0):
    rng = np.random.default_rng(seed)
    s = 1.5 / np.sqrt(H)  # large enough that some gates saturate
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0, c0 = (0.5 * rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    params = tuple(rng.uniform(-s, s, shape).astype(dtype)
                   for shape in ((D, 4 * H), (H, 4 * H), (4 * H,)))  # fmt: skip
    b_hh = rng.uniform(-s, s, 4 * H).astype(dtype)  # torch's second bias, non-zero
    mask = rng.random((T, B)) < 0.7 if masked else None  # holes, t = 0 included
    return x, h0, c0, params, b_hh, mask


def witness(x, h0, c0, params, b_hh, mask):
    """PyTorch's ``(hs (T, B, H), h_T, c_T)``."""
    zeros = np.zeros((*x.shape[:2], params[1].shape[0]), x.dtype)
    dstate = (np.zeros_like(h0), np.zeros_like(c0))
    if mask is None:
        hs, (h, c), _ = torch_run("lstm", x, (h0, c0), params, zeros, dstate, b_hh=b_hh)
    else:
        hs, (h, c), _ = torch_cell_run("lstm", x, (h0, c0), params, zeros, dstate, mask=mask,
                                       b_hh=b_hh)  # fmt: skip
    return hs, h, c


def split_run(x, h0, c0, params, mask, rows, launch, out=None):
    """``_infer_batch_split`` on the batch slices ``rows``; returns ``(hs (T, B, H), c_T)``."""
    T, B, _ = x.shape
    H = h0.shape[1]
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    out = np.full((B, T, H), np.nan, x.dtype) if out is None else out
    acts = acts_for(*DEFAULT)
    c_T = lstm_fm._infer_batch_split(rows, params, xb, h0, c0, out, mask, acts, launch=launch)
    return out.transpose(1, 0, 2), c_T


def check(got, want, tol):
    hs, c_T = got
    w_hs, w_h, w_c = want
    for name, a, b in (("hs", hs, w_hs), ("h_T", hs[-1], w_h), ("c_T", c_T, w_c)):
        err = float(np.abs(np.asarray(a, np.float64) - b).max())
        assert err <= tol, f"{name}: {err:.3g} > {tol:.3g}"


TOL = {np.float64: 1e-12, np.float32: 2e-6}
ROWS = {2: [(0, 5), (5, 11)], 3: [(0, 4), (4, 8), (8, 11)]}  # B = 11, uneven slices


class Launcher:
    """A ``launch`` hook that records the hand-over state (the helpers' first argument)."""

    def __init__(self, start):
        self.start, self.state, self.threads = start, None, []

    def __call__(self, helper, n):
        self.state = helper.args[0][0]
        self.start(self, helper, n)

    def spawn(self, helper):
        th = threading.Thread(target=helper)
        th.start()
        self.threads.append(th)

    def join(self):
        for th in self.threads:
            th.join(10)
            assert not th.is_alive()

    def handed_at(self, k):
        """The step from which ticket k ran its slice (T + 1: none; -1: not posted)."""
        return int(self.state[k]) - 1


@pytest.mark.parametrize("P", [2, 3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lead_alone_runs_every_slice(P, masked, dtype):
    """No helper ever starts (a machine with no free core): the lead runs all slices."""
    x, h0, c0, params, b_hh, mask = problem(9, 11, 4, 7, dtype, masked)
    launch = Launcher(lambda self, helper, n: None)
    got = split_run(x, h0, c0, params, mask, ROWS[P], launch)
    check(got, witness(x, h0, c0, params, b_hh, mask), TOL[dtype])
    assert launch.state[0] >= 2**40  # closed with no ticket taken
    assert all(launch.handed_at(k) == -1 for k in range(1, P))


@pytest.mark.parametrize("spin", [True, False], ids=["spin", "sleep"])
@pytest.mark.parametrize("P", [2, 3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_helpers_waiting_at_the_start_take_their_slices_from_step_0(P, masked, dtype, spin,
                                                                    monkeypatch):  # fmt: skip
    """``sleep``: the lead gives up spinning for the helpers' end at once and sleeps until
    they wake it."""
    if not spin:
        monkeypatch.setattr(sync, "SPIN_CYCLES", 0)
    x, h0, c0, params, b_hh, mask = problem(10, 11, 4, 7, dtype, masked, seed=1)

    def start(self, helper, n):
        for _ in range(n):
            self.spawn(helper)
        deadline = time.monotonic() + 10
        while self.state[0] < n and time.monotonic() < deadline:  # every ticket taken
            time.sleep(1e-4)

    launch = Launcher(start)
    got = split_run(x, h0, c0, params, mask, ROWS[P], launch)
    launch.join()
    assert [launch.handed_at(k) for k in range(1, P)] == [0] * (P - 1)
    assert all(launch.state[P - 1 + k] == 1 for k in range(1, P))  # each said it was done
    check(got, witness(x, h0, c0, params, b_hh, mask), TOL[dtype])


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("T", [301, 300])  # the hand-over at either parity of the buffers
def test_a_helper_joining_half_way_continues_its_slice(masked, T):
    """The helper starts once the lead has written step 5 of the last slice, so it takes that
    slice over at a later step, from the lead's ping-pong buffers as the lead left them."""
    x, h0, c0, params, b_hh, mask = problem(T, 11, 8, 48, np.float64, masked, seed=2)
    want = witness(x, h0, c0, params, b_hh, mask)
    rows = ROWS[2]
    steps = set()
    for _ in range(20):  # until a hand-over falls strictly inside the sequence
        out = np.full((11, T, 48), np.nan)

        def start(self, helper, n, out=out):
            def late():
                deadline = time.monotonic() + 10
                while np.isnan(out[rows[1][0], 5, 0]) and time.monotonic() < deadline:
                    time.sleep(0)
                helper()

            th = threading.Thread(target=late)
            th.start()
            self.threads.append(th)

        launch = Launcher(start)
        got = split_run(x, h0, c0, params, mask, rows, launch, out)
        launch.join()
        check(got, want, TOL[np.float64])
        s = launch.handed_at(1)
        assert s == -1 or 6 <= s <= T  # never before the step the helper waited for
        steps.add(s)  # (-1: it came after the lead had closed; T: after the last step)
        if 6 <= s < T:
            break
    assert any(6 <= s < T for s in steps), f"no hand-over inside the sequence: {sorted(steps)}"


def test_a_helper_after_the_end_touches_nothing():
    x, h0, c0, params, b_hh, mask = problem(6, 11, 3, 5, np.float64, False, seed=3)
    kept = []
    launch = Launcher(lambda self, helper, n: kept.append(helper))
    hs, c_T = split_run(x, h0, c0, params, mask, ROWS[2], launch)
    before = hs.copy(), c_T.copy()
    kept[0]()  # the pool ran it only now: the lead has closed the state
    np.testing.assert_array_equal(hs, before[0])
    np.testing.assert_array_equal(c_T, before[1])
    assert launch.handed_at(1) == -1
    check((hs, c_T), witness(x, h0, c0, params, b_hh, mask), TOL[np.float64])


def test_a_helper_that_raises_makes_the_lead_raise_rather_than_hang(monkeypatch):
    """A helper handed a slice dies before finishing it (any exception on its pool thread): the
    lead must not wait forever for that slice's done flag, nor return the unfinished slice."""
    x, h0, c0, params, _, mask = problem(40, 11, 3, 5, np.float64, False, seed=4)

    def dying(state, *rest):
        k = sync.take_ticket(state)
        sync.await_post(state, k, sync.YIELD)  # handed its slice...
        raise MemoryError("planted")  # ...and never finishes it

    monkeypatch.setattr(lstm_fm, "_infer_helper", dying)

    def start(self, helper, n):
        def run():
            try:
                helper()
            except MemoryError:
                pass  # the pool's future would keep it

        self.spawn(run)
        deadline = time.monotonic() + 10
        while self.state[0] < 1 and time.monotonic() < deadline:  # its ticket taken
            time.sleep(1e-4)

    raised = []

    def lead():
        try:
            split_run(x, h0, c0, params, mask, ROWS[2], Launcher(start))
        except RuntimeError as e:
            raised.append(e)

    th = threading.Thread(target=lead, daemon=True)
    th.start()
    th.join(30)
    assert not th.is_alive(), "the lead hangs waiting for a helper that died"
    assert raised and "helper thread failed" in str(raised[0])
    assert isinstance(raised[0].__cause__, MemoryError)


@pytest.mark.parametrize("P", [2, 3])
def test_ctrl_c_before_the_loop_lets_the_waiting_helpers_go(P, monkeypatch):
    """Ctrl-C (or SIGTERM, which the ``lstmkit`` script turns into a KeyboardInterrupt) lands
    in the lead after the helpers were started and before its loop, where it packs the
    weights: the helpers, waiting for a hand-over that never comes, must return. They waited
    forever, spinning a core, and the process could not exit (the pool's threads are joined)."""
    x, h0, c0, params, _, mask = problem(9, 11, 4, 7, np.float64, False)

    def interrupted(*args):
        raise KeyboardInterrupt("planted: the signal lands while the weights are packed")

    monkeypatch.setattr(lstm_fm, "_pack_stacked_T", interrupted)

    def start(self, helper, n):
        for _ in range(n):
            th = threading.Thread(target=helper, daemon=True)  # a hung one must not hold pytest
            th.start()
            self.threads.append(th)
        deadline = time.monotonic() + 10
        while self.state[0] < n and time.monotonic() < deadline:  # each waits for its slice
            time.sleep(1e-4)

    launch = Launcher(start)
    with pytest.raises(KeyboardInterrupt, match="planted"):
        split_run(x, h0, c0, params, mask, ROWS[P], launch)
    for th in launch.threads:
        th.join(10)
    assert not any(th.is_alive() for th in launch.threads), "a helper still waits for a slice"
    T = x.shape[0]  # posted past the end: they run nothing
    assert all(launch.handed_at(k) == T for k in range(1, P)) and launch.state[0] >= 2**40
