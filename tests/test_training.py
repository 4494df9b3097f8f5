"""compile / fit / evaluate / predict / train_on_batch, each number against an independent witness.

- PyTorch (float64): one ``train_on_batch`` of LSTM + Dense with SGD equals torch's parameters after
  ``loss.backward(); optimizer.step()`` (both torch LSTM biases non-zero), and an unshuffled ``fit``
  equals torch's loop over the same batches; float64 predictions equal torch's forward to 1e-12
  (a float32 computation anywhere would miss that by five orders of magnitude).
- Recomputation: epoch losses from weights recorded by a callback and ``evaluate``; a twin model
  stepped by hand with ``train_on_batch``; masked losses by hand from ``predict`` outputs and their
  gradient by central finite differences of that hand-checked value.
- Keras' documented rules: ``validation_split`` keeps the first ``floor(n * (1 - split))`` samples
  for training (keras/src/trainers/data_adapters/array_slicing.py, ``train_validation_split``),
  before shuffling.
- The tutorial snippet, unchanged but for its imports, learns a noisy sine wave: validation MSE
  below 0.01 where predicting the mean scores about 0.5.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import lstmkit
from lstmkit import LSTM, Dense, Sequential
from lstmkit.callbacks import Callback, EarlyStopping
from lstmkit.layers import GRU, Dropout, Embedding
from lstmkit.losses import MeanSquaredError
from lstmkit.optimizers import SGD, Adam, RMSprop


def small_model(dtype=None, units=4, timesteps=5, features=3, seed=0, **compile_kw):
    lstmkit.set_random_seed(seed)
    model = Sequential(dtype=dtype)
    model.add(LSTM(units, input_shape=(timesteps, features)))
    model.add(Dense(1))
    if compile_kw:
        model.compile(**compile_kw)
    return model


def data(n=10, timesteps=5, features=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, timesteps, features)).astype(dtype)
    y = rng.standard_normal((n, 1)).astype(dtype)
    return x, y


def randomize(model, seed=1, scale=0.5):
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = scale * rng.standard_normal(p.shape)


class WeightRecorder(Callback):
    """Weights at the start and end of every epoch, and the logs the trainer reported."""

    def __init__(self):
        super().__init__()
        self.begin, self.end, self.logs = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append(self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.end.append(self.model.get_weights())
        self.logs.append(dict(logs))


# -- the tutorial -------------------------------------------------------------------------------
def test_tutorial_snippet_learns_a_noisy_sine_wave():
    lstmkit.set_random_seed(0)
    rng = np.random.default_rng(0)
    timesteps, features, n = 16, 1, 480
    series = np.sin(0.15 * np.arange(n + timesteps)) + 0.05 * rng.standard_normal(n + timesteps)
    X = np.stack([series[i : i + timesteps] for i in range(n)])[..., None].astype("float32")
    y = series[timesteps:].astype("float32")  # the value right after each window

    model = Sequential()
    model.add(LSTM(50, input_shape=(timesteps, features)))
    model.add(Dense(1))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(X, y, epochs=8, batch_size=32, validation_split=0.2, verbose=0)

    split = int(np.floor(n * 0.8))
    val_mse = float(np.mean((model.predict(X[split:])[:, 0] - y[split:]) ** 2))
    assert np.var(y[split:]) > 0.3  # predicting the mean would score about 0.5
    assert val_mse < 0.01
    assert history.history["val_loss"][-1] == pytest.approx(val_mse, rel=1e-5)


# -- one step equals PyTorch --------------------------------------------------------------------
def torch_twin(model, b_hh):
    """nn.LSTM + nn.Linear holding the lstmkit model's weights (gate order i, f, g, o in both)."""
    lstm, dense = model.layers
    t_lstm = nn.LSTM(lstm.input_dim, lstm.units, batch_first=True, dtype=torch.float64)
    t_dense = nn.Linear(lstm.units, dense.units, dtype=torch.float64)
    p = {k: torch.from_numpy(v.copy()) for k, v in model.params.items()}
    ln, dn = lstm.name, dense.name
    with torch.no_grad():
        t_lstm.weight_ih_l0.copy_(p[f"{ln}.kernel"].T)
        t_lstm.weight_hh_l0.copy_(p[f"{ln}.recurrent_kernel"].T)
        t_lstm.bias_ih_l0.copy_(p[f"{ln}.bias"] - torch.from_numpy(b_hh))
        t_lstm.bias_hh_l0.copy_(torch.from_numpy(b_hh))
        t_dense.weight.copy_(p[f"{dn}.kernel"].T)
        t_dense.bias.copy_(p[f"{dn}.bias"])

    def forward(x):
        out, _ = t_lstm(torch.from_numpy(x))
        return t_dense(out[:, -1])

    return t_lstm, t_dense, forward


def assert_matches_torch(model, t_lstm, t_dense, bias_before, bias_ih_before, tol):
    ln, dn = (layer.name for layer in model.layers)
    p = model.params
    np.testing.assert_allclose(p[f"{ln}.kernel"], t_lstm.weight_ih_l0.detach().numpy().T, 0, tol)
    np.testing.assert_allclose(
        p[f"{ln}.recurrent_kernel"], t_lstm.weight_hh_l0.detach().numpy().T, 0, tol
    )
    # torch moves bias_ih and bias_hh by -lr*g each; lstmkit's single bias moves once by -lr*g
    np.testing.assert_allclose(
        p[f"{ln}.bias"] - bias_before,
        t_lstm.bias_ih_l0.detach().numpy() - bias_ih_before,
        0,
        tol,
    )
    np.testing.assert_allclose(p[f"{dn}.kernel"], t_dense.weight.detach().numpy().T, 0, tol)
    np.testing.assert_allclose(p[f"{dn}.bias"], t_dense.bias.detach().numpy(), 0, tol)


def test_one_train_on_batch_step_equals_torch_sgd_step():
    lr = 0.3
    model = small_model("float64", units=4, optimizer=SGD(learning_rate=lr), loss="mse")
    randomize(model, seed=2)
    x, y = data(n=6, seed=3)
    b_hh = np.random.default_rng(4).uniform(0.2, 0.8, size=16)  # non-zero torch bias_hh
    t_lstm, t_dense, forward = torch_twin(model, b_hh)
    bias_before = model.layers[0].params["bias"].copy()
    bias_ih_before = t_lstm.bias_ih_l0.detach().numpy().copy()

    opt = torch.optim.SGD([*t_lstm.parameters(), *t_dense.parameters()], lr=lr)
    opt.zero_grad()
    t_loss = nn.functional.mse_loss(forward(x), torch.from_numpy(y))
    t_loss.backward()
    opt.step()

    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    assert_matches_torch(model, t_lstm, t_dense, bias_before, bias_ih_before, 1e-10)
    assert not np.allclose(model.layers[0].params["bias"], bias_before)  # it did move


def test_unshuffled_fit_equals_torch_loop_over_the_same_batches():
    lr, batch = 0.2, 4
    model = small_model("float64", units=3, optimizer=SGD(learning_rate=lr), loss="mse")
    randomize(model, seed=5)
    x, y = data(n=10, seed=6)  # batches of 4, 4, 2
    b_hh = np.random.default_rng(7).uniform(0.2, 0.8, size=12)
    t_lstm, t_dense, forward = torch_twin(model, b_hh)
    bias_before = model.layers[0].params["bias"].copy()
    bias_ih_before = t_lstm.bias_ih_l0.detach().numpy().copy()

    # torch moves both of its biases, so their sum would move twice as fast as lstmkit's one
    # bias over several steps: keep bias_hh (non-zero) fixed and let bias_ih carry the updates
    t_lstm.bias_hh_l0.requires_grad_(False)
    trained = [p for p in (*t_lstm.parameters(), *t_dense.parameters()) if p.requires_grad]
    opt = torch.optim.SGD(trained, lr=lr)
    epoch_losses = []
    for _ in range(2):
        total = 0.0
        for i in range(0, 10, batch):
            opt.zero_grad()
            loss = nn.functional.mse_loss(
                forward(x[i : i + batch]), torch.from_numpy(y[i : i + batch])
            )
            loss.backward()
            opt.step()
            total += loss.item() * len(x[i : i + batch])
        epoch_losses.append(total / 10)

    history = model.fit(x, y, epochs=2, batch_size=batch, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], epoch_losses, rtol=1e-12)
    assert_matches_torch(model, t_lstm, t_dense, bias_before, bias_ih_before, 1e-10)


# -- float64 end to end -------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["model", "layers"])
def test_float64_models_train_and_predict_in_float64(where):
    lstmkit.set_random_seed(0)
    if where == "model":
        model = Sequential([LSTM(4, input_shape=(5, 3)), Dense(1)], dtype="float64")
    else:
        model = Sequential(
            [LSTM(4, input_shape=(5, 3), dtype="float64"), Dense(1, dtype="float64")]
        )
    model.compile(optimizer="adam", loss="mse")
    x, y = data(n=12, dtype="float32")  # float32 data is cast to the model's dtype
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(p.dtype == np.float64 for p in model.params.values())
    assert model.optimizer.get_state()["m/" + next(iter(model.params))].dtype == np.float64

    got = model.predict(x)
    assert got.dtype == np.float64
    _, _, forward = torch_twin(model, np.full(16, 0.25))
    with torch.no_grad():
        expected = forward(x.astype("float64")).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# -- masked sequence targets --------------------------------------------------------------------
def masked_model():
    lstmkit.set_random_seed(3)
    model = Sequential(dtype="float64")
    model.add(Embedding(10, 4, mask_zero=True, input_shape=(6,)))
    model.add(LSTM(5, return_sequences=True))
    model.add(Dense(1))
    model.compile(optimizer=SGD(learning_rate=1.0), loss="mse")
    randomize(model, seed=8, scale=0.4)
    ids = np.array([[3, 1, 4, 1, 5, 9], [2, 6, 5, 0, 0, 0], [3, 5, 0, 0, 0, 0], [8, 9, 7, 9, 3, 0]])
    y = np.random.default_rng(9).standard_normal(ids.shape)
    return model, ids, y


def test_masked_sequence_loss_averages_over_valid_steps_only():
    model, ids, y = masked_model()
    pred = model.predict(ids)[..., 0]  # (B, T)
    valid = ids != 0
    by_hand = float(np.mean((pred[valid] - y[valid]) ** 2))
    assert by_hand != pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-3)  # padding matters
    assert model.evaluate(ids, y, batch_size=len(ids)) == pytest.approx(by_hand, rel=1e-12)
    assert model.train_on_batch(ids, y) == pytest.approx(by_hand, rel=1e-12)  # pre-update loss


def test_masked_sequence_gradient_equals_finite_differences():
    model, ids, y = masked_model()
    before = {k: v.copy() for k, v in model.params.items()}
    model.train_on_batch(ids, y)  # SGD lr = 1: the step is exactly -grad
    grads = {k: before[k] - v for k, v in model.params.items()}
    for k, v in before.items():
        model.params[k][...] = v

    def loss():
        pred = model.predict(ids)[..., 0]
        return float(np.mean((pred[ids != 0] - y[ids != 0]) ** 2))

    eps = 1e-6
    for name, p in model.params.items():
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = loss()
            p[i] = old - eps
            down = loss()
            p[i] = old
            fd[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-9, err_msg=name)
    assert np.all(grads[f"{model.layers[0].name}.embeddings"][0] == 0)  # padding id gets nothing


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("B", [1, 5])
@pytest.mark.parametrize("first", ["lstm", "bidirectional", "gru"])
def test_first_layer_parameter_gradients_equal_the_full_backward(first, B, backend_name):
    """Sequential.backward skips the first layer's input gradient (param_grads): the gradients it
    returns are those of the full chain of layer.backward calls, masks and dropouts included."""
    from lstmkit.layers import Bidirectional
    from lstmkit.ops import backend

    if backend_name == "numba":
        pytest.importorskip("numba")
    lstmkit.set_random_seed(3)
    T, D = 6, 3
    kw = {"return_sequences": True, "dropout": 0.2, "recurrent_dropout": 0.3, "dtype": "float64"}
    layer0 = {
        "lstm": lambda: LSTM(7, input_shape=(T, D), go_backwards=True, **kw),
        "bidirectional": lambda: Bidirectional(LSTM(7, **kw), input_shape=(T, D)),
        "gru": lambda: GRU(7, input_shape=(T, D), **kw),
    }[first]()
    model = Sequential([layer0, LSTM(4, dtype="float64"), Dense(1, dtype="float64")])
    model.compile(SGD(0.1), "mse", seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(B, T, D)), rng.normal(size=(B, 1))
    mask = np.arange(T)[None, :] < rng.integers(2, T + 1, size=(B, 1))
    before = backend.get_backend()
    backend.set_backend(backend_name)
    try:
        y_pred, caches, _ = model.forward(x, training=True, mask=mask, rng=np.random.default_rng(1))
        dy = model.loss.grad(y, y_pred)
        got = model.backward(dy, caches)
        want, d = {}, dy
        for layer, cache in zip(reversed(model.layers), reversed(caches.caches)):
            d, g = layer.backward(d, cache)
            want.update({f"{layer.name}.{k}": v for k, v in g.items()})
        assert d.shape == x.shape  # the full chain did compute the first layer's dx
        skipped, _, _ = layer0.backward_with_state(
            _first_dy(model, dy, caches.caches), caches.caches[0], need_dx=False
        )
    finally:
        backend.set_backend(before)
    assert skipped is None
    assert set(got) == set(want)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-14, err_msg=k)


def _first_dy(model, dy, caches):
    """The gradient that reaches the first layer's output."""
    for layer, cache in zip(reversed(model.layers[1:]), reversed(caches[1:])):
        dy, _ = layer.backward(dy, cache)
    return dy


# -- compile ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, instance", [("adam", Adam()), ("sgd", SGD()), ("rmsprop", RMSprop()), ("Adam", Adam())]
)
def test_compile_accepts_optimizer_strings_and_objects_alike(name, instance):
    x, y = data()
    by_name = small_model(optimizer=name, loss="mse", seed=1)
    by_object = small_model(optimizer=instance, loss=MeanSquaredError(), seed=1)
    assert by_object.optimizer is instance
    assert type(by_name.optimizer) is type(instance)
    h1 = by_name.fit(x, y, epochs=2, batch_size=4, verbose=0)
    h2 = by_object.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(by_name.get_weights(), by_object.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loss", ["mse", "mean_squared_error", "MeanSquaredError"])
def test_compile_accepts_loss_names(loss):
    x, y = data()
    model = small_model(optimizer="sgd", loss=loss)
    pred = model.predict(x)
    assert model.evaluate(x, y) == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-6)


def test_compile_and_fit_errors_name_the_argument():
    model = small_model()
    x, y = data()
    with pytest.raises(ValueError, match=r"fit: call compile\(optimizer, loss\) first"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="argument 'loss' is required"):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="argument 'identifier'.*got 'adamw?x'"):
        model.compile(optimizer="adamx", loss="mse")
    with pytest.raises(ValueError, match="argument 'identifier'.*got 'msq'"):
        model.compile(optimizer="adam", loss="msq")
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="argument 'batch_size' must be a positive int; got 0"):
        model.fit(x, y, batch_size=0, verbose=0)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"argument 'validation_split' must be in \[0, 1\)"):
            model.fit(x, y, validation_split=bad, verbose=0)
    with pytest.raises(ValueError, match="validation_split=0.95 leaves no training or no valid"):
        model.fit(x, y, validation_split=0.95, verbose=0)  # floor(0.5) = 0


# -- fit ----------------------------------------------------------------------------------------
def test_history_losses_recompute_from_recorded_weights():
    model = small_model("float64", optimizer=SGD(learning_rate=0.1), loss="mse")
    x, y = data(n=8, seed=1)
    vx, vy = data(n=5, seed=2)
    rec = WeightRecorder()
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        shuffle=False,
        validation_data=(vx, vy),
        callbacks=[rec],
        verbose=0,
    )
    assert model.history is history
    assert history.epoch == [0, 1, 2]
    assert sorted(history.history) == ["loss", "val_loss"]
    twin = small_model("float64", optimizer="sgd", loss="mse")
    for epoch in range(3):
        twin.set_weights(rec.begin[epoch])  # one full batch: the loss before its update
        assert history.history["loss"][epoch] == pytest.approx(twin.evaluate(x, y), rel=1e-12)
        twin.set_weights(rec.end[epoch])  # validation after the epoch's updates
        assert history.history["val_loss"][epoch] == pytest.approx(twin.evaluate(vx, vy), rel=1e-12)
    assert history.history["loss"][2] < history.history["loss"][0]


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    x, y = data(n=10, seed=3)
    model = small_model("float64", optimizer=SGD(learning_rate=0.1), loss="mse")
    twin = small_model("float64", optimizer=SGD(learning_rate=0.1), loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    losses = [twin.train_on_batch(x[i : i + 4], y[i : i + 4]) for i in (0, 4, 8)]
    expected = (4 * losses[0] + 4 * losses[1] + 2 * losses[2]) / 10
    assert history.history["loss"] == [pytest.approx(expected, rel=1e-12)]
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = data(n=10, seed=4)
    model = small_model("float64", optimizer="adam", loss="mse", seed=0)
    model.compile(optimizer="adam", loss="mse", seed=11)
    history = model.fit(x, y, epochs=2, batch_size=3, validation_split=0.25, verbose=0)
    # Keras: floor(10 * 0.75) = 7 samples train, the last 3 validate (round/ceil would give 8)
    twin = small_model("float64", optimizer="adam", loss="mse", seed=0)
    twin.compile(optimizer="adam", loss="mse", seed=11)
    twin_history = twin.fit(x[:7], y[:7], epochs=2, batch_size=3, verbose=0)
    assert history.history["loss"] == twin_history.history["loss"]
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history["val_loss"][-1] == pytest.approx(twin.evaluate(x[7:], y[7:]), rel=1e-12)


def test_shuffle_changes_the_batches_but_not_a_full_batch_step():
    x, y = data(n=12, seed=5)
    runs = {}
    for shuffle in (False, True):
        for batch in (3, 12):
            model = small_model("float64", optimizer=SGD(learning_rate=0.1), loss="mse")
            model.fit(x, y, epochs=1, batch_size=batch, shuffle=shuffle, verbose=0)
            runs[shuffle, batch] = model.get_weights()
    # order inside one full batch only changes the summation order
    for a, b in zip(runs[False, 12], runs[True, 12]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    assert not all(np.allclose(a, b) for a, b in zip(runs[False, 3], runs[True, 3]))


def test_callbacks_see_every_hook_in_order_with_keras_params():
    calls = []

    class Spy(Callback):
        def on_train_begin(self, logs=None):
            calls.append(("train_begin", dict(self.params)))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_batch_begin(self, batch, logs=None):
            calls.append(("batch_begin", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("batch_end", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, sorted(logs)))
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            calls.append(("train_end",))

    x, y = data(n=5)
    model = small_model(optimizer="sgd", loss="mse")
    history = model.fit(
        x, y, epochs=4, batch_size=2, callbacks=[Spy()], validation_data=(x, y), verbose=0
    )
    epoch_calls = []
    for epoch in (0, 1):
        epoch_calls.append(("epoch_begin", epoch))
        for b in range(3):
            epoch_calls += [("batch_begin", b), ("batch_end", b, ["loss"])]
        epoch_calls.append(("epoch_end", epoch, ["loss", "val_loss"]))
    assert calls == [
        ("train_begin", {"epochs": 4, "steps": 3, "verbose": 0}),
        *epoch_calls,
        ("train_end",),
    ]
    assert history.epoch == [0, 1]  # stop_training set in epoch 1 ends the run


def test_verbose_zero_prints_nothing_and_verbose_one_shows_progress(capfd):
    x, y = data(n=6)
    model = small_model(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, batch_size=2, validation_split=0.5, verbose=0)
    model.evaluate(x, y)
    model.predict(x)
    model.train_on_batch(x, y)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    model.fit(x, y, epochs=2, batch_size=2, verbose=1)
    out, err = capfd.readouterr()
    assert out == "" and "Epoch 2/2" in err  # the bar goes to stderr


def test_predict_in_batches_equals_one_batch():
    x, _ = data(n=23, seed=6, dtype="float32")
    model = small_model()
    whole = model.predict(x, batch_size=64)
    for batch in (1, 5, 22):
        np.testing.assert_allclose(model.predict(x, batch_size=batch), whole, rtol=1e-6, atol=1e-7)
    assert whole.shape == (23, 1)


def test_evaluate_and_train_on_batch_and_count_params():
    x, y = data(n=9, seed=7)
    model = small_model("float64", optimizer=SGD(learning_rate=0.1), loss="mse")
    assert model.count_params() == 4 * (4 * (3 + 4) + 4) + (4 + 1)
    before = model.get_weights()
    pred = model.predict(x)
    by_hand = float(np.mean((pred - y) ** 2))
    assert model.evaluate(x, y, batch_size=4) == pytest.approx(by_hand, rel=1e-12)
    assert model.train_on_batch(x, y) == pytest.approx(by_hand, rel=1e-12)  # before the update
    assert model.evaluate(x, y) < by_hand
    assert not np.array_equal(before[0], model.get_weights()[0])
    assert model.optimizer.iterations == 1


def test_early_stopping_restores_the_best_epochs_weights():
    lstmkit.set_random_seed(0)
    model = Sequential([GRU(8, input_shape=(5, 3)), Dense(1)], dtype="float64")
    model.compile(optimizer=Adam(learning_rate=0.05), loss="mse")
    x, y = data(n=32, seed=8)  # noise targets: the validation loss soon rises
    vx, vy = data(n=32, seed=9)
    rec = WeightRecorder()
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(
        x,
        y,
        epochs=30,
        batch_size=8,
        validation_data=(vx, vy),
        callbacks=[rec, stopper],
        verbose=0,
    )
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 30 and best < len(val) - 1  # it stopped, and not on its best epoch
    assert len(val) == best + 3  # patience 2: two epochs without improvement after the best
    for got, want in zip(model.get_weights(), rec.end[best]):
        np.testing.assert_array_equal(got, want)
    assert model.evaluate(vx, vy) == pytest.approx(val[best], rel=1e-12)


# -- bad input ----------------------------------------------------------------------------------
def compiled():
    return small_model(optimizer="adam", loss="mse", timesteps=10, features=3)


X = np.zeros((32, 10, 3), "float32")
Y = np.zeros(32, "float32")


def with_nan(a, index):
    a = a.copy()
    a[index] = np.nan
    return a


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m: m.fit(np.zeros((32, 10, 4)), Y, verbose=0),
            "sequential: argument 'x' must have shape (batch, 10, 3); got (32, 10, 4)",
        ),
        (
            lambda m: m.fit(np.zeros((32, 10)), Y, verbose=0),
            "sequential: argument 'x' must have shape (batch, 10, 3); got (32, 10)",
        ),
        (
            lambda m: m.predict(np.zeros((4, 9, 3))),
            "sequential: argument 'x' must have shape (batch, 10, 3); got (4, 9, 3)",
        ),
        (
            lambda m: m.evaluate(np.zeros((4, 10, 3, 1)), np.zeros(4)),
            "sequential: argument 'x' must have shape (batch, 10, 3); got (4, 10, 3, 1)",
        ),
        (
            lambda m: m.fit(X, Y[:30], verbose=0),
            "sequential: arguments 'x' and 'y' must have the same number of samples; got 32 and 30",
        ),
        (lambda m: m.fit(with_nan(X, (3, 2, 1)), Y, verbose=0), "argument 'x' contains NaN"),
        (lambda m: m.predict(with_nan(X, (0, 0, 0))), "argument 'x' contains NaN"),
        (lambda m: m.fit(X, with_nan(Y, 7), verbose=0), "argument 'y' contains NaN"),
        (lambda m: m.train_on_batch(X, with_nan(Y, 0)), "argument 'y' contains NaN"),
        (
            lambda m: m.fit(np.zeros((0, 10, 3)), np.zeros(0), verbose=0),
            "sequential: argument 'x' must not be empty; got shape (0, 10, 3)",
        ),
        (
            lambda m: m.predict(np.zeros((0, 10, 3))),
            "sequential: argument 'x' must not be empty; got shape (0, 10, 3)",
        ),
        (
            lambda m: m.evaluate(np.zeros((0, 10, 3)), np.zeros(0)),
            "sequential: argument 'x' must not be empty; got shape (0, 10, 3)",
        ),
        (lambda m: m.fit(X, np.array(["a"] * 32), verbose=0), "argument 'y' must be numeric"),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(compiled())


def test_inf_in_x_is_rejected_and_nothing_trains():
    model = compiled()
    before = model.get_weights()
    x = X.copy()
    x[1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="argument 'x' contains NaN or Inf"):
        model.fit(x, Y, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_names_any_non_finite_x_in_the_models_own_words(bad, dtype):
    """The model's check (before any layer's), for each kind of non-finite value."""
    x = X.astype(dtype)
    x[3, 9, 2] = bad
    with pytest.raises(ValueError, match=re.escape("sequential: argument 'x' contains NaN or Inf")):
        compiled().predict(x)


# -- determinism --------------------------------------------------------------------------------
def seeded_run(seed):
    lstmkit.set_random_seed(seed)
    model = Sequential(
        [
            LSTM(4, input_shape=(5, 3), return_sequences=True, dropout=0.2),
            Dropout(0.3),
            GRU(3),
            Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    x, y = data(n=12, seed=10, dtype="float32")
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    return model.get_weights(), history.history


def test_same_seed_gives_identical_weights_and_history():
    w1, h1 = seeded_run(123)
    w2, h2 = seeded_run(123)
    w3, h3 = seeded_run(124)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 != h3  # the seed does reach initialisation, shuffling and dropout
    assert not np.array_equal(w1[0], w3[0])
