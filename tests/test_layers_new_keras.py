"""Keras 3 (torch backend) is the witness for the forward semantics of the layers added for the
Keras tutorials: Activation, Dense with every activation, RepeatVector, Flatten, Reshape, Permute,
the merging layers, LayerNormalization, BatchNormalization, Conv1D, the 1-D poolings,
TimeDistributed and Lambda.

Each lstmkit layer is built, its parameters randomised (non-zero biases/betas, moving variances
away from 1), copied into the Keras layer with ``set_weights(get_weights())`` (the layouts are
the contract), and both run on the same input in float32 and float64. Output masks are compared
too wherever Keras propagates one (masks attached the way Keras attaches them, on the tensors).
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch
from keras.src.backend import get_keras_mask, set_keras_mask

import lstmkit.layers as L
from lstmkit.ops.activations import ACTIVATIONS

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning",
    "ignore:Layer .* does not support masking:UserWarning",
)
K = keras.layers
# Keras 3 on torch computes float64 products and means in float32 (keras.src.backend.common.
# dtypes.BIT64_TO_BIT32_DTYPE: "aligned with JAX's default"), so float64 agrees to float32
# rounding only; the float64 precision itself is witnessed by PyTorch in test_layers_new_grads.
TOL = {"float32": 2e-5, "float64": 2e-6}
DTYPES = ("float32", "float64")
B, T, D = 3, 7, 4
MASK = np.array(
    [[1, 1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1]], dtype=bool
)  # (B, T): post-padding, holes, none


def randomize(layer, rng):
    for role, p in layer.params.items():
        if "variance" in role:
            p[...] = rng.uniform(0.5, 2.0, p.shape)  # a variance is positive
        else:
            p[...] = 0.5 * rng.standard_normal(p.shape)


def data(shape, dtype, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def keras_call(layer, xs, masks=None, training=False):
    """Run a Keras layer eagerly on arrays (a list for merging layers) with masks attached to
    the tensors as Keras attaches them; returns ``(output, output mask or None)``."""
    multi = isinstance(xs, list)
    ts = [torch.tensor(x) for x in (xs if multi else [xs])]
    for t, m in zip(ts, masks if multi else [masks]):
        if m is not None:
            set_keras_mask(t, torch.tensor(m))
    out = layer(ts if multi else ts[0], training=training)
    mask = get_keras_mask(out)
    return keras.ops.convert_to_numpy(out), None if mask is None else mask.numpy()


def compare(ours, theirs, dtype, what="output"):
    assert ours.shape == theirs.shape, f"{what}: {ours.shape} vs Keras {theirs.shape}"
    assert ours.dtype == np.dtype(dtype), f"{what}: dtype {ours.dtype}, expected {dtype}"
    np.testing.assert_allclose(ours, theirs, rtol=TOL[dtype], atol=TOL[dtype], err_msg=what)


def compare_masks(ours, theirs):
    if theirs is None:
        assert ours is None, "Keras emits no mask here; lstmkit does"
    else:
        assert ours is not None, "Keras emits a mask here; lstmkit does not"
        np.testing.assert_array_equal(np.asarray(ours, bool), theirs)


def run_pair(ours, theirs, x, dtype, mask=None, training=False, seed=1):
    """Build both, copy randomised weights ours -> Keras, compare outputs and output masks."""
    ours.build(np.shape(x)[1:], np.random.default_rng(seed), dtype)
    randomize(ours, np.random.default_rng(seed))
    keras_call(theirs, x, mask)  # builds the Keras layer
    theirs.set_weights(ours.get_weights())
    y, cache = ours.forward(x, training=training, mask=mask)
    ky, kmask = keras_call(theirs, x, mask, training=training)
    compare(y, ky, dtype)
    compare_masks(ours.compute_mask(x, mask), kmask)
    return ours, cache, theirs


# -- Dense and Activation with every activation ---------------------------------------------------
ACTS = sorted(ACTIVATIONS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_dense_every_activation(act, dtype):
    x = data((B, T, D), dtype, scale=2.0)
    run_pair(L.Dense(5, activation=act), K.Dense(5, activation=act, dtype=dtype), x, dtype, MASK)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_activation_layer_every_activation(act, dtype):
    x = data((B, T, D), dtype, scale=3.0)
    run_pair(L.Activation(act), K.Activation(act, dtype=dtype), x, dtype, MASK)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_without_bias(dtype):
    x = data((B, D), dtype)
    kw = {"use_bias": False, "activation": "selu"}
    run_pair(L.Dense(3, **kw), K.Dense(3, **kw, dtype=dtype), x, dtype)


# -- reshaping -------------------------------------------------------------------------------------
RESHAPING = {
    "repeat_vector": (lambda: L.RepeatVector(4), lambda d: K.RepeatVector(4, dtype=d), (B, D)),
    "flatten": (L.Flatten, lambda d: K.Flatten(dtype=d), (B, T, D)),
    "flatten_rank4": (L.Flatten, lambda d: K.Flatten(dtype=d), (B, 2, 3, D)),
    "flatten_channels_first": (
        lambda: L.Flatten(data_format="channels_first"),
        lambda d: K.Flatten(data_format="channels_first", dtype=d),
        (B, 2, 3, D),
    ),
    "reshape": (lambda: L.Reshape((2, -1)), lambda d: K.Reshape((2, -1), dtype=d), (B, 6, D)),
    "reshape_up": (
        lambda: L.Reshape((T, 2, 2)),
        lambda d: K.Reshape((T, 2, 2), dtype=d),
        (B, T, D),
    ),
    "permute": (lambda: L.Permute((2, 1)), lambda d: K.Permute((2, 1), dtype=d), (B, T, D)),
    "permute_rank4": (
        lambda: L.Permute((3, 1, 2)),
        lambda d: K.Permute((3, 1, 2), dtype=d),
        (B, 2, 3, D),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(RESHAPING))
def test_reshaping(case, dtype):
    ours, theirs, shape = RESHAPING[case]
    run_pair(ours(), theirs(dtype), data(shape, dtype), dtype)


# -- normalization ---------------------------------------------------------------------------------
NORMS = {
    "layer_norm": ({}, (B, T, D)),
    "layer_norm_2d": ({"epsilon": 1e-5}, (B, D)),
    "layer_norm_axes": ({"axis": [1, 2]}, (B, T, D)),
    "layer_norm_no_center": ({"center": False}, (B, T, D)),
    "layer_norm_no_scale": ({"scale": False}, (B, T, D)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(NORMS))
def test_layer_normalization(case, dtype):
    kw, shape = NORMS[case]
    x = data(shape, dtype, scale=3.0) + 1.5
    mask = MASK if len(shape) == 3 else None
    run_pair(L.LayerNormalization(**kw), K.LayerNormalization(**kw, dtype=dtype), x, dtype, mask)


BATCH_NORMS = {
    "default": ({}, (B, T, D)),
    "2d": ({"momentum": 0.9, "epsilon": 1e-4}, (B, D)),
    "no_center": ({"center": False}, (B, T, D)),
    "no_scale": ({"scale": False}, (B, T, D)),
}


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(BATCH_NORMS))
def test_batch_normalization(case, dtype, training):
    """Inference uses the moving statistics; training the batch's, and the moving statistics
    Keras assigns inside ``call`` equal what lstmkit returns as ``state_updates``."""
    kw, shape = BATCH_NORMS[case]
    x = data(shape, dtype, scale=2.0) + 0.7
    ours, cache, theirs = run_pair(
        L.BatchNormalization(**kw), K.BatchNormalization(**kw, dtype=dtype), x, dtype,
        training=training,
    )  # fmt: skip
    updates = ours.state_updates(cache)
    if not training:
        assert updates == {}
        return
    for role in ("moving_mean", "moving_variance"):
        theirs_v = keras.ops.convert_to_numpy(getattr(theirs, role))
        compare(updates[role], theirs_v, dtype, role)
        assert not np.allclose(updates[role], ours.params[role]), f"{role} did not move"


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_normalization_masked_statistics(dtype):
    """With a mask, the training statistics come from the unmasked steps only (Keras)."""
    x = data((B, T, D), dtype, scale=2.0) + 0.7
    ours, cache, theirs = run_pair(
        L.BatchNormalization(), K.BatchNormalization(dtype=dtype), x, dtype, MASK, True
    )
    updates = ours.state_updates(cache)
    for role in ("moving_mean", "moving_variance"):
        compare(updates[role], keras.ops.convert_to_numpy(getattr(theirs, role)), dtype, role)


def test_batch_normalization_frozen_layer_uses_moving_statistics():
    """Keras 3: a non-trainable BatchNormalization runs in inference mode even in training."""
    x = data((B, T, D), "float64")
    ours = L.BatchNormalization(trainable=False)
    theirs = K.BatchNormalization(dtype="float64")
    theirs.trainable = False
    _, cache, _ = run_pair(ours, theirs, x, "float64", training=True)
    assert ours.state_updates(cache) == {}


# -- Conv1D and pooling ----------------------------------------------------------------------------
CONVS = {
    "valid": {"kernel_size": 3},
    "same_odd": {"kernel_size": 3, "padding": "same"},
    "same_even": {"kernel_size": 4, "padding": "same"},  # asymmetric padding: 1 left, 2 right
    "same_stride2": {"kernel_size": 3, "padding": "same", "strides": 2},
    "valid_stride3": {"kernel_size": 2, "strides": 3},
    "causal_dilated": {"kernel_size": 3, "padding": "causal", "dilation_rate": 2},
    "same_dilated": {"kernel_size": 2, "padding": "same", "dilation_rate": 3},
    "relu_no_bias": {"kernel_size": 1, "activation": "relu", "use_bias": False},
    "gelu": {"kernel_size": 2, "activation": "gelu"},
    "channels_first": {"kernel_size": 2, "data_format": "channels_first"},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv1d(case, dtype):
    kw = CONVS[case]
    x = data((B, T, D), dtype)
    run_pair(L.Conv1D(5, **kw), K.Conv1D(5, **kw, dtype=dtype), x, dtype)


POOLS = {
    "max_valid": (L.MaxPooling1D, K.MaxPooling1D, {}),
    "max_stride1_same": (L.MaxPooling1D, K.MaxPooling1D, {"pool_size": 2, "strides": 1, "padding": "same"}),
    "max_3_2_same": (L.MaxPooling1D, K.MaxPooling1D, {"pool_size": 3, "strides": 2, "padding": "same"}),
    "max_4_same": (L.MaxPooling1D, K.MaxPooling1D, {"pool_size": 4, "padding": "same"}),
    "max_channels_first": (L.MaxPooling1D, K.MaxPooling1D, {"data_format": "channels_first"}),
    "gap": (L.GlobalAveragePooling1D, K.GlobalAveragePooling1D, {}),
    "gap_keepdims": (L.GlobalAveragePooling1D, K.GlobalAveragePooling1D, {"keepdims": True}),
    "gap_channels_first": (
        L.GlobalAveragePooling1D, K.GlobalAveragePooling1D, {"data_format": "channels_first"}
    ),
    "gmp": (L.GlobalMaxPooling1D, K.GlobalMaxPooling1D, {}),
    "gmp_keepdims": (L.GlobalMaxPooling1D, K.GlobalMaxPooling1D, {"keepdims": True}),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(POOLS))
def test_pooling(case, dtype):
    ours, theirs, kw = POOLS[case]
    x = data((B, T, D), dtype) - 2.0  # all negative: zero padding would win a max
    run_pair(ours(**kw), theirs(**kw, dtype=dtype), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_average_pooling_mask(dtype):
    x = data((B, T, D), dtype)
    run_pair(L.GlobalAveragePooling1D(), K.GlobalAveragePooling1D(dtype=dtype), x, dtype, MASK)


def test_global_average_pooling_fully_masked_sequence_gives_zeros():
    """Documented difference: Keras divides 0 by 0 (NaN); lstmkit gives 0."""
    mask = MASK.copy()
    mask[1] = False
    y = L.GlobalAveragePooling1D()(data((B, T, D), "float64"), mask=mask)
    assert np.isfinite(y).all() and np.all(y[1] == 0)


# -- TimeDistributed -------------------------------------------------------------------------------
WRAPPED = {
    "dense": (lambda: L.Dense(3, activation="tanh"), lambda d: K.Dense(3, activation="tanh", dtype=d), (B, T, D)),
    "dense_softmax": (lambda: L.Dense(3, activation="softmax"), lambda d: K.Dense(3, activation="softmax", dtype=d), (B, T, D)),
    "layer_norm": (L.LayerNormalization, lambda d: K.LayerNormalization(dtype=d), (B, T, D)),
    "batch_norm_inference": (L.BatchNormalization, lambda d: K.BatchNormalization(dtype=d), (B, T, D)),
    "conv1d": (lambda: L.Conv1D(2, 2), lambda d: K.Conv1D(2, 2, dtype=d), (B, T, 5, D)),
    "flatten": (L.Flatten, lambda d: K.Flatten(dtype=d), (B, T, 2, D)),
}  # fmt: skip


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(WRAPPED))
def test_time_distributed(case, dtype, masked):
    inner, kinner, shape = WRAPPED[case]
    x = data(shape, dtype)
    ours = L.TimeDistributed(inner())
    theirs = K.TimeDistributed(kinner(dtype), dtype=dtype)
    run_pair(ours, theirs, x, dtype, MASK if masked else None)
    assert ours.weight_names == ours.layer.weight_names  # the inner layer's roles


# -- Lambda ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_lambda(dtype):
    x = data((B, T, D), dtype)
    fn = lambda t: t * t - 2 * t  # NumPy and Keras tensors alike
    run_pair(L.Lambda(fn), K.Lambda(fn, dtype=dtype), x, dtype)


# -- merging ---------------------------------------------------------------------------------------
MERGES = {
    "add": (L.Add, K.Add, {}),
    "subtract": (L.Subtract, K.Subtract, {}),
    "multiply": (L.Multiply, K.Multiply, {}),
    "average": (L.Average, K.Average, {}),
    "maximum": (L.Maximum, K.Maximum, {}),
    "minimum": (L.Minimum, K.Minimum, {}),
    "concatenate": (L.Concatenate, K.Concatenate, {}),
    "concatenate_time": (L.Concatenate, K.Concatenate, {"axis": 1}),
}
# which inputs carry a mask: none, all, only some
MASKINGS = {
    "none": (None, None, None),
    "all": (MASK, ~MASK, MASK[::-1].copy()),
    "some": (MASK, None, ~MASK),
}


def merge_inputs(n, dtype, shapes=None):
    shapes = shapes or [(B, T, D)] * n
    return [data(s, dtype, seed=10 + i) for i, s in enumerate(shapes)]


def run_merge(ours, theirs, xs, dtype, masks=None):
    masks = masks or [None] * len(xs)
    y, cache = ours.forward(xs, mask=masks if any(m is not None for m in masks) else None)
    ky, kmask = keras_call(theirs, xs, masks)
    compare(y, ky, dtype)
    compare_masks(ours.compute_mask(xs, masks), kmask)
    return y, cache


@pytest.mark.parametrize("masking", sorted(MASKINGS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(MERGES))
def test_merging(case, dtype, masking):
    ours, theirs, kw = MERGES[case]
    n = 2 if case == "subtract" else 3
    xs = merge_inputs(n, dtype)
    run_merge(ours(**kw), theirs(**kw, dtype=dtype), xs, dtype, list(MASKINGS[masking][:n]))


@pytest.mark.parametrize("case", ["add", "multiply", "maximum", "average"])
def test_merging_broadcasts_lower_rank_inputs(case):
    """Keras inserts axes after the batch axis for lower-rank inputs, then broadcasts."""
    ours, theirs, _ = MERGES[case]
    xs = merge_inputs(3, "float64", [(B, T, D), (B, D), (B, 1, D)])
    run_merge(ours(), theirs(dtype="float64"), xs, "float64")


def test_concatenate_inputs_of_different_widths():
    xs = merge_inputs(2, "float64", [(B, T, 2), (B, T, 5)])
    run_merge(L.Concatenate(), K.Concatenate(dtype="float64"), xs, "float64", [MASK, None])


DOTS = {
    "vectors": (1, [(B, D), (B, D)]),
    "vectors_normalized": ((1, 1), [(B, D), (B, D)]),
    "attention_scores": ((2, 2), [(B, T, D), (B, 5, D)]),  # (B, T, 5)
    "context": ((2, 1), [(B, T, 5), (B, 5, D)]),  # (B, T, D)
    "matrix_vector": ((2, 1), [(B, T, D), (B, D)]),
    "vector_matrix": (-1, [(B, D), (B, T, D)]),
    "time_axis": ((1, 1), [(B, T, D), (B, T, 2)]),
}


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(DOTS))
def test_dot(case, dtype, normalize):
    axes, shapes = DOTS[case]
    xs = merge_inputs(2, dtype, shapes)
    kw = {"axes": axes, "normalize": normalize}
    y, _ = run_merge(L.Dot(**kw), K.Dot(**kw, dtype=dtype), xs, dtype)
    assert L.Dot(**kw).compute_output_shape([s[1:] for s in shapes]) == y.shape[1:]


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "average", "maximum", "minimum"])
def test_functional_forms(name):
    xs = merge_inputs(2, "float64")
    ours, theirs = getattr(L, name), getattr(keras.layers, name)
    theirs_y = keras.ops.convert_to_numpy(theirs([torch.tensor(x) for x in xs]))
    compare(ours(xs), theirs_y, "float64")


def test_functional_concatenate_and_dot():
    xs = merge_inputs(2, "float64", [(B, T, D), (B, T, D)])
    t = [torch.tensor(x) for x in xs]
    compare(
        L.concatenate(xs, axis=1), keras.ops.convert_to_numpy(K.concatenate(t, axis=1)), "float64"
    )
    compare(L.dot(xs, axes=2), keras.ops.convert_to_numpy(K.dot(t, axes=2)), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_distributed_batch_norm_training_folds_time_into_the_batch(dtype):
    """lstmkit's documented TimeDistributed semantics (Keras 3 instead calls the inner layer once
    per step): the training statistics of an inner BatchNormalization are those of Keras'
    BatchNormalization on the ``(B * T, D)`` rows, with the mask folded the same way."""
    x = data((B, T, D), dtype, scale=2.0) + 0.5
    ours = L.TimeDistributed(L.BatchNormalization())
    ours.build(x.shape[1:], None, dtype)
    randomize(ours, np.random.default_rng(3))
    theirs = K.BatchNormalization(dtype=dtype)
    folded, fmask = x.reshape(B * T, D), MASK.reshape(B * T)
    keras_call(theirs, folded, fmask)
    theirs.set_weights(ours.get_weights())
    y, cache = ours.forward(x, training=True, mask=MASK)
    ky, _ = keras_call(theirs, folded, fmask, training=True)
    compare(y.reshape(B * T, D), ky, dtype)
    updates = ours.state_updates(cache)
    for role in ("moving_mean", "moving_variance"):
        compare(updates[role], keras.ops.convert_to_numpy(getattr(theirs, role)), dtype, role)
