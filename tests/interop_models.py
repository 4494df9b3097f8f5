"""Random lstmkit models for the interop round trips (PyTorch, Keras, ONNX).

``model_strategy()`` draws a recurrent stack (LSTM / GRU / SimpleRNN tanh or relu, one or two
layers, optionally bidirectional, many-to-one or sequence output, optionally a Dense head with an
activation); ``randomize`` overwrites every parameter with N(0, 0.5^2) so that every bias, both
GRU bias rows included, is non-zero.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from lstmkit import GRU, LSTM, Bidirectional, Dense, Sequential, SimpleRNN

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


def make_layer(cell, units, **kwargs):
    if cell == "lstm":
        return LSTM(units, **kwargs)
    if cell == "gru":
        return GRU(units, **kwargs)
    return SimpleRNN(units, activation=cell.removeprefix("rnn_"), **kwargs)


def build_model(spec: dict) -> Sequential:
    """``spec``: cell, layers, bidirectional, return_sequences, head (None or activation name),
    units, features, timesteps (None for any length), seed, dtype."""
    layers = []
    n = spec["layers"]
    for k in range(n):
        rs = k < n - 1 or spec["return_sequences"]
        layer = make_layer(spec["cell"], spec["units"], return_sequences=rs)
        layers.append(Bidirectional(layer) if spec["bidirectional"] else layer)
    if spec["head"] is not False:
        layers.append(Dense(spec.get("head_units", 2), activation=spec["head"]))
    model = Sequential(layers, dtype=spec.get("dtype", "float32"))
    model.build((None, spec["timesteps"], spec["features"]))
    randomize(model, spec["seed"])
    return model


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    return model


def model_strategy(timesteps=None):
    return st.fixed_dictionaries(
        {
            "cell": st.sampled_from(CELLS),
            "layers": st.integers(1, 2),
            "bidirectional": st.booleans(),
            "return_sequences": st.booleans(),
            "head": st.sampled_from([False, None, "tanh", "relu", "sigmoid"]),
            "units": st.integers(1, 5),
            "features": st.integers(1, 4),
            "timesteps": st.just(timesteps),
            "seed": st.integers(0, 2**31 - 1),
        }
    )


def inputs(spec, batch=3, timesteps=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, timesteps, spec["features"])).astype(np.float32)
