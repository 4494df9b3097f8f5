"""PyTorch adapters: run the same recurrence in torch and hand back lstmkit-layout numbers.

Layout differences handled here (and only for testing; the library's own converters live in
``lstmkit.interop``):

- torch stores weights transposed: ``weight_ih (G*H, D)`` is ``kernel.T`` after permuting blocks,
  ``weight_hh (G*H, H)`` is ``recurrent_kernel.T``.
- gate blocks: torch LSTM i, f, g, o == lstmkit i, f, g, o; torch GRU r, z, n vs lstmkit z, r, n.
- biases: torch has ``bias_ih`` and ``bias_hh``. LSTM and RNN add them, so lstmkit's single
  ``bias`` is split as ``bias_ih = bias - b_hh``, ``bias_hh = b_hh`` with a non-zero ``b_hh`` (a
  zero one would hide a missing bias); dLoss/d(bias) is then torch's ``bias_ih`` gradient. The
  GRU keeps them apart: ``bias[0]`` -> ``bias_ih``, ``bias[1]`` -> ``bias_hh``.

Cells are named ``"lstm"``, ``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"``. States are tuples:
``(h,)`` or ``(h, c)``. Every function returns ``(hs (T, B, H), final_state tuple, grads)`` with
``grads`` keyed like lstmkit's backward: ``x, h0, [c0,] kernel, recurrent_kernel, bias``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# Torch block k holds lstmkit block TORCH_ORDER[cell][k].
TORCH_ORDER = {"lstm": (0, 1, 2, 3), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def _to_torch_blocks(a: np.ndarray, order) -> np.ndarray:
    blocks = np.split(a, len(order), axis=-1)
    return np.concatenate([blocks[k] for k in order], axis=-1)


def _from_torch_blocks(a: np.ndarray, order) -> np.ndarray:
    blocks = np.split(a, len(order), axis=-1)
    out = [None] * len(order)
    for k, src in enumerate(order):
        out[src] = blocks[k]
    return np.concatenate(out, axis=-1)


def _torch_params(cell, kernel, recurrent_kernel, bias, b_hh):
    """lstmkit params -> (weight_ih, weight_hh, bias_ih, bias_hh) as numpy, torch layout."""
    order = TORCH_ORDER[cell]
    if cell == "gru":
        b_ih, b_hh = bias[0], bias[1]
    else:
        if b_hh is None or not np.all(b_hh != 0):
            raise ValueError("argument 'b_hh' must be a non-zero split of 'bias'")
        b_ih = bias - b_hh
    return (
        _to_torch_blocks(kernel, order).T,
        _to_torch_blocks(recurrent_kernel, order).T,
        _to_torch_blocks(b_ih, order),
        _to_torch_blocks(b_hh, order),
    )


def _load(module, suffix, arrays):
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    with torch.no_grad():
        for name, a in zip(names, arrays):
            getattr(module, name + suffix).copy_(torch.from_numpy(np.ascontiguousarray(a)))


def _param_grads(cell, module, suffix) -> dict:
    """torch parameter gradients -> lstmkit ``kernel, recurrent_kernel, bias`` gradients."""
    order = TORCH_ORDER[cell]
    g = {n: getattr(module, n + suffix).grad.numpy() for n in ("weight_ih", "weight_hh")}
    g_bih = getattr(module, "bias_ih" + suffix).grad.numpy()
    g_bhh = getattr(module, "bias_hh" + suffix).grad.numpy()
    if cell == "gru":
        bias = np.stack([_from_torch_blocks(g_bih, order), _from_torch_blocks(g_bhh, order)])
    else:
        bias = _from_torch_blocks(g_bih, order)  # == g_bhh: both enter as bias_ih + bias_hh
    return {
        "kernel": _from_torch_blocks(g["weight_ih"].T, order),
        "recurrent_kernel": _from_torch_blocks(g["weight_hh"].T, order),
        "bias": bias,
    }


def torch_module(cell, kernel, recurrent_kernel, bias, b_hh=None) -> nn.Module:
    """``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (time-major, one layer) holding lstmkit weights."""
    D, H = kernel.shape[0], recurrent_kernel.shape[0]
    dtype = TORCH_DTYPE[kernel.dtype]
    if cell == "lstm":
        m = nn.LSTM(D, H, dtype=dtype)
    elif cell == "gru":
        m = nn.GRU(D, H, dtype=dtype)
    else:
        m = nn.RNN(D, H, nonlinearity=cell.removeprefix("rnn_"), dtype=dtype)
    _load(m, "_l0", _torch_params(cell, kernel, recurrent_kernel, bias, b_hh))
    return m


def torch_cell(cell, kernel, recurrent_kernel, bias, b_hh=None) -> nn.Module:
    """``nn.LSTMCell`` / ``nn.GRUCell`` / ``nn.RNNCell`` holding lstmkit weights."""
    D, H = kernel.shape[0], recurrent_kernel.shape[0]
    dtype = TORCH_DTYPE[kernel.dtype]
    if cell == "lstm":
        m = nn.LSTMCell(D, H, dtype=dtype)
    elif cell == "gru":
        m = nn.GRUCell(D, H, dtype=dtype)
    else:
        m = nn.RNNCell(D, H, nonlinearity=cell.removeprefix("rnn_"), dtype=dtype)
    _load(m, "", _torch_params(cell, kernel, recurrent_kernel, bias, b_hh))
    return m


def _leaves(x, state):
    return torch.tensor(x, requires_grad=True), [torch.tensor(s, requires_grad=True) for s in state]


def _backward(outputs, final, dhs, dstate):
    loss = (outputs * torch.from_numpy(dhs)).sum()
    for s, ds in zip(final, dstate):
        loss = loss + (s * torch.from_numpy(ds)).sum()
    loss.backward()


def _result(cell, module, suffix, x_t, state_t, outputs, final):
    grads = {"x": x_t.grad.numpy(), "h0": state_t[0].grad.numpy()}
    if cell == "lstm":
        grads["c0"] = state_t[1].grad.numpy()
    grads.update(_param_grads(cell, module, suffix))
    return outputs.detach().numpy(), tuple(s.detach().numpy() for s in final), grads


def torch_run(cell, x, state, params, dhs, dstate, lengths=None, b_hh=None):
    """The whole sequence through ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and autograd.

    ``x (T, B, D)``; ``params = (kernel, recurrent_kernel, bias)``; ``dhs (T, B, H)`` and
    ``dstate`` are the upstream gradients. With ``lengths (B,)`` the batch goes in as a packed
    sequence (``enforce_sorted=False``): outputs past each length are zero and the final state is
    the one at each sequence's last real step.
    """
    module = torch_module(cell, *params, b_hh=b_hh)
    x_t, state_t = _leaves(x, state)
    hx = tuple(s[None] for s in state_t) if cell == "lstm" else state_t[0][None]
    if lengths is None:
        outputs, final = module(x_t, hx)
    else:
        packed = pack_padded_sequence(x_t, torch.as_tensor(lengths), enforce_sorted=False)
        packed_out, final = module(packed, hx)
        outputs, _ = pad_packed_sequence(packed_out, total_length=x.shape[0])
    final = tuple(s[0] for s in final) if cell == "lstm" else (final[0],)
    _backward(outputs, final, dhs, dstate)
    return _result(cell, module, "_l0", x_t, state_t, outputs, final)


def torch_cell_run(cell, x, state, params, dhs, dstate, mask=None, recurrent_mask=None, b_hh=None):
    """Step ``nn.*Cell`` by hand with Keras masking and recurrent-dropout semantics.

    ``mask (T, B)`` may have holes: a False step carries the state and outputs the carried h.
    ``recurrent_mask (B, H)`` multiplies h before the cell sees it. For the GRU, Keras blends with
    the undropped h while ``nn.GRUCell`` blends with the h it was given, so the blend is corrected
    by ``z ⊙ (h - h_in)`` with ``z`` recomputed from torch's own weights.
    """
    module = torch_cell(cell, *params, b_hh=b_hh)
    x_t, state_t = _leaves(x, state)
    H = state[0].shape[-1]
    rmask = None if recurrent_mask is None else torch.from_numpy(recurrent_mask)
    s = tuple(state_t)
    outputs = []
    for t in range(x.shape[0]):
        h = s[0]
        h_in = h if rmask is None else h * rmask
        if cell == "lstm":
            new = module(x_t[t], (h_in, s[1]))
        elif cell == "gru":
            h_new = module(x_t[t], h_in)
            z = torch.sigmoid(  # torch GRU block 1 is z
                x_t[t] @ module.weight_ih[H : 2 * H].T
                + module.bias_ih[H : 2 * H]
                + h_in @ module.weight_hh[H : 2 * H].T
                + module.bias_hh[H : 2 * H]
            )
            new = (h_new + z * (h - h_in),)
        else:
            new = (module(x_t[t], h_in),)
        if mask is not None:
            m = torch.from_numpy(mask[t])[:, None]
            new = tuple(torch.where(m, n, o) for n, o in zip(new, s))
        s = new
        outputs.append(s[0])
    outputs = torch.stack(outputs)
    _backward(outputs, s, dhs, dstate)
    return _result(cell, module, "", x_t, state_t, outputs, s)
