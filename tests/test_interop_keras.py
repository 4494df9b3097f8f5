"""lstmkit <-> Keras 3 (``lstmkit.interop.keras``), with Keras' own layers as the witness.

- lstmkit -> ``to_keras`` -> Keras predict equals lstmkit's, and -> ``from_keras`` (live model and
  the ``.keras`` file, which is read without Keras) gives it back, over random configs;
- Keras-built models with masks (``Embedding(mask_zero=True)``, ``Masking``), ``Bidirectional``
  merge modes, ``go_backwards`` and ``use_bias=False`` load from their ``.keras`` files;
- a model trained by Keras (torch backend) on the sunspots series predicts identically.

float32, max abs diff <= 1e-5. Runs with ``KERAS_BACKEND=torch`` (set here if unset).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
from hypothesis import example, given, settings

from interop_models import build_model, inputs, model_strategy, randomize

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from lstmkit import LSTM, Dense, Sequential
from lstmkit.interop.keras import from_keras, save_keras, to_keras

TOL = 1e-5
L = keras.layers


@pytest.fixture(autouse=True)
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def kpredict(km, x):
    return keras.ops.convert_to_numpy(km(x, training=False))


def randomize_keras(km, seed):
    rng = np.random.default_rng(seed)
    km.set_weights([0.5 * rng.standard_normal(w.shape).astype(w.dtype) for w in km.get_weights()])
    return km


EDGE = {
    "cell": "gru", "layers": 2, "bidirectional": True, "return_sequences": True, "head": "relu", "units": 2,
    "features": 3, "timesteps": None, "seed": 1,
}  # fmt: skip


@settings(max_examples=10, deadline=None)
@given(spec=model_strategy())
@example(spec=EDGE)
def test_round_trip_lstmkit_keras_lstmkit(spec):
    model = build_model(spec)
    x = inputs(spec)
    y = model.predict(x)
    km = to_keras(model)
    assert np.abs(kpredict(km, x) - y).max() <= TOL
    back = from_keras(km)
    assert [la.name for la in back.layers] == [la.name for la in model.layers]
    assert np.abs(back.predict(x) - y).max() <= TOL


def test_keras_file_round_trip(tmp_path):
    spec = dict(EDGE, cell="lstm", timesteps=6, seed=3)
    model = build_model(spec)
    x = inputs(spec, timesteps=6)
    path = tmp_path / "m.keras"
    save_keras(model, path)
    km = keras.saving.load_model(path)  # Keras itself reads what lstmkit wrote
    assert np.abs(kpredict(km, x) - model.predict(x)).max() <= TOL
    back = from_keras(path)  # and lstmkit reads it without Keras
    assert back.input_shape == (None, 6, 3)
    assert np.abs(back.predict(x) - model.predict(x)).max() <= TOL


def _padded_ids(rng, B, T, vocab):
    lengths = rng.integers(1, T + 1, size=B)
    ids = rng.integers(1, vocab, size=(B, T))
    ids[np.arange(T) >= lengths[:, None]] = 0  # post-padding
    return ids


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
def test_keras_built_masked_text_model(tmp_path, merge_mode):
    km = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            L.Embedding(12, 4, mask_zero=True),
            L.Bidirectional(L.GRU(5, return_sequences=True), merge_mode=merge_mode),
            L.LSTM(3, return_sequences=True, go_backwards=False),
            L.SimpleRNN(4, activation="relu", use_bias=False),
            L.Dense(2, activation="sigmoid"),
        ]
    )
    randomize_keras(km, 0)
    ids = _padded_ids(np.random.default_rng(1), 5, 7, 12)
    expected = kpredict(km, ids)
    path = tmp_path / "text.keras"
    km.save(path)
    for model in (from_keras(path), from_keras(km)):
        assert np.abs(model.predict(ids) - expected).max() <= TOL


def test_keras_built_masking_and_go_backwards(tmp_path):
    km = keras.Sequential(
        [
            keras.Input((6, 2)),
            L.Masking(0.0),
            L.LSTM(4, return_sequences=True),
            L.GRU(3, go_backwards=True, return_sequences=True),
            L.Dropout(0.5),
            L.Dense(2, activation="tanh"),
        ]
    )
    randomize_keras(km, 2)
    x = np.random.default_rng(3).standard_normal((4, 6, 2)).astype(np.float32)
    x[1, 4:] = 0.0
    x[3, 2:] = 0.0
    path = tmp_path / "m.keras"
    km.save(path)
    model = from_keras(path)
    assert np.abs(model.predict(x) - kpredict(km, x)).max() <= TOL


def test_weights_list_into_template():
    spec = dict(EDGE, cell="rnn_tanh", timesteps=None)
    model = build_model(spec)
    km = to_keras(model)
    other = randomize(build_model(spec), seed=99)
    out = from_keras(km.get_weights(), model=other)
    x = inputs(spec)
    assert out is other and np.abs(other.predict(x) - model.predict(x)).max() <= TOL


def test_trained_in_keras_predicts_identically(tmp_path):
    from lstmkit.data import load_series, make_windows

    values, _, _ = load_series("sunspots")
    series = (values - values.mean()) / values.std()
    X, Y = make_windows(series, lookback=12, horizon=1)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((12, 1)), L.LSTM(16), L.Dense(1)])
    km.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    hist = km.fit(X, Y, epochs=5, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]  # it did learn
    path = tmp_path / "sunspots.keras"
    km.save(path)
    model = from_keras(path)
    assert np.abs(model.predict(X) - kpredict(km, X)).max() <= TOL


def test_unsupported_layers_are_named(tmp_path):
    bad = [  # (GRU reset_after=False and LSTM relu convert: tests/test_recurrent_args.py)
        (L.LSTM(3, activation="softmax"), "activation"),
        (L.GRU(3, kernel_regularizer=keras.regularizers.OrthogonalRegularizer()), "regularizer"),
        (L.Conv1D(3, 2), "Conv1D"),
    ]
    for layer, match in bad:
        km = keras.Sequential([keras.Input((5, 2)), layer])
        with pytest.raises(ValueError, match=match):
            from_keras(km)
    with pytest.raises(ValueError, match="architecture"):
        from_keras([np.zeros((2, 4))])
    model = Sequential([LSTM(3, input_shape=(5, 2)), Dense(1)])
    with pytest.raises(ValueError, match=".keras"):
        save_keras(model, tmp_path / "m.h5")
