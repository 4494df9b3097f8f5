"""``fit(..., tbptt=K)``: truncated BPTT over long sequences, checked against PyTorch doing the
same by hand (state carried and detached between chunks, one SGD step per chunk)."""

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.layers import GRU, LSTM, Bidirectional, Dense
from lstmkit.optimizers import SGD
from oracles import torch_module


def _model(cell, T, D, H, out, stateful=False):
    layer = (LSTM if cell == "lstm" else GRU)(
        H, return_sequences=True, stateful=stateful, bias_initializer="uniform"
    )
    m = lstmkit.Sequential([layer], dtype="float64")
    m.add(Dense(out))
    m.build((None, T, D))
    return m


def _torch_tbptt(model, cell, x, y, k, lr):
    """The same training in PyTorch; returns lstmkit-layout weights and the chunk losses."""
    rnn, dense = model.layers
    p = rnn.params
    if cell == "lstm":
        b_hh = np.full(p["bias"].shape, 0.3)
        mod = torch_module("lstm", p["kernel"], p["recurrent_kernel"], p["bias"], b_hh)
        mod.bias_hh_l0.requires_grad_(False)  # lstmkit has one bias: train only bias_ih
    else:
        mod = torch_module("gru", p["kernel"], p["recurrent_kernel"], p["bias"])
    lin = torch.nn.Linear(*dense.params["kernel"].shape, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense.params["kernel"].T.copy()))
        lin.bias.copy_(torch.from_numpy(dense.params["bias"]))
    params = [q for q in [*mod.parameters(), *lin.parameters()] if q.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    X = torch.from_numpy(x.transpose(1, 0, 2).copy())  # time-major
    Y = torch.from_numpy(y.transpose(1, 0, 2).copy())
    state, losses = None, []
    for a in range(0, x.shape[1], k):
        out, state = mod(X[a : a + k], state)
        state = tuple(s.detach() for s in state) if cell == "lstm" else state.detach()
        loss = torch.nn.functional.mse_loss(lin(out), Y[a : a + k])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((loss.item(), min(k, x.shape[1] - a)))
    with torch.no_grad():
        if cell == "lstm":
            bias = (mod.bias_ih_l0 + mod.bias_hh_l0).numpy()
            kernel, rk = mod.weight_ih_l0.numpy().T, mod.weight_hh_l0.numpy().T
        else:  # torch r, z, n -> lstmkit z, r, n

            def zrn(a):
                r, z, n = np.split(a, 3, axis=-1)
                return np.concatenate([z, r, n], axis=-1)

            kernel, rk = zrn(mod.weight_ih_l0.numpy().T), zrn(mod.weight_hh_l0.numpy().T)
            bias = np.stack([zrn(mod.bias_ih_l0.numpy()), zrn(mod.bias_hh_l0.numpy())])
        weights = [kernel, rk, bias, lin.weight.numpy().T, lin.bias.numpy()]
    return weights, losses


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("k", [4, 7])  # 7 leaves a shorter last chunk (T=25)
def test_tbptt_matches_pytorch(cell, k):
    lstmkit.set_random_seed(0)
    B, T, D, H = 3, 25, 2, 5
    model = _model(cell, T, D, H, out=2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D))
    y = rng.standard_normal((B, T, 2))
    want, losses = _torch_tbptt(model, cell, x, y, k, lr=0.2)
    model.compile(SGD(0.2), "mse", seed=0)
    hist = model.fit(x, y, epochs=1, batch_size=B, shuffle=False, tbptt=k, verbose=0)
    for got, w in zip(model.get_weights(), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
    mean_loss = sum(v * n for v, n in losses) / T
    assert hist.history["loss"][0] == pytest.approx(mean_loss, rel=1e-10)
    assert model.optimizer.iterations == -(-T // k)  # one update per chunk
    assert model.layers[0].stateful is False and model.layers[0].states is None


def test_tbptt_one_chunk_is_plain_fit():
    lstmkit.set_random_seed(0)
    a = _model("lstm", 12, 2, 4, out=1)
    b = _model("lstm", 12, 2, 4, out=1)
    b.set_weights(a.get_weights())
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 12, 2)), rng.standard_normal((8, 12, 1))
    for m, k in ((a, None), (b, 12)):
        m.compile(SGD(0.1), "mse", seed=3)
        m.fit(x, y, epochs=2, batch_size=4, tbptt=k, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


def test_tbptt_keeps_a_stateful_layer_stateful():
    lstmkit.set_random_seed(0)
    m = _model("lstm", 10, 2, 3, out=1, stateful=True)
    m.compile("sgd", "mse")
    x, y = np.ones((2, 10, 2)), np.zeros((2, 10, 1))
    m.fit(x, y, epochs=1, batch_size=2, tbptt=3, verbose=0)
    assert m.layers[0].stateful is True


@pytest.mark.parametrize(
    "kwargs, y_shape, match",
    [
        ({"tbptt": 0}, (4, 10, 1), "'tbptt' must be a positive int"),
        ({"tbptt": 2.5}, (4, 10, 1), "'tbptt' must be a positive int"),
        ({"tbptt": 3}, (4, 1), r"tbptt needs a target per time step"),
        ({"tbptt": 3, "mask": np.ones((4, 10), bool)}, (4, 10, 1), "does not take a 'mask'"),
    ],
)
def test_tbptt_bad_arguments(kwargs, y_shape, match):
    lstmkit.set_random_seed(0)
    m = _model("lstm", 10, 2, 3, out=1)
    m.compile("sgd", "mse")
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(ValueError, match=match):
        m.fit(np.ones((4, 10, 2)), np.zeros(y_shape), verbose=0, **kwargs)
    for u, v in zip(before, m.get_weights()):
        np.testing.assert_array_equal(u, v)  # nothing trained


def test_tbptt_refuses_bidirectional():
    m = lstmkit.Sequential([Bidirectional(LSTM(3, return_sequences=True), input_shape=(10, 2))])
    m.add(Dense(1))
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Bidirectional.*cannot carry"):
        m.fit(np.ones((4, 10, 2)), np.zeros((4, 10, 1)), tbptt=5, verbose=0)
