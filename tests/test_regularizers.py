"""Regularizers and constraints in training, against closed forms, PyTorch and Keras 3.

- Each regularizer's penalty and gradient equal Keras' regularizer object applied to a torch
  tensor (its value, and torch autograd for the gradient); configs are Keras' configs.
- ``train_on_batch`` reports data loss + penalty, the penalty recomputed in closed form from the
  weights and the layer's output (Keras 3: ``reg(output) / batch`` for the activity term).
- One SGD step equals a PyTorch step on the same network (``interop.to_torch``) with the weight
  decay written out explicitly in the loss (float64, 1e-10).
- Keras 3 runs the same model (LSTM with regularizers and constraints, Dense head), same weights,
  SGD: the losses of three ``train_on_batch`` steps, the weights after them (constraints applied
  after each update) and ``evaluate`` (which includes the penalties in Keras 3) agree.
- After every step the constraints hold (max-norm column norms <= c, non-negative biases, unit
  columns); each projection equals Keras' constraint object on the same array.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch

from lstmkit import constraints, regularizers
from lstmkit.interop.torch import to_state_dict, to_torch
from lstmkit.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from lstmkit.models import Sequential
from lstmkit.optimizers import SGD

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
B, T, D, H = 4, 5, 3, 6


# --- the objects ----------------------------------------------------------------------------

REGULARIZERS = [
    ("l1", "l1", {}),
    ("l2", "l2", {}),
    ("L1", "L1", {"l1": 0.3}),
    ("L2", "L2", {"l2": 0.2}),
    ("L1L2", "L1L2", {"l1": 0.1, "l2": 0.05}),
]


@pytest.mark.parametrize("ours_name,keras_name,kwargs", REGULARIZERS)
def test_penalty_and_gradient_equal_keras_on_torch(ours_name, keras_name, kwargs):
    ours = regularizers.get(ours_name) if not kwargs else getattr(regularizers, ours_name)(**kwargs)
    theirs = (
        keras.regularizers.get(keras_name)
        if not kwargs
        else getattr(keras.regularizers, keras_name)(**kwargs)
    )
    w = np.random.default_rng(0).standard_normal((7, 9))
    wt = torch.tensor(w, requires_grad=True)
    penalty = theirs(wt)
    penalty.backward()
    # Keras keeps L1's factor as a float32 tensor (0.3 -> 0.30000001): agreement to ~1e-8
    assert ours(w) == pytest.approx(float(penalty.detach()), rel=1e-7)
    np.testing.assert_allclose(ours.grad(w), wt.grad.numpy(), rtol=1e-7, atol=1e-12)
    if kwargs:
        cfg = keras.regularizers.serialize(theirs)
        assert regularizers.serialize(ours)["config"] == pytest.approx(cfg["config"], rel=1e-7)
        assert regularizers.get(cfg).get_config() == pytest.approx(cfg["config"], rel=1e-7)


def test_l1_l2_by_name_is_the_documented_default():
    """Keras documents ``'l1_l2'`` as L1L2(0.01, 0.01) (3.15's registry cannot find that name;
    its ``'l1l2'`` is L1L2() with zeros, and so is ours)."""
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.get("l1l2").get_config() == keras.regularizers.get("l1l2").get_config()


CONSTRAINTS = [
    ("max_norm", {}),
    ("MaxNorm", {"max_value": 0.7}),
    ("MaxNorm", {"max_value": 0.7, "axis": 1}),
    ("non_neg", {}),
    ("unit_norm", {}),
    ("UnitNorm", {"axis": [0, 1]}),
    ("min_max_norm", {}),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 0.9, "rate": 0.5}),
]


@pytest.mark.parametrize("name,kwargs", CONSTRAINTS)
def test_projection_equals_keras(name, kwargs):
    ours = constraints.get(name) if not kwargs else getattr(constraints, name)(**kwargs)
    theirs = (
        keras.constraints.get(name) if not kwargs else getattr(keras.constraints, name)(**kwargs)
    )
    w = np.random.default_rng(1).standard_normal((6, 8))
    # Keras' torch ops.maximum(float64, 0) returns float32 (NonNeg), its MaxNorm/MinMaxNorm
    # lose float64 precision likewise (measured 1e-8): float32-level agreement
    np.testing.assert_allclose(ours(w), theirs(torch.tensor(w)).numpy(), rtol=1e-6, atol=1e-7)
    assert constraints.serialize(ours) == keras.constraints.serialize(theirs)


# --- in training ----------------------------------------------------------------------------


def data(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, D)).astype(dtype), rng.standard_normal((B, 1)).astype(dtype)


def randomized(model, seed=1, scale=0.5):
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    return model


def test_reported_loss_is_data_loss_plus_closed_form_penalty():
    kr, rr, br, ar = (
        regularizers.L2(0.1),
        regularizers.L1(0.05),
        regularizers.L1L2(0.02, 0.03),
        regularizers.L2(0.2),
    )
    lstm = LSTM(
        H, kernel_regularizer=kr, recurrent_regularizer=rr, bias_regularizer=br,
        activity_regularizer=ar, input_shape=(T, D), dtype="float64",
    )  # fmt: skip
    model = randomized(Sequential([lstm, Dense(1, dtype="float64")]))
    model.compile(SGD(0.1), "mse")
    x, y = data()
    k, u, b = (lstm.params[r].copy() for r in ("kernel", "recurrent_kernel", "bias"))
    h = lstm(x)  # the layer's output, (B, H)
    data_loss = np.mean((model.predict(x) - y) ** 2)
    penalty = (
        0.1 * np.sum(k**2)
        + 0.05 * np.sum(np.abs(u))
        + 0.02 * np.sum(np.abs(b))
        + 0.03 * np.sum(b**2)
        + 0.2 * np.sum(h**2) / B
    )
    assert penalty > 0.1 * data_loss  # a test of something
    assert model.train_on_batch(x, y) == pytest.approx(data_loss + penalty, rel=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_sgd_step_matches_torch_with_explicit_weight_decay(cell):
    cls = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}[cell]
    layer = cls(
        H, kernel_regularizer=regularizers.L1L2(0.01, 0.2), recurrent_regularizer="l2",
        bias_regularizer=regularizers.L1(0.1), activity_regularizer=regularizers.L2(0.3),
        input_shape=(T, D), dtype="float64",
    )  # fmt: skip
    model = randomized(Sequential([layer, Dense(1, dtype="float64")]))
    net = to_torch(model).train()  # same weights; torch's extra bias_hh is 0 and stays 0
    rnn, head = net[0], net[1]
    rnn.bias_hh_l0.requires_grad_(cell == "gru")  # the GRU keeps two biases, as lstmkit does
    model.compile(SGD(0.1), "mse")
    x, y = data()
    lr = 0.1

    out, _ = rnn(torch.tensor(x))
    h = out[:, -1]  # (B, H) what the lstmkit layer returns
    loss = torch.mean((head(h) - torch.tensor(y)) ** 2)
    # the penalties, written out on torch's tensors (sums are invariant to gate order/transpose)
    w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    loss = loss + 0.01 * w_ih.abs().sum() + 0.2 * (w_ih**2).sum() + 0.01 * (w_hh**2).sum()
    biases = [rnn.bias_ih_l0] + ([rnn.bias_hh_l0] if cell == "gru" else [])
    loss = loss + sum(0.1 * bb.abs().sum() for bb in biases) + 0.3 * (h**2).sum() / B
    loss.backward()
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                p -= lr * p.grad

    assert model.train_on_batch(x, y) == pytest.approx(float(loss.detach()), rel=1e-12)
    theirs = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    for key, ours in to_state_dict(model).items():
        np.testing.assert_allclose(ours, theirs[key], rtol=1e-10, atol=1e-12, err_msg=key)


def keras_twin(model, layer_kwargs, cls_name="LSTM", bidirectional=False):
    inner = getattr(keras.layers, cls_name)(H, **layer_kwargs)
    rnn = keras.layers.Bidirectional(inner) if bidirectional else inner
    km = keras.Sequential([keras.Input((T, D)), rnn, keras.layers.Dense(1)])
    km.set_weights(model.get_weights())
    km.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
    return km


KERAS_CASES = {
    "lstm": ("LSTM", False, {
        "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.05}},
        "recurrent_regularizer": "l1",
        "bias_regularizer": {"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}},
        "activity_regularizer": {"class_name": "L2", "config": {"l2": 0.1}},
        "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 0.6, "axis": 0}},
        "recurrent_constraint": "unit_norm",
        "bias_constraint": "non_neg",
    }),
    "gru_reset_before_relu": ("GRU", False, {
        "reset_after": False, "activation": "relu",
        "kernel_regularizer": "l2", "activity_regularizer": "l1",
        "kernel_constraint": {"class_name": "MinMaxNorm",
                              "config": {"min_value": 0.2, "max_value": 0.5, "rate": 0.7, "axis": 0}},
    }),
    "bidirectional_gru": ("GRU", True, {
        "return_sequences": False, "recurrent_regularizer": "l2", "bias_constraint": "non_neg",
        "activity_regularizer": {"class_name": "L2", "config": {"l2": 0.1}},
    }),
}  # fmt: skip


@pytest.mark.parametrize("case", KERAS_CASES)
def test_training_steps_match_keras(case):
    cls_name, bidirectional, kw = KERAS_CASES[case]
    rnn = {"LSTM": LSTM, "GRU": GRU}[cls_name](H, **kw)
    rnn = Bidirectional(rnn) if bidirectional else rnn
    model = randomized(Sequential([rnn, Dense(1)]), seed=2, scale=0.4)
    model.build((None, T, D))
    km = keras_twin(model, kw, cls_name, bidirectional)
    model.compile(SGD(0.1), "mse")
    x, y = data("float32", seed=3)
    for step in range(3):
        ours, theirs = model.train_on_batch(x, y), float(km.train_on_batch(x, y))
        assert ours == pytest.approx(theirs, rel=2e-5), f"step {step}"
        for a, b in zip(model.get_weights(), km.get_weights()):
            np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-5)
    assert model.evaluate(x, y) == pytest.approx(km.evaluate(x, y, verbose=0), rel=2e-5)


def test_constraints_hold_after_every_step():
    lstm = LSTM(
        H, kernel_constraint=constraints.MaxNorm(0.5), recurrent_constraint="unit_norm",
        bias_constraint="non_neg", input_shape=(T, D),
    )  # fmt: skip
    model = randomized(Sequential([lstm, Dense(1)]), scale=1.0)
    model.compile(SGD(0.5), "mse")
    x, y = data("float32", seed=4)
    max_norm, unit = keras.constraints.MaxNorm(0.5), keras.constraints.UnitNorm()
    for _ in range(4):
        before = {r: lstm.params[r].copy() for r in ("kernel", "recurrent_kernel", "bias")}
        model.train_on_batch(x, y)
        k, u, b = (lstm.params[r] for r in ("kernel", "recurrent_kernel", "bias"))
        assert np.linalg.norm(k, axis=0).max() <= 0.5 + 1e-6
        np.testing.assert_allclose(np.linalg.norm(u, axis=0), 1.0, atol=1e-5)
        assert b.min() >= 0 and (before["bias"] != b).any()
        # the projection of what the step produced: undo nothing, re-apply Keras' constraint
        np.testing.assert_allclose(keras.ops.convert_to_numpy(max_norm(k)), k, atol=1e-6)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(unit(u)), u, atol=1e-6)


def test_frozen_layers_are_neither_penalized_nor_projected():
    lstm = LSTM(H, kernel_regularizer=regularizers.L2(10.0), kernel_constraint="non_neg",
                input_shape=(T, D), trainable=False)  # fmt: skip
    model = randomized(Sequential([lstm, Dense(1)]))
    model.compile(SGD(0.1), "mse")
    x, y = data("float32")
    k = lstm.params["kernel"].copy()
    expected = np.mean((model.predict(x) - y) ** 2)  # no penalty
    assert model.train_on_batch(x, y) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(lstm.params["kernel"], k)


def test_keras_lower_case_spellings():
    """Tutorials write ``regularizers.l2(0.01)``, ``l1_l2(l1=..., l2=...)``, ``max_norm(3)``:
    in Keras 3 these are the classes, and so here."""
    pairs = [
        (regularizers.l2(0.1), keras.regularizers.l2(0.1)),
        (regularizers.l1(0.2), keras.regularizers.l1(0.2)),
        (regularizers.l1_l2(l1=0.01, l2=0.03), keras.regularizers.l1_l2(l1=0.01, l2=0.03)),
    ]
    for ours, theirs in pairs:
        assert ours.get_config() == pytest.approx(theirs.get_config(), rel=1e-7)
    for name in ("max_norm", "non_neg", "unit_norm", "min_max_norm"):
        assert constraints.serialize(getattr(constraints, name)()) == keras.constraints.serialize(
            getattr(keras.constraints, name)()
        )
    layer = LSTM(
        3, kernel_regularizer=regularizers.l2(0.01), kernel_constraint=constraints.max_norm(3)
    )
    assert layer.get_config()["kernel_constraint"]["config"] == {"max_value": 3, "axis": 0}
