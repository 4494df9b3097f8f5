"""The graph walk made once per network (``graph/run_plan.py``) and what a training step must not
keep from one step to the next: a layer frozen, weights set, a recompile, a rebuilt model
between steps give what a model built afresh in that state gives (the witness: a second model,
built and trained independently). Bad input still raises the clear error at the first step."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit
from lstmkit import Input, Model, layers
from lstmkit.callbacks import Callback
from lstmkit.graph.run_plan import make_plan


def _functional(seed=0, dtype="float32"):
    lstmkit.set_random_seed(seed)
    seq, ahead = Input((4, 3), name="seq", dtype=dtype), Input((5,), name="ahead", dtype=dtype)
    h = layers.LSTM(8, name="lstm", dtype=dtype)(seq)
    h = layers.Concatenate(name="cat")([h, ahead])
    h = layers.Dense(6, activation="relu", name="d1", dtype=dtype)(h)
    model = Model([seq, ahead], layers.Dense(2, name="d2", dtype=dtype)(h))
    model.compile(lstmkit.optimizers.Adam(1e-2, clipnorm=1.0), "mse", seed=seed)
    return model


def _data(n=40, dtype="float32"):
    rng = np.random.default_rng(1)
    x = [rng.standard_normal((n, 4, 3)).astype(dtype), rng.standard_normal((n, 5)).astype(dtype)]
    return x, rng.standard_normal((n, 2)).astype(dtype)


# -- the plan ---------------------------------------------------------------------------------
def test_the_plan_numbers_every_tensor_once_and_knows_which_inputs_need_a_gradient():
    """Model inputs first, then each node's outputs in run order; a layer reading only model
    inputs needs no dx (the LSTM here), one reading a computed tensor does."""
    net = _functional().network
    plan = make_plan(net.inputs, net.nodes, net.outputs)
    names = [st.layer.name for st in plan.steps]
    assert names == ["lstm", "cat", "d1", "d2"]
    assert plan.inputs == (0, 1) and plan.slots == 6 and plan.outputs == (5,)
    lstm, cat, d1, _ = plan.steps
    assert (lstm.ins, lstm.outs, lstm.need_dx) == ((0,), (2,), False)
    assert (cat.ins, cat.grad_ins, cat.multi, cat.outs) == ((2, 1), (True, False), True, (3,))
    assert d1.ins == (3,) and d1.need_dx


def test_a_layer_reading_model_inputs_only_is_asked_for_its_parameter_gradients(monkeypatch):
    model = _functional()
    lstm = model.get_layer("lstm")
    calls = []
    real = type(lstm).param_grads

    def spy(self, dy, cache):
        calls.append(self.name)
        return real(self, dy, cache)

    monkeypatch.setattr(type(lstm), "param_grads", spy)
    model.train_on_batch(*_data(8))
    assert calls == ["lstm"]


# -- nothing kept between steps -----------------------------------------------------------------
class AtBatch(Callback):
    """Runs ``action(model)`` at the end of batch ``b`` of the first epoch."""

    def __init__(self, b, action):
        super().__init__()
        self.b, self.action, self.done = b, action, False

    def on_batch_end(self, batch, logs=None):
        if batch == self.b and not self.done:
            self.done = True
            self.action(self.model)


def test_a_layer_frozen_between_steps_is_left_alone_from_the_next_step_on():
    model, x, y = _functional(), *_data()
    kept = {}

    def freeze(m):
        m.get_layer("d1").trainable = False
        kept.update({k: v.copy() for k, v in m.get_layer("d1").params.items()})

    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[AtBatch(0, freeze)])
    for k, v in model.get_layer("d1").params.items():
        np.testing.assert_array_equal(v, kept[k], err_msg=k)
    start = _functional().get_layer("d2").params["kernel"]
    assert not np.array_equal(model.get_layer("d2").params["kernel"], start)  # still trained


def test_weights_set_between_steps_are_the_ones_the_next_step_reads():
    """The loss ``train_on_batch`` returns is the one before its update: after ``set_weights``
    it is the loss of a model built afresh with those weights."""
    x, y = _data(8)
    fresh = _functional(seed=5)
    model = _functional()
    model.train_on_batch(x, y)
    model.set_weights(fresh.get_weights())
    assert model.train_on_batch(x, y) == fresh.train_on_batch(x, y)


def test_a_recompile_between_steps_trains_on_the_new_loss():
    x, y = _data(8)
    model = _functional()
    model.train_on_batch(x, y)
    pred = model.predict(x)
    model.compile(lstmkit.optimizers.SGD(0.1), "mae", seed=0)
    want = float(np.mean(np.abs(y - pred)))
    assert model.train_on_batch(x, y) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_model_rebuilt_in_another_dtype_trains_in_it(dtype):
    """The same architecture in float32 and float64 (a new network, a new plan): weights and
    outputs keep the dtype through steps, and both losses agree to float32 precision."""
    x, y = _data(16, dtype)
    model = _functional(dtype=dtype)
    losses = [model.train_on_batch(x, y) for _ in range(3)]
    assert {w.dtype for w in model.get_weights()} == {np.dtype(dtype)}
    assert model.predict(x).dtype == np.dtype(dtype)
    other = "float64" if dtype == "float32" else "float32"
    ref = _functional(dtype=other)
    xo, yo = _data(16, other)
    np.testing.assert_allclose(losses, [ref.train_on_batch(xo, yo) for _ in range(3)], rtol=1e-4)


def test_sequential_add_between_fits_makes_a_new_walk():
    lstmkit.set_random_seed(0)
    model = lstmkit.Sequential([layers.LSTM(4, input_shape=(3, 2))])
    model.compile("adam", "mse", seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3, 2)).astype(np.float32)
    model.fit(x, np.zeros((6, 4), np.float32), epochs=1, verbose=0)
    model.add(layers.Dense(1))
    model.compile("adam", "mse", seed=0)
    model.fit(x, np.zeros((6, 1), np.float32), epochs=1, verbose=0)
    assert model.predict(x).shape == (6, 1)


# -- errors at the first step ---------------------------------------------------------------------
def test_a_wrong_shape_still_names_the_argument_at_the_first_step():
    model, (x, a), y = _functional(), *_data(8)
    with pytest.raises(
        ValueError, match=r"argument 'x\['ahead'\]' must have shape \(batch, 5\); got \(8, 4\)"
    ):
        model.fit([x, a[:, :4]], y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"argument 'x\['seq'\]' must have shape"):
        model.train_on_batch([x[:, :, :2], a], y)


def test_a_wrong_shape_given_to_the_walk_itself_names_the_layer_and_argument():
    net = _functional().network
    x, a = _data(8)[0]
    with pytest.raises(ValueError, match=r"LSTM: argument 'x' must have shape \(batch, timesteps, 3\)"):  # fmt: skip
        net.run([x[:, :, :2], a], training=True)


def test_the_same_input_twice_is_refused_naming_both_positions():
    """One tensor is one slot of the graph's walk: given twice, two arrays would race for it
    (the run plan once fed the second array to the first input's readers). Refused."""
    a = lstmkit.Input((3,), name="a")
    y = lstmkit.layers.Dense(2, name="d")(a)
    with pytest.raises(
        ValueError, match=r"argument 'inputs' holds the same tensor at positions 0 and 1"
    ):
        lstmkit.Model([a, a], [y, a])
    b = lstmkit.Input((3,), name="b")
    lstmkit.Model([a, b], [y, b])  # distinct inputs, one unused by the Dense: fine
