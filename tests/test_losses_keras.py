"""The losses added for Keras tutorials, and user losses, against Keras 3 and PyTorch.

Witnesses:

- Keras 3 on its torch backend for the semantics: values of ``keras.losses.<Class>()`` with and
  without ``sample_weight`` (1-D, 2-D and 3-D predictions), the per-sample values of Keras'
  function forms, edge values where Keras clips (zero targets for MAPE, zero and negative values
  for MSLE, zeros and ones for KLD, zero vectors for the cosine, {0, 1} labels for the hinges),
  and the gradients by ``torch.autograd`` through Keras' own loss. Keras computes some of these in
  float32 whatever the input (``ops.maximum(x, python_float)`` returns float32 on this backend),
  so these comparisons use float32 tolerances.
- float64 at tight tolerance: central finite differences of the loss value for every gradient
  (inputs kept away from kinks), and ``torch.nn.functional`` where torch has the same function
  (``kl_div``, ``cosine_similarity``, ``log(cosh)``).
- User losses: the value and gradient of a wrapped NumPy function against torch autograd of the
  same function written in torch, and ``fit`` with the user loss equal to ``fit`` with the
  built-in loss it restates.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit import load_model, losses
from lstmkit.layers import LSTM, Dense
from lstmkit.losses import (
    CosineSimilarity,
    Hinge,
    KLDivergence,
    LogCosh,
    LossFunctionWrapper,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    SquaredHinge,
)
from lstmkit.models import Sequential

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"

T64 = torch.float64


#: name -> (lstmkit class, Keras class, Keras function, data maker)
def _regression(rng, shape):
    return rng.normal(size=shape), 2 * rng.normal(size=shape)


def _positive(rng, shape):  # MSLE on its domain, plus some values under eps on both sides
    t, y = rng.uniform(0.05, 3, size=shape), rng.uniform(0.05, 3, size=shape)
    return t, y


def _distributions(rng, shape):
    t, y = rng.uniform(0.05, 1, size=shape), rng.uniform(0.05, 1, size=shape)
    return t / t.sum(-1, keepdims=True), y / y.sum(-1, keepdims=True)


def _signs(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape), 1.5 * rng.normal(size=shape)


def _binary(rng, shape):
    return rng.choice([0.0, 1.0], size=shape), 1.5 * rng.normal(size=shape)


CASES = {
    "mape": (
        MeanAbsolutePercentageError,
        keras.losses.MeanAbsolutePercentageError,
        keras.losses.mean_absolute_percentage_error,
        _regression,
    ),
    "msle": (
        MeanSquaredLogarithmicError,
        keras.losses.MeanSquaredLogarithmicError,
        keras.losses.mean_squared_logarithmic_error,
        _positive,
    ),
    "log_cosh": (LogCosh, keras.losses.LogCosh, keras.losses.log_cosh, _regression),
    "kld": (KLDivergence, keras.losses.KLDivergence, keras.losses.kl_divergence, _distributions),
    "cosine": (
        CosineSimilarity,
        keras.losses.CosineSimilarity,
        keras.losses.cosine_similarity,
        _regression,
    ),
    "hinge": (Hinge, keras.losses.Hinge, keras.losses.hinge, _signs),
    "hinge01": (Hinge, keras.losses.Hinge, keras.losses.hinge, _binary),
    "squared_hinge": (SquaredHinge, keras.losses.SquaredHinge, keras.losses.squared_hinge, _signs),
    "squared_hinge01": (
        SquaredHinge,
        keras.losses.SquaredHinge,
        keras.losses.squared_hinge,
        _binary,
    ),
}
ROW_LOSSES = {"kld", "cosine"}  # per-sample sums over the last axis: need (batch, features)
SHAPES = [(12,), (9, 4), (3, 5, 4)]


def _keras_value_and_grad(keras_loss, y_true, y_pred, sample_weight=None):
    yp = torch.tensor(y_pred, dtype=T64, requires_grad=True)
    w = None if sample_weight is None else torch.tensor(sample_weight, dtype=T64)
    value = keras_loss(torch.tensor(y_true, dtype=T64), yp, sample_weight=w)
    value.backward()
    return float(value.detach()), yp.grad.numpy()


def _assert_grad_close(ours, theirs, rtol):
    scale = np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


def _cases_with_shapes():
    """Row losses need 2-D input; Keras reads a 1-D y_pred as ONE sample (lstmkit as (batch,)),
    so weights per sample are compared from 2-D on."""
    for name in sorted(CASES):
        for shape in SHAPES:
            for weighted in (False, True):
                if len(shape) > 1 or not (name in ROW_LOSSES or weighted):
                    yield name, shape, weighted


@pytest.mark.parametrize("name, shape, weighted", list(_cases_with_shapes()))
def test_value_and_gradient_match_keras(name, shape, weighted):
    ours_cls, keras_cls, _, data = CASES[name]
    rng = np.random.default_rng(len(name) + 7 * len(shape))
    y_true, y_pred = data(rng, shape)
    w = None
    if weighted:  # one weight per sample, or per step for sequences
        w = rng.uniform(0, 2, size=shape[:1] if len(shape) < 3 else shape[:2])
    value, grad = _keras_value_and_grad(keras_cls(), y_true, y_pred, w)
    ours = ours_cls()
    assert ours(y_true, y_pred, w) == pytest.approx(value, rel=2e-6)
    _assert_grad_close(ours.grad(y_true, y_pred, w), grad, rtol=2e-6)
    fused_value, fused_grad = ours.value_and_grad(y_true, y_pred, w)
    assert fused_value == ours(y_true, y_pred, w)
    np.testing.assert_array_equal(fused_grad, ours.grad(y_true, y_pred, w))


@pytest.mark.parametrize("name", sorted(CASES))
def test_per_sample_values_match_keras_function_forms(name):
    ours_cls, _, keras_fn, data = CASES[name]
    y_true, y_pred = data(np.random.default_rng(3), (6, 4))
    theirs = keras.ops.convert_to_numpy(keras_fn(y_true, y_pred))
    np.testing.assert_allclose(ours_cls().call(y_true, y_pred), theirs, rtol=2e-6, atol=1e-12)
    ours_fn = losses.get(ours_cls.name).call  # the instance's per-sample values
    assert ours_fn(y_true, y_pred).shape == (6,)


# Edge values: (y_true, y_pred) where Keras clips or divides by eps; gradients through the clips
EDGES = {
    "mape": ([[0.0, 1.0, -2.0], [0.0, 0.0, 3.0]], [[0.5, 1.5, -2.5], [-1e-3, 2.0, 0.0]]),
    "msle": ([[0.0, -1.0, 2.0], [1e-9, 0.5, -3.0]], [[0.0, 0.5, -1.0], [2.0, -4.0, 1e-9]]),
    "kld": ([[0.0, 1.0, 0.5], [0.2, 0.0, 0.8]], [[0.0, 1.0, 0.3], [1.2, 0.4, -0.1]]),
    "cosine": (
        [[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [0.3, 0.1, 0.2]],
        [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1e-9]],
    ),
    "hinge01": ([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], [[0.3, -2.0, 0.7], [-1.5, 2.0, 0.1]]),
    "hinge": ([[0.5, -2.0, 1.0], [1.0, 0.0, -1.0]], [[0.3, -2.0, 0.7], [-1.5, 2.0, 0.1]]),
    "squared_hinge01": ([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], [[0.3, -2.0, 0.7], [-1.5, 2.0, 0.1]]),
    "log_cosh": ([[0.0, 0.0], [1.0, -1.0]], [[800.0, -800.0], [1.0, -60.0]]),  # cosh overflows
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_values_match_keras(name):
    ours_cls, keras_cls, _, _ = CASES[name]
    y_true, y_pred = (np.array(a) for a in EDGES[name])
    value, grad = _keras_value_and_grad(keras_cls(), y_true, y_pred)
    ours = ours_cls()
    assert np.isfinite(ours(y_true, y_pred))
    assert ours(y_true, y_pred) == pytest.approx(value, rel=2e-6)
    ours_grad = ours.grad(y_true, y_pred)
    assert np.isfinite(ours_grad).all()
    if name == "cosine":
        # An exactly-zero prediction row: Keras' gradient is NaN (rsqrt'(0) * 0); lstmkit takes
        # the flat branch of min(1/||y||, 1/eps), as Keras does for ||y|| = 1e-9 (the last row)
        assert np.isnan(grad[1]).all()
        a = y_true[1] / np.linalg.norm(y_true[1])
        np.testing.assert_allclose(ours_grad[1], -a / 1e-7 / 3, rtol=1e-12)
        ours_grad, grad = np.delete(ours_grad, 1, 0), np.delete(grad, 1, 0)
    _assert_grad_close(ours_grad, grad, rtol=2e-6)


def _finite_differences(loss, y_true, y_pred, w=None, step=1e-6):
    numeric = np.zeros_like(y_pred)
    for i in np.ndindex(y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[i] += step
        down[i] -= step
        numeric[i] = (loss(y_true, up, w) - loss(y_true, down, w)) / (2 * step)
    return numeric


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_equals_float64_finite_differences(name):
    ours_cls, _, _, data = CASES[name]
    rng = np.random.default_rng(11)
    y_true, y_pred = data(rng, (3, 2, 4))
    if "hinge" in name:  # keep away from the kink t * y = 1
        y_pred = np.where(np.abs(np.abs(y_pred) - 1) < 0.05, y_pred + 0.1, y_pred)
    w = rng.uniform(0.5, 2, size=(3, 2))
    loss = ours_cls()
    numeric = _finite_differences(loss, y_true, y_pred, w)
    _assert_grad_close(loss.grad(y_true, y_pred, w), numeric, rtol=1e-7)


@pytest.mark.parametrize("shape", [(9, 4), (3, 5, 4)])
def test_kld_cosine_log_cosh_match_torch_float64(shape):
    rng = np.random.default_rng(12)
    t, y = _distributions(rng, shape)
    n = int(np.prod(shape[:-1]))

    def check(ours, torch_fn, t, y):
        yp = torch.tensor(y, dtype=T64, requires_grad=True)
        value = torch_fn(torch.tensor(t, dtype=T64), yp)
        value.backward()
        assert ours(t, y) == pytest.approx(value.item(), rel=1e-12)
        np.testing.assert_allclose(ours.grad(t, y), yp.grad.numpy(), rtol=1e-10, atol=1e-14)

    check(KLDivergence(), lambda a, b: F.kl_div(torch.log(b), a, reduction="sum") / n, t, y)
    t, y = _regression(rng, shape)
    check(CosineSimilarity(), lambda a, b: -F.cosine_similarity(a, b, dim=-1).mean(), t, y)
    check(LogCosh(), lambda a, b: torch.log(torch.cosh(b - a)).mean(), t, y)


NAMES = [
    "mape",
    "MAPE",
    "mean_absolute_percentage_error",
    "MeanAbsolutePercentageError",
    "msle",
    "MSLE",
    "mean_squared_logarithmic_error",
    "MeanSquaredLogarithmicError",
    "kld",
    "KLD",
    "kl_divergence",
    "KLDivergence",
    "cosine_similarity",
    "CosineSimilarity",
    "log_cosh",
    "LogCosh",
    "hinge",
    "Hinge",
    "squared_hinge",
    "SquaredHinge",
]


@pytest.mark.parametrize("name", NAMES)
def test_names_resolve_to_what_keras_resolves(name):
    t, y = _distributions(np.random.default_rng(13), (5, 3))
    theirs = keras.losses.get(name)
    value = float(keras.ops.mean(theirs(t, y)))  # a function gives per-sample values
    assert losses.get(name)(t, y) == pytest.approx(value, rel=2e-6)
    assert losses.get(name.upper())(t, y) == losses.get(name)(t, y)  # any case


@pytest.mark.parametrize(
    "fn, cls",
    [
        (losses.mape, MeanAbsolutePercentageError),
        (losses.msle, MeanSquaredLogarithmicError),
        (losses.kld, KLDivergence),
        (losses.cosine_similarity, CosineSimilarity),
        (losses.log_cosh, LogCosh),
        (losses.hinge, Hinge),
        (losses.squared_hinge, SquaredHinge),
        (losses.mean_squared_error, losses.MeanSquaredError),
        (losses.sparse_categorical_crossentropy, losses.SparseCategoricalCrossentropy),
    ],
)
def test_keras_function_forms_compile_as_their_class(fn, cls):
    """``compile(loss=keras.losses.mean_squared_error)`` in a tutorial: the function gives
    Keras' per-sample values and ``get`` turns it into the class."""
    assert type(losses.get(fn)) is cls
    rng = np.random.default_rng(14)
    if cls is losses.SparseCategoricalCrossentropy:
        t, y = rng.integers(0, 3, size=5), rng.uniform(0.1, 1, size=(5, 3))
        keras_fn = keras.losses.sparse_categorical_crossentropy
    else:
        t, y = _distributions(rng, (5, 3))
        keras_fn = keras.losses.get(fn.__name__)
    theirs = keras.ops.convert_to_numpy(keras_fn(t, y))
    np.testing.assert_allclose(fn(t, y), theirs, rtol=2e-6)


def test_keras_config_round_trip():
    for cls in (MeanAbsolutePercentageError, KLDivergence, CosineSimilarity, SquaredHinge):
        again = losses.get(losses.serialize(cls()))
        assert type(again) is cls
    assert losses.get(CosineSimilarity).get_config() == {"axis": -1}  # a class is instantiated
    with pytest.raises(ValueError, match=r"CosineSimilarity: argument 'axis' must be -1.*got 0"):
        CosineSimilarity(axis=0)
    with pytest.raises(ValueError, match=r"KLDivergence: argument 'y_pred' must have shape"):
        KLDivergence()(np.ones(3), np.ones(3))


# -- user losses -----------------------------------------------------------------------------
def _quartic(y_true, y_pred):
    return np.mean((y_pred - y_true) ** 4, axis=-1)


def _quartic_grad(y_true, y_pred):
    d = y_pred - y_true
    return 4 * d**3 / d.shape[-1]


def _torch_quartic(t, y):  # the same user function, per sample, written for autograd
    return ((y - t) ** 4).mean(-1)


@pytest.mark.parametrize("shape", [(7, 3), (4, 5, 2)])
@pytest.mark.parametrize("weighted", [False, True])
def test_user_loss_value_and_gradient_match_torch_autograd(shape, weighted):
    rng = np.random.default_rng(15)
    t, y = rng.normal(size=shape), rng.normal(size=shape)
    w = rng.uniform(0, 2, size=shape[:1]) if weighted else None
    yp = torch.tensor(y, requires_grad=True)
    per = _torch_quartic(torch.tensor(t), yp)  # (B,) or (B, T)
    tw = torch.ones(()) if w is None else torch.tensor(w).reshape(w.shape + (1,) * (per.ndim - 1))
    ref = (per * tw).sum() / per.numel()  # Keras' sum_over_batch_size
    ref.backward()
    loss = losses.with_gradient(_quartic_grad)(_quartic)
    assert isinstance(loss, LossFunctionWrapper) and loss.name == "_quartic"
    assert loss(t, y, w) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.grad(t, y, w), yp.grad.numpy(), rtol=1e-12)
    assert losses.get(loss) is loss
    assert losses.check_gradient(loss, t, y, w) < 1e-7


def test_user_loss_returning_elements_or_a_scalar():
    rng = np.random.default_rng(16)
    t, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    elements = LossFunctionWrapper(
        lambda a, b: (b - a) ** 2, grad=lambda a, b: 2 * (b - a), name="sq"
    )
    total = LossFunctionWrapper(
        lambda a, b, k: k * np.mean((b - a) ** 2),
        grad=lambda a, b, k: k * 2 * (b - a) / a.size,
        name="scaled",
        k=3.0,
    )
    mse = losses.MeanSquaredError()
    assert elements(t, y) == pytest.approx(mse(t, y), rel=1e-14)
    np.testing.assert_allclose(elements.grad(t, y), mse.grad(t, y), rtol=1e-14)
    assert total(t, y) == pytest.approx(3 * mse(t, y), rel=1e-14)
    np.testing.assert_allclose(total.grad(t, y), 3 * mse.grad(t, y), rtol=1e-14)
    with pytest.raises(ValueError, match="'sample_weight' needs a loss function that returns one"):
        total(t, y, np.ones(6))


def test_a_wrong_stated_gradient_is_caught_by_check_gradient():
    rng = np.random.default_rng(17)
    t, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    wrong = losses.with_gradient(lambda a, b: 3 * (b - a) ** 2 / b.shape[-1])(_quartic)
    assert losses.check_gradient(wrong, t, y) > 0.1


def test_user_loss_errors_explain_what_is_missing():
    with pytest.raises(
        ValueError,
        match=r"losses.get: the loss '_quartic' has no gradient.*"
        r"no automatic differentiation.*with_gradient",
    ):
        losses.get(_quartic)
    model = Sequential([LSTM(2, input_shape=(3, 2)), Dense(1)])
    with pytest.raises(ValueError, match="has no gradient"):
        model.compile(optimizer="sgd", loss=_quartic)
    with pytest.raises(ValueError, match="LossFunctionWrapper: the loss 'f' has no gradient"):
        LossFunctionWrapper(_quartic, name="f")
    t, y = np.zeros((4, 3)), np.ones((4, 3))
    bad_values = LossFunctionWrapper(lambda a, b: b.T, grad=_quartic_grad, name="bv")
    with pytest.raises(ValueError, match=r"bv: the loss function must return .*got \(3, 4\)"):
        bad_values(t, y)
    bad_grad = LossFunctionWrapper(_quartic, grad=lambda a, b: b[:, 0], name="bg")
    with pytest.raises(ValueError, match=r"bg: the gradient function must return .*\(4, 3\)"):
        bad_grad.grad(t, y)


def _fit(loss, x, y):
    model = Sequential([LSTM(4, input_shape=(5, 3)), Dense(2)])
    model.compile(optimizer="adam", loss=loss, seed=1)
    model.build()
    model.set_weights(
        [np.random.default_rng(2).normal(scale=0.5, size=w.shape) for w in model.get_weights()]
    )
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]
    return model, history


def test_fit_with_a_user_loss_equals_fit_with_the_builtin_it_restates(tmp_path):
    rng = np.random.default_rng(18)
    x = rng.normal(size=(20, 5, 3)).astype(np.float32)
    y = rng.normal(size=(20, 2)).astype(np.float32)

    @losses.with_gradient(lambda t, p: 100 * np.sign(p - t) / np.maximum(np.abs(t), 1e-7) / 2)
    def my_mape(t, p):
        return 100 * np.mean(np.abs(p - t) / np.maximum(np.abs(t), 1e-7), axis=-1)

    builtin, h_builtin = _fit("mape", x, y)
    user, h_user = _fit(my_mape, x, y)
    np.testing.assert_allclose(h_user, h_builtin, rtol=1e-6)
    for a, b in zip(user.get_weights(), builtin.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert h_user[-1] < h_user[0]
    # saved by name only: reloading asks for compile=False, which works
    user.save(tmp_path / "user.lstmkit")
    with pytest.raises(ValueError, match="user loss 'my_mape' was saved by name only"):
        load_model(tmp_path / "user.lstmkit")
    again = load_model(tmp_path / "user.lstmkit", compile=False)
    np.testing.assert_array_equal(again.predict(x), user.predict(x))
