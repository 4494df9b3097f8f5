"""A diverged training never replaces a good model (issue 17).

- ``TerminateOnNaN`` against Keras 3's own callback on the same data layout: the sequence of
  hooks (which batches ran, which epoch ended, the end of training) must be the same.
- ``save_model`` refuses NaN/Inf weights or optimizer state, naming the first bad tensor; the
  file on disk stays byte-identical (bytes, mtime, inode) and no temporary file is left.
- ``ModelCheckpoint`` warns and skips such a save instead of ending the training.
- Every training command of the CLI stops at the first non-finite loss, says so in one line,
  exits with status 2 and leaves the previous model file as it was.
"""

from __future__ import annotations

import csv
import json
import os
import warnings

import numpy as np
import pytest

from lstmkit.callbacks import Callback, ModelCheckpoint, TerminateOnNaN, TrainingDivergedError
from lstmkit.cli import main
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential
from lstmkit.saving import NonFiniteWeightsError

# 40 samples in batches of 8; sample 27 (batch 3) has a target whose squared error overflows
# float32 to inf in both frameworks, so the loss of batch 3 is the first non-finite one
N, T, D, BATCH, BAD = 40, 3, 2, 8, 27


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, T, D)).astype(np.float32)
    y = rng.normal(size=(N, 1)).astype(np.float32)
    y[BAD] = 3e19
    return x, y


def _lstmkit_model():
    m = Sequential([LSTM(4, input_shape=(T, D)), Dense(1)])
    m.compile("sgd", "mse", seed=0)
    return m


def _last_bias(model):
    return [k for k in model.params if k.endswith(".bias")][-1]


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events, self.epoch = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch", self.epoch, batch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def _keras_events():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras  # a test extra: missing, the test fails

    class KerasRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events, self.epoch = [], None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            self.events.append(("batch", self.epoch, batch))

        def on_epoch_end(self, epoch, logs=None):
            self.events.append(("epoch_end", epoch))

        def on_train_end(self, logs=None):
            self.events.append(("train_end",))

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    rec = KerasRecorder()
    x, y = _data()
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
              callbacks=[rec, keras.callbacks.TerminateOnNaN()])  # fmt: skip
    return rec.events, bool(model.stop_training)


def test_terminate_on_nan_runs_the_hooks_keras_runs(capsys):
    keras_events, keras_stop = _keras_events()
    capsys.readouterr()
    model, rec, nan = _lstmkit_model(), Recorder(), TerminateOnNaN()
    x, y = _data()
    with np.errstate(over="ignore", invalid="ignore"):  # the planted overflow
        history = model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                            callbacks=[rec, nan])  # fmt: skip
    assert rec.events == keras_events  # batches 0..3 of epoch 0, its end, the end of training
    assert keras_events[:5] == [("batch", 0, b) for b in range(4)] + [("epoch_end", 0)]
    assert model.stop_training is keras_stop is True
    assert np.isinf(history.history["loss"][0])
    assert nan.stopped[:2] == (0, BAD // BATCH)
    out = capsys.readouterr().out  # Keras: "Batch 3: Invalid loss, terminating training"
    assert out.strip() == "Epoch 1, batch 3: the loss became inf, terminating training"


def test_terminate_on_nan_raise_error_and_weight_check():
    model = _lstmkit_model()
    x, y = _data()
    with pytest.raises(TrainingDivergedError, match=r"training diverged: the loss became inf at "
                       r"epoch 1, batch 3") as e, np.errstate(over="ignore"):  # fmt: skip
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                  callbacks=[TerminateOnNaN(raise_error=True)])  # fmt: skip
    assert isinstance(e.value, RuntimeError) and isinstance(e.value, ValueError)

    class Poison(Callback):  # a weight turns NaN after batch 1 while its loss was finite
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.params[_last_bias(self.model)][0] = np.nan

    model, rec = _lstmkit_model(), Recorder()
    y = np.random.default_rng(1).normal(size=(N, 1)).astype(np.float32)
    nan = TerminateOnNaN(check_weights=True)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[Poison(), rec, nan])  # fmt: skip
    assert rec.events == [("batch", 0, 0), ("batch", 0, 1), ("epoch_end", 0), ("train_end",)]
    assert nan.stopped == (0, 1, f"parameter '{_last_bias(model)}' became NaN or Inf")


# -- save_model -------------------------------------------------------------------------------
def _state(path):
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_save_refuses_non_finite_weights_and_keeps_the_file(tmp_path, bad):
    model = _lstmkit_model()
    path = tmp_path / "m.lstmkit"
    model.save(path)
    before = _state(path)
    names = list(model.params)
    model.params[names[1]][0, 0] = bad  # the first bad one in parameter order ...
    model.params[names[-1]][0] = bad  # ... and a later one
    with pytest.raises(NonFiniteWeightsError) as e:
        model.save(path)
    assert isinstance(e.value, ValueError)
    msg = str(e.value)
    assert msg.startswith(f"save_model: training diverged: parameter '{names[1]}' has 1 NaN")
    assert f"refusing to write {str(path)!r}; the existing file is left as it was" in msg
    assert _state(path) == before
    assert os.listdir(tmp_path) == ["m.lstmkit"]  # no temporary file either
    with pytest.raises(NonFiniteWeightsError):  # save_weights goes through save_model too
        model.save_weights(tmp_path / "w.lstmkit")
    assert os.listdir(tmp_path) == ["m.lstmkit"]


def test_save_refuses_a_non_finite_optimizer_state(tmp_path):
    model = _lstmkit_model()
    model.compile("adam", "mse", seed=0)
    x, _ = _data()
    model.fit(x[:8], np.zeros((8, 1), np.float32), epochs=1, verbose=0)
    state = model.optimizer.get_state()
    slot = next(k for k in state if k != "iterations")
    state[slot] = np.full_like(state[slot], np.inf)
    model.optimizer.set_state(state)
    path = tmp_path / "m.lstmkit"
    with pytest.raises(NonFiniteWeightsError, match=f"optimizer state 'optimizer/{slot}'"):
        model.save(path)
    assert not path.exists()
    model.save(path, include_optimizer=False)  # the weights alone are fine


def test_model_checkpoint_warns_and_skips_a_diverged_epoch(tmp_path):
    path = tmp_path / "ckpt.lstmkit"

    class PoisonAtEnd(Callback):  # the last epoch leaves a NaN weight behind
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.params[_last_bias(self.model)][0] = np.nan

    class Snapshot(Callback):  # the file as the first epoch's checkpoint wrote it
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.saved = _state(path)

    model, snap = _lstmkit_model(), Snapshot()
    x, y = _data()
    y = np.zeros_like(y)
    bias = _last_bias(model)
    with pytest.warns(UserWarning, match=r"ModelCheckpoint: epoch 2 not saved: save_model: "
                      rf"training diverged: parameter '{bias}'"):  # fmt: skip
        history = model.fit(x, y, epochs=2, verbose=0,
                            callbacks=[snap, PoisonAtEnd(), ModelCheckpoint(path, monitor="loss")])  # fmt: skip
    assert len(history.history["loss"]) == 2  # the training was not ended by the checkpoint
    assert _state(path) == snap.saved
    assert os.listdir(tmp_path) == ["ckpt.lstmkit"]


# -- the CLI --------------------------------------------------------------------------------------
def _series_csv(path, n=120):
    t = np.arange(n)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["month", "y"])
        w.writerows((i, repr(float(20 + 8 * np.sin(2 * np.pi * i / 12)))) for i in t)
    return path


def _labelled_csv(path, n=60):
    words = {"pos": "good great nice", "neg": "bad awful poor", "mid": "meh okay fine"}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = list(words)[i % 3]
            w.writerow([f"{words[label]} x{i}", label])
    return path


@pytest.fixture
def previous(tmp_path):
    """A good model file that a diverged run must leave alone."""
    model = _lstmkit_model()
    model.save(tmp_path / "previous.lstmkit")
    return tmp_path / "previous.lstmkit"


def _diverges(capsys, argv, previous):
    before = _state(previous)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # what a terminal would show, pytest or not
        assert main(argv) == 2
    assert [str(w.message) for w in caught] == []  # no NumPy overflow warnings either
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err  # not a screenful of NumPy overflow warnings
    assert "error: training diverged: " in lines[0] and " at epoch 1, batch " in lines[0], lines
    assert "(try a smaller learning rate)" in lines[0]
    assert "saved" not in captured.out and "wrote" not in captured.out
    assert _state(previous) == before
    return lines[0]


def test_forecast_train_stops_at_the_first_nan_loss(tmp_path, previous, capsys):
    data = _series_csv(tmp_path / "s.csv")
    argv = [
        "forecast",
        "train",
        str(data),
        "--column",
        "y",
        "--lookback",
        "12",
        "--horizon",
        "4",
        "--engine",
        "single",
    ]
    argv += ["--units", "4", "--epochs", "300", "--patience", "300", "--transform", "none"]
    line = _diverges(capsys, [*argv, "--learning-rate", "1e30", "--out", str(previous)], previous)
    assert line.startswith("lstmkit forecast: error: training diverged: the loss became inf")


def test_forecast_train_global_stops_at_the_first_nan_loss(tmp_path, previous, capsys):
    # the demo's settings cannot diverge any more (ForecastConfig refuses a learning rate >= 10):
    # the global engine is driven to an inf loss by its data instead. Without a transform, a
    # window of 1e-30 inputs has the level 1e-30 and targets of 1e30, 1e60 levels: inf in float32
    data = tmp_path / "huge.csv"
    with open(data, "w") as f:
        f.write("unique_id,ds,y\n")
        for sid in "AB":
            f.writelines(
                f"{sid},{1950 + i},{1e-30 if (i // 5) % 2 == 0 else 1e30!r}\n" for i in range(30)
            )
    # --no-rescale: the default rescale divides the network's values by their RMS, which keeps
    # even these windows finite (the run then trains); without it they overflow as before
    argv = [
        "forecast",
        "train",
        str(data),
        "--transform",
        "none",
        "--ensemble",
        "1",
        "--no-rescale",
    ]
    line = _diverges(capsys, [*argv, "--epochs", "3", "--out", str(previous)], previous)
    assert line.startswith("lstmkit forecast: error: training diverged: the loss became inf")


def test_text_train_stops_at_the_first_nan_loss(tmp_path, previous, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    argv = ["text", "train", str(corpus), "--lr", "1e38", "--epochs", "3", "--units", "8"]
    argv += ["--embed-dim", "4", "--batch-size", "4", "--seq-len", "10", "--quiet"]
    argv += ["--checkpoint-dir", str(tmp_path / "ckpt")]
    _diverges(capsys, [*argv, "--out", str(previous)], previous)
    assert not (tmp_path / "ckpt").exists()


def test_classify_train_stops_at_the_first_nan_loss(tmp_path, previous, capsys):
    data = _labelled_csv(tmp_path / "l.csv")
    argv = ["classify", "train", str(data), "--lr", "1e38", "--dropout", "0", "--epochs", "3"]
    argv += ["--units", "4", "--embed-dim", "4", "--min-freq", "1"]
    _diverges(capsys, [*argv, "--out", str(previous)], previous)


def test_lab_stops_at_the_first_nan_loss(tmp_path, capsys):
    argv = ["lab", "adding", "--lr", "1e38", "--length", "12", "--budget", "32000"]
    argv += ["--check-every", "320", "--test-size", "64", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0  # a diverged run is a result of the experiment, recorded as such
    out = capsys.readouterr().out
    assert "stopped: training diverged (NaN or Inf loss) after " in out, out
    [result] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert result["diverged"] is True
    assert result["sequences"] < 320 and result["curve"] == []  # before the first check


@pytest.mark.parametrize("join_max", [1 << 16, 0], ids=["joined", "one-by-one"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(-1,), (-1, 1)])
def test_the_weight_check_names_the_first_non_finite_parameter_in_order(
    bad, where, join_max, monkeypatch
):
    """Parameters poisoned after batch 0 (the very last value alone; then also the first value
    of the second parameter, set after the later one): the check (one pass over the parameters
    joined, then one by one for the name) names the earliest in ``model.params`` order, as the
    one-by-one loop did; a finite run is not stopped. ``join_max`` 0: a model too big to join
    (``callbacks.JOIN_MAX``) is checked one by one."""
    from lstmkit import callbacks

    monkeypatch.setattr(callbacks, "JOIN_MAX", join_max)
    model, rec = _lstmkit_model(), Recorder()
    x, _ = _data()
    y = np.random.default_rng(1).normal(size=(N, 1)).astype(np.float32)
    names = list(model.params)

    class Poison(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 0:
                for i in where:
                    self.model.params[names[i]].flat[-1 if i == -1 else 0] = bad

    nan = TerminateOnNaN(check_weights=True)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[Poison(), rec, nan])  # fmt: skip
    assert nan.stopped == (0, 0, f"parameter '{names[where[-1]]}' became NaN or Inf")
    clean = TerminateOnNaN(check_weights=True)
    _lstmkit_model().fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[clean])
    assert clean.stopped is None
