"""Training: ``compile``, ``fit``, ``evaluate``, ``predict``, ``train_on_batch``.

``Trainable`` is mixed into models. It only uses the model protocol (``forward``, ``backward``,
``trainable_params``, ``check_input``, ``get_weights``/``set_weights``) and knows nothing about
layers.

Reproducibility: ``compile`` draws one integer ``seed`` (from ``lstmkit.set_random_seed``'s
generator) that is saved with the model. Epoch e's shuffle order is drawn from
``default_rng([seed, e])`` and batch b's dropout masks from ``default_rng([seed, e, b])``, so a
run resumed from a checkpoint continues exactly the loss curve of an uninterrupted run.
"""

from __future__ import annotations

import numpy as np

from .. import callbacks as callbacks_mod
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from .. import random as _random
from ..ops import backend

#: Keras' batch size when ``batch_size=None``
DEFAULT_BATCH_SIZE = 32
#: Keras' verbosity values: "auto" (= 1 here), 0 silent, 1 progress bar, 2 one line per epoch
VERBOSE = ("auto", 0, 1, 2)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_int(who, name, v, lo):
    """``v`` an int >= ``lo`` (bools refused), else a ValueError naming ``name``."""
    if not _is_int(v) or v < lo:
        what = "a positive int" if lo == 1 else f"an int >= {lo}"
        raise ValueError(f"{who}: argument '{name}' must be {what}; got {v!r}")
    return int(v)


def _batch_size(who, batch_size):
    """Keras: None means 32; otherwise a positive int."""
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"{who}: argument 'batch_size' must be a positive int; got {batch_size!r} "
            f"(None means {DEFAULT_BATCH_SIZE})"
        )
    return int(batch_size)


def _check_verbose(who, verbose):
    ok = isinstance(verbose, (bool, np.bool_)) or (
        verbose == "auto" if isinstance(verbose, str) else _is_int(verbose) and verbose in VERBOSE
    )
    if not ok:
        raise ValueError(
            f"{who}: argument 'verbose' must be one of {list(VERBOSE)} or a bool; got {verbose!r}"
        )


def _is_real(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


def _check_fit_args(who, epochs, initial_epoch, validation_split, validation_data, shuffle):
    """Keras' fit semantics: ``epochs`` is the index of the final epoch, so ``epochs=0`` (or
    ``initial_epoch == epochs``) trains nothing and returns an empty history."""
    epochs = _check_int(who, "epochs", epochs, 0)
    initial_epoch = _check_int(who, "initial_epoch", initial_epoch, 0)
    if initial_epoch > epochs:
        raise ValueError(
            f"{who}: argument 'initial_epoch' must be <= epochs ({epochs}: the index of the "
            f"final epoch, as in Keras); got {initial_epoch}"
        )
    if not (_is_real(validation_split) and 0.0 <= validation_split < 1.0):
        raise ValueError(
            f"{who}: argument 'validation_split' must be in [0, 1) (a real number); "
            f"got {validation_split!r}"
        )
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ValueError(f"{who}: argument 'shuffle' must be True or False; got {shuffle!r}")
    vd = validation_data
    if vd is not None and (not isinstance(vd, (tuple, list)) or len(vd) not in (2, 3)):
        got = type(vd).__name__ + (f" of length {len(vd)}" if isinstance(vd, (tuple, list)) else "")
        raise ValueError(
            f"{who}: argument 'validation_data' must be a tuple (x_val, y_val) or "
            f"(x_val, y_val, mask); got {got}"
        )
    return epochs, initial_epoch


def _check_mask(who, mask, x):
    """A mask has one row per sample and one column per time step of ``x``."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if x.ndim < 2 or mask.shape != x.shape[:2]:
        raise ValueError(
            f"{who}: argument 'mask' must have shape (batch, timesteps) = {x.shape[:2]}; "
            f"got {mask.shape}"
        )
    return mask


def _as_float(x, dtype):
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    return x if x.dtype == dtype or x.dtype.kind in "iu" else x.astype(dtype)


class Trainable:
    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.compiled = False
        self.stop_training = False
        self.seed = None
        self.history = None

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, seed=None):
        if loss is None:
            raise ValueError(f"{self.name}.compile: argument 'loss' is required (e.g. 'mse')")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        self.metrics = []
        for m in metrics or []:
            name = m if isinstance(m, str) else getattr(m, "__name__", type(m).__name__)
            self.metrics.append((name, metrics_mod.get(m)))
        self.seed = int(_random.get_rng().integers(2**31)) if seed is None else int(seed)
        self.compiled = True
        self._epoch = 0

    def _require_compiled(self, what):
        if not self.compiled:
            raise ValueError(f"{self.name}.{what}: call compile(optimizer, loss) first")

    # -- data checks ----------------------------------------------------------------------------
    def _prepare(self, x, y=None):
        self._ensure_built(x)
        x = self.check_input(x)
        if len(x) == 0:
            raise ValueError(f"{self.name}: argument 'x' must not be empty; got shape {x.shape}")
        dtype = np.dtype(self.layers[0].dtype or "float32")
        x = _as_float(x, dtype)
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{self.name}: argument 'x' contains NaN or Inf")
        if y is None:
            return x, None
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(
                f"{self.name}: arguments 'x' and 'y' must have the same number of samples; "
                f"got {len(x)} and {len(y)}"
            )
        if y.dtype.kind == "f":
            y = y.astype(dtype, copy=False)
            if not np.isfinite(y).all():
                raise ValueError(f"{self.name}: argument 'y' contains NaN or Inf")
        elif y.dtype.kind not in "iub":
            raise ValueError(f"{self.name}: argument 'y' must be numeric; got dtype {y.dtype}")
        return x, y

    def _match_target(self, y, y_pred):
        # Keras accepts y (B,) for an output (B, 1): give the target the output's trailing 1
        if (
            not getattr(self.loss, "sparse", False)
            and y.ndim == y_pred.ndim - 1
            and y_pred.shape[-1] == 1
        ):
            y = y[..., None]
        return y

    # -- one step -------------------------------------------------------------------------------
    def _loss_and_grad_inputs(self, y, y_pred, mask):
        """``(y, y_pred)`` as the loss sees them: the valid steps only for masked sequences."""
        y = self._match_target(y, y_pred)
        if mask is not None and y_pred.ndim == 3:
            return y[mask], y_pred[mask]
        return y, y_pred

    def _loss_and_grad(self, y, y_pred, mask, loss_fn=None):
        loss_fn = loss_fn or self.loss
        yv, pv = self._loss_and_grad_inputs(y, y_pred, mask)
        if mask is not None and y_pred.ndim == 3:
            # masked sequence outputs: the loss is the mean over valid steps only (Keras)
            loss = loss_fn(yv, pv)
            dy = np.zeros_like(y_pred)
            dy[mask] = loss_fn.grad(yv, pv)
            return loss, dy, yv, pv
        return (*loss_fn.value_and_grad(yv, pv), yv, pv)

    def _logits_loss(self, caches):
        """``(from-logits twin of the loss, logits)`` when the output is ``softmax(z)`` and the
        loss a probability cross-entropy: training then takes the loss from ``z`` (as stable as
        ``from_logits=True``, the same value up to rounding until the softmax saturates, where
        the clipped probability form would lose the gradient). Else None."""
        cce = (losses_mod.CategoricalCrossentropy, losses_mod.SparseCategoricalCrossentropy)
        if type(self.loss) not in cce or self.loss.from_logits:
            return None
        z = self.output_logits(caches)
        return None if z is None else (type(self.loss)(from_logits=True), z)

    def _train_step(self, x, y, rng, mask=None):
        with backend.compute_scope():  # lstmkit's threads share the step's products
            y_pred, caches, out_mask = self.forward(x, training=True, mask=mask, rng=rng)
            fused = self._logits_loss(caches)
            if fused is None:
                loss, dy, yv, pv = self._loss_and_grad(y, y_pred, out_mask)
            else:  # dy is dLoss/d(logits); the metrics still see the probabilities
                loss, dy, yv, _ = self._loss_and_grad(y, fused[1], out_mask, fused[0])
                pv = self._loss_and_grad_inputs(y, y_pred, out_mask)[1]
            dy = dy.astype(y_pred.dtype, copy=False)
            grads = self.backward(dy, caches, from_logits=fused is not None)
            self.optimizer.apply(self.trainable_params, grads)
            self.apply_state_updates(caches)
        logs = {"loss": float(loss)}
        for name, fn in self.metrics:
            logs[name] = float(fn(yv, pv))
        return logs

    def train_on_batch(self, x, y, mask=None):
        """One optimisation step on one batch; returns the loss (before the update)."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y)
        mask = _check_mask(f"{self.name}.train_on_batch", mask, x)
        rng = np.random.default_rng([self.seed, self.optimizer.iterations])
        return self._train_step(x, y, rng, mask)["loss"]

    # -- truncated BPTT -------------------------------------------------------------------------
    def _check_tbptt(self, tbptt, x, y, mask):
        who = f"{self.name}.fit"
        if isinstance(tbptt, bool) or not isinstance(tbptt, (int, np.integer)) or tbptt < 1:
            raise ValueError(f"{who}: argument 'tbptt' must be a positive int; got {tbptt!r}")
        if x.ndim < 2 or y.ndim < 2 or y.shape[1] != x.shape[1]:
            raise ValueError(
                f"{who}: tbptt needs a target per time step, 'y' of shape (batch, "
                f"{x.shape[1] if x.ndim > 1 else 'timesteps'}, ...); got {y.shape}"
            )
        if mask is not None:
            raise ValueError(f"{who}: tbptt does not take a 'mask'; train on unpadded sequences")
        with self.carried_states(who):  # raises for layers that cannot carry state
            pass

    def _train_tbptt(self, x, y, k, seed):
        """One batch as consecutive chunks of ``k`` steps; returns step-weighted mean logs."""
        T = x.shape[1]
        sums = {}
        with self.carried_states("fit"):
            for a in range(0, T, k):
                rng = np.random.default_rng([*seed, a])
                logs = self._train_step(x[:, a : a + k], y[:, a : a + k], rng)
                w = min(k, T - a) / T
                for key, v in logs.items():
                    sums[key] = sums.get(key, 0.0) + v * w
        return sums

    # -- fit ------------------------------------------------------------------------------------
    def fit(
        self,
        x,
        y,
        epochs=1,
        batch_size=None,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
        mask=None,
        tbptt=None,
    ):
        """Keras' ``fit``. ``tbptt=K``: truncated backpropagation through time for long
        sequences: each batch is cut along time into chunks of ``K`` steps, one optimizer step
        per chunk, the recurrent state carried from chunk to chunk (gradients cut at the edge),
        so training memory depends on ``K``, not on the sequence length. Needs targets per time
        step, ``y (batch, timesteps, ...)``; the reported loss is the mean over all steps."""
        who = f"{self.name}.fit"
        self._require_compiled("fit")
        epochs, initial_epoch = _check_fit_args(
            who, epochs, initial_epoch, validation_split, validation_data, shuffle
        )
        batch_size = _batch_size(who, batch_size)
        _check_verbose(who, verbose)
        x, y = self._prepare(x, y)
        mask = _check_mask(who, mask, x)
        if tbptt is not None:
            self._check_tbptt(tbptt, x, y, mask)
        if validation_data is None and validation_split > 0:
            # Keras takes the *last* fraction of the data, before any shuffling
            split = int(len(x) * (1.0 - validation_split))
            if split < 1 or split >= len(x):
                raise ValueError(
                    f"{self.name}.fit: validation_split={validation_split} leaves no training or "
                    f"no validation samples out of {len(x)}"
                )
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
            if mask is not None:
                mask = mask[:split]
        n = len(x)
        history = callbacks_mod.History()
        cbs = list(callbacks or [])
        if verbose not in (0, False):
            cbs.append(callbacks_mod.ProgressBar(verbose=1))
        steps = (n + batch_size - 1) // batch_size
        # callbacks read params (ProgressBar's "Epoch e/E", Keras' callback.params)
        params = {"epochs": epochs, "steps": steps, "verbose": verbose}
        cb = callbacks_mod.CallbackList([history, *cbs], model=self, params=params)
        self.stop_training = False
        cb.on_train_begin({})
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch, {"steps": steps})
            order = np.random.default_rng([self.seed, epoch]).permutation(n) if shuffle else None
            sums, seen = {}, 0
            for b in range(steps):
                lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
                # in order: a slice (views, no copy of the batch); shuffled: an index array
                idx = order[lo:hi] if shuffle else slice(lo, hi)
                rng = np.random.default_rng([self.seed, epoch, b])
                cb.on_batch_begin(b, {})
                if tbptt is not None:
                    logs = self._train_tbptt(x[idx], y[idx], tbptt, [self.seed, epoch, b])
                else:
                    m = None if mask is None else mask[idx]
                    logs = self._train_step(x[idx], y[idx], rng, m)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v * (hi - lo)
                seen += hi - lo
                cb.on_batch_end(b, {k: s / seen for k, s in sums.items()})
                if self.stop_training:  # Keras 3: a batch callback ends the epoch at once
                    break
            logs = {k: s / seen for k, s in sums.items()}
            if validation_data is not None:
                vx, vy = validation_data[0], validation_data[1]
                vm = validation_data[2] if len(validation_data) > 2 else None
                val = self.evaluate(vx, vy, batch_size=batch_size, return_dict=True, mask=vm)
                logs.update({f"val_{k}": v for k, v in val.items()})
            self._epoch = epoch + 1
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end({})
        self.history = history
        return history

    # -- inference ------------------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose=0, mask=None):
        """Outputs for ``x`` in batches of ``batch_size`` (None: 32, as Keras)."""
        batch_size = _batch_size(f"{self.name}.predict", batch_size)
        _check_verbose(f"{self.name}.predict", verbose)
        x, _ = self._prepare(x)
        mask = _check_mask(f"{self.name}.predict", mask, x)
        with backend.compute_scope():
            if len(x) <= batch_size:
                return self.infer(x, mask=mask)[0]
            outs = []
            for i in range(0, len(x), batch_size):
                m = None if mask is None else mask[i : i + batch_size]
                outs.append(self.infer(x[i : i + batch_size], mask=m)[0])
        if isinstance(outs[0], list):
            return [np.concatenate(parts) for parts in zip(*outs)]
        return np.concatenate(outs)

    def evaluate(self, x, y, batch_size=None, verbose=0, return_dict=False, mask=None):
        """Loss (and metrics) on ``x, y`` in batches of ``batch_size`` (None: 32, as Keras)."""
        self._require_compiled("evaluate")
        batch_size = _batch_size(f"{self.name}.evaluate", batch_size)
        _check_verbose(f"{self.name}.evaluate", verbose)
        x, y = self._prepare(x, y)
        mask = _check_mask(f"{self.name}.evaluate", mask, x)
        sums, seen = {}, 0
        for i in range(0, len(x), batch_size):
            m = None if mask is None else mask[i : i + batch_size]
            with backend.compute_scope():
                y_pred, out_mask = self.infer(x[i : i + batch_size], mask=m)
            loss, _, yv, pv = self._loss_and_grad(y[i : i + batch_size], y_pred, out_mask)
            logs = {"loss": float(loss)}
            for name, fn in self.metrics:
                logs[name] = float(fn(yv, pv))
            w = len(yv) if out_mask is not None else len(y_pred)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * w
            seen += w
        out = {k: s / seen for k, s in sums.items()}
        if return_dict:
            return out
        return out["loss"] if len(out) == 1 else list(out.values())
