"""``fit`` checks and casts ``validation_data`` once, before the first epoch, and evaluates the
checked arrays at every epoch's end. Witness: ``evaluate`` on the raw validation data with the
weights of that epoch's end, for data that needs a cast (float64 lists into a float32 model) and
a mask; a bad ``validation_data`` still raises evaluate's error."""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit
from lstmkit.callbacks import Callback
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential


class EndWeights(Callback):
    def on_train_begin(self, logs=None):
        self.end = []

    def on_epoch_end(self, epoch, logs=None):
        self.end.append(self.model.get_weights())


def _model():
    lstmkit.set_random_seed(3)
    model = Sequential([LSTM(5, return_sequences=True, input_shape=(6, 3)), Dense(2)])
    model.compile(optimizer="adam", loss="mse", seed=1)
    return model


def test_val_loss_is_evaluate_on_the_raw_validation_data_at_each_epoch_end():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 6, 3)).astype(np.float32), rng.normal(size=(12, 6, 2))
    vx, vy = rng.normal(size=(7, 6, 3)).tolist(), rng.normal(size=(7, 6, 2))  # float64, a list
    vm = np.ones((7, 6), bool)
    vm[:, 4:] = False
    model, rec = _model(), EndWeights()
    history = model.fit(x, y, epochs=3, batch_size=4, validation_data=(vx, vy, vm),
                        callbacks=[rec], verbose=0)  # fmt: skip
    twin = _model()
    for epoch in range(3):
        twin.set_weights(rec.end[epoch])
        want = twin.evaluate(vx, vy, mask=vm)
        # (float32 sums in another order: within a few ulp, as before this change)
        assert history.history["val_loss"][epoch] == pytest.approx(want, rel=1e-6), epoch


def test_bad_validation_data_raises_evaluate_error_before_training():
    model = _model()
    x, y = np.ones((4, 6, 3), np.float32), np.ones((4, 6, 2), np.float32)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(
        ValueError, match=r"argument .x. must have shape \(batch, 6, 3\); got \(2, 6, 4\)"
    ):
        model.fit(x, y, epochs=1, validation_data=(np.zeros((2, 6, 4)), np.zeros((2, 6, 2))),
                  verbose=0)  # fmt: skip
    with pytest.raises(ValueError, match=r"evaluate: argument 'mask' must have shape"):
        model.fit(x, y, epochs=1, verbose=0,
                  validation_data=(x, y, np.ones((4, 5), bool)))  # fmt: skip
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)  # nothing trained before the error
