"""``backend.compute_scope`` reads lstmkit's thread count once, at its start, for every
``matmul`` inside; outside a scope (and inside a batch-1 scope, which does not read it) every call
reads it afresh. Witness: ``lstmkit.ops.fast.common.get_num_threads``, set through
``set_num_threads``."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.ops import backend

common = pytest.importorskip("lstmkit.ops.fast.common")  # numba is a dependency of the suite


@pytest.fixture
def numba_backend():
    before, threads = backend.get_backend(), common._THREADS
    backend.set_backend("numba")
    yield
    backend.set_backend(before)
    common.set_num_threads(threads)


def test_a_scope_keeps_the_count_it_started_with_and_forgets_it_at_its_end(numba_backend):
    common.set_num_threads(1)
    with backend.compute_scope():
        common.set_num_threads(3)
        assert backend._fast_threads() == 1  # the scope's BLAS setting was made for 1
        with backend.compute_scope():  # a nested scope reads the count anew
            assert backend._fast_threads() == 3
        assert backend._fast_threads() == 1
    assert backend._fast_threads() == 3 == common.get_num_threads()


def test_outside_a_scope_and_in_a_batch_one_scope_each_call_reads_the_count(numba_backend):
    for scope in (None, 1):
        common.set_num_threads(2)
        if scope is None:
            assert backend._fast_threads() == 2
            common.set_num_threads(1)
            assert backend._fast_threads() == 1
        else:
            with backend.compute_scope(rows=scope):
                assert backend._fast_threads() == 2
                common.set_num_threads(1)
                assert backend._fast_threads() == 1


def test_numpy_backend_reports_no_threads_inside_a_scope_too():
    before = backend.get_backend()
    backend.set_backend("numpy")
    try:
        with backend.compute_scope():
            assert backend._fast_threads() == 0
            a, b = np.ones((3, 2)), np.ones((2, 4))
            assert np.array_equal(backend.matmul(a, b), a @ b)
    finally:
        backend.set_backend(before)


@pytest.mark.parametrize("before", [None, 3])
def test_limited_threads_restores_the_count_even_when_the_block_raises(numba_backend, before,
                                                                        monkeypatch):  # fmt: skip
    """``common.limited_threads`` (the forecast's one-thread fits): ``n`` inside, and afterwards
    what was there, ``None`` (the environment's default) included, after an exception too."""
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "5")
    common.set_num_threads(before)
    with pytest.raises(KeyError), common.limited_threads(1):
        assert common.get_num_threads() == 1
        raise KeyError("planted")
    assert common._THREADS == before
    assert common.get_num_threads() == (5 if before is None else before)
