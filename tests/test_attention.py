"""layers.Attention / layers.AdditiveAttention against independent witnesses.

- Keras 3 (torch backend), same weights copied in: outputs, attention scores and output masks
  for every score mode, with masks, the causal mask and a separate key, float32 and float64;
  weight names, shapes and initialisers; configs.
- PyTorch autograd through Keras' own torch-backend layers (an implementation we did not write):
  the gradients of the inputs and the parameters, masks and causal mask included; and through a
  whole Keras functional model (Embedding + LSTM + attention + pooling + Dense) for the graph.
- Central finite differences in float64, dropout included (a fixed generator replays the
  same dropout mask).
- A functional model like the Keras docs' example trains, saves and loads bit-identically.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch

import lstmkit
from lstmkit import layers as L

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

K = keras.layers
# Keras 3 on torch computes float64 products in float32 (keras.src.backend.common.dtypes.
# BIT64_TO_BIT32_DTYPE), so in float64 it agrees to float32 rounding only; the float64
# precision itself is witnessed by the finite differences below (to 1e-6 relative).
TOL = {"float32": 2e-5, "float64": 2e-6}
B, TQ, TV, D, DV = 3, 4, 5, 3, 2
# post-padding and a full row; key 0 is always valid, so no query is left with no key under the
# causal mask (Keras then gives uniform weights in float32 only: see test_ops_attention)
Q_MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
V_MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)

CONFIGS = {
    "dot": (L.Attention, K.Attention, {}),
    "dot-scaled": (L.Attention, K.Attention, {"use_scale": True}),
    "concat": (L.Attention, K.Attention, {"score_mode": "concat"}),
    "concat-scaled": (L.Attention, K.Attention, {"score_mode": "concat", "use_scale": True}),
    "additive": (L.AdditiveAttention, K.AdditiveAttention, {}),
    "additive-unscaled": (L.AdditiveAttention, K.AdditiveAttention, {"use_scale": False}),
}
# variant -> (masks, use_causal_mask, separate key)
VARIANTS = {
    "plain": (False, False, False),
    "masks": (True, False, False),
    "causal": (False, True, False),
    "key+masks+causal": (True, True, True),
}


def _inputs(dtype, key, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, TQ, D))
    v = rng.normal(size=(B, TV, DV if key else D))  # value serves as key: D features
    xs = [q, v] + ([rng.normal(size=(B, TV, D))] if key else [])
    return [x.astype(dtype) for x in xs]


def _layers(config, dtype, key):
    """Our layer with non-default parameter values, and Keras' with the same weights."""
    ours_cls, keras_cls, kw = CONFIGS[config]
    ours = ours_cls(**kw)
    shapes = [(TQ, D), (TV, DV if key else D)] + ([(TV, D)] if key else [])
    ours.build(shapes, dtype=dtype)
    rng = np.random.default_rng(7)
    for p in ours.params.values():  # away from the initial 1s, where a missing factor hides
        p[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    theirs = keras_cls(**kw, dtype=dtype)
    theirs.build([(B, *s) for s in shapes])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _np(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_outputs_scores_and_mask_match_keras(config, variant, dtype):
    masks, causal, key = VARIANTS[variant]
    ours, theirs = _layers(config, dtype, key)
    xs = _inputs(dtype, key)
    mask = [Q_MASK, V_MASK] if masks else None
    out, w = ours(xs, mask=mask, return_attention_scores=True, use_causal_mask=causal)
    k_out, k_w = theirs(xs, mask=mask, return_attention_scores=True, use_causal_mask=causal)
    assert out.dtype == w.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, _np(k_out), rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(w, _np(k_w), rtol=TOL[dtype], atol=TOL[dtype])
    # without return_attention_scores: the output alone, the same one
    np.testing.assert_array_equal(ours(xs, mask=mask, use_causal_mask=causal), out)
    k_mask = theirs.compute_mask(xs, mask)
    got_mask = ours.compute_mask(xs, mask)
    if k_mask is None:
        assert got_mask is None
    else:
        np.testing.assert_array_equal(got_mask, _np(k_mask))


def _torch_keras_grads(theirs, xs, mask, causal, dout, dw):
    """dLoss/d(inputs) and d(weights) by autograd through Keras' torch-backend layer, for
    ``loss = Σ out * dout + Σ weights * dw``."""
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    for var in theirs.weights:
        var.value.grad = None
    out, w = theirs(ts, mask=mask, return_attention_scores=True, use_causal_mask=causal)
    loss = (out * torch.tensor(dout)).sum() + (w * torch.tensor(dw)).sum()
    loss.backward()
    return [t.grad.numpy() for t in ts], [var.value.grad.numpy() for var in theirs.weights]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["masks", "key+masks+causal"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_gradients_match_torch_autograd_through_keras(config, variant, dtype):
    masks, causal, key = VARIANTS[variant]
    ours, theirs = _layers(config, dtype, key)
    xs = _inputs(dtype, key, seed=1)
    mask = [Q_MASK, V_MASK] if masks else None
    rng = np.random.default_rng(2)
    dout = rng.normal(size=(B, TQ, xs[1].shape[-1])).astype(dtype)
    dw = rng.normal(size=(B, TQ, TV)).astype(dtype)
    _, cache = ours.forward(xs, mask=mask, return_attention_scores=True, use_causal_mask=causal)
    dxs, grads = ours.backward([dout, dw], cache)
    want_dxs, want_dws = _torch_keras_grads(theirs, xs, mask, causal, dout, dw)
    assert len(dxs) == len(xs) and sorted(grads) == sorted(ours.weight_names)
    tol = 10 * TOL[dtype]
    for got, want in zip(dxs, want_dxs):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for role, want in zip(ours.weight_names, want_dws):
        assert grads[role].shape == ours.params[role].shape
        np.testing.assert_allclose(grads[role], want, rtol=tol, atol=tol)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("key", [False, True], ids=["value-as-key", "key"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_gradients_match_finite_differences_with_dropout(config, key):
    ours_cls, _, kw = CONFIGS[config]
    ours = ours_cls(**kw, dropout=0.3)
    xs = _inputs("float64", key, seed=3)
    ours.build([x.shape[1:] for x in xs], dtype="float64")
    for p in ours.params.values():
        p[...] = np.random.default_rng(4).uniform(0.5, 1.5, p.shape)
    rng = np.random.default_rng(5)
    R1, R2 = rng.normal(size=(B, TQ, xs[1].shape[-1])), rng.normal(size=(B, TQ, TV))
    mask = [Q_MASK, V_MASK]

    def run():  # the same generator state each time: the same dropout mask
        gen = np.random.default_rng(6)
        return ours.forward(
            xs,
            training=True,
            mask=mask,
            rng=gen,
            return_attention_scores=True,
            use_causal_mask=True,
        )

    def loss():
        (out, w), _ = run()
        return np.sum(out * R1) + np.sum(w * R2)

    (_, w), cache = run()
    assert cache.wsum.keep is not None and (w == 0).any()  # dropout did act
    dxs, grads = ours.backward([R1, R2], cache)
    for x, d in zip(xs, dxs):
        np.testing.assert_allclose(d, _numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    for role, p in ours.params.items():
        np.testing.assert_allclose(grads[role], _numeric_grad(loss, p), rtol=1e-6, atol=1e-8)


def test_dropout_zeroes_and_rescales_keras_weights_in_training_only():
    ours, theirs = _layers("dot-scaled", "float32", False)
    ours.dropout = 0.25
    xs = [np.repeat(x, 200, axis=0) for x in _inputs("float32", False)]  # many entries
    want = _np(theirs(xs, return_attention_scores=True)[1])  # no dropout: the softmax weights
    _, w = ours(xs, training=True, return_attention_scores=True)
    dropped = w == 0
    assert abs(dropped.mean() - 0.25) < 0.02
    np.testing.assert_allclose(w[~dropped], want[~dropped] / 0.75, rtol=1e-5)
    _, w_inf = ours(xs, training=False, return_attention_scores=True)
    np.testing.assert_allclose(w_inf, want, rtol=1e-5, atol=1e-7)
    # a seeded layer repeats its masks from construction on
    a, b = (L.Attention(dropout=0.5, seed=3) for _ in range(2))
    for _ in range(2):
        wa = a(xs, training=True, return_attention_scores=True)[1]
        wb = b(xs, training=True, return_attention_scores=True)[1]
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_weights_and_config_follow_keras(config):
    ours_cls, keras_cls, kw = CONFIGS[config]
    D_big = 64
    shapes = [(TQ, D_big), (TV, D_big)]
    lstmkit.set_random_seed(0)
    ours = ours_cls(**kw)
    ours.build(shapes)
    theirs = keras_cls(**kw)
    theirs.build([(B, *s) for s in shapes])
    names = [v.path.split("/")[-1] for v in theirs.weights]
    assert list(ours.weight_names) == names
    for mine, var in zip(ours.get_weights(), theirs.weights):
        want = _np(var.value)
        assert mine.shape == want.shape and mine.dtype == want.dtype
        if names and mine.ndim == 0:  # ones
            assert mine == want == 1
        elif mine.ndim == 1:  # glorot_uniform over (D,): fans D and D, limit sqrt(6 / 2D)
            limit = np.sqrt(6 / (2 * D_big))
            for a in (mine, want):
                assert np.abs(a).max() <= limit and np.abs(a).max() > 0.8 * limit
    k_cfg = theirs.get_config()
    cfg = ours.get_config()
    assert {k: cfg[k] for k in k_cfg if k not in ("name", "dtype")} == {
        k: v for k, v in k_cfg.items() if k not in ("name", "dtype")
    }
    back = ours_cls.from_config(cfg)
    assert back.get_config() == cfg
    assert type(L.deserialize(L.serialize(ours))) is ours_cls


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call,match",
    [
        (lambda a, x: a(x[:1]), r"argument 'x' must be a list of 2 or 3.*got a list of 1"),
        (lambda a, x: a(x + x[:1]), r"argument 'x' must be a list of 2 or 3.*got a list of 4"),
        (lambda a, x: a(x[0]), r"argument 'x' must be a list \[query, value\]"),
        (
            lambda a, x: a([x[0], x[1], x[2][:, :, :2]]),
            r"argument 'key' must have as many features as 'query' \(3\)",
        ),
        (
            lambda a, x: a([x[0][..., :2], x[1]]),
            r"argument 'value' must have as many features as 'query' \(2\)",
        ),
        (
            lambda a, x: a([x[0], x[1], x[2][:, :4]]),
            r"arguments 'value' and 'key' must have the same number of timesteps",
        ),
        (lambda a, x: a([x[0][:2], x[1], x[2]]), r"arguments 'query', 'value' and 'key' must"),
        (lambda a, x: a([x[0][0], x[1], x[2]]), r"argument 'query' must have rank 3"),
        (lambda a, x: a(x, mask=Q_MASK), r"argument 'mask' must be None or a list"),
        (lambda a, x: a(x, mask=[V_MASK, V_MASK]), r"argument 'mask\[0\]' must have shape"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    xs = [np.zeros((B, TQ, D), np.float32), np.zeros((B, TV, D), np.float32)]
    xs.append(np.zeros((B, TV, D), np.float32))
    with pytest.raises(ValueError, match=match):
        call(L.Attention(), xs)


def test_bad_arguments_and_symbolic_shapes():
    with pytest.raises(ValueError, match=r"argument 'score_mode' must be one of"):
        L.Attention(score_mode="general")
    with pytest.raises(ValueError, match=r"argument 'dropout' must be in \[0, 1\); got 1.5"):
        L.AdditiveAttention(dropout=1.5)
    q = lstmkit.Input(shape=(None, 4))
    v = lstmkit.Input(shape=(7, 3))
    with pytest.raises(ValueError, match=r"argument 'value' must have as many features"):
        L.Attention()([q, v])
    with pytest.raises(ValueError, match=r"takes a list of input tensors"):
        L.Attention()(q)
    with pytest.raises(ValueError, match=r"unsupported call arguments \['foo'\]"):
        L.Attention()([q, q], foo=True)
    add = L.AdditiveAttention()
    add([np.ones((1, 2, 4)), np.ones((1, 3, 4))])
    with pytest.raises(ValueError, match=r"argument 'query' must have shape .*built for it"):
        add([np.ones((1, 2, 5)), np.ones((1, 3, 5))])


# -- in a functional model ------------------------------------------------------------------------
VOCAB = 9


def _model(lib, att, key=False, scores=False, causal=False):
    """Keras docs' example with an LSTM encoder (it passes Embedding's padding masks on): query
    and value token ids -> shared Embedding(mask_zero) and LSTM -> attention -> pooling -> Dense."""
    Lb = lib.layers
    q_in = lib.Input(shape=(None,), dtype="int32", name="q_ids")
    v_in = lib.Input(shape=(None,), dtype="int32", name="v_ids")
    emb = Lb.Embedding(VOCAB, 4, mask_zero=True, name="emb")
    enc = Lb.LSTM(5, return_sequences=True, name="enc")
    q, v = enc(emb(q_in)), enc(emb(v_in))
    layer = {
        "dot": lambda: Lb.Attention(name="att"),
        "concat": lambda: Lb.Attention(score_mode="concat", use_scale=True, name="att"),
        "additive": lambda: Lb.AdditiveAttention(name="att"),
    }[att]()
    inputs = [q, v] + ([Lb.Dense(5, name="key")(v)] if key else [])
    kw = {"use_causal_mask": True} if causal else {}
    if scores:
        seq, w = layer(inputs, return_attention_scores=True, **kw)
    else:
        seq, w = layer(inputs, **kw), None
    pool_q = Lb.GlobalAveragePooling1D(name="pool_q")(q)
    pool_a = Lb.GlobalAveragePooling1D(name="pool_att")(seq)
    out = Lb.Dense(1, name="head")(Lb.Concatenate(name="cat")([pool_q, pool_a]))
    return lib.Model([q_in, v_in], [out, w] if scores else out)


def _ids(seed, n=6):
    rng = np.random.default_rng(seed)
    q = rng.integers(1, VOCAB, size=(n, 5))
    v = rng.integers(1, VOCAB, size=(n, 7))
    for i in range(n):  # post-padding of several lengths
        q[i, 2 + i % 4 :] = 0
        v[i, 1 + i % 7 :] = 0
    return q.astype(np.int32), v.astype(np.int32)


def _pair(att, **kw):
    lstmkit.set_random_seed(0)
    ours, theirs = _model(lstmkit, att, **kw), _model(keras, att, **kw)
    rng = np.random.default_rng(1)
    for layer in ours.layers:
        for p in layer.params.values():
            p[...] = rng.normal(0, 0.5, p.shape)  # non-zero biases, scales away from 1
        if layer.params:
            theirs.get_layer(layer.name).set_weights(layer.get_weights())
    return ours, theirs


GRAPHS = {
    "dot": ("dot", {}),
    "concat-key-scores": ("concat", {"key": True, "scores": True}),
    "additive-causal-scores": ("additive", {"causal": True, "scores": True}),
}


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_functional_model_matches_keras_outputs_and_gradients(graph):
    att, kw = GRAPHS[graph]
    ours, theirs = _pair(att, **kw)
    xq, xv = _ids(2)
    got = ours.predict([xq, xv])
    want = theirs.predict([xq, xv], verbose=0)
    got, want = (x if isinstance(x, list) else [x] for x in (got, want))
    assert len(got) == len(want) == (2 if kw.get("scores") else 1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6)
    # gradients through the whole graph: autograd through Keras' model, same upstream gradients
    rng = np.random.default_rng(3)
    dys = [rng.normal(size=g.shape).astype(np.float32) for g in got]
    outs = theirs([torch.tensor(xq), torch.tensor(xv)])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    sum((o * torch.tensor(d)).sum() for o, d in zip(outs, dys)).backward()
    _, _, tape = ours.network.run([xq, xv], training=True)
    grads = ours.network.backward(dys, tape)
    names = [
        n for n in ("emb", "enc", "key", "att", "head") if n in {la.name for la in ours.layers}
    ]
    for name in names:
        layer, k_layer = ours.get_layer(name), theirs.get_layer(name)
        for role, var in zip(layer.weight_names, k_layer.weights):
            want = var.value.grad.numpy()
            assert np.abs(want).max() > 0, f"{name}.{role}"  # the gradient does reach it
            np.testing.assert_allclose(grads[f"{name}.{role}"], want, rtol=1e-4, atol=1e-6)


def test_docs_example_trains_saves_and_loads_bit_identically(tmp_path):
    ours, _ = _pair("concat", key=True, scores=True)
    xq, xv = _ids(4, n=64)
    y = (xq[:, 0] == xv[:, 0]).astype(np.float32)[:, None]  # does the query's first id recur?
    w_target = np.zeros((64, 5, 7), np.float32)
    ours.compile(optimizer="adam", loss=["mse", "mse"], loss_weights=[1.0, 0.1], seed=0)
    hist = ours.fit([xq, xv], [y, w_target], epochs=20, batch_size=16, verbose=0)
    losses = hist.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    path = tmp_path / "att.lstmkit"
    ours.save(path)
    back = lstmkit.load_model(path)
    for a, b in zip(back.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(back.predict([xq, xv]), ours.predict([xq, xv])):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    from lstmkit import runtime

    for a, b in zip(runtime.load(path).predict([xq, xv]), ours.predict([xq, xv])):
        np.testing.assert_array_equal(a, b)
    att = back.get_layer("att")
    assert type(att) is L.Attention and att.score_mode == "concat" and att.params["scale"].ndim == 0


def test_masks_from_masking_layers_reach_the_attention():
    """Masking on float sequences (Keras' other mask source): outputs and output masks as
    Keras, with the attention output the model's output and a separate masked key."""

    def build(lib):
        Lb = lib.layers
        q_in = lib.Input(shape=(TQ, D), name="q")
        v_in = lib.Input(shape=(TV, DV), name="v")
        k_in = lib.Input(shape=(TV, D), name="k")
        q, v, k = (Lb.Masking(name=f"m_{n}")(t) for n, t in (("q", q_in), ("v", v_in), ("k", k_in)))
        out = Lb.AdditiveAttention(name="att")([q, v, k])
        return lib.Model([q_in, v_in, k_in], Lb.Dense(2, name="head")(out))

    lstmkit.set_random_seed(3)
    ours, theirs = build(lstmkit), build(keras)
    for name in ("att", "head"):
        theirs.get_layer(name).set_weights(ours.get_layer(name).get_weights())
    xs = _inputs("float32", True, seed=8)
    xs[0][~Q_MASK] = 0.0  # padded steps, all features 0: Masking drops them
    xs[1][~V_MASK] = 0.0
    xs[2][~V_MASK] = 0.0
    got = ours.predict(xs)
    np.testing.assert_allclose(got, theirs.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    assert (got[~Q_MASK] == ours.get_layer("head").params["bias"]).all()  # query mask: out = 0
