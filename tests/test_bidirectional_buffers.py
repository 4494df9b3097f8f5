"""Stacked ``Bidirectional(LSTM)`` layers on the compiled path: the merged output, ``dx``, the
gradients and a training cache of one pass must survive the next pass, both without a workspace
(fresh arrays) and with both passes in one generation of a
:class:`lstmkit.ops.workspace.Workspace` (the buffers are pooled and every take is distinct).

Sizes are above the pool's 64 KiB threshold. Witness: PyTorch's two-layer bidirectional LSTM with
the same weights (both of its bias vectors non-zero), checked after another pass over other data
has run through the same layers, and the first pass's caches run backward once more.
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.layers import LSTM, Bidirectional
from lstmkit.ops import backend
from lstmkit.ops.workspace import Workspace
from test_layers_torch import close, close_grads, params_of, randomize, torch_reference

B, T, D, H = 8, 40, 5, 64  # (B, T, H) float64 = 160 KiB: above the pool's threshold
DT = np.float64


def stacked(rng):
    layers = [Bidirectional(LSTM(H, return_sequences=True, dtype="float64")) for _ in range(2)]
    for layer, d_in in zip(layers, (D, 2 * H)):
        layer.build((T, d_in))
        randomize(layer, rng)
    return layers


def forward(layers, x):
    caches = []
    for layer in layers:
        x, cache = layer.forward(x, training=True)
        caches.append(cache)
    return x, caches


def backward(layers, caches, dy):
    grads = []
    for layer, cache in zip(reversed(layers), reversed(caches)):
        dy, g = layer.backward(dy, cache)
        grads.insert(0, g)
    return dy, grads


def torch_pass(layers, x, dy, rng):
    blocks = [params_of(layer, p) for layer in layers for p in ("forward.", "backward.")]
    zeros = [np.zeros((4, B, H), DT)] * 2  # (layers * dirs, B, H): h0, c0
    out, _, _, dx, grads = torch_reference("lstm", blocks, x, zeros, dy, zeros, rng, True)
    return out, dx, grads


def check(layers, y, caches, dx, grads, witness):
    out, t_dx, t_grads = witness
    close(y, out, DT, "output")
    close(caches[1].y_fwd, out[..., :H], DT, "cached forward output")
    close(caches[1].y_bwd, out[..., H:], DT, "cached backward output")
    close(dx, t_dx, DT, "dx")
    for k, g in enumerate(grads):
        close_grads(g, t_grads[2 * k], DT, "forward.")
        close_grads(g, t_grads[2 * k + 1], DT, "backward.")


@pytest.mark.parametrize("pooled", [False, True])
def test_a_pass_survives_the_next_one(pooled):
    ws = Workspace() if pooled else None
    with backend.compute_scope(workspace=ws):
        two_passes()
    assert ws is None or ws.bytes > 2**20


def two_passes():
    rng = np.random.default_rng(20)
    layers = stacked(rng)
    assert layers[0].forward_layer.kernel_report() == "compiled kernels (numba)"
    xa, xb = (rng.standard_normal((B, T, D)).astype(DT) for _ in range(2))
    dya, dyb = (rng.standard_normal((B, T, 2 * H)).astype(DT) for _ in range(2))
    witness_a = torch_pass(layers, xa, dya, rng)
    witness_b = torch_pass(layers, xb, dyb, rng)

    ya, caches_a = forward(layers, xa)
    dxa, grads_a = backward(layers, caches_a, dya)
    yb, caches_b = forward(layers, xb)
    dxb, grads_b = backward(layers, caches_b, dyb)

    check(layers, ya, caches_a, dxa, grads_a, witness_a)  # untouched by pass b
    check(layers, yb, caches_b, dxb, grads_b, witness_b)
    dxa2, grads_a2 = backward(layers, caches_a, dya)  # a's caches still whole after pass b
    check(layers, ya, caches_a, dxa2, grads_a2, witness_a)
    assert not np.shares_memory(dxa, dxa2)
