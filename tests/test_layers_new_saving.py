"""Config and file round trips of the layers added for the Keras tutorials.

- Every layer that fits in a ``Sequential`` (alone, and inside the CNN-LSTM and encoder-decoder
  stacks the tutorials build) is saved with ``model.save`` and reloaded with
  ``lstmkit.load_model``: the reloaded model predicts bit-identically and has the same config;
  the NumPy runtime predicts the same.
- The merging layers (which need the functional graph to sit in a model) go through
  ``deserialize(serialize(layer))`` and give a bit-identical forward.
- BatchNormalization's moving statistics are non-trainable (Keras' parameter counts are the
  witness), move only after a training step, and are saved.
- A ``Lambda`` saves function names, never code: it reloads once the functions are registered
  and fails with a clear error otherwise.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest

import lstmkit
import lstmkit.layers as L
from lstmkit import Sequential, load_model, runtime
from lstmkit.layers import deserialize, serialize
from lstmkit.saving import ModelFileError

B, T, D = 3, 8, 4


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        p[...] = (
            rng.uniform(0.5, 2.0, p.shape) if "variance" in name else rng.normal(0, 0.5, p.shape)
        )


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def square(x):
    return x * x


def square_grad(x, y, dy):
    return 2 * x * dy


STACKS = {
    "dense_softmax": (lambda: [L.Dense(5, activation="softmax")], (T, D)),
    "dense_gelu_no_bias": (lambda: [L.Dense(5, activation="gelu", use_bias=False)], (D,)),
    "activation": (lambda: [L.Dense(3), L.Activation("swish")], (T, D)),
    "repeat_vector": (lambda: [L.RepeatVector(4)], (D,)),
    "flatten": (lambda: [L.Flatten(), L.Dense(2)], (T, D)),
    "reshape": (lambda: [L.Reshape((D, T))], (T, D)),
    "permute": (lambda: [L.Permute((2, 1))], (T, D)),
    "layer_norm": (lambda: [L.LayerNormalization(axis=[1, 2], epsilon=1e-5)], (T, D)),
    "batch_norm": (lambda: [L.BatchNormalization(momentum=0.9, center=False)], (T, D)),
    "conv1d": (lambda: [L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu")], (T, D)),
    "max_pool": (lambda: [L.MaxPooling1D(3, strides=2, padding="same")], (T, D)),
    "gap": (lambda: [L.GlobalAveragePooling1D(keepdims=True)], (T, D)),
    "gmp": (lambda: [L.GlobalMaxPooling1D(data_format="channels_first")], (T, D)),
    "time_distributed": (lambda: [L.TimeDistributed(L.Dense(2, activation="softmax"))], (T, D)),
    "time_distributed_bn": (lambda: [L.TimeDistributed(L.BatchNormalization())], (T, D)),
    "lambda": (
        lambda: [L.Lambda(square, gradient=square_grad, output_shape=(T, D))],
        (T, D),
    ),
    "cnn_lstm": (
        lambda: [
            L.Conv1D(6, 3, activation="relu"),
            L.MaxPooling1D(2),
            L.LSTM(5),
            L.Dense(1),
        ],
        (T, D),
    ),
    "encoder_decoder": (
        lambda: [
            L.LSTM(6),
            L.RepeatVector(3),
            L.LSTM(6, return_sequences=True),
            L.TimeDistributed(L.Dense(4, activation="relu")),
            L.TimeDistributed(L.Dense(1)),
        ],
        (T, D),
    ),
}  # fmt: skip


@pytest.fixture(autouse=True)
def registered_lambda_functions():
    L.Lambda.register(square)
    L.Lambda.register(square_grad)


@pytest.mark.parametrize("case", sorted(STACKS))
def test_sequential_save_load_predicts_identically(case, tmp_path):
    layers, shape = STACKS[case]
    model = Sequential(layers())
    model.build((None, *shape))
    randomize(model)
    x = data((B, *shape), 1)
    before = model.predict(x)
    # (assert_array_equal takes NaN == NaN: a model that predicts NaN would pass the comparisons)
    assert np.isfinite(before).all(), case
    path = tmp_path / f"{case}.lstmkit"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), before)
    np.testing.assert_allclose(runtime.load(path).predict(x), before, rtol=1e-6, atol=1e-6)
    assert loaded.get_config() == model.get_config()
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p, err_msg=name)


MERGES = {
    "add": (L.Add, [(T, D), (D,)]),
    "subtract": (L.Subtract, [(T, D)] * 2),
    "multiply": (L.Multiply, [(T, D)] * 3),
    "average": (L.Average, [(T, D)] * 2),
    "maximum": (L.Maximum, [(T, D)] * 2),
    "minimum": (L.Minimum, [(T, D)] * 2),
    "concatenate": (lambda: L.Concatenate(axis=1, name="concat"), [(T, D), (2, D)]),
    "dot": (lambda: L.Dot(axes=(2, 2), normalize=True), [(T, D), (5, D)]),
}


@pytest.mark.parametrize("case", sorted(MERGES))
def test_merging_config_round_trip(case):
    factory, shapes = MERGES[case]
    layer = factory()
    xs = [data((B, *s), i) for i, s in enumerate(shapes)]
    masks = [np.arange(T) < 5] * len(xs) if case == "multiply" else None
    if masks is not None:
        masks = [np.broadcast_to(m, (B, T)) for m in masks]
    y, _ = layer.forward(xs, mask=masks)
    clone = deserialize(serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert clone.multi_input
    np.testing.assert_array_equal(clone.forward(xs, mask=masks)[0], y)
    assert clone.compute_output_shape([s for s in shapes]) == y.shape[1:]


def test_batch_normalization_moving_statistics_are_non_trainable_like_keras():
    import keras

    model = Sequential([L.Dense(4), L.BatchNormalization(), L.Dense(1)])
    model.build((None, T, D))
    kmodel = keras.Sequential(
        [keras.Input((T, D)), keras.layers.Dense(4), keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )  # fmt: skip
    k_trainable = sum(int(np.prod(w.shape)) for w in kmodel.trainable_weights)
    k_total = kmodel.count_params()
    assert model.count_params() == k_total
    assert sum(p.size for p in model.trainable_params.values()) == k_trainable
    assert not any("moving" in name for name in model.trainable_params)
    text = model.summary(print_fn=lambda s: None)
    assert f"Non-trainable params: {k_total - k_trainable:,}" in text


def test_batch_normalization_moves_only_after_a_training_step(tmp_path):
    lstmkit.set_random_seed(0)
    model = Sequential([L.Dense(4, input_shape=(T, D)), L.BatchNormalization(momentum=0.5)])
    model.compile(optimizer="sgd", loss="mse")
    bn = model.layers[1]
    x, y = data((B, T, D), 1) + 3.0, data((B, T, 4), 2)
    before = {k: v.copy() for k, v in bn.params.items()}
    model.predict(x)
    model.evaluate(x, y)
    for k, v in before.items():
        np.testing.assert_array_equal(bn.params[k], v, err_msg=f"{k} moved at inference")
    # the update a training forward asks for, from the pre-step weights
    _, cache = bn.forward(model.layers[0].forward(x)[0], training=True)
    expected = bn.state_updates(cache)
    model.train_on_batch(x, y)
    for k in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(bn.params[k], expected[k], rtol=1e-6, err_msg=k)
        assert not np.allclose(bn.params[k], before[k])
    model.save(tmp_path / "bn.lstmkit")
    loaded = load_model(tmp_path / "bn.lstmkit")
    for k in ("moving_mean", "moving_variance"):
        np.testing.assert_array_equal(loaded.layers[1].params[k], bn.params[k])


def test_lambda_with_unregistered_function_fails_to_load_with_a_clear_error(tmp_path):
    def cube(x):
        return x**3

    model = Sequential([L.Lambda(cube), L.Dense(2)])
    model.build((None, D))
    model.save(tmp_path / "m.lstmkit")
    with pytest.raises(ModelFileError, match=r"cube.*not registered.*Lambda.register"):
        load_model(tmp_path / "m.lstmkit")
    L.Lambda.register(cube)
    x = data((B, D))
    np.testing.assert_array_equal(load_model(tmp_path / "m.lstmkit").predict(x), model.predict(x))


def test_lambda_config_names_functions_never_code():
    cfg = L.Lambda(square, gradient=square_grad, arguments={}).get_config()
    assert cfg["function"] == f"{__name__}.square" and cfg["gradient"] == f"{__name__}.square_grad"
    assert L.Lambda.from_config(cfg).function is square


def test_time_distributed_parameters_use_the_inner_roles():
    model = Sequential([L.TimeDistributed(L.Dense(3), name="td")])
    model.build((None, T, D))
    assert sorted(model.params) == ["td.bias", "td.kernel"]
