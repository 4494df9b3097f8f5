"""lstmkit.utils against keras.utils (Keras 3, torch backend) on random inputs.

- ``pad_sequences``: hundreds of random lists (empty sequences included, lengths 0-12), every
  padding x truncating combination, ``maxlen`` None / smaller / equal / larger, several ``value``
  and ``dtype`` (ints, floats with the default int32, object and NumPy string dtypes for
  strings), sequences of vectors, a 2-D array as input: the arrays and dtypes are identical.
- ``to_categorical``: random ids of shapes (), (n,), (n, 1), (a, b), (a, b, 1), lists, with and
  without ``num_classes``: identical arrays and dtype.
- ``set_random_seed``: Python's ``random`` and ``np.random`` give what they give after Keras'
  ``set_random_seed``; lstmkit's own generator (the weights of a new model) repeats.
- The cases where Keras silently misbehaves are errors here, checked by message.
"""

from __future__ import annotations

import os
import random
import zlib

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest

from lstmkit import utils
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"


def _random_sequences(rng, n, item_shape=(), kind="int"):
    out = []
    for _ in range(n):
        length = int(rng.integers(0, 13)) if rng.random() > 0.15 else 0
        if kind == "int":
            out.append([int(v) for v in rng.integers(1, 50, size=length)])
        elif kind == "float":
            out.append(list(rng.normal(size=length) * 3))
        else:  # arrays of items
            out.append(rng.normal(size=(length, *item_shape)))
    return out


def _same(ours, theirs):
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


MAXLENS = [None, 0.5, 1.0, 1.5]  # None, or a fraction of the longest length


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen_kind", MAXLENS, ids=["None", "shorter", "longest", "longer"])
@pytest.mark.parametrize(
    "kind, dtype, value",
    [
        ("int", "int32", 0.0),  # Keras' defaults
        ("int", "int64", -1),
        ("float", "int32", 0.0),  # floats truncated to ints, as Keras does
        ("float", "float32", 0.5),
        ("float", "float64", np.nan),
        ("array", "float32", -2.0),
    ],
)
def test_pad_sequences_equals_keras(padding, truncating, maxlen_kind, kind, dtype, value):
    rng = np.random.default_rng(zlib.crc32(repr((padding, truncating, maxlen_kind, kind)).encode()))
    for trial in range(12):
        sequences = _random_sequences(rng, int(rng.integers(1, 7)), (2,), kind)
        longest = max(len(s) for s in sequences)
        if maxlen_kind is None:
            maxlen = None
        else:
            maxlen = max(1, round(longest * maxlen_kind))
        if maxlen is None and longest == 0:
            maxlen = 3  # all empty: Keras would take maxlen 0 and fail on the empty item shape
        kwargs = {"maxlen": maxlen, "dtype": dtype, "padding": padding, "truncating": truncating}
        kwargs["value"] = value
        ours = utils.pad_sequences(sequences, **kwargs)
        theirs = keras.utils.pad_sequences(sequences, **kwargs)
        _same(ours, theirs)


def test_pad_sequences_defaults_pad_and_cut_at_the_front_and_return_one_array():
    seqs = [[1, 2, 3, 4], [5], []]
    expected = np.array([[2, 3, 4], [0, 0, 5], [0, 0, 0]], dtype=np.int32)
    _same(utils.pad_sequences(seqs, maxlen=3), expected)
    _same(keras.utils.pad_sequences(seqs, maxlen=3), expected)
    _same(utils.pad_sequences(seqs), keras.utils.pad_sequences(seqs))
    matrix = np.arange(12).reshape(3, 4)  # a 2-D array is a list of sequences too
    _same(
        utils.pad_sequences(matrix, maxlen=6, padding="post"),
        keras.utils.pad_sequences(matrix, maxlen=6, padding="post"),
    )


@pytest.mark.parametrize("dtype", [object, "<U5", np.str_])
def test_pad_sequences_of_strings_equals_keras(dtype):
    seqs = [["the", "cat", "sat"], ["a"], [], ["one", "two", "three", "four"]]
    for padding in ("pre", "post"):
        kwargs = {"maxlen": 3, "dtype": dtype, "value": "<pad>", "padding": padding}
        _same(utils.pad_sequences(seqs, **kwargs), keras.utils.pad_sequences(seqs, **kwargs))


def test_pad_sequences_errors_name_the_argument():
    with pytest.raises(ValueError, match="'padding' must be 'pre' or 'post'; got 'both'"):
        utils.pad_sequences([[1]], padding="both")
    with pytest.raises(ValueError, match="'truncating' must be 'pre' or 'post'; got 'mid'"):
        utils.pad_sequences([[]], truncating="mid")  # refused even with nothing to cut
    with pytest.raises(ValueError, match="item 1 is int 5"):
        utils.pad_sequences([[1], 5])
    with pytest.raises(ValueError, match="must be a list of sequences; got generator"):
        utils.pad_sequences(s for s in [[1]])
    with pytest.raises(ValueError, match="'value' '<pad>' is a string but 'dtype' is 'int32'"):
        utils.pad_sequences([["a"]], value="<pad>")
    with pytest.raises(ValueError, match=r"sequence 1 has items of shape \(3,\); expected \(2,\)"):
        utils.pad_sequences([np.zeros((2, 2)), np.zeros((1, 3))], dtype="float32")
    with pytest.raises(ValueError, match="'maxlen' must be an int >= 0; got -1"):
        utils.pad_sequences([[1]], maxlen=-1)
    with pytest.raises(ValueError, match="'maxlen' is needed when 'sequences' is empty"):
        utils.pad_sequences([])
    with pytest.raises(ValueError, match="would hold 30000000000 elements"):
        utils.pad_sequences([[1]] * 3, maxlen=10**10)
    assert utils.pad_sequences([], maxlen=4).shape == (0, 4)  # Keras: the same
    assert keras.utils.pad_sequences([], maxlen=4).shape == (0, 4)
    assert utils.pad_sequences([[1, 2], [3]], maxlen=0).shape == (2, 0)


ID_SHAPES = [(), (9,), (9, 1), (4, 3), (4, 3, 1), (2, 3, 4)]


@pytest.mark.parametrize("shape", ID_SHAPES)
@pytest.mark.parametrize("num_classes", [None, 7, 12])
@pytest.mark.parametrize("as_list", [False, True])
def test_to_categorical_equals_keras(shape, num_classes, as_list):
    rng = np.random.default_rng(len(shape))
    for _ in range(10):
        ids = rng.integers(0, 7, size=shape)
        x = ids.tolist() if as_list else ids
        ours = utils.to_categorical(x, num_classes)
        theirs = keras.utils.to_categorical(x, num_classes)
        _same(ours, theirs)
    floats = rng.integers(0, 7, size=(6,)).astype(np.float32)  # integral floats are fine
    _same(utils.to_categorical(floats), keras.utils.to_categorical(floats))


def test_to_categorical_errors_where_keras_is_silent():
    keras_wraps = keras.utils.to_categorical([-1, 1], 3)  # -1 becomes the last class in Keras
    assert keras_wraps[0, 2] == 1
    with pytest.raises(ValueError, match="class ids >= 0; got -1"):
        utils.to_categorical([-1, 1], 3)
    assert keras.utils.to_categorical([1.7], 3)[0, 1] == 1  # Keras truncates 1.7 to 1
    with pytest.raises(ValueError, match="class ids >= 0; got 1.7"):
        utils.to_categorical([1.7], 3)
    with pytest.raises(
        ValueError, match=r"class ids in \[0, 3\) for num_classes=3; got a maximum of 3"
    ):
        utils.to_categorical([0, 3], 3)
    with pytest.raises(ValueError, match="'num_classes' is needed for an empty 'x'"):
        utils.to_categorical([])
    with pytest.raises(ValueError, match="must hold integer class ids; got dtype <U1"):
        utils.to_categorical(["a"])
    with pytest.raises(ValueError, match="'num_classes' must be an int >= 0; got 2.5"):
        utils.to_categorical([1], 2.5)
    assert utils.to_categorical([], 4).shape == (0, 4)


def test_set_random_seed_seeds_python_numpy_and_lstmkit_as_keras_does():
    keras.utils.set_random_seed(123)
    theirs = (random.random(), np.random.rand(3))
    utils.set_random_seed(123)
    ours = (random.random(), np.random.rand(3))
    assert ours[0] == theirs[0]
    np.testing.assert_array_equal(ours[1], theirs[1])

    def fresh_weights():
        utils.set_random_seed(7)
        model = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])
        model.build()
        return model.get_weights()

    first, second = fresh_weights(), fresh_weights()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    utils.set_random_seed(8)
    other = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])
    other.build()
    assert not np.array_equal(other.get_weights()[0], first[0])
    with pytest.raises(ValueError, match=r"'seed' must be an int in \[0, 2\*\*32\); got -1"):
        utils.set_random_seed(-1)


def test_get_file_explains_that_lstmkit_never_downloads():
    with pytest.raises(RuntimeError, match=r"never downloads.*'shakespeare.txt'.*\.\./shared/data"):
        utils.get_file("shakespeare.txt", origin="https://example.org/shakespeare.txt")
