"""Keras' cell API: ``RNN(cell)``, the built-in cells, ``StackedRNNCells`` and a user's cell.

Witnesses: the stacked built-in cells scanned step by step equal the stack of full-sequence
layers with the same weights (outputs, final states and every gradient, masks included), which
PyTorch already witnesses (tests/test_layers_torch.py); a user's cell is checked against central
finite differences in float64 and trains; both save and load.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit
from lstmkit import Input, Model, Sequential, initializers, layers


@layers.register_layer
class MinimalRNNCell(layers.Layer):
    """Keras' documented example cell: ``h_t = tanh(x_t W + h_{t-1} U)``."""

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units = self.state_size = units

    weight_names = ("kernel", "recurrent_kernel")

    def _build(self, input_shape, rng):
        init = initializers.get("glorot_uniform")
        self.add_weight("kernel", (input_shape[-1], self.units), init, rng)
        self.add_weight("recurrent_kernel", (self.units, self.units), init, rng)

    def step(self, x, states, training=False):
        h = np.tanh(x @ self.params["kernel"] + states[0] @ self.params["recurrent_kernel"])
        return h, [h], (x, states[0], h)

    def backward_step(self, dh, dstates, cache):
        x, h_prev, h = cache
        dz = (dh + dstates[0]) * (1 - h * h)
        grads = {"kernel": x.T @ dz, "recurrent_kernel": h_prev.T @ dz}
        return dz @ self.params["kernel"].T, [dz @ self.params["recurrent_kernel"].T], grads

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_builtin_cell_in_rnn_is_its_layer():
    layer = layers.RNN(
        layers.LSTMCell(4, recurrent_activation="hard_sigmoid"), return_sequences=True
    )
    assert isinstance(layer, layers.LSTM) and layer.recurrent_activation == "hard_sigmoid"
    assert layer.return_sequences


@pytest.mark.parametrize("masked", [False, True])
def test_stacked_cells_equal_the_stacked_layers(masked):
    lstmkit.set_random_seed(1)
    T, D, B = 6, 3, 4
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, D))
    mask = np.arange(T)[None] < np.array([[6], [3], [5], [1]]) if masked else None
    cells = layers.RNN(
        layers.StackedRNNCells([layers.LSTMCell(4, dtype="float64"), layers.GRUCell(3, dtype="float64")]),
        return_sequences=True, return_state=True, dtype="float64",
    )  # fmt: skip
    inp = Input(shape=(T, D), dtype="float64")
    ours = Model(inp, cells(inp))
    a = layers.LSTM(4, return_sequences=True, dtype="float64")
    b = layers.GRU(3, return_sequences=True, return_state=True, dtype="float64")
    inp2 = Input(shape=(T, D), dtype="float64")
    seq_a = a(inp2)
    ref_out = b(seq_a)
    # the LSTM's final states: a second LSTM node is not needed, read them from a return_state twin
    a_state = layers.LSTM(4, return_sequences=True, return_state=True, dtype="float64")
    _, ha, ca = a_state(inp2)
    ref = Model(inp2, [*ref_out, ha, ca])
    w = cells.get_weights()
    a.set_weights(w[:3])
    a_state.set_weights(w[:3])
    b.set_weights(w[3:])
    got = ours.predict(x, mask=mask)
    want = ref.predict(x, mask=mask)
    # ours: [seq, h_lstm, c_lstm, h_gru]; ref: [seq, h_gru, h_lstm, c_lstm]
    for g, wv in zip(got, [want[0], want[2], want[3], want[1]]):
        np.testing.assert_allclose(g, wv, atol=1e-12)
    # gradients of sum(seq * r): through the scanned cells and through the two layers
    r = rng.standard_normal(got[0].shape)
    _, _, tape = ours.network.run([x], training=True, masks=[mask])
    g_ours = ours.network.backward([r, None, None, None], tape)
    _, _, tape2 = ref.network.run([x], training=True, masks=[mask])
    g_ref = ref.network.backward([r, None, None, None], tape2)
    name = cells.name
    for role in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(
            g_ours[f"{name}.0.{role}"], g_ref[f"{a.name}.{role}"], atol=1e-11
        )
        np.testing.assert_allclose(
            g_ours[f"{name}.1.{role}"], g_ref[f"{b.name}.{role}"], atol=1e-11
        )


def _loss(layer, x, r, mask):
    y, _ = layer.forward(x, mask=mask)
    return float(np.sum(y * r))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_user_cell_gradients_match_finite_differences(masked, go_backwards):
    rng = np.random.default_rng(3)
    B, T, D, H = 3, 5, 2, 4
    layer = layers.RNN(MinimalRNNCell(H), return_sequences=True, go_backwards=go_backwards,
                       dtype="float64")  # fmt: skip
    layer.build((T, D), np.random.default_rng(0), "float64")
    x = rng.standard_normal((B, T, D))
    # holes in the middle: a padded step hands its states (and output) on to the next
    holes = np.array([[1, 1, 0, 1, 1], [1, 0, 0, 1, 0], [1, 1, 1, 1, 0]], bool)
    mask = holes if masked else None
    r = rng.standard_normal((B, T, H))
    _, cache = layer.forward(x, mask=mask)
    dx, grads = layer.backward(r, cache)
    eps = 1e-6
    for role, p in layer.params.items():
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = _loss(layer, x, r, mask)
            p[idx] = old - eps
            down = _loss(layer, x, r, mask)
            p[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[role], num, rtol=1e-6, atol=1e-8, err_msg=role)
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (_loss(layer, xp, r, mask) - _loss(layer, xm, r, mask)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_user_cell_trains_saves_and_loads(tmp_path):
    lstmkit.set_random_seed(4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 8, 2)).astype(np.float32)
    y = x[:, :, :1].sum(axis=1) * 0.3  # a sum to carry through time
    model = Sequential([Input(shape=(8, 2)), layers.RNN(MinimalRNNCell(8)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    model.save(tmp_path / "cell.lstmkit")
    back = lstmkit.load_model(tmp_path / "cell.lstmkit")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
