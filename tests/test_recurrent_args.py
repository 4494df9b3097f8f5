"""Keras 3's recurrent-layer constructor arguments, with Keras 3 (torch backend) as the witness.

Each lstmkit layer is built with the same arguments as a Keras layer, given the same weights by
``set_weights`` (the layouts are Keras'), and run on the same batch (non-zero initial states,
masks with holes):

- outputs and final states for every element-wise Keras activation as ``activation`` and as
  ``recurrent_activation``, ``use_bias=False``, GRU ``reset_after=False`` (bias ``(3H,)``),
  ``zero_output_for_mask``, ``go_backwards``, ``return_sequences``, ``return_state``, ``unroll``,
  in float32 (1e-5) and float64 (1e-9), alone and inside ``Bidirectional``;
- gradients (float64) against torch autograd through the Keras layer: x, every weight and the
  initial states, for a loss that weights every returned array;
- float64 central finite differences of lstmkit's own forward for the same cases;
- configs: lstmkit's ``get_config()`` builds the same Keras layer, Keras' config builds the same
  lstmkit layer (``interop.keras``), and ``from_config(get_config())`` is the identity.
"""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch

from lstmkit import constraints, initializers, regularizers
from lstmkit.interop.keras import from_keras, to_keras
from lstmkit.layers import GRU, LSTM, Bidirectional, SimpleRNN, deserialize, serialize
from lstmkit.models import Sequential
from test_gradcheck import gradcheck

assert keras.backend.backend() == "torch"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

B, T, D, H = 3, 5, 4, 3
OURS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}
# Keras 3.15's torch backend computes ops.matmul in float32 even for float64 tensors (measured:
# a float64 (3, 4) @ (4, 5) product comes back float32, 2.8e-7 off), so its non-default cells
# agree with any float64 computation to ~1e-7 only. float64 precision is witnessed below by an
# independently written torch cell (autograd, 1e-10) and by finite differences.
TOL = {"float32": 1e-5, "float64": 1e-6}
MASK = np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 0], [0, 1, 1, 1, 1]], bool)  # holes, pre-padding
#: every Keras 3 activation usable element-wise (threshold needs arguments, softmax-likes are not
#: element-wise: refused, see test_non_elementwise_activations_are_refused)
ACTIVATIONS = [
    "linear", "sigmoid", "tanh", "relu", "elu", "selu", "celu", "gelu", "softplus", "softsign",
    "silu", "swish", "mish", "exponential", "relu6", "leaky_relu", "hard_sigmoid", "hard_silu",
    "hard_swish", "hard_tanh", "hard_shrink", "soft_shrink", "sparse_plus", "sparse_sigmoid",
    "log_sigmoid", "tanh_shrink", "squareplus",
]  # fmt: skip


def n_states(cls_name):
    return 2 if cls_name == "LSTM" else 1


def make_pair(cls_name, dtype="float32", seed=0, **kwargs):
    """An lstmkit layer with random weights and a Keras layer with the same weights."""
    ours = OURS[cls_name](H, dtype=dtype, **kwargs)
    ours.build((T, D), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    scale = 0.1 if "exponential" in kwargs.values() else 0.4  # exp(c) must stay finite
    for p in ours.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    theirs = getattr(keras.layers, cls_name)(H, dtype=dtype, **kwargs)
    theirs.build((None, T, D))
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def batch(cls_name, dtype, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    init = [0.5 * rng.standard_normal((B, H)).astype(dtype) for _ in range(n_states(cls_name))]
    return x, init


def flat(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def assert_close(ours, theirs, tol, what):
    ours, theirs = flat(ours), [keras.ops.convert_to_numpy(t) for t in flat(theirs)]
    assert len(ours) == len(theirs), f"{what}: {len(ours)} arrays vs Keras {len(theirs)}"
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f"{what}[{k}]: {a.shape} vs Keras {b.shape}"
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{what}[{k}]")


def run_both(ours, theirs, x, init, mask):
    y, _ = ours.forward(x, mask=mask, initial_state=init)
    ty = theirs(x, mask=mask, initial_state=init)
    return y, ty


# --- outputs --------------------------------------------------------------------------------


def activation_kwargs(cls_name, act):
    """``act`` as ``activation``; LSTM and GRU also get another one as ``recurrent_activation``,
    so the sweep puts every activation in both places."""
    kw = {"activation": act}
    if cls_name != "SimpleRNN":
        kw["recurrent_activation"] = ACTIVATIONS[(ACTIVATIONS.index(act) + 7) % len(ACTIVATIONS)]
    return kw


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("cls_name", ["LSTM", "GRU", "SimpleRNN"])
def test_activations_match_keras(cls_name, act):
    kw = {**activation_kwargs(cls_name, act), "return_sequences": True, "return_state": True}
    ours, theirs = make_pair(cls_name, "float32", **kw)
    x, init = batch(cls_name, "float32")
    for mask in (None, MASK):
        assert_close(*run_both(ours, theirs, x, init, mask), TOL["float32"], f"{kw} {mask}")


@pytest.mark.parametrize("act", ["relu", "gelu", "linear", "hard_sigmoid"])
@pytest.mark.parametrize("cls_name", ["LSTM", "GRU", "SimpleRNN"])
def test_activations_match_keras_float64(cls_name, act):
    kw = {**activation_kwargs(cls_name, act), "return_sequences": True, "return_state": True}
    ours, theirs = make_pair(cls_name, "float64", **kw)
    x, init = batch(cls_name, "float64")
    for mask in (None, MASK):
        assert_close(*run_both(ours, theirs, x, init, mask), TOL["float64"], f"{kw} {mask}")


STRUCTURE = {
    "no_bias": {"use_bias": False},
    "reset_before": {"reset_after": False},
    "reset_before_no_bias": {"reset_after": False, "use_bias": False},
    "zero_output": {"zero_output_for_mask": True},
    "backwards": {"go_backwards": True},
    "backwards_zero_output_relu": {
        "go_backwards": True,
        "zero_output_for_mask": True,
        "activation": "relu",
    },
    "unroll_last": {"unroll": True, "return_sequences": False},
    "no_bias_gelu_hard_sigmoid": {
        "use_bias": False,
        "activation": "gelu",
        "recurrent_activation": "hard_sigmoid",
    },
    "reset_before_elu_backwards": {"reset_after": False, "activation": "elu", "go_backwards": True},
}


def structure_cases():
    for name, kw in STRUCTURE.items():
        for cls_name in ("LSTM", "GRU", "SimpleRNN"):
            if "reset_after" in kw and cls_name != "GRU":
                continue
            if "recurrent_activation" in kw and cls_name == "SimpleRNN":
                continue
            yield pytest.param(cls_name, kw, id=f"{cls_name}-{name}")


@pytest.mark.parametrize("mask", [None, MASK], ids=["nomask", "mask"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls_name,kw", list(structure_cases()))
def test_structural_arguments_match_keras(cls_name, kw, dtype, mask):
    kw = {"return_sequences": True, "return_state": True, **kw}
    ours, theirs = make_pair(cls_name, dtype, **kw)
    x, init = batch(cls_name, dtype)
    assert_close(*run_both(ours, theirs, x, init, mask), TOL[dtype], f"{cls_name} {kw}")
    # inference path (cache-free kernel) and streaming agree with the training forward
    y = ours.forward(x, mask=mask, initial_state=init)[0]
    np.testing.assert_array_equal(ours.infer(x, mask=mask, initial_state=init)[0], y[0])


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
@pytest.mark.parametrize(
    "cls_name,kw",
    [
        ("LSTM", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
        ("GRU", {"reset_after": False, "activation": "selu"}),
        ("GRU", {"use_bias": False}),
        ("SimpleRNN", {"activation": "swish", "use_bias": False}),
    ],
)
def test_bidirectional_with_arguments_matches_keras(cls_name, kw, merge_mode):
    ours = Bidirectional(OURS[cls_name](H, return_sequences=True, **kw), merge_mode=merge_mode)
    ours.build((T, D), rng=np.random.default_rng(0))
    rng = np.random.default_rng(3)
    for p in ours.params.values():
        p[...] = 0.4 * rng.standard_normal(p.shape)
    inner = getattr(keras.layers, cls_name)(H, return_sequences=True, **kw)
    theirs = keras.layers.Bidirectional(inner, merge_mode=merge_mode)
    theirs.build((None, T, D))
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(4).standard_normal((B, T, D)).astype("float32")
    for mask in (None, MASK):
        assert_close(ours.forward(x, mask=mask)[0], theirs(x, mask=mask), 1e-5, f"{kw} {mask}")


def test_stateful_with_arguments_matches_keras():
    """Two consecutive calls carry the state, Keras' way (batch fixed)."""
    kw = {"activation": "relu", "reset_after": False, "use_bias": False, "stateful": True}
    ours = GRU(H, dtype="float64", return_sequences=True, **kw)
    ours.build((T, D), rng=np.random.default_rng(0))
    theirs = keras.layers.GRU(H, dtype="float64", return_sequences=True, **kw)
    theirs.build((B, T, D))
    theirs.set_weights(ours.get_weights())
    rng = np.random.default_rng(5)
    for _ in range(2):
        x = rng.standard_normal((B, T, D))
        assert_close(ours.forward(x)[0], theirs(x), TOL["float64"], "stateful")


# --- gradients ------------------------------------------------------------------------------

GRAD_CASES = {
    "lstm_relu_hard_sigmoid": ("LSTM", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    "lstm_gelu_swish_no_bias": (
        "LSTM",
        {"activation": "gelu", "recurrent_activation": "swish", "use_bias": False},
    ),
    "lstm_elu_softsign": ("LSTM", {"activation": "elu", "recurrent_activation": "softsign"}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
    "gru_reset_before_mish_no_bias": (
        "GRU",
        {"reset_after": False, "activation": "mish", "use_bias": False},
    ),
    "gru_selu_log_sigmoid": ("GRU", {"activation": "selu", "recurrent_activation": "log_sigmoid"}),
    "gru_no_bias": ("GRU", {"use_bias": False}),
    "rnn_softplus": ("SimpleRNN", {"activation": "softplus"}),
    "rnn_gelu_no_bias": ("SimpleRNN", {"activation": "gelu", "use_bias": False}),
    "rnn_linear_backwards": ("SimpleRNN", {"activation": None, "go_backwards": True}),
}  # fmt: skip


def keras_gradients(theirs, x, init, mask, W):
    """Torch autograd through the Keras layer: dL/dx, dL/d(weights) in Keras order, dL/d(init)."""
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in init]
    mask = None if mask is None else torch.tensor(mask)
    out = flat(theirs(xt, mask=mask, initial_state=st))
    loss = sum((o * torch.tensor(w)).sum() for o, w in zip(out, W))
    loss.backward()
    weights = [w.value.grad.numpy() for w in theirs.trainable_weights]
    return xt.grad.numpy(), weights, [s.grad.numpy() for s in st]


@pytest.mark.parametrize(
    "return_sequences,mask", [(True, MASK), (False, None)], ids=["seq-mask", "last-nomask"]
)
@pytest.mark.parametrize("case", GRAD_CASES)
def test_gradients_match_keras_autograd(case, return_sequences, mask):
    cls_name, kw = GRAD_CASES[case]
    kw = {**kw, "return_sequences": return_sequences, "return_state": True}
    ours, theirs = make_pair(cls_name, "float64", seed=2, **kw)
    x, init = batch(cls_name, "float64", seed=3)
    y, cache = ours.forward(x, mask=mask, initial_state=init)
    rng = np.random.default_rng(4)
    W = [rng.standard_normal(a.shape) for a in flat(y)]
    dx, grads, dinit = ours.backward_with_state(W, cache)
    kdx, kweights, kinit = keras_gradients(theirs, x, init, mask, W)
    assert set(grads) == set(ours.weight_names), "exactly the layer's weights get gradients"
    assert_grad_close(dx, kdx, "x")
    for role, g in zip(ours.weight_names, kweights):
        assert_grad_close(grads[role], g, role)
    for k, (a, b) in enumerate(zip(dinit, kinit)):
        assert_grad_close(a, b, f"initial_state[{k}]")


def assert_grad_close(ours, theirs, what):
    """Relative to the largest entry: Keras' float32 products (see TOL) on gradients up to ~100."""
    assert ours.shape == theirs.shape, what
    err = np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12)
    assert err <= 1e-5, f"{what}: relative error {err:.1e}"


def torch_activation(name):
    """Keras' function on torch tensors; hard_sigmoid from torch ops (Keras' derivative uses a
    float32 1/6: 5e-9 off in float64, measured)."""
    if name == "hard_sigmoid":
        return lambda z: torch.nn.functional.relu6(z + 3) / 6
    return keras.activations.get(name)


def torch_cell_run(cls_name, kw, weights, x, init, mask):
    """Keras 3's cell equations written with torch ops (activations: Keras' own functions on
    torch tensors, exact in float64), over time with Keras' mask semantics. Returns the output
    sequence in processing order and the final states."""
    act = torch_activation(kw.get("activation", "tanh"))
    rec = torch_activation(kw.get("recurrent_activation", "sigmoid"))
    k, u = weights[0], weights[1]
    b = weights[2] if kw.get("use_bias", True) else None
    states, prev, outs = list(init), torch.zeros_like(init[0]), []
    steps = range(T - 1, -1, -1) if kw.get("go_backwards") else range(T)
    for t in steps:
        new = TORCH_STEPS[cls_name](x[:, t], states, k, u, b, act, rec, kw)
        m = torch.tensor(mask[:, t : t + 1])
        prev = torch.where(m, new[0], prev)  # a skipped step outputs the previous output
        states = [torch.where(m, a, s) for a, s in zip(new, states)]
        outs.append(prev)
    return torch.stack(outs, 1), states


def _torch_lstm(x, states, k, u, b, act, rec, kw):
    h, c = states
    z = x @ k + h @ u + (0 if b is None else b)
    i, f, g, o = torch.split(z, H, dim=-1)
    c = rec(f) * c + rec(i) * act(g)
    return [rec(o) * act(c), c]


def _torch_gru(x, states, k, u, b, act, rec, kw):
    (h,) = states
    if kw.get("reset_after", True):
        bi, bh = (0, 0) if b is None else (b[0], b[1])
        xz, hz = torch.split(x @ k + bi, H, -1), torch.split(h @ u + bh, H, -1)
        z, r = rec(xz[0] + hz[0]), rec(xz[1] + hz[1])
        n = act(xz[2] + r * hz[2])
    else:  # reset gate before the product, no recurrent bias
        xz = torch.split(x @ k + (0 if b is None else b), H, -1)
        z, r = rec(xz[0] + h @ u[:, :H]), rec(xz[1] + h @ u[:, H : 2 * H])
        n = act(xz[2] + (r * h) @ u[:, 2 * H :])
    return [z * h + (1 - z) * n]


def _torch_rnn(x, states, k, u, b, act, rec, kw):
    return [act(x @ k + (0 if b is None else b) + states[0] @ u)]


TORCH_STEPS = {"LSTM": _torch_lstm, "GRU": _torch_gru, "SimpleRNN": _torch_rnn}


@pytest.mark.parametrize("case", GRAD_CASES)
def test_float64_outputs_and_gradients_match_a_torch_cell(case):
    """1e-10: the float64 witness Keras cannot be (see TOL)."""
    cls_name, kw = GRAD_CASES[case]
    layer = OURS[cls_name](H, return_sequences=True, return_state=True, dtype="float64", **kw)
    layer.build((T, D), rng=np.random.default_rng(0))
    rng = np.random.default_rng(2)
    for p in layer.params.values():
        p[...] = 0.4 * rng.standard_normal(p.shape)
    x, init = batch(cls_name, "float64", seed=3)
    y, cache = layer.forward(x, mask=MASK, initial_state=init)
    W = [rng.standard_normal(a.shape) for a in y]
    dx, grads, dinit = layer.backward_with_state(W, cache)

    leaves = [torch.tensor(a, requires_grad=True) for a in [x, *layer.get_weights(), *init]]
    tx, tw, tinit = leaves[0], leaves[1 : 1 + len(grads)], leaves[1 + len(grads) :]
    out, final = torch_cell_run(cls_name, kw, tw, tx, tinit, MASK)
    for a, b in zip(y, [out, *final]):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    sum((t * torch.tensor(w)).sum() for t, w in zip([out, *final], W)).backward()
    ours = [dx, *(grads[r] for r in layer.weight_names), *dinit]
    names = ["x", *layer.weight_names] + [f"initial_state[{k}]" for k in range(len(init))]
    for name, a, t in zip(names, ours, leaves):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# activations with kinks (relu, hard_sigmoid ...) are left to the Keras check above: central
# differences straddle the kink
SMOOTH = ["lstm_gelu_swish_no_bias", "lstm_elu_softsign", "gru_reset_before_mish_no_bias",
          "gru_selu_log_sigmoid", "rnn_softplus", "rnn_linear_backwards"]  # fmt: skip


@pytest.mark.parametrize("case", SMOOTH)
def test_gradients_by_finite_differences(case):
    cls_name, kw = GRAD_CASES[case]
    layer = OURS[cls_name](2, return_sequences=True, return_state=True, **kw)
    layer.build((4, 3), rng=np.random.default_rng(0), dtype="float64")
    rng = np.random.default_rng(1)
    for p in layer.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    x = rng.standard_normal((2, 4, 3))
    init = [rng.standard_normal((2, 2)) for _ in range(n_states(cls_name))]
    mask = np.array([[1, 1, 0, 1], [1, 0, 0, 0]], bool)
    gradcheck(layer, x, initial_state=init, mask=mask)


# --- configs --------------------------------------------------------------------------------

EVERYTHING = {
    "activation": "selu",
    "use_bias": False,
    "kernel_initializer": initializers.HeNormal(seed=3),
    "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 0.5, "seed": 1}},
    "bias_initializer": "ones",
    "kernel_regularizer": "l2",
    "recurrent_regularizer": regularizers.L1L2(l1=0.001, l2=0.002),
    "bias_regularizer": regularizers.L1(0.3),
    "activity_regularizer": {"class_name": "L2", "config": {"l2": 0.05}},
    "kernel_constraint": constraints.MaxNorm(1.5),
    "recurrent_constraint": "unit_norm",
    "bias_constraint": "non_neg",
    "dropout": 0.1,
    "recurrent_dropout": 0.2,
    "seed": 7,
    "return_sequences": True,
    "return_state": True,
    "go_backwards": True,
    "stateful": False,
    "unroll": True,
    "zero_output_for_mask": True,
}


@pytest.mark.parametrize("cls_name", ["LSTM", "GRU", "SimpleRNN"])
def test_config_round_trip_keeps_every_argument(cls_name):
    extra = {"LSTM": {"recurrent_activation": "hard_silu", "unit_forget_bias": False},
             "GRU": {"recurrent_activation": "softsign", "reset_after": False},
             "SimpleRNN": {}}[cls_name]  # fmt: skip
    layer = OURS[cls_name](H, **EVERYTHING, **extra)
    cfg = layer.get_config()
    rebuilt = deserialize(json.loads(json.dumps(serialize(layer))))
    assert rebuilt.get_config() == cfg
    for arg in ("kernel_regularizer", "kernel_constraint", "activity_regularizer"):
        assert cfg[arg]["module"].startswith("keras.") and "class_name" in cfg[arg]
    assert cfg["kernel_initializer"]["class_name"] == "HeNormal"
    assert cfg["bias_initializer"] == "ones"  # a name stays a name
    # Keras builds the same layer from lstmkit's config (its own deserialisers read the dicts)
    kcfg = {k: v for k, v in cfg.items() if k not in ("name", "trainable")}
    theirs = getattr(keras.layers, cls_name)(**kcfg)
    ktheirs = theirs.get_config()
    for arg, v in kcfg.items():
        if arg in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            continue  # Keras writes every initializer as a dict, compared below
        if arg in ("seed", "activity_regularizer") and cls_name == "SimpleRNN":
            continue  # Keras 3.15's SimpleRNN drops both (its constructor does not pass them on)
        assert ktheirs[arg] == v or keras_equal(ktheirs[arg], v), arg
    assert ktheirs["kernel_initializer"]["config"]["seed"] == 3
    assert ktheirs["recurrent_initializer"]["config"] == {"gain": 0.5, "seed": 1}


def keras_equal(theirs, ours):
    """Keras' dict for a weight argument equals ours (Keras keeps L1's factor as a float32)."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        a, b = theirs["config"], ours["config"]
        return (
            theirs["class_name"] == ours["class_name"]
            and a.keys() == b.keys()
            and all(a[k] == pytest.approx(b[k], rel=1e-7) for k in a)
        )
    return False


@pytest.mark.parametrize("cls_name", ["LSTM", "GRU", "SimpleRNN"])
def test_keras_model_with_every_argument_converts_both_ways(cls_name, tmp_path):
    kw = {"activation": "elu", "use_bias": False, "kernel_regularizer": "l2", "seed": 3,
          "bias_constraint": None, "recurrent_constraint": "max_norm", "unroll": True}  # fmt: skip
    if cls_name == "GRU":
        kw.update(reset_after=False, recurrent_activation="hard_sigmoid")
    if cls_name == "LSTM":
        kw.update(recurrent_activation="relu6")
    km = keras.Sequential([keras.Input((T, D)), getattr(keras.layers, cls_name)(H, **kw)])
    rng = np.random.default_rng(0)
    km.set_weights([0.4 * rng.standard_normal(w.shape) for w in km.get_weights()])
    x = rng.standard_normal((B, T, D)).astype("float32")
    expected = keras.ops.convert_to_numpy(km(x))
    ours = from_keras(km)
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-5)
    layer = ours.layers[0]
    assert (layer.activation, layer.use_bias, layer.unroll) == ("elu", False, True)
    assert layer.seed == (None if cls_name == "SimpleRNN" else 3)  # Keras' config drops it
    assert layer.kernel_regularizer.get_config() == {"l2": 0.01}
    back = to_keras(ours)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(x)), expected, rtol=1e-5, atol=1e-5)
    assert back.layers[0].get_config()["activation"] == "elu"
    path = tmp_path / "m.keras"
    km.save(path)
    np.testing.assert_allclose(from_keras(path).predict(x), expected, rtol=1e-5, atol=1e-5)


def test_saved_model_keeps_every_argument(tmp_path):
    from lstmkit.saving import load_model

    model = Sequential([GRU(H, input_shape=(T, D), **EVERYTHING, reset_after=False)])
    model.layers[0].return_state = False  # a Sequential's last layer may not return states
    model = Sequential.from_config(model.get_config())
    model.build((None, T, D))
    x = np.random.default_rng(0).standard_normal((B, T, D))
    path = tmp_path / "m.lstmkit"
    model.save(path)
    loaded = load_model(path, compile=False)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_non_elementwise_activations_are_refused():
    for name in ("softmax", "log_softmax", "glu", "sparsemax"):
        with pytest.raises(ValueError, match=f"LSTM: argument 'activation' .*{name}"):
            LSTM(3, activation=name)
    with pytest.raises(ValueError, match="GRU: argument 'recurrent_activation'.*'swoosh'"):
        GRU(3, recurrent_activation="swoosh")
    with pytest.raises(ValueError, match="functions are not accepted"):
        SimpleRNN(3, activation=np.tanh)
    with pytest.raises(ValueError, match="LSTM: argument 'use_bias' must be True or False"):
        LSTM(3, use_bias="yes")
    with pytest.raises(ValueError, match="GRU: argument 'seed' must be None or a non-negative"):
        GRU(3, seed=-1)
    with pytest.raises(ValueError, match="LSTM: argument 'kernel_regularizer': unknown"):
        LSTM(3, kernel_regularizer="l3")
    with pytest.raises(ValueError, match="no gradient in lstmkit"):
        LSTM(3, kernel_regularizer=lambda w: (w**2).sum())
    with pytest.raises(ValueError, match="SimpleRNN: argument 'bias_constraint': unknown"):
        SimpleRNN(3, bias_constraint="positive")
    with pytest.raises(ValueError, match="GRU: argument 'kernel_initializer': unknown"):
        GRU(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="LSTM: argument 'use_cudnn'"):
        LSTM(3, use_cudnn="maybe")
    with pytest.raises(ValueError, match="variants"):
        LSTM(3, peephole=True, activation="relu")
