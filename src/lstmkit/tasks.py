"""Synthetic long-time-lag tasks, seeded: the adding problem, the temporal-order problem and the
copy (delayed-recall) task.

Every generator returns a :class:`Batch` of post-padded, batch-major arrays: ``x (B, T_max, D)``
(zeros after each sequence's end), ``mask (B, T_max)`` (True on real steps), ``lengths (B,)`` and
the targets ``y``. Feed ``mask`` to a recurrent layer: with ``return_sequences=False`` it returns
the h of each sequence's *last valid* step, which is where these tasks ask for the answer.

Adding problem (Hochreiter & Schmidhuber 1997, section 5.4, experiment 4)::

    pair t = (value_t ~ U[-1, 1], marker_t)           length L ~ U{T, ..., T + T/10}
    marker = -1 at the first and the last pair, 1 at the two marked pairs, 0 elsewhere
    first mark: one of the first 10 pairs            (its value is X1)
    second mark: one of the first T/2 - 1 still unmarked pairs, never the first pair (X2)
    if the first mark falls on the first pair, its marker stays -1 and X1 = value = 0
    target  y = 0.5 + (X1 + X2) / 4                  correct when |y_pred - y| < 0.04

The paper allows the second mark on the first pair too, but that pair's marker is -1, so the
network could not see which value to add: about 2 % of sequences would be ambiguous and the
"at most 3 wrong of 2560" criterion unreachable.
Predicting the mean 0.5 scores an MSE of ``Var(y) = (0.9/3 + 1/3) / 16 = 0.0395833``
(:data:`ADDING_BASELINE_MSE`; X1 is 0 with probability 1/10).

Temporal order, 2 relevant symbols (section 5.6, experiment 6a): symbols a, b, c, d, X, Y, E, B
one-hot (8 inputs, that order). A sequence of length L ~ U{T, ..., T + T/10} starts with E, ends
with B (the trigger), and holds X or Y at two positions t1 ~ U{T/10, ..., T/5} and
t2 ~ U{T/2, ..., 6T/10} (0-based; for T = 100 the paper's 10..20 and 50..60), distractors
a..d elsewhere. Classes from the order: XX -> 0 (Q), XY -> 1 (R), YX -> 2 (S), YY -> 3 (U).
Chance is 1/4 correct, cross-entropy ln 4.

Copy / delayed recall (the copy-memory task of Arjovsky et al. 2016, after Hochreiter &
Schmidhuber 1997 section 5.2): ``n_recall`` symbols from an alphabet of ``n_symbols``, then
``delay - 1`` blanks, a delimiter, and ``n_recall`` more blanks; the target is blank everywhere
except the last ``n_recall`` steps, which must repeat the symbols. Channels: symbols
``0..n_symbols-1``, blank ``n_symbols``, delimiter ``n_symbols + 1``. The best memoryless output
(blank, then uniform guesses) scores ``n_recall * ln(n_symbols) / (delay + 2 n_recall)`` nats.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ADDING_TOLERANCE = 0.04
ADDING_BASELINE_MSE = (0.9 / 3 + 1 / 3) / 16  # Var(target); predicting 0.5 scores this MSE
TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "E", "B")
TEMPORAL_ORDER_CLASSES = ("XX", "XY", "YX", "YY")  # the paper's Q, R, S, U


class Batch(NamedTuple):
    x: np.ndarray  # (B, T_max, D) post-padded with zeros
    y: np.ndarray  # adding: (B, 1) float; temporal order: (B,) int; copy: (B, T_max) int
    mask: np.ndarray  # (B, T_max) bool, True on real steps
    lengths: np.ndarray  # (B,) int


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(owner, **args):
    """``arg=(value, lowest allowed)`` for each int argument."""
    for arg, (v, lo) in args.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{owner}: argument '{arg}' must be an int >= {lo}; got {v!r}")


def _lengths(rng, n, T):
    lengths = rng.integers(T, T + T // 10 + 1, size=n)  # U{T, ..., T + T/10}
    return lengths, np.arange(lengths.max()) < lengths[:, None]


def adding_problem(n, T, seed=None, dtype="float32") -> Batch:
    """``n`` adding-problem sequences of minimal length ``T`` (>= 12, so both marks lie before
    the last pair); ``y (n, 1)``."""
    _check("adding_problem", n=(n, 1), T=(T, 12))
    rng = _rng(seed)
    lengths, mask = _lengths(rng, n, T)
    rows = np.arange(n)
    values = rng.uniform(-1.0, 1.0, size=mask.shape) * mask
    markers = np.zeros(mask.shape)
    i1 = rng.integers(0, 10, size=n)  # first mark: one of the first 10 pairs
    # second mark: uniform over positions {1, ..., T/2 - 1} minus {i1}: the first T/2 - 1 pairs
    # still unmarked, without the first pair. Draw the k-th candidate, then step over i1.
    taken = (i1 >= 1) & (i1 <= T // 2 - 1)
    k = 1 + (rng.random(n) * (T // 2 - 1 - taken)).astype(np.int64)
    i2 = np.where(taken & (k >= i1), k + 1, k)
    values[rows[i1 == 0], 0] = 0.0  # the first pair marked: X1 = 0
    markers[rows, i1] = 1.0
    markers[rows, i2] = 1.0
    markers[:, 0] = -1.0
    markers[rows, lengths - 1] = -1.0
    y = 0.5 + (values[rows, i1] + values[rows, i2]) / 4.0
    x = np.stack([values, markers], axis=-1).astype(dtype)
    return Batch(x, y[:, None].astype(dtype), mask, lengths)


def adding_correct(y_true, y_pred, tolerance=ADDING_TOLERANCE) -> np.ndarray:
    """Per sequence: ``|y_pred - y_true| < tolerance`` (the paper's criterion), bool ``(B,)``."""
    err = np.abs(np.asarray(y_pred, np.float64).reshape(-1) - np.asarray(y_true).reshape(-1))
    return err < tolerance


def temporal_order(n, T=100, seed=None, dtype="float32") -> Batch:
    """``n`` temporal-order sequences (2 relevant symbols) of minimal length ``T`` (>= 10);
    ``y (n,)`` class ids 0..3 (XX, XY, YX, YY)."""
    _check("temporal_order", n=(n, 1), T=(T, 10))
    rng = _rng(seed)
    lengths, mask = _lengths(rng, n, T)
    rows = np.arange(n)
    sym = rng.integers(0, 4, size=mask.shape)  # distractors a..d
    t1 = rng.integers(T // 10, T // 5 + 1, size=n)
    t2 = rng.integers(T // 2, 6 * T // 10 + 1, size=n)
    first_y, second_y = rng.integers(0, 2, size=n), rng.integers(0, 2, size=n)  # 0 = X, 1 = Y
    sym[rows, t1] = 4 + first_y
    sym[rows, t2] = 4 + second_y
    sym[:, 0] = 6  # E
    sym[rows, lengths - 1] = 7  # B, the trigger
    x = (sym[..., None] == np.arange(8)) & mask[..., None]
    y = 2 * first_y + second_y
    return Batch(x.astype(dtype), y.astype(np.int64), mask, lengths)


def copy_memory(n, delay, n_symbols=8, n_recall=10, seed=None, dtype="float32") -> Batch:
    """``n`` copy-task sequences of length ``delay + 2 n_recall`` (all the same length);
    ``y (n, T)`` class ids, blank (``n_symbols``) except the last ``n_recall`` steps."""
    _check("copy_memory", n=(n, 1), delay=(delay, 1), n_symbols=(n_symbols, 2),
           n_recall=(n_recall, 1))  # fmt: skip
    rng = _rng(seed)
    T = delay + 2 * n_recall
    symbols = rng.integers(0, n_symbols, size=(n, n_recall))
    inputs = np.full((n, T), n_symbols)
    inputs[:, :n_recall] = symbols
    inputs[:, n_recall + delay - 1] = n_symbols + 1  # the delimiter: "now repeat"
    y = np.full((n, T), n_symbols)
    y[:, -n_recall:] = symbols
    x = (inputs[..., None] == np.arange(n_symbols + 2)).astype(dtype)
    return Batch(x, y.astype(np.int64), np.ones((n, T), bool), np.full(n, T))


def copy_baseline_loss(delay, n_symbols=8, n_recall=10) -> float:
    """Cross-entropy (nats per step) of the best memoryless output for :func:`copy_memory`."""
    return n_recall * float(np.log(n_symbols)) / (delay + 2 * n_recall)
