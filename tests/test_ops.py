"""The recurrent ops against independent witnesses.

- PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and autograd: outputs, final states and every gradient,
  in float64 (tolerance 1e-10) and float32 (1e-5, torch also in float32); ragged batches against
  packed sequences.
- PyTorch ``nn.*Cell`` stepped by hand: masks with holes and recurrent dropout, which the fused
  modules do not have.
- Central finite differences in float64 on a random scalar loss, with and without masks.
- Recomputation invariants: ``*_step`` equals the forward pass; padded outputs carry the state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lstmkit.ops.gru import gru_backward, gru_forward, gru_step
from lstmkit.ops.lstm import lstm_backward, lstm_forward, lstm_step
from lstmkit.ops.rnn import rnn_backward, rnn_forward, rnn_step
from lstmkit.ops.sequence import lengths_from_mask, mask_from_lengths, reverse_sequences
from oracles import torch_cell_run, torch_run

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
N_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
TOL = {np.float64: 1e-10, np.float32: 1e-5}

SIZES = {
    "T": st.integers(1, 5),
    "B": st.integers(1, 3),
    "D": st.integers(1, 4),
    "H": st.integers(1, 4),
    "seed": st.integers(0, 2**32 - 1),
}
EDGE = {"T": 1, "B": 1, "D": 1, "H": 1, "seed": 0}  # the smallest case is always run
FEW = settings(max_examples=25, deadline=None)


class Case(NamedTuple):
    x: np.ndarray  # (T, B, D)
    state: tuple  # (h0,) or (h0, c0), each (B, H)
    params: tuple  # (kernel, recurrent_kernel, bias)
    b_hh: np.ndarray  # non-zero share of the bias given to torch's bias_hh (LSTM/RNN)
    dhs: np.ndarray  # (T, B, H) upstream gradient on the outputs
    dstate: tuple  # upstream gradients on the final state
    rng: np.random.Generator


def make_case(cell, T, B, D, H, seed, dtype=np.float64) -> Case:
    rng = np.random.default_rng(seed)

    def r(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    G = N_GATES[cell]
    state = (r(B, H), r(B, H)) if cell == "lstm" else (r(B, H),)
    bias = r(2, G * H, scale=0.5) if cell == "gru" else r(G * H, scale=0.5)
    params = (r(D, G * H, scale=0.5), r(H, G * H, scale=0.5), bias)
    b_hh = r(G * H, scale=0.5)
    dstate = tuple(r(B, H) for _ in state)
    return Case(r(T, B, D), state, params, b_hh, r(T, B, H), dstate, rng)


def lstmkit_forward(cell, x, state, params, mask=None, recurrent_mask=None):
    """``(hs, final_state tuple, cache)`` from lstmkit's forward."""
    if cell == "lstm":
        return lstm_forward(x, *state, *params, mask, recurrent_mask)
    if cell == "gru":
        hs, h_T, cache = gru_forward(x, *state, *params, mask, recurrent_mask)
    else:
        activation = cell.removeprefix("rnn_")
        hs, h_T, cache = rnn_forward(x, *state, *params, mask, recurrent_mask, activation)
    return hs, (h_T,), cache


def lstmkit_run(cell, x, state, params, dhs, dstate, mask=None, recurrent_mask=None):
    """Forward and backward through lstmkit: ``(hs, final_state tuple, grads)``."""
    hs, final, cache = lstmkit_forward(cell, x, state, params, mask, recurrent_mask)
    backward = {"lstm": lstm_backward, "gru": gru_backward}.get(cell, rnn_backward)
    return hs, final, backward(dhs, *dstate, cache)


def assert_same(ours, theirs, tol, dtype, valid=None):
    """Outputs (on ``valid (T, B)`` steps if given), final states and every gradient."""
    hs, final, grads = ours
    t_hs, t_final, t_grads = theirs
    if valid is not None:
        hs, t_hs = hs[valid], t_hs[valid]
    np.testing.assert_allclose(hs, t_hs, rtol=tol, atol=tol, err_msg="outputs")
    assert len(final) == len(t_final)
    for k, (a, b) in enumerate(zip(final, t_final)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"final state {k}")
    assert grads.keys() == t_grads.keys()
    for name in grads:
        assert grads[name].shape == t_grads[name].shape, name
        np.testing.assert_allclose(grads[name], t_grads[name], rtol=tol, atol=tol, err_msg=name)
    for a in (hs, *final, *grads.values()):
        assert a.dtype == dtype


# --- PyTorch, whole sequences ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES)
@example(**EDGE)
def test_matches_torch(cell, dtype, T, B, D, H, seed):
    c = make_case(cell, T, B, D, H, seed, dtype)
    ours = lstmkit_run(cell, c.x, c.state, c.params, c.dhs, c.dstate)
    theirs = torch_run(cell, c.x, c.state, c.params, c.dhs, c.dstate, b_hh=c.b_hh)
    assert_same(ours, theirs, TOL[dtype], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES)
@example(**EDGE)
def test_ragged_matches_torch_packed(cell, dtype, T, B, D, H, seed):
    c = make_case(cell, T, B, D, H, seed, dtype)
    lengths = c.rng.integers(1, T + 1, size=B)
    mask = mask_from_lengths(lengths, T).T  # (T, B) post-padded
    dhs = c.dhs * mask[..., None]  # no gradient arrives at padding (torch's outputs are 0 there)
    ours = lstmkit_run(cell, c.x, c.state, c.params, dhs, c.dstate, mask=mask)
    theirs = torch_run(cell, c.x, c.state, c.params, dhs, c.dstate, lengths=lengths, b_hh=c.b_hh)
    assert_same(ours, theirs, TOL[dtype], dtype, valid=mask)
    hs, (h_T, *_), _ = ours
    pad_t, pad_b = np.nonzero(~mask)
    np.testing.assert_array_equal(hs[pad_t, pad_b], h_T[pad_b])  # padding outputs carry h


# --- PyTorch cells stepped by hand: masks with holes, recurrent dropout ---------------------


@pytest.mark.parametrize("use_mask,use_rmask", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES)
@example(**EDGE)
def test_mask_and_recurrent_dropout_match_torch_cells(cell, use_mask, use_rmask, T, B, D, H, seed):
    c = make_case(cell, T, B, D, H, seed)
    mask = c.rng.random((T, B)) < 0.7 if use_mask else None  # holes anywhere, even whole rows
    keep = 0.7
    rmask = (c.rng.random((B, H)) < keep) / keep if use_rmask else None
    ours = lstmkit_run(cell, c.x, c.state, c.params, c.dhs, c.dstate, mask, rmask)
    theirs = torch_cell_run(cell, c.x, c.state, c.params, c.dhs, c.dstate, mask, rmask, c.b_hh)
    assert_same(ours, theirs, TOL[np.float64], np.float64)


# --- finite differences ---------------------------------------------------------------------


def numeric_grads(cell, c: Case, mask, rmask, eps=1e-6) -> dict:
    """Central differences of ``L = Σ dhs ⊙ hs + Σ dstate ⊙ final`` for every input."""

    def loss(x, state, params):
        hs, final, _ = lstmkit_forward(cell, x, state, params, mask, rmask)
        return np.sum(c.dhs * hs) + sum(np.sum(d * s) for d, s in zip(c.dstate, final))

    arrays = {"x": c.x, "h0": c.state[0], "kernel": c.params[0]}
    arrays.update({"recurrent_kernel": c.params[1], "bias": c.params[2]})
    if cell == "lstm":
        arrays["c0"] = c.state[1]
    out = {}
    for name, a in arrays.items():
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = loss(c.x, c.state, c.params)
            a[idx] = old - eps
            minus = loss(c.x, c.state, c.params)
            a[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        out[name] = g
    return out


@pytest.mark.parametrize("use_mask,use_rmask", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(
    T=st.integers(1, 4),
    B=st.integers(1, 2),
    D=st.integers(1, 3),
    H=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@example(**EDGE)
def test_finite_differences(cell, use_mask, use_rmask, T, B, D, H, seed):
    c = make_case(cell, T, B, D, H, seed)
    mask = c.rng.random((T, B)) < 0.7 if use_mask else None
    rmask = (c.rng.random((B, H)) < 0.7) / 0.7 if use_rmask else None
    _, _, grads = lstmkit_run(cell, c.x, c.state, c.params, c.dhs, c.dstate, mask, rmask)
    numeric = numeric_grads(cell, c, mask, rmask)
    assert grads.keys() == numeric.keys()
    ours = np.concatenate([grads[name].ravel() for name in numeric])
    num = np.concatenate([g.ravel() for g in numeric.values()])
    # (a dead relu can make every gradient exactly zero, hence the floor on the denominator)
    err = np.linalg.norm(ours - num) / max(np.linalg.norm(ours) + np.linalg.norm(num), 1e-12)
    assert err <= 1e-6, f"relative error {err:.2e}"
    # Per array too, with an absolute floor: central differences carry ~1e-10 of round-off, which
    # is all there is of a gradient that masks and dropout have made tiny (or exactly zero).
    for name, g in numeric.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-6, atol=1e-8, err_msg=name)


# --- recomputation invariants and calling conventions ---------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES)
@example(**EDGE)
def test_step_matches_forward(cell, T, B, D, H, seed):
    c = make_case(cell, T, B, D, H, seed)
    hs, final, _ = lstmkit_run(cell, c.x, c.state, c.params, c.dhs, c.dstate)
    state = c.state
    for t in range(T):
        if cell == "lstm":
            state = lstm_step(c.x[t], *state, *c.params)
        elif cell == "gru":
            state = (gru_step(c.x[t], *state, *c.params),)
        else:
            state = (rnn_step(c.x[t], *state, *c.params, activation=cell.removeprefix("rnn_")),)
        np.testing.assert_allclose(state[0], hs[t], rtol=1e-12, atol=1e-12)
    for a, b in zip(state, final):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_accepts_none_for_absent_gradients(cell):
    c = make_case(cell, T=3, B=2, D=2, H=3, seed=1)
    zeros = tuple(np.zeros_like(s) for s in c.state)
    no_out = lstmkit_run(cell, c.x, c.state, c.params, None, c.dstate)[2]
    zero_out = lstmkit_run(cell, c.x, c.state, c.params, np.zeros_like(c.dhs), c.dstate)[2]
    no_state = lstmkit_run(cell, c.x, c.state, c.params, c.dhs, (None,) * len(zeros))[2]
    zero_state = lstmkit_run(cell, c.x, c.state, c.params, c.dhs, zeros)[2]
    for name in no_out:
        np.testing.assert_array_equal(no_out[name], zero_out[name])
        np.testing.assert_array_equal(no_state[name], zero_state[name])


@pytest.mark.parametrize("activation", ["sigmoid", "linear", None])
def test_rnn_other_activations_finite_differences(activation):
    c = make_case("rnn_tanh", T=3, B=2, D=2, H=3, seed=7)
    _, _, cache = rnn_forward(c.x, *c.state, *c.params, activation=activation)
    grads = rnn_backward(c.dhs, c.dstate[0], cache)
    x, eps = c.x, 1e-6

    def loss():
        hs, h_T, _ = rnn_forward(x, *c.state, *c.params, activation=activation)
        return np.sum(c.dhs * hs) + np.sum(c.dstate[0] * h_T)

    for name, a in {"x": x, "recurrent_kernel": c.params[1], "bias": c.params[2]}.items():
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = loss()
            a[idx] = old - eps
            num[idx] = (plus - loss()) / (2 * eps)
            a[idx] = old
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-8, err_msg=name)


def test_rnn_rejects_unknown_activation():
    c = make_case("rnn_tanh", T=2, B=1, D=1, H=1, seed=0)
    with pytest.raises(ValueError, match="'activation'.*got 'swoosh'"):
        rnn_forward(c.x, *c.state, *c.params, activation="swoosh")


# --- sequence helpers -----------------------------------------------------------------------


@FEW
@given(st.lists(st.integers(0, 6), min_size=1, max_size=4), st.integers(0, 3))
def test_mask_lengths_round_trip(lengths, extra):
    T = max(lengths) + extra
    mask = mask_from_lengths(np.array(lengths), T)
    expected = np.array([[t < n for t in range(T)] for n in lengths], dtype=bool).reshape(
        len(lengths), T
    )
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(lengths_from_mask(mask), lengths)


def test_lengths_from_mask_rejects_holes():
    with pytest.raises(ValueError, match=r"post-padded.*rows \[1\]"):
        lengths_from_mask(np.array([[1, 1, 0], [1, 0, 1]], dtype=bool))
    with pytest.raises(ValueError, match="'lengths' must lie in"):
        mask_from_lengths(np.array([4]), 3)


@FEW
@given(st.lists(st.integers(0, 5), min_size=1, max_size=4), st.integers(0, 2))
def test_reverse_sequences_within_lengths(lengths, extra):
    T = max(lengths) + extra
    x = np.arange(len(lengths) * T * 2, dtype=float).reshape(len(lengths), T, 2)
    mask = mask_from_lengths(np.array(lengths), T)
    rev = reverse_sequences(x, mask)
    for b, n in enumerate(lengths):  # witness: plain slicing, row by row
        np.testing.assert_array_equal(rev[b, :n], x[b, :n][::-1])
        np.testing.assert_array_equal(rev[b, n:], x[b, n:])
    np.testing.assert_array_equal(reverse_sequences(rev, mask), x)
    np.testing.assert_array_equal(reverse_sequences(x), x[:, ::-1])
