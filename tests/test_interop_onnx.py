"""lstmkit -> ONNX (``lstmkit.interop.onnx``), with onnxruntime's operators as the witness.

- random configs (cell, stacking, bidirectional, many-to-one, Dense head) exported with
  ``to_onnx`` run in onnxruntime and equal lstmkit's predict; the graph uses the standard
  ``LSTM`` / ``GRU`` / ``RNN`` operators (one per layer), ``Gemm`` / ``MatMul`` for Dense;
- every Bidirectional merge mode, ``go_backwards``, several opsets;
- masked batches: ``Embedding(mask_zero=True)`` and ``Masking`` become ``sequence_lens``;
- ``streaming=True``: feeding one step at a time with the state outputs fed back equals the
  full-sequence run;
- a model trained in PyTorch, loaded into lstmkit and exported: onnxruntime equals PyTorch;
- the ``lstmkit export onnx`` command.

float32, max abs diff <= 1e-5.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from hypothesis import example, given, settings

from interop_models import build_model, inputs, model_strategy, randomize

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lstmkit import GRU, LSTM, Bidirectional, Dense, Embedding, Masking, Sequential, SimpleRNN
from lstmkit.interop.onnx import to_onnx

TOL = 1e-5


def session(proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def ort_run(proto, x, **states):
    return session(proto).run(None, {"x": x, **states})


EDGE = {
    "cell": "lstm", "layers": 2, "bidirectional": True, "return_sequences": True, "head": "sigmoid", "units": 3,
    "features": 2, "timesteps": None, "seed": 0,
}  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(spec=model_strategy())
@example(spec=EDGE)
@example(spec={**EDGE, "cell": "rnn_relu", "return_sequences": False, "bidirectional": False})
def test_round_trip_lstmkit_onnx_runtime(spec):
    model = build_model(spec)
    x = inputs(spec, timesteps=6)
    proto = to_onnx(model)
    (y,) = ort_run(proto, x)
    assert np.abs(y - model.predict(x)).max() <= TOL
    ops = [n.op_type for n in proto.graph.node]
    rnn_op = {"lstm": "LSTM", "gru": "GRU"}.get(spec["cell"], "RNN")
    assert ops.count(rnn_op) == spec["layers"]
    if spec["head"] is not False:
        assert ("Gemm" if not spec["return_sequences"] else "MatMul") in ops


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_merge_modes_go_backwards_and_opsets(merge_mode, opset):
    model = Sequential(
        [
            Bidirectional(
                LSTM(4, return_sequences=True), merge_mode=merge_mode, input_shape=(None, 3)
            ),
            GRU(3, return_sequences=True, go_backwards=True),
            Bidirectional(SimpleRNN(2, return_sequences=False), merge_mode=merge_mode),
            Dense(2, activation="tanh"),
        ]
    )
    randomize(model, 1)
    x = np.random.default_rng(2).standard_normal((3, 7, 3)).astype(np.float32)
    (y,) = ort_run(to_onnx(model, opset=opset), x)
    assert np.abs(y - model.predict(x)).max() <= TOL


def _padded_ids(rng, B, T, vocab):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    ids = rng.integers(1, vocab, size=(B, T))
    ids[np.arange(T) >= lengths[:, None]] = 0
    return ids


@pytest.mark.parametrize("last", ["sequence", "vector"])
def test_masked_embedding_uses_sequence_lens(last):
    model = Sequential(
        [
            Embedding(9, 4, mask_zero=True, input_shape=(None,)),
            LSTM(5, return_sequences=True),  # carried h at padded steps (Keras semantics)
            Bidirectional(GRU(3, return_sequences=True)),  # zeros at padded steps
            LSTM(4, return_sequences=last == "sequence", go_backwards=last == "vector"),
            Dense(2),
        ]
    )
    randomize(model, 3)
    ids = _padded_ids(np.random.default_rng(4), 6, 8, 9)
    proto = to_onnx(model)
    assert all(n.input[4] for n in proto.graph.node if n.op_type in ("LSTM", "GRU"))
    (y,) = ort_run(proto, ids)
    assert np.abs(y - model.predict(ids)).max() <= TOL


def test_masking_layer():
    model = Sequential([Masking(0.0, input_shape=(6, 2)), GRU(4, return_sequences=True), LSTM(3)])
    randomize(model, 5)
    x = np.random.default_rng(6).standard_normal((4, 6, 2)).astype(np.float32)
    x[1, 3:] = 0.0
    x[2, 1:] = 0.0
    (y,) = ort_run(to_onnx(model, opset=18), x)
    assert np.abs(y - model.predict(x)).max() <= TOL


def test_streaming_graph_step_by_step_equals_full_sequence():
    model = Sequential(
        [
            LSTM(5, return_sequences=True, input_shape=(None, 3), name="enc"),
            GRU(4, return_sequences=True, name="dec"),
            Dense(2),
        ]
    )
    randomize(model, 7)
    x = np.random.default_rng(8).standard_normal((2, 9, 3)).astype(np.float32)
    proto = to_onnx(model, streaming=True)
    sess = session(proto)
    names = [o.name for o in sess.get_outputs()]
    assert names == ["y", "enc.h", "enc.c", "dec.h"]
    assert [i.name for i in sess.get_inputs()] == ["x", "enc.h0", "enc.c0", "dec.h0"]
    state = {i.name: np.zeros((1, 2, int(i.shape[2])), np.float32) for i in sess.get_inputs()[1:]}
    outs = []
    for t in range(x.shape[1]):
        y_t, *new = sess.run(None, {"x": x[:, t : t + 1], **state})
        state = dict(zip(state, new))
        outs.append(y_t[:, 0])
    assert np.abs(np.stack(outs, axis=1) - model.predict(x)).max() <= TOL


def test_trained_in_torch_exported_to_onnx_equals_torch():
    torch = pytest.importorskip("torch")
    from lstmkit.interop.torch import from_torch

    torch.manual_seed(0)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rnn = torch.nn.LSTM(2, 8, num_layers=2, batch_first=True, bidirectional=True)
        head = torch.nn.Linear(16, 1)
        opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
        x = torch.randn(64, 10, 2)
        target = x.sum(dim=(1, 2))[:, None]  # learn the sum of the inputs
        for _ in range(50):
            _, (h, _) = rnn(x)
            loss = ((head(torch.cat([h[-2], h[-1]], -1)) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            _, (h, _) = rnn(x)
            expected = head(torch.cat([h[-2], h[-1]], -1)).numpy()
    finally:
        torch.set_num_threads(n_threads)
    (y,) = ort_run(to_onnx(from_torch((rnn, head))), x.numpy())
    assert np.abs(y - expected).max() <= TOL


def test_cli_export_onnx(tmp_path, capsys):
    from lstmkit.cli import export

    model = randomize(Sequential([GRU(4, input_shape=(5, 2)), Dense(1)]), 9)
    src = tmp_path / "m.lstmkit"
    model.save(src)
    parser = argparse.ArgumentParser()
    export.register(parser)
    out = tmp_path / "m.onnx"
    args = parser.parse_args(["onnx", str(src), str(out), "--opset", "17", "--check"])
    assert args.func(args) == 0
    assert "max abs diff" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype(np.float32)
    (y,) = ort_run(onnx.load(out), x)
    assert np.abs(y - model.predict(x)).max() <= TOL


def test_errors_name_the_problem():
    model = Sequential([LSTM(3, return_state=True, input_shape=(4, 2))])
    with pytest.raises(ValueError, match="return_state"):
        to_onnx(model)
    model = Sequential([LSTM(3, input_shape=(4, 2))])
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, opset=9)
