"""``Embedding.backward``: the gradient of the embeddings against PyTorch's ``nn.Embedding``
(repeated ids, ids that never occur), on both backends; and the compiled one-pass kernel
(``lstmkit.ops.fast.embedding_grad``) bit for bit against the NumPy backward (a stable sort and
``np.add.reduceat``), which adds each id's rows in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.layers import Embedding
from lstmkit.ops import backend

V, E = 75, 16


def _case(dtype, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V - 5, size=(32, 50))  # ids V-5.. never occur: zero rows
    ids[:, :10] = 3  # one id very often: long sums, where the order of the additions shows
    dy = rng.standard_normal((32, 50, E)).astype(dtype)
    dy[0, 0, :4] = -0.0  # a first row of signed zeros: copied, not added to +0
    layer = Embedding(V, E, dtype=np.dtype(dtype).name)
    layer.build((50,), np.random.default_rng(1))
    return layer, ids, dy


def _grad(layer, ids, dy, name):
    before = backend.get_backend()
    backend.set_backend(name)
    try:
        _, cache = layer.forward(ids)
        return layer.backward(dy, cache)[1]["embeddings"]
    finally:
        backend.set_backend(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_gradient_matches_torch(dtype, use_backend):
    layer, ids, dy = _case(dtype)
    g = _grad(layer, ids, dy, use_backend)
    emb = torch.nn.Embedding(V, E).to(torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(layer.params["embeddings"].astype(np.float64)))
    out = emb(torch.from_numpy(ids))
    out.backward(torch.from_numpy(dy.astype(np.float64)))
    ref = emb.weight.grad.numpy()
    assert g.dtype == dtype and g.shape == (V, E)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(g, ref, rtol=tol, atol=tol)
    assert not ref[V - 5 :].any() and not g[V - 5 :].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("id_dtype", [np.int64, np.int32, np.uint8])
def test_compiled_embedding_gradient_is_bit_identical_to_numpy(dtype, id_dtype, monkeypatch):
    from lstmkit.ops import fast

    calls = []
    real = fast.embedding_grad
    monkeypatch.setattr(fast, "embedding_grad", lambda *a: calls.append(1) or real(*a))
    layer, ids, dy = _case(dtype)
    ids = ids.astype(id_dtype)
    ref = _grad(layer, ids, dy, "numpy")
    assert not calls
    g = _grad(layer, ids, dy, "numba")
    assert calls == [1]  # the compiled kernel did run
    assert g.dtype == ref.dtype
    assert g.tobytes() == ref.tobytes()  # bit for bit, signed zeros included
