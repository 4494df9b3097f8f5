"""The training step's gradient of an output's loss times its weight (``Model._losses``): a weight
of 1 hands the loss's own gradient on (no pass over the logits, ``docs/speed.md``); other weights
and other dtypes still scale and cast. Witness: the loss object's ``value_and_grad`` on the same
logits (the losses themselves are checked against PyTorch in ``tests/test_losses.py`` and
``tests/test_fast_xent.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit import Input, Model
from lstmkit.layers import Dense, Embedding
from lstmkit.losses import MeanSquaredError, SparseCategoricalCrossentropy
from lstmkit.models.training import MetricState


def _model(loss, weight, dtype="float32"):
    x = Input((6,), dtype="int32")
    y = Dense(5, dtype=dtype)(Embedding(9, 4, dtype=dtype)(x))
    m = Model(x, y)
    m.compile(optimizer="adam", loss=loss, loss_weights=None if weight is None else [weight])
    return m


@pytest.mark.parametrize("weight", [None, 1.0, 2.5])
@pytest.mark.parametrize("loss", ["xent", "mse"])
def test_weighted_loss_gradient(loss, weight):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 9, (3, 6))
    if loss == "xent":
        fn, y = SparseCategoricalCrossentropy(from_logits=True), rng.integers(0, 5, (3, 6))
    else:
        fn, y = MeanSquaredError(), rng.standard_normal((3, 6, 5))  # float64 targets
    m = _model(fn, weight)
    preds, masks, tape = m.network.run([ids], training=True, masks=[None])
    seen = []
    real = fn.value_and_grad
    fn.value_and_grad = lambda *a, **k: seen.append(real(*a, **k)) or seen[-1]
    logs, dys, _ = m._losses([y], preds, masks, MetricState(m._metric_specs), tape=tape)
    value, grad = seen[0]
    w = 1.0 if weight is None else weight
    assert logs["loss"] == w * value
    assert dys[0].dtype == np.float32 and dys[0].shape == preds[0].shape
    np.testing.assert_array_equal(dys[0], (grad * grad.dtype.type(w)).astype(np.float32))
    # a weight of 1 and a gradient of the output's dtype: the loss's own array, not a copy
    assert (dys[0] is grad) == (w == 1.0 and grad.dtype == np.float32)
