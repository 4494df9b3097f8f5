"""Buffers owned by a :class:`lstmkit.ops.workspace.Workspace` that the model passes in.

The mechanism (same buffers after a reset, distinct ones within a generation, the byte cap) is
checked on the object itself, by data pointers. What it must never break is checked through the
public API with PyTorch as the witness (weights copied in, both torch bias vectors non-zero):

- a functional model with one LSTM layer used twice (two forwards, then two backwards, in one
  generation), trained two steps on the feature-major kernels: losses and gradients;
- predictions held by the user survive later predictions and training;
- two threads training two models, or predicting with one model, get their serial results;
- a forked child never takes its parent's workspace.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

import lstmkit
from forked import in_forked_child
from lstmkit import Input, Model, layers
from lstmkit.ops import backend
from lstmkit.ops.workspace import SMALL_BYTES, Workspace
from oracles import _param_grads, torch_module

pytest.importorskip("numba")
from lstmkit.ops.fast import lstm_fm

T, B, D, H = 6, 32, 8, 128  # B >= 32, H >= 128: the feature-major kernels, pooled buffers
BIG = (64, 1024)  # 256 KiB of float32: pooled


def address(a) -> int:
    return a.__array_interface__["data"][0]


# -- the mechanism ------------------------------------------------------------------------------
def test_a_reset_hands_out_the_same_buffers_in_the_same_order():
    ws = Workspace()
    first = [ws.take(BIG, np.float32), ws.take(BIG, np.float32), ws.take((300, 300), "f8")]
    assert len({address(a) for a in first}) == 3  # distinct within a generation
    ws.reset()
    again = [ws.take(BIG, np.float32), ws.take(BIG, np.float32), ws.take((300, 300), "f8")]
    assert [address(a) for a in again] == [address(a) for a in first]
    assert ws.bytes == 2 * 2**18 + 300 * 300 * 8


def test_without_a_reset_every_take_is_new():
    ws = Workspace()
    a = ws.take(BIG, np.float32)
    b = ws.take(BIG, np.float32)  # the next "step" without reset: grows, never aliases
    assert not np.shares_memory(a, b) and ws.bytes == 2 * 2**18


def test_a_reset_releases_what_the_ended_generation_did_not_take():
    ws = Workspace()
    ws.take(BIG, np.float32)
    ws.take((100, 1000), np.float32)
    ws.reset()
    ws.take(BIG, np.float32)  # this generation: one shape only
    ws.reset()
    assert ws.bytes == 2**18
    ws.reset()  # a generation that took nothing releases nothing
    assert ws.bytes == 2**18


def test_given_back_scratch_is_taken_again_in_the_same_generation():
    ws = Workspace()
    a = ws.take(BIG, np.float32)
    ws.give_back(a)
    b = ws.take(BIG, np.float32)
    c = ws.take(BIG, np.float32)
    assert address(b) == address(a) and not np.shares_memory(b, c)
    ws.give_back(np.empty(BIG, np.float32))  # not from here: ignored
    assert not np.shares_memory(ws.take(BIG, np.float32), b)


def test_a_detached_buffer_is_never_handed_out_again():
    ws = Workspace()
    a = ws.take(BIG, np.float32)
    view = a[2:].T
    ws.detach(view)
    assert ws.bytes == 0 and not ws.holds(view)
    ws.reset()
    assert not np.shares_memory(ws.take(BIG, np.float32), a)


def test_small_takes_and_takes_beyond_the_cap_are_plain_arrays():
    ws = Workspace(max_bytes=3 * 2**17)  # room for one BIG buffer
    small = ws.take((SMALL_BYTES // 4 - 1,), np.float32)
    a = ws.take(BIG, np.float32)
    beyond = ws.take(BIG, np.float32)  # over the cap: correct, not kept
    assert ws.bytes == 2**18 and not ws.holds(beyond) and not ws.holds(small)
    ws.reset()
    assert address(ws.take(BIG, np.float32)) == address(a)
    assert not ws.holds(ws.take(BIG, np.float32))


def test_small_buffers_from_a_cache_line_up_are_kept():
    """A small model's step takes a dozen buffers of a few KiB (the forecaster's: 8-32 KiB):
    kept like the big ones, the same buffers after a reset, in the same order."""
    ws = Workspace()
    shapes = [(SMALL_BYTES // 4,), (32, 64), (5, 128, 64), (32, 64)]
    first = [ws.take(s, np.float32) for s in shapes]
    assert ws.bytes == sum(a.nbytes for a in first)
    ws.reset()
    again = [ws.take(s, np.float32) for s in shapes]
    assert [address(a) for a in again] == [address(a) for a in first]
    assert len({address(a) for a in again}) == len(shapes)  # two (32, 64): distinct


@pytest.mark.parametrize("h", [1, 32])
def test_a_backward_returns_fresh_gradients_and_gives_its_scratch_back(h):
    """The forecaster's shapes (small buffers, now kept): the backward's scratch (the state
    gradients included) goes back to the workspace, a second backward of the same generation
    takes it again; what it returns is never a buffer of the workspace (at H = 1 the state
    gradients' transpose is contiguous already: a view would be the workspace's buffer)."""
    rng = np.random.default_rng(7)
    t, b, d = 4, 64, 4
    x = rng.standard_normal((t, b, d)).astype(np.float32)
    w = [rng.uniform(-0.2, 0.2, s).astype(np.float32) for s in ((d, 4 * h), (h, 4 * h), (4 * h,))]
    zeros = np.zeros((b, h), np.float32)
    ws = Workspace()
    _, _, cache = lstm_fm.lstm_forward_fm(x, zeros, zeros, *w, ws=ws)
    dhs, dh_T = rng.standard_normal((t, b, h)).astype(np.float32), zeros + 0.5
    grads = lstm_fm.lstm_backward_fm(dhs, dh_T, dh_T, cache, ws=ws)
    held = ws.bytes
    again = lstm_fm.lstm_backward_fm(dhs, dh_T, dh_T, cache, ws=ws)
    assert ws.bytes == held  # the same scratch, given back and taken again
    for k, g in grads.items():
        assert not ws.holds(g), k
        np.testing.assert_array_equal(g, again[k], err_msg=k)


def test_the_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LSTMKIT_WORKSPACE_MB", "0")
    ws = Workspace()
    ws.take(BIG, np.float32)
    assert ws.max_bytes == 0 and ws.bytes == 0
    monkeypatch.setenv("LSTMKIT_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="LSTMKIT_WORKSPACE_MB.*'lots'"):
        Workspace()
    with pytest.raises(ValueError, match="'max_bytes'.*-1"):
        Workspace(max_bytes=-1)


# -- through the public API, PyTorch as the witness ---------------------------------------------
def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for p in layer.params.values():
            p[...] = rng.uniform(-0.15, 0.15, p.shape)


def _shared_model():
    a, b = Input((T, D), name="a"), Input((T, D), name="b")
    lstm = layers.LSTM(H, return_sequences=True, name="shared")
    model = Model([a, b], layers.Add()([lstm(a), lstm(b)]))
    _randomize(model, 0)
    return model


def _torch_step(params, xa, xb, y, b_hh):
    """Loss and lstmkit-layout gradients of mse(lstm(xa) + lstm(xb), y) in PyTorch."""
    mod = torch_module("lstm", params["kernel"], params["recurrent_kernel"], params["bias"], b_hh)
    out = sum(mod(torch.from_numpy(x).transpose(0, 1))[0] for x in (xa, xb))
    loss = torch.mean((out.transpose(0, 1) - torch.from_numpy(y)) ** 2)
    loss.backward()
    return loss.item(), _param_grads("lstm", mod, "_l0")


@pytest.fixture
def fm_calls(monkeypatch):
    """The workspaces the feature-major kernels were called with (proves they ran)."""
    calls = []
    for name in ("lstm_forward_fm", "lstm_backward_fm", "lstm_infer_fm"):
        real = getattr(lstm_fm, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, kwargs.get("ws", args[-1] if args else None)))
            return _real(*args, **kwargs)

        monkeypatch.setattr(lstm_fm, name, spy)
    return calls


def test_a_layer_shared_twice_trains_like_torch(fm_calls):
    assert backend.get_backend() == "numba"
    model = _shared_model()
    lr = 0.5
    model.compile(lstmkit.optimizers.SGD(lr), "mse", seed=0)
    rng = np.random.default_rng(1)
    b_hh = np.full(4 * H, 0.05, np.float32)
    for step in range(2):
        xa, xb = (rng.standard_normal((B, T, D)).astype(np.float32) for _ in range(2))
        y = rng.standard_normal((B, T, H)).astype(np.float32)
        before = {k.split(".")[-1]: v.copy() for k, v in model.params.items()}
        t_loss, t_grads = _torch_step(before, xa, xb, y, b_hh)
        loss = model.train_on_batch([xa, xb], y)
        assert loss == pytest.approx(t_loss, rel=1e-5), step
        for k, g in t_grads.items():
            got = (before[k] - model.params[f"shared.{k}"]) / lr  # SGD: w -= lr * g
            # float32 weights of ~0.15 moved by ~1e-4: the difference keeps ~4 digits
            err = np.abs(got - g).max() / np.abs(g).max()
            assert err < 3e-4, f"step {step}: {k} off by {err:.1e} of its largest value"
    names = [n for n, _ in fm_calls]
    assert names == ["lstm_forward_fm"] * 2 + ["lstm_backward_fm"] * 2 + names[:4]
    wss = {id(w) for _, w in fm_calls}
    assert len(wss) == 1 and fm_calls[0][1] is not None  # the model's, every step


def test_training_steps_reuse_one_set_of_buffers(fm_calls):
    """Every step takes the same buffers again: the model's workspace does not grow."""
    model = _sequence_model()
    held = []
    for x, y in _batches(9, n=3):
        model.train_on_batch(x, y)
        (ws,) = model._idle_workspaces("train")
        held.append(ws.bytes)
    assert held[0] > 0 and held == [held[0]] * 3
    assert {id(w) for _, w in fm_calls} == {id(ws)}


def _sequence_model(return_sequences=True):
    model = lstmkit.Sequential(
        [layers.LSTM(H, return_sequences=return_sequences, input_shape=(T, D), name="lstm")]
    )
    _randomize(model, 2)
    model.compile(lstmkit.optimizers.SGD(0.1), "mse", seed=0)
    return model


def _torch_outputs(model, x, b_hh):
    p = {k.split(".")[-1]: v for k, v in model.params.items()}
    mod = torch_module("lstm", p["kernel"], p["recurrent_kernel"], p["bias"], b_hh)
    with torch.no_grad():
        return mod(torch.from_numpy(x).transpose(0, 1))[0].transpose(0, 1).numpy()


@pytest.mark.parametrize(
    ("return_sequences", "batch_size"), [(True, None), (True, 24), (False, 32)]
)
def test_predictions_held_by_the_user_survive_later_calls(fm_calls, return_sequences, batch_size):
    """One batch (returned as it is), batches of 24 rows (pooled, the first two of one shape),
    and the final state alone."""
    model = _sequence_model(return_sequences)
    rng = np.random.default_rng(3)
    x1, x2 = (rng.standard_normal((2 * B, T, D)).astype(np.float32) for _ in range(2))
    b_hh = np.full(4 * H, 0.05, np.float32)
    want = _torch_outputs(model, x1, b_hh)
    want = want if return_sequences else want[:, -1]
    p1 = model.predict(x1, batch_size=batch_size)
    p2 = model.predict(x2, batch_size=batch_size)
    model.train_on_batch(x2[:B], np.zeros_like(p2[:B]))  # a training step of the same shapes
    model.predict(x2, batch_size=batch_size)
    np.testing.assert_allclose(p1, want, rtol=1e-5, atol=1e-6)
    assert not np.shares_memory(p1, p2)
    assert any(n == "lstm_infer_fm" and w is not None for n, w in fm_calls)


def test_direct_calls_get_fresh_arrays_whatever_the_model_does():
    """Outside a trainer or predict there is no workspace: ``layer(x)`` and
    ``network.run`` in user code return arrays nothing overwrites."""
    model = _sequence_model()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    want = _torch_outputs(model, x, np.full(4 * H, 0.05, np.float32))
    weights = [w.copy() for w in model.get_weights()]
    model.predict(2 * x)  # a scope opened and closed before: leaves no workspace in effect
    model.train_on_batch(2 * x, np.zeros((B, T, H), np.float32))
    model.set_weights(weights)
    direct = model.layers[0](x)
    run = model.network.run([x])[0][0]
    kept = model._idle_workspaces("train") + model._idle_workspaces("infer")
    assert len(kept) == 2 and not any(ws.holds(a) for ws in kept for a in (direct, run))
    for _ in range(2):
        model.predict(2 * x)
        model.train_on_batch(2 * x, np.zeros((B, T, H), np.float32))
    np.testing.assert_allclose(direct, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run, want, rtol=1e-5, atol=1e-6)


def _train(model, batches):
    for x, y in batches:
        model.train_on_batch(x, y)
    return [w.copy() for w in model.get_weights()]


def _batches(seed, n=4):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((B, T, D)).astype(np.float32),
         rng.standard_normal((B, T, H)).astype(np.float32))
        for _ in range(n)
    ]  # fmt: skip


def _in_threads(*fns):
    """Run ``fns`` at once, one thread each; their results."""
    start = threading.Barrier(len(fns))
    results = [None] * len(fns)

    def run(i):
        start.wait()
        results[i] = fns[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_threads_training_two_models_get_their_serial_results(monkeypatch):
    """Two models trained at once, one per Python thread, end with their serial weights, bit for
    bit: nothing of one step leaks into the other (buffers, BLAS's thread count)."""
    from lstmkit.ops.fast import sync

    # two regions of two spinning threads each on two cores under a full test run: a generous
    # barrier timeout, so that neither gives up and redoes its steps on one thread (other bits)
    monkeypatch.setattr(sync, "TIMEOUT_CYCLES", 2**34)
    data = [_batches(5), _batches(6)]
    serial = [_train(_sequence_model(), d) for d in data]
    models = [_sequence_model(), _sequence_model()]
    together = _in_threads(*(lambda m=m, d=d: _train(m, d) for m, d in zip(models, data)))
    for got, want in zip(together, serial):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_two_threads_predicting_with_one_model_get_their_serial_results():
    model = _sequence_model()
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((B, T, D)).astype(np.float32) for _ in range(2)]
    serial = [model.predict(x) for x in xs]

    def many(x):
        return [model.predict(x) for _ in range(15)]

    for got, want in zip(_in_threads(*(lambda x=x: many(x) for x in xs)), serial):
        for g in got:
            np.testing.assert_array_equal(g, want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_does_not_take_its_parents_workspace():
    model = _sequence_model()
    x = np.random.default_rng(8).standard_normal((B, T, D)).astype(np.float32)
    model.train_on_batch(x, np.zeros((B, T, H), np.float32))
    parent = model._idle_workspaces("train")[-1]
    assert parent.bytes > 0

    def child():  # no numba, no threads, just the check-out
        ws = model._checkout("train")
        return ws.pid == os.getpid() and ws.bytes == 0 and ws is not parent

    assert in_forked_child(child)


# -- outputs their consumer drops at once go back to the step's workspace -----------------------
def _step_buffers(model, shape):
    """How many buffers of ``shape`` (float32) one training step of ``model`` holds."""
    x = np.random.default_rng(10).standard_normal((B, T, D)).astype(np.float32)
    y = np.zeros((B, *model.output_shape[1:]), np.float32)
    model.compile("sgd", "mse", seed=0)
    model.train_on_batch(x, y)
    (ws,) = model._idle_workspaces("train")
    return len(ws._all.get((shape, np.dtype(np.float32).str), []))


def test_merged_and_unused_outputs_are_reused_within_the_step():
    """A ``Bidirectional`` concatenates its directions into a new array, and a recurrent layer
    returning its last state leaves its sequence unread: their buffers serve the next take
    (as the old reference-counted pool found out by itself), so a stack of bidirectional layers
    holds two ``(B, T, H)`` outputs at once, not four."""
    stacked = lstmkit.Sequential(
        [layers.Bidirectional(layers.LSTM(H, return_sequences=True), input_shape=(T, D))]
        + [layers.Bidirectional(layers.LSTM(H, return_sequences=True))]
    )
    assert _step_buffers(stacked, (B, T, H)) == 2
    last = lstmkit.Sequential([layers.Bidirectional(layers.LSTM(H), input_shape=(T, D))])
    assert _step_buffers(last, (B, T, H)) == 1


def test_outputs_an_activity_regularizer_keeps_are_not_given_back():
    """With an activity regularizer the inner layers' caches keep their outputs: two passes in
    one generation (the second taking buffers the first gave back, if it gave them) must give
    the first pass the gradients it gets with fresh arrays, bit for bit."""
    layer = layers.Bidirectional(
        layers.LSTM(H, return_sequences=True, activity_regularizer="l2"), merge_mode="concat"
    )
    layer.build((T, D))
    _randomize(lstmkit.Sequential([layer]), 11)
    rng = np.random.default_rng(12)
    xa, xb = (rng.standard_normal((B, T, D)).astype(np.float32) for _ in range(2))
    dy = rng.standard_normal((B, T, 2 * H)).astype(np.float32)

    def first_pass_grads(ws):
        with backend.compute_scope(workspace=ws):
            _, cache_a = layer.forward(xa, training=True)
            layer.forward(xb, training=True)
            return layer.backward(dy, cache_a)

    fresh, pooled = first_pass_grads(None), first_pass_grads(Workspace())
    np.testing.assert_array_equal(pooled[0], fresh[0])
    for k, g in fresh[1].items():
        np.testing.assert_array_equal(pooled[1][k], g, err_msg=k)
