"""Optimizers and schedules against independent witnesses.

- ``torch.optim`` (float64, same initial params, same gradient sequence) wherever Keras and torch
  define the same trajectory: SGD with momentum and nesterov for a constant lr (Keras keeps lr
  inside the buffer, ``m = -lr * buf``, which is the same sequence), Adam and AMSGrad with
  ``eps = 0`` and RMSprop (plain/centred, with/without momentum) with ``eps = 0`` (the two
  libraries place eps differently, nowhere else), clipping via ``clip_grad_norm_`` /
  ``clip_grad_value_``, schedules via ``ExponentialLR`` and ``CosineAnnealingLR``.
- Hand-derived closed forms where they differ: with a constant gradient ``g`` Adam's moments are
  ``m_t = (1 - b1^t) g``, ``v_t = (1 - b2^t) g^2`` and RMSprop's ``v_t = (1 - rho^t) g^2``,
  ``a_t = (1 - rho^t) g``, which pins down where eps sits; SGD momentum under a changing lr is
  written out for two steps.
- Keras' documented ``PiecewiseConstantDecay`` example.
- A recomputation invariant: get_state/set_state mid-run continues bit-identically.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lstmkit import optimizers
from lstmkit.optimizers import (
    SGD,
    Adam,
    CosineDecay,
    ExponentialDecay,
    PiecewiseConstantDecay,
    RMSprop,
)

SHAPES = {"lstm_1.kernel": (3, 8), "lstm_1.bias": (8,), "dense.kernel": (2, 1)}
STEPS = 6


def _problem(seed=0, grad_scale=1.0, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = [{k: grad_scale * rng.normal(size=s) for k, s in SHAPES.items()} for _ in range(steps)]
    return params, grads


def _ours(opt, params0, grad_seq):
    params = {k: v.copy() for k, v in params0.items()}
    arrays = dict(params)  # the very objects: updates must be in place
    out = []
    for grads in grad_seq:
        opt.apply(params, grads)
        assert all(params[k] is arrays[k] for k in params)
        out.append({k: v.copy() for k, v in params.items()})
    return out


def _torch(make_opt, params0, grad_seq, clip=None, make_scheduler=None):
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params0.items()}
    opt = make_opt(list(tp.values()))
    scheduler = make_scheduler(opt) if make_scheduler else None
    out = []
    for grads in grad_seq:
        for k, t in tp.items():
            t.grad = torch.tensor(grads[k].copy())
        if clip is not None:
            clip(list(tp.values()))
        opt.step()
        if scheduler is not None:
            scheduler.step()
        out.append({k: t.detach().numpy().copy() for k, t in tp.items()})
    return out


def _assert_same(ours, theirs, rtol=1e-12, atol=1e-13):
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=f"{k} step {step}")


# ------------------------------------------------------------------------------ torch witnesses

TORCH_CASES = {
    "sgd": (
        lambda: SGD(learning_rate=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1),
    ),
    "sgd_momentum": (
        lambda: SGD(learning_rate=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "sgd_nesterov": (
        lambda: SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adam_eps0": (
        lambda: Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=0.0),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95), eps=0.0),
    ),
    "amsgrad_eps0": (
        lambda: Adam(learning_rate=0.01, epsilon=0.0, amsgrad=True),
        lambda p: torch.optim.Adam(p, lr=0.01, eps=0.0, amsgrad=True),
    ),
    "rmsprop_eps0": (
        lambda: RMSprop(learning_rate=0.01, rho=0.8, epsilon=0.0),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=0.0),
    ),
    "rmsprop_momentum_eps0": (
        lambda: RMSprop(learning_rate=0.01, rho=0.9, momentum=0.7, epsilon=0.0),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.7, eps=0.0),
    ),
    "rmsprop_centered_eps0": (
        lambda: RMSprop(learning_rate=0.01, rho=0.9, epsilon=0.0, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, centered=True),
    ),
    "rmsprop_centered_momentum_eps0": (
        lambda: RMSprop(learning_rate=0.01, rho=0.9, momentum=0.5, epsilon=0.0, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, eps=0.0, centered=True),
    ),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_matches_torch(case):
    ours_factory, torch_factory = TORCH_CASES[case]
    params, grads = _problem(seed=1)
    _assert_same(_ours(ours_factory(), params, grads), _torch(torch_factory, params, grads))


def test_clipnorm_is_global_and_matches_torch_clip_grad_norm():
    params, grads = _problem(seed=2, grad_scale=10.0)  # global norm ~ 60 > 1: always clipped

    def clip(p, limit=1.0):
        # torch scales by max_norm / (norm + 1e-6), Keras by limit / norm: cancel the 1e-6
        norm = float(
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.grad) for t in p]))
        )
        torch.nn.utils.clip_grad_norm_(p, max_norm=limit * (norm + 1e-6) / norm)

    theirs = _torch(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), params, grads, clip=clip)
    for kwargs in ({"clipnorm": 1.0}, {"global_clipnorm": 1.0}):
        ours = _ours(SGD(learning_rate=0.1, momentum=0.9, **kwargs), params, grads)
        _assert_same(ours, theirs)


def test_clipnorm_below_threshold_is_identity_and_grads_are_not_modified():
    params, grads = _problem(seed=3)
    originals = [{k: g.copy() for k, g in step.items()} for step in grads]
    ours = _ours(Adam(learning_rate=0.01, clipnorm=1e6), params, grads)
    _assert_same(ours, _ours(Adam(learning_rate=0.01), params, grads), rtol=0, atol=0)
    clipped = _ours(RMSprop(clipnorm=0.1), params, grads)
    assert clipped  # ran
    for step, original in zip(grads, originals, strict=True):
        for k in step:
            np.testing.assert_array_equal(step[k], original[k])


def test_clipvalue_matches_torch_clip_grad_value():
    params, grads = _problem(seed=4, grad_scale=3.0)
    theirs = _torch(
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5),
        params,
        grads,
        clip=lambda p: torch.nn.utils.clip_grad_value_(p, clip_value=0.5),
    )
    _assert_same(_ours(SGD(learning_rate=0.1, momentum=0.5, clipvalue=0.5), params, grads), theirs)


def test_adam_with_schedule_matches_torch_scheduler_evaluated_before_the_step():
    # ExponentialDecay(decay_steps=1, staircase) is ExponentialLR; step k must use lr(k), k from 0.
    params, grads = _problem(seed=5)
    schedule = ExponentialDecay(0.05, decay_steps=1, decay_rate=0.5, staircase=True)
    ours = _ours(Adam(learning_rate=schedule, epsilon=0.0), params, grads)
    theirs = _torch(
        lambda p: torch.optim.Adam(p, lr=0.05, eps=0.0),
        params,
        grads,
        make_scheduler=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.5),
    )
    _assert_same(ours, theirs)


# ------------------------------------------------------------------------ closed forms (eps etc.)

G = np.array([0.5, -2.0, 0.01, 3.0])  # a constant gradient, one value per parameter element


def _constant_gradient_run(opt, steps):
    p = {"w": np.zeros(G.shape)}
    for _ in range(steps):
        opt.apply(p, {"w": G.copy()})
    return p["w"]


def test_adam_eps_sits_next_to_sqrt_v_before_bias_correction():
    lr, b2, eps, steps = 0.1, 0.999, 0.1, 5
    # m_t = (1-b1^t) g, v_t = (1-b2^t) g^2, so each step moves by
    # lr * sqrt(1-b2^t)/(1-b1^t) * (1-b1^t) g / (sqrt(1-b2^t) |g| + eps)
    expected = [
        -sum(
            lr * math.sqrt(1 - b2**t) * g / (math.sqrt(1 - b2**t) * abs(g) + eps)
            for t in range(1, steps + 1)
        )
        for g in G
    ]
    got = _constant_gradient_run(Adam(learning_rate=lr, beta_2=b2, epsilon=eps), steps)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    # torch puts eps after the bias correction: a visibly different trajectory for this eps
    torch_like = [-sum(lr * g / (abs(g) + eps) for _ in range(steps)) for g in G]
    assert not np.allclose(got, torch_like, rtol=1e-3)


def test_rmsprop_eps_sits_inside_the_square_root():
    lr, rho, eps, steps = 0.01, 0.9, 0.1, 4
    plain = [
        -sum(lr * g / math.sqrt((1 - rho**t) * g * g + eps) for t in range(1, steps + 1)) for g in G
    ]
    # centred: v_t - a_t^2 = (1-rho^t) g^2 - (1-rho^t)^2 g^2 = (1-rho^t) rho^t g^2
    centered = [
        -sum(lr * g / math.sqrt((1 - rho**t) * rho**t * g * g + eps) for t in range(1, steps + 1))
        for g in G
    ]
    opt = RMSprop(learning_rate=lr, rho=rho, epsilon=eps)
    np.testing.assert_allclose(_constant_gradient_run(opt, steps), plain, rtol=1e-13)
    opt = RMSprop(learning_rate=lr, rho=rho, epsilon=eps, centered=True)
    np.testing.assert_allclose(_constant_gradient_run(opt, steps), centered, rtol=1e-13)


def test_sgd_momentum_keeps_lr_inside_the_buffer_when_lr_changes():
    # Keras: m1 = -lr0 g1; p1 = p0 + m1; m2 = mu m1 - lr1 g2; p2 = p1 + m2
    # (torch would give p2 = p1 - lr1 (mu g1 + g2) instead)
    mu, lr0, lr1, g1, g2, p0 = 0.9, 0.1, 0.01, 2.0, -1.0, 0.5
    m1 = -lr0 * g1
    m2 = mu * m1 - lr1 * g2
    expected_plain = p0 + m1 + m2
    expected_nesterov = (p0 + mu * m1 - lr0 * g1) + (mu * m2 - lr1 * g2)
    schedule = PiecewiseConstantDecay([0], [lr0, lr1])  # step 0 -> lr0, step 1 -> lr1
    for nesterov, expected in ((False, expected_plain), (True, expected_nesterov)):
        p = {"w": np.array([p0])}
        opt = SGD(learning_rate=schedule, momentum=mu, nesterov=nesterov)
        opt.apply(p, {"w": np.array([g1])})
        opt.apply(p, {"w": np.array([g2])})
        assert p["w"][0] == pytest.approx(expected, rel=1e-15)


# ----------------------------------------------------------------------------------- schedules


def test_exponential_decay_keras_docstring_values():
    s = ExponentialDecay(0.1, decay_steps=100000, decay_rate=0.96)
    assert s(0) == 0.1
    assert s(50000) == pytest.approx(0.1 * math.sqrt(0.96), rel=1e-15)
    stair = ExponentialDecay(0.1, decay_steps=100000, decay_rate=0.96, staircase=True)
    assert stair(99999) == 0.1
    assert stair(100000) == pytest.approx(0.096, rel=1e-15)


def test_cosine_decay_matches_torch_cosine_annealing_then_stays_flat():
    lr0, steps, alpha = 0.2, 10, 0.1
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=alpha * lr0)
    ours = CosineDecay(lr0, decay_steps=steps, alpha=alpha)
    for step in range(steps + 1):
        assert ours(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), step
        opt.step()
        sched.step()
    assert ours(steps + 7) == pytest.approx(alpha * lr0, rel=1e-15)


def test_piecewise_constant_decay_keras_docstring_example():
    # Keras docs: "1.0 for the first 100001 steps, 0.5 for the next 10000 steps, and 0.1 for any
    # additional steps" with boundaries [100000, 110000] and values [1.0, 0.5, 0.1].
    s = PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1])
    assert [s(0), s(100000), s(100001), s(110000), s(110001)] == [1.0, 1.0, 0.5, 0.5, 0.1]


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match=r"'values' must have len\(boundaries\) \+ 1 = 3.*got 2"):
        PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="'boundaries' must be strictly increasing; got"):
        PiecewiseConstantDecay([2, 1], [1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="'decay_steps' must be a positive number; got 0"):
        ExponentialDecay(0.1, 0, 0.5)


# ----------------------------------------------------------------------------- state and config

STATE_CASES = [
    lambda: SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    lambda: Adam(learning_rate=ExponentialDecay(0.01, 2, 0.5), amsgrad=True, clipnorm=1.0),
    lambda: RMSprop(learning_rate=CosineDecay(0.01, 4), momentum=0.5, centered=True),
]


@pytest.mark.parametrize("make", STATE_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_resume_from_state_is_bit_identical(make, dtype):
    params, grads = _problem(seed=6)
    params = {k: v.astype(dtype) for k, v in params.items()}
    whole = _ours(make(), params, grads)

    first = make()
    half = _ours(first, params, grads[:3])
    state = first.get_state()
    assert state["iterations"] == 3
    assert all(v.dtype == dtype for k, v in state.items() if k != "iterations")
    # a fresh optimizer rebuilt from JSON config, then the saved state
    second = optimizers.get(json.loads(json.dumps(optimizers.serialize(first))))
    second.set_state(state)
    rest = _ours(second, half[-1], grads[3:])
    for a, b in zip(whole, half + rest, strict=True):
        for k in a:
            assert a[k].dtype == dtype
            np.testing.assert_array_equal(a[k], b[k])


def test_state_keys_are_slot_slash_param_and_copies():
    params, grads = _problem(seed=7)
    opt = Adam()
    _ours(opt, params, grads[:1])
    state = opt.get_state()
    assert set(state) == {"iterations"} | {f"{s}/{k}" for s in ("m", "v") for k in SHAPES}
    state["m/lstm_1.kernel"][...] = 123.0
    assert not np.any(opt.get_state()["m/lstm_1.kernel"] == 123.0)
    assert SGD().get_state().keys() == {"iterations"}  # no momentum, no slots


def test_set_state_errors_name_the_bad_keys():
    with pytest.raises(ValueError, match=r"unexpected keys \['velocity/w'\].*\['m', 'v'\]"):
        Adam().set_state({"iterations": np.array(1), "velocity/w": np.zeros(2)})
    with pytest.raises(ValueError, match="must contain 'iterations'; got keys"):
        Adam().set_state({"m/w": np.zeros(2)})
    opt = SGD(momentum=0.9)
    opt.set_state({"iterations": np.array(2), "momentum/w": np.zeros(3)})
    with pytest.raises(ValueError, match=r"slot 'momentum/w' has shape \(3,\).*shape \(2,\)"):
        opt.apply({"w": np.zeros(2)}, {"w": np.ones(2)})


def test_apply_errors_name_argument_received_and_expected():
    opt = Adam()
    with pytest.raises(ValueError, match=r"'grads' must have the same keys.*missing \['b'\]"):
        opt.apply({"a": np.zeros(2), "b": np.zeros(2)}, {"a": np.zeros(2)})
    with pytest.raises(ValueError, match=r"grads\['a'\] must have shape \(2,\); got \(3,\)"):
        opt.apply({"a": np.zeros(2)}, {"a": np.zeros(3)})
    with pytest.raises(ValueError, match=r"params\['a'\] must be a floating np.ndarray; got list"):
        opt.apply({"a": [0.0]}, {"a": np.zeros(1)})
    assert opt.iterations == 0  # nothing was applied


def test_constructor_errors():
    with pytest.raises(ValueError, match="'clipnorm' and 'global_clipnorm' are aliases"):
        SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="only one of 'clipnorm'"):
        SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match=r"'momentum' must be in \[0, 1\]; got 1.5"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"'beta_2' must be in \[0, 1\); got 1.0"):
        Adam(beta_2=1.0)
    with pytest.raises(ValueError, match="'learning_rate' must be a float >= 0"):
        RMSprop(learning_rate="fast")


@pytest.mark.parametrize(
    "opt",
    [
        SGD(learning_rate=0.3, momentum=0.2, nesterov=True, clipvalue=0.5),
        Adam(learning_rate=PiecewiseConstantDecay([10], [0.1, 0.01]), amsgrad=True),
        RMSprop(learning_rate=CosineDecay(0.1, 100, alpha=0.1), centered=True, global_clipnorm=2),
    ],
)
def test_config_round_trip_through_json(opt):
    cfg = opt.get_config()
    again = type(opt).from_config(json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg
    assert type(optimizers.get(optimizers.serialize(opt))) is type(opt)


def test_get_and_learning_rate_property():
    assert isinstance(optimizers.get("ADAM"), Adam)
    assert isinstance(optimizers.get("sgd"), SGD)
    assert optimizers.get("RMSprop").learning_rate == 0.001  # Keras default
    inst = SGD()
    assert optimizers.get(inst) is inst
    with pytest.raises(ValueError, match=r"'identifier' must be one of.*got 'adamax'"):
        optimizers.get("adamax")

    opt = SGD(learning_rate=0.1)
    opt.learning_rate = 0.05  # callbacks do this
    p = {"w": np.array([1.0])}
    opt.apply(p, {"w": np.array([2.0])})
    assert p["w"][0] == pytest.approx(0.9)
    assert opt.get_config()["learning_rate"] == 0.05

    scheduled = SGD(learning_rate=ExponentialDecay(1.0, 1, 0.5, staircase=True))
    scheduled.apply({"w": np.zeros(1)}, {"w": np.zeros(1)})
    assert scheduled.learning_rate == 0.5  # the rate the next step uses
    with pytest.raises(TypeError, match="created as a ExponentialDecay schedule"):
        scheduled.learning_rate = 0.1
