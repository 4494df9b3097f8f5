"""Training's buffers start on cache lines, and where they start changes no bit.

- Every :meth:`Workspace.take` (pooled, small, beyond the cap) is 64-byte aligned, and a view
  given back still finds its buffer (an aligned buffer's ``base`` is the raw memory, not itself).
- The feature-major kernels of a training step receive aligned buffers: the arguments of every
  kernel call are checked by name (the stacked input ``XH``, gates, states, outputs; BPTT's
  ``DZ``, ``dx``, ``dh``/``dc`` ...), through ``train_on_batch`` and through direct calls
  without a workspace.
- The same training steps with every one of those buffers moved 16 bytes off the line (what
  ``np.empty`` gave before) give bit-identical losses and weights. Against the previous commit
  itself the witness is ``benchmarks/train_bits.py`` run on both trees (docs/speed.md).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import lstmkit
from lstmkit import layers
from lstmkit.ops import backend, workspace
from lstmkit.ops.fast import lstm_fm
from lstmkit.ops.workspace import CACHE_LINE, SMALL_BYTES, Workspace

T, B, D, H = 6, 32, 8, 128  # B >= 32, H >= 128: the feature-major kernels, pooled buffers
BIG = (64, 1024)

# the kernels' buffer arguments (by parameter name) that training allocates
FORWARD = {"Ap", "XH", "Z", "G", "C", "TC", "out"}
BACKWARD = {"Wp", "XH", "G", "C", "TC", "dh", "dc", "DZ", "out", "dx", "dWTp"}
MASKED = {"keep_dh", "keep_dc"}  # real buffers only with a mask


def address(a) -> int:
    return a.__array_interface__["data"][0]


def shifted(off):
    """An ``aligned_empty`` whose data starts ``off`` bytes past a cache line."""

    def empty(shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = np.empty(nbytes + 2 * CACHE_LINE, np.uint8)
        skip = -address(raw) % CACHE_LINE + off
        return np.ndarray(tuple(shape), dtype, raw, skip)

    return empty


# -- the workspace --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_])
def test_every_take_starts_on_a_cache_line(dtype):
    ws = Workspace(max_bytes=2**20)
    shapes = [(3,), (SMALL_BYTES // 8 - 1,), (17, 33, 5), BIG, (7, 4097), BIG, (300, 300)]
    for generation in range(2):
        for shape in shapes:
            a = ws.take(shape, dtype)
            assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
            assert a.flags.writeable and address(a) % CACHE_LINE == 0, (generation, shape)
            a.reshape(-1)[-1] = 1  # the last value is inside the memory
        ws.reset()
    assert ws.bytes <= ws.max_bytes


def test_a_view_given_back_is_its_buffer():
    ws = Workspace()
    a = ws.take(BIG, np.float32)
    ws.give_back(a[2:].T)  # a view, as a Bidirectional gives back its halves
    assert address(ws.take(BIG, np.float32)) == address(a)
    small = ws.take((3,), np.float32)  # not kept: giving it (or a view) back changes nothing
    ws.give_back(small, small[1:], np.empty(BIG, np.float32)[1:])
    assert not np.shares_memory(ws.take(BIG, np.float32), a)


# -- the kernels' arguments in a training step ----------------------------------------------------
@pytest.fixture
def kernel_args(monkeypatch):
    """``(kind, {name: argument})`` of every feature-major kernel run (forward, backward)."""
    calls = []
    real = lstm_fm._in_step

    def spy(P, serial, parallel, args, macs):
        names = inspect.signature(serial.py_func).parameters
        kind = "forward" if serial is lstm_fm._forward_serial else "backward"
        calls.append((kind, dict(zip(names, args))))
        return real(P, serial, parallel, args, macs)

    monkeypatch.setattr(lstm_fm, "_in_step", spy)
    return calls


def _model(mask=False, dropout=0.0, dtype="float32"):
    first = [layers.Masking(0.0, input_shape=(T, D))] if mask else []
    shape = {} if mask else {"input_shape": (T, D)}
    lstm = layers.LSTM(H, return_sequences=True, recurrent_dropout=dropout, dtype=dtype, **shape)
    model = lstmkit.Sequential([*first, lstm, layers.LSTM(H, return_sequences=True, dtype=dtype)])
    model.build()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        for v in layer.params.values():
            v[...] = rng.uniform(-0.2, 0.2, v.shape)
    model.compile(lstmkit.optimizers.Adam(1e-2), "mse", seed=0)
    return model


def _data(dtype="float32"):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    x[B // 2 :, T - 2 :] = 0  # padded tails, for the masked model
    return x, rng.standard_normal((B, T, H)).astype(dtype)


def _misaligned(calls, names):
    return [
        (kind, k) for kind, args in calls for k in names[kind] if address(args[k]) % CACHE_LINE != 0
    ]


@pytest.mark.parametrize("mask", [False, True])
def test_a_training_step_gives_the_kernels_aligned_buffers(kernel_args, mask):
    assert backend.get_backend() == "numba"
    model = _model(mask=mask, dropout=0.25)
    x, y = _data()
    for _ in range(2):  # the first step makes the pool's buffers, the second reuses them
        model.train_on_batch(x, y)
    kinds = [kind for kind, _ in kernel_args]
    assert kinds == ["forward"] * 2 + ["backward"] * 2 + kinds[:4]
    names = {"forward": FORWARD, "backward": BACKWARD | (MASKED if mask else set())}
    assert _misaligned(kernel_args, names) == []


def test_direct_calls_without_a_workspace_get_aligned_buffers(kernel_args):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    h0, c0 = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    W, U = (rng.uniform(-0.2, 0.2, (n, 4 * H)).astype(np.float32) for n in (D, H))
    bias = rng.uniform(-0.1, 0.1, 4 * H).astype(np.float32)
    hs, (h_T, c_T), cache = lstm_fm.lstm_forward_fm(x, h0, c0, W, U, bias, threads=2)
    lstm_fm.lstm_backward_fm(np.ones_like(hs), h_T, c_T, cache)  # dh_T, dc_T given: copied in
    assert [kind for kind, _ in kernel_args] == ["forward", "backward"]
    assert _misaligned(kernel_args, {"forward": FORWARD, "backward": BACKWARD}) == []


# -- the same bits wherever the buffers start -----------------------------------------------------
def _train(dtype, steps=3):
    model = _model(mask=True, dropout=0.25, dtype=dtype)
    x, y = _data(dtype)
    losses = [model.train_on_batch(x, y) for _ in range(steps)]
    return losses, [v.copy() for v in model.params.values()]  # (names differ: lstm_1, ...)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_buffers_off_the_line_train_to_the_same_bits(kernel_args, monkeypatch, dtype):
    losses, params = _train(dtype)
    names = {"forward": FORWARD, "backward": BACKWARD | MASKED}
    assert _misaligned(kernel_args, names) == []
    kernel_args.clear()
    monkeypatch.setattr(workspace, "aligned_empty", shifted(16))
    monkeypatch.setattr(lstm_fm, "aligned_empty", shifted(16))
    losses16, params16 = _train(dtype)
    moved = _misaligned(kernel_args, names)
    assert len(moved) == sum(len(names[kind]) for kind, _ in kernel_args)  # every one moved
    assert losses16 == losses
    assert len(params16) == len(params) == 6  # two LSTM layers, three weights each
    for i, (a, b) in enumerate(zip(params16, params)):
        assert a.tobytes() == b.tobytes(), i
