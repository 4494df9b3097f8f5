"""Every activation of :mod:`lstmkit.ops.activations` against two independent witnesses:

- Keras 3 (torch backend) ``keras.activations.<name>`` for the values, float32 and float64, with
  Keras' defaults (``gelu`` exact, ``leaky_relu`` slope 0.2, ``hard_sigmoid`` relu6(x + 3) / 6);
- PyTorch autograd (``torch.nn.functional``) for the derivatives, float64: the element-wise
  ``grad(y, z)`` and the vector-Jacobian product ``activation_vjp`` (softmax included), with the
  derivative fed only the output where the registry says the input is not needed.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit.ops.activations import (
    ACTIVATIONS,
    activation_vjp,
    get_activation,
    is_elementwise,
    needs_input,
)

assert keras.backend.backend() == "torch"

TORCH = {
    "linear": lambda z: z,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2),
    "elu": F.elu,
    "selu": F.selu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": F.hardsigmoid,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "exponential": torch.exp,
    "gelu": lambda z: F.gelu(z, approximate="none"),
    "swish": F.silu,
    "silu": F.silu,
    "hard_silu": F.hardswish,
    "hard_swish": F.hardswish,
    "mish": F.mish,
    "log_sigmoid": F.logsigmoid,
    "softmax": lambda z: F.softmax(z, dim=-1),
    "log_softmax": lambda z: F.log_softmax(z, dim=-1),
}
NAMES = sorted(ACTIVATIONS)
# PyTorch's hardsigmoid backward multiplies by the float constant 1.0f / 6.0f (relative error
# 3e-8 in float64); everything else agrees to float64 rounding
GRAD_TOL = {"hard_sigmoid": 1e-7}


def inputs(dtype, seed=0):
    """(4, 6, 5) values over [-8, 8] that keep clear of every kink (0, +-3, 6) by > 1e-3."""
    z = np.random.default_rng(seed).uniform(-8, 8, (4, 6, 5))
    for k in (0.0, -3.0, 3.0, 6.0):
        near = np.abs(z - k) < 1e-3
        z[near] += 2e-3
    return z.astype(dtype)


def test_every_name_has_a_torch_witness():
    assert sorted(TORCH) == NAMES


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_values_match_keras(name, dtype):
    z = inputs(dtype)
    fn, _ = get_activation(name)
    y = fn(z)
    theirs = keras.ops.convert_to_numpy(keras.activations.get(name)(torch.tensor(z)))
    assert y.dtype == np.dtype(dtype) and y.shape == z.shape
    tol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_torch_autograd(name):
    z = inputs("float64", seed=1)
    dy = np.random.default_rng(2).standard_normal(z.shape)
    fn, grad = get_activation(name)
    y = fn(z)
    zt = torch.tensor(z, requires_grad=True)
    yt = TORCH[name](zt)
    yt.backward(torch.tensor(dy))
    expected = zt.grad.numpy()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    # the vector-Jacobian product, as Dense/Activation/Conv1D use it
    z_arg = z if needs_input(name) else None  # the registry's claim, checked here
    dz = activation_vjp(name)(dy, y, z_arg)
    tol = GRAD_TOL.get(name, 1e-10)
    err = np.abs(dz - expected).max() / np.abs(expected).max()
    assert err <= tol, f"{name}: relative error {err:.2e}"
    if is_elementwise(name):  # the element-wise derivative, as the recurrent cells use it
        np.testing.assert_allclose(dy * grad(y, z_arg), expected, rtol=tol, atol=1e-12)
    else:
        with pytest.raises(ValueError, match="activation_vjp"):
            grad(y, z_arg)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_float32_follow_float64(name):
    """The float32 derivative keeps float32 and agrees with the float64 one to float32 rounding."""
    z = inputs("float32", seed=3)
    dy = np.ones_like(z)
    fn, _ = get_activation(name)
    d32 = activation_vjp(name)(dy, fn(z), z)
    z64 = z.astype("float64")
    d64 = activation_vjp(name)(dy.astype("float64"), fn(z64), z64)
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-5)


def test_gelu_is_keras_default_exact_form():
    """keras.activations.gelu defaults to approximate=False (erf); the tanh form differs by more
    than the tolerance, so this test tells the two apart."""
    z = inputs("float64")
    exact = keras.ops.convert_to_numpy(keras.activations.gelu(torch.tensor(z)))
    approx = keras.ops.convert_to_numpy(keras.activations.gelu(torch.tensor(z), approximate=True))
    ours = get_activation("gelu")[0](z)
    np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=1e-12)
    assert np.abs(ours - approx).max() > 1e-4


def test_none_means_linear_and_unknown_names_are_rejected():
    z = inputs("float64")
    assert np.array_equal(get_activation(None)[0](z), z)
    with pytest.raises(ValueError, match=r"argument 'activation' must be one of .*got 'relu7'"):
        get_activation("relu7")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturated_inputs_stay_finite(dtype):
    """Logits of +-1e3: no overflow in softmax, log_softmax, softplus, sigmoid, selu, ..."""
    z = np.array([[1e3, -1e3, 0.0, 500.0]], dtype)
    for name in NAMES:
        if name == "exponential":
            continue  # e^1000 overflows by definition (as in Keras)
        fn, _ = get_activation(name)
        y = fn(z)
        dz = activation_vjp(name)(np.ones_like(z), y, z)
        assert np.isfinite(y).all() and np.isfinite(dz).all(), name
