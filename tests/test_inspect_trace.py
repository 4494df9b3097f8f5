"""``trace``: gates and states by name, read from the ops caches.

Witnesses: the cell equations recomputed from the traced numbers (``c = f c_prev + i g``,
``h = o tanh c``, ``h = z h_prev + (1 - z) n``), the gates recomputed from the layer's weights,
the model's outputs (bit-identical with and without tracing), and the layer outputs themselves.
Also the per-unit summaries on hand-made traces and the plots' files.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lstmkit
from lstmkit import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN
from lstmkit.inspect import LayerTrace, trace, unit_summary
from lstmkit.inspect.stats import timescale
from lstmkit.models import Sequential
from lstmkit.ops.activations import sigmoid


def _randomize(model, seed, scale=0.7):
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = rng.uniform(-scale, scale, p.shape)
    return model


def _check_lstm(lt, atol=1e-12):
    valid = lt.valid()[..., None]
    c_prev, h_prev = lt.previous("c"), lt.previous("h")
    c = np.where(valid, lt["f"] * c_prev + lt["i"] * lt["g"], c_prev)
    h = np.where(valid, lt["o"] * np.tanh(lt["c"]), h_prev)
    np.testing.assert_allclose(lt["c"], c, rtol=0, atol=atol)
    np.testing.assert_allclose(lt["h"], h, rtol=0, atol=atol)


def _check_gru(lt, atol=1e-12):
    valid = lt.valid()[..., None]
    h_prev = lt.previous("h")
    h = np.where(valid, lt["z"] * h_prev + (1 - lt["z"]) * lt["n"], h_prev)
    np.testing.assert_allclose(lt["h"], h, rtol=0, atol=atol)


def _lengths_mask(B, T, seed):
    lengths = np.random.default_rng(seed).integers(2, T + 1, size=B)
    lengths[0] = T
    return np.arange(T) < lengths[:, None]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_traced_gates_recompute_states_and_outputs(go_backwards, masked):
    B, T, D = 4, 7, 3
    model = _randomize(
        Sequential(
            [
                LSTM(
                    5,
                    return_sequences=True,
                    go_backwards=go_backwards,
                    input_shape=(T, D),
                    dtype="float64",
                    name="lstm",
                ),
                GRU(4, return_sequences=True, dtype="float64", name="gru"),
                SimpleRNN(3, dtype="float64", name="rnn"),
                Dense(2, dtype="float64"),
            ]
        ),
        1,
    )
    x = np.random.default_rng(2).normal(size=(B, T, D))
    mask = _lengths_mask(B, T, 3) if masked else None
    expected = model.predict(x, mask=mask)
    tr = trace(model, x, mask=mask)
    np.testing.assert_array_equal(tr.outputs, expected)  # tracing changes nothing
    np.testing.assert_array_equal(model.predict(x, mask=mask), expected)
    assert list(tr) == ["lstm", "gru", "rnn"]
    assert list(tr["lstm"]) == ["f", "i", "g", "o", "c", "h"]
    assert list(tr["gru"]) == ["r", "z", "n", "h"] and list(tr["rnn"]) == ["h"]
    for lt in tr.values():
        for a in lt.values():
            assert a.shape == (B, T, lt.units)
    _check_lstm(tr["lstm"])
    _check_gru(tr["gru"])
    # the final SimpleRNN state is the model's hidden input to Dense: y = h_T W + b
    rnn = tr["rnn"]
    last = np.array([np.flatnonzero(row)[-1] for row in rnn.valid()])
    h_T = rnn["h"][np.arange(B), last]
    dense = model.layers[-1].params
    np.testing.assert_allclose(h_T @ dense["kernel"] + dense["bias"], expected, atol=1e-12)
    if masked:  # skipped steps: gates NaN, states carried
        skipped = ~tr["lstm"].valid()
        assert np.isnan(tr["lstm"]["f"][skipped]).all()
        assert not np.isnan(tr["lstm"]["c"]).any()


def test_gates_recompute_from_the_weights():
    """The names are the right blocks: gates from ``x W + h_prev U + b`` and the weights."""
    B, T, D, H = 2, 5, 3, 4
    lstm = LSTM(H, return_sequences=True, input_shape=(T, D), dtype="float64", name="lstm")
    gru = GRU(H, dtype="float64", name="gru")
    model = _randomize(Sequential([lstm, gru]), 4)
    x = np.random.default_rng(5).normal(size=(B, T, D))
    tr = trace(model, x)
    p = lstm.params
    z = x @ p["kernel"] + p["bias"] + tr["lstm"].previous("h") @ p["recurrent_kernel"]
    for k, name in enumerate("ifgo"):
        zk = z[..., k * H : (k + 1) * H]
        ref = np.tanh(zk) if name == "g" else sigmoid(zk)
        np.testing.assert_allclose(tr["lstm"][name], ref, atol=1e-12)
    p, h_in = gru.params, tr["lstm"]["h"]
    xw = h_in @ p["kernel"] + p["bias"][0]
    hu = tr["gru"].previous("h") @ p["recurrent_kernel"] + p["bias"][1]
    zg, rg = sigmoid(xw[..., :H] + hu[..., :H]), sigmoid(xw[..., H : 2 * H] + hu[..., H : 2 * H])
    np.testing.assert_allclose(tr["gru"]["z"], zg, atol=1e-12)
    np.testing.assert_allclose(tr["gru"]["r"], rg, atol=1e-12)
    np.testing.assert_allclose(
        tr["gru"]["n"], np.tanh(xw[..., 2 * H :] + rg * hu[..., 2 * H :]), atol=1e-12
    )


@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_halves_in_time_and_processing_order(masked):
    B, T, D = 3, 6, 2
    model = _randomize(
        Sequential(
            [
                Bidirectional(
                    LSTM(4, return_sequences=True, dtype="float64"),
                    input_shape=(T, D),
                    name="bi",
                    dtype="float64",
                ),
                Bidirectional(GRU(3, dtype="float64"), name="bi2", dtype="float64"),
            ]
        ),
        6,
    )
    x = np.random.default_rng(7).normal(size=(B, T, D))
    mask = _lengths_mask(B, T, 8) if masked else None
    tr = trace(model, x, mask=mask)
    np.testing.assert_array_equal(tr.outputs, model.predict(x, mask=mask))
    assert list(tr) == ["bi/forward", "bi/backward", "bi2/forward", "bi2/backward"]
    for name in ("bi/forward", "bi/backward"):
        _check_lstm(tr[name])
    for name in ("bi2/forward", "bi2/backward"):
        _check_gru(tr[name])
    # the sequence output is [h_fwd, h_bwd] at every valid step, in time order
    keep = np.ones((B, T), bool) if mask is None else mask
    y1 = model.layers[0].forward(x, mask=mask)[0]
    h = np.concatenate([tr["bi/forward"]["h"], tr["bi/backward"]["h"]], axis=-1)
    np.testing.assert_allclose(y1[keep], h[keep], atol=1e-12)
    # the backward half's first processed step is t = T-1
    processing = trace(model, x, mask=mask, order="processing")["bi/backward"]
    np.testing.assert_array_equal(processing["f"], tr["bi/backward"]["f"][:, ::-1])
    _check_lstm(processing)
    # final states of the last layer: forward at each sequence's end, backward at t = 0
    last = keep.sum(axis=1) - 1
    fwd_T = tr["bi2/forward"]["h"][np.arange(B), last]
    np.testing.assert_allclose(
        tr.outputs, np.concatenate([fwd_T, tr["bi2/backward"]["h"][:, 0]], -1), atol=1e-12
    )


def test_variants_report_the_same_names():
    T, D, H = 5, 2, 3
    x = np.random.default_rng(0).normal(size=(2, T, D))
    for kwargs in ({"peephole": True}, {"cifg": True}, {"forget_gate": False}):
        model = _randomize(
            Sequential([LSTM(H, input_shape=(T, D), dtype="float64", name="v", **kwargs)]), 1, 0.5
        )
        lt = trace(model, x)["v"]
        assert list(lt) == ["f", "i", "g", "o", "c", "h"]
        _check_lstm(lt)
        if kwargs.get("cifg"):
            np.testing.assert_allclose(lt["i"], 1 - lt["f"])
        if "forget_gate" in kwargs:
            assert (lt["f"] == 1).all()


def test_stateful_models_keep_their_state():
    lstmkit.set_random_seed(1)
    model = Sequential(
        [LSTM(3, stateful=True, return_sequences=True, input_shape=(4, 2)), GRU(2, stateful=True)]
    )
    x = np.random.default_rng(1).normal(size=(2, 4, 2)).astype("float32")
    model.predict(x)  # now carries a state
    carried = [[s.copy() for s in layer.states] for layer in model.layers]
    tr = trace(model, x)
    np.testing.assert_array_equal(tr[model.layers[0].name].initial["c"], carried[0][1])
    for layer, states in zip(model.layers, carried):
        for a, b in zip(layer.states, states):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tr.outputs, model.predict(x))


def test_embedding_models_and_errors():
    lstmkit.set_random_seed(2)
    model = Sequential([Embedding(10, 4, mask_zero=True, input_shape=(6,)), LSTM(3, name="l")])
    ids = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    tr = trace(model, ids)
    np.testing.assert_array_equal(tr["l"].mask, ids != 0)
    with pytest.raises(KeyError, match="expected one of"):
        tr["l"]["z"]
    with pytest.raises(KeyError, match="recurrent layers are"):
        tr["nope"]
    with pytest.raises(ValueError, match="'order'"):
        trace(model, ids, order="backwards")
    with pytest.raises(ValueError, match="no recurrent layer"):
        trace(Sequential([Dense(2, input_shape=(3, 2))]), np.zeros((1, 3, 2)))
    with pytest.raises(TypeError, match="Sequential"):
        trace(object(), ids)


# -- summaries --------------------------------------------------------------------------------------
def _hand_trace(f, h):
    """A LayerTrace with given forget gate and h (B, T, H); the other gates mid-range."""
    half = np.full_like(f, 0.5)
    arrays = {"f": f, "i": half, "g": np.zeros_like(f), "o": half, "c": np.zeros_like(f), "h": h}
    init = {"h": np.zeros(f[:, 0].shape), "c": np.zeros(f[:, 0].shape)}
    return LayerTrace("hand", "lstm", arrays, init, None, False, "time")


def test_unit_summary_on_known_values():
    B, T = 2, 10
    f = np.empty((B, T, 3))
    f[..., 0] = np.exp(-1 / 5)  # time-scale 5 steps exactly
    f[..., 1] = np.where(np.arange(T) < 3, 0.05, 0.5)  # 3 of 10 steps saturated (low)
    f[..., 2] = 0.95  # always saturated (high)
    h = np.zeros((B, T, 3))
    h[..., 0], h[..., 1], h[..., 2] = 0.1, -0.5, 0.3
    s = unit_summary(_hand_trace(f, h), top=2)
    np.testing.assert_allclose(s.saturation["f"], [0.0, 0.3, 1.0])
    np.testing.assert_allclose(s.forget_mean[0], np.exp(-1 / 5))
    np.testing.assert_allclose(s.timescale[0], 5.0)
    np.testing.assert_allclose(s.activity, [0.1, 0.5, 0.3])
    assert list(s.most_active) == [1, 2] and list(s.least_active) == [0, 2]
    assert s.table()[1]["saturation_f"] == pytest.approx(0.3)
    g = np.full((B, T, 3), 0.85)  # tanh gate: beyond 0.8 is saturated
    tr = _hand_trace(f, h)
    tr.arrays["g"] = g
    assert unit_summary(tr).saturation["g"].tolist() == [1.0, 1.0, 1.0]
    assert timescale(np.array([1.0]))[0] == np.inf
    with pytest.raises(TypeError, match="LayerTrace"):
        unit_summary({"f": f})


def test_unit_summary_skips_masked_steps_and_rnn_has_no_timescale():
    lstmkit.set_random_seed(4)
    model = Sequential([SimpleRNN(3, input_shape=(5, 2), name="r")])
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    s = unit_summary(trace(model, x, mask=mask)["r"])
    assert s.forget_mean is None and s.timescale is None and s.saturation == {}
    h = trace(model, x, mask=mask)["r"]["h"]
    np.testing.assert_allclose(s.activity, np.abs(h[mask]).mean(axis=0), rtol=1e-6)


# -- plots and imports ----------------------------------------------------------------------------
def test_plots_write_pngs(tmp_path):
    from lstmkit.inspect.plots import plot_gates, plot_gradient_flow, plot_states, plot_text

    lstmkit.set_random_seed(5)
    model = Sequential([LSTM(4, return_sequences=True, input_shape=(6, 2), name="l")])
    lt = trace(model, np.random.default_rng(0).normal(size=(2, 6, 2)))["l"]
    paths = [
        plot_gates(lt, tmp_path / "g.png", sample=1),
        plot_states(lt, tmp_path / "s.png", units=[0, 3]),
        plot_gradient_flow(
            {"a": np.logspace(0, -3, 10)},
            tmp_path / "f.png",
            spread={"a": (np.logspace(-1, -4, 10), np.logspace(1, -2, 10))},
        ),
        plot_text("ab\ncd", np.array([0.1, -0.5, np.nan, 0.2, 0.9]), tmp_path / "t.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="'units'"):
        plot_states(lt, tmp_path / "x.png", units=[4])
    with pytest.raises(ValueError, match="'sample'"):
        plot_gates(lt, tmp_path / "x.png", sample=2)
    with pytest.raises(ValueError, match="one per token"):
        plot_text("abc", np.zeros(2), tmp_path / "x.png")


def test_importing_inspect_does_not_import_matplotlib():
    code = (
        "import sys, lstmkit.inspect, lstmkit.inspect.plots, lstmkit.inspect.report; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
