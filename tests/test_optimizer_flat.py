"""One update for every parameter (``optimizers.base._FlatStep``) against the per-array update.

The witness is the per-array path itself, which ``test_optimizers.py`` checks against
``torch.optim`` and closed forms: a subclass that overrides ``_update`` (by calling the parent's)
is not one of lstmkit's element-by-element rules, so it updates parameter by parameter. Every
rule is element by element, so the two must agree bit for bit, also across what the flat cache
has to notice: ``set_state``, parameters added or reshaped, slots of another dtype.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import lstmkit
from lstmkit import optimizers
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential

SHAPES = {"lstm.kernel": (3, 8), "lstm.bias": (8,), "dense.kernel": (2, 5), "dense.bias": (5,)}

MAKERS = {
    "adam_clipnorm": lambda: optimizers.Adam(0.01, clipnorm=0.5),
    "amsgrad_clipvalue": lambda: optimizers.Adam(0.01, amsgrad=True, clipvalue=0.3),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    "nadam": lambda: optimizers.Nadam(0.01),
    "rmsprop": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "sgd": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adagrad": lambda: optimizers.Adagrad(0.05),
}


def _per_array(opt):
    """``opt`` turned into an instance of a subclass whose ``_update`` is its own (not an
    element-by-element rule lstmkit knows), so that it updates parameter by parameter."""
    cls = type(opt)
    sub = type(f"PerArray{cls.__name__}", (cls,), {"_update": lambda s, *a: cls._update(s, *a)})
    opt.__class__ = sub
    return opt


def _params(dtype=np.float32, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}


def _grads(params, step, cast=False):
    rng = np.random.default_rng(100 + step)
    # F-ordered and float64 gradients too: each is cast as the per-array update casts it;
    # ``cast``: of the parameters' dtype (then the flat step applies the clipnorm scale itself)
    out = {k: rng.normal(size=p.shape) for k, p in params.items()}
    if cast:
        out = {k: g.astype(params[k].dtype) for k, g in out.items()}
    return {k: np.asfortranarray(g) if g.ndim == 2 else g for k, g in out.items()}


def _run(opt, params, steps, start=0, cast=False):
    for t in range(start, start + steps):
        opt.apply(params, _grads(params, t, cast))
    return params


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cast", [False, True])
def test_flat_update_is_bit_identical_to_per_array(name, dtype, cast):
    flat, ref = MAKERS[name](), _per_array(MAKERS[name]())
    a, b = _run(flat, _params(dtype), 7, cast=cast), _run(ref, _params(dtype), 7, cast=cast)
    _assert_same(a, b)
    _assert_same(flat.get_state(), ref.get_state())
    assert flat.__dict__.get("_flat") is not None  # the flat path did run
    assert ref.__dict__.get("_flat") is None


@pytest.mark.parametrize("name", ["adam_clipnorm", "rmsprop", "nadam"])
def test_set_state_mid_run_is_seen_by_the_flat_slots(name):
    """Restoring an earlier state (and weights) then continuing gives the uninterrupted run."""
    ref = _run(_per_array(MAKERS[name]()), _params(), 8)
    opt, params = MAKERS[name](), _params()
    _run(opt, params, 5)
    state, saved = opt.get_state(), {k: v.copy() for k, v in params.items()}
    _run(opt, params, 3, start=90)  # a detour the restore must undo
    opt.set_state(state)
    params.update(saved)
    _assert_same(_run(opt, params, 3, start=5), ref)


def test_parameters_added_then_removed_keep_their_slots():
    """A layer made trainable midway (names added), then frozen again (names removed)."""
    few = {k: v for k, v in SHAPES.items() if k.startswith("lstm")}
    out = []
    for opt in (MAKERS["adam_clipnorm"](), _per_array(MAKERS["adam_clipnorm"]())):
        params = _params()
        part = {k: params[k] for k in few}
        _run(opt, part, 3)
        _run(opt, params, 3, start=3)
        _run(opt, part, 2, start=6)
        out.append((params, opt.get_state()))
    _assert_same(out[0][0], out[1][0])
    _assert_same(out[0][1], out[1][1])


def test_parameter_reshaped_under_the_same_name_raises_as_per_array():
    opt = MAKERS["adam_clipnorm"]()
    _run(opt, _params(), 2)
    other = _params(shapes={**SHAPES, "dense.kernel": (2, 6), "dense.bias": (6,)})
    with pytest.raises(ValueError, match=r"slot 'm/dense.kernel' has shape \(2, 5\)"):
        _run(opt, other, 1)


def test_float64_state_restored_into_float32_parameters_updates_as_per_array():
    """The per-array update computes in the slots' dtype; the flat one must not cast them."""
    src = MAKERS["adam_clipnorm"]()
    _run(src, _params(np.float64), 3)
    state = src.get_state()
    out = []
    for opt in (MAKERS["adam_clipnorm"](), _per_array(MAKERS["adam_clipnorm"]())):
        opt.set_state(state)
        params = _run(opt, _params(np.float32), 3, start=3)
        out.append((params, opt.get_state()))
    _assert_same(out[0][0], out[1][0])
    _assert_same(out[0][1], out[1][1])
    assert out[0][1]["m/lstm.kernel"].dtype == np.float64


def test_mixed_parameter_dtypes_update_as_per_array():
    out = []
    for opt in (MAKERS["adam_clipnorm"](), _per_array(MAKERS["adam_clipnorm"]())):
        params = _params()
        params["dense.bias"] = params["dense.bias"].astype(np.float64)
        out.append(_run(opt, params, 4))
    _assert_same(*out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipnorm_from_the_gathered_gradients_is_bit_identical(dtype, monkeypatch):
    """C-contiguous gradients of the parameters' dtype: the clipnorm scale comes from the flat
    vector the step gathers (one square, each gradient's sum over its part), and must be the
    per-array ``_clip``'s to the last bit: the sums added in the gradients' order (here the
    reverse of the parameters', as a backward pass gives them), arrays long enough for NumPy's
    pairwise summation to block, norms that clip and norms that do not."""
    shapes = {**SHAPES, "big.kernel": (67, 300), "big.bias": (300,)}
    gathered = []
    real = optimizers.Adam._norm_scale

    def spy(opt, flat, grads):  # the scale, and the per-array _clip's on the same gradients
        scale = real(opt, flat, grads)
        gathered.append((scale, opt._clip(grads, defer=True)[1]))
        return scale

    monkeypatch.setattr(optimizers.Adam, "_norm_scale", spy)
    out = []
    for opt in (
        optimizers.Adam(0.01, clipnorm=40.0),
        _per_array(optimizers.Adam(0.01, clipnorm=40.0)),
    ):
        params = _params(dtype, shapes)
        for t in range(12):
            rng = np.random.default_rng(200 + t)
            size = 10.0 ** rng.uniform(-1.5, 0.5)  # norms from ~2 to ~400 (limit 40)
            grads = {k: (rng.normal(size=params[k].shape) * size).astype(dtype)
                     for k in reversed(list(params))}  # fmt: skip
            opt.apply(params, grads)
        out.append((params, opt.get_state()))
    assert len(gathered) == 12  # the flat optimizer took the gathered norm at every step
    assert all(a == b for a, b in gathered)  # bit for bit
    assert sum(a is not None for a, _ in gathered) in range(3, 10)  # clipped at some steps only
    _assert_same(out[0][0], out[1][0])
    _assert_same(out[0][1], out[1][1])


def test_lstm_dense_model_with_adam_clipnorm_trains_bit_identically():
    x = np.random.default_rng(0).normal(size=(40, 6, 3)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    weights = []
    for opt in (
        optimizers.Adam(3e-3, clipnorm=0.1),
        _per_array(optimizers.Adam(3e-3, clipnorm=0.1)),
    ):
        lstmkit.set_random_seed(4)
        model = Sequential([LSTM(8), Dense(4, activation="relu"), Dense(2)])
        model.compile(optimizer=opt, loss="mse", seed=2)
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        model.layers[0].trainable = False  # the flat step is made again for fewer parameters
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        model.layers[0].trainable = True
        model.train_on_batch(x[:5], y[:5])
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        assert np.array_equal(a, b)


def test_a_deep_copy_of_the_optimizer_updates_its_own_slots():
    """``copy.deepcopy`` copies the slot views as plain arrays: the copy's flat slots must be
    made again from them, and its ``get_state`` follow its own updates."""
    opt, params = MAKERS["adam_clipnorm"](), _params()
    _run(opt, params, 3)
    twin, twin_params = copy.deepcopy(opt), {k: v.copy() for k, v in params.items()}
    ref = _per_array(MAKERS["adam_clipnorm"]())
    ref_params = _run(ref, _params(), 3)
    _run(twin, twin_params, 2, start=3)
    _run(ref, ref_params, 2, start=3)
    _assert_same(twin_params, ref_params)
    _assert_same(twin.get_state(), ref.get_state())


BIG = {
    "rnn.kernel": (96, 512),
    "rnn.recurrent_kernel": (128, 512),
    "rnn.bias": (512,),
    "out.kernel": (128, 75),
    "out.bias": (75,),
}  # fmt: skip  (the char LM's LSTM layer and head)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["adam_clipnorm", "adamw"])
def test_compiled_flat_adam_is_bit_identical_to_numpy_per_array(name, dtype, threads, monkeypatch):
    """On the compiled backend (one thread or two, inside a step's compute scope) the flat Adam
    update is one compiled pass (``lstmkit.ops.fast.adam_flat``); weights and slots stay
    bit-identical to the NumPy per-array update, in float32 and float64."""
    from lstmkit.ops import backend, fast
    from lstmkit.ops.fast import common

    calls = []
    real = fast.adam_flat
    monkeypatch.setattr(fast, "adam_flat", lambda *a: calls.append(a[0].size) or real(*a))
    before = backend.get_backend()
    backend.set_backend("numba")
    common.set_num_threads(threads)
    try:
        with backend.compute_scope():
            flat = _run(MAKERS[name](), _params(dtype, BIG), 5, cast=True)
        ref = _run(_per_array(MAKERS[name]()), _params(dtype, BIG), 5, cast=True)
    finally:
        common.set_num_threads(None)
        backend.set_backend(before)
    _assert_same(flat, ref)
    n = sum(int(np.prod(s)) for s in BIG.values())
    assert calls == [n] * 5  # the compiled pass updated every element of every step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_sum_of_squares_is_numpys_sum_to_the_bit(dtype):
    """``fast.sum_squares`` (the clipnorm's squared norm of the gathered gradients, in one
    compiled call) against what ``Optimizer._clip`` computes with NumPy, part by part in the
    given order: ``float(np.sum(np.square(part, dtype=np.float64)))`` added up in a Python
    float, for part sizes from 1 to 400k (NumPy's pairwise blocks of 8, 128 and their halves)
    and values over 16 decades."""
    from lstmkit.ops import fast

    rng = np.random.default_rng(0)
    sizes = [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1000, 8191, 8192, 8193,
             65537, 400_003]  # fmt: skip
    sizes += rng.integers(1, 3000, size=40).tolist()
    for trial in range(8):
        parts = rng.permutation(sizes)[: 3 + trial]
        g = (rng.standard_normal(int(sum(parts))) * 10.0 ** rng.integers(-8, 8)).astype(dtype)
        edges = np.concatenate([[0], np.cumsum(parts)])
        order = rng.permutation(len(parts))  # (the gradients' order need not be the flat one)
        bounds = np.array([(edges[i], edges[i + 1]) for i in order], np.int64)
        want = 0
        for a, b in bounds:
            want += float(np.add.reduce(np.square(g[a:b], dtype=np.float64), axis=None))
        assert fast.sum_squares(g, bounds) == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipnorm_on_the_compiled_backend_takes_its_norm_in_one_call(dtype, monkeypatch):
    """Inside a step's compute scope on the compiled backend, the flat update's clipnorm reads
    its norm from ``fast.sum_squares`` (once per step, C-contiguous gradients of the parameters'
    dtype), and the weights stay those of the NumPy per-array update (whose clip takes NumPy's
    sums): bit for bit, with the clip in force."""
    from lstmkit.ops import backend, fast

    def run(opt, steps=4):
        params = _params(dtype, BIG)
        for t in range(steps):
            grads = {k: np.ascontiguousarray(g) for k, g in _grads(params, t, cast=True).items()}
            opt.apply(params, grads)
        return params

    calls = []
    real = fast.sum_squares
    monkeypatch.setattr(fast, "sum_squares", lambda g, b: calls.append(len(b)) or real(g, b))
    before = backend.get_backend()
    backend.set_backend("numba")
    try:
        with backend.compute_scope():
            flat = run(optimizers.Adam(0.01, clipnorm=0.05))
    finally:
        backend.set_backend(before)
    _assert_same(flat, run(_per_array(optimizers.Adam(0.01, clipnorm=0.05))))
    assert calls == [len(BIG)] * 4
