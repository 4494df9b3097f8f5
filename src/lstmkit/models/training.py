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
from .. import constraints as constraints_mod
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from .. import random as _random
from .. import regularizers as regularizers_mod
from ..ops import backend


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
    def _loss_and_grad(self, y, y_pred, mask):
        y = self._match_target(y, y_pred)
        if mask is not None and y_pred.ndim == 3:
            # masked sequence outputs: the loss is the mean over valid steps only (Keras)
            yv, pv = y[mask], y_pred[mask]
            loss = self.loss(yv, pv)
            dy = np.zeros_like(y_pred)
            dy[mask] = self.loss.grad(yv, pv)
            return loss, dy, yv, pv
        return (*self.loss.value_and_grad(y, y_pred), y, y_pred)

    def _train_step(self, x, y, rng, mask=None):
        with backend.compute_scope():  # lstmkit's threads share the step's products
            y_pred, caches, out_mask = self.forward(x, training=True, mask=mask, rng=rng)
            loss, dy, yv, pv = self._loss_and_grad(y, y_pred, out_mask)
            grads = self.backward(dy.astype(y_pred.dtype, copy=False), caches)
            loss = loss + self._regularization(grads, caches)
            self.optimizer.apply(self.trainable_params, grads)
            constraints_mod.apply_constraints(self.layers)  # Keras: after the update
        logs = {"loss": float(loss)}
        for name, fn in self.metrics:
            logs[name] = float(fn(yv, pv))
        return logs

    def _regularization(self, grads, caches):
        """The layers' regularization penalty (weights and activity), as Keras 3 adds it to the
        loss; the weight penalties' gradients are added to ``grads`` here, the activity
        penalties' ones were added by the layers' backward."""
        penalty, reg_grads = regularizers_mod.weight_penalty(self.layers)
        for name, g in reg_grads.items():
            grads[name] = grads[name] + g
        if regularizers_mod.has_activity(self.layers):
            penalty += regularizers_mod.activity_penalty(caches)
        return penalty

    def train_on_batch(self, x, y, mask=None):
        """One optimisation step on one batch; returns the loss (before the update)."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y)
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
        batch_size=32,
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
        self._require_compiled("fit")
        x, y = self._prepare(x, y)
        if tbptt is not None:
            self._check_tbptt(tbptt, x, y, mask)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(
                f"{self.name}.fit: argument 'validation_split' must be in [0, 1); got {validation_split}"
            )
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(
                f"{self.name}.fit: argument 'batch_size' must be a positive int; got {batch_size!r}"
            )
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
                mask = np.asarray(mask)[:split]
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
    def predict(self, x, batch_size=32, verbose=0, mask=None):
        x, _ = self._prepare(x)
        if batch_size is None:
            batch_size = 32
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

    def _evaluate_batch(self, x, mask):
        """``(y_pred, output mask, regularization penalty)``: Keras 3's evaluated loss includes
        the penalties too. Layers with an activity regularizer need the forward's caches."""
        with backend.compute_scope():
            if not regularizers_mod.has_activity(self.layers):
                y_pred, out_mask = self.infer(x, mask=mask)
                return y_pred, out_mask, regularizers_mod.weight_penalty(self.layers)[0]
            y_pred, caches, out_mask = self.forward(x, training=False, mask=mask)
        penalty = regularizers_mod.weight_penalty(self.layers)[0]
        return y_pred, out_mask, penalty + regularizers_mod.activity_penalty(caches)

    def evaluate(self, x, y, batch_size=32, verbose=0, return_dict=False, mask=None):
        self._require_compiled("evaluate")
        x, y = self._prepare(x, y)
        sums, seen = {}, 0
        for i in range(0, len(x), batch_size):
            m = None if mask is None else np.asarray(mask)[i : i + batch_size]
            y_pred, out_mask, penalty = self._evaluate_batch(x[i : i + batch_size], m)
            loss, _, yv, pv = self._loss_and_grad(y[i : i + batch_size], y_pred, out_mask)
            logs = {"loss": float(loss) + penalty}
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
