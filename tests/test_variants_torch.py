"""Layer normalisation and zoneout in the LSTM layer against PyTorch modules, not retyped equations.

- **Layer norm** (Ba, Kiros & Hinton 2016, as ``lstmkit.ops.lstm_variants`` states it): a torch
  cell built from ``nn.Linear`` (no bias) and ``nn.LayerNorm`` modules, ``LN_x(x W)`` and
  ``LN_h(h U)`` over the ``G*H`` gate columns and ``LN_c(c)`` over the ``H`` units before the
  output ``tanh``. torch's LayerNorm computes the statistics, the epsilon and its own backward;
  its two shifts ``β_x``, ``β_h`` are both non-zero and add up to lstmkit's one ``bias`` (so a
  dropped shift would show), and lstmkit's bias gradient must equal each of theirs. The gates
  are read off ``z`` in the documented storage order (``i f g o``; CIFG ``f g o`` with
  ``i = 1 - f``; no forget gate ``i g o`` with ``f = 1``).
- **Zoneout** (Krueger et al. 2017): ``c_t = d_c c_{t-1} + (1 - d_c) ĉ_t`` and
  ``h_t = d_h h_{t-1} + (1 - d_h) ĥ_t`` where ``(ĥ_t, ĉ_t)`` is the ordinary LSTM step, here
  torch's own ``nn.LSTMCell`` (weights copied in, both bias vectors non-zero). In training the
  ``d`` are Bernoulli(rate) draws per unit and step: the layer's own draws are handed to the
  torch side (a witness of the arithmetic), and their frequencies are checked against the rates
  (a witness of the draws). At inference ``d`` is the rate itself (the expectation).

Outputs, final states and every gradient (inputs, initial states, all weights) are compared:
float64 to 1e-10, float32 to 1e-5. The layer users call is the object under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmkit.layers import LSTM
from lstmkit.ops.lstm_variants import LN_EPSILON
from oracles import TORCH_DTYPE, _param_grads, torch_cell

TOL = {np.float64: 1e-10, np.float32: 1e-5}
GATES = {"plain": "ifgo", "cifg": "fgo", "nofg": "igo"}
KWARGS = {"plain": {}, "cifg": {"cifg": True}, "nofg": {"forget_gate": False}}
B, T, D, H = 3, 6, 4, 5


def _close(ours, theirs, dtype, what):
    tol = TOL[dtype]
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * scale, err_msg=what)


def _post_padded_mask():
    m = np.ones((B, T), bool)
    m[1, T - 2 :] = False
    m[2, T - 4 :] = False
    return m


def _run_layer(layer, x, h0, c0, upstream, mask=None, training=True, rng=None):
    """Forward and backward through the layer: ``(hs, h, c), dx, grads, (dh0, dc0), cache``."""
    out, cache = layer.forward(x, training=training, mask=mask, rng=rng, initial_state=[h0, c0])
    dx, grads, dinit = layer.backward_with_state(list(upstream), cache)
    return out, dx, grads, dinit, cache


def _torch_loss(outputs, upstream):
    return sum((o * torch.from_numpy(u)).sum() for o, u in zip(outputs, upstream))


def _upstream(rng, dtype):
    return [rng.normal(size=s).astype(dtype) for s in ((B, T, H), (B, H), (B, H))]


# -- layer normalisation ---------------------------------------------------------------------------
class TorchLayerNormLSTM(nn.Module):
    """The layer-normalised cell from torch modules; ``gates`` names the blocks of ``z``."""

    def __init__(self, gates, dtype):
        super().__init__()
        GH = len(gates) * H
        self.gates = gates
        self.wx = nn.Linear(D, GH, bias=False, dtype=dtype)
        self.wh = nn.Linear(H, GH, bias=False, dtype=dtype)
        self.ln_x = nn.LayerNorm(GH, eps=LN_EPSILON, dtype=dtype)
        self.ln_h = nn.LayerNorm(GH, eps=LN_EPSILON, dtype=dtype)
        self.ln_c = nn.LayerNorm(H, eps=LN_EPSILON, dtype=dtype)

    def step(self, x_t, h, c):
        z = self.ln_x(self.wx(x_t)) + self.ln_h(self.wh(h))
        a = dict(zip(self.gates, z.split(H, dim=-1)))
        f = torch.sigmoid(a["f"]) if "f" in a else 1.0
        i = torch.sigmoid(a["i"]) if "i" in a else 1.0 - f
        c = f * c + i * torch.tanh(a["g"])
        h = torch.sigmoid(a["o"]) * torch.tanh(self.ln_c(c))
        return h, c

    def forward(self, x, h, c, mask=None):
        """``x (B, T, D)``; a False ``mask[b, t]`` carries h and c over (and outputs the h)."""
        hs = []
        for t in range(x.shape[1]):
            h_new, c_new = self.step(x[:, t], h, c)
            if mask is not None:
                m = torch.from_numpy(mask[:, t])[:, None]
                h_new, c_new = torch.where(m, h_new, h), torch.where(m, c_new, c)
            h, c = h_new, c_new
            hs.append(h)
        return torch.stack(hs, dim=1), h, c


def _ln_case(variant, dtype, seed):
    rng = np.random.default_rng(seed)
    G = len(GATES[variant])
    w = {
        "kernel": rng.normal(scale=0.5, size=(D, G * H)),
        "recurrent_kernel": rng.normal(scale=0.5, size=(H, G * H)),
        "bias": rng.normal(scale=0.5, size=G * H),
        "ln_gamma_x": 1 + rng.normal(scale=0.3, size=G * H),
        "ln_gamma_h": 1 + rng.normal(scale=0.3, size=G * H),
        "ln_gamma_c": 1 + rng.normal(scale=0.3, size=H),
        "ln_beta_c": rng.normal(scale=0.3, size=H),
    }
    beta_x = rng.uniform(0.2, 0.7, size=G * H) * rng.choice([-1, 1], size=G * H)
    w = {k: v.astype(dtype) for k, v in w.items()}
    x = rng.normal(size=(B, T, D)).astype(dtype)
    h0, c0 = (rng.normal(scale=0.5, size=(B, H)).astype(dtype) for _ in range(2))
    return w, beta_x.astype(dtype), x, h0, c0, _upstream(rng, dtype)


def _torch_ln(variant, w, beta_x, dtype):
    m = TorchLayerNormLSTM(GATES[variant], TORCH_DTYPE[np.dtype(dtype)])
    with torch.no_grad():
        m.wx.weight.copy_(torch.from_numpy(w["kernel"].T.copy()))
        m.wh.weight.copy_(torch.from_numpy(w["recurrent_kernel"].T.copy()))
        m.ln_x.weight.copy_(torch.from_numpy(w["ln_gamma_x"]))
        m.ln_x.bias.copy_(torch.from_numpy(beta_x))  # β_x + β_h = lstmkit's bias, both non-zero
        m.ln_h.weight.copy_(torch.from_numpy(w["ln_gamma_h"]))
        m.ln_h.bias.copy_(torch.from_numpy(w["bias"] - beta_x))
        m.ln_c.weight.copy_(torch.from_numpy(w["ln_gamma_c"]))
        m.ln_c.bias.copy_(torch.from_numpy(w["ln_beta_c"]))
    assert (m.ln_h.bias != 0).all() and (m.ln_x.bias != 0).all()
    return m


@pytest.mark.parametrize("masked", [False, True], ids=["full", "post-padded"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", list(GATES))
def test_layer_norm_matches_torch_layernorm_modules(variant, dtype, masked):
    w, beta_x, x, h0, c0, up = _ln_case(variant, dtype, seed=3 + len(variant))
    mask = _post_padded_mask() if masked else None
    layer = LSTM(
        H,
        layer_norm=True,
        return_sequences=True,
        return_state=True,
        dtype=np.dtype(dtype).name,
        **KWARGS[variant],
    )
    layer.build((T, D))
    assert list(layer.weight_names) == list(w)
    layer.set_weights(list(w.values()))
    (hs, h, c), dx, grads, (dh0, dc0), _ = _run_layer(layer, x, h0, c0, up, mask)

    m = _torch_ln(variant, w, beta_x, dtype)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ths, th, tc = m(tx, th0, tc0, mask)
    _torch_loss((ths, th, tc), up).backward()

    for ours, theirs, what in ((hs, ths, "hs"), (h, th, "h_T"), (c, tc, "c_T")):
        _close(ours, theirs.detach().numpy(), dtype, what)
    for ours, theirs, what in ((dx, tx, "x"), (dh0, th0, "h0"), (dc0, tc0, "c0")):
        _close(ours, theirs.grad.numpy(), dtype, f"d{what}")
    expected = {
        "kernel": m.wx.weight.grad.numpy().T,
        "recurrent_kernel": m.wh.weight.grad.numpy().T,
        "bias": m.ln_x.bias.grad.numpy(),
        "ln_gamma_x": m.ln_x.weight.grad.numpy(),
        "ln_gamma_h": m.ln_h.weight.grad.numpy(),
        "ln_gamma_c": m.ln_c.weight.grad.numpy(),
        "ln_beta_c": m.ln_c.bias.grad.numpy(),
    }
    # the one bias receives what either torch shift receives
    _close(m.ln_h.bias.grad.numpy(), expected["bias"], dtype, "torch's two shifts")
    assert set(grads) == set(expected)
    for k, v in expected.items():
        _close(grads[k], v, dtype, f"d{k}")


# -- zoneout ---------------------------------------------------------------------------------------
def _zoneout_case(dtype, seed):
    rng = np.random.default_rng(seed)
    w = [
        rng.normal(scale=0.5, size=(D, 4 * H)),
        rng.normal(scale=0.5, size=(H, 4 * H)),
        rng.normal(scale=0.5, size=4 * H),
    ]
    b_hh = rng.uniform(0.2, 0.6, size=4 * H) * rng.choice([-1, 1], size=4 * H)
    x = rng.normal(size=(B, T, D))
    h0, c0 = (rng.normal(scale=0.5, size=(B, H)) for _ in range(2))
    cast = lambda a: np.asarray(a, dtype)
    return [cast(a) for a in w], cast(b_hh), cast(x), cast(h0), cast(c0), _upstream(rng, dtype)


def _torch_zoneout(w, b_hh, x, h0, c0, d_c, d_h, up, mask=None):
    """Krueger et al.'s zoneout around torch's ``nn.LSTMCell``; ``d_c, d_h`` broadcast to
    ``(T, B, H)``. Returns outputs, final states, input/state leaves and the cell."""
    cell = torch_cell("lstm", *w, b_hh=b_hh)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    h, c, hs = th0, tc0, []
    for t in range(x.shape[1]):
        h_hat, c_hat = cell(tx[:, t], (h, c))
        dc = torch.from_numpy(np.broadcast_to(d_c, (T, B, H))[t].copy())
        dh = torch.from_numpy(np.broadcast_to(d_h, (T, B, H))[t].copy())
        c_new = dc * c + (1 - dc) * c_hat
        h_new = dh * h + (1 - dh) * h_hat
        if mask is not None:
            m = torch.from_numpy(mask[:, t])[:, None]
            h_new, c_new = torch.where(m, h_new, h), torch.where(m, c_new, c)
        h, c = h_new, c_new
        hs.append(h)
    ths = torch.stack(hs, dim=1)
    _torch_loss((ths, h, c), up).backward()
    return (ths, h, c), (tx, th0, tc0), cell


def _compare_zoneout(layer_out, torch_out, dtype):
    (hs, h, c), dx, grads, (dh0, dc0) = layer_out
    (ths, th, tc), (tx, th0, tc0), cell = torch_out
    for ours, theirs, what in ((hs, ths, "hs"), (h, th, "h_T"), (c, tc, "c_T")):
        _close(ours, theirs.detach().numpy(), dtype, what)
    for ours, theirs, what in ((dx, tx, "x"), (dh0, th0, "h0"), (dc0, tc0, "c0")):
        _close(ours, theirs.grad.numpy(), dtype, f"d{what}")
    for k, v in _param_grads("lstm", cell, "").items():
        _close(grads[k], v, dtype, f"d{k}")


@pytest.mark.parametrize("masked", [False, True], ids=["full", "post-padded"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rates", [(0.3, 0.3), (0.5, 0.1)])
def test_zoneout_training_matches_torch_lstmcell_with_the_same_draws(rates, dtype, masked):
    w, b_hh, x, h0, c0, up = _zoneout_case(dtype, seed=5)
    mask = _post_padded_mask() if masked else None
    layer = LSTM(H, zoneout=list(rates), return_sequences=True, return_state=True,
                 dtype=np.dtype(dtype).name)  # fmt: skip
    layer.build((T, D))
    layer.set_weights(w)
    rng = np.random.default_rng(17)
    *ours, cache = _run_layer(layer, x, h0, c0, up, mask, training=True, rng=rng)
    d_c, d_h = cache.ops_cache.zoneout  # (T, B, H) each: the draws of this forward
    assert d_c.shape == d_h.shape == (T, B, H)
    assert set(np.unique(d_c)) == set(np.unique(d_h)) == {0.0, 1.0}
    assert not np.array_equal(d_c, d_h)  # two draws, not one mask used twice
    _compare_zoneout(ours, _torch_zoneout(w, b_hh, x, h0, c0, d_c, d_h, up, mask), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zoneout_inference_is_the_expectation_around_torch_lstmcell(dtype):
    rates = (0.35, 0.15)
    w, b_hh, x, h0, c0, up = _zoneout_case(dtype, seed=6)
    layer = LSTM(H, zoneout=list(rates), return_sequences=True, return_state=True,
                 dtype=np.dtype(dtype).name)  # fmt: skip
    layer.build((T, D))
    layer.set_weights(w)
    *ours, _ = _run_layer(layer, x, h0, c0, up, training=False)
    d_c, d_h = (np.full((T, B, H), r, dtype) for r in rates)
    _compare_zoneout(ours, _torch_zoneout(w, b_hh, x, h0, c0, d_c, d_h, up), dtype)
    # predict (the inference kernel, no cache) gives the same
    y = layer.infer(x, initial_state=[h0, c0])
    _close(y[0], ours[0][0], dtype, "infer")


@pytest.mark.parametrize("rates", [(0.3, 0.3), (0.6, 0.1)])
def test_zoneout_draws_are_bernoulli_with_the_rates(rates):
    """Frequencies of 'keep the previous state' per state, per step and per unit."""
    Bn, Tn, Hn = 400, 10, 8
    layer = LSTM(Hn, zoneout=list(rates), return_sequences=True, dtype="float64")
    x = np.random.default_rng(0).normal(size=(Bn, Tn, 2))
    _, cache = layer.forward(x, training=True, rng=np.random.default_rng(9))
    draws = cache.ops_cache.zoneout
    for d, r in zip(draws, rates):
        assert d.shape == (Tn, Bn, Hn)
        n = d.size
        assert abs(d.mean() - r) < 5 * np.sqrt(r * (1 - r) / n), (d.mean(), r)
        per_unit = d.mean(axis=(0, 1))  # every unit and every step gets its own draws
        per_step = d.mean(axis=(1, 2))
        for m, k in ((per_unit, Tn * Bn), (per_step, Bn * Hn)):
            assert np.abs(m - r).max() < 5 * np.sqrt(r * (1 - r) / k), (m, r)
    # the c and h draws are independent: P(both) = r_c r_h
    both = (draws[0] * draws[1]).mean()
    p = rates[0] * rates[1]
    assert abs(both - p) < 5 * np.sqrt(p * (1 - p) / draws[0].size)
