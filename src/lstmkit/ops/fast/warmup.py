"""Call every compiled kernel once for one float type, so that numba compiles it into the cache.

Run by the background worker of :mod:`lstmkit.ops.compiled` (:func:`lstmkit.ops.compiled.main`),
never by a user's process. numba compiles one machine-code version per argument *type*
(float type, dimensions, layout, read-only or not), so these calls must give the kernels the
types that users' calls give them: every public op of :mod:`lstmkit.ops.fast` with and without
the optional arrays (masks, recurrent dropout, incoming gradients; passed as an array plus a flag,
so one type either way), on the row-major path (batch 1) and on the feature-major one, on one
thread and on two (the ``parallel=True`` kernels), with ``x`` C-contiguous and as the layer
passes it (a ``(T, B, D)`` view of its ``(B, T, D)`` input). The thread thresholds are lowered so
that tiny inputs reach the multi-thread kernels. ``tests/test_first_call.py`` checks the result
through the public API: after the worker, training and prediction compile nothing.
"""

from __future__ import annotations

import numpy as np

from . import common, lstm_fm, optim, scatter, xent
from .gru import gru_backward, gru_forward, gru_infer, gru_step
from .lstm import lstm_backward, lstm_forward, lstm_infer, lstm_step
from .rnn import rnn_backward, rnn_forward, rnn_infer, rnn_step

# (B, threads): batch 1 (row-major), narrow batches (unit split), batches wide enough that
# inference splits them among the threads (one vector width of columns each: 16 float32 columns
# on AVX-512, so 32 for the float32 batch split there; lstm_fm._infer_lead and _infer_helper)
_SHAPES = ((1, 1), (3, 1), (3, 2), (16, 2), (32, 2))


def _inputs(rng, dt, T, B, D, H, G, bias_rows):
    x_btd = rng.standard_normal((B, T, D)).astype(dt)
    return {
        "x": np.ascontiguousarray(x_btd.transpose(1, 0, 2)),
        "x_view": x_btd.transpose(1, 0, 2),  # what the layers pass
        "h0": rng.standard_normal((B, H)).astype(dt),
        "kernel": (0.3 * rng.standard_normal((D, G * H))).astype(dt),
        "U": (0.3 * rng.standard_normal((H, G * H))).astype(dt),
        "bias": (0.1 * rng.standard_normal((*bias_rows, G * H))).astype(dt),
        "mask": rng.random((T, B)) > 0.2,
        "rmask": (rng.random((B, H)) > 0.3).astype(dt),
        "dhs": rng.standard_normal((T, B, H)).astype(dt),
        "dhs_view": rng.standard_normal((B, T, H)).astype(dt).transpose(1, 0, 2),
    }


def _lstm(a, **acts):
    c0 = a["h0"] * 0.5
    for x in (a["x"], a["x_view"]):
        for mask, rmask in ((None, None), (a["mask"], a["rmask"])):
            _, (h, c), cache = lstm_forward(x, a["h0"], c0, a["kernel"], a["U"], a["bias"], mask,
                                            rmask, **acts)  # fmt: skip
            for dhs in (a["dhs"], a["dhs_view"], None):
                for need_dx in (True, False):
                    lstm_backward(dhs, h, c, cache, need_dx=need_dx)
            lstm_backward(a["dhs"], None, None, cache)
            lstm_infer(x, a["h0"], c0, a["kernel"], a["U"], a["bias"], mask, **acts)
    lstm_step(a["x"][0], a["h0"], c0, a["kernel"], a["U"], a["bias"], **acts)


def _gru_or_rnn(forward, backward, infer, step):
    """The warm-up calls of a cell with one state (GRU, SimpleRNN), like :func:`_lstm`'s."""

    def run(a, **acts):
        for x in (a["x"], a["x_view"]):
            for mask, rmask in ((None, None), (a["mask"], a["rmask"])):
                _, h, cache = forward(x, a["h0"], a["kernel"], a["U"], a["bias"], mask, rmask,
                                      **acts)  # fmt: skip
                for dhs in (a["dhs"], a["dhs_view"], None):
                    backward(dhs, h, cache)
                backward(a["dhs"], None, cache)
                infer(x, a["h0"], a["kernel"], a["U"], a["bias"], mask, **acts)
        step(a["x"][0], a["h0"], a["kernel"], a["U"], a["bias"], **acts)

    return run


_gru = _gru_or_rnn(gru_forward, gru_backward, gru_infer, gru_step)
_rnn = _gru_or_rnn(rnn_forward, rnn_backward, rnn_infer, rnn_step)


def _cells(pair):
    """``(call, gates, bias rows, activation kwargs)`` of the cells to compile: all three with
    Keras' defaults, or the one cell of ``pair = (cell, activation[, recurrent_activation])``."""
    # GRU (reset_after): an input and a recurrent bias, (2, 3H)
    cells = {"lstm": (_lstm, 4, ()), "gru": (_gru, 3, (2,)), "rnn": (_rnn, 1, ())}
    if pair is None:
        return [(*c, {}) for c in cells.values()]
    names = dict(zip(("activation", "recurrent_activation"), pair[1:]))
    return [(*cells[pair[0]], names)]


def run(dtype: str, pair: tuple | None = None) -> None:
    """Compile every kernel for ``dtype`` (``"float32"`` or ``"float64"``), or those of one
    activation pair (:func:`lstmkit.ops.compiled.job_parts`)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    saved = (common.PARALLEL_MIN_MACS, lstm_fm.PARALLEL_STEP_MACS, common._THREADS)
    common.PARALLEL_MIN_MACS = 0  # tiny inputs take the multi-thread paths too
    lstm_fm.PARALLEL_STEP_MACS = 0
    try:
        for B, threads in _SHAPES:
            common.set_num_threads(threads)
            T, D, H = 4, 3, 8
            for cell, G, rows, acts in _cells(pair):
                cell(_inputs(rng, dt, T, B, D, H, G, rows), **acts)
        if pair is not None:
            return
        common.matmul(
            rng.standard_normal((5, 4)).astype(dt), rng.standard_normal((4, 3)).astype(dt)
        )
        p, g, m, v = (rng.random(6).astype(dt) for _ in range(4))  # the optimizers' flat Adam
        optim.adam_flat(p, g, m, v, *(dt.type(c) for c in (0.1, 0.001, 1e-3, 1e-7)))
        optim.sum_squares(g, np.array([[0, 2], [2, 6]], np.int64))  # the clipnorm's norm
        ids = np.array([2, 0, 2], np.int64)  # Embedding's backward
        scatter.embedding_grad(ids, rng.random((3, 4)).astype(dt), np.empty((3, 4), dt))
        z = rng.random((3, 4)).astype(dt)  # the sparse cross-entropy from logits
        xent.sparse_xent(z, ids, dt.type(1 / 3), np.empty_like(z))
    finally:
        common.PARALLEL_MIN_MACS, lstm_fm.PARALLEL_STEP_MACS, common._THREADS = saved
