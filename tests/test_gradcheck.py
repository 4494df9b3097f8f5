"""Every layer's backward against central finite differences of its own forward, float64.

The loss is a random linear functional of all outputs, ``L = Σ_k Σ W_k ⊙ y_k`` (states included
when ``return_state``), so ``dL/dy_k = W_k`` is what goes into ``backward``. Each input, parameter
and initial state is perturbed entry by entry by ±1e-6; the relative error
``|g - n| / (|g| + |n|)`` must stay below 1e-6 and the numeric gradient must not be all zero (a
test of nothing). Random layers (Dropout, recurrent dropout) get a fresh
``np.random.default_rng(seed)`` at every evaluation, so every evaluation draws the same masks.
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Masking, SimpleRNN

EPS = 1e-6
RTOL = 1e-6
B, T, D, H = 2, 4, 3, 2
RECURRENT = {
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
    "rnn_tanh": (SimpleRNN, {}),
    "rnn_relu": (SimpleRNN, {"activation": "relu"}),
}
MASK = np.array([[1, 1, 0, 1], [1, 0, 0, 0]], bool)  # a hole, and a short sequence


def flat(y):
    return list(y) if isinstance(y, list) else [y]


def gradcheck(layer, x, *, seed=0, initial_state=None, wrt_x=True, only_x=None, **fwd):
    """Compare ``backward`` with central differences for x, every parameter, initial states.

    ``only_x`` (bool, shape of x) restricts the x check to entries where the layer is
    differentiable in the finite-difference sense.
    """
    rng = np.random.default_rng(1000 + seed)
    if initial_state is not None:
        fwd["initial_state"] = initial_state

    def run():
        return layer.forward(x, rng=np.random.default_rng(seed), **fwd)

    y, cache = run()
    W = [rng.standard_normal(np.shape(a)) for a in flat(y)]

    def loss():
        return sum(np.sum(w * a) for w, a in zip(W, flat(run()[0])))

    dy = W if isinstance(y, list) else W[0]
    if initial_state is None:
        dx, grads = layer.backward(dy, cache)
        dinit = []
    else:
        dx, grads, dinit = layer.backward_with_state(dy, cache)

    assert set(grads) == set(layer.params), "a gradient for every parameter"
    checks = {role: (layer.params[role], grads[role], None) for role in layer.params}
    if wrt_x:
        checks["x"] = (x, dx, only_x)
    for k, s in enumerate(initial_state or []):
        checks[f"initial_state[{k}]"] = (s, dinit[k], None)
    for name, (a, g, only) in checks.items():
        assert g.shape == a.shape, name
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            if only is not None and not only[idx]:
                continue
            old = a[idx]
            a[idx] = old + EPS
            plus = loss()
            a[idx] = old - EPS
            minus = loss()
            a[idx] = old
            num[idx] = (plus - minus) / (2 * EPS)
        if only is not None:
            g = np.where(only, g, 0.0)
        assert np.any(num != 0), f"{name}: numeric gradient is all zero"
        err = np.linalg.norm(g - num) / (np.linalg.norm(g) + np.linalg.norm(num))
        assert err <= RTOL, f"{name}: relative error {err:.2e}"


def randomized(layer, input_shape, seed=0):
    rng = np.random.default_rng(seed)
    layer.build(input_shape, dtype="float64")
    for p in layer.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    return layer


def data(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def states(cell, n_dirs=1, seed=2):
    n = (2 if cell == "lstm" else 1) * n_dirs
    return [data(B, H, seed=seed + k) for k in range(n)]


# --- recurrent layers -----------------------------------------------------------------------

RECURRENT_CASES = {
    # name: (layer kwargs, forward kwargs, with initial state)
    "sequences": ({"return_sequences": True}, {}, False),
    "last_output_and_states": ({"return_state": True}, {}, True),
    "mask": ({"return_sequences": True, "return_state": True}, {"mask": MASK}, True),
    "go_backwards_mask": (
        {"return_sequences": True, "return_state": True, "go_backwards": True},
        {"mask": MASK},
        True,
    ),
    "dropout_training": (
        {"return_sequences": True, "return_state": True, "dropout": 0.3, "recurrent_dropout": 0.4},
        {"training": True, "mask": MASK},
        True,
    ),
}


@pytest.mark.parametrize("case", RECURRENT_CASES)
@pytest.mark.parametrize("cell", RECURRENT)
def test_recurrent_layer(cell, case):
    cls, extra = RECURRENT[cell]
    layer_kw, fwd, with_state = RECURRENT_CASES[case]
    # seed 1: some draws leave H=2 relu units dead at every step, which the all-zero check rejects
    layer = randomized(cls(H, **extra, **layer_kw), (T, D), seed=1)
    init = states(cell) if with_state else None
    gradcheck(layer, data(B, T, D), initial_state=init, seed=3, **fwd)


def test_recurrent_dropout_masks_are_live():
    """The dropout case above is a real one: with the same rng the masks repeat, with another
    rng they differ."""
    layer = randomized(LSTM(H, dropout=0.5, recurrent_dropout=0.5, return_sequences=True), (T, D))
    x = data(B, T, D)

    def run(seed):
        return layer.forward(x, training=True, rng=np.random.default_rng(seed))[0]

    np.testing.assert_array_equal(run(3), run(3))
    assert np.abs(run(3) - run(4)).max() > 1e-3
    np.testing.assert_array_equal(layer.forward(x)[0], layer.forward(x, training=False)[0])


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional_each_merge_mode(merge_mode):
    inner = LSTM(H, return_sequences=True, return_state=True)
    layer = randomized(Bidirectional(inner, merge_mode=merge_mode), (T, D))
    gradcheck(layer, data(B, T, D), initial_state=states("lstm", 2), mask=MASK)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_bidirectional_of_a_go_backwards_layer(dropout):
    """The forward layer reads backwards (its dx is a time-reversed view) and the backward copy
    forwards: the two dx are summed into the contiguous one, whichever that is."""
    inner = LSTM(H, return_sequences=True, go_backwards=True, dropout=dropout)
    layer = randomized(Bidirectional(inner), (T, D))
    gradcheck(layer, data(B, T, D), training=True, mask=MASK, seed=5)


@pytest.mark.parametrize("cell", ["gru", "rnn_tanh"])
def test_bidirectional_last_output_with_dropout(cell):
    cls, extra = RECURRENT[cell]
    inner = cls(H, dropout=0.3, recurrent_dropout=0.3, **extra)
    layer = randomized(Bidirectional(inner), (T, D))
    gradcheck(layer, data(B, T, D), training=True, mask=MASK, seed=5)


# --- Dense, Embedding, Masking, Dropout -----------------------------------------------------


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("activation", [None, "linear", "sigmoid", "tanh", "relu"])
def test_dense(activation, rank):
    shape = (B, T, D) if rank == 3 else (B, D)
    layer = randomized(Dense(3, activation=activation), shape[1:])
    gradcheck(layer, data(*shape))


def test_dense_without_bias():
    layer = randomized(Dense(3, use_bias=False, activation="tanh"), (T, D))
    gradcheck(layer, data(B, T, D))


def test_embedding():
    ids = np.array([[1, 4, 4, 0], [2, 0, 1, 5]])  # repeated ids accumulate; 3 is unused
    layer = randomized(Embedding(6, 3, mask_zero=True), (T,))
    gradcheck(layer, ids, wrt_x=False)


def test_masking():
    """Masked steps are a constant zero (the mask does not depend smoothly on x): the x check
    runs on the kept steps; ``test_layers_keras`` checks the masked ones against autograd."""
    x = data(B, T, D)
    x[0, 2] = 0.0
    x[1, 1:] = 0.0
    layer = Masking(0.0)
    keep = np.broadcast_to(np.any(x != 0, axis=-1, keepdims=True), x.shape)
    gradcheck(layer, x, only_x=keep)


@pytest.mark.parametrize("noise_shape", [None, (None, 1, None)])
def test_dropout_training(noise_shape):
    layer = Dropout(0.4, noise_shape=noise_shape)
    x = data(B, T, D)
    gradcheck(layer, x, training=True, seed=7)
    y, _ = layer.forward(x, training=True, rng=np.random.default_rng(7))
    assert (y == 0).any() and (y != 0).any()  # the mask is live
