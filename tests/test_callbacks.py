"""Callbacks driven by a tiny fake model through the trainer's hook sequence.

Witnesses: the cases of Keras 3's own ``keras/src/callbacks/early_stopping_test.py`` (loss
sequences with the stopping epoch and restored weights Keras asserts), the ``EarlyStopping``
docstring example (a loss that never improves with ``patience=3`` runs 4 epochs), and Keras'
``ModelCheckpoint`` contract (``filepath.format(epoch=epoch + 1, **logs)``, save only on strict
improvement) checked against file names written out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
)
from lstmkit.optimizers import SGD


class FakeModel:
    """The model protocol callbacks use; its weights record the epoch that produced them."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.full(2, -1.0)]
        self.saved = []
        self.optimizer = SGD(learning_rate=0.1)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path):
        self.saved.append(path)
        with open(path, "w") as f:
            f.write("model")

    @property
    def epoch_of_weights(self):
        return int(self.weights[0][0])


def fit(callbacks, monitored, key="val_loss", model=None, steps=3):
    """The trainer's hook order; returns (model, epochs run)."""
    model = model or FakeModel()
    cbs = CallbackList(callbacks, model=model, params={"epochs": len(monitored), "steps": steps})
    cbs.on_train_begin()
    run = 0
    for epoch, value in enumerate(monitored):
        cbs.on_epoch_begin(epoch)
        model.weights = [np.full(2, float(epoch))]
        for b in range(steps):
            cbs.on_batch_begin(b)
            cbs.on_batch_end(b, {"loss": 1.0 / (b + 1)})
        run += 1
        cbs.on_epoch_end(epoch, {"loss": 0.5, key: value})
        if model.stop_training:
            break
    cbs.on_train_end()
    return model, run


# ---------------------------------------------------------------------------------- EarlyStopping


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_early_stopping_patience_keras_case(patience):
    # keras early_stopping_test.test_early_stopping_patience: stopped_epoch == max(patience, 1) + 2
    stopper = EarlyStopping(monitor="loss", patience=patience)
    fit([stopper], [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5], key="loss")
    assert stopper.stopped_epoch == max(patience, 1) + 2


def test_early_stopping_docstring_example_runs_four_epochs():
    history = History()
    fit([history, EarlyStopping(monitor="loss", patience=3)], [1, 2, 3, 4, 5, 6, 7], key="loss")
    assert len(history.history["loss"]) == 4


def test_early_stopping_restores_best_weights_keras_cases():
    # keras ...test_early_stopping_final_weights_when_restoring_model_weights
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model, _ = fit([stopper], [0.2, 0.15, 0.1, 0.11, 0.12])
    assert model.epoch_of_weights == 2
    # no epoch beats the baseline: patience epochs run, the best of them is restored
    stopper = EarlyStopping(patience=5, baseline=0.5, restore_best_weights=True)
    model, run = fit([stopper], [0.9, 0.8, 0.7, 0.71, 0.72, 0.73])
    assert (run, model.epoch_of_weights) == (5, 2)


def test_early_stopping_restores_even_without_stopping_and_not_when_disabled():
    model, run = fit([EarlyStopping(patience=10, restore_best_weights=True)], [3, 1, 2, 2.5])
    assert (run, model.epoch_of_weights) == (4, 1)
    model, run = fit([EarlyStopping(patience=1)], [3, 1, 2, 2.5])
    assert (run, model.epoch_of_weights) == (3, 2)  # stopped at epoch 2, weights left as they are


def test_early_stopping_min_delta_mode_and_start_from_epoch():
    # improvements smaller than min_delta do not count: best stays 1.0 from epoch 0
    stopper = EarlyStopping(min_delta=0.1, patience=2)
    fit([stopper], [1.0, 0.95, 0.92, 0.5])
    assert stopper.stopped_epoch == 2 and stopper.best == 1.0
    # accuracy is maximised in mode="auto"
    stopper = EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    model, _ = fit([stopper], [0.5, 0.7, 0.6, 0.65], key="val_accuracy")
    assert stopper.stopped_epoch == 2 and model.epoch_of_weights == 1
    # epochs before start_from_epoch are not monitored at all
    stopper = EarlyStopping(patience=0, start_from_epoch=3)
    _, run = fit([stopper], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert run == 5 and stopper.best_epoch == 3


def test_early_stopping_instance_is_reusable():
    stopper = EarlyStopping(patience=1)
    fit([stopper], [0.1, 0.2, 0.3])
    _, run = fit([stopper], [5.0, 4.0, 3.0, 2.0])  # a stale best of 0.1 would stop at once
    assert run == 4


def test_early_stopping_errors_and_missing_monitor():
    with pytest.raises(ValueError, match=r"argument 'mode' must be 'auto', 'min' or 'max'; got"):
        EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="cannot tell whether monitor='val_hinge'.*mode='min'"):
        EarlyStopping(monitor="val_hinge")
    with pytest.raises(ValueError, match="'patience' must be an int >= 0; got -1"):
        EarlyStopping(patience=-1)
    with pytest.warns(UserWarning, match="monitor 'val_loss' is not in the logs"):
        _, run = fit([EarlyStopping()], [1, 2, 3], key="other")
    assert run == 3


# -------------------------------------------------------------------------------- ModelCheckpoint


def test_model_checkpoint_best_only_formats_one_based_epochs(tmp_path):
    path = str(tmp_path / "ckpt" / "model-{epoch:02d}-{val_loss:.2f}.lstmkit")
    cb = ModelCheckpoint(path, save_best_only=True)
    model, _ = fit([cb], [0.5, 0.4, 0.45, 0.4, 0.3])  # 0.4 again is not an improvement
    names = [p.rsplit("/", 1)[-1] for p in model.saved]
    assert names == ["model-01-0.50.lstmkit", "model-02-0.40.lstmkit", "model-05-0.30.lstmkit"]
    assert cb.best == 0.3 and cb.last_saved == model.saved[-1]
    assert (tmp_path / "ckpt" / "model-05-0.30.lstmkit").exists()  # directory was created


def test_model_checkpoint_every_epoch_and_max_mode(tmp_path):
    model, _ = fit([ModelCheckpoint(str(tmp_path / "e{epoch}"))], [3, 2, 1])
    assert [p.rsplit("/", 1)[-1] for p in model.saved] == ["e1", "e2", "e3"]
    cb = ModelCheckpoint(str(tmp_path / "a{epoch}"), monitor="val_acc", save_best_only=True)
    model, _ = fit([cb], [0.5, 0.4, 0.6], key="val_acc")
    assert [p.rsplit("/", 1)[-1] for p in model.saved] == ["a1", "a3"]


def test_model_checkpoint_bad_placeholder(tmp_path):
    with pytest.raises(ValueError, match=r"'filepath' .* uses 'val_f1'.*logs have \['loss'"):
        fit([ModelCheckpoint(str(tmp_path / "{val_f1}"))], [1.0])


# ------------------------------------------------------------------ History, list, progress, lr


def test_history_and_callback_list_dispatch_in_order():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append(("train_begin", self.params["epochs"], self.model is not None))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("batch_end", batch))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch))

        def on_train_end(self, logs=None):
            calls.append(("train_end",))

    history = History()
    model, _ = fit([history, Recorder()], [0.3, 0.2], steps=2)
    assert calls == [
        ("train_begin", 2, True),
        ("epoch_begin", 0),
        ("batch_end", 0),
        ("batch_end", 1),
        ("epoch_end", 0),
        ("epoch_begin", 1),
        ("batch_end", 0),
        ("batch_end", 1),
        ("epoch_end", 1),
        ("train_end",),
    ]
    assert history.epoch == [0, 1]
    assert history.history == {"loss": [0.5, 0.5], "val_loss": [0.3, 0.2]}
    assert model.history is history
    with pytest.raises(TypeError, match="must hold Callback instances; got int"):
        CallbackList([1])


def test_progress_bar_writes_to_stderr_only_when_verbose(capsys):
    fit([ProgressBar(verbose=0)], [0.3, 0.2])
    assert capsys.readouterr() == ("", "")
    fit([ProgressBar(verbose=1)], [0.3, 0.2])
    out, err = capsys.readouterr()
    assert out == ""
    # captured stderr is no terminal: one plain line per epoch (tests/test_progress.py has more)
    assert err.splitlines()[0].startswith("Epoch 1/2 - 3/3 - ")
    assert err.splitlines()[1].endswith(" - val_loss: 0.2000") and len(err.splitlines()) == 2


def test_learning_rate_scheduler_sets_optimizer_rate_and_logs_it():
    history = History()
    model, _ = fit([LearningRateScheduler(lambda epoch, lr: lr * 0.5), history], [3, 2, 1])
    assert history.history["learning_rate"] == [0.05, 0.025, 0.0125]
    assert model.optimizer.learning_rate == 0.0125
    model, _ = fit([LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1))], [3, 2])
    assert model.optimizer.learning_rate == 0.5
    with pytest.raises(TypeError, match="'schedule' must return a float; got 'x'"):
        fit([LearningRateScheduler(lambda epoch: "x")], [1])
