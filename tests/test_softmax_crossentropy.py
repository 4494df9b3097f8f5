"""``Dense(activation="softmax")`` (or a final ``Activation("softmax")``, or ``TimeDistributed``
of either) trained with a probability cross-entropy is as stable as the from-logits form.

Witness: PyTorch's ``F.cross_entropy`` on the logits and its autograd gradient, with one SGD step
compared weight for weight. With logits of order 1e3 the probability form would clip the target's
probability at 1e-7 (loss capped at 16.1, zero gradient); the trainer takes the loss from the
logits instead, so the loss is the true ~1e3 and the gradient the true ``softmax - target``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit import Sequential
from lstmkit.layers import Activation, Dense, TimeDistributed
from lstmkit.optimizers import SGD

B, T, D, C = 6, 4, 5, 4
LR = 0.01


def problem(scale, seed=0, seq=False):
    rng = np.random.default_rng(seed)
    shape = (B, T, D) if seq else (B, D)
    x = rng.standard_normal(shape)
    W = scale * rng.standard_normal((D, C))
    b = scale * rng.standard_normal(C)
    labels = rng.integers(0, C, shape[:-1])
    return x, W, b, labels


def torch_step(x, W, b, labels, mask=None):
    """Loss, and weights after one SGD step, from PyTorch autograd on the logits."""
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    logits = torch.tensor(x) @ Wt + bt
    lab = torch.tensor(labels)
    if mask is not None:
        m = torch.tensor(mask)
        logits, lab = logits[m], lab[m]
    loss = F.cross_entropy(logits.reshape(-1, C), lab.reshape(-1))
    loss.backward()
    return loss.item(), W - LR * Wt.grad.numpy(), b - LR * bt.grad.numpy()


def model_for(head, W, b, loss, shape):
    model = Sequential(head, dtype="float64")
    model.build((None, *shape))
    dense = model.layers[0]
    inner = dense.layer if isinstance(dense, TimeDistributed) else dense
    inner.set_weights([W, b])
    model.compile(optimizer=SGD(learning_rate=LR), loss=loss)
    return model, inner


HEADS = {
    "dense_softmax": lambda: [Dense(C, activation="softmax")],
    "activation_softmax": lambda: [Dense(C), Activation("softmax")],
}


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("scale", [0.3, 300.0])  # ordinary logits, and logits of order 1e3
@pytest.mark.parametrize("head", sorted(HEADS))
def test_softmax_head_trains_like_logits(head, scale, sparse):
    x, W, b, labels = problem(scale)
    loss_name = "sparse_categorical_crossentropy" if sparse else "categorical_crossentropy"
    y = labels if sparse else np.eye(C)[labels]
    model, dense = model_for(HEADS[head](), W, b, loss_name, (D,))
    loss = model.train_on_batch(x, y)
    t_loss, t_W, t_b = torch_step(x, W, b, labels)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, t_loss, rtol=1e-10)
    W1, b1 = dense.get_weights()
    np.testing.assert_allclose(W1, t_W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b1, t_b, rtol=1e-10, atol=1e-12)
    if scale > 1:
        assert t_loss > 100  # saturated: the clipped probability form would say 16.1


@pytest.mark.parametrize("wrapped", [False, True])
def test_sequence_softmax_with_mask(wrapped):
    """Per-step softmax over (B, T, C) outputs with padding: the loss is over valid steps."""
    x, W, b, labels = problem(200.0, seed=1, seq=True)
    mask = np.arange(T)[None, :] < np.array([4, 3, 2, 4, 1, 3])[:, None]
    head = (
        [TimeDistributed(Dense(C, activation="softmax"))]
        if wrapped
        else [Dense(C, activation="softmax")]
    )
    model, dense = model_for(head, W, b, "sparse_categorical_crossentropy", (T, D))
    loss = model.train_on_batch(x, labels, mask=mask)
    t_loss, t_W, t_b = torch_step(x, W, b, labels, mask)
    np.testing.assert_allclose(loss, t_loss, rtol=1e-10)
    np.testing.assert_allclose(dense.get_weights()[0], t_W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dense.get_weights()[1], t_b, rtol=1e-10, atol=1e-12)


def test_other_losses_on_a_softmax_head_go_through_the_softmax_jacobian():
    """No fusion for MSE: the gradient is MSE's through softmax's vector-Jacobian product."""
    x, W, b, labels = problem(0.7, seed=2)
    y = np.eye(C)[labels]
    model, dense = model_for([Dense(C, activation="softmax")], W, b, "mse", (D,))
    loss = model.train_on_batch(x, y)
    Wt, bt = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
    t_loss = F.mse_loss(torch.softmax(torch.tensor(x) @ Wt + bt, -1), torch.tensor(y))
    t_loss.backward()
    np.testing.assert_allclose(loss, t_loss.item(), rtol=1e-10)
    np.testing.assert_allclose(dense.get_weights()[0], W - LR * Wt.grad.numpy(), rtol=1e-10)
