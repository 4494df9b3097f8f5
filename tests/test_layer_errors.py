"""Bad input is refused with a ValueError that names the layer, the argument, what was received
and what was expected; and every layer's config is its constructor (a JSON round trip rebuilds a
layer that gives bit-identical outputs with the same weights)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lstmkit.layers import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Masking,
    SimpleRNN,
    deserialize,
    serialize,
)

RECURRENT = [LSTM, GRU, SimpleRNN]


def built(layer, input_shape, dtype="float32"):
    layer.build(input_shape, rng=np.random.default_rng(0), dtype=dtype)
    return layer


def raises(pattern):
    return pytest.raises(ValueError, match=pattern)


# --- recurrent layers: x --------------------------------------------------------------------


def test_wrong_feature_dim_message_is_the_house_example():
    layer = built(LSTM(4), (10, 8))
    expected = "LSTM: argument 'x' must have shape (batch, timesteps, 8); got (32, 10, 3)"
    with raises(re.escape(expected)):
        layer.forward(np.zeros((32, 10, 3)))


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("shape", [(32, 8), (32, 10, 8, 1), (8,)])
def test_wrong_rank(cls, shape):
    layer = built(cls(4), (10, 8))
    name = cls.__name__
    with raises(
        rf"{name}: argument 'x' must have rank 3, shape \(batch, timesteps, 8\); "
        rf"got shape {re.escape(str(shape))}"
    ):
        layer.forward(np.zeros(shape))


@pytest.mark.parametrize("cls", RECURRENT)
def test_wrong_rank_before_build(cls):
    with raises(rf"{cls.__name__}: argument 'x' must have rank 3.*got shape \(5, 8\)"):
        cls(4).forward(np.zeros((5, 8)))


@pytest.mark.parametrize(
    "x",
    [np.full((2, 3, 8), "a"), np.zeros((2, 3, 8), complex), np.full((2, 3, 8), None)],
    ids=["str", "complex", "object"],
)
@pytest.mark.parametrize("cls", RECURRENT)
def test_non_numeric_dtype(cls, x):
    layer = built(cls(4), (3, 8))
    with raises(rf"{cls.__name__}: argument 'x' must be a float array; got dtype {x.dtype}"):
        layer.forward(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cls", RECURRENT)
def test_nan_or_inf(cls, bad):
    x = np.zeros((2, 3, 8))
    x[1, 2, 5] = bad
    for layer in (built(cls(4), (3, 8)), cls(4)):  # built, and built on first call
        with raises(rf"{cls.__name__}: argument 'x' contains NaN or Inf"):
            layer.forward(x)


@pytest.mark.parametrize("shape", [(2, 0, 8), (0, 3, 8)], ids=["no_timesteps", "empty_batch"])
@pytest.mark.parametrize("cls", RECURRENT)
def test_empty_input(cls, shape):
    for layer in (built(cls(4), (3, 8)), cls(4)):
        with raises(
            rf"{cls.__name__}: argument 'x' must not be empty; got shape {re.escape(str(shape))}"
        ):
            layer.forward(np.zeros(shape))


# --- recurrent layers: mask and initial state -----------------------------------------------


@pytest.mark.parametrize("cls", RECURRENT)
def test_mask_of_wrong_shape(cls):
    layer = built(cls(4), (3, 8))
    for mask in (np.ones((2, 4), bool), np.ones((3, 3), bool), np.ones((2, 3, 1), bool)):
        with raises(
            rf"{cls.__name__}: argument 'mask' must have shape \(batch, timesteps\) = \(2, 3\); "
            rf"got {re.escape(str(mask.shape))}"
        ):
            layer.forward(np.zeros((2, 3, 8)), mask=mask)


@pytest.mark.parametrize("cls", RECURRENT)
def test_mask_with_an_all_false_row(cls):
    layer = built(cls(4), (3, 8))
    mask = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]], bool)
    with raises(
        rf"{cls.__name__}: argument 'mask' must keep at least one step of each sequence; "
        r"sequences \[1, 3\] have zero length"
    ):
        layer.forward(np.zeros((4, 3, 8)), mask=mask)


@pytest.mark.parametrize("cls", RECURRENT)
def test_mask_that_is_not_boolean(cls):
    layer = built(cls(4), (3, 8))
    with raises(rf"{cls.__name__}: argument 'mask' must be boolean \(or 0/1\); got dtype float64"):
        layer.forward(np.zeros((2, 3, 8)), mask=np.full((2, 3), 0.5))
    ok = layer.forward(np.ones((2, 3, 8)), mask=np.array([[1, 1, 0], [1, 0, 0]]))[0]  # 0/1 ints
    ref = layer.forward(np.ones((2, 3, 8)), mask=np.array([[1, 1, 0], [1, 0, 0]], bool))[0]
    np.testing.assert_array_equal(ok, ref)


def test_initial_state_of_wrong_shape_or_count():
    layer = built(LSTM(4), (3, 8))
    x = np.zeros((2, 3, 8))
    with raises(r"LSTM: argument 'initial_state' must be a list of 2 arrays \['h', 'c'\]; got 1"):
        layer.forward(x, initial_state=[np.zeros((2, 4))])
    with raises(r"LSTM: argument 'initial_state' must have shape \(batch, 4\); got \(2, 3\)"):
        layer.forward(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with raises(r"LSTM: argument 'initial_state' \(c\) must have shape \(2, 4\); got \(5, 4\)"):
        layer.forward(x, initial_state=[np.zeros((2, 4)), np.zeros((5, 4))])


def test_bidirectional_refuses_bad_input():
    with raises(r"Bidirectional: argument 'x' must have rank 3.*got shape \(2, 3\)"):
        Bidirectional(LSTM(4)).forward(np.zeros((2, 3)))
    layer = built(Bidirectional(GRU(4)), (3, 8))
    with raises(r"argument 'x' must have shape \(batch, timesteps, 8\); got \(2, 3, 5\)"):
        layer.forward(np.zeros((2, 3, 5)))
    with raises(r"argument 'mask' must keep at least one step"):
        layer.forward(np.zeros((2, 3, 8)), mask=np.array([[1, 0, 0], [0, 0, 0]], bool))


# --- Dense, Embedding, Masking --------------------------------------------------------------


def test_dense_refuses_bad_input():
    layer = built(Dense(3), (8,))
    with raises(r"Dense: argument 'x' must have shape \(batch, 8\); got \(4, 5\)"):
        layer.forward(np.zeros((4, 5)))
    with raises(r"Dense: argument 'x' must have shape \(batch, timesteps, 8\); got \(4, 2, 5\)"):
        layer.forward(np.zeros((4, 2, 5)))
    with raises(r"Dense: argument 'x' must have shape \(batch, \.\.\., features\); got \(3,\)"):
        Dense(3).forward(np.zeros(3))
    with raises(r"Dense: argument 'x' must be a float array; got dtype <U1"):
        layer.forward(np.full((4, 8), "a"))
    with raises(r"Dense: argument 'x' contains NaN or Inf"):
        layer.forward(np.full((4, 8), np.nan))
    with raises(r"Dense: argument 'x' must not be empty; got shape \(0, 8\)"):
        layer.forward(np.zeros((0, 8)))


def test_embedding_refuses_bad_ids():
    layer = built(Embedding(5, 3), (2,))
    with raises(r"Embedding: argument 'x' must hold ids in \[0, 5\); got values in \[1, 5\]"):
        layer.forward(np.array([[1, 5]]))
    with raises(r"Embedding: argument 'x' must hold ids in \[0, 5\); got values in \[-1, 2\]"):
        layer.forward(np.array([[2, -1]]))
    for ids in (np.array([[1.5, 2.0]]), np.array([[np.nan, 2.0]]), np.array([["a", "b"]])):
        with raises(rf"Embedding: argument 'x' must hold integer token ids; got dtype {ids.dtype}"):
            layer.forward(ids)
    with raises(r"Embedding: argument 'x' must not be empty; got shape \(0, 2\)"):
        layer.forward(np.zeros((0, 2), int))
    # whole numbers stored as floats are ids
    np.testing.assert_array_equal(
        layer.forward(np.array([[1.0, 4.0]]))[0], layer.forward(np.array([[1, 4]]))[0]
    )


def test_masking_refuses_bad_input():
    with raises(r"Masking: argument 'x' must have rank 3.*got shape \(2, 3\)"):
        Masking().forward(np.zeros((2, 3)))
    with raises(r"Masking: argument 'x' contains NaN or Inf"):
        Masking().forward(np.full((2, 3, 1), np.inf))


# --- constructors ---------------------------------------------------------------------------


@pytest.mark.parametrize("units", [0, -1, 2.5, True, "4", None])
@pytest.mark.parametrize("cls", [*RECURRENT, Dense])
def test_units_must_be_a_positive_int(cls, units):
    with raises(
        rf"{cls.__name__}: argument 'units' must be a positive int; got {re.escape(repr(units))}"
    ):
        cls(units)


@pytest.mark.parametrize("arg", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
@pytest.mark.parametrize("cls", RECURRENT)
def test_dropout_rates_must_be_in_0_1(cls, arg, value):
    with raises(rf"{cls.__name__}: argument '{arg}' must be in \[0, 1\); got {value!r}"):
        cls(4, **{arg: value})


def test_other_constructor_arguments():
    with raises(r"Dropout: argument 'rate' must be in \[0, 1\); got 1.0"):
        Dropout(1.0)
    with raises(r"Dropout: argument 'rate' must be in \[0, 1\); got -0.2"):
        Dropout(-0.2)
    with raises(r"Embedding: argument 'input_dim' must be a positive int; got 0"):
        Embedding(0, 3)
    with raises(r"Embedding: argument 'output_dim' must be a positive int; got -2"):
        Embedding(4, -2)
    with raises(r"SimpleRNN: argument 'activation' must be one of .*; got 'swoosh'"):
        SimpleRNN(3, activation="swoosh")
    with raises(r"LSTM: argument 'recurrent_activation' must be an element-wise activation; got "):
        LSTM(3, recurrent_activation="softmax")
    with raises(r"SimpleRNN: has no argument 'recurrent_activation'"):
        SimpleRNN(3, recurrent_activation="sigmoid")
    with raises(r"argument 'activation' must be one of .*; got 'swoosh'"):
        Dense(3, activation="swoosh")
    with raises(r"GRU: argument 'reset_after' must be True or False; got 'no'"):
        GRU(3, reset_after="no")
    with raises(r"LSTM: argument 'dtype' must be one of \('float32', 'float64'\); got 'int32'"):
        LSTM(3, dtype="int32")
    with raises(r"Bidirectional: argument 'merge_mode' must be one of .*; got 'max'"):
        Bidirectional(LSTM(3), merge_mode="max")
    with raises(r"Bidirectional: argument 'layer' must be a recurrent layer .*; got Dense"):
        Bidirectional(Dense(3))


# --- config round trip ----------------------------------------------------------------------

B, T, D = 3, 4, 5
IDS = np.array([[1, 2, 0, 0], [3, 0, 4, 5], [6, 6, 6, 1]])
CONFIG_CASES = {
    "lstm": (
        lambda: LSTM(
            3,
            return_sequences=True,
            return_state=True,
            go_backwards=True,
            dropout=0.1,
            recurrent_dropout=0.2,
            forget_bias=5.0,
            dtype="float64",
            name="my_lstm",
        ),
        (T, D),
    ),
    "lstm_no_forget_bias": (lambda: LSTM(2, unit_forget_bias=False, input_shape=(T, D)), (T, D)),
    "gru": (lambda: GRU(3, return_state=True, stateful=True), (T, D)),
    "simple_rnn": (lambda: SimpleRNN(3, activation="relu", return_sequences=True), (T, D)),
    "bidirectional": (
        lambda: Bidirectional(LSTM(3, return_sequences=True, return_state=True), merge_mode="sum"),
        (T, D),
    ),
    "bidirectional_custom_backward": (
        lambda: Bidirectional(GRU(3), backward_layer=GRU(3, go_backwards=True), merge_mode="mul"),
        (T, D),
    ),
    "dense": (lambda: Dense(4, activation="tanh", use_bias=False), (T, D)),
    "embedding": (lambda: Embedding(7, 4, mask_zero=True, input_length=T), (T,)),
    "dropout": (lambda: Dropout(0.3, noise_shape=(None, 1, None), seed=3), (T, D)),
    "masking": (lambda: Masking(0.5), (T, D)),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_round_trip_gives_identical_outputs(case):
    make, input_shape = CONFIG_CASES[case]
    layer = make()
    cfg = layer.get_config()
    text = json.dumps(serialize(layer))  # the architecture is plain JSON
    rebuilt = deserialize(json.loads(text))
    assert type(rebuilt) is type(layer)
    assert json.dumps(rebuilt.get_config(), sort_keys=True) == json.dumps(cfg, sort_keys=True)
    assert type(layer).from_config(cfg).get_config() == cfg

    rng = np.random.default_rng(0)
    x = IDS if case == "embedding" else rng.standard_normal((B, *input_shape))
    x = x.copy()
    if case == "masking":
        x[0, 2:] = 0.5
    for a in (layer, rebuilt):
        a.build(input_shape, rng=np.random.default_rng(len(a.name)))
    for p in layer.params.values():
        p[...] = rng.standard_normal(p.shape)
    rebuilt.set_weights(layer.get_weights())
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    kw = {} if case in ("dense", "embedding", "dropout", "masking") else {"mask": mask}
    training = case == "dropout"  # a seeded Dropout draws the same first mask
    ours = layer.forward(x, training=training, **kw)[0]
    again = rebuilt.forward(x, training=training, **kw)[0]
    ours, again = (y if isinstance(y, list) else [y] for y in (ours, again))
    assert len(ours) == len(again)
    for a, b in zip(ours, again):
        np.testing.assert_array_equal(a, b)
