"""LSTM variants (peephole, CIFG, no forget gate, layer norm, zoneout) against independent witnesses.

- Central finite differences in float64 on a random scalar loss: every gradient, every switch
  combination, with and without masks and recurrent dropout (relative error <= 1e-6).
- The plain cell (:mod:`lstmkit.ops.lstm`) when a variant is neutral: peephole weights 0,
  zoneout 0; and "no forget gate" equals the plain cell whose forget gate is pinned at 1.
- onnxruntime's ``LSTM`` operator for peepholes (input ``P``, order i, o, f) and for CIFG
  (``input_forget=1``). onnxruntime couples the other way round, ``f = 1 - i`` with i computed
  from its i-block; since ``1 - σ(z) = σ(-z)`` lstmkit's CIFG (``i = 1 - f``) is onnxruntime's
  with i-block = minus lstmkit's f-block (weights, bias and peephole) and any f-block at all.
- Layer norm and zoneout against PyTorch modules (``nn.LayerNorm``, ``nn.LSTMCell``) and
  autograd: ``tests/test_variants_torch.py``.
- The layer users call: config and weights round trips, a saved file, step == forward.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential
from lstmkit.ops.lstm import lstm_backward, lstm_forward
from lstmkit.ops.lstm_variants import (
    LNParams,
    Variant,
    lstm_variants_backward,
    lstm_variants_forward,
    lstm_variants_step,
)

VARIANTS = {"plain": Variant(), "cifg": Variant(cifg=True), "nofg": Variant(forget_gate=False)}


def make_case(
    variant,
    T=4,
    B=3,
    D=3,
    H=2,
    seed=0,
    peephole=False,
    ln=False,
    zoneout=False,
    mask=False,
    rmask=False,
    dtype=np.float64,
):
    rng = np.random.default_rng(seed)
    G = len(variant.gates)

    def r(*shape, scale=0.6):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    case = {
        "x": r(T, B, D, scale=1.0),
        "h0": r(B, H),
        "c0": r(B, H),
        "kernel": r(D, G * H),
        "recurrent_kernel": r(H, G * H),
        "bias": r(G * H),
    }
    if peephole:
        case["peephole"] = r(3, H)
    if ln:
        case.update(
            ln_gamma_x=1 + r(G * H, scale=0.3),
            ln_gamma_h=1 + r(G * H, scale=0.3),
            ln_gamma_c=1 + r(H, scale=0.3),
            ln_beta_c=r(H, scale=0.3),
        )
    fixed = {"mask": None, "recurrent_mask": None, "zoneout": None}
    if mask:  # post-padded rows and a hole
        m = np.ones((T, B), bool)
        m[T - 1 :, 0] = False
        m[1, B - 1] = False
        fixed["mask"] = m
    if rmask:
        fixed["recurrent_mask"] = ((rng.random((B, H)) < 0.7) / 0.7).astype(dtype)
    if zoneout:  # training draws on c, expectations-like weights on h
        fixed["zoneout"] = ((rng.random((T, B, H)) < 0.4).astype(dtype), rng.random((T, B, H)))
    upstream = (r(T, B, H, scale=1.0), r(B, H, scale=1.0), r(B, H, scale=1.0))
    return case, fixed, upstream


def run(variant, case, fixed):
    ln = None
    if "ln_gamma_x" in case:
        ln = LNParams(case["ln_gamma_x"], case["ln_gamma_h"], case["ln_gamma_c"], case["ln_beta_c"])
    return lstm_variants_forward(
        case["x"],
        case["h0"],
        case["c0"],
        case["kernel"],
        case["recurrent_kernel"],
        case["bias"],
        fixed["mask"],
        fixed["recurrent_mask"],
        variant=variant,
        peephole=case.get("peephole"),
        ln=ln,
        zoneout=fixed["zoneout"],
    )


def scalar_loss(variant, case, fixed, upstream):
    hs, (h, c), _ = run(variant, case, fixed)
    dhs, dh, dc = upstream
    return float((hs * dhs).sum() + (h * dh).sum() + (c * dc).sum())


COMBOS = [
    (v, peep, ln, zo, mask, rmask)
    for v, peep, ln, zo, mask, rmask in itertools.product(
        VARIANTS, (False, True), (False, True), (False, True), (False, True), (False, True)
    )
    # every switch pair appears; thin out the full product to keep the run short
    if (peep + ln + zo + mask + rmask) <= 2 or (peep and ln and zo and mask and rmask)
]


@pytest.mark.parametrize("variant,peephole,ln,zoneout,mask,rmask", COMBOS)
def test_finite_differences(variant, peephole, ln, zoneout, mask, rmask):
    v = VARIANTS[variant]
    case, fixed, up = make_case(
        v,
        peephole=peephole,
        ln=ln,
        zoneout=zoneout,
        mask=mask,
        rmask=rmask,
        seed=len(variant) + 7 * peephole + 3 * ln,
    )
    _, _, cache = run(v, case, fixed)
    grads = lstm_variants_backward(*up, cache)
    assert set(grads) == set(case)
    eps = 1e-6
    for name, p in case.items():
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            lp = scalar_loss(v, case, fixed, up)
            p[idx] = old - eps
            lm = scalar_loss(v, case, fixed, up)
            p[idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        rel = np.abs(grads[name] - num).max() / max(np.abs(num).max(), 1e-3)
        assert rel <= 1e-6, (name, rel)


@pytest.mark.parametrize("mask", [False, True])
def test_zero_peepholes_and_zero_zoneout_are_the_plain_cell(mask):
    case, fixed, up = make_case(
        Variant(), T=6, B=4, D=3, H=5, peephole=True, zoneout=True, mask=mask, rmask=True, seed=3
    )
    case["peephole"][:] = 0.0
    zero = np.zeros((6, 4, 5))
    fixed["zoneout"] = (zero, zero)
    args = [case[k] for k in ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias")]
    hs0, (_h0, c0), cache0 = lstm_forward(*args, fixed["mask"], fixed["recurrent_mask"])
    hs, (_h, c), cache = run(Variant(), case, fixed)
    np.testing.assert_array_equal(hs, hs0)  # the same arithmetic, bit for bit
    np.testing.assert_array_equal(c, c0)
    g0 = lstm_backward(*up, cache0)
    g = lstm_variants_backward(*up, cache)
    for k in g0:
        np.testing.assert_allclose(g[k], g0[k], rtol=1e-12, atol=1e-14, err_msg=k)
    np.testing.assert_array_equal(g["peephole"].shape, (3, 5))


def test_no_forget_gate_is_the_plain_cell_with_f_pinned_at_1():
    v = Variant(forget_gate=False)
    case, fixed, up = make_case(v, T=5, B=3, D=2, H=3, mask=True, seed=11)
    H = 3
    # the plain cell: i, f, g, o with the f block's weights 0 and its bias so large that σ = 1.0
    pad = lambda a, fill: np.concatenate(
        [a[..., :H], np.full(a.shape[:-1] + (H,), fill), a[..., H:]], -1
    )
    plain = [
        case["x"],
        case["h0"],
        case["c0"],
        pad(case["kernel"], 0.0),
        pad(case["recurrent_kernel"], 0.0),
        pad(case["bias"], 1e3),
    ]
    hs0, (_h0, c0), cache0 = lstm_forward(*plain, fixed["mask"])
    hs, (_h, c), cache = run(v, case, fixed)
    np.testing.assert_allclose(hs, hs0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c, c0, rtol=0, atol=1e-14)
    g0, g = lstm_backward(*up, cache0), lstm_variants_backward(*up, cache)
    keep = np.r_[0:H, 2 * H : 4 * H]  # the plain cell's i, g, o columns
    for k in ("x", "h0", "c0"):
        np.testing.assert_allclose(g[k], g0[k], atol=1e-12)
    for k in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(g[k], g0[k][..., keep], atol=1e-12)


def test_zoneout_keep_everything_freezes_the_state():
    case, fixed, _ = make_case(Variant(), T=4, B=2, D=2, H=3, seed=5)
    ones = np.ones((4, 2, 3))
    fixed["zoneout"] = (ones, ones)
    _hs, (h, c), _ = run(Variant(), case, fixed)
    np.testing.assert_array_equal(h, case["h0"])
    np.testing.assert_array_equal(c, case["c0"])


def test_step_matches_forward_for_every_variant():
    for v in VARIANTS.values():
        case, fixed, _ = make_case(v, T=5, B=2, D=3, H=4, peephole=True, ln=True, seed=2)
        rates = (np.float64(0.3), np.float64(0.1))
        fixed["zoneout"] = rates  # inference: the expectation, broadcast over (T, B, H)
        hs, (_hT, cT), _ = run(v, case, fixed)
        ln = LNParams(case["ln_gamma_x"], case["ln_gamma_h"], case["ln_gamma_c"], case["ln_beta_c"])
        h, c = case["h0"], case["c0"]
        for t in range(5):
            h, c = lstm_variants_step(
                case["x"][t],
                h,
                c,
                case["kernel"],
                case["recurrent_kernel"],
                case["bias"],
                variant=v,
                peephole=case["peephole"],
                ln=ln,
                zoneout=rates,
            )
            np.testing.assert_allclose(h, hs[t], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c, cT, rtol=1e-12, atol=1e-14)


def test_cifg_with_no_forget_gate_is_an_error():
    with pytest.raises(ValueError, match="cifg"):
        _ = Variant(cifg=True, forget_gate=False).gates
    with pytest.raises(ValueError, match="LSTM: .*cifg"):
        LSTM(3, cifg=True, forget_gate=False)


# -- onnxruntime as the outside witness ----------------------------------------------------------
def _onnx_lstm(x, h0, c0, W, R, B, P, input_forget, seq_lens):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    feeds = {"X": x, "W": W, "R": R, "B": B, "h0": h0, "c0": c0, "P": P}
    feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()}
    feeds["seq"] = seq_lens.astype(np.int32)
    node = helper.make_node(
        "LSTM",
        ["X", "W", "R", "B", "seq", "h0", "c0", "P"],
        ["Y", "Y_h", "Y_c"],
        hidden_size=h0.shape[-1],
        input_forget=input_forget,
    )
    inputs = [
        helper.make_tensor_value_info(
            k, TensorProto.INT32 if k == "seq" else TensorProto.FLOAT, v.shape
        )
        for k, v in feeds.items()
    ]
    T, B, H = x.shape[0], x.shape[1], h0.shape[-1]
    shapes = {"Y": (T, 1, B, H), "Y_h": (1, B, H), "Y_c": (1, B, H)}
    outputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in shapes.items()]
    model = helper.make_model(
        helper.make_graph([node], "lstm", inputs, outputs),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("cifg", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_peephole_and_cifg_match_onnxruntime(cifg, ragged):
    v = Variant(cifg=cifg)
    T, B, H = 7, 3, 4
    case, fixed, _ = make_case(v, T=T, B=B, D=3, H=H, peephole=True, seed=21 + cifg)
    lengths = np.array([T, T - 3, 2]) if ragged else np.full(B, T)
    if ragged:
        fixed["mask"] = np.arange(T)[:, None] < lengths[None, :]  # (T, B), post-padded
    case = {k: a.astype(np.float32).astype(np.float64) for k, a in case.items()}  # exact in f32
    hs, (h, c), _ = run(v, case, fixed)

    rng = np.random.default_rng(0)
    P = case["peephole"]

    def block(a, gate):  # lstmkit gate block -> onnxruntime block (i, o, f, c order)
        s = v.block(gate, H)
        if cifg and gate == "i":  # onnxruntime: f = 1 - σ(z_i); lstmkit: i = 1 - σ(z_f)
            return -a[..., v.block("f", H)]
        if cifg and gate == "f":  # ignored by onnxruntime under input_forget: anything goes
            return rng.standard_normal(a.shape[:-1] + (H,))
        return a[..., s]

    order = ("i", "o", "f", "g")
    W = np.concatenate([block(case["kernel"], g) for g in order], -1).T[None]  # (1, 4H, D)
    R = np.concatenate([block(case["recurrent_kernel"], g) for g in order], -1).T[None]
    b = np.concatenate([block(case["bias"], g) for g in order])
    b_hh = rng.uniform(0.5, 1.0, 4 * H)  # non-zero recurrent bias: a dropped bias would show
    Bias = np.concatenate([b - b_hh, b_hh])[None]
    p_i = -P[1] if cifg else P[0]
    Peep = np.concatenate([p_i, P[2], P[1]])[None]  # P[iof]
    Y, Y_h, Y_c = _onnx_lstm(
        case["x"], case["h0"][None], case["c0"][None], W, R, Bias, Peep, int(cifg), lengths
    )
    valid = np.arange(T)[:, None] < lengths[None, :]
    np.testing.assert_allclose(Y[:, 0][valid], hs[valid], atol=2e-6)
    np.testing.assert_allclose(Y_h[0], h, atol=2e-6)
    np.testing.assert_allclose(Y_c[0], c, atol=2e-6)


# -- the layer ----------------------------------------------------------------------------------
LAYER_VARIANTS = [
    {},
    {"peephole": True},
    {"cifg": True},
    {"forget_gate": False},
    {"layer_norm": True},
    {"zoneout": 0.2},
    {"zoneout": [0.3, 0.05], "peephole": True, "layer_norm": True, "cifg": True},
]


@pytest.mark.parametrize("kwargs", LAYER_VARIANTS)
def test_layer_weights_config_and_saved_file_round_trip(kwargs, tmp_path):
    from lstmkit.saving import load_model

    layer = LSTM(
        4,
        input_shape=(None, 3),
        forget_bias=3.0 if kwargs.get("forget_gate", True) else None,
        **kwargs,
    )
    model = Sequential([layer, Dense(1)], dtype="float64")
    G = 3 if kwargs.get("cifg") or kwargs.get("forget_gate") is False else 4
    shapes = {"kernel": (3, G * 4), "recurrent_kernel": (4, G * 4), "bias": (G * 4,)}
    if kwargs.get("peephole"):
        shapes["peephole"] = (3, 4)
    if kwargs.get("layer_norm"):
        shapes.update(ln_gamma_x=(G * 4,), ln_gamma_h=(G * 4,), ln_gamma_c=(4,), ln_beta_c=(4,))
    assert {k: p.shape for k, p in layer.params.items()} == shapes
    assert list(layer.weight_names) == list(shapes)
    assert [w.shape for w in layer.get_weights()] == list(shapes.values())
    f = layer.variant.block("f", 4)
    if f is not None:
        assert (layer.params["bias"][f] == 3.0).all()
    cfg = layer.get_config()
    again = LSTM.from_config(cfg)
    assert again.get_config() == cfg
    for k, v in kwargs.items():
        assert cfg[k] == v
    rng = np.random.default_rng(0)
    for p in layer.params.values():
        p[...] = rng.standard_normal(p.shape) * 0.3
    x = rng.standard_normal((2, 5, 3))
    path = tmp_path / "m.lstmkit"
    model.save(path)
    loaded = load_model(path, compile=False)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_plain_layer_config_is_unchanged():
    cfg = LSTM(3).get_config()
    assert not {"peephole", "cifg", "forget_gate", "layer_norm", "zoneout"} & set(cfg)
    assert not LSTM(3).is_variant and LSTM(3, zoneout=0.1).is_variant


@pytest.mark.parametrize("kwargs", LAYER_VARIANTS[1:])
def test_layer_gradients_by_finite_differences(kwargs):
    """The object users call: masked batch, return_sequences, float64, zoneout in training."""
    layer = LSTM(3, return_sequences=True, dtype="float64", **kwargs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 2))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    layer.build((5, 2), rng)
    for p in layer.params.values():
        p[...] += rng.standard_normal(p.shape) * 0.2
    dy = rng.standard_normal((2, 5, 3))

    def loss():  # the same zoneout draws every time: a fresh generator with one seed
        y, cache = layer.forward(x, training=True, mask=mask, rng=np.random.default_rng(7))
        return float((y * dy).sum()), cache

    _, cache = loss()
    _dx, grads = layer.backward(dy, cache)
    for name, p in layer.params.items():
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + 1e-6
            lp = loss()[0]
            p[idx] = old - 1e-6
            lm = loss()[0]
            p[idx] = old
            num[idx] = (lp - lm) / 2e-6
        rel = np.abs(grads[name] - num).max() / max(np.abs(num).max(), 1e-3)
        assert rel <= 1e-6, (name, rel)


def test_layer_zoneout_training_draws_and_inference_expectation():
    layer = LSTM(8, return_sequences=True, zoneout=0.5, dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 6, 2))
    y_inf = layer(x)
    y_inf2 = layer(x)
    np.testing.assert_array_equal(y_inf, y_inf2)  # inference is deterministic
    y_a, cache = layer.forward(x, training=True, rng=np.random.default_rng(1))
    y_b, _ = layer.forward(x, training=True, rng=np.random.default_rng(2))
    assert not np.allclose(y_a, y_b)
    d_c, _d_h = cache.ops_cache.zoneout
    assert d_c.shape == (6, 4, 8) and set(np.unique(d_c)) <= {0.0, 1.0}
    assert 0.4 < d_c.mean() < 0.6
    # streaming inference uses the same expectation as the whole-sequence forward
    h, states = None, None
    for t in range(6):
        h, states = layer.step(x[:, t], states)
    np.testing.assert_allclose(h, y_inf[:, -1], rtol=1e-12)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="zoneout"):
        LSTM(3, zoneout=1.0)
    with pytest.raises(ValueError, match="zoneout"):
        LSTM(3, zoneout=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="forget_bias"):
        LSTM(3, forget_gate=False, forget_bias=2.0)
