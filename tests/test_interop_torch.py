"""lstmkit <-> PyTorch (``lstmkit.interop.torch``), with PyTorch's own modules as the witness.

- lstmkit -> ``to_torch`` -> torch forward equals lstmkit's predict, and -> ``from_torch`` back
  gives the same model, over random configs (cell, stacking, bidirectional, many-to-one, head);
- torch-built modules (default init: both bias vectors non-zero) with ``num_layers``,
  ``bidirectional``, ``batch_first``, an ``Embedding`` and a ``Linear`` head, run by a hand-written
  torch forward, load into lstmkit;
- state-dict files: written by ``safetensors.torch`` / ``torch.save`` and read by lstmkit (the
  ``.safetensors`` path without importing torch), written by lstmkit and loaded into torch with
  ``load_state_dict(strict=True)``; a hostile ``.pt`` is refused, never unpickled;
- an LSTM trained in PyTorch on the sunspots series predicts identically in lstmkit.

float32 everywhere, max abs diff <= 1e-5.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from torch import nn

from interop_models import build_model, inputs, model_strategy, randomize
from lstmkit import GRU, LSTM, Dense, Embedding, Masking, Sequential
from lstmkit.interop.torch import (
    from_state_dict,
    from_torch,
    load_state_dict_file,
    save_state_dict_file,
    to_state_dict,
    to_torch,
)

TOL = 1e-5
EDGE = {
    "cell": "lstm", "layers": 2, "bidirectional": True, "return_sequences": False, "head": "tanh", "units": 3,
    "features": 2, "timesteps": None, "seed": 0,
}  # fmt: skip


@pytest.fixture(autouse=True)
def one_torch_thread():
    # tiny models: a second OpenMP thread only adds spin-waiting (badly so on a busy machine)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@settings(max_examples=25, deadline=None)
@given(spec=model_strategy())
@example(spec=EDGE)
@example(spec={**EDGE, "cell": "gru", "return_sequences": True, "head": None})
def test_round_trip_lstmkit_torch_lstmkit(spec):
    model = build_model(spec)
    x = inputs(spec)
    y = model.predict(x)
    net = to_torch(model)
    assert np.abs(run(net, x) - y).max() <= TOL
    back = from_torch(net)
    assert [type(la).__name__ for la in back.layers] == [type(la).__name__ for la in model.layers]
    assert np.abs(back.predict(x) - y).max() <= TOL
    # one torch module for the whole stack: num_layers carries the depth
    rnn = [m for m in net if isinstance(m, nn.RNNBase)]
    assert len(rnn) == 1 and rnn[0].num_layers == spec["layers"]
    assert rnn[0].bidirectional == spec["bidirectional"]


def _torch_rnn(cell, D, H, **kw):
    if cell == "lstm":
        return nn.LSTM(D, H, **kw)
    if cell == "gru":
        return nn.GRU(D, H, **kw)
    return nn.RNN(D, H, nonlinearity=cell.removeprefix("rnn_"), **kw)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_torch_built_stack_with_head(cell, bidirectional, batch_first):
    torch.manual_seed(0)
    D, H, T, B = 3, 4, 6, 2
    rnn = _torch_rnn(cell, D, H, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    dirs = 2 if bidirectional else 1
    head = nn.Linear(dirs * H, 2)
    for name, p in rnn.named_parameters():
        assert name.startswith("weight") or (p != 0).all(), name  # both biases non-zero
    x = np.random.default_rng(1).standard_normal((B, T, D)).astype(np.float32)
    xt = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        out, hn = rnn(xt)
        out = out if batch_first else out.transpose(0, 1)  # (B, T, dirs*H)
        h = hn[0] if cell == "lstm" else hn  # (layers*dirs, B, H)
        last = torch.cat(list(h[-dirs:]), dim=-1)
        if not bidirectional:  # the everyday idiom, equal to h_n for one direction
            torch.testing.assert_close(last, out[:, -1])
        many_to_one = head(last).numpy()
        seq = head(out).numpy()
    model = from_torch((rnn, head))
    assert np.abs(model.predict(x) - many_to_one).max() <= TOL
    model = from_torch([rnn, head], return_sequences=True)
    assert np.abs(model.predict(x) - seq).max() <= TOL


def test_embedding_activation_dropout_sequential():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Embedding(10, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3))
    act = nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Dropout(0.3)).eval()
    ids = np.random.default_rng(0).integers(0, 10, size=(4, 7))
    with torch.no_grad():
        out, _ = net[1](net[0](torch.from_numpy(ids)))
        expected = act(net[2](out[:, -1])).numpy()
    model = from_torch([*net, *act], input_shape=(7,))
    assert [type(la).__name__ for la in model.layers] == [
        "Embedding",
        "GRU",
        "Dense",
        "Dense",
        "Dropout",
    ]
    assert model.layers[3].activation == "sigmoid"
    assert np.abs(model.predict(ids) - expected).max() <= TOL
    assert np.abs(run(to_torch(model), ids) - expected).max() <= TOL


class Forecaster(nn.Module):
    """The usual hand-written torch model: named submodules, many-to-one by ``out[:, -1]``."""

    def __init__(self, D=1, H=16, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(D, H, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(H, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def test_named_module_and_state_dict_files(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    net = Forecaster(D=2, H=6, layers=2).eval()
    x = np.random.default_rng(3).standard_normal((5, 9, 2)).astype(np.float32)
    expected = run(net, x)
    assert np.abs(from_torch(net).predict(x) - expected).max() <= TOL

    st_path = tmp_path / "w.safetensors"
    save_file(net.state_dict(), st_path)  # safetensors' own writer: keys lstm.*, fc.*
    assert np.abs(load_state_dict_file(st_path).predict(x) - expected).max() <= TOL

    pt_path = tmp_path / "w.pt"
    torch.save({"epoch": 3, "model_state_dict": net.state_dict()}, pt_path)
    assert np.abs(load_state_dict_file(pt_path).predict(x) - expected).max() <= TOL

    # into a given architecture (prefixes differ: lstm./fc. vs the model's layer names)
    template = Sequential([LSTM(6, return_sequences=True), LSTM(6), Dense(1)])
    template.build((None, None, 2))
    loaded = load_state_dict_file(st_path, model=template)
    assert loaded is template and np.abs(template.predict(x) - expected).max() <= TOL


def test_lstmkit_state_dict_files_load_into_torch(tmp_path):
    model = randomize(Sequential([GRU(5, input_shape=(None, 3)), Dense(2)]), seed=4)
    x = np.random.default_rng(5).standard_normal((3, 8, 3)).astype(np.float32)
    y = model.predict(x)
    for name in ("w.safetensors", "w.pt"):
        path = tmp_path / name
        save_state_dict_file(model, path)
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            sd = load_file(path)
        else:
            sd = torch.load(path, weights_only=True)
        net = nn.Sequential(nn.GRU(3, 5, batch_first=True), nn.Linear(5, 2))
        net.load_state_dict(sd, strict=True)
        with torch.no_grad():
            out, _ = net[0](torch.from_numpy(x))
            assert np.abs(net[1](out[:, -1]).numpy() - y).max() <= TOL
        assert np.abs(load_state_dict_file(path).predict(x) - y).max() <= TOL
    assert sorted(to_state_dict(model)) == sorted(sd)


def test_safetensors_state_dict_needs_no_torch(tmp_path):
    model = randomize(Sequential([LSTM(4, input_shape=(None, 2)), Dense(1)]), seed=6)
    path = tmp_path / "w.safetensors"
    save_state_dict_file(model, path)
    x = np.ones((1, 3, 2), np.float32)
    code = (
        "import sys, numpy as np\n"
        "from lstmkit.interop.torch import load_state_dict_file, save_state_dict_file\n"
        f"m = load_state_dict_file({str(path)!r})\n"
        f"save_state_dict_file(m, {str(tmp_path / 'again.safetensors')!r})\n"
        "print(repr(m.predict(np.ones((1, 3, 2), np.float32)).tolist()))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert np.abs(np.array(eval(out.stdout)) - model.predict(x)).max() <= TOL


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_hostile_pt_file_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Evil()}, path)
    with pytest.raises(ValueError, match="weights-only"):
        load_state_dict_file(path)


def test_trained_in_torch_predicts_identically():
    from lstmkit.data import load_series, make_windows

    values, _, _ = load_series("sunspots")
    series = ((values - values.mean()) / values.std()).astype(np.float32)
    X, Y = make_windows(series, lookback=12, horizon=1)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    torch.manual_seed(0)
    net = Forecaster(D=1, H=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X), torch.from_numpy(Y)
    losses = []
    for step in range(300):
        idx = torch.randint(0, len(X), (32,))
        loss = nn.functional.mse_loss(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-30:]) < 0.5 * np.mean(losses[:30])  # it did learn
    net.eval()
    model = from_torch(net)
    assert np.abs(model.predict(X) - run(net, X)).max() <= TOL


def test_errors_name_the_problem():
    m = Sequential([Masking(input_shape=(4, 2)), LSTM(3)])
    with pytest.raises(ValueError, match="Masking"):
        to_torch(m)
    m = Sequential([LSTM(3, go_backwards=True, input_shape=(4, 2))])
    with pytest.raises(ValueError, match="go_backwards"):
        to_torch(m)
    m = Sequential([Embedding(5, 2, mask_zero=True, input_shape=(4,)), LSTM(3)])
    with pytest.raises(ValueError, match="mask_zero"):
        to_torch(m)
    sd = to_state_dict(randomize(Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)]), 0))
    sd["1.extra"] = sd.pop("1.bias")
    with pytest.raises(ValueError, match="'extra'"):
        from_state_dict(sd)
    sd["1.bias"] = sd.pop("1.extra")
    del sd["0.bias_hh_l0"]
    with pytest.raises(ValueError, match="missing 0.bias_hh_l0"):
        from_state_dict(sd)
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(ValueError, match="Conv1d"):
        from_torch([nn.LSTM(2, 4), nn.Conv1d(4, 4, 1)])


@pytest.mark.parametrize("variant", [{"peephole": True}, {"cifg": True}, {"layer_norm": True}])
def test_lstm_variants_are_refused_by_every_exporter(tmp_path, variant):
    """A variant cell exported as a plain LSTM would silently compute something else."""
    from lstmkit.interop import keras as lk_keras
    from lstmkit.interop import onnx as lk_onnx
    from lstmkit.interop import torch as lk_torch
    from lstmkit.layers import LSTM, Dense
    from lstmkit.models import Sequential

    model = Sequential([LSTM(4, input_shape=(5, 3), **variant), Dense(1)])
    for export in (
        lk_torch.to_torch,
        lk_keras.to_keras,
        lambda m: lk_onnx.to_onnx(m, tmp_path / "m.onnx"),
    ):
        with pytest.raises(ValueError, match="variants"):
            export(model)
