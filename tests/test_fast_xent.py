"""The compiled sparse softmax cross-entropy from logits (``lstmkit.ops.fast.xent``) against
PyTorch's ``F.cross_entropy`` (value from the forward, gradient from ``backward()``), in float32
and float64, on the compiled backend, through ``SparseCategoricalCrossentropy.value_and_grad``
(what training calls), with a check that the compiled kernel did the work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("numba")  # the only reason to skip: numba is an optional dependency

from lstmkit.losses import SparseCategoricalCrossentropy
from lstmkit.ops import backend, fast

TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-8}, np.float64: {"rtol": 1e-12, "atol": 1e-16}}


@pytest.fixture
def compiled(monkeypatch):
    """The numba backend for the test, and a record of the compiled kernel's calls."""
    calls = []
    real = fast.sparse_xent
    monkeypatch.setattr(fast, "sparse_xent", lambda *a: calls.append(a[0].shape) or real(*a))
    before = backend.get_backend()
    backend.set_backend("numba")
    yield calls
    backend.set_backend(before)


def _torch(labels, z):
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    C = z.shape[-1]
    loss = F.cross_entropy(zt.reshape(-1, C), torch.as_tensor(labels.reshape(-1)))
    loss.backward()
    return float(loss.detach()), zt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3), (32, 50, 75), (3, 1, 9)])
def test_compiled_sparse_xent_matches_torch(compiled, dtype, shape):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = rng.integers(0, shape[-1], shape[:-1])
    value, grad = SparseCategoricalCrossentropy(from_logits=True).value_and_grad(labels, z)
    t_value, t_grad = _torch(labels, z)
    assert compiled == [(labels.size, shape[-1])]  # the compiled kernel ran, on every row
    assert grad.dtype == dtype and grad.shape == shape
    np.testing.assert_allclose(value, t_value, **TOL[dtype])
    np.testing.assert_allclose(grad, t_grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_sparse_xent_extreme_logits_and_labels_in_a_trailing_axis(compiled, dtype):
    """Logits of +-1e4 (exp overflows without the shift by the row's maximum, and float32's
    polynomial exp needs its clamp far below the maximum), rows longer than 8 (the eight running
    sums and maxima, with a tail) and labels given as ``(N, T, 1)`` floats, as Keras accepts
    them."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2, 3, 21)) * 4
    z[0, 0, 18], z[0, 1, 20], z[1, 2, :] = 1e4, -1e4, -1e4  # 16-20: past the 8-wide loops
    z[1, 2, 13] = 50.0
    z = z.astype(dtype)
    labels = np.array([[[18.0], [20.0], [0.0]], [[17.0], [9.0], [13.0]]])
    value, grad = SparseCategoricalCrossentropy(from_logits=True).value_and_grad(labels, z)
    t_value, t_grad = _torch(labels[..., 0].astype(np.int64), z)
    assert compiled and np.isfinite(value) and np.isfinite(grad).all()
    np.testing.assert_allclose(value, t_value, **TOL[dtype])
    np.testing.assert_allclose(grad, t_grad, **TOL[dtype])


def test_compiled_sparse_xent_checks_labels_first(compiled):
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"y_true.*class ids in \[0, 3\).*\[0, 3\]"):
        SparseCategoricalCrossentropy(from_logits=True).value_and_grad(np.array([0, 3]), z)
    assert compiled == []  # an out-of-range id never reaches the kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_sparse_xent_nan_logits_give_nan(compiled, dtype):
    """A NaN anywhere in a row (first, middle, in the tail past the 8-wide loops) makes the loss
    and that row's gradient NaN, as in PyTorch: a diverged model is never reported finite."""
    z = np.zeros((3, 12), dtype)
    z[0, 0], z[1, 5], z[2, 11] = np.nan, np.nan, np.nan
    value, grad = SparseCategoricalCrossentropy(from_logits=True).value_and_grad([1, 1, 1], z)
    t_value, t_grad = _torch(np.array([1, 1, 1]), z)
    assert compiled and np.isnan(value) and np.isnan(t_value)
    assert np.isnan(grad).all() and np.isnan(t_grad).all()


def test_half_precision_logits_take_the_numpy_form_on_the_compiled_backend(compiled):
    """The compiled pass has float32/float64 kernels only: float16 logits (a user calling the
    loss on them) take the NumPy form instead of failing, and agree with torch."""
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((6, 5)) * 2).astype(np.float16)
    labels = rng.integers(0, 5, 6)
    value, grad = SparseCategoricalCrossentropy(from_logits=True).value_and_grad(labels, z)
    t_value, t_grad = _torch(labels, z.astype(np.float64))
    assert compiled == []  # the kernel was not asked
    np.testing.assert_allclose(value, t_value, rtol=2e-3)
    np.testing.assert_allclose(grad.astype(np.float64), t_grad, rtol=2e-2, atol=2e-3)
