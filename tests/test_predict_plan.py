"""``Model.predict``'s cached plan (``lstmkit.models.predict_plan``): a second call like the first
skips the general path's checks and graph walk, and still gives what PyTorch gives for the
weights the model holds *now*. Each test changes one thing the plan depends on between two
calls (weights by ``set_weights`` / ``load_weights`` / a replaced array, input dtype and shape,
backend, stateful mode, the layers) and checks the second call against an independent witness
(``nn.LSTM`` with the model's weights copied in, both of its bias vectors non-zero), or checks
which kernel ran. Bounds as ``test_layers_torch.py``: float32 1e-5, float64 1e-10 relative to
the largest magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lstmkit
from lstmkit.graph.network import Network
from lstmkit.layers import LSTM, Dense
from lstmkit.ops import backend
from oracles import torch_module

TOL = {np.float32: 1e-5, np.float64: 1e-10}
T, D, H = 9, 5, 7


def lstm_model(dtype=np.float32, seed=0, steps=T):
    lstmkit.set_random_seed(seed)
    model = lstmkit.Sequential(
        [LSTM(H, return_sequences=True, input_shape=(steps, D), dtype=np.dtype(dtype).name)]
    )
    model.build()
    set_random_weights(model, seed)
    return model


def set_random_weights(model, seed):
    """Weights large enough that gates saturate, a non-zero bias."""
    rng = np.random.default_rng(seed)
    s = 1.5 / np.sqrt(H)
    model.set_weights([rng.uniform(-s, s, w.shape) for w in model.get_weights()])


def torch_hs(layer, x, h0=None, c0=None):
    """``nn.LSTM`` with ``layer``'s current weights (its bias split into two non-zero vectors)
    on batch-first ``x``: ``(hs (B, T, H), (h_T, c_T))``."""
    kernel, U, bias = (layer.params[k] for k in ("kernel", "recurrent_kernel", "bias"))
    b_hh = (np.random.default_rng(9).uniform(0.05, 0.2, bias.shape) * np.sign(bias + 1e-3)).astype(
        bias.dtype
    )
    m = torch_module("lstm", kernel, U, bias, b_hh)
    B = x.shape[0]
    zeros = np.zeros((1, B, H), kernel.dtype)
    h0 = zeros if h0 is None else h0[None]
    c0 = zeros if c0 is None else c0[None]
    with torch.no_grad():
        out, (h, c) = m(
            torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2), kernel.dtype)),
            (torch.from_numpy(h0), torch.from_numpy(c0)),
        )
    return out.numpy().transpose(1, 0, 2), (h[0].numpy(), c[0].numpy())


def assert_close(got, want, dtype=np.float32):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[np.dtype(dtype).type] * scale)


def data(B, dtype=np.float32, seed=1, steps=T):
    return np.random.default_rng(seed).standard_normal((B, steps, D)).astype(dtype)


def count_calls(monkeypatch, owner, name) -> list:
    """``owner.name`` (a function, or a method of a class) wrapped for the test: each call
    appends to the list returned, then runs the real one."""
    calls = []
    real = getattr(owner, name)

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.fixture
def graph_walks(monkeypatch):
    """How many times the general path's graph walk (``Network.run``) ran."""
    return count_calls(monkeypatch, Network, "run")


# -- the plan is used, and agrees with PyTorch -----------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 4])
def test_second_call_takes_the_plan_and_matches_torch(use_backend, graph_walks, dtype, B):
    model = lstm_model(dtype)
    x = data(B, dtype)
    first = model.predict(x)
    second = model.predict(x, batch_size=B + 10)  # another key: the general path again
    third = model.predict(x)
    assert len(graph_walks) == 2  # the third call ran the plan made by the first
    want, _ = torch_hs(model.layers[0], x)
    for got in (first, second, third):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


def test_a_chain_with_dense_takes_the_plan(use_backend, graph_walks):
    lstmkit.set_random_seed(0)
    model = lstmkit.Sequential([LSTM(H, input_shape=(T, D)), Dense(3)])
    model.build()
    x = data(2)
    first = model.predict(x)
    assert np.array_equal(model.predict(x), first)  # the same ops, in the same order
    assert len(graph_walks) == 1
    _, (h, _) = torch_hs(model.layers[0], x)
    kernel, bias = model.layers[1].params["kernel"], model.layers[1].params["bias"]
    assert_close(first, h @ kernel + bias)


# -- what makes a plan stale ------------------------------------------------------------------------
def test_set_weights_between_calls(use_backend):
    model = lstm_model()
    x = data(1)
    model.predict(x)
    model.predict(x)
    set_random_weights(model, seed=5)
    want, _ = torch_hs(model.layers[0], x)
    assert_close(model.predict(x), want)


def test_load_weights_between_calls(use_backend, tmp_path):
    other = lstm_model(seed=7)
    path = tmp_path / "w.lstmkit"
    other.save_weights(path)
    model = lstm_model(seed=0)
    x = data(1)
    model.predict(x)
    model.predict(x)
    model.load_weights(path)
    want, _ = torch_hs(other.layers[0], x)
    assert_close(model.predict(x), want)


def test_a_replaced_parameter_array_between_calls(use_backend):
    model = lstm_model()
    x = data(1)
    model.predict(x)
    model.predict(x)
    layer = model.layers[0]
    layer.params["recurrent_kernel"] = np.ascontiguousarray(layer.params["recurrent_kernel"][::-1])
    want, _ = torch_hs(layer, x)
    assert_close(model.predict(x), want)


def test_input_dtype_and_shape_changes(use_backend):
    model = lstm_model(steps=None)  # any number of time steps
    x = data(1)
    model.predict(x)
    model.predict(x)
    x64 = data(1, np.float64, seed=2)  # Keras casts to the model's float type
    want, _ = torch_hs(model.layers[0], x64.astype(np.float32))
    got = model.predict(x64)
    assert got.dtype == np.float32
    assert_close(got, want)
    for x2 in (data(3, seed=3), data(1, seed=4, steps=T + 4), data(1, seed=5, steps=2)):
        for _ in range(2):
            want, _ = torch_hs(model.layers[0], x2)
            assert_close(model.predict(x2), want)


@pytest.mark.skipif(not backend._numba_available(), reason="needs numba (the fast path)")
def test_backend_switch_between_calls(monkeypatch):
    from lstmkit.ops.fast import lstm as fast

    calls = count_calls(monkeypatch, fast, "_lstm_infer_rows")
    before = backend.get_backend()
    try:
        backend.set_backend("numba")
        model = lstm_model()
        x = data(1)
        model.predict(x)
        model.predict(x)
        assert len(calls) == 2
        backend.set_backend("numpy")
        got = model.predict(x)
        again = model.predict(x)
    finally:
        backend.set_backend(before)
    assert len(calls) == 2  # the NumPy reference ran, not the compiled kernel
    want, _ = torch_hs(model.layers[0], x)
    assert_close(got, want)
    assert_close(again, want)


@pytest.mark.skipif(not backend._numba_available(), reason="needs numba (the fast path)")
def test_the_plan_calls_the_compiled_row_kernel_straight(monkeypatch):
    """At a batch of one the plan calls the compiled row kernel itself, its checks made once
    (``lstm_infer_plan``), not ``lstm_infer`` and its checks again: the namespace's ``infer`` is
    wrapped (the workspace), and the plan must see through the wrapper."""
    from lstmkit.ops.fast import lstm as fast

    checked = count_calls(monkeypatch, fast, "lstm_infer_checked")
    before = backend.get_backend()
    try:
        backend.set_backend("numba")
        model = lstm_model()
        x = data(1)
        model.predict(x)  # the general path, which makes the plan
        assert len(checked) == 1
        got = model.predict(x)
    finally:
        backend.set_backend(before)
    assert len(checked) == 1
    want, _ = torch_hs(model.layers[0], x)
    assert_close(got, want)


def test_stateful_within_carried_states(use_backend):
    """``carried_states`` makes the layers stateful for a while: each call then starts where
    the previous one ended, which a plan made outside must not skip."""
    model = lstm_model()
    x1, x2 = data(1, seed=1), data(1, seed=2)
    model.predict(x1)
    model.predict(x1)
    with model.carried_states():
        model.predict(x1)
        got = model.predict(x2)
    _, (h, c) = torch_hs(model.layers[0], x1)
    want, _ = torch_hs(model.layers[0], x2, h, c)
    assert_close(got, want)
    fresh, _ = torch_hs(model.layers[0], x2)
    assert_close(model.predict(x2), fresh)  # stateless again afterwards


def test_added_layer_between_calls(use_backend):
    model = lstm_model()
    x = data(1)
    model.predict(x)
    model.predict(x)
    model.add(Dense(2))
    hs, _ = torch_hs(model.layers[0], x)
    kernel, bias = model.layers[1].params["kernel"], model.layers[1].params["bias"]
    assert_close(model.predict(x), hs @ kernel + bias)


# -- bad input still gets its error --------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_after_a_plan(use_backend, bad):
    model = lstm_model()
    x = data(1)
    model.predict(x)
    model.predict(x)
    x[0, 3, 2] = bad
    with pytest.raises(ValueError, match=r"argument 'x' contains NaN or Inf"):
        model.predict(x)


def test_bad_arguments_after_a_plan(use_backend):
    model = lstm_model()
    x = data(1)
    model.predict(x)
    model.predict(x)
    with pytest.raises(ValueError, match=r"argument 'batch_size' must be a positive int; got True"):
        model.predict(x, batch_size=True)
    with pytest.raises(ValueError, match=r"argument 'verbose' must be one of"):
        model.predict(x, verbose=7)
    with pytest.raises(
        ValueError, match=r"argument 'x' must have shape \(batch, 9, 5\); got \(1, 9, 4\)"
    ):
        model.predict(data(1)[:, :, :4])
    with pytest.raises(ValueError, match=r"argument 'mask' must have shape"):
        model.predict(x, mask=np.ones((1, T + 1), bool))
