"""The one NumPy LSTM pointwise step (``lstm_cell``) and its derivative (``lstm_cell_backward``),
which the reference, the variants and the translation decoder all run, on blocks with two
leading axes (the layout ``translate_teacher`` and a whole ``(T, B, 4H)`` sequence use).

- PyTorch ``nn.LSTMCell`` with an identity input kernel, a zero recurrent kernel and both bias
  vectors non-zero, so its gates see exactly our pre-activations: h, c and, through autograd,
  dLoss/d(pre-activations) and dLoss/dc_prev, in float64 and float32.
- Central finite differences in float64 for an activation pair whose derivative reads the
  pre-activations (gelu, softplus), which PyTorch's cell does not have.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.ops.activations import get_elementwise
from lstmkit.ops.lstm import lstm_cell, lstm_cell_backward, lstm_gates

LEAD, H = (2, 3), 5
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def _inputs(dtype, seed=0):
    r = np.random.default_rng(seed)
    z = r.standard_normal((*LEAD, 4 * H)).astype(dtype)
    c_prev, dh, dc = r.standard_normal((3, *LEAD, H)).astype(dtype)
    return z, c_prev, dh, dc


def _torch_cell(z, c_prev, dh, dc, b_ih, b_hh):
    """h, c, dLoss/dz, dLoss/dc_prev from ``nn.LSTMCell`` for ``loss = Σ dh·h + Σ dc·c``."""
    dt = torch.float64 if z.dtype == np.float64 else torch.float32
    cell = torch.nn.LSTMCell(4 * H, H).to(dt)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.eye(4 * H, dtype=dt))  # torch's gate order is i, f, g, o too
        cell.weight_hh.zero_()
        cell.bias_ih.copy_(torch.from_numpy(b_ih))
        cell.bias_hh.copy_(torch.from_numpy(b_hh))
    x = torch.from_numpy(z.reshape(-1, 4 * H) - b_ih - b_hh).requires_grad_()
    c0 = torch.from_numpy(c_prev.reshape(-1, H)).requires_grad_()
    h0 = torch.from_numpy(np.ones_like(c_prev.reshape(-1, H)))  # meets the zero recurrent kernel
    h, c = cell(x, (h0, c0))
    (h * torch.from_numpy(dh.reshape(-1, H))).sum().add(
        (c * torch.from_numpy(dc.reshape(-1, H))).sum()
    ).backward()
    shape = z.shape[:-1]
    return (
        h.detach().numpy().reshape(*shape, H),
        c.detach().numpy().reshape(*shape, H),
        x.grad.numpy().reshape(z.shape),
        c0.grad.numpy().reshape(*shape, H),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_and_derivative_match_torch_lstm_cell(dtype):
    z, c_prev, dh, dc = _inputs(dtype)
    r = np.random.default_rng(1)
    b_ih, b_hh = (r.standard_normal(4 * H).astype(dtype) for _ in range(2))
    a = lstm_gates(z, H)
    c, tanh_c, h = lstm_cell(a, c_prev)
    dz = np.full_like(a, np.nan)  # every entry must be written
    dc_prev = lstm_cell_backward(dh, dc, a, c_prev, c, tanh_c, out=dz)
    th, tc, tdz, tdc = _torch_cell(z, c_prev, dh, dc, b_ih, b_hh)
    tol = TOL[dtype]
    for ours, theirs in ((h, th), (c, tc), (tanh_c, np.tanh(tc)), (dz, tdz), (dc_prev, tdc)):
        assert ours.dtype == dtype and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


def test_written_into_out_equals_fresh_arrays():
    z, c_prev, dh, dc = _inputs(np.float32, seed=2)
    a = lstm_gates(z, H)
    gates = np.empty_like(z)
    assert lstm_gates(z, H, out=gates) is gates
    np.testing.assert_array_equal(gates, a)
    fresh = lstm_cell(a, c_prev)
    outs = tuple(np.empty_like(c_prev) for _ in range(3))
    written = lstm_cell(a, c_prev, out=outs)
    for w, o, f in zip(written, outs, fresh):
        assert w is o
        np.testing.assert_array_equal(o, f)
    dz = np.empty_like(a)
    d_out = lstm_cell_backward(dh, dc, a, c_prev, fresh[0], fresh[1], out=dz)
    d_fresh = lstm_cell_backward(dh, dc, a, c_prev, fresh[0], fresh[1])
    np.testing.assert_array_equal(d_out, d_fresh)


def test_derivative_from_pre_activations_matches_finite_differences():
    pair = ("gelu", "softplus")  # gelu's derivative reads z (and φ(c)'s reads c)
    act = get_elementwise(pair[0])[0]
    derivs = (get_elementwise(pair[0])[1], get_elementwise(pair[1])[1])
    z, c_prev, dh, dc = _inputs(np.float64, seed=3)

    def loss(z, c_prev):
        c, _, h = lstm_cell(lstm_gates(z, H, pair), c_prev, act)
        return float((dh * h).sum() + (dc * c).sum())

    a = lstm_gates(z, H, pair)
    c, act_c, _ = lstm_cell(a, c_prev, act)
    dz = np.empty_like(z)
    dc_prev = lstm_cell_backward(dh, dc, a, c_prev, c, act_c, derivs, z, dz)
    eps = 1e-6
    for arr, grad, other in ((z, dz, c_prev), (c_prev, dc_prev, z)):
        fd = np.empty_like(arr)
        for k in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[k] += eps
            minus[k] -= eps
            args = (plus, other) if arr is z else (other, plus)
            margs = (minus, other) if arr is z else (other, minus)
            fd[k] = (loss(*args) - loss(*margs)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
