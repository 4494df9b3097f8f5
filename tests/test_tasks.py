"""Task generators against their specifications (Hochreiter & Schmidhuber 1997, sections 5.4 and
5.6; the copy task of Arjovsky et al. 2016), checked sequence by sequence with plain loops that
decode the inputs, plus the distributions the specs imply."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.tasks import (
    ADDING_BASELINE_MSE,
    ADDING_TOLERANCE,
    adding_correct,
    adding_problem,
    copy_baseline_loss,
    copy_memory,
    temporal_order,
)


@pytest.mark.parametrize("T", [12, 20, 100, 1000])
def test_adding_problem_follows_the_paper(T):
    n = 400 if T < 1000 else 50
    b = adding_problem(n, T, seed=T)
    assert b.x.dtype == np.float32 and b.x.shape == (n, b.lengths.max(), 2)
    assert b.y.shape == (n, 1) and b.mask.shape == b.x.shape[:2]
    assert (b.lengths >= T).all() and (b.lengths <= T + T // 10).all()
    for k in range(n):
        L = b.lengths[k]
        values, markers = b.x[k, :, 0], b.x[k, :, 1]
        assert b.mask[k, :L].all() and not b.mask[k, L:].any()
        assert (b.x[k, L:] == 0).all()  # padding is zeros
        assert np.all(np.abs(values[:L]) <= 1)
        assert markers[0] == -1 and markers[L - 1] == -1
        plus = np.flatnonzero(markers == 1)
        others = np.setdiff1d(np.arange(1, L - 1), plus)
        assert (markers[others] == 0).all()
        if len(plus) == 1:  # the first mark fell on the first pair: X1 = 0, its marker stays -1
            assert values[0] == 0
            x1, i2 = 0.0, plus[0]
            assert 1 <= i2 <= T // 2 - 1
        else:
            assert len(plus) == 2
            i1, i2 = plus  # which one was drawn first is not visible; both ranges must fit
            assert i1 <= 9 and 1 <= i2 <= max(T // 2 - 1, 9) and i1 != i2
            x1 = values[i1]
        target = 0.5 + (x1 + values[i2]) / 4
        assert abs(b.y[k, 0] - target) < 1e-6


def test_adding_problem_distributions():
    T, n = 100, 200_000
    b = adding_problem(n, T, seed=0, dtype="float64")
    m = b.x[:, :, 1]
    first_on_first = m[:, 0] == -1  # always; count sequences with one +1 only
    one_mark = (m == 1).sum(axis=1) == 1
    assert first_on_first.all()
    assert abs(one_mark.mean() - 0.1) < 0.005  # P(first mark on pair 0) = 1/10
    # the second mark is uniform over 1 .. T/2 - 1: positions past 9 each ~ 1/(T/2 - 1)
    pos = np.argwhere(m == 1)
    late = pos[pos[:, 1] >= 10, 1]
    counts = np.bincount(late, minlength=T // 2)[10 : T // 2]
    assert late.max() == T // 2 - 1 and counts.min() > 0
    assert np.abs(counts / n - 1 / (T // 2 - 1)).max() < 0.003
    # Var(target) is the predict-the-mean MSE: (0.9/3 + 1/3)/16
    assert abs(b.y.var() - ADDING_BASELINE_MSE) < 5e-4
    assert abs(b.y.mean() - 0.5) < 2e-3
    assert abs(np.mean((b.y - 0.5) ** 2) - 0.0395833) < 5e-4


def test_adding_problem_is_seeded():
    a, b = adding_problem(64, 50, seed=3), adding_problem(64, 50, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = adding_problem(64, 50, seed=4)
    assert not np.array_equal(a.y, c.y)
    g = np.random.default_rng(9)
    d, e = adding_problem(8, 50, seed=g), adding_problem(8, 50, seed=g)  # a stream
    assert not np.array_equal(d.y, e.y)


def test_adding_correct_is_strictly_below_the_tolerance():
    y = np.array([[0.5], [0.5], [0.5]])
    p = np.array([[0.5 + ADDING_TOLERANCE / 2], [0.5 - 0.05], [0.5 + 0.0399]])
    np.testing.assert_array_equal(adding_correct(y, p), [True, False, True])


def test_temporal_order_follows_the_paper():
    T, n = 100, 2000
    b = temporal_order(n, T, seed=1)
    assert b.x.shape == (n, b.lengths.max(), 8) and b.y.dtype == np.int64
    assert (b.lengths >= 100).all() and (b.lengths <= 110).all()
    sym = b.x.argmax(axis=-1)
    classes = {("X", "X"): 0, ("X", "Y"): 1, ("Y", "X"): 2, ("Y", "Y"): 3}
    names = "abcdXYEB"
    for k in range(n):
        L = b.lengths[k]
        assert (b.x[k, :L].sum(axis=-1) == 1).all() and (b.x[k, L:] == 0).all()
        s = [names[j] for j in sym[k, :L]]
        assert s[0] == "E" and s[-1] == "B"
        rel = [t for t, c in enumerate(s) if c in "XY"]
        assert len(rel) == 2 and 10 <= rel[0] <= 20 and 50 <= rel[1] <= 60
        assert set(s[1:-1]) - {"X", "Y"} <= set("abcd")
        assert b.y[k] == classes[(s[rel[0]], s[rel[1]])]
    freq = np.bincount(b.y, minlength=4) / n
    assert np.abs(freq - 0.25).max() < 0.04


def test_copy_memory_layout():
    b = copy_memory(50, delay=30, n_symbols=8, n_recall=10, seed=0)
    assert b.x.shape == (50, 50, 10) and b.y.shape == (50, 50) and b.mask.all()
    inputs = b.x.argmax(axis=-1)
    assert (b.x.sum(axis=-1) == 1).all()
    np.testing.assert_array_equal(b.y[:, -10:], inputs[:, :10])  # recall = the first 10 inputs
    assert (inputs[:, :10] < 8).all() and (b.y[:, :40] == 8).all()
    assert (inputs[:, 39] == 9).all()  # delimiter after delay - 1 blanks
    assert (np.delete(inputs[:, 10:], 29, axis=1) == 8).all()
    assert copy_baseline_loss(30) == pytest.approx(10 * np.log(8) / 50)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: adding_problem(0, 100), "'n'"),
        (lambda: adding_problem(5, 11), "'T' must be an int >= 12"),
        (lambda: adding_problem(5, 100.0), "'T'"),
        (lambda: temporal_order(5, 5), "'T'"),
        (lambda: copy_memory(5, 0), "'delay'"),
        (lambda: copy_memory(5, 3, n_symbols=1), "'n_symbols'"),
    ],
)
def test_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
