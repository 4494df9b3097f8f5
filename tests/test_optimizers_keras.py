"""Nadam, Adagrad, AdamW and ``weight_decay`` against Keras 3 and ``torch.optim``.

Witnesses, float64, the same initial parameters and the same sequence of 25 gradients (of
different scales per step, so that the adaptive denominators matter):

- Keras 3 on its torch backend (``keras.config.set_floatx("float64")`` so that its learning-rate
  variable is not rounded to float32): ``keras.optimizers.Nadam/Adagrad/AdamW`` and ``Adam``/``SGD``
  with ``weight_decay``, default and non-default hyperparameters, an ``ExponentialDecay``
  schedule, ``clipvalue``, ``exclude_from_weight_decay(var_names=["bias"])``. Not
  ``global_clipnorm``: Keras computes its scale in float32 (``ops.minimum(float64, 1 / clip)``
  returns float32), a 1e-8 error; the clipping is the base class's, tested against torch's
  ``clip_grad_norm_`` in test_optimizers.py.
- ``torch.optim`` where it defines the same trajectory: ``NAdam(momentum_decay=1,
  decoupled_weight_decay=True)`` (eps included), ``Adagrad(initial_accumulator_value=0.1)`` and
  ``AdamW`` with ``eps=0`` (both place eps differently from Keras, nowhere else).
- Recomputation invariants: ``get_state``/``set_state`` into an optimizer rebuilt from its JSON
  config continues bit-identically; ``Sequential.fit`` interrupted by ``save``/``load_model``
  continues the loss curve of an uninterrupted run.
"""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch

from lstmkit import load_model, optimizers
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential
from lstmkit.optimizers import SGD, Adagrad, Adam, AdamW, ExponentialDecay, Nadam

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"

SHAPES = {"lstm_1.kernel": (3, 8), "lstm_1.bias": (8,), "dense.kernel": (2, 1)}
STEPS = 25


@pytest.fixture
def keras_float64():
    old = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(old)


def _problem(seed, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    scales = np.exp(rng.normal(size=steps))  # gradient scale varies from step to step
    grads = [{k: c * rng.normal(size=s) for k, s in SHAPES.items()} for c in scales]
    return params, grads


def _ours(opt, params0, grad_seq):
    params = {k: v.copy() for k, v in params0.items()}
    arrays = dict(params)
    out = []
    for grads in grad_seq:
        opt.apply(params, grads)
        assert all(params[k] is arrays[k] for k in params)  # in place
        out.append({k: v.copy() for k, v in params.items()})
    return out


def _keras(opt, params0, grad_seq, exclude=None):
    names = list(params0)
    variables = [keras.Variable(params0[k].copy(), dtype="float64", name=k) for k in names]
    if exclude is not None:
        opt.exclude_from_weight_decay(var_names=exclude)
    out = []
    for grads in grad_seq:
        tensors = [keras.ops.convert_to_tensor(grads[k], dtype="float64") for k in names]
        opt.apply(tensors, variables)
        out.append({k: keras.ops.convert_to_numpy(v).copy() for k, v in zip(names, variables)})
    return out


def _torch(make_opt, params0, grad_seq):
    # torch keeps NAdam's mu_product (and step counters) in the default dtype: make it float64
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params0.items()}
        opt = make_opt(list(tp.values()))
        out = []
        for grads in grad_seq:
            for k, t in tp.items():
                t.grad = torch.tensor(grads[k].copy())
            opt.step()
            out.append({k: t.detach().numpy().copy() for k, t in tp.items()})
    finally:
        torch.set_default_dtype(old)
    return out


def _assert_same(ours, theirs, rtol=1e-11, atol=1e-13):
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=f"{k} step {step}")


def _moved(params0, trajectory):
    """The witness is not vacuous: the parameters moved well beyond the tolerance."""
    return min(np.max(np.abs(trajectory[-1][k] - v)) for k, v in params0.items())


# (lstmkit optimizer, Keras optimizer, parameters excluded from weight decay)
KERAS_CASES = {
    "nadam_default": (lambda: Nadam(), lambda: keras.optimizers.Nadam(), None),
    "nadam": (
        lambda: Nadam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-4, clipvalue=0.8),
        lambda: keras.optimizers.Nadam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-4, clipvalue=0.8),
        None,
    ),
    "nadam_decay_schedule": (
        lambda: Nadam(ExponentialDecay(0.05, 4, 0.7), weight_decay=0.3),
        lambda: keras.optimizers.Nadam(
            keras.optimizers.schedules.ExponentialDecay(0.05, 4, 0.7), weight_decay=0.3
        ),
        None,
    ),
    "adagrad_default": (lambda: Adagrad(), lambda: keras.optimizers.Adagrad(), None),
    "adagrad": (
        lambda: Adagrad(0.3, initial_accumulator_value=0.02, epsilon=1e-3, clipvalue=1.5),
        lambda: keras.optimizers.Adagrad(
            0.3, initial_accumulator_value=0.02, epsilon=1e-3, clipvalue=1.5
        ),
        None,
    ),
    "adamw_default": (lambda: AdamW(), lambda: keras.optimizers.AdamW(), None),
    "adamw": (
        lambda: AdamW(0.05, weight_decay=0.2, beta_1=0.7, epsilon=1e-3, amsgrad=True),
        lambda: keras.optimizers.AdamW(
            0.05, weight_decay=0.2, beta_1=0.7, epsilon=1e-3, amsgrad=True
        ),
        None,
    ),
    "adamw_exclude_bias": (
        lambda: AdamW(0.05, weight_decay=0.5),
        lambda: keras.optimizers.AdamW(0.05, weight_decay=0.5),
        ["bias"],
    ),
    "adam_weight_decay": (
        lambda: Adam(0.01, weight_decay=0.1),
        lambda: keras.optimizers.Adam(0.01, weight_decay=0.1),
        None,
    ),
    "sgd_weight_decay": (
        lambda: SGD(0.05, momentum=0.9, weight_decay=0.2),
        lambda: keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.2),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_trajectory_equals_keras(case, keras_float64):
    make_ours, make_keras, exclude = KERAS_CASES[case]
    params, grads = _problem(seed=sorted(KERAS_CASES).index(case))
    ours_opt = make_ours()
    if exclude is not None:
        ours_opt.exclude_from_weight_decay(var_names=exclude)
    ours = _ours(ours_opt, params, grads)
    theirs = _keras(make_keras(), params, grads, exclude)
    _assert_same(ours, theirs)
    assert _moved(params, ours) > 1e-3
    if exclude is not None:  # the exclusion mattered: without it the bias ends elsewhere
        plain = _ours(make_ours(), params, grads)
        assert np.max(np.abs(plain[-1]["lstm_1.bias"] - ours[-1]["lstm_1.bias"])) > 1e-4


TORCH_CASES = {
    "nadam": (
        lambda: Nadam(0.01, beta_1=0.85, beta_2=0.995, epsilon=1e-3),
        lambda p: torch.optim.NAdam(p, lr=0.01, betas=(0.85, 0.995), eps=1e-3, momentum_decay=1),
    ),
    "nadam_weight_decay": (
        lambda: Nadam(0.01, weight_decay=0.25),
        lambda p: torch.optim.NAdam(
            p,
            lr=0.01,
            eps=1e-7,
            weight_decay=0.25,
            momentum_decay=1,
            decoupled_weight_decay=True,
        ),
    ),
    "adagrad": (
        lambda: Adagrad(0.2, epsilon=0.0),
        lambda p: torch.optim.Adagrad(p, lr=0.2, initial_accumulator_value=0.1, eps=0.0),
    ),
    "adamw": (
        lambda: AdamW(0.02, weight_decay=0.3, epsilon=0.0),
        lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.3, eps=0.0),
    ),
    "adamw_amsgrad": (
        lambda: AdamW(0.02, weight_decay=0.05, beta_2=0.9, epsilon=0.0, amsgrad=True),
        lambda p: torch.optim.AdamW(
            p, lr=0.02, weight_decay=0.05, betas=(0.9, 0.9), eps=0.0, amsgrad=True
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_trajectory_equals_torch(case):
    make_ours, make_torch = TORCH_CASES[case]
    params, grads = _problem(seed=10 + sorted(TORCH_CASES).index(case))
    ours = _ours(make_ours(), params, grads)
    _assert_same(ours, _torch(make_torch, params, grads))
    assert _moved(params, ours) > 1e-3


def test_weight_decay_alone_is_the_closed_form():
    """With zero gradients Adagrad does not move, so only the decay acts: p_t = p_0 (1 - wd lr)^t
    (Keras computes p - p*wd*lr, the same to rounding)."""
    params, grads = _problem(seed=20, steps=7)
    zeros = [{k: np.zeros_like(g) for k, g in step.items()} for step in grads]
    out = _ours(Adagrad(0.1, weight_decay=0.5), params, zeros)
    for k, p0 in params.items():
        np.testing.assert_allclose(out[-1][k], p0 * (1 - 0.05) ** 7, rtol=1e-13)


STATE_CASES = [
    lambda: Nadam(0.01, weight_decay=0.1),
    lambda: Adagrad(0.1, initial_accumulator_value=0.3, clipnorm=2.0),
    lambda: AdamW(ExponentialDecay(0.01, 3, 0.5), amsgrad=True),
]


@pytest.mark.parametrize("make", STATE_CASES, ids=["nadam", "adagrad", "adamw"])
@pytest.mark.parametrize("split", [1, 9])
def test_resume_from_state_is_bit_identical(make, split):
    params, grads = _problem(seed=21, steps=16)
    whole = _ours(make(), params, grads)
    first = make()
    head = _ours(first, params, grads[:split])
    state = first.get_state()
    assert set(state) == {"iterations"} | {f"{s}/{k}" for s in first.slot_names() for k in SHAPES}
    second = optimizers.get(json.loads(json.dumps(optimizers.serialize(first))))
    assert type(second) is type(first) and second.get_config() == first.get_config()
    second.set_state(state)
    tail = _ours(second, head[-1], grads[split:])
    for a, b in zip(whole, head + tail, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_nadam_state_set_back_to_an_earlier_step_restarts_the_momentum_product():
    params, grads = _problem(seed=22, steps=8)
    opt = Nadam(0.01)
    early = _ours(opt, params, grads[:3])
    state = opt.get_state()
    _ours(opt, early[-1], grads[3:])  # run ahead ...
    opt.set_state(state)  # ... then rewind
    replay = _ours(opt, early[-1], grads[3:])
    reference = _ours(Nadam(0.01), params, grads)[3:]
    for a, b in zip(reference, replay, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("name", ["nadam", "adagrad", "adamw"])
def test_fit_resumed_from_a_saved_file_continues_the_loss_curve(name, tmp_path):
    rng = np.random.default_rng(23)
    x = rng.normal(size=(24, 5, 3)).astype(np.float32)
    y = rng.normal(size=(24, 1)).astype(np.float32)

    def model():
        m = Sequential([LSTM(4, input_shape=(5, 3)), Dense(1)])
        m.compile(optimizer=name, loss="mse", seed=3)
        m.build()
        m.set_weights(
            [np.random.default_rng(24).normal(scale=0.5, size=w.shape) for w in m.get_weights()]
        )
        return m

    whole = model().fit(x, y, epochs=4, batch_size=8, verbose=0).history["loss"]
    first = model()
    head = first.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]
    first.save(tmp_path / "m.lstmkit")
    again = load_model(tmp_path / "m.lstmkit")
    assert type(again.optimizer) is type(first.optimizer)
    tail = again.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0).history["loss"]
    assert head + tail == whole
    assert whole[-1] != whole[0]


@pytest.mark.parametrize(
    "spelling, cls",
    [("nadam", Nadam), ("Nadam", Nadam), ("ADAGRAD", Adagrad), ("AdamW", AdamW), ("adamw", AdamW)],
)
def test_get_by_name_gives_keras_defaults(spelling, cls, keras_float64):
    ours = optimizers.get(spelling)
    assert type(ours) is cls
    theirs = keras.optimizers.get(cls.__name__.lower()).get_config()
    for k, v in ours.get_config().items():
        if k in theirs and k != "learning_rate":
            assert v == pytest.approx(theirs[k]), k
    assert ours.learning_rate == pytest.approx(float(theirs["learning_rate"]))


def test_argument_errors_name_argument_and_value():
    with pytest.raises(ValueError, match="AdamW: argument 'weight_decay' must be a float >= 0"):
        AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="Nadam: argument 'weight_decay' must be a number >= 0"):
        Nadam(weight_decay=-0.1)
    with pytest.raises(ValueError, match="'initial_accumulator_value' must be a number >= 0"):
        Adagrad(initial_accumulator_value=-1)
    with pytest.raises(ValueError, match=r"Nadam: argument 'beta_1' must be in \[0, 1\); got 1"):
        Nadam(beta_1=1)
    with pytest.raises(ValueError, match="Adagrad: argument 'epsilon' must be a number >= 0"):
        Adagrad(epsilon="tiny")
    with pytest.raises(ValueError, match="'var_names' must be a list of non-empty strings"):
        AdamW().exclude_from_weight_decay(var_names=[3])
    with pytest.raises(ValueError, match=r"unexpected keys \['m/w'\].*\['accumulator'\]"):
        Adagrad().set_state({"iterations": np.array(1), "m/w": np.zeros(2)})
