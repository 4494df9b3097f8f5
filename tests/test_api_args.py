"""Arguments of ``fit`` / ``evaluate`` / ``predict`` / ``train_on_batch`` and of the apps'
configs: a bad value is a ``ValueError`` naming the argument, the value and what is allowed.

Keras 3 (torch backend) is the witness for the semantics kept: ``batch_size=None`` means 32,
``epochs=0`` (or ``initial_epoch == epochs``) trains nothing and returns an empty history.
Values Keras lets through silently (``epochs=-1``, ``initial_epoch > epochs``, ``verbose=3``,
``shuffle="x"``) are refused here.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest

import lstmkit
from lstmkit.apps.classify import ClassifyConfig
from lstmkit.apps.text import LMConfig, build_language_model, evaluate_text
from lstmkit.callbacks import Callback
from lstmkit.data.text import Vocabulary
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential

T, D, N = 5, 3, 40  # N: more than one batch of 32


def model_and_data(seed=0):
    lstmkit.set_random_seed(seed)
    model = Sequential([LSTM(4, input_shape=(T, D)), Dense(1)], name="m")
    model.compile("sgd", "mse", seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D)).astype("float32")
    return model, x, rng.standard_normal((N, 1)).astype("float32")


def keras_model():
    k = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    k.compile("sgd", "mse")
    return k


def message(fn, *args, **kwargs):
    """The message of the ValueError that ``fn(*args, **kwargs)`` raises."""
    with pytest.raises(ValueError) as e:
        fn(*args, **kwargs)
    return str(e.value)


# -- batch_size --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_batch_size_is_a_positive_int(bad):
    model, x, y = model_and_data()
    got = repr(bad)
    for call, name in (
        (lambda: model.predict(x, batch_size=bad), "predict"),
        (lambda: model.evaluate(x, y, batch_size=bad), "evaluate"),
        (lambda: model.fit(x, y, batch_size=bad, verbose=0), "fit"),
    ):
        assert message(call) == (
            f"m.{name}: argument 'batch_size' must be a positive int; got {got} (None means 32)"
        )


def test_batch_size_none_means_32_as_in_keras():
    class Count(Callback):
        batches = 0

        def on_batch_end(self, batch, logs=None):
            Count.batches += 1

    class KerasCount(keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            KerasCount.batches += 1

        def on_predict_batch_end(self, batch, logs=None):
            KerasCount.batches += 1

    model, x, y = model_and_data()
    model.fit(x, y, batch_size=None, epochs=1, callbacks=[Count()], verbose=0)
    keras_model().fit(x, y, batch_size=None, epochs=1, callbacks=[KerasCount()], verbose=0)
    assert Count.batches == KerasCount.batches == 2  # 32 + 8
    assert model.predict(x, batch_size=None).shape == (N, 1)
    assert model.evaluate(x, y, batch_size=None) == pytest.approx(model.evaluate(x, y))


# -- epochs, initial_epoch ----------------------------------------------------------------------
def test_zero_epochs_trains_nothing_as_in_keras():
    model, x, y = model_and_data()
    before = [w.copy() for w in model.get_weights()]
    k = keras_model()
    k_before = [w.copy() for w in k.get_weights()]
    for epochs, initial in ((0, 0), (3, 3)):
        assert model.fit(x, y, epochs=epochs, initial_epoch=initial, verbose=0).history == {}
        kh = k.fit(x, y, epochs=epochs, initial_epoch=initial, verbose=0)
        assert kh.history == {}
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(k.get_weights(), k_before):
        np.testing.assert_array_equal(a, b)


def test_negative_or_fractional_epochs_are_refused():
    model, x, y = model_and_data()
    for bad in (-1, 1.5, "2", None):
        assert message(model.fit, x, y, epochs=bad, verbose=0) == (
            f"m.fit: argument 'epochs' must be an int >= 0; got {bad!r}"
        )
    assert message(model.fit, x, y, epochs=1, initial_epoch=-1, verbose=0) == (
        "m.fit: argument 'initial_epoch' must be an int >= 0; got -1"
    )
    assert message(model.fit, x, y, epochs=2, initial_epoch=3, verbose=0) == (
        "m.fit: argument 'initial_epoch' must be <= epochs (2: the index of the final epoch, as "
        "in Keras); got 3"
    )


# -- verbose, shuffle, validation_split, validation_data, mask ----------------------------------
def test_verbose_takes_keras_values_only(capsys):
    model, x, y = model_and_data()
    for ok in ("auto", 0, 1, 2, True, False):
        model.fit(x, y, epochs=1, verbose=ok)
        model.predict(x, verbose=ok)
    capsys.readouterr()
    for bad in (3, -1, "x", None):
        want = f"argument 'verbose' must be one of ['auto', 0, 1, 2] or a bool; got {bad!r}"
        assert message(model.fit, x, y, verbose=bad) == f"m.fit: {want}"
        assert message(model.predict, x, verbose=bad) == f"m.predict: {want}"
        assert message(model.evaluate, x, y, verbose=bad) == f"m.evaluate: {want}"


def test_shuffle_and_validation_split_and_data():
    model, x, y = model_and_data()
    for bad in (None, "x", 1):
        assert message(model.fit, x, y, shuffle=bad, verbose=0) == (
            f"m.fit: argument 'shuffle' must be True or False; got {bad!r}"
        )
    for bad in ("a", True, float("nan"), 1.0, -0.1):
        assert message(model.fit, x, y, validation_split=bad, verbose=0) == (
            f"m.fit: argument 'validation_split' must be in [0, 1) (a real number); got {bad!r}"
        )
    assert message(model.fit, x, y, validation_data=x, verbose=0) == (
        "m.fit: argument 'validation_data' must be a tuple (x_val, y_val) or (x_val, y_val, mask); "
        "got ndarray"
    )
    assert message(model.fit, x, y, validation_data=(x,), verbose=0) == (
        "m.fit: argument 'validation_data' must be a tuple (x_val, y_val) or (x_val, y_val, mask); "
        "got tuple of length 1"
    )


def test_mask_shape_is_checked_against_x():
    model, x, y = model_and_data()
    bad = np.ones((N - 1, T), bool)
    want = f"argument 'mask' must have shape (batch, timesteps) = ({N}, {T}); got ({N - 1}, {T})"
    assert message(model.fit, x, y, mask=bad, verbose=0) == f"m.fit: {want}"
    assert message(model.predict, x, mask=bad) == f"m.predict: {want}"
    assert message(model.evaluate, x, y, mask=bad) == f"m.evaluate: {want}"
    assert message(model.train_on_batch, x, y, mask=bad) == f"m.train_on_batch: {want}"


# -- the apps' configs --------------------------------------------------------------------------
LM_BAD = [
    ("dropout", -0.5, "in [0, 1)"),
    ("lr_decay", 0.0, "in (0, 1]"),
    ("learning_rate", 0.0, "a number > 0"),
    ("epsilon", 0.0, "a number > 0"),
    ("clipnorm", 0.0, "a number > 0 or None"),
    ("val_fraction", 1.0, "in (0, 1)"),
    ("min_freq", 0, "a positive int"),
    ("seq_len", 0, "a positive int"),
    ("max_steps", 0, "a positive int or None"),
    ("max_vocab", 2, "an int >= 3 or None"),
    ("patience", -1, "an int >= 0"),
    ("seed", -1, "an int >= 0"),
]


@pytest.mark.parametrize("name, bad, allowed", LM_BAD)
def test_lm_config_refuses(name, bad, allowed):
    assert message(LMConfig, **{name: bad}) == (
        f"LMConfig: argument '{name}' must be {allowed}; got {bad!r}"
    )


CLS_BAD = [
    ("maxlen", 0, "a positive int or None"),
    ("epochs", 0, "a positive int"),
    ("test_fraction", 1.0, "in (0, 1)"),
    ("dropout", 1.0, "in [0, 1)"),
    ("max_vocab", 0, "an int >= 3"),
    ("min_freq", 0, "a positive int"),
]


@pytest.mark.parametrize("name, bad, allowed", CLS_BAD)
def test_classify_config_refuses(name, bad, allowed):
    assert message(ClassifyConfig, **{name: bad}) == (
        f"ClassifyConfig: argument '{name}' must be {allowed}; got {bad!r}"
    )


def test_configs_accept_their_edges():
    LMConfig(dropout=0.0, lr_decay=1.0, patience=0, decay_after=0, clipnorm=None, max_vocab=3)
    ClassifyConfig(patience=0, clipnorm=None, maxlen=1, dropout=0.0)


def test_evaluate_text_refuses_zero_instead_of_falling_back():
    vocab = Vocabulary.build("abc ", "char")
    model = build_language_model(len(vocab), 2, 2, 1)
    model.metadata = {"app": "text", "vocabulary": vocab.to_dict(), "settings": {"seq_len": 5}}
    for arg in ("seq_len", "batch_size"):
        assert message(evaluate_text, model, "abc abc abc", **{arg: 0}) == (
            f"stream_loss: argument '{arg}' must be a positive int; got 0"
        )
    assert evaluate_text(model, "abc abc abc", seq_len=3)["tokens"] > 0
