"""The functional API: ``Input``, ``Model(inputs, outputs)``, shared layers, states wired into
``initial_state``, several inputs and outputs.

Witnesses: Keras 3 (same weights copied by layer name) for outputs and for ``model.layers``' order;
PyTorch autograd (nn.LSTM modules with the same weights, both bias vectors non-zero) for the
gradients through the graph — summed over a shared layer's uses and flowing into initial states.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit import Input, Model, Sequential, layers
from oracles import _param_grads, torch_module

os.environ["KERAS_BACKEND"] = "torch"  # as the other Keras-witnessed tests: alone too
keras = pytest.importorskip("keras")


def _seq2seq(lib, D=3, Dd=4, H=5, V=6, shared_head=True):
    """Encoder LSTM -> its states start the decoder LSTM; one Dense shared by two outputs."""
    L = lib.layers
    enc_in = lib.Input(shape=(None, D), name="enc_in")
    _, h, c = L.LSTM(H, return_state=True, name="enc")(enc_in)
    dec_in = lib.Input(shape=(None, Dd), name="dec_in")
    seq = L.LSTM(H, return_sequences=True, name="dec")(dec_in, initial_state=[h, c])
    head = L.Dense(V, name="head")
    out_seq = head(seq)
    out_h = head(h) if shared_head else L.Dense(V, name="head2")(h)
    return lib.Model([enc_in, dec_in], [out_seq, out_h], name="s2s")


def _copy_weights(src_keras, dst):
    for layer in dst.layers:
        w = src_keras.get_layer(layer.name).get_weights()
        layer.set_weights(w)


@pytest.fixture
def pair():
    lstmkit.set_random_seed(0)
    theirs = _seq2seq(keras)
    ours = _seq2seq(lstmkit)
    _copy_weights(theirs, ours)
    return ours, theirs


def test_outputs_and_layer_order_match_keras(pair):
    ours, theirs = pair
    assert [la.name for la in ours.layers] == [la.name for la in theirs.layers]
    rng = np.random.default_rng(1)
    xe = rng.standard_normal((4, 7, 3)).astype(np.float32)
    xd = rng.standard_normal((4, 5, 4)).astype(np.float32)
    got = ours.predict([xe, xd])
    want = theirs.predict([xe, xd], verbose=0)
    assert isinstance(got, list) and len(got) == 2
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), atol=2e-5)
    # dict inputs by Input name, as Keras accepts
    got_d = ours.predict({"dec_in": xd, "enc_in": xe})
    np.testing.assert_array_equal(got_d[0], got[0])
    assert ours.count_params() == theirs.count_params()


def test_gradients_match_torch_autograd():
    """Loss = mse(head(dec(.., init=enc states)), y1) + 0.5 * mse(head(h_enc), y2): the shared
    head's gradient sums both uses; the encoder's gradient arrives only through the states."""
    lstmkit.set_random_seed(2)
    model = _seq2seq(lstmkit)
    for layer in model.layers:
        for p in layer.params.values():
            p[...] = np.random.default_rng(len(p.shape) + p.size).normal(0, 0.3, p.shape)
    rng = np.random.default_rng(3)
    xe = rng.standard_normal((3, 6, 3)).astype(np.float32)
    xd = rng.standard_normal((3, 4, 4)).astype(np.float32)
    y1 = rng.standard_normal((3, 4, 6)).astype(np.float32)
    y2 = rng.standard_normal((3, 6)).astype(np.float32)
    model.compile(optimizer="sgd", loss=["mse", "mse"], loss_weights=[1.0, 0.5])
    net = model.network
    preds, masks, tape = net.run([xe, xd], training=True)
    from lstmkit.models.training import MetricState

    logs, dys, _ = model._losses([y1, y2], preds, masks, MetricState(model._metric_specs))
    grads = net.backward(dys, tape)

    p = model.params
    b_hh = {k: np.full(20, 0.1, np.float32) for k in ("enc", "dec")}
    enc = torch_module(
        "lstm", p["enc.kernel"], p["enc.recurrent_kernel"], p["enc.bias"], b_hh["enc"]
    )
    dec = torch_module(
        "lstm", p["dec.kernel"], p["dec.recurrent_kernel"], p["dec.bias"], b_hh["dec"]
    )
    W = torch.tensor(p["head.kernel"], requires_grad=True)
    b = torch.tensor(p["head.bias"], requires_grad=True)
    te = torch.from_numpy(xe).transpose(0, 1)
    td = torch.from_numpy(xd).transpose(0, 1)
    _, (h, c) = enc(te)
    seq, _ = dec(td, (h, c))
    o1 = seq.transpose(0, 1) @ W + b
    o2 = h[0] @ W + b
    loss = torch.mean((o1 - torch.from_numpy(y1)) ** 2) + 0.5 * torch.mean(
        (o2 - torch.from_numpy(y2)) ** 2
    )
    loss.backward()
    assert abs(logs["loss"] - loss.item()) < 1e-5
    for name, mod in (("enc", enc), ("dec", dec)):
        tg = _param_grads("lstm", mod, "_l0")
        for role in ("kernel", "recurrent_kernel", "bias"):
            np.testing.assert_allclose(grads[f"{name}.{role}"], tg[role], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(grads["head.kernel"], W.grad.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(grads["head.bias"], b.grad.numpy(), atol=1e-5, rtol=1e-4)


def test_fit_save_load_round_trip(tmp_path, pair):
    ours, _ = pair
    rng = np.random.default_rng(4)
    xe = rng.standard_normal((16, 7, 3)).astype(np.float32)
    xd = rng.standard_normal((16, 5, 4)).astype(np.float32)
    y1 = rng.standard_normal((16, 5, 6)).astype(np.float32)
    y2 = rng.standard_normal((16, 6)).astype(np.float32)
    ours.compile(optimizer="adam", loss="mse", seed=0)
    hist = ours.fit([xe, xd], [y1, y2], epochs=3, batch_size=8, verbose=0, validation_split=0.25)
    assert len(hist.history["loss"]) == 3 and "val_loss" in hist.history
    path = tmp_path / "s2s.lstmkit"
    ours.save(path)
    saved_pred = ours.predict([xe, xd])
    back = lstmkit.load_model(path)
    assert type(back) is Model
    assert [la.name for la in back.layers] == [la.name for la in ours.layers]
    for a, b in zip(back.predict([xe, xd]), ours.predict([xe, xd])):
        np.testing.assert_array_equal(a, b)
    # training resumes identically: one more epoch on each
    h1 = ours.fit([xe, xd], [y1, y2], epochs=4, initial_epoch=3, batch_size=8, verbose=0)
    h2 = back.fit([xe, xd], [y1, y2], epochs=4, initial_epoch=3, batch_size=8, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
    from lstmkit import runtime

    rt = runtime.load(path)
    for a, b in zip(rt.predict([xe, xd]), saved_pred):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_inference_models_from_trained_layers_decode_step_by_step(pair):
    """keras-io lstm_seq2seq: encoder and decoder models built from the trained model's tensors
    and layers; decoding one step at a time equals the teacher-forced model."""
    ours, _ = pair
    enc_in, dec_in = ours.input
    enc = ours.get_layer("enc")
    dec = ours.get_layer("dec")
    head = ours.get_layer("head")
    _, h, c = enc.output
    encoder_model = Model(enc_in, [h, c])
    s_h, s_c = Input(shape=(5,)), Input(shape=(5,))
    dec_step = layers.LSTM(5, return_sequences=True, return_state=True, name="dec_step")
    dec_step.build((None, 4))
    dec_step.set_weights(dec.get_weights())
    seq, h2, c2 = dec_step(dec_in, initial_state=[s_h, s_c])
    decoder_model = Model([dec_in, s_h, s_c], [head(seq), h2, c2])
    rng = np.random.default_rng(5)
    xe = rng.standard_normal((2, 7, 3)).astype(np.float32)
    xd = rng.standard_normal((2, 5, 4)).astype(np.float32)
    forced = ours.predict([xe, xd])[0]
    state = encoder_model.predict(xe)
    steps = []
    for t in range(5):
        out, hh, cc = decoder_model.predict([xd[:, t : t + 1], *state])
        steps.append(out[:, 0])
        state = [hh, cc]
    np.testing.assert_allclose(np.stack(steps, 1), forced, atol=1e-5)


def test_sequential_is_a_chain_of_the_same_graph():
    lstmkit.set_random_seed(6)
    seq = Sequential([Input(shape=(4, 2)), layers.LSTM(3), layers.Dense(1)])
    assert seq.input_shape == (None, 4, 2) and seq.output_shape == (None, 1)
    assert [la.name for la in seq.layers] == [seq.layers[0].name, seq.layers[1].name]
    x = np.random.default_rng(0).standard_normal((5, 4, 2)).astype(np.float32)
    inp = Input(shape=(4, 2))
    fn = Model(inp, seq.layers[1](seq.layers[0](inp)))
    np.testing.assert_array_equal(fn.predict(x), seq.predict(x))
    # Keras' build takes the batch axis
    s2 = Sequential([layers.LSTM(3), layers.Dense(1)])
    s2.build((None, 4, 2))
    assert s2.layers[0].params["kernel"].shape == (2, 12)
    with pytest.raises(ValueError, match="batch axis"):
        Sequential([layers.Dense(1)]).build((4,))


def test_errors_name_what_was_expected():
    a, b = Input(shape=(3, 2), name="a"), Input(shape=(3, 2), name="b")
    out = layers.Dense(1)(layers.LSTM(2)(b))
    with pytest.raises(ValueError, match="disconnected.*'b'|disconnected"):
        Model(a, out)
    with pytest.raises(ValueError, match=r"lstm.*\(LSTM\).*shape \(batch, 2\)"):
        layers.LSTM(2, name="lstm_bad")(Input(shape=(2,)))
    m = Model([a, b], layers.Dense(1)(layers.LSTM(2)(b)))
    m.compile("sgd", "mse")
    x = np.zeros((2, 3, 2), np.float32)
    with pytest.raises(ValueError, match="list of 2 arrays"):
        m.predict(x)
    with pytest.raises(ValueError, match=r"without \['b'\]"):
        m.predict({"a": x})
    with pytest.raises(ValueError, match="list of 2 arrays"):
        m.fit([x], np.zeros((2, 1)), verbose=0)


def test_summary_shows_connections(pair):
    ours, _ = pair
    text = ours.summary(print_fn=lambda s: None)
    assert "Connected to" in text
    assert "enc[0][1]" in text and "enc[0][2]" in text  # the decoder reads the encoder states


def test_converters_take_functional_models_or_name_what_they_cannot_express(pair, tmp_path):
    """to_keras rebuilds the graph (Keras predicts the same); a functional chain goes to torch and
    ONNX like the equivalent Sequential; a graph is refused naming the layer."""
    from lstmkit.interop.keras import to_keras
    from lstmkit.interop.onnx import to_onnx
    from lstmkit.interop.torch import to_torch

    ours, _ = pair
    rng = np.random.default_rng(7)
    xe = rng.standard_normal((2, 7, 3)).astype(np.float32)
    xd = rng.standard_normal((2, 5, 4)).astype(np.float32)
    km = to_keras(ours)
    for a, b in zip(km.predict([xe, xd], verbose=0), ours.predict([xe, xd])):
        np.testing.assert_allclose(np.asarray(a), b, atol=2e-5)
    with pytest.raises(ValueError, match="2 inputs and 2 outputs"):
        to_torch(ours)
    inp = Input(shape=(6, 3))
    h = layers.LSTM(4, return_sequences=True)(inp)
    chain = Model(inp, layers.Dense(2)(layers.GRU(3)(h)))
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    tm = to_torch(chain)
    with torch.no_grad():
        np.testing.assert_allclose(tm(torch.from_numpy(x)).numpy(), chain.predict(x), atol=2e-5)
    import onnxruntime as ort

    path = tmp_path / "chain.onnx"
    to_onnx(chain, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, chain.predict(x), atol=2e-5)
    a = Input(shape=(6, 3))
    _, hh, cc = layers.LSTM(4, return_state=True)(a)
    dec = layers.LSTM(4)(a, initial_state=[hh, cc])
    with pytest.raises(ValueError, match="returns states inside the model"):
        to_onnx(Model(a, dec))


def test_from_keras_functional_model(pair):
    """A live Keras functional model (two inputs, states into initial_state, a shared Dense)
    becomes an lstmkit Model predicting what Keras predicts."""
    from lstmkit.interop.keras import from_keras

    _, theirs = pair
    ours = from_keras(theirs)
    assert type(ours) is Model
    rng = np.random.default_rng(8)
    xe = rng.standard_normal((2, 7, 3)).astype(np.float32)
    xd = rng.standard_normal((2, 5, 4)).astype(np.float32)
    for a, b in zip(ours.predict([xe, xd]), theirs.predict([xe, xd], verbose=0)):
        np.testing.assert_allclose(a, np.asarray(b), atol=2e-5)


def test_metrics_over_several_batches_are_those_of_the_whole_data():
    """Keras' metrics accumulate across batches: evaluate's RMSE and F1 in batches of 7 equal
    scikit-learn's on all predictions at once (a mean of per-batch values would not)."""
    from sklearn.metrics import f1_score, mean_squared_error

    rng = np.random.default_rng(9)
    x = rng.standard_normal((45, 5, 3)).astype(np.float32)
    y = rng.standard_normal((45, 1)).astype(np.float32)
    lstmkit.set_random_seed(9)
    reg = Sequential([Input(shape=(5, 3)), layers.LSTM(4), layers.Dense(1)])
    reg.compile("sgd", "mse", metrics=["rmse"])
    got = reg.evaluate(x, y, batch_size=7, return_dict=True)
    want = np.sqrt(mean_squared_error(y, reg.predict(x)))
    assert abs(got["rmse"] - want) < 1e-5
    labels = (y[:, 0] > 0).astype(np.int64)
    clf = Sequential([Input(shape=(5, 3)), layers.LSTM(4), layers.Dense(1, activation="sigmoid")])
    clf.compile("sgd", "binary_crossentropy", metrics=["f1", "accuracy"])
    got = clf.evaluate(x, labels, batch_size=7, return_dict=True)
    pred = (clf.predict(x)[:, 0] > 0.5).astype(np.int64)
    assert abs(got["f1"] - f1_score(labels, pred)) < 1e-6
    assert abs(got["accuracy"] - np.mean(pred == labels)) < 1e-6
    hist = clf.fit(x, labels, epochs=1, batch_size=7, shuffle=False, verbose=0)
    assert set(hist.history) == {"loss", "f1", "accuracy"}


def test_functional_models_stream_and_trace_like_sequential():
    """Streaming ``step`` on a two-input model equals the full-sequence predict at every step;
    ``inspect.trace`` reads a functional model's gates as it reads a Sequential's."""
    from lstmkit.inspect import trace

    lstmkit.set_random_seed(10)
    a, b = Input(shape=(None, 3), name="a"), Input(shape=(None, 2), name="b")
    ha = layers.LSTM(4, return_sequences=True, name="la")(a)
    hb = layers.GRU(3, return_sequences=True, name="gb")(b)
    out = layers.Dense(2, name="out")(layers.Concatenate()([ha, hb]))
    model = Model([a, b], out)
    rng = np.random.default_rng(11)
    xa = rng.standard_normal((2, 6, 3)).astype(np.float32)
    xb = rng.standard_normal((2, 6, 2)).astype(np.float32)
    full = model.predict([xa, xb])
    states = None
    for t in range(6):
        y_t, states = model.step([xa[:, t], xb[:, t]], states)
        np.testing.assert_allclose(y_t, full[:, t], atol=1e-5)
    inp = Input(shape=(6, 3))
    single = Model(inp, layers.Dense(1)(layers.LSTM(4, return_sequences=True, name="l1")(inp)))
    tr = trace(single, xa)
    h = tr["l1"].h if hasattr(tr["l1"], "h") else tr["l1"]["h"]
    np.testing.assert_allclose(h, single.get_layer("l1")(xa), atol=1e-5)


def test_repeated_layer_names_are_refused_with_the_names():
    """Two layers of one model sharing a name: refused, naming the repeated names (as Keras 3
    refuses them), whatever else the graph holds."""
    x = Input((4,))
    a = layers.Dense(3, name="twin")(x)
    b = layers.Dense(3, name="twin")(a)
    c = layers.Dense(2, name="solo")(b)
    with pytest.raises(ValueError, match=r"repeated: \['twin'\]"):
        Model(x, c)
