"""Streaming inference: ``Sequential.step``, ``RuntimeModel.step`` and stateful layers.

The witness is the full-sequence forward (one input projection for all steps, then the loop),
a different code path from the one-step functions ``lstmkit.ops.<cell>_step``:

- feeding a sequence one step at a time through ``model.step`` gives the full forward's output
  at every step (stacks returning sequences), and the many-to-one output at the last step;
- ``stateful=True`` layers carry their state across ``predict`` calls on consecutive chunks, so
  the chunked outputs equal the whole sequence's; ``reset_states`` starts over;
- the runtime's ``step`` and stateful ``predict`` agree with the model's.

Max abs diff <= 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from interop_models import make_layer, randomize
from lstmkit import GRU, LSTM, Bidirectional, Dense, Embedding, Sequential, SimpleRNN, runtime

TOL = 1e-6
STACK = st.lists(st.sampled_from(["lstm", "gru", "rnn_tanh", "rnn_relu"]), min_size=1, max_size=3)


def stream(model_or_rt, x, state=None):
    """Feed ``x (B, T, ...)`` step by step; returns the outputs stacked on axis 1."""
    outs = []
    for t in range(x.shape[1]):
        y_t, state = model_or_rt.step(x[:, t], state)
        outs.append(y_t)
    return np.stack(outs, axis=1), state


@settings(max_examples=15, deadline=None)
@given(
    cells=STACK,
    units=st.integers(1, 6),
    T=st.integers(1, 8),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**31 - 1),
)
@example(cells=["lstm", "gru", "rnn_relu"], units=4, T=6, dtype="float32", seed=0)
def test_step_by_step_equals_forward_for_sequence_stacks(cells, units, T, dtype, seed):
    layers = [make_layer(c, units, return_sequences=True) for c in cells]
    model = Sequential([*layers, Dense(2, activation="tanh")], dtype=dtype)
    model.build((None, None, 3))
    randomize(model, seed)
    x = np.random.default_rng(seed).standard_normal((2, T, 3)).astype(dtype)
    stepped, _ = stream(model, x)
    assert np.abs(stepped - model.predict(x)).max() <= TOL


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_many_to_one_last_step_equals_predict(cell):
    model = Sequential([LSTM(8, return_sequences=True), make_layer(cell, 5), Dense(1)])
    model.build((None, None, 2))
    randomize(model, 1)
    x = np.random.default_rng(2).standard_normal((4, 12, 2)).astype(np.float32)
    stepped, state = stream(model, x)
    assert np.abs(stepped[:, -1] - model.predict(x)).max() <= TOL
    # the state the stream ends with is the layers' final state: h of the last recurrent layer
    assert np.abs(state[1][0] - model.layers[1](model.layers[0](x))).max() <= TOL


def test_step_with_embedding_ids():
    model = Sequential([Embedding(10, 4, input_shape=(None,)), GRU(5, return_sequences=True)])
    randomize(model, 3)
    ids = np.random.default_rng(4).integers(0, 10, size=(3, 7))
    stepped, _ = stream(model, ids)
    assert np.abs(stepped - model.predict(ids)).max() <= TOL


def _stateful_twins(return_sequences, batch=3):
    """The same weights twice: a stateful model and a plain one."""

    def make(stateful):
        model = Sequential(
            [
                LSTM(6, return_sequences=True, stateful=stateful),
                GRU(4, return_sequences=True, stateful=stateful),
                SimpleRNN(3, return_sequences=return_sequences, stateful=stateful),
                Dense(2),
            ]
        )
        model.build((None, None, 2))
        return randomize(model, 5)

    return make(True), make(False)


@pytest.mark.parametrize("chunks", [[4, 4, 4], [1, 5, 6], [12]])
def test_stateful_chunks_equal_the_full_sequence(chunks):
    stateful, plain = _stateful_twins(return_sequences=True)
    x = np.random.default_rng(6).standard_normal((3, sum(chunks), 2)).astype(np.float32)
    full = plain.predict(x)
    for _ in range(2):  # the second round checks that reset_states starts over
        stateful.reset_states()
        outs, t = [], 0
        for n in chunks:
            outs.append(stateful.predict(x[:, t : t + n]))
            t += n
        assert np.abs(np.concatenate(outs, axis=1) - full).max() <= TOL


def test_stateful_many_to_one_last_chunk_equals_predict():
    stateful, plain = _stateful_twins(return_sequences=False)
    x = np.random.default_rng(7).standard_normal((3, 10, 2)).astype(np.float32)
    stateful.predict(x[:, :3])
    stateful.predict(x[:, 3:7])
    assert np.abs(stateful.predict(x[:, 7:]) - plain.predict(x)).max() <= TOL
    # without the reset, the next call would continue from t = 10
    stateful.reset_states()
    assert np.abs(stateful.predict(x) - plain.predict(x)).max() <= TOL


def test_runtime_step_and_stateful_predict(tmp_path):
    stateful, plain = _stateful_twins(return_sequences=True)
    path = tmp_path / "m.lstmkit"
    stateful.save(path)
    rt = runtime.load(path)
    x = np.random.default_rng(8).standard_normal((3, 9, 2)).astype(np.float32)
    full = plain.predict(x)
    # stateful predict on chunks
    parts = [rt.predict(x[:, :4]), rt.predict(x[:, 4:])]
    assert np.abs(np.concatenate(parts, axis=1) - full).max() <= TOL
    rt.reset()
    assert np.abs(rt.predict(x) - full).max() <= TOL
    # step: the runtime carries the state itself; equal to the model's step and to the forward
    rt.reset()
    outs = [rt.step(x[:, t])[0] for t in range(x.shape[1])]
    assert np.abs(np.stack(outs, axis=1) - full).max() <= TOL
    stepped, _ = stream(plain, x)
    assert np.abs(np.stack(outs, axis=1) - stepped).max() <= TOL
    # an explicit state resumes from it; reset() starts again from zeros
    rt.reset()
    _, s4 = stream(rt, x[:, :4])
    rest, _ = stream(rt, x[:, 4:], state=s4)
    assert np.abs(rest - full[:, 4:]).max() <= TOL
    rt.reset()
    assert np.abs(rt.step(x[:, 0])[0] - full[:, 0]).max() <= TOL


def test_runtime_step_refuses_bidirectional(tmp_path):
    model = Sequential([Bidirectional(LSTM(3), input_shape=(None, 2)), Dense(1)])
    path = tmp_path / "b.lstmkit"
    model.save(path)
    with pytest.raises(ValueError, match="cannot stream"):
        runtime.load(path).step(np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("first", ["bidirectional", "masking"])
def test_step_refuses_layers_that_need_the_whole_sequence(first):
    from lstmkit.layers import LSTM, Bidirectional, Dense, Masking
    from lstmkit.models import Sequential

    head = (
        Bidirectional(LSTM(3, return_sequences=True), input_shape=(5, 2))
        if first == "bidirectional"
        else Masking(input_shape=(5, 2))
    )
    model = Sequential([head, LSTM(3), Dense(1)])
    with pytest.raises(ValueError, match="whole sequence"):
        model.step(np.ones((1, 2), np.float32))
