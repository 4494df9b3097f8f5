"""The cache-free inference path (``Layer.infer``, ``Sequential.infer``, used by ``predict``
and ``evaluate``) returns what the training forward returns, on both backends."""

import numpy as np
import pytest

import lstmkit
from lstmkit.layers import GRU, LSTM, Bidirectional, Dense, Masking, SimpleRNN


def _data(B=5, T=7, D=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    lengths = rng.integers(1, T + 1, B)
    mask = np.arange(T)[None, :] < lengths[:, None]
    return x, mask


LAYERS = {
    "lstm": lambda: LSTM(6, return_sequences=True, bias_initializer="uniform"),
    "lstm_last": lambda: LSTM(6, bias_initializer="uniform"),
    "lstm_backwards": lambda: LSTM(6, return_sequences=True, go_backwards=True),
    "lstm_state": lambda: LSTM(6, return_sequences=True, return_state=True),
    "peephole": lambda: LSTM(6, return_sequences=True, peephole=True),
    "gru": lambda: GRU(6, return_sequences=True),
    "rnn": lambda: SimpleRNN(6, return_sequences=True),
    "rnn_relu": lambda: SimpleRNN(6, activation="relu"),
    "bidi_concat": lambda: Bidirectional(LSTM(4, return_sequences=True)),
    "bidi_sum_gru": lambda: Bidirectional(GRU(4), merge_mode="sum"),
    "bidi_state": lambda: Bidirectional(LSTM(4, return_state=True), merge_mode="ave"),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("masked", [False, True])
def test_layer_infer_equals_forward(use_backend, name, dtype, masked):
    lstmkit.set_random_seed(1)
    layer = LAYERS[name]()
    x, mask = _data(dtype=dtype)
    layer.build(x.shape[1:], dtype=dtype)
    m = mask if masked else None
    want = layer.forward(x, training=False, mask=m)[0]
    got = layer.infer(x, mask=m)
    tol = 1e-12 if dtype == "float64" else 1e-6
    if isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    else:
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_predict_and_evaluate_use_the_same_numbers_as_forward(use_backend):
    lstmkit.set_random_seed(2)
    model = lstmkit.Sequential(
        [
            Masking(0.0, input_shape=(7, 3)),
            Bidirectional(LSTM(5, return_sequences=True)),
            GRU(4),
            Dense(2),
        ]
    )
    model.compile("sgd", "mse", seed=0)
    x, mask = _data(B=9)
    x[~mask] = 0.0  # padded steps: Masking derives the mask from them
    y = np.random.default_rng(3).standard_normal((9, 2))
    want = model.forward(x.astype("float32"))[0]
    np.testing.assert_allclose(model.predict(x, batch_size=4), want, rtol=1e-6, atol=1e-6)
    want_loss = float(np.mean((want - y) ** 2))
    assert model.evaluate(x, y, batch_size=9) == pytest.approx(want_loss, rel=1e-5)


def test_stateful_infer_carries_state_like_forward(use_backend):
    lstmkit.set_random_seed(4)
    a = LSTM(4, stateful=True, return_sequences=True)
    x, _ = _data(B=2, T=6)
    a.build(x.shape[1:], dtype="float64")
    b = LSTM.from_config(a.get_config())
    b.build(x.shape[1:], dtype="float64")
    b.set_weights(a.get_weights())
    for chunk in (x[:, :3], x[:, 3:]):  # two consecutive chunks: the state is carried
        got = a.infer(chunk)
        want = b.forward(chunk)[0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    whole = LSTM.from_config({**a.get_config(), "stateful": False})
    whole.build(x.shape[1:], dtype="float64")
    whole.set_weights(a.get_weights())
    np.testing.assert_allclose(got, whole.infer(x)[:, 3:], rtol=1e-12, atol=1e-12)
