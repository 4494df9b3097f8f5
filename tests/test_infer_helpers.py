"""The batch split's own helper threads (``sync.Helpers``): after a job each spins for a while
for the next one, then sleeps on an event.

What must hold whatever the timing: every job posted runs (no lost wake-up between a helper that
decides to sleep and a caller that posts), a helper whose job raises lives on, a caller that
finds the helpers busy uses the pool, and ``predict``'s results stay PyTorch's (``nn.LSTM``,
both bias vectors non-zero) with helpers spinning, asleep, shared by several callers, failing,
or in a forked child.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import weakref

import numpy as np
import pytest

pytest.importorskip("numba")
from lstmkit.ops.fast import lstm_fm, sync
from test_infer_handover import ROWS, TOL, check, problem, split_run, witness


@pytest.fixture
def helpers(monkeypatch):
    """A fresh set of two helpers as the batch split's, spinning ``spin`` cycles after a job."""

    def make(spin):
        hs = sync.Helpers(2)
        hs.spin = spin
        monkeypatch.setattr(lstm_fm, "_HELPERS", [hs])
        return hs

    return make


class Counter:
    def __init__(self):
        self.n, self.threads, self.cv = 0, set(), threading.Condition()

    def __call__(self):
        with self.cv:
            self.n += 1
            self.threads.add(threading.current_thread().name)
            self.cv.notify_all()

    def wait_for(self, n, timeout=10):
        with self.cv:
            return self.cv.wait_for(lambda: self.n >= n, timeout)


def post_one(hs, k, job):
    kicks = hs.post([k], job)
    sync.kick(hs.box, kicks)  # what the lead does inside its compiled call


@pytest.mark.parametrize("spin", [0, 2**12, 2**16, 2**21])
def test_every_job_posted_runs(spin):
    """Jobs posted at random moments around the helper's switch from spinning to sleeping: each
    one runs, on the helper's thread (a lost wake-up would leave one waiting: the time-out)."""
    hs = sync.Helpers(1)
    hs.spin = spin
    job = Counter()
    rng = np.random.default_rng(0)
    for i in range(1, 301):
        post_one(hs, 0, job)
        assert job.wait_for(i), f"job {i} posted, never run (spin {spin})"
        time.sleep(float(rng.choice([0, 1e-5, 1e-4, 1e-3])))
    assert job.threads == {"lstmkit-helper-0"}
    if spin == 0:
        assert hs.sleeps[0] > 0  # it did sleep between jobs, and was woken every time


def test_a_spinning_helper_does_not_sleep_between_back_to_back_jobs():
    hs = sync.Helpers(1)
    hs.spin = 2**40  # (for ever, for this test)
    job = Counter()
    post_one(hs, 0, job)
    assert job.wait_for(1)
    time.sleep(0.05)
    before = hs.sleeps[0]
    for i in range(2, 50):
        post_one(hs, 0, job)
        assert job.wait_for(i)
    assert hs.sleeps[0] == before
    hs.spin = 0  # let it go to sleep (its thread lives on, parked)
    post_one(hs, 0, job)
    assert job.wait_for(50)


def test_a_job_that_raises_leaves_the_helper_serving():
    hs = sync.Helpers(1)
    hs.spin = 0

    def boom():
        raise MemoryError("planted")

    post_one(hs, 0, boom)
    deadline = time.monotonic() + 10
    while hs.last_error is None and time.monotonic() < deadline:
        time.sleep(1e-3)
    assert isinstance(hs.last_error, MemoryError)
    job = Counter()
    post_one(hs, 0, job)
    assert job.wait_for(1)


def test_claims_are_exclusive():
    hs = sync.Helpers(2)
    a, b, c = hs.claim(1), hs.claim(2), hs.claim(1)
    assert sorted(a + b) == [0, 1] and len(a) == 1 and len(b) == 1 and c == []
    hs.release(a, np.zeros(2, np.int64))
    assert hs.claim(2) == a


def infer(x, h0, c0, params, mask):
    hs, c_T = split_run(x, h0, c0, params, mask, ROWS[2], lstm_fm._spinning_helpers)
    return hs, c_T


@pytest.mark.parametrize("spin", [0, 2**21], ids=["asleep", "spinning"])
@pytest.mark.parametrize("masked", [False, True])
def test_back_to_back_calls_agree_with_pytorch(helpers, spin, masked):
    hs = helpers(spin)
    for seed in range(6):
        x, h0, c0, params, b_hh, mask = problem(30, 11, 4, 7, np.float64, masked, seed=seed)
        check(infer(x, h0, c0, params, mask), witness(x, h0, c0, params, b_hh, mask), 1e-12)
    assert hs.claim(2) == [0, 1]  # every call gave its helper back


@pytest.mark.parametrize("spin", [0, 2**21], ids=["asleep", "spinning"])
def test_a_finished_call_leaves_nothing_behind(helpers, spin):
    """Once a call has returned, its helper soon lets go of its job (and through it of the
    call's arrays, e.g. an output buffer its owner wants back), whether it was handed a slice or
    came too late."""
    hs = helpers(spin)
    x, h0, c0, params, _, mask = problem(300, 11, 4, 7, np.float64, False, seed=8)
    T, B, _ = x.shape
    out = np.full((B, T, 7), np.nan)
    ref = weakref.ref(out)
    split_run(x, h0, c0, params, mask, ROWS[2], lstm_fm._spinning_helpers, out)
    del out
    deadline = time.monotonic() + 10
    while ref() is not None and time.monotonic() < deadline:  # a helper may still be returning
        time.sleep(1e-3)
    assert ref() is None, "a helper keeps the finished call's arrays"
    assert hs.jobs == [None, None]


def test_callers_at_once_share_helpers_and_pool(helpers):
    """Four threads calling at once: one holds the helper, the others use the pool."""
    helpers(2**16)
    problems = [problem(40, 11, 4, 7, np.float64, False, seed=s) for s in range(4)]
    wants = [witness(x, h0, c0, params, b_hh, mask) for x, h0, c0, params, b_hh, mask in problems]
    errors = []

    def caller(i):
        x, h0, c0, params, _, mask = problems[i]
        try:
            for _ in range(10):
                check(infer(x, h0, c0, params, mask), wants[i], 1e-12)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads), "a caller hangs"
    assert not errors, errors


def test_a_failing_helper_makes_the_call_raise_and_the_next_call_succeed(helpers, monkeypatch):
    hs = helpers(2**21)
    x, h0, c0, params, b_hh, mask = problem(1000, 11, 3, 5, np.float64, False, seed=5)
    real = lstm_fm._infer_helper

    def dying(state, *rest):
        k = sync.take_ticket(state)
        if k > 1:  # came after the lead's end (as _infer_helper: nothing to do)
            return
        if sync.await_post(state, k, sync.YIELD) <= 1000:  # handed its slice (T = 1000)...
            raise MemoryError("planted")  # ...and never finishes it

    monkeypatch.setattr(lstm_fm, "_infer_helper", dying)
    raised = []
    for _ in range(20):  # until the helper is handed a slice before the lead is done
        try:
            infer(x, h0, c0, params, mask)
        except RuntimeError as e:
            raised.append(e)
            break
    assert raised and isinstance(raised[0].__cause__, MemoryError)
    monkeypatch.setattr(lstm_fm, "_infer_helper", real)
    check(infer(x, h0, c0, params, mask), witness(x, h0, c0, params, b_hh, mask), 1e-12)
    assert hs.threads[0].is_alive()


def _child(q, x, h0, c0, params, want):
    got = infer(x, h0, c0, params, None)  # (no torch here: its thread pool does not survive fork)
    alive = all(th.is_alive() for th in lstm_fm._HELPERS[0].threads)  # its own, not the parent's
    q.put((float(np.abs(got[1] - want).max()), alive))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_starts_its_own_helpers(helpers):
    helpers(2**21)
    x, h0, c0, params, b_hh, _ = problem(30, 11, 4, 7, np.float64, False, seed=7)
    want = witness(x, h0, c0, params, b_hh, None)[2]
    infer(x, h0, c0, params, None)  # the parent's helpers exist (and spin)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, x, h0, c0, params, want), daemon=True)
    p.start()
    p.join(60)
    if p.is_alive():
        p.kill()
    assert p.exitcode == 0, "the child hangs or fails (the parent's helper threads are gone)"
    err, alive = q.get(timeout=5)
    assert err <= TOL[np.float64]
    assert alive, "the child posts to the parent's helper threads, which it does not have"
