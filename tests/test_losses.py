"""Losses and their gradients against PyTorch (float64, autograd), plus Keras' clipping constants.

Witnesses: ``torch.nn.functional`` ``mse_loss``, ``l1_loss``, ``huber_loss``,
``binary_cross_entropy(_with_logits)`` and ``cross_entropy`` with ``reduction="mean"`` give the
values, ``backward()`` the gradients. Two tricks keep torch independent where Keras' definition is
not torch's default:

- categorical cross-entropy from *unnormalised* probabilities: Keras divides by the sum first;
  ``cross_entropy(log(p), t)`` computes ``-sum t * log_softmax(log p) = -sum t * log(p / sum p)``,
  the same thing, and autograd differentiates through the normalisation.
- sample weights: torch's ``reduction="none"`` per-element losses, averaged over the last axis,
  weighted and divided by the number of per-sample values (Keras' ``sum_over_batch_size``).

Where Keras clips probabilities to ``[1e-7, 1 - 1e-7]`` (torch clamps the log at -100 instead)
the expected numbers are ``-log(1e-7)`` and a zero gradient, by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit import losses
from lstmkit.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
)

SHAPES = [(7,), (4, 3), (2, 5, 3)]
T64 = torch.float64


def _torch_value_and_grad(fn, y_true, y_pred):
    yp = torch.tensor(y_pred, dtype=T64, requires_grad=True)
    loss = fn(torch.as_tensor(y_true), yp)
    loss.backward()
    return loss.item(), yp.grad.numpy()


def _check(loss, torch_fn, y_true, y_pred, rtol=1e-12, atol=1e-15):
    value, grad = loss(y_true, y_pred), loss.grad(y_true, y_pred)
    t_value, t_grad = _torch_value_and_grad(torch_fn, y_true, y_pred)
    assert isinstance(value, float)
    assert grad.shape == np.shape(y_pred) and grad.dtype == np.float64
    assert value == pytest.approx(t_value, rel=rtol, abs=atol)
    np.testing.assert_allclose(grad, t_grad, rtol=rtol, atol=atol)
    fused_value, fused_grad = loss.value_and_grad(y_true, y_pred)  # what training calls
    assert isinstance(fused_value, float) and fused_grad.dtype == np.float64
    assert fused_value == pytest.approx(t_value, rel=rtol, abs=atol)
    np.testing.assert_allclose(fused_grad, t_grad, rtol=rtol, atol=atol)


def _regression(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), 2 * rng.normal(size=shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_mse_mae_huber_match_torch(shape):
    y_true, y_pred = _regression(shape, seed=len(shape))
    _check(MeanSquaredError(), F.mse_loss, y_true, y_pred)
    _check(MeanAbsoluteError(), F.l1_loss, y_true, y_pred)
    for delta in (1.0, 0.3, 5.0):
        _check(Huber(delta), lambda t, y, d=delta: F.huber_loss(y, t, delta=d), y_true, y_pred)


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_crossentropy_matches_torch(shape):
    rng = np.random.default_rng(10 + len(shape))
    soft = rng.uniform(0, 1, size=shape)  # soft targets exercise both terms
    hard = (rng.uniform(size=shape) > 0.5).astype(float)
    probs = rng.uniform(0.02, 0.98, size=shape)
    logits = 4 * rng.normal(size=shape)
    for t in (soft, hard):
        _check(BinaryCrossentropy(), lambda a, y: F.binary_cross_entropy(y, a), t, probs)
        _check(
            BinaryCrossentropy(from_logits=True),
            lambda a, y: F.binary_cross_entropy_with_logits(y, a),
            t,
            logits,
        )


def _distribution_targets(shape, rng):
    soft = rng.uniform(size=shape)
    soft /= soft.sum(-1, keepdims=True)
    one_hot = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    unnormalised = rng.uniform(size=shape)  # rows not summing to 1: the gradient has sum(t)
    return soft, one_hot, unnormalised


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 6)])
def test_categorical_crossentropy_matches_torch(shape):
    rng = np.random.default_rng(20 + len(shape))
    C = shape[-1]
    logits = 3 * rng.normal(size=shape)
    unnormalised = rng.uniform(0.1, 2.0, size=shape)  # Keras renormalises these

    def ce(t, y):  # torch wants (N, C) for probability targets
        return F.cross_entropy(y.reshape(-1, C), t.reshape(-1, C))

    for t in _distribution_targets(shape, rng):
        _check(CategoricalCrossentropy(from_logits=True), ce, t, logits)
        _check(CategoricalCrossentropy(), lambda a, y: ce(a, torch.log(y)), t, unnormalised)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 6)])
def test_sparse_categorical_crossentropy_matches_torch(shape):
    rng = np.random.default_rng(30 + len(shape))
    C = shape[-1]
    labels = rng.integers(0, C, size=shape[:-1])
    logits = 3 * rng.normal(size=shape)
    unnormalised = rng.uniform(0.1, 2.0, size=shape)

    def ce(t, y):
        return F.cross_entropy(y.reshape(-1, C), t.reshape(-1).long())

    _check(SparseCategoricalCrossentropy(from_logits=True), ce, labels, logits)
    _check(SparseCategoricalCrossentropy(), lambda a, y: ce(a, torch.log(y)), labels, unnormalised)
    # a trailing axis of size 1 and integer-valued floats are accepted (Keras)
    loss = SparseCategoricalCrossentropy(from_logits=True)
    assert loss(labels[..., None], logits) == loss(labels.astype(float), logits)
    assert loss(labels[..., None], logits) == loss(labels, logits)
    # exactly the one-hot categorical loss
    one_hot = np.eye(C)[labels]
    cce = CategoricalCrossentropy(from_logits=True)
    assert loss(labels, logits) == pytest.approx(cce(one_hot, logits), rel=1e-15)
    np.testing.assert_allclose(loss.grad(labels, logits), cce.grad(one_hot, logits), rtol=1e-15)


def test_extreme_logits_stay_finite_and_match_torch():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 50.0], [-50.0, 30.0, -1e4]])
    t_bin = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.5, 1.0, 0.0]])
    bce = BinaryCrossentropy(from_logits=True)
    _check(bce, lambda a, y: F.binary_cross_entropy_with_logits(y, a), t_bin, x, atol=1e-12)
    assert bce(t_bin, x) > 1e3  # confidently wrong logits cost ~1e4, not inf

    labels = np.array([1, 0, 2])
    one_hot = np.eye(3)[labels]
    for loss, t in (
        (CategoricalCrossentropy(True), one_hot),
        (SparseCategoricalCrossentropy(True), labels),
    ):
        value, grad = loss(t, x), loss.grad(t, x)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        t_value, t_grad = _torch_value_and_grad(
            lambda _, y: F.cross_entropy(y, torch.as_tensor(labels)), t, x
        )
        assert value == pytest.approx(t_value, rel=1e-12)
        np.testing.assert_allclose(grad, t_grad, rtol=1e-12, atol=1e-15)


def test_probabilities_are_clipped_like_keras():
    # Keras: p -> clip(p, 1e-7, 1 - 1e-7); a certain-and-wrong prediction costs -log(1e-7).
    bce = BinaryCrossentropy()
    assert bce(np.array([1.0]), np.array([0.0])) == pytest.approx(-math.log(1e-7), rel=1e-12)
    assert bce(np.array([0.0]), np.array([1.0])) == pytest.approx(
        -math.log1p(-(1 - 1e-7)), rel=1e-9
    )
    np.testing.assert_array_equal(bce.grad(np.array([1.0, 0.0]), np.array([0.0, 1.0])), [0.0, 0.0])
    cce = CategoricalCrossentropy()
    assert cce(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])) == pytest.approx(
        -math.log(1e-7), rel=1e-12
    )
    assert np.all(np.isfinite(cce.grad(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))))


def test_sample_weight_matches_weighted_torch_reduction():
    rng = np.random.default_rng(40)
    y_true, y_pred = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2))
    for w in (rng.uniform(size=3), rng.uniform(size=(3, 4))):
        wt = torch.as_tensor(w if w.ndim == 2 else w[:, None])

        def weighted(t, y, wt=wt):
            per_sample = F.mse_loss(y, t, reduction="none").mean(-1)  # (3, 4)
            return (wt * per_sample).sum() / per_sample.numel()

        loss = MeanSquaredError()
        t_value, t_grad = _torch_value_and_grad(weighted, y_true, y_pred)
        assert loss(y_true, y_pred, sample_weight=w) == pytest.approx(t_value, rel=1e-12)
        np.testing.assert_allclose(loss.grad(y_true, y_pred, sample_weight=w), t_grad, rtol=1e-12)
    with pytest.raises(ValueError, match=r"'sample_weight' must have shape \(3, 4\).*got \(4,\)"):
        MeanSquaredError()(y_true, y_pred, sample_weight=np.ones(4))


def test_missing_trailing_axis_and_float32():
    rng = np.random.default_rng(50)
    y_true, y_pred = rng.normal(size=(4, 6)), rng.normal(size=(4, 6, 1))
    mse = MeanSquaredError()
    assert mse(y_true, y_pred) == mse(y_true[..., None], y_pred)
    assert mse.grad(y_true, y_pred).shape == (4, 6, 1)
    g32 = mse.grad(y_true.astype(np.float32), y_pred.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, mse.grad(y_true, y_pred), rtol=1e-5)
    v32, fused32 = mse.value_and_grad(y_true.astype(np.float32), y_pred.astype(np.float32))
    assert fused32.dtype == np.float32 and fused32.shape == (4, 6, 1)
    assert v32 == pytest.approx(mse(y_true, y_pred), rel=1e-6)
    np.testing.assert_allclose(fused32, mse.grad(y_true, y_pred), rtol=1e-5)
    scce = SparseCategoricalCrossentropy(from_logits=True)
    labels, logits = rng.integers(0, 5, size=(3, 4)), 3 * rng.normal(size=(3, 4, 5))
    v32, fused32 = scce.value_and_grad(labels, logits.astype(np.float32))
    assert fused32.dtype == np.float32
    assert v32 == pytest.approx(scce(labels, logits), rel=1e-6)
    np.testing.assert_allclose(fused32, scce.grad(labels, logits), rtol=1e-5, atol=1e-8)
    bce = BinaryCrossentropy(from_logits=True)
    assert bce.grad(np.ones(3, np.float32), np.full(3, 1e4, np.float32)).dtype == np.float32


def test_bad_input_names_argument_received_and_expected():
    with pytest.raises(
        ValueError,
        match=r"MeanSquaredError: argument 'y_true' must have the shape of 'y_pred' "
        r"\(4, 3\); got \(4, 2\)",
    ):
        MeanSquaredError()(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(
        ValueError, match=r"'y_true' must hold class ids of shape \(4,\).*got \(4, 3\)"
    ):
        SparseCategoricalCrossentropy()(np.zeros((4, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\).*got values in \[0, 3\]"):
        SparseCategoricalCrossentropy()(np.array([0, 3]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="must hold integer class ids; got dtype float64"):
        SparseCategoricalCrossentropy()(np.array([0.5, 1.0]), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"'y_pred' must have shape \(batch, classes\)"):
        CategoricalCrossentropy()(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"'delta' must be a positive number; got -1"):
        Huber(-1)
    with pytest.raises(ValueError, match=r"'identifier' must be one of .*got 'poisson'"):
        losses.get("poisson")


def test_get_names_aliases_instances_and_configs():
    for name, cls in [
        ("mse", MeanSquaredError),
        ("mean_squared_error", MeanSquaredError),
        ("MAE", MeanAbsoluteError),
        ("huber", Huber),
        ("binary_crossentropy", BinaryCrossentropy),
        ("categorical_crossentropy", CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", SparseCategoricalCrossentropy),
        ("SparseCategoricalCrossentropy", SparseCategoricalCrossentropy),
    ]:
        assert type(losses.get(name)) is cls
    inst = Huber(2.0)
    assert losses.get(inst) is inst
    for loss in (Huber(0.5), BinaryCrossentropy(from_logits=True), SparseCategoricalCrossentropy()):
        again = losses.get(json.loads(json.dumps(losses.serialize(loss))))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert losses.get("sparse_categorical_crossentropy").sparse
    assert not losses.get("categorical_crossentropy").sparse
