"""Gradient flow: per-step ``‖∂L/∂h_t‖`` and ``‖∂L/∂c_t‖`` against PyTorch autograd.

The witness steps ``nn.LSTMCell``/``nn.GRUCell``/``nn.RNNCell`` in a Python loop holding the same
weights (non-zero ``bias_hh``), calls ``retain_grad()`` on every step's h and c, and reads their
``.grad`` after ``loss.backward()``. Also: the one-step chaining equals the full backward, masked
sequences equal their unpadded selves, and the adding-problem comparison of the three cells.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from lstmkit.inspect import gradient_flow
from lstmkit.inspect.gradflow import step_cache
from lstmkit.models import Sequential
from lstmkit.ops import backend
from oracles import torch_cell

CELLS = {"lstm": LSTM, "gru": GRU, "rnn_tanh": SimpleRNN}


def _randomize(model, seed):
    """Non-trivial weights, biases included (zeros would hide a missing bias)."""
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = rng.uniform(-0.6, 0.6, p.shape)
    return model


def _torch_state_grads(cell, layer, dense, x, y, return_sequences, b_hh):
    """Per-sample ``‖B ∂L/∂h_t‖``, ``‖B ∂L/∂c_t‖`` (B, T) from autograd on a stepped torch cell."""
    p = layer.params
    module = torch_cell(cell, p["kernel"], p["recurrent_kernel"], p["bias"], b_hh=b_hh)
    B, T, _ = x.shape
    xt = torch.from_numpy(x)
    h = torch.zeros(B, layer.units, dtype=torch.float64)
    c = torch.zeros_like(h)
    hs, cs = [], []
    for t in range(T):
        if cell == "lstm":
            h, c = module(xt[:, t], (h, c))
            c.retain_grad()
            cs.append(c)
        else:
            h = module(xt[:, t], h)
        h.retain_grad()
        hs.append(h)
    out = torch.stack(hs, 1) if return_sequences else h
    pred = out @ torch.from_numpy(dense.params["kernel"]) + torch.from_numpy(dense.params["bias"])
    loss = ((pred - torch.from_numpy(y)) ** 2).mean()  # Keras mse: the mean over every element
    loss.backward()

    def norms(states):
        return np.stack([(B * s.grad).norm(dim=-1).numpy() for s in states], axis=1)

    return norms(hs), (norms(cs) if cs else None)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_state_gradients_match_torch_autograd(cell, return_sequences, numpy_backend):
    B, T, D, H = 3, 9, 4, 5
    layer = CELLS[cell](H, return_sequences=return_sequences, input_shape=(T, D), dtype="float64")
    dense = Dense(2, dtype="float64")
    model = _randomize(Sequential([layer, dense]), 1)
    model.compile(loss="mse")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, T, D))
    y = rng.normal(size=(B, T, 2) if return_sequences else (B, 2))
    b_hh = None if cell == "gru" else rng.uniform(0.1, 0.5, layer.params["bias"].shape)

    flow = gradient_flow(model, x, y)[layer.name]
    ref_h, ref_c = _torch_state_grads(cell, layer, dense, x, y, return_sequences, b_hh)
    np.testing.assert_allclose(flow.h, ref_h, rtol=1e-9, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(flow.c, ref_c, rtol=1e-9, atol=1e-12)
    else:
        assert flow.c is None
    # lag k is step T-1-k for unpadded sequences
    np.testing.assert_allclose(flow.by_lag("h"), ref_h.mean(axis=0)[::-1], rtol=1e-9)


def test_compiled_backend_gives_the_same_flow():
    """The one-step cache slices also feed the numba backward (the default when installed)."""
    pytest.importorskip("numba")
    T, D = 7, 3
    model = _randomize(
        Sequential(
            [
                LSTM(4, return_sequences=True, input_shape=(T, D), dtype="float64"),
                GRU(3, return_sequences=True, dtype="float64"),
                SimpleRNN(2, dtype="float64"),
                Dense(1, dtype="float64"),
            ]
        ),
        11,
    )
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(2, T, D)), rng.normal(size=(2, 1))
    mask = np.array([[True] * T, [True] * 4 + [False] * 3])
    previous = backend.get_backend()
    try:
        flows = {}
        for name in ("numpy", "numba"):
            backend.set_backend(name)
            flows[name] = gradient_flow(model, x, y, mask=mask)
    finally:
        backend.set_backend(previous)
    for layer in flows["numpy"]:
        a, b = flows["numpy"][layer], flows["numba"][layer]
        np.testing.assert_allclose(b.h, a.h, rtol=1e-10, atol=1e-14)
        if a.c is not None:
            np.testing.assert_allclose(b.c, a.c, rtol=1e-10, atol=1e-14)


def test_step_chain_equals_full_backward():
    """T one-step backward calls on cache slices add up to the T-step call (weights and h0/c0)."""
    T, B, D, H = 6, 2, 3, 4
    layer = LSTM(H, input_shape=(T, D), dtype="float64")
    model = _randomize(Sequential([layer]), 3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(B, T, D))
    mask = np.ones((B, T), bool)
    mask[1, 4:] = False
    _, cache = layer.forward(x, mask=mask)
    ops_cache = cache.ops_cache
    dh, dc = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    full = layer._cell_backward(None, [dh, dc], ops_cache)
    total = {k: 0.0 for k in ("kernel", "recurrent_kernel", "bias")}
    for t in range(T - 1, -1, -1):
        g = layer._cell_backward(None, [dh, dc], step_cache(ops_cache, t))
        dh, dc = g["h0"], g["c0"]
        total = {k: v + g[k] for k, v in total.items()}
    np.testing.assert_allclose(dh, full["h0"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dc, full["c0"], rtol=1e-12, atol=1e-14)
    for k, v in total.items():
        np.testing.assert_allclose(v, full[k], rtol=1e-12, atol=1e-14)
    assert model.built


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_sequences_equal_their_unpadded_selves(cell):
    """A post-padded sequence of length L, masked, has the gradient norms of the same L steps
    run alone; lags line up at each sequence's own end; a backwards layer mirrors time."""
    T, D, H, L = 8, 3, 4, 5
    layer = CELLS[cell](H, input_shape=(T, D), dtype="float64")
    model = _randomize(Sequential([layer, Dense(1, dtype="float64")]), 5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, T, D))
    mask = np.ones((2, T), bool)
    mask[0, L:] = False
    x[0, L:] = 0.0
    y = rng.normal(size=(2, 1))
    flow = gradient_flow(model, x, y, mask=mask)[layer.name]

    short = Sequential(
        [CELLS[cell](H, input_shape=(L, D), dtype="float64"), Dense(1, dtype="float64")]
    )
    short.set_weights(model.get_weights())
    alone = gradient_flow(short, x[:1, :L], y[:1])[short.layers[0].name]
    # sample 0's share of the batch loss is half; rescaled by B both are its own loss gradient
    np.testing.assert_allclose(flow.h[0, :L], alone.h[0], rtol=1e-10)
    if cell == "lstm":
        np.testing.assert_allclose(flow.c[0, :L], alone.c[0], rtol=1e-10)
    assert (flow.lag[0, L:] == -1).all() and list(flow.lag[0, :L]) == [4, 3, 2, 1, 0]
    assert list(flow.lag[1]) == list(range(T - 1, -1, -1))


def test_bidirectional_directions_and_time_order():
    T, D, H = 6, 3, 4
    model = _randomize(
        Sequential(
            [Bidirectional(LSTM(H, dtype="float64"), input_shape=(T, D)), Dense(1, dtype="float64")]
        ),
        7,
    )
    x = np.random.default_rng(8).normal(size=(2, T, D))
    flow = gradient_flow(model, x, np.zeros((2, 1)))
    name = model.layers[0].name
    assert list(flow) == [f"{name}/forward", f"{name}/backward"]
    fwd, bwd = flow[f"{name}/forward"], flow[f"{name}/backward"]
    assert list(fwd.lag[0]) == [5, 4, 3, 2, 1, 0]
    assert list(bwd.lag[0]) == [0, 1, 2, 3, 4, 5]  # the backward half ends at t = 0
    processing = gradient_flow(model, x, np.zeros((2, 1)), order="processing")
    np.testing.assert_array_equal(processing[f"{name}/backward"].h, bwd.h[:, ::-1])


def test_gradient_flow_leaves_the_model_alone():
    lstmkit.set_random_seed(9)
    model = Sequential([LSTM(4, stateful=True, input_shape=(5, 2)), Dense(1)])
    model.compile(loss="mse")
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype("float32")
    model.predict(x)
    before = {k: v.copy() for k, v in model.params.items()}
    states = [s.copy() for s in model.layers[0].states]
    expected = model.predict(x)
    model.layers[0].reset_states(states)
    flow = gradient_flow(model, x, np.ones((2, 1)))
    np.testing.assert_array_equal(flow.outputs, expected)
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, before[k])
    for a, b in zip(model.layers[0].states, states):
        np.testing.assert_array_equal(a, b)
    assert "_cell_backward" not in vars(model.layers[0])


def test_without_target_differentiates_the_top_output():
    model = _randomize(
        Sequential([SimpleRNN(3, input_shape=(4, 2), dtype="float64"), Dense(3, dtype="float64")]),
        1,
    )
    x = np.random.default_rng(1).normal(size=(2, 4, 2))
    flow = gradient_flow(model, x)
    y = model.predict(x)
    assert flow.loss == pytest.approx(y.max(axis=1).mean())
    assert np.isfinite(flow[model.layers[0].name].h).all()


def test_errors_name_the_argument():
    model = Sequential([Dense(1, input_shape=(3, 2))])
    with pytest.raises(ValueError, match="no recurrent layer"):
        gradient_flow(model, np.zeros((1, 3, 2)), np.zeros((1, 3, 1)))
    model = Sequential([LSTM(2, input_shape=(3, 2)), Dense(1)])
    with pytest.raises(ValueError, match="'order'"):
        gradient_flow(model, np.zeros((1, 3, 2)), np.zeros((1, 1)), order="reversed")
    with pytest.raises(ValueError, match="same number of samples"):
        gradient_flow(model, np.zeros((2, 3, 2)), np.zeros((1, 1)))


def test_lstm_variants_report_h_only():
    """A peephole LSTM with zero peepholes is the plain cell: the same ‖∂L/∂h_t‖ through the
    variant ops; its ‖∂L/∂c_t‖ is not reported (the h-c link of variants is not covered)."""
    T, D, H = 6, 2, 3
    plain = _randomize(Sequential([LSTM(H, input_shape=(T, D), dtype="float64"), Dense(1)]), 13)
    peep = Sequential([LSTM(H, peephole=True, input_shape=(T, D), dtype="float64"), Dense(1)])
    peep.layers[0].set_weights([*plain.layers[0].get_weights(), np.zeros((3, H))])
    peep.layers[1].set_weights(plain.layers[1].get_weights())
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(2, T, D)), rng.normal(size=(2, 1))
    a = gradient_flow(plain, x, y)[plain.layers[0].name]
    b = gradient_flow(peep, x, y)[peep.layers[0].name]
    np.testing.assert_allclose(b.h, a.h, rtol=1e-6)  # Dense is float32 here
    assert a.c is not None and b.c is None and b.cell == "lstm"
