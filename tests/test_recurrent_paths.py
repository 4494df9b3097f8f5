"""Which implementation runs each recurrent configuration, and the arguments that do not change
the numbers (``unroll``, ``seed``), and the export paths for the new arguments.

- Dispatch: Keras' defaults (and ``use_bias=False``, a zero bias) stay on the compiled kernels,
  the very functions (not wrappers) as before; activations whose derivative needs the
  pre-activation (gelu, swish, mish) and GRU ``reset_after=False`` run on the NumPy reference
  whatever the backend; the reference with the defaults is bit for bit
  what it was (its cache is the one the compiled backward reads).
- ``unroll=True`` gives bit-identical outputs; ``seed`` makes the dropout masks reproducible and
  is the layer's own stream (Keras' SeedGenerator).
- Streaming ``step`` equals the sequence forward for every option.
- ONNX (onnxruntime as the witness): relu/hard_sigmoid/elu/linear activations through the
  operators' ``activations`` attribute, GRU ``reset_after=False`` (``linear_before_reset=0``),
  ``use_bias=False``; refused with the argument named where ONNX has no such function.
- PyTorch: ``use_bias=False`` becomes ``bias=False`` (outputs equal); activations nn.LSTM/GRU/RNN
  cannot compute and GRU ``reset_after=False`` are refused with the argument named.
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN
from lstmkit.models import Sequential
from lstmkit.ops import backend, fast
from lstmkit.ops import gru as ref_gru
from lstmkit.ops import lstm as ref_lstm
from lstmkit.ops import rnn as ref_rnn

B, T, D, H = 3, 6, 4, 5
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0]], bool)


@pytest.fixture
def numba_backend():
    saved = backend._choice
    backend.set_backend("numba")
    yield
    backend._choice = saved


def built(layer, dtype="float32", seed=0):
    layer.build((T, D), rng=np.random.default_rng(seed), dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for p in layer.params.values():
        p[...] = 0.4 * rng.standard_normal(p.shape)
    return layer


def x_batch(dtype="float32", seed=2):
    return np.random.default_rng(seed).standard_normal((B, T, D)).astype(dtype)


# --- dispatch -------------------------------------------------------------------------------

COMPILED = [
    (LSTM, {}),
    (LSTM, {"use_bias": False}),
    (GRU, {}),
    (GRU, {"use_bias": False}),
    (SimpleRNN, {}),
    (SimpleRNN, {"activation": "relu"}),
    (SimpleRNN, {"activation": "sigmoid", "use_bias": False}),
    (SimpleRNN, {"activation": None}),
]
REFERENCE = [  # the compiled kernels run the rest: tests/test_fast_activations_keras.py
    (LSTM, {"activation": "swish"}),
    (LSTM, {"recurrent_activation": "gelu"}),
    (GRU, {"reset_after": False}),
    (GRU, {"activation": "gelu"}),
    (SimpleRNN, {"activation": "mish"}),
]


@pytest.mark.parametrize("cls,kw", COMPILED, ids=str)
def test_defaults_run_the_compiled_kernels(numba_backend, cls, kw):
    layer = built(cls(H, return_sequences=True, **kw))
    ops = layer._ops()
    assert ops.backend == "numba"
    if cls is not SimpleRNN:  # the same functions as before: nothing wrapped around them
        # but the LSTM's one call that hands them the scope's workspace (backend._in_workspace)
        assert getattr(ops.forward, "__wrapped__", ops.forward) is getattr(
            fast, f"{layer.cell}_forward"
        )
        assert getattr(ops.infer, "__wrapped__", ops.infer) is getattr(fast, f"{layer.cell}_infer")
        assert ops is backend.ops_for(layer.cell)
    y, cache = layer.forward(x_batch(), mask=MASK)
    assert type(cache.ops_cache) in (ref_lstm.LSTMCache, ref_gru.GRUCache, ref_rnn.RNNCache)
    _, grads = layer.backward(np.ones_like(y), cache)
    assert set(grads) == set(layer.weight_names)


@pytest.mark.parametrize("cls,kw", REFERENCE, ids=str)
def test_other_options_run_the_reference(numba_backend, cls, kw):
    layer = built(cls(H, return_sequences=True, **kw))
    assert layer._ops().backend == "numpy"
    y, cache = layer.forward(x_batch(), mask=MASK)
    general = (ref_lstm.LSTMActCache, ref_gru.GRUActCache, ref_rnn.RNNActCache)
    assert isinstance(cache.ops_cache, general) or not backend.compiled_supports(
        layer.cell, **layer._cell_options()
    )
    # the same numbers whichever backend was asked for
    backend.set_backend("numpy")
    np.testing.assert_array_equal(layer.forward(x_batch(), mask=MASK)[0], y)


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_no_bias_on_the_compiled_path_equals_the_reference(numba_backend, cls):
    """A zero bias on the compiled kernels is no bias: the reference path, asked directly, gives
    the same outputs and weight gradients."""
    layer = built(cls(H, return_sequences=True, use_bias=False), "float64")
    x = x_batch("float64")
    y, cache = layer.forward(x, mask=MASK)
    g = layer.backward(np.cos(y), cache)[1]
    backend.set_backend("numpy")
    y2, cache2 = layer.forward(x, mask=MASK)
    g2 = layer.backward(np.cos(y2), cache2)[1]
    np.testing.assert_allclose(y, y2, rtol=1e-12, atol=1e-14)
    assert set(g) == set(g2) == {"kernel", "recurrent_kernel"}
    for k in g:
        np.testing.assert_allclose(g[k], g2[k], rtol=1e-10, atol=1e-12)


def test_option_validation():
    assert backend.compiled_supports("lstm") and not backend.compiled_supports(
        "lstm", activation="gelu"
    )
    assert backend.compiled_supports("rnn", activation="relu")
    assert not backend.compiled_supports("gru", reset_after=False)
    with pytest.raises(ValueError, match=r"cell 'rnn' takes options \['activation'\]"):
        backend.ops_for("rnn", reset_after=False)


# --- arguments that change nothing / reproducibility ------------------------------------------


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_unroll_gives_the_same_result(cls):
    a = built(cls(H, return_sequences=True, activation="relu"))
    b = built(cls(H, return_sequences=True, activation="relu", unroll=True))
    x = x_batch()
    np.testing.assert_array_equal(a.forward(x, mask=MASK)[0], b.forward(x, mask=MASK)[0])


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_seed_makes_dropout_masks_reproducible(cls):
    def run(seed, rng=None, calls=2):
        layer = built(cls(H, dropout=0.5, recurrent_dropout=0.5, seed=seed))
        x = x_batch()
        return [layer.forward(x, training=True, rng=rng)[0] for _ in range(calls)]

    a, b = run(3), run(3)
    for ya, yb in zip(a, b):
        np.testing.assert_array_equal(ya, yb)  # same seed, same masks, call after call
    assert not np.array_equal(a[0], a[1])  # the stream advances: a new mask each call
    assert not np.array_equal(a[0], run(4)[0])  # another seed, other masks
    # the seed wins over the generator a trainer hands in (as for Dropout(seed=))
    np.testing.assert_array_equal(run(3, np.random.default_rng(0), 1)[0], a[0])


@pytest.mark.parametrize(
    "cls,kw",
    [
        (LSTM, {"activation": "relu", "recurrent_activation": "hard_sigmoid", "use_bias": False}),
        (GRU, {"reset_after": False, "activation": "elu"}),
        (GRU, {"use_bias": False}),
        (SimpleRNN, {"activation": "gelu"}),
    ],
    ids=str,
)
def test_streaming_step_equals_the_sequence(cls, kw):
    layer = built(cls(H, return_sequences=True, **kw), "float64")
    x = x_batch("float64")
    y = layer.forward(x)[0]
    states = None
    for t in range(T):
        h, states = layer.step(x[:, t], states)
        np.testing.assert_allclose(h, y[:, t], rtol=1e-12, atol=1e-14)


# --- export ---------------------------------------------------------------------------------

ONNX_CASES = [
    (LSTM, {"activation": "relu"}),
    (LSTM, {"activation": "elu", "recurrent_activation": "hard_sigmoid", "use_bias": False}),
    (LSTM, {"activation": "softsign", "recurrent_activation": "linear"}),
    (GRU, {"reset_after": False}),
    (GRU, {"reset_after": False, "use_bias": False, "activation": "softplus"}),
    (GRU, {"use_bias": False, "activation": "leaky_relu", "recurrent_activation": "hard_sigmoid"}),
    (SimpleRNN, {"activation": "linear", "use_bias": False}),
    (SimpleRNN, {"activation": "sigmoid"}),
]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cls,kw", ONNX_CASES, ids=str)
def test_onnx_export_of_new_arguments(cls, kw, bidirectional):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from lstmkit.interop.onnx import to_onnx

    rnn = cls(H, return_sequences=True, **kw)
    rnn = Bidirectional(rnn) if bidirectional else rnn
    model = Sequential([rnn, Dense(2)])
    model.build((None, T, D))
    for p in model.params.values():
        p[...] = 0.4 * np.random.default_rng(0).standard_normal(p.shape)
    x = x_batch()
    sess = ort.InferenceSession(
        to_onnx(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, model.predict(x), rtol=1e-5, atol=1e-5)


def test_onnx_refuses_activations_it_lacks():
    pytest.importorskip("onnx")
    from lstmkit.interop.onnx import to_onnx

    model = Sequential([LSTM(H, recurrent_activation="gelu", input_shape=(T, D))])
    with pytest.raises(ValueError, match="has recurrent_activation='gelu'; ONNX recurrent"):
        to_onnx(model)


def test_torch_export_without_bias_and_refusals():
    torch = pytest.importorskip("torch")
    from lstmkit.interop.torch import from_torch, to_torch

    for cls in (LSTM, GRU, SimpleRNN):
        model = Sequential([cls(H, use_bias=False, input_shape=(T, D)), Dense(1)])
        net = to_torch(model)
        assert net[0].bias is False
        x = x_batch()
        np.testing.assert_allclose(
            net(torch.tensor(x)).detach().numpy(), model.predict(x), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(from_torch(net).predict(x), model.predict(x), atol=1e-6)
    refused = [
        (LSTM(H, activation="relu"), "has activation='relu'; nn.LSTM computes activation='tanh'"),
        (LSTM(H, recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'"),
        (GRU(H, reset_after=False), "has reset_after=False; nn.GRU"),
        (SimpleRNN(H, activation="elu"), "nn.RNN's nonlinearity is 'tanh' or 'relu'"),
    ]
    for layer, message in refused:
        model = Sequential([layer])
        model.build((None, T, D))
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            to_torch(model)
