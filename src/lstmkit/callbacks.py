"""Training callbacks with Keras 3 semantics.

The trainer calls, in order::

    on_train_begin(logs)
      for epoch in range(epochs):          # 0-based, as in Keras
        on_epoch_begin(epoch, logs)
          for batch: on_batch_begin(batch, logs); ...; on_batch_end(batch, logs)
        on_epoch_end(epoch, logs)          # logs = {"loss": ..., "val_loss": ..., metrics ...}
        stop if model.stop_training
    on_train_end(logs)

Before that it sets ``callback.model`` (needs ``stop_training``, and for some callbacks
``get_weights``/``set_weights``/``save``/``optimizer``) and ``callback.params``
(``{"epochs": E, "steps": batches per epoch, "verbose": v}``). ``CallbackList`` does both.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
import warnings

import numpy as np


class Callback:
    """Base class: every hook is a no-op."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass


class CallbackList(Callback):
    """Forwards every hook to each callback in order."""

    def __init__(self, callbacks=None, model=None, params=None):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(
                    "CallbackList: argument 'callbacks' must hold Callback instances; "
                    f"got {type(c).__name__}"
                )
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        callback.set_params(self.params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def set_model(self, model):
        super().set_model(model)
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for c in self.callbacks:
            c.set_params(params)

    def on_train_begin(self, logs=None):
        for c in self.callbacks:
            c.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for c in self.callbacks:
            c.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        for c in self.callbacks:
            c.on_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        for c in self.callbacks:
            c.on_batch_end(batch, logs)


class History(Callback):
    """``history[key]`` is the list of per-epoch values, ``epoch`` the epoch indices; set as
    ``model.history`` after every epoch (Keras)."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


# Metric names whose improvement is an increase; anything named "...loss" or an error decreases.
_MAXIMIZE = {"accuracy", "acc", "f1", "f1_score", "auc", "precision", "recall"}
_MINIMIZE = {
    "loss",
    "mae",
    "mse",
    "rmse",
    "mase",
    "perplexity",
    "bits_per_char",
    "mean_absolute_error",
    "mean_squared_error",
    "root_mean_squared_error",
}


def _monitor_op(owner, monitor, mode):
    """``np.less`` or ``np.greater``: which direction is an improvement."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: argument 'mode' must be 'auto', 'min' or 'max'; got {mode!r}")
    if mode == "auto":
        name = monitor.removeprefix("val_")
        if name in _MAXIMIZE or name.endswith("accuracy"):
            mode = "max"
        elif name in _MINIMIZE or name.endswith("loss"):
            mode = "min"
        else:  # Keras 3 also refuses to guess
            raise ValueError(
                f"{owner}: cannot tell whether monitor={monitor!r} should be minimised or "
                "maximised; pass mode='min' or mode='max'"
            )
    return np.less if mode == "min" else np.greater


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Keras 3 semantics: epochs before ``start_from_epoch`` are ignored; an epoch improves when
    ``current - min_delta < best`` (min mode) or ``current + min_delta > best`` (max mode);
    ``wait`` counts epochs since the last improvement and training stops once ``wait >=
    patience``. An improvement resets ``wait`` only if it also beats ``baseline`` (when given).
    With ``restore_best_weights`` the weights of the best epoch are put back at the end of
    training (whether or not it stopped early). ``best`` is reset by ``on_train_begin`` so an
    instance can be reused (Keras issue #20256). Unlike Keras, an unknown ``mode`` is an error,
    not a warning.
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
        verbose=0,
    ):
        super().__init__()
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(
                f"EarlyStopping: argument 'patience' must be an int >= 0; got {patience!r}"
            )
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.monitor_op = _monitor_op("EarlyStopping", monitor, mode)
        self.min_delta = abs(min_delta) * (-1 if self.monitor_op is np.less else 1)
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch, self.verbose = start_from_epoch, verbose
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.monitor_op is np.less else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self.min_delta, reference))

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"EarlyStopping: monitor {self.monitor!r} is not in the logs; available: "
                f"{sorted(logs or {})}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0  # only an epoch that beats both the best and the baseline
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", file=sys.stderr)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(
                    f"Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}.",
                    file=sys.stderr,
                )
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """``model.save(filepath.format(epoch=epoch + 1, **logs))`` after each epoch, or only when
    ``monitor`` improved (strictly) with ``save_best_only``. Missing directories are created."""

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        save_best_only=False,
        mode="auto",
        save_weights_only=False,
        verbose=0,
    ):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor, self.save_best_only, self.mode = monitor, save_best_only, mode
        self.save_weights_only, self.verbose = save_weights_only, verbose
        self.monitor_op = _monitor_op("ModelCheckpoint", monitor, mode)
        self.best = math.inf if self.monitor_op is np.less else -math.inf
        self.last_saved = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"ModelCheckpoint: can save best model only with {self.monitor!r} in the "
                    f"logs; available: {sorted(logs)}. Skipping.",
                    stacklevel=2,
                )
                return
            if not self.monitor_op(current, self.best):
                return
            if self.verbose > 0:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{current:.5f}",
                    file=sys.stderr,
                )
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise ValueError(
                f"ModelCheckpoint: argument 'filepath' {self.filepath!r} uses {e}, which is "
                f"neither 'epoch' nor a logs key; logs have {sorted(logs)}"
            ) from None
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.last_saved = path


class ProgressBar(Callback):
    """Progress on stderr, with Keras 3's ``verbose`` semantics:

    - ``0``: silent;
    - ``1`` (and ``"auto"``, what ``fit`` passes by default): a tqdm bar per epoch with the
      running loss and metrics when the output is interactive (stderr is a terminal, or a Jupyter
      kernel is running) and tqdm is installed; otherwise one plain line per epoch, as below;
    - ``2``: one line per epoch, always (also when ``fit(verbose=2)`` set ``params["verbose"]``)::

        Epoch 3/20 - 12/12 - 0.41s - loss: 0.1234 - val_loss: 0.2345

    Plain lines keep logs readable (no carriage returns in a CI log or a redirected file) and need
    no optional package. Numbers use Keras' format: 4 decimals, scientific below 1e-3.
    """

    def __init__(self, verbose="auto"):
        super().__init__()
        if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, float):
            raise ValueError(
                f"ProgressBar: argument 'verbose' must be 'auto', 0, 1 or 2; got {verbose!r}"
            )
        self.verbose = verbose
        self._bar = None
        self._mode_now = "off"
        self._started = 0.0
        self._steps_done = 0

    def _mode(self, stream) -> str:
        """``"off"``, ``"bar"`` or ``"lines"`` for this epoch."""
        if self.verbose in (0, False):
            return "off"
        if self.verbose == 2 or self.params.get("verbose") == 2:
            return "lines"
        if not (_isatty(stream) or "ipykernel" in sys.modules):
            return "lines"
        try:
            import tqdm.auto  # noqa: F401  installed with lstmkit; absent in a --no-deps install
        except ImportError:
            return "lines"
        return "bar"

    def on_epoch_begin(self, epoch, logs=None):
        stream = sys.stderr  # looked up now so redirection (pytest's capsys) is honoured
        self._mode_now = mode = self._mode(stream)
        self._started, self._steps_done = time.perf_counter(), 0
        if mode != "bar":
            return
        from tqdm.auto import tqdm

        epochs = self.params.get("epochs")
        steps = self.params.get("steps", (logs or {}).get("steps"))  # either source will do
        self._bar = tqdm(
            total=steps,
            desc=f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}",
            unit="batch",
            file=stream,
            leave=True,
            dynamic_ncols=True,
        )

    def on_batch_end(self, batch, logs=None):
        self._steps_done += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(_tqdm_logs(logs), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.set_postfix(_tqdm_logs(logs))
            self._bar.close()
            self._bar = None
        elif self._mode_now == "lines":
            print(self._line(epoch, logs), file=sys.stderr, flush=True)

    def _line(self, epoch, logs) -> str:
        epochs = self.params.get("epochs")
        steps = self.params.get("steps")
        parts = [f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"]
        parts.append(f"{self._steps_done}/{steps}" if steps else f"{self._steps_done}")
        parts.append(f"{time.perf_counter() - self._started:.2f}s")
        parts += [f"{k}: {_keras_number(v)}" for k, v in (logs or {}).items()]
        return " - ".join(parts)

    def on_train_end(self, logs=None):
        if self._bar is not None:  # training interrupted mid-epoch
            self._bar.close()
            self._bar = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def _tqdm_logs(logs) -> dict:
    return {
        k: f"{v:.4g}" if isinstance(v, (float, np.floating)) else v for k, v in (logs or {}).items()
    }


def _keras_number(v) -> str:
    """Keras' progress-bar format: ``0.1234``, or ``1.2346e-04`` below 1e-3 in magnitude."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"
    return str(v)


class LearningRateScheduler(Callback):
    """At each epoch start, ``model.optimizer.learning_rate = schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function); the rate used is logged as
    ``"learning_rate"``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: argument 'schedule' must be callable; got {schedule!r}"
            )
        self.schedule, self.verbose = schedule, verbose
        try:
            n = len(inspect.signature(schedule).parameters)
        except (TypeError, ValueError):
            n = 2
        self._two_args = n >= 2

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(optimizer.learning_rate)
        lr = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        if not isinstance(lr, (int, float, np.floating)) or isinstance(lr, bool):
            raise TypeError(
                f"LearningRateScheduler: argument 'schedule' must return a float; got {lr!r}"
            )
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: learning rate is {float(lr):.6g}.", file=sys.stderr)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
