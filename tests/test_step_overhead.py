"""The short cuts of a small training step (issue 18) keep every check and every bit.

- A built ``Concatenate`` checks a set of input shapes once; shapes it has not seen are still
  checked (and refused when incompatible), whatever it saw before.
- A user loss without ``sample_weight`` skips the product by a unit weight: its value and
  gradient are those of the weighted path with weights of one (the path that multiplies).
- The forecaster's network (``forecast_network.build_network``: LSTM, Concatenate, Dense, the
  pinball loss, Adam with clipnorm) trains bit-identically with lstmkit's flat optimizer step
  (the clipnorm scale from the gathered gradients) and with the per-array update (its
  ``_update`` overridden by a subclass, so the optimizer takes no flat step and ``_clip`` takes
  each array's sum of squares), through ``fit`` with the forecaster's callbacks.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit
import lstmkit.layers as L
from lstmkit import losses, optimizers


def test_a_built_concatenate_still_refuses_shapes_it_has_not_checked():
    layer = L.Concatenate(axis=1)
    a, b = np.zeros((2, 3, 4)), np.zeros((2, 5, 4))
    for _ in range(3):  # the same shapes again and again: checked once
        y, _ = layer.forward([a, b])
    assert y.shape == (2, 8, 4)
    with pytest.raises(ValueError, match=r"Concatenate: inputs must have the same shape except"):
        layer.forward([a, np.zeros((2, 5, 6))])
    y, _ = layer.forward([a, np.zeros((2, 1, 4))])  # new compatible shapes: fine
    assert y.shape == (2, 4, 4)
    with pytest.raises(ValueError, match=r"Concatenate: inputs must have the same shape except"):
        layer.forward([np.zeros((2, 3, 2)), b])


def _quartic_grad(y_true, y_pred):
    d = y_pred - y_true
    return 4 * d**3 / d.shape[-1]


@losses.with_gradient(_quartic_grad)
def _quartic(y_true, y_pred):
    return np.mean((y_pred - y_true) ** 4, axis=-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_user_loss_without_weights_equals_unit_weights(dtype):
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(7, 5)).astype(dtype), rng.normal(size=(7, 5)).astype(dtype)
    value, grad = _quartic.value_and_grad(y, p)
    value1, grad1 = _quartic.value_and_grad(y, p, sample_weight=np.ones(7))
    assert grad.dtype == grad1.dtype == dtype
    assert value == value1 and np.array_equal(grad, grad1)
    assert value == _quartic(y, p)


def _per_array(opt):
    cls = type(opt)
    sub = type(f"PerArray{cls.__name__}", (cls,), {"_update": lambda s, *a: cls._update(s, *a)})
    opt.__class__ = sub
    return opt


def test_forecaster_network_trains_bit_identically_with_the_flat_step():
    from lstmkit.apps import forecast_network as fn
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import quantiles_of

    config = ForecastConfig(epoch_windows=64).validate()
    facts = {"horizon": 4, "quantiles": quantiles_of(config), "ids": ["a", "b"]}
    rng = np.random.default_rng(3)
    x = {"series": rng.normal(size=(150, 4, 2)), "ahead": rng.normal(size=(150, 8))}
    y = rng.normal(size=(150, 20)) * 5
    val = ({k: v[:30] for k, v in x.items()}, y[:30])
    weights, used = [], []
    for flat in (True, False):
        lstmkit.set_random_seed(11)
        model = fn.build_network(facts, config, 4, 2, 8, 2)
        opt = optimizers.Adam(config.learning_rate, clipnorm=1e-3)  # (a norm that clips)
        model.compile(optimizer=opt if flat else _per_array(opt),
                      loss=fn.pinball_loss(facts["quantiles"], 4), seed=5)  # fmt: skip
        model.fit(x, y, epochs=4, batch_size=32, validation_data=val, verbose=0,
                  callbacks=fn._callbacks(config, len(y), None))  # fmt: skip
        weights.append(model.get_weights())
        used.append(opt.__dict__.get("_flat") is not None)
    assert used == [True, False]  # the flat step (and its gathered norm) ran in the first only
    for a, b in zip(*weights):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pinball_gradient_is_the_float64_choice_rounded_once(dtype):
    """The pinball loss's gradient picks slopes rounded to the prediction's float type once:
    the bits of the float64 ``np.where(d > 0, -tau, 1 - tau).astype(dtype)``, for each float
    type in turn from one loss object (a cached slope of one type never serves the other)."""
    from lstmkit.apps import forecast_network as fn

    q, H = [0.5, 0.1, 0.9, 0.025, 0.975], 4
    loss = fn.pinball_loss(q, H)
    tau = np.repeat(np.asarray(q, np.float64), H)
    rng = np.random.default_rng(0)
    for dt in (dtype, np.float64 if dtype == np.float32 else np.float32):
        y, p = (rng.standard_normal((64, len(q) * H)).astype(dt) for _ in range(2))
        p[0, :3] = y[0, :3]  # d == 0: the slope of 1 - tau
        want = np.where(y - p > 0, -tau, 1 - tau).astype(dt)
        got = loss.gradient_fn(y, p)
        assert got.dtype == dt and np.array_equal(got, want)
