"""ops.attention against PyTorch: outputs and every gradient, with padding and causal masks."""

import numpy as np
import pytest
import torch

from lstmkit.ops.attention import attention_backward, attention_forward

TD = {np.float32: torch.float32, np.float64: torch.float64}


def _torch(q, k, v, mask, scale, dout, dw):
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    s = scale * tq @ tk.transpose(-1, -2)
    if mask is not None:
        s = s.masked_fill(~torch.tensor(np.broadcast_to(mask, s.shape)), float("-inf"))
    a = torch.softmax(s, dim=-1)
    out = a @ tv
    loss = (out * torch.tensor(dout)).sum() + (a * torch.tensor(dw)).sum()
    loss.backward()
    return (
        out.detach().numpy(),
        a.detach().numpy(),
        tq.grad.numpy(),
        tk.grad.numpy(),
        tv.grad.numpy(),
    )


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("masking", [None, "padding", "causal+padding"])
def test_attention_matches_torch(dtype, tol, masking):
    rng = np.random.default_rng(3)
    B, Tq, Tv, D, Dv = 3, 5, 5, 4, 6
    q, k = rng.normal(size=(B, Tq, D)), rng.normal(size=(B, Tv, D))
    v = rng.normal(size=(B, Tv, Dv))
    q, k, v = (a.astype(dtype) for a in (q, k, v))
    mask = None
    if masking:
        mask = (np.arange(Tv) < np.array([5, 3, 1])[:, None])[:, None, :]  # (B, 1, Tv)
        if "causal" in masking:
            mask = mask & np.tril(np.ones((Tq, Tv), bool))[None]
    dout = rng.normal(size=(B, Tq, Dv)).astype(dtype)
    dw = rng.normal(size=(B, Tq, Tv)).astype(dtype)
    scale = 0.7
    out, a, cache = attention_forward(q, k, v, mask, scale)
    grads = attention_backward(dout, cache, dw)
    want = _torch(q, k, v, mask, scale, dout, dw)
    for got, ref in zip((out, a, *grads), want):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


def test_fully_masked_query_gets_uniform_weights_not_nan():
    # float32, as Keras computes: each score minus 1e9 rounds to the same -1e9
    q = np.ones((1, 1, 2), np.float32)
    k = np.arange(6.0, dtype=np.float32).reshape(1, 3, 2)
    _, a, _ = attention_forward(q, k, k, np.zeros((1, 1, 3), bool))
    np.testing.assert_allclose(a, np.full((1, 1, 3), 1 / 3))
