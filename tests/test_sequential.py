"""``Sequential`` (composition, summary, weights, config) against Keras 3 as the witness.

- Public import paths are a contract: ``lstmkit.models``, ``lstmkit.layers`` and the top level.
- Parameter counts and output shapes: the same stack built in Keras (torch backend) gives
  ``count_params`` per layer and ``layer.output.shape``; the summary table must show those
  numbers. The 50-unit LSTM on 1 feature has 4 * (50 * (1 + 50) + 50) = 10,400 parameters.
- Weight layouts: ``keras_model.get_weights()`` (perturbed so every bias is non-zero) is copied
  unchanged into lstmkit with ``set_weights`` (model-level and layer by layer) and the
  predictions must equal ``keras_model.predict`` to 1e-5 in float32, including masked batches.
- Config: ``from_config(get_config())`` rebuilds a model that predicts bit-identically.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

import lstmkit
from lstmkit import layers as L
from lstmkit.models import Sequential

keras = pytest.importorskip("keras")
assert keras.backend.backend() == "torch", "set KERAS_BACKEND=torch before keras is imported"
# keras' torch backend trips NumPy 2's __array__(copy=) deprecation on every get_weights
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# -- imports ------------------------------------------------------------------------------------
def test_public_import_paths():
    from lstmkit import LSTM as TopLSTM
    from lstmkit import Dense as TopDense
    from lstmkit import Sequential as TopSequential
    from lstmkit import load_model
    from lstmkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, SimpleRNN
    from lstmkit.models import Sequential as ModelsSequential
    from lstmkit.saving import load_model as saving_load_model

    assert TopSequential is ModelsSequential
    assert TopLSTM is LSTM and TopDense is Dense
    assert load_model is saving_load_model
    for cls in (GRU, SimpleRNN, Bidirectional, Dropout, Embedding):
        assert issubclass(cls, L.Layer), cls


# -- the same stack in both libraries -----------------------------------------------------------
# (class name, positional args, keyword args); Bidirectional's first arg is a nested spec
STACKS = {
    "lstm_dense": ([("LSTM", (5,), {}), ("Dense", (2,), {})], (7, 3)),
    "tutorial": ([("LSTM", (50,), {}), ("Dense", (1,), {})], (12, 1)),
    "gru": ([("GRU", (5,), {}), ("Dense", (1,), {})], (7, 3)),
    "simple_rnn": ([("SimpleRNN", (5,), {}), ("Dense", (1,), {})], (7, 3)),
    "bidirectional_seq": (
        [
            ("Bidirectional", (("LSTM", (4,), {"return_sequences": True}),), {}),
            ("Dense", (1,), {}),
        ],
        (7, 3),
    ),
    "bidirectional_gru_sum": (
        [("Bidirectional", (("GRU", (4,), {}),), {"merge_mode": "sum"}), ("Dense", (1,), {})],
        (7, 3),
    ),
    "stacked": (
        [
            ("LSTM", (6,), {"return_sequences": True}),
            ("GRU", (4,), {"return_sequences": True}),
            ("SimpleRNN", (3,), {}),
            ("Dense", (2,), {"activation": "tanh"}),
        ],
        (7, 3),
    ),
    "embedding_lstm": (
        [("Embedding", (20, 8), {"mask_zero": True}), ("LSTM", (5,), {}), ("Dense", (1,), {})],
        (9,),
    ),
    "embedding_bidirectional_seq": (
        [
            ("Embedding", (20, 6), {"mask_zero": True}),
            ("Bidirectional", (("GRU", (3,), {"return_sequences": True}),), {}),
            ("Dense", (2,), {}),
        ],
        (9,),
    ),
}


def make_layer(module, spec):
    name, args, kwargs = spec
    if name == "Bidirectional":
        return module.Bidirectional(make_layer(module, args[0]), **kwargs)
    return getattr(module, name)(*args, **kwargs)


def build_pair(key):
    specs, shape = STACKS[key]
    in_dtype = "int32" if specs[0][0] == "Embedding" else "float32"
    km = keras.Sequential(
        [keras.Input(shape, dtype=in_dtype)] + [make_layer(keras.layers, s) for s in specs]
    )
    lm = Sequential([make_layer(L, s) for s in specs])
    lm.build((None, *shape))  # Keras' build takes the batch axis
    return km, lm


def sample_input(key, rng, batch=6):
    specs, shape = STACKS[key]
    if specs[0][0] == "Embedding":
        ids = rng.integers(1, 20, size=(batch, *shape))
        ids[0, 4:] = 0  # post-padded sequences of different lengths
        ids[1, 1:] = 0
        ids[2, 7:] = 0
        return ids
    return rng.standard_normal((batch, *shape)).astype("float32")


@pytest.mark.parametrize("key", sorted(STACKS))
def test_count_params_and_output_shapes_match_keras(key):
    km, lm = build_pair(key)
    assert lm.count_params() == km.count_params()
    for lk_layer, k_layer in zip(lm.layers, km.layers):
        assert lk_layer.count_params() == k_layer.count_params(), lk_layer.name
        assert lk_layer.output.shape == tuple(k_layer.output.shape), lk_layer.name


def test_tutorial_lstm_has_10400_params_and_summary_shows_the_table():
    km, lm = build_pair("tutorial")
    assert km.layers[0].count_params() == 10_400  # the witness, and 4 * (50 * 51 + 50)
    lines = []
    text = lm.summary(print_fn=lines.append)
    assert lines == [text]
    rows = {line.split()[0]: line for line in text.splitlines()}
    lstm_name, dense_name = lm.layers[0].name, lm.layers[1].name
    assert "(LSTM)" in rows[lstm_name]
    assert "(batch, 50)" in rows[lstm_name] and rows[lstm_name].rstrip().endswith("10,400")
    assert "(batch, 1)" in rows[dense_name] and rows[dense_name].rstrip().endswith("51")
    assert f"Total params: {km.count_params():,}" in text  # 10,451
    assert "Trainable params: 10,451" in text
    assert "Non-trainable params: 0" in text


def test_summary_counts_frozen_layers_as_non_trainable():
    lm = Sequential([L.LSTM(3, input_shape=(4, 2)), L.Dense(1)])
    lm.layers[0].trainable = False
    text = lm.summary(print_fn=lambda s: None)
    assert f"Non-trainable params: {4 * (3 * (2 + 3) + 3)}" in text
    assert "Trainable params: 4\n" in text


def test_summary_before_build_names_the_fix():
    with pytest.raises(ValueError, match="not been built"):
        Sequential([L.LSTM(3), L.Dense(1)]).summary()


@pytest.mark.parametrize("key", sorted(STACKS))
def test_keras_weights_copied_unchanged_give_keras_predictions(key):
    rng = np.random.default_rng(sum(map(ord, key)))
    km, lm = build_pair(key)
    # perturb Keras' own init so every bias (zeros at init) is non-zero
    weights = [w + 0.3 * rng.standard_normal(w.shape).astype(w.dtype) for w in km.get_weights()]
    km.set_weights(weights)
    x = sample_input(key, rng)
    expected = km.predict(x, verbose=0)

    lm.set_weights(weights)  # model level, the list exactly as Keras returns it
    assert [w.shape for w in lm.get_weights()] == [w.shape for w in weights]
    for mine, theirs in zip(lm.get_weights(), weights):
        np.testing.assert_array_equal(mine, theirs)
    got = lm.predict(x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    _, fresh = build_pair(key)  # layer level: each Keras layer's list into the matching layer
    for lk_layer, k_layer in zip(fresh.layers, km.layers):
        lk_layer.set_weights(k_layer.get_weights())
    np.testing.assert_allclose(fresh.predict(x), expected, rtol=1e-5, atol=1e-5)


def test_set_weights_rejects_wrong_count_and_lists_every_shape_mismatch():
    lm = Sequential([L.LSTM(4, input_shape=(5, 3)), L.Dense(2)])
    weights = lm.get_weights()
    with pytest.raises(ValueError, match=r"argument 'weights' must be a list of 5 arrays; got 4"):
        lm.set_weights(weights[:4])
    bad = [np.zeros((3, 12)), np.zeros((4, 16)), np.zeros(15)]
    with pytest.raises(ValueError) as err:
        lm.layers[0].set_weights(bad)
    msg = str(err.value)
    assert "kernel: expected (3, 16), got (3, 12)" in msg
    assert "bias: expected (16,), got (15,)" in msg
    assert "recurrent_kernel" not in msg  # the one that matched is not reported
    np.testing.assert_array_equal(lm.get_weights()[0], weights[0])  # nothing was written


def test_add_rejects_non_layers_and_duplicate_names():
    lm = Sequential()
    with pytest.raises(ValueError, match="argument 'layer' must be an lstmkit layer; got int"):
        lm.add(3)
    lm.add(L.Dense(2, name="head", input_shape=(4,)))
    with pytest.raises(ValueError, match="'head' is already used"):
        lm.add(L.Dense(1, name="head"))


def test_automatic_names_are_unique_and_keras_style():
    lm = Sequential([L.LSTM(2, input_shape=(3, 1), return_sequences=True), L.LSTM(2)])
    a, b = (layer.name for layer in lm.layers)
    assert a != b and a.startswith("lstm") and b.startswith("lstm")
    assert set(lm.params) == {
        f"{n}.{r}" for n in (a, b) for r in ("kernel", "recurrent_kernel", "bias")
    }


@pytest.mark.parametrize("key", ["stacked", "embedding_bidirectional_seq", "bidirectional_seq"])
def test_config_round_trip_predicts_bit_identically(key):
    rng = np.random.default_rng(1)
    _, lm = build_pair(key)
    cfg = lm.get_config()
    clone = Sequential.from_config(cfg)
    assert clone.get_config() == cfg
    assert clone.count_params() == lm.count_params()
    clone.set_weights(lm.get_weights())
    x = sample_input(key, rng)
    np.testing.assert_array_equal(clone.predict(x), lm.predict(x))


def test_model_builds_on_first_call_without_input_shape():
    lstmkit.set_random_seed(0)
    lm = Sequential([L.GRU(3), L.Dense(1)])
    assert not lm.built
    y = lm(np.zeros((2, 4, 5), "float32"))
    assert lm.built and y.shape == (2, 1) and lm.input_shape == (None, 4, 5)
