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


_NO_BATCH_BEGIN, _NO_BATCH_END = Callback.on_batch_begin, Callback.on_batch_end


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

    # the batch hooks run at every training step: a callback that keeps Callback's no-op (its
    # class does not override it, nor its instance replace it) is not called
    def on_batch_begin(self, batch, logs=None):
        for c in self.callbacks:
            if type(c).on_batch_begin is not _NO_BATCH_BEGIN or "on_batch_begin" in c.__dict__:
                c.on_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        for c in self.callbacks:
            if type(c).on_batch_end is not _NO_BATCH_END or "on_batch_end" in c.__dict__:
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
        from .saving import NonFiniteWeightsError

        try:
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
        except NonFiniteWeightsError as e:  # keep training (TerminateOnNaN stops it) and the file
            warnings.warn(f"ModelCheckpoint: epoch {epoch + 1} not saved: {e}", stacklevel=2)
            return
        self.last_saved = path


class TrainingDivergedError(RuntimeError, ValueError):
    """``TerminateOnNaN(raise_error=True)``: a RuntimeError as in Keras, and a ValueError so that
    the command lines report it in one line, as bad input (the learning rate)."""


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or Inf (Keras 3 semantics).

    By default it sets ``model.stop_training``: the trainer ends the epoch after that batch and
    calls ``on_epoch_end`` and ``on_train_end`` as usual, and one line on stdout says so (Keras
    prints it there too). ``raise_error=True`` raises ``TrainingDivergedError`` at once instead,
    skipping the other callbacks' cleanup. ``check_weights=True`` (not in Keras) also stops when
    an update left a parameter NaN or Inf while the loss was still finite: the next forward pass
    would otherwise fail in a layer's input check rather than give a NaN loss. The apps use both,
    so that a diverged run ends with one error line and writes nothing. ``stopped`` is
    ``(epoch, batch, what)`` (0-based) once fired.
    """

    def __init__(self, raise_error=False, check_weights=False):
        super().__init__()
        self.raise_error, self.check_weights = raise_error, check_weights
        self.stopped = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.stopped = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _non_finite(self, logs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            return f"the loss became {loss}"
        if self.check_weights:
            return _non_finite_parameter(self.model.params)
        return None

    def on_batch_end(self, batch, logs=None):
        what = self._non_finite(logs)
        if what is None:
            return
        self.stopped = (self._epoch, batch, what)
        where = f"epoch {self._epoch + 1}, batch {batch}"  # Keras: epochs from 1, batches from 0
        if self.raise_error:
            raise TrainingDivergedError(
                f"training diverged: {what} at {where}, where training stopped (try a smaller "
                "learning rate)"
            )
        print(f"E{where[1:]}: {what}, terminating training")  # stdout, as Keras
        self.model.stop_training = True


#: the most parameter values ``_non_finite_parameter`` copies into one array to check them at
#: once: seven float32 arrays, joined / one by one, 7.4 / 14.3 us at 6.7k values, 13.2 / 16.3 at
#: 16k, 26.1 / 17.9 at 32k (the review's measurement, 2026-12-07, AMD EPYC Zen 3)
JOIN_MAX = 1 << 14


def _non_finite_parameter(params):
    """The message naming the first parameter (in ``params`` order) holding a NaN or Inf, or
    None. One ``isfinite`` over all of them joined (the forecaster's seven arrays: ~16 us a
    batch one by one, ~10 us joined, ``benchmarks/weights_check.py``); only when that finds one,
    the arrays one by one for its name. Joined at their common dtype (the widest), a value is
    non-finite exactly when it was. Joined only while small (``JOIN_MAX`` values): past ~20k values the
    copy costs more than the calls it saves."""
    if not params:
        return None
    if sum(v.size for v in params.values()) <= JOIN_MAX:
        joined = np.concatenate([v.ravel() for v in params.values()])
        # (ufunc reduce: ndarray.all() without its two Python wrapper calls)
        if np.logical_and.reduce(np.isfinite(joined), axis=None):
            return None
    for name, v in params.items():
        if not np.logical_and.reduce(np.isfinite(v), axis=None):
            return f"parameter '{name}' became NaN or Inf"
    return None


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


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not improved for
    ``patience`` epochs (Keras 3 semantics and defaults).

    At each epoch end: ``logs["learning_rate"]`` gets the rate used in that epoch; during a
    cooldown the counter goes down and ``wait`` is reset; an improvement (``current - min_delta <
    best`` in min mode, ``current + min_delta > best`` in max mode; the first epoch always) resets
    ``wait``; otherwise, outside a cooldown, ``wait += 1`` and once ``wait >= patience`` the rate
    becomes ``max(lr * factor, min_lr)`` if ``lr > min_lr`` (compared in float32, as Keras' float32
    variable does), which starts a cooldown of ``cooldown`` epochs and resets ``wait``. State is
    reset by ``on_train_begin``. Unlike Keras, an unknown ``mode`` (or a ``monitor`` whose
    direction cannot be told) is an error, and a learning-rate schedule is refused at the start
    of training rather than at the first reduction; messages go to stderr.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__()
        owner = "ReduceLROnPlateau"
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor < 1:
            raise ValueError(f"{owner}: argument 'factor' must be in [0, 1); got {factor!r}")
        for arg, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{owner}: argument '{arg}' must be an int >= 0; got {value!r}")
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise ValueError(f"{owner}: argument 'min_lr' must be a number >= 0; got {min_lr!r}")
        self.monitor, self.factor, self.patience, self.verbose = (
            monitor,
            float(factor),
            patience,
            verbose,
        )
        self.mode, self.cooldown, self.min_lr = mode, cooldown, float(min_lr)
        self.monitor_op = _monitor_op(owner, monitor, mode)
        self.min_delta = abs(min_delta) * (-1 if self.monitor_op is np.less else 1)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best, self.cooldown_counter, self.wait = None, 0, 0
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            from .optimizers import LearningRateSchedule

            schedule = getattr(optimizer, "_learning_rate", None)
            if isinstance(schedule, LearningRateSchedule):
                raise ValueError(
                    f"ReduceLROnPlateau: the optimizer's learning rate is a "
                    f"{type(schedule).__name__} schedule, which it cannot change; compile with "
                    "a float learning_rate"
                )

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_improvement(self, current):
        return self.best is None or bool(self.monitor_op(current - self.min_delta, self.best))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateau: monitor {self.monitor!r} is not in the logs; available: "
                f"{sorted(logs)}",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch):
        optimizer = self.model.optimizer
        old = float(optimizer.learning_rate)
        if not np.float32(old) > np.float32(self.min_lr):
            return False
        new = max(old * self.factor, self.min_lr)
        optimizer.learning_rate = new
        if self.verbose > 0:
            print(
                f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.",
                file=sys.stderr,
            )
        return True


# Keras 3's batch hook names -> the hooks lstmkit's trainer calls
_BATCH_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


class LambdaCallback(Callback):
    """A callback from plain functions, called with the hook's arguments (Keras):
    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_batch_begin(batch,
    logs)``, ``on_batch_end(batch, logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``.
    Keras 3's names ``on_train_batch_begin``/``on_train_batch_end`` are the batch hooks; any other
    hook of ``Callback`` may be given by name as a keyword. An unknown name is an error (Keras
    would store it and never call it)."""

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        **kwargs,
    ):
        super().__init__()
        given = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            **kwargs,
        }
        hooks = {}
        for name, fn in given.items():
            if fn is None:
                continue
            hook = _BATCH_ALIASES.get(name, name)
            self._check(name, hook, fn, hooks)
            hooks[hook] = fn
        for hook, fn in hooks.items():
            setattr(self, hook, fn)  # the instance attribute shadows the no-op method

    def _check(self, name, hook, fn, hooks):
        if not (hook.startswith("on_") and callable(getattr(Callback, hook, None))):
            known = sorted(n for n in vars(Callback) if n.startswith("on_"))
            raise ValueError(
                f"LambdaCallback: unknown hook {name!r}; expected one of {known} or "
                f"{sorted(_BATCH_ALIASES)}"
            )
        if not callable(fn):
            raise ValueError(f"LambdaCallback: argument {name!r} must be callable; got {fn!r}")
        if hook in hooks:
            raise ValueError(
                f"LambdaCallback: {hook!r} given twice (as {name!r} and under its other name)"
            )


class CSVLogger(Callback):
    """One CSV row per epoch, as Keras' ``CSVLogger`` writes it: the columns are ``epoch``
    (0-based) then the first epoch's log keys sorted, followed by their ``val_`` names when the
    first epoch had no validation; missing values are ``NA``; ``csv`` excel dialect (``\\r\\n``
    line ends) with ``separator``. ``append=True`` adds to an existing file and writes the header
    only if that file is empty.

    Writing: the file is created atomically (``_atomic.atomic_write``) with the header and the
    first row, so with ``append=False`` an existing file is replaced only once a complete new one
    exists (Keras truncates it when training starts); each later row is appended as one complete
    line and flushed at the end of its epoch, as Keras flushes, so the file can be watched during
    training.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(
                f"CSVLogger: argument 'separator' must be one character; got {separator!r}"
            )
        self.filename, self.sep, self.append = os.fspath(filename), separator, bool(append)
        self.keys, self._started = None, False

    def on_train_begin(self, logs=None):
        self.keys, self._started = None, False

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        row = [epoch] + [_csv_value(logs.get(k, "NA")) for k in self.keys]
        if self._started:
            self._append(self._lines([row]))
        else:
            self._start(row)
            self._started = True

    def _lines(self, rows):
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer, dialect="excel", delimiter=self.sep).writerows(rows)
        return buffer.getvalue()

    def _start(self, row):
        if self.append and self._has_first_line():  # Keras: no second header
            self._append(self._lines([row]))
            return
        text = self._lines([["epoch", *self.keys], row])
        previous = ""
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                previous = f.read()

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                f.write(previous + text)

        from ._atomic import atomic_write

        atomic_write(self.filename, write)

    def _has_first_line(self):
        if not os.path.exists(self.filename):
            return False
        with open(self.filename, newline="") as f:
            return bool(f.readline())  # Keras reads the first line, as here

    def _append(self, text):
        with open(self.filename, "a", newline="") as f:
            f.write(text)  # one complete line per write
            f.flush()


def _csv_value(v):
    """Keras' handle_value: strings as they are, sequences as ``"[a, b]"``, numbers as str()."""
    is_0d = isinstance(v, np.ndarray) and v.ndim == 0
    if isinstance(v, str):
        return v
    if hasattr(v, "__iter__") and not is_0d:
        return f'"[{", ".join(map(str, v))}]"'
    return v
