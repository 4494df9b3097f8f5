"""``keras.utils`` as LSTM tutorials use it: ``to_categorical``, ``pad_sequences``,
``set_random_seed``, and a ``get_file`` that explains why lstmkit never downloads.

Keras' semantics and defaults, NumPy only. Where Keras silently does something wrong with bad
input, these raise a ``ValueError`` instead (each case is named in the function's docstring).
"""

from __future__ import annotations

import random as _py_random

import numpy as np

from . import random as _lstmkit_random

__all__ = ["get_file", "pad_sequences", "set_random_seed", "to_categorical"]

_MAX_ELEMENTS = 2**31  # a bound checked before allocating: beyond it a typo, not a data set


def to_categorical(x, num_classes=None):
    """One-hot encode integer class ids: ``x`` of shape ``S`` -> float64 array ``S + (C,)``.

    As Keras: a trailing axis of size 1 is dropped first (``(n, 1)`` -> ``(n, C)``), and
    ``num_classes`` None (or 0) means ``max(x) + 1``. Unlike Keras, ids that are negative (Keras
    wraps them to the last classes), not integers (Keras truncates 1.7 to 1), or ``>=
    num_classes`` raise a ``ValueError``.
    """
    ids = _class_ids(x)
    shape = ids.shape[:-1] if ids.ndim > 1 and ids.shape[-1] == 1 else ids.shape
    ids = ids.reshape(-1)
    if not num_classes:
        if ids.size == 0:
            raise ValueError(
                "to_categorical: argument 'num_classes' is needed for an empty 'x' (it is "
                "otherwise max(x) + 1); got None"
            )
        num_classes = int(ids.max()) + 1
    num_classes = _count("to_categorical", "num_classes", num_classes)
    if ids.size and ids.max() >= num_classes:
        raise ValueError(
            f"to_categorical: argument 'x' must hold class ids in [0, {num_classes}) for "
            f"num_classes={num_classes}; got a maximum of {ids.max()}"
        )
    _check_size("to_categorical", ids.size * num_classes)
    categorical = np.zeros((ids.size, num_classes))
    categorical[np.arange(ids.size), ids] = 1
    return categorical.reshape(shape + (num_classes,))


def _class_ids(x):
    a = np.asarray(x)
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.integer)
        or np.issubdtype(a.dtype, np.floating)
        or np.issubdtype(a.dtype, np.bool_)
    ):
        raise ValueError(
            f"to_categorical: argument 'x' must hold integer class ids; got dtype {a.dtype}"
        )
    with np.errstate(invalid="ignore"):
        ids = a.astype(np.int64)
    bad = (ids != a) | (ids < 0)
    if np.any(bad):
        raise ValueError(
            "to_categorical: argument 'x' must hold integer class ids >= 0; got "
            f"{a[bad].reshape(-1)[0].item()!r}"
        )
    return ids


def _count(owner, arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{owner}: argument '{arg}' must be an int >= 0; got {value!r}")
    return int(value)


def _check_size(owner, n):
    if n > _MAX_ELEMENTS:
        raise ValueError(
            f"{owner}: the result would hold {n} elements, more than {_MAX_ELEMENTS}; check "
            "the arguments"
        )


def pad_sequences(
    sequences,
    maxlen=None,
    dtype="int32",
    padding="pre",
    truncating="pre",
    value=0.0,
):
    """Pad (and cut) a list of sequences to one ``(len(sequences), maxlen) + item_shape`` array.

    Keras' defaults and semantics: pad at the front (``padding="pre"``) with ``value``, cut
    the front of longer sequences (``truncating="pre"`` keeps the LAST ``maxlen`` items),
    ``maxlen=None`` is the longest length, ``dtype="int32"`` (floats are truncated to ints, as in
    Keras: pass ``dtype="float32"`` for float sequences), empty sequences become all padding,
    items may be arrays of one shape (taken from the first non-empty sequence), and strings
    need ``dtype=object`` (or a NumPy string dtype). Unlike Keras, a bad ``padding`` or
    ``truncating`` is refused before any work, and ``maxlen=0`` gives an empty second axis
    (Keras' ``s[-0:]`` keeps the whole sequence and fails).
    """
    owner = "pad_sequences"
    if padding not in ("pre", "post"):
        raise ValueError(f"{owner}: argument 'padding' must be 'pre' or 'post'; got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(
            f"{owner}: argument 'truncating' must be 'pre' or 'post'; got {truncating!r}"
        )
    lengths, item_shape = _lengths_and_item_shape(sequences)
    if maxlen is None:
        if not lengths:
            raise ValueError(f"{owner}: argument 'maxlen' is needed when 'sequences' is empty")
        maxlen = max(lengths)
    maxlen = _count(owner, "maxlen", maxlen)
    _check_value_dtype(value, dtype)
    _check_size(owner, len(lengths) * maxlen * int(np.prod(item_shape, dtype=np.int64)))
    x = np.full((len(lengths), maxlen) + item_shape, value, dtype=dtype)
    if maxlen == 0:
        return x
    for i, s in enumerate(sequences):
        if lengths[i]:
            _place(x, i, s, maxlen, dtype, padding, truncating, item_shape)
    return x


def _lengths_and_item_shape(sequences):
    if not hasattr(sequences, "__len__"):
        raise ValueError(
            f"pad_sequences: argument 'sequences' must be a list of sequences; got "
            f"{type(sequences).__name__}"
        )
    lengths, item_shape = [], None
    for i, s in enumerate(sequences):
        try:
            n = len(s)
        except TypeError:
            raise ValueError(
                f"pad_sequences: argument 'sequences' must be a list of sequences; item {i} is "
                f"{type(s).__name__} {s!r}"
            ) from None
        lengths.append(n)
        if item_shape is None and n:
            item_shape = np.asarray(s).shape[1:]  # as Keras: from the first non-empty one
    return lengths, item_shape or ()


def _check_value_dtype(value, dtype):
    is_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(
            f"pad_sequences: argument 'value' {value!r} is a string but 'dtype' is {dtype!r}; "
            "use dtype=object for sequences of strings"
        )


def _place(x, i, s, maxlen, dtype, padding, truncating, item_shape):
    kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
    kept = np.asarray(kept, dtype=dtype)
    if kept.shape[1:] != item_shape:
        raise ValueError(
            f"pad_sequences: sequence {i} has items of shape {kept.shape[1:]}; expected "
            f"{item_shape} (the shape in the first non-empty sequence)"
        )
    if padding == "post":
        x[i, : len(kept)] = kept
    else:
        x[i, -len(kept) :] = kept


def set_random_seed(seed):
    """Seed everything random, as ``keras.utils.set_random_seed`` does: Python's ``random``,
    NumPy's global ``np.random`` (so data a tutorial draws from it repeats) and lstmkit's own
    generator (initialisers, dropout, shuffling: ``lstmkit.set_random_seed``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(
            f"set_random_seed: argument 'seed' must be an int in [0, 2**32); got {seed!r}"
        )
    _py_random.seed(int(seed))
    np.random.seed(int(seed))
    _lstmkit_random.set_random_seed(int(seed))


def get_file(fname=None, origin=None, **kwargs):
    """Not available: lstmkit never downloads. The data the examples use are already on disk."""
    raise RuntimeError(
        f"lstmkit.utils.get_file: lstmkit never downloads (asked for fname={fname!r}, "
        f"origin={origin!r}). Use a local file: the data sets of the examples are in "
        "../shared/data next to the checkout (forecasting, japanese_vowels, sentiment, "
        "shakespeare, translation)"
    )
