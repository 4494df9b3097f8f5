"""The recurrent layers (the objects users call) against PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN``.

Weights are copied across with non-zero values for both of torch's bias vectors (lstmkit's single
LSTM/RNN ``bias`` is ``b_ih + b_hh``; the GRU's ``bias`` rows are ``[b_ih; b_hh]`` with blocks
permuted r, z, n -> z, r, n). Every comparison covers outputs, final states and every gradient:
``dx``, ``kernel``, ``recurrent_kernel``, ``bias`` and the initial states (``backward_with_state``).

- one layer, batch-major, with and without an initial state, ``return_sequences`` on and off;
- two stacked layers chained by hand through ``forward``/``backward`` vs ``num_layers=2``;
- ``Bidirectional(merge_mode="concat")`` vs ``bidirectional=True``;
- ragged batches: a post-padded mask vs ``pack_padded_sequence(enforce_sorted=False)``.

float64 to 1e-10 and float32 to 1e-5 (torch also in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmkit.layers import GRU, LSTM, Bidirectional, SimpleRNN
from lstmkit.ops.sequence import mask_from_lengths
from oracles import TORCH_DTYPE, _load, _param_grads, _torch_params

CELLS = {
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
    "rnn_tanh": (SimpleRNN, {}),
    "rnn_relu": (SimpleRNN, {"activation": "relu"}),
}
TOL = {np.float64: 1e-10, np.float32: 1e-5}
SIZES = {
    "T": st.integers(1, 5),
    "B": st.integers(1, 3),
    "D": st.integers(1, 4),
    "H": st.integers(1, 4),
    "seed": st.integers(0, 2**32 - 1),
}
EDGE = {"T": 1, "B": 1, "D": 1, "H": 1, "seed": 0}  # the smallest case is always run
FEW = settings(max_examples=6, deadline=None)


def n_states(cell):
    return 2 if cell == "lstm" else 1


def new_layer(cell, H, dtype, **kwargs):
    cls, extra = CELLS[cell]
    return cls(H, dtype=np.dtype(dtype).name, **extra, **kwargs)


def randomize(layer, rng):
    """Overwrite every parameter in place with N(0, 0.5^2): a non-zero bias in every gate."""
    for p in layer.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)


def built(layer, T, D, rng):
    layer.build((T, D))
    randomize(layer, rng)
    return layer


def params_of(layer, prefix=""):
    return tuple(layer.params[prefix + r] for r in ("kernel", "recurrent_kernel", "bias"))


def torch_reference(cell, blocks, x, init, dseq, dfinal, rng, bidirectional=False, lengths=None):
    """Run ``x (B, T, D)`` through one torch module and autograd.

    ``blocks``: lstmkit ``(kernel, recurrent_kernel, bias)`` per torch sub-layer in torch's order
    (l0, l0_reverse, l1, ...). ``init``/``dfinal``: one ``(L * dirs, B, H)`` array per state.
    ``dseq (B, T, dirs * H)`` is the upstream gradient on the sequence output.
    Returns ``(outputs, final states, initial-state grads, dx, param grads per block)``.
    """
    dirs = 2 if bidirectional else 1
    L = len(blocks) // dirs
    D, H = blocks[0][0].shape[0], blocks[0][1].shape[0]
    kw = {"num_layers": L, "bidirectional": bidirectional, "batch_first": True}
    kw["dtype"] = TORCH_DTYPE[x.dtype]
    if cell == "lstm":
        module = nn.LSTM(D, H, **kw)
    elif cell == "gru":
        module = nn.GRU(D, H, **kw)
    else:
        module = nn.RNN(D, H, nonlinearity=cell.removeprefix("rnn_"), **kw)
    suffixes = [f"_l{k}" + ("_reverse" if d else "") for k in range(L) for d in range(dirs)]
    for suffix, (kernel, recurrent_kernel, bias) in zip(suffixes, blocks):
        # a non-zero share of the bias for torch's bias_hh (a zero one would hide a missing bias)
        b_hh = None
        if cell != "gru":
            b_hh = rng.uniform(0.1, 0.6, bias.shape) * rng.choice([-1, 1], bias.shape)
            b_hh = b_hh.astype(bias.dtype)
        _load(module, suffix, _torch_params(cell, kernel, recurrent_kernel, bias, b_hh))
    x_t = torch.tensor(x, requires_grad=True)
    init_t = [torch.tensor(s, requires_grad=True) for s in init]
    hx = tuple(init_t) if cell == "lstm" else init_t[0]
    if lengths is None:
        out, final = module(x_t, hx)
    else:
        packed = pack_padded_sequence(
            x_t, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False
        )
        out, final = module(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    final = tuple(final) if cell == "lstm" else (final,)
    loss = (out * torch.from_numpy(dseq)).sum()
    for s, d in zip(final, dfinal):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    return (
        out.detach().numpy(),
        [s.detach().numpy() for s in final],
        [s.grad.numpy() for s in init_t],
        x_t.grad.numpy(),
        [_param_grads(cell, module, s) for s in suffixes],
    )


def close(a, b, dtype, what):
    assert a.dtype == dtype, f"{what}: dtype {a.dtype}"
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype], err_msg=what)


def close_grads(ours, theirs, dtype, prefix=""):
    assert {k for k in ours if k.startswith(prefix)} == {prefix + k for k in theirs}
    for role, g in theirs.items():
        close(ours[prefix + role], g, dtype, prefix + role)


def draw_lengths(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.integers(B)] = T  # torch pads to the longest; keep one full row
    return lengths


# --- one layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES, use_initial=st.booleans())
@example(**EDGE, use_initial=True)
@example(**EDGE, use_initial=False)
def test_layer_matches_torch(cell, dtype, return_sequences, ragged, T, B, D, H, seed, use_initial):
    rng = np.random.default_rng(seed)
    layer = built(
        new_layer(cell, H, dtype, return_sequences=return_sequences, return_state=True), T, D, rng
    )
    x = rng.standard_normal((B, T, D)).astype(dtype)
    init = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n_states(cell))]
    if not use_initial:
        init = [np.zeros_like(s) for s in init]
    lengths = draw_lengths(rng, B, T) if ragged else None
    mask = None if lengths is None else mask_from_lengths(lengths, T)  # (B, T) post-padded

    (y, *final), cache = layer.forward(x, mask=mask, initial_state=init if use_initial else None)
    dy = rng.standard_normal(y.shape).astype(dtype)
    if mask is not None and return_sequences:
        dy *= mask[:, :, None]  # torch's padded outputs are constant zeros: no gradient there
    dfinal = [rng.standard_normal((B, H)).astype(dtype) for _ in final]
    dx, grads, dinit = layer.backward_with_state([dy, *dfinal], cache)

    # torch: a sequence gradient reaches every step; the last output alone is h_T
    dseq = dy if return_sequences else np.zeros((B, T, H), dtype)
    dfinal_t = [dfinal[0] + (0 if return_sequences else dy), *dfinal[1:]]
    out, t_final, t_dinit, t_dx, (t_grads,) = torch_reference(
        cell,
        [params_of(layer)],
        x,
        [s[None] for s in init],
        dseq,
        [d[None] for d in dfinal_t],
        rng,
        lengths=lengths,
    )
    if return_sequences:
        valid = np.ones((B, T), bool) if mask is None else mask
        close(y[valid], out[valid], dtype, "outputs")
        if mask is not None:  # Keras: a padded step outputs the carried h
            b, t = np.nonzero(~mask)
            np.testing.assert_array_equal(y[b, t], final[0][b])
    else:
        close(y, t_final[0][0], dtype, "last output")
    for k, s in enumerate(final):
        close(s, t_final[k][0], dtype, f"final state {k}")
    close(dx, t_dx, dtype, "dx")
    for k, d in enumerate(dinit):
        close(d, t_dinit[k][0], dtype, f"initial state {k} grad")
    close_grads(grads, t_grads, dtype)


# --- two stacked layers ---------------------------------------------------------------------


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES)
@example(**EDGE)
def test_stacked_layers_match_torch_two_layers(
    cell, dtype, return_sequences, ragged, T, B, D, H, seed
):
    rng = np.random.default_rng(seed)
    first = built(new_layer(cell, H, dtype, return_sequences=True, return_state=True), T, D, rng)
    second = built(
        new_layer(cell, H, dtype, return_sequences=return_sequences, return_state=True), T, H, rng
    )
    ns = n_states(cell)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    init = [rng.standard_normal((2, B, H)).astype(dtype) for _ in range(ns)]  # (layers, B, H)
    lengths = draw_lengths(rng, B, T) if ragged else None
    mask = None if lengths is None else mask_from_lengths(lengths, T)

    (y1, *final1), c1 = first.forward(x, mask=mask, initial_state=[s[0] for s in init])
    (y2, *final2), c2 = second.forward(y1, mask=mask, initial_state=[s[1] for s in init])
    dy = rng.standard_normal(y2.shape).astype(dtype)
    if mask is not None and return_sequences:
        dy *= mask[:, :, None]
    dfinal = [rng.standard_normal((2, B, H)).astype(dtype) for _ in range(ns)]
    dy1, g2, dinit2 = second.backward_with_state([dy, *[d[1] for d in dfinal]], c2)
    dx, g1, dinit1 = first.backward_with_state([dy1, *[d[0] for d in dfinal]], c1)

    dseq = dy if return_sequences else np.zeros((B, T, H), dtype)
    dfinal_t = [d.copy() for d in dfinal]
    if not return_sequences:
        dfinal_t[0][1] += dy
    out, t_final, t_dinit, t_dx, t_grads = torch_reference(
        cell,
        [params_of(first), params_of(second)],
        x,
        init,
        dseq,
        dfinal_t,
        rng,
        lengths=lengths,
    )
    if return_sequences:
        valid = np.ones((B, T), bool) if mask is None else mask
        close(y2[valid], out[valid], dtype, "outputs")
    else:
        close(y2, t_final[0][1], dtype, "last output")
    for k in range(ns):
        close(np.stack([final1[k], final2[k]]), t_final[k], dtype, f"final state {k}")
        close(np.stack([dinit1[k], dinit2[k]]), t_dinit[k], dtype, f"initial state {k} grad")
    close(dx, t_dx, dtype, "dx")
    close_grads(g1, t_grads[0], dtype)
    close_grads(g2, t_grads[1], dtype)


# --- Bidirectional --------------------------------------------------------------------------


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
@FEW
@given(**SIZES)
@example(**EDGE)
def test_bidirectional_matches_torch(cell, dtype, return_sequences, ragged, T, B, D, H, seed):
    rng = np.random.default_rng(seed)
    inner = new_layer(cell, H, dtype, return_sequences=return_sequences, return_state=True)
    layer = built(Bidirectional(inner, merge_mode="concat"), T, D, rng)
    ns = n_states(cell)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    init = [rng.standard_normal((2, B, H)).astype(dtype) for _ in range(ns)]  # (dirs, B, H)
    lengths = draw_lengths(rng, B, T) if ragged else None
    mask = None if lengths is None else mask_from_lengths(lengths, T)

    # Keras order: forward states, then backward states
    flat_init = [s[0] for s in init] + [s[1] for s in init]
    (y, *final), cache = layer.forward(x, mask=mask, initial_state=flat_init)
    # with return_sequences both sides output constant zeros at padding: gradients there are moot
    dy = rng.standard_normal(y.shape).astype(dtype)
    dfinal = [rng.standard_normal((2, B, H)).astype(dtype) for _ in range(ns)]
    flat_dfinal = [d[0] for d in dfinal] + [d[1] for d in dfinal]
    dx, grads, dinit = layer.backward_with_state([dy, *flat_dfinal], cache)

    dseq = dy if return_sequences else np.zeros((B, T, 2 * H), dtype)
    dfinal_t = [d.copy() for d in dfinal]
    if not return_sequences:  # Keras merges the two final h's
        dfinal_t[0][0] += dy[:, :H]
        dfinal_t[0][1] += dy[:, H:]
    blocks = [params_of(layer, "forward."), params_of(layer, "backward.")]
    out, t_final, t_dinit, t_dx, t_grads = torch_reference(
        cell, blocks, x, init, dseq, dfinal_t, rng, bidirectional=True, lengths=lengths
    )
    if return_sequences:
        close(y, out, dtype, "outputs, padding included")
        if mask is not None:
            assert not y[~mask].any(), "Bidirectional outputs zeros at padded steps"
    else:
        close(y, np.concatenate([t_final[0][0], t_final[0][1]], axis=-1), dtype, "output")
    for k in range(ns):
        close(np.stack([final[k], final[ns + k]]), t_final[k], dtype, f"final state {k}")
        close(np.stack([dinit[k], dinit[ns + k]]), t_dinit[k], dtype, f"initial state {k} grad")
    close(dx, t_dx, dtype, "dx")
    close_grads(grads, t_grads[0], dtype, "forward.")
    close_grads(grads, t_grads[1], dtype, "backward.")
