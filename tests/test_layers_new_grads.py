"""Gradients of the layers added for the Keras tutorials, against two independent witnesses:

- central finite differences in float64 for every layer (``dL/dx`` for every input and
  ``dL/dp`` for every parameter, ``L = sum(dy * y)`` with a random ``dy``), relative error
  ``max|analytic - numeric| / max|numeric| <= 1e-6``;
- PyTorch autograd for Conv1D (``F.conv1d``), LayerNormalization (``F.layer_norm``) and
  BatchNormalization in training mode (``F.batch_norm``), with the same weights.

Training-mode forwards are pure (BatchNormalization returns its moving statistics in the cache),
which is what lets finite differences call them again and again.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lstmkit.layers as L
from lstmkit.ops.activations import ACTIVATIONS

B, T, D = 2, 5, 3
MASK = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)
TOL = 1e-6


def randomize(layer, rng):
    for role, p in layer.params.items():
        p[...] = (
            rng.uniform(0.5, 2.0, p.shape) if "variance" in role else rng.normal(0, 0.7, p.shape)
        )


def data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def numeric_grads(loss, arrays, eps=1e-6):
    """Central differences of ``loss()`` with respect to each array (perturbed in place)."""
    out = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = loss()
            a[idx] = old - eps
            minus = loss()
            a[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


def assert_close(analytic, numeric, what):
    assert analytic.shape == numeric.shape, f"{what}: {analytic.shape} vs {numeric.shape}"
    err = np.abs(analytic - numeric).max() / max(np.abs(numeric).max(), 1e-8)
    assert err <= TOL, f"{what}: relative error {err:.2e}"


def check_layer(layer, xs, training=False, mask=None, seed=0):
    """Finite differences of every input and every trainable parameter of ``layer``."""
    multi = isinstance(xs, list)
    first = xs[0] if multi else xs
    if not layer.built:
        layer.build([x.shape[1:] for x in xs] if multi else first.shape[1:], None, "float64")
    randomize(layer, np.random.default_rng(seed))
    y, cache = layer.forward(xs, training=training, mask=mask)
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape)
    dx, grads = layer.backward(dy, cache)

    def loss():
        return float(np.sum(dy * layer.forward(xs, training=training, mask=mask)[0]))

    inputs = xs if multi else [xs]
    dxs = dx if multi else [dx]
    for i, (d, num) in enumerate(zip(dxs, numeric_grads(loss, inputs))):
        assert_close(d, num, f"dx[{i}]")
    roles = [r for r in layer.params if r not in layer.non_trainable_roles]
    assert sorted(grads) == sorted(roles), f"gradients for {sorted(grads)}, params {roles}"
    for role, num in zip(roles, numeric_grads(loss, [layer.params[r] for r in roles])):
        assert_close(grads[role], num, role)


# -- single-input layers ---------------------------------------------------------------------------
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_dense_every_activation(act):
    check_layer(L.Dense(4, activation=act), data((B, T, D), 1))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_layer(act):
    check_layer(L.Activation(act), 2 * data((B, T, D), 2))


SINGLE = {
    "dense_no_bias": (lambda: L.Dense(2, use_bias=False, activation="elu"), (B, D), {}),
    "repeat_vector": (lambda: L.RepeatVector(3), (B, D), {}),
    "flatten": (L.Flatten, (B, T, D), {}),
    "flatten_channels_first": (lambda: L.Flatten(data_format="channels_first"), (B, 2, 2, D), {}),
    "reshape": (lambda: L.Reshape((D, -1)), (B, T, D), {}),
    "permute": (lambda: L.Permute((2, 1)), (B, T, D), {}),
    "permute_rank4": (lambda: L.Permute((3, 1, 2)), (B, 2, 2, D), {}),
    "layer_norm": (L.LayerNormalization, (B, T, D), {}),
    "layer_norm_axes": (lambda: L.LayerNormalization(axis=[1, 2]), (B, T, D), {}),
    "layer_norm_bare": (lambda: L.LayerNormalization(center=False, scale=False), (B, D), {}),
    "batch_norm_inference": (L.BatchNormalization, (B, T, D), {}),
    "batch_norm_training": (L.BatchNormalization, (B, T, D), {"training": True}),
    "batch_norm_training_2d": (lambda: L.BatchNormalization(center=False), (4, D), {"training": True}),
    "batch_norm_training_masked": (L.BatchNormalization, (B, T, D), {"training": True, "mask": MASK}),
    "conv_valid": (lambda: L.Conv1D(2, 3), (B, T, D), {}),
    "conv_same_even": (lambda: L.Conv1D(2, 4, padding="same", activation="tanh"), (B, T, D), {}),
    "conv_same_stride": (lambda: L.Conv1D(2, 3, padding="same", strides=2), (B, T, D), {}),
    "conv_causal_dilated": (lambda: L.Conv1D(2, 2, padding="causal", dilation_rate=2), (B, T, D), {}),
    "conv_channels_first": (lambda: L.Conv1D(2, 2, data_format="channels_first", use_bias=False), (B, D, T), {}),
    "max_pool": (L.MaxPooling1D, (B, T, D), {}),
    "max_pool_same": (lambda: L.MaxPooling1D(3, strides=2, padding="same"), (B, T, D), {}),
    "max_pool_overlap": (lambda: L.MaxPooling1D(3, strides=1), (B, T, D), {}),
    "gap": (L.GlobalAveragePooling1D, (B, T, D), {}),
    "gap_masked": (lambda: L.GlobalAveragePooling1D(keepdims=True), (B, T, D), {"mask": MASK}),
    "gmp": (L.GlobalMaxPooling1D, (B, T, D), {}),
    "td_dense": (lambda: L.TimeDistributed(L.Dense(2, activation="softmax")), (B, T, D), {}),
    "td_batch_norm": (lambda: L.TimeDistributed(L.BatchNormalization()), (B, T, D), {"training": True}),
    "td_conv": (lambda: L.TimeDistributed(L.Conv1D(2, 2)), (B, 2, 4, D), {}),
    "lambda": (
        lambda: L.Lambda(lambda x: x[:, -1] ** 2, gradient=last_step_square_grad),
        (B, T, D),
        {},
    ),
}  # fmt: skip


def last_step_square_grad(x, y, dy):
    dx = np.zeros_like(x)
    dx[:, -1] = 2 * x[:, -1] * dy
    return dx


@pytest.mark.parametrize("case", sorted(SINGLE))
def test_single_input_layers(case):
    factory, shape, kw = SINGLE[case]
    check_layer(factory(), data(shape, 3), **kw)


def test_lambda_without_gradient_says_so_at_backward():
    layer = L.Lambda(np.tanh)
    y, cache = layer.forward(data((B, D), 0))
    np.testing.assert_array_equal(y, np.tanh(data((B, D), 0)))
    with pytest.raises(ValueError, match="no gradient was given.*gradient="):
        layer.backward(np.ones_like(y), cache)


def test_lambda_gradient_of_the_wrong_shape_is_rejected():
    layer = L.Lambda(np.tanh, gradient=lambda x, y, dy: dy[:, :1])
    y, cache = layer.forward(data((B, D), 0))
    with pytest.raises(ValueError, match="must have the input's shape"):
        layer.backward(np.ones_like(y), cache)


# -- multi-input layers ----------------------------------------------------------------------------
MULTI = {
    "add": (L.Add, [(B, T, D)] * 3, None),
    "add_broadcast": (L.Add, [(B, T, D), (B, D), (B, 1, D)], None),
    "subtract": (L.Subtract, [(B, T, D)] * 2, None),
    "multiply": (L.Multiply, [(B, T, D)] * 3, None),
    "multiply_masked": (L.Multiply, [(B, T, D)] * 3, [MASK, ~MASK, MASK]),
    "multiply_some_masked": (L.Multiply, [(B, T, D)] * 2, [MASK, None]),
    "multiply_broadcast": (L.Multiply, [(B, T, D), (B, D)], None),
    "average": (L.Average, [(B, T, D)] * 3, None),
    "maximum": (L.Maximum, [(B, T, D)] * 3, None),
    "maximum_masked": (L.Maximum, [(B, T, D)] * 3, [MASK, ~MASK, MASK]),
    "minimum": (L.Minimum, [(B, T, D)] * 2, None),
    "minimum_some_masked": (L.Minimum, [(B, T, D)] * 3, [None, MASK, ~MASK]),
    "concatenate": (L.Concatenate, [(B, T, 2), (B, T, D)], None),
    "concatenate_time": (lambda: L.Concatenate(axis=1), [(B, 2, D), (B, T, D)], None),
    "dot_vectors": (lambda: L.Dot(1), [(B, D), (B, D)], None),
    "dot_cosine": (lambda: L.Dot(1, normalize=True), [(B, D), (B, D)], None),
    "dot_scores": (lambda: L.Dot((2, 2)), [(B, T, D), (B, 4, D)], None),
    "dot_scores_normalized": (lambda: L.Dot((2, 2), normalize=True), [(B, T, D), (B, 4, D)], None),
    "dot_context": (lambda: L.Dot((2, 1)), [(B, T, 4), (B, 4, D)], None),
    "dot_time": (lambda: L.Dot((1, 1), normalize=True), [(B, T, D), (B, T, 2)], None),
}


@pytest.mark.parametrize("case", sorted(MULTI))
def test_multi_input_layers(case):
    factory, shapes, masks = MULTI[case]
    xs = [data(s, 10 + i) for i, s in enumerate(shapes)]
    check_layer(factory(), xs, mask=masks)


# -- PyTorch autograd ------------------------------------------------------------------------------
def torch_grads(fn, arrays, dy):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize(
    "case", ["conv_valid", "conv_same_even", "conv_causal_dilated", "conv_same_stride"]
)
def test_conv1d_against_torch(case):
    layer = SINGLE[case][0]()
    x = data((B, T, D), 4)
    layer.build(x.shape[1:], None, "float64")
    randomize(layer, np.random.default_rng(5))
    y, cache = layer.forward(x)
    dy = data(y.shape, 6)
    dx, grads = layer.backward(dy, cache)
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    span = (k - 1) * d + 1
    if layer.padding == "causal":
        pads = (span - 1, 0)
    elif layer.padding == "same":  # TensorFlow's rule, computed independently here
        total = max((-(-T // s) - 1) * s + span - T, 0)
        pads = (total // 2, total - total // 2)
    else:
        pads = (0, 0)

    def conv(x, w, b):  # torch is channels first with weight (filters, C, k)
        z = F.conv1d(F.pad(x.transpose(1, 2), pads), w.permute(2, 1, 0), b, stride=s, dilation=d)
        z = z.transpose(1, 2)
        return torch.tanh(z) if layer.activation == "tanh" else z

    ty, (tdx, tdw, tdb) = torch_grads(conv, [x, layer.params["kernel"], layer.params["bias"]], dy)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    for ours, theirs, what in [
        (dx, tdx, "x"),
        (grads["kernel"], tdw, "kernel"),
        (grads["bias"], tdb, "bias"),
    ]:
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=what)


def test_layer_normalization_against_torch():
    layer = L.LayerNormalization(epsilon=1e-5)
    x = 3 * data((B, T, D), 7) + 1
    layer.build(x.shape[1:], None, "float64")
    randomize(layer, np.random.default_rng(8))
    y, cache = layer.forward(x)
    dy = data(y.shape, 9)
    dx, grads = layer.backward(dy, cache)
    ty, (tdx, tdg, tdb) = torch_grads(
        lambda x, g, b: F.layer_norm(x, (D,), g, b, 1e-5),
        [x, layer.params["gamma"], layer.params["beta"]],
        dy,
    )
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    for ours, theirs in [(dx, tdx), (grads["gamma"], tdg), (grads["beta"], tdb)]:
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_batch_normalization_training_against_torch():
    """Batch statistics over batch and time, biased variance in the normalisation; PyTorch's
    running variance is the unbiased one, so the moving statistics are compared by formula."""
    layer = L.BatchNormalization(momentum=0.9, epsilon=1e-3)
    x = 2 * data((B, T, D), 10) + 0.5
    layer.build(x.shape[1:], None, "float64")
    randomize(layer, np.random.default_rng(11))
    y, cache = layer.forward(x, training=True)
    dy = data(y.shape, 12)
    dx, grads = layer.backward(dy, cache)

    def bn(x, g, b):  # torch normalises axis 1: features there
        z = F.batch_norm(x.transpose(1, 2), None, None, g, b, training=True, eps=1e-3)
        return z.transpose(1, 2)

    ty, (tdx, tdg, tdb) = torch_grads(bn, [x, layer.params["gamma"], layer.params["beta"]], dy)
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-12)
    for ours, theirs in [(dx, tdx), (grads["gamma"], tdg), (grads["beta"], tdb)]:
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    flat = x.reshape(-1, D)
    updates = layer.state_updates(cache)
    mm, mv = layer.params["moving_mean"], layer.params["moving_variance"]
    np.testing.assert_allclose(updates["moving_mean"], 0.9 * mm + 0.1 * flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(updates["moving_variance"], 0.9 * mv + 0.1 * flat.var(0), rtol=1e-12)
