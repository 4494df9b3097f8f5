"""The global forecaster's network, its loss and its training schedule (one member's fit).

``build_network`` is the functional model of ``forecast_global`` (series -> LSTM, + the
horizon's known inputs, + a series-id embedding, -> Dense quantile paths); ``pinball_loss`` its
loss; ``_train`` one early-stopped fit (epochs of at most ``epoch_windows`` random windows,
patience of at least ``patience_steps`` gradient steps, a time budget, a NaN stop) and
``_refit`` the optional second fit on every window.
"""

from __future__ import annotations

import math
import time

import numpy as np


def build_network(facts, config, L, n_inputs, n_ahead, n_ids):
    """The functional model: ``series -> LSTM`` (+ ``ahead``, + id ``Embedding``) ``-> Dense``."""
    from ..graph import Input
    from ..layers import LSTM, Concatenate, Dense, Embedding, Flatten
    from ..models import Model

    H, Q = facts["horizon"], len(facts["quantiles"])
    series = Input(shape=(L, n_inputs), name="series")
    h, ins = series, {"series": series}
    for _ in range(config.layers - 1):
        h = LSTM(config.units, return_sequences=True)(h)
    parts = [LSTM(config.units)(h)]
    if n_ahead:
        ins["ahead"] = Input(shape=(n_ahead,), name="ahead")
        parts.append(ins["ahead"])
    if config.embedding:
        ins["id"] = Input(shape=(1,), name="id")
        parts.append(Flatten()(Embedding(n_ids + 1, config.embedding)(ins["id"])))
    h = Concatenate()(parts) if len(parts) > 1 else parts[0]
    h = Dense(config.units, activation="relu")(h)
    return Model(ins, Dense(Q * H)(h), name="global_forecaster")


def pinball_loss(quantiles, H):
    """Mean pinball loss over ``Q * H`` outputs (quantile ``j`` in columns ``j*H .. j*H+H-1``)."""
    from ..losses import LossFunctionWrapper

    tau = np.repeat(np.asarray(quantiles, np.float64), H)  # (Q*H,)
    below, neg, above = tau - 1, -tau, 1 - tau  # (the same values at every step: made once)
    # -tau and 1 - tau rounded to each float type once: np.where then picks in the gradient's
    # type (the values that float64's where and astype gave, one pass and temporary fewer)
    slopes = {}

    def fn(y_true, y_pred):
        d = y_true - y_pred
        return np.maximum(tau * d, below * d)

    def grad(y_true, y_pred):
        d = y_true - y_pred
        dt = y_pred.dtype
        pair = slopes.get(dt)
        if pair is None:
            pair = slopes[dt] = (neg.astype(dt), above.astype(dt))
        return np.where(d > 0, *pair)

    return LossFunctionWrapper(fn, grad=grad, name="pinball")


class _Budget:
    """Stops training at ``deadline`` (``time.monotonic()``), as a callback."""

    def __init__(self, deadline):
        from ..callbacks import Callback

        class Stop(Callback):
            def on_epoch_end(self, epoch, logs=None):
                if deadline is not None and time.monotonic() > deadline:
                    self.model.stop_training = True

        self.callback = Stop()


class _EpochCap:
    """Ends each epoch after ``steps`` batches (a callback), so that an epoch of a big panel
    is a random sample of ``epoch_windows`` windows (each epoch shuffles anew) and early
    stopping looks at the validation loss that often. Must come first among the callbacks: it
    clears the stop it raised before the others read ``stop_training`` at the epoch's end."""

    def __init__(self, steps):
        from ..callbacks import Callback

        class Cap(Callback):
            cut = False

            def on_batch_end(self, batch, logs=None):
                if batch + 1 >= steps:
                    self.model.stop_training = self.cut = True

            def on_epoch_end(self, epoch, logs=None):
                if self.cut:
                    self.model.stop_training = self.cut = False

        self.callback = Cap()


def epoch_windows(config, n_windows) -> int:
    """Windows one epoch trains on: all of them, or at most ``config.epoch_windows``."""
    cap = int(config.epoch_windows)
    return int(n_windows) if not cap else int(min(n_windows, cap))


def patience_epochs(config, n_windows) -> int:
    """Early-stopping patience in epochs: ``patience``, or more when an epoch is only a few
    gradient steps (a single series): at least ``patience_steps`` steps of patience."""
    n_windows = epoch_windows(config, n_windows)
    steps = max(1, math.ceil(n_windows / config.batch_size))  # gradient steps per epoch
    if not config.patience_steps:
        return int(config.patience)
    return int(max(config.patience, math.ceil(config.patience_steps / steps)))


def _callbacks(config, n_windows, deadline, stop=None):
    """The epoch cap (first: see ``_EpochCap``), early stopping, the NaN and time checks."""
    from ..callbacks import TerminateOnNaN

    cbs = [TerminateOnNaN(raise_error=True, check_weights=True), _Budget(deadline).callback]
    if stop is not None:
        cbs.insert(0, stop)
    if epoch_windows(config, n_windows) < n_windows:
        steps = math.ceil(epoch_windows(config, n_windows) / config.batch_size)
        cbs.insert(0, _EpochCap(steps).callback)
    return cbs


def _train(facts, config, x, y, val, seed, epochs, deadline, patience=True, distribute=None):
    from .. import random as _random
    from ..callbacks import EarlyStopping
    from ..optimizers import Adam

    _random.set_random_seed(seed)
    L, C = x["series"].shape[1:]
    n_ahead = x["ahead"].shape[1] if "ahead" in x else 0
    model = build_network(facts, config, L, C, n_ahead, len(facts["ids"]))
    loss = (
        pinball_loss(facts["quantiles"], facts["horizon"])
        if config.loss == "pinball"
        else config.loss
    )
    model.compile(optimizer=Adam(config.learning_rate, clipnorm=1.0), loss=loss, seed=seed)
    stop = None
    if patience and val is not None:
        stop = EarlyStopping(
            monitor="val_loss", patience=patience_epochs(config, len(y)), restore_best_weights=True
        )
    model.fit(x, y, epochs=epochs, batch_size=config.batch_size, validation_data=val,
              callbacks=_callbacks(config, len(y), deadline, stop), verbose=0,
              distribute=distribute)  # fmt: skip
    best = stop.best_epoch + 1 if stop is not None and stop.best_weights is not None else epochs
    return model, int(best)


def refits(config, n_windows) -> bool:
    """Whether a member trains again on every window: ``refit``, unless the first fit had more
    than ``refit_max_windows`` training windows (the last ``horizon`` origins of each series
    then add little, and a second fit would double the time)."""
    cap = config.refit_max_windows
    return bool(config.refit and (not cap or n_windows <= cap))


def _refit(facts, config, model, x, y, seed, best, distribute=None):
    """Train on every window (validation included): from scratch for the best epoch count, or
    (``refit_epochs > 0``) by continuing the early-stopped model for that many epochs."""
    if not config.refit_epochs:
        return _train(facts, config, x, y, None, seed, best, None, False, distribute)[0]
    model.fit(x, y, epochs=int(config.refit_epochs), batch_size=config.batch_size,
              callbacks=_callbacks(config, len(y), None), verbose=0,
              distribute=distribute)  # fmt: skip
    return model
