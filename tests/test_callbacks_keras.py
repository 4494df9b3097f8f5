"""ReduceLROnPlateau, LambdaCallback and CSVLogger against Keras 3's own callbacks.

Witnesses (Keras 3, torch backend):

- ``keras.callbacks.ReduceLROnPlateau`` on a fake model holding a ``keras.optimizers.SGD``, fed
  the same sequences of logs as lstmkit's: the learning rate after every epoch and the logged
  ``learning_rate`` (Keras keeps the rate in a float32 variable: float32 tolerance), over random
  walks of the monitored value and every argument (mode, patience, cooldown, min_delta, factor,
  min_lr); and replaying the losses of a real ``Sequential.fit`` through Keras' callback.
- ``keras.callbacks.LambdaCallback`` inside ``keras.Sequential.fit``: the sequence of hooks and
  their epoch/batch arguments equals the one ``Sequential.fit`` produces with lstmkit's.
- ``keras.callbacks.CSVLogger`` driven with the same hook calls and logs: the files are
  byte-identical (header, epoch numbering, ``NA``, ``val_`` columns, separators, appending,
  array values); and a CSV written by ``Sequential.fit`` holds exactly ``History``'s numbers.
"""

from __future__ import annotations

import csv
import os
import types
import warnings

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest

from lstmkit.callbacks import CallbackList, CSVLogger, LambdaCallback, ReduceLROnPlateau
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential
from lstmkit.optimizers import SGD, ExponentialDecay

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"
# Keras reads its float32 variables with np.array(variable, copy=False), the numpy-1 way
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# -- ReduceLROnPlateau ---------------------------------------------------------------------------
def _replay(callback, model, logs_seq):
    """Drive a callback through on_train_begin / on_epoch_end; the rate after each epoch and
    the logs as the callback left them."""
    callback.set_model(model)
    callback.on_train_begin({})
    rates, logged = [], []
    for epoch, logs in enumerate(logs_seq):
        logs = dict(logs)
        callback.on_epoch_end(epoch, logs)
        rates.append(float(model.optimizer.learning_rate))
        logged.append(logs.get("learning_rate"))
    return rates, logged


def _both(kwargs, logs_seq, lr=0.1):
    ours = _replay(ReduceLROnPlateau(**kwargs), types.SimpleNamespace(optimizer=SGD(lr)), logs_seq)
    keras_kwargs = dict(kwargs)
    if "accuracy" in kwargs.get("monitor", "") and kwargs.get("mode", "auto") == "auto":
        # Keras' auto mode reads the direction from the model's compiled metric objects (a
        # fake model has none); lstmkit's from the name. Both mean "max" for accuracy.
        keras_kwargs["mode"] = "max"
    theirs = _replay(
        keras.callbacks.ReduceLROnPlateau(**keras_kwargs),
        types.SimpleNamespace(optimizer=keras.optimizers.SGD(lr)),
        logs_seq,
    )
    return ours, theirs


def _walk(rng, n, mode):
    """A monitored value that improves, stalls and regresses, with small moves below min_delta."""
    steps = rng.choice([-0.3, -1e-5, 0.0, 1e-5, 0.2], size=n, p=[0.25, 0.15, 0.3, 0.1, 0.2])
    values = 5 + np.cumsum(steps if mode != "max" else -steps)
    return [float(v) for v in values]


ARGS = [
    {},  # Keras defaults: val_loss, factor 0.1, patience 10, min_delta 1e-4
    {"patience": 2},
    {"patience": 1, "cooldown": 2, "factor": 0.5},
    {"patience": 0, "min_delta": 0.0, "factor": 0.5, "min_lr": 0.01},
    {"patience": 3, "min_delta": 0.25, "cooldown": 1, "factor": 0.2, "min_lr": 1e-3},
    {"monitor": "val_accuracy", "mode": "max", "patience": 2, "cooldown": 1},
    {"monitor": "val_accuracy", "patience": 1, "factor": 0.3},  # auto -> max, from the name
    {"monitor": "loss", "mode": "min", "patience": 1, "min_lr": 0.05},
]


@pytest.mark.parametrize("kwargs", ARGS)
@pytest.mark.parametrize("seed", range(6))
def test_reduce_lr_on_plateau_equals_keras(kwargs, seed):
    rng = np.random.default_rng(seed)
    key = kwargs.get("monitor", "val_loss")
    mode = "max" if "accuracy" in key else "min"
    values = _walk(rng, 40, mode)
    logs_seq = [{"loss": v + 0.1, key: v} for v in values]
    (ours_lr, ours_logged), (their_lr, their_logged) = _both(kwargs, logs_seq)
    np.testing.assert_allclose(ours_lr, their_lr, rtol=1e-6)
    np.testing.assert_allclose(ours_logged, their_logged, rtol=1e-6)
    if seed == 0 and kwargs.get("patience", 10) < 10:  # the walks do trigger reductions
        assert min(ours_lr) < 0.1


def test_a_missing_monitor_warns_and_changes_nothing():
    logs_seq = [{"loss": 1.0}] * 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (ours_lr, ours_logged), (their_lr, _) = _both({"patience": 0}, logs_seq)
    messages = [str(w.message) for w in caught]
    assert sum("monitor 'val_loss' is not in the logs" in m for m in messages) == 5
    assert sum("conditioned on metric `val_loss`" in m for m in messages) == 5  # Keras too
    assert ours_lr == [0.1] * 5 and ours_logged == [0.1] * 5
    np.testing.assert_allclose(their_lr, ours_lr, rtol=1e-6)


def test_reduce_lr_on_plateau_argument_errors():
    with pytest.raises(ValueError, match=r"'factor' must be in \[0, 1\); got 1.0"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="'patience' must be an int >= 0; got -1"):
        ReduceLROnPlateau(patience=-1)
    with pytest.raises(ValueError, match="'min_lr' must be a number >= 0"):
        ReduceLROnPlateau(min_lr=-1)
    with pytest.raises(ValueError, match="cannot tell whether monitor='val_bleu'"):
        ReduceLROnPlateau(monitor="val_bleu")
    scheduled = types.SimpleNamespace(optimizer=SGD(ExponentialDecay(0.1, 10, 0.5)))
    callback = ReduceLROnPlateau()
    callback.set_model(scheduled)
    with pytest.raises(ValueError, match="is a ExponentialDecay schedule, which it cannot change"):
        callback.on_train_begin({})


def _data(seed=0, n=24):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 3)).astype(np.float32)
    return x, (x[:, -1, :1] * 0.5 + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)


def _model(optimizer="sgd"):
    model = Sequential([LSTM(4, input_shape=(5, 3)), Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"], seed=1)
    model.build()
    model.set_weights(
        [np.random.default_rng(2).normal(scale=0.5, size=w.shape) for w in model.get_weights()]
    )
    return model


def test_fit_with_reduce_lr_on_plateau_follows_keras_on_the_same_losses():
    x, y = _data()
    model = _model(SGD(learning_rate=0.5))  # too large: the loss stalls and bounces
    seen = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    rlr = ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=0.0)
    model.fit(x, y, epochs=12, batch_size=8, verbose=0, callbacks=[rlr, record])
    assert seen[0]["learning_rate"] == 0.5
    losses = [{"loss": s["loss"]} for s in seen]
    keras_model = types.SimpleNamespace(optimizer=keras.optimizers.SGD(0.5))
    keras_cb = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", patience=1, factor=0.5, min_delta=0.0
    )
    their_rates, their_logged = _replay(keras_cb, keras_model, losses)
    np.testing.assert_allclose([s["learning_rate"] for s in seen], their_logged, rtol=1e-6)
    np.testing.assert_allclose(model.optimizer.learning_rate, their_rates[-1], rtol=1e-6)
    assert model.optimizer.learning_rate < 0.5  # it did reduce


# -- LambdaCallback ------------------------------------------------------------------------------
def _recorder(events, batch_names):
    begin, end = batch_names
    return {
        "on_train_begin": lambda logs: events.append(("train_begin",)),
        "on_epoch_begin": lambda epoch, logs: events.append(("epoch_begin", epoch)),
        begin: lambda batch, logs: events.append(("batch_begin", batch)),
        end: lambda batch, logs: events.append(("batch_end", batch, sorted(logs))),
        "on_epoch_end": lambda epoch, logs: events.append(("epoch_end", epoch, sorted(logs))),
        "on_train_end": lambda logs: events.append(("train_end",)),
    }


@pytest.mark.parametrize(
    "batch_names",
    [("on_train_batch_begin", "on_train_batch_end"), ("on_batch_begin", "on_batch_end")],
)
def test_lambda_callback_hooks_arrive_in_keras_order(batch_names):
    x, y = _data(n=10)
    theirs = []
    k_model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    k_model.compile("sgd", "mse", metrics=["mae"])
    k_model.fit(
        x,
        y,
        epochs=2,
        batch_size=4,
        verbose=0,
        validation_split=0.2,
        callbacks=[keras.callbacks.LambdaCallback(**_recorder(theirs, batch_names))],
    )
    ours = []
    _model().fit(
        x,
        y,
        epochs=2,
        batch_size=4,
        verbose=0,
        validation_split=0.2,
        callbacks=[LambdaCallback(**_recorder(ours, batch_names))],
    )
    assert ours == theirs
    assert ("epoch_end", 1, ["loss", "mae", "val_loss", "val_mae"]) in ours  # not vacuous


def test_lambda_callback_errors_name_the_hook():
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_finish'"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(ValueError, match="argument 'on_epoch_end' must be callable; got 3"):
        LambdaCallback(on_epoch_end=3)
    with pytest.raises(ValueError, match="'on_batch_end' given twice"):
        LambdaCallback(on_train_batch_end=print, on_batch_end=print)
    calls = []
    cb = LambdaCallback(on_train_end=lambda logs: calls.append(logs))
    CallbackList([cb]).on_train_end({"x": 1})
    cb.on_epoch_end(0, {})  # hooks not given stay no-ops
    assert calls == [{"x": 1}]


# -- CSVLogger -----------------------------------------------------------------------------------
LOG_CASES = {
    "validation": [
        {"loss": 0.5, "mae": 0.25, "val_loss": 0.75, "val_mae": 0.125},
        {"loss": 0.4, "mae": 0.2, "val_loss": 0.7, "val_mae": 0.1},
    ],
    "no_validation": [{"loss": 1 / 3, "mae": 0.1}, {"loss": 0.3, "mae": 0.09}],
    "missing_later": [{"loss": 0.5, "val_loss": 0.6, "learning_rate": 0.01}, {"loss": 0.4}],
    "arrays": [
        {"loss": np.float64(0.5), "f1_per_class": np.array([0.5, 0.25])},
        {"loss": np.float32(0.25), "f1_per_class": [0.75, 1.0], "note": "a,b"},
    ],
    "empty_first": [{}, {"loss": 0.5}],
}


def _write(callback, logs_seq, runs=1):
    for _ in range(runs):
        callback.on_train_begin({})
        for epoch, logs in enumerate(logs_seq):
            callback.on_epoch_end(epoch, dict(logs))
        callback.on_train_end({})


@pytest.mark.parametrize("case", sorted(LOG_CASES))
@pytest.mark.parametrize("separator", [",", ";"])
@pytest.mark.parametrize("append", [False, True])
@pytest.mark.parametrize("existing", [None, "", "epoch,loss\r\n0,9.0\r\n", "\nold\r\n"])
def test_csv_file_is_byte_identical_to_keras(case, separator, append, existing, tmp_path):
    paths = {"ours": tmp_path / "ours.csv", "keras": tmp_path / "keras.csv"}
    for path in paths.values():
        if existing is not None:
            path.write_bytes(existing.encode())
    _write(CSVLogger(paths["ours"], separator=separator, append=append), LOG_CASES[case], runs=2)
    _write(
        keras.callbacks.CSVLogger(str(paths["keras"]), separator=separator, append=append),
        LOG_CASES[case],
        runs=2,
    )
    assert paths["ours"].read_bytes() == paths["keras"].read_bytes()
    assert paths["ours"].read_bytes().count(b"\r\n") >= 3


def test_csv_written_by_fit_holds_the_history(tmp_path):
    x, y = _data()
    path = tmp_path / "log" / "train.csv"  # a missing directory is created
    history = _model().fit(
        x, y, epochs=3, batch_size=8, verbose=0, validation_split=0.25, callbacks=[CSVLogger(path)]
    )
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]  # 0-based, as Keras
    for j, key in enumerate(rows[0][1:], start=1):
        assert [float(r[j]) for r in rows[1:]] == history.history[key]  # repr round-trips


def test_an_existing_log_is_replaced_only_by_a_complete_one(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("previous run\n")
    logger = CSVLogger(path)
    logger.on_train_begin({})  # Keras truncates here; the old log survives until a new row
    assert path.read_text() == "previous run\n"
    logger.on_epoch_end(0, {"loss": 0.5})
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,0.5,NA"]
    assert sorted(os.listdir(tmp_path)) == ["train.csv"]  # no temporary file left behind
    with pytest.raises(ValueError, match="'separator' must be one character; got ';;'"):
        CSVLogger(path, separator=";;")


def test_no_reduction_is_reported_once_the_rate_is_at_min_lr(capsys):
    """0.1 * 0.1 is 0.010000000000000002 in float64, not above min_lr=0.01 for Keras' float32
    variable: no further 'reduction' (and no cooldown restart) once there."""
    logs_seq = [{"val_loss": 1.0}] * 6
    kwargs = {"patience": 0, "factor": 0.1, "min_lr": 0.01, "verbose": 1}
    (ours_lr, _), (their_lr, _) = _both(kwargs, logs_seq)
    captured = capsys.readouterr()
    np.testing.assert_allclose(ours_lr, their_lr, rtol=1e-6)
    assert captured.err.count("ReduceLROnPlateau reducing") == 1
    assert captured.out.count("ReduceLROnPlateau reducing") == 1  # Keras prints to stdout
