"""Training: ``compile``, ``fit``, ``evaluate``, ``predict``, ``train_on_batch`` ...

``Trainable`` is mixed into models. It only uses the model protocol — ``network`` (a
:class:`lstmkit.graph.Network`: ``run``, ``backward``, ``check_inputs``), ``trainable_params``,
``_ensure_built``, ``get_weights``/``set_weights`` — and knows nothing about layers. Inside, data
are lists (one array per model input, one per output); a model with one input and one output takes
and returns plain arrays, one with several takes lists or dicts keyed by input / output name.

Reproducibility: ``compile`` draws one integer ``seed`` (from ``lstmkit.set_random_seed``'s
generator) that is saved with the model. Epoch e's shuffle order is drawn from
``default_rng([seed, e])`` and batch b's dropout masks from ``default_rng([seed, e, b])``, so a
run resumed from a checkpoint continues exactly the loss curve of an uninterrupted run.

Buffers: a model owns the :class:`lstmkit.ops.workspace.Workspace` objects its compiled ops take
their large buffers from, one per training step or prediction in progress
(:meth:`Trainable._scope`): checked out by the calling thread for the step, reset at its start,
handed to the ops through ``backend.compute_scope(workspace=...)``. What ``predict`` returns is
detached from it.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from .. import callbacks as callbacks_mod
from .. import constraints as constraints_mod
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from .. import random as _random
from .. import regularizers as regularizers_mod
from ..ops import backend
from ..ops.workspace import Workspace
from .predict_plan import DEFAULT_BATCH_SIZE, PredictPlans

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
    return x if x.dtype == dtype or x.dtype.kind in "iub" else x.astype(dtype)


def _per_output(value, names, what, who):
    """A compile argument given once, as a list (one per output) or a dict by output name."""
    if isinstance(value, dict) and not {"class_name", "config"} <= set(value):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"{who}: argument '{what}' names unknown outputs {unknown}; outputs: {names}"
            )
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)) and what != "metrics":
        if len(value) != len(names):
            raise ValueError(
                f"{who}: argument '{what}' must have one entry per output ({len(names)}: {names}); "
                f"got {len(value)}"
            )
        return list(value)
    nested = isinstance(value, (list, tuple)) and value and len(names) > 1
    if what == "metrics" and nested and all(isinstance(v, (list, tuple)) for v in value):
        if len(value) != len(names):
            raise ValueError(
                f"{who}: argument 'metrics' must have one list per output ({len(names)}); "
                f"got {len(value)}"
            )
        return [list(v) for v in value]
    return [value] * len(names)


class Trainable:
    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.losses_per_output = []
        self.loss_weights = None
        self.metrics = []
        self.compiled = False
        self.stop_training = False
        self.seed = None
        self.history = None

    # -- compile --------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, seed=None, loss_weights=None):
        """Keras' ``compile``: ``loss`` (and ``metrics``, ``loss_weights``) once for all outputs,
        as a list with one entry per output, or a dict by output name."""
        who = f"{self.name}.compile"
        if loss is None:
            raise ValueError(f"{who}: argument 'loss' is required (e.g. 'mse')")
        names = self._output_names_for_compile()
        self.optimizer = optimizers_mod.get(optimizer)
        per = _per_output(loss, names, "loss", who)
        if any(v is None for v in per):
            missing = [n for n, v in zip(names, per) if v is None]
            raise ValueError(f"{who}: argument 'loss' has no loss for outputs {missing}")
        self.losses_per_output = [losses_mod.get(v) for v in per]
        self.loss = self.losses_per_output[0] if len(per) == 1 else self.losses_per_output
        w = (
            [1.0] * len(names)
            if loss_weights is None
            else _per_output(loss_weights, names, "loss_weights", who)
        )
        self.loss_weights = [1.0 if v is None else float(v) for v in w]
        self._metrics_per_output = []
        for ms in _per_output(metrics or [], names, "metrics", who):
            ms = [] if ms is None else (ms if isinstance(ms, (list, tuple)) else [ms])
            self._metrics_per_output.append([(_metric_name(m), metrics_mod.get(m)) for m in ms])
        self.metrics = (
            self._metrics_per_output[0]
            if len(names) == 1
            else [(f"{n}_{m}", f) for n, ms in zip(names, self._metrics_per_output) for m, f in ms]
        )
        prefixes = [""] if len(names) == 1 else [f"{n}_" for n in names]
        self._metric_specs = [
            [(f"{pre}{_metric_name(m)}", m) for m in _as_list(ms)]
            for pre, ms in zip(prefixes, _per_output(metrics or [], names, "metrics", who))
        ]
        self._compile_args = {"loss": loss, "metrics": metrics, "loss_weights": loss_weights}
        self.seed = int(_random.get_rng().integers(2**31)) if seed is None else int(seed)
        self.compiled = True
        self._epoch = 0

    def _output_names_for_compile(self):
        return self.output_names if self.built else ["output"]

    def get_compile_config(self):
        """JSON-able compile settings (saved with the model)."""
        single = len(self.losses_per_output) == 1
        losses = [losses_mod.serialize(v) for v in self.losses_per_output]
        metrics = [[name for name, _ in ms] for ms in self._metrics_per_output]
        return {
            "optimizer": optimizers_mod.serialize(self.optimizer),
            "loss": losses[0] if single else losses,
            "metrics": metrics[0] if single else metrics,
            "loss_weights": None if single else self.loss_weights,
            "seed": self.seed,
            "epoch": getattr(self, "_epoch", 0),
        }

    def _require_compiled(self, what):
        if not self.compiled:
            raise ValueError(f"{self.name}.{what}: call compile(optimizer, loss) first")

    # -- data structures ------------------------------------------------------------------------
    def _standardize_inputs(self, x, arg="x"):
        net_inputs = self.network.inputs if self.built else [None]
        names = [t.node.layer.name for t in net_inputs] if self.built else ["x"]
        return _to_list(x, names, arg, self.name, getattr(self, "_input_keys", None))

    def _standardize_targets(self, y):
        return _to_list(y, self.output_names, "y", self.name, getattr(self, "_output_keys", None))

    def _restructure_outputs(self, ys):
        if len(ys) == 1:
            return ys[0]
        kind = getattr(self, "_output_kind", "list")
        if kind == "dict":
            return dict(zip(self._output_keys, ys))
        return list(ys)

    # -- data checks ----------------------------------------------------------------------------
    def _prepare(self, x, y=None):
        xs = self._standardize_inputs(x)
        self._ensure_built(xs)
        xs = self.network.check_inputs(xs, self.name)
        n = len(xs[0])
        for t, xi in zip(self.network.inputs, xs):
            if len(xi) == 0:
                raise ValueError(
                    f"{self.name}: argument 'x' must not be empty; got shape {xi.shape}"
                )
            if len(xi) != n:
                raise ValueError(
                    f"{self.name}: all inputs must have the same number of samples; got "
                    f"{[len(v) for v in xs]}"
                )
        xs = [self._input_array(t, xi) for t, xi in zip(self.network.inputs, xs)]
        if y is None:
            return xs, None
        ys = self._standardize_targets(y)
        return xs, [self._target_array(yi, n, i) for i, yi in enumerate(ys)]

    def _input_array(self, t, x):
        dtype = np.dtype(t.dtype)
        if dtype.kind == "f":
            x = _as_float(x, dtype)
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{self.name}: argument 'x' contains NaN or Inf")
        return x

    def _target_array(self, y, n, i):
        y = np.asarray(y)
        arg = "y" if len(self.network.outputs) == 1 else f"y[{self.output_names[i]!r}]"
        if len(y) != n:
            raise ValueError(
                f"{self.name}: arguments 'x' and '{arg}' must have the same number of samples; "
                f"got {n} and {len(y)}"
            )
        if y.dtype.kind == "f":
            y = y.astype(self.network.outputs[i].dtype, copy=False)
            if not np.isfinite(y).all():
                raise ValueError(f"{self.name}: argument '{arg}' contains NaN or Inf")
        elif y.dtype.kind not in "iub":
            raise ValueError(f"{self.name}: argument '{arg}' must be numeric; got dtype {y.dtype}")
        return y

    # -- one step -------------------------------------------------------------------------------
    def _output_loss(self, i, y, y_pred, mask, loss_fn=None, targets_only=False):
        """Loss of output ``i``, its gradient, and the (valid) targets/predictions for metrics
        (``targets_only``: just the valid predictions)."""
        loss_fn = loss_fn or self.losses_per_output[i]
        if (
            not getattr(loss_fn, "sparse", False)
            and y.ndim == y_pred.ndim - 1
            and y_pred.shape[-1] == 1
        ):
            y = y[..., None]  # Keras accepts y (B,) for an output (B, 1)
        masked = mask is not None and y_pred.ndim == 3 and mask.shape == y_pred.shape[:2]
        if targets_only:
            return y_pred[mask] if masked else y_pred
        if masked:
            # masked sequence outputs: the loss is the mean over valid steps only (Keras)
            yv, pv = y[mask], y_pred[mask]
            loss = loss_fn(yv, pv)
            dy = np.zeros_like(y_pred)
            dy[mask] = loss_fn.grad(yv, pv)
            return loss, dy, yv, pv
        return (*loss_fn.value_and_grad(y, y_pred), y, y_pred)

    def _fused_loss(self, i, tape):
        """``(from-logits twin of output i's loss, logits)`` when the output is ``softmax(z)``
        and the loss a probability cross-entropy: training then takes the loss from ``z`` (as
        stable as ``from_logits=True``; the clipped probability form would lose the gradient
        once the softmax saturates). Else None."""
        loss = self.losses_per_output[i]
        cce = (losses_mod.CategoricalCrossentropy, losses_mod.SparseCategoricalCrossentropy)
        if tape is None or type(loss) not in cce or loss.from_logits:
            return None
        z = self.network.output_logits(i, tape)
        return None if z is None else (type(loss)(from_logits=True), z)

    def _losses(self, ys, preds, masks, state, with_grad=True, tape=None):
        """``(logs, dys, from_logits)``: weighted total loss and per-output losses, dLoss/d(each
        output), and for each output whether its softmax was fused with its cross-entropy (then
        its ``dys`` entry is dLoss/d(its logits)). The metrics accumulate in ``state`` (a
        :class:`MetricState`)."""
        total, dys, logs, from_logits = 0.0, [], {}, []
        names = self.output_names
        for i, (y, p, m) in enumerate(zip(ys, preds, masks)):
            fused = self._fused_loss(i, tape) if with_grad else None
            from_logits.append(fused is not None)
            if fused is None:
                loss, dy, yv, pv = self._output_loss(i, y, p, m)
            else:  # the metrics still see the probabilities
                loss, dy, yv, _ = self._output_loss(i, y, fused[1], m, fused[0])
                pv = self._output_loss(i, y, p, m, targets_only=True)
            w = self.loss_weights[i]
            total += w * loss
            if with_grad and not (w == 1.0 and type(dy) is np.ndarray and dy.dtype == p.dtype):
                dy = (dy * dy.dtype.type(w)).astype(p.dtype, copy=False)
            # (a weight of 1 and the output's dtype: the loss's own gradient, x * 1 == x
            # exactly; nothing downstream writes into it. A pass over the char LM's logits.)
            dys.append(dy if with_grad else None)
            prefix = "" if len(ys) == 1 else f"{names[i]}_"
            if len(ys) > 1:
                logs[f"{prefix}loss"] = float(loss)
            state.update(i, yv, pv)
        return {"loss": float(total), **logs}, dys, from_logits

    # -- buffers --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _scope(self, purpose, rows=None):
        """``backend.compute_scope`` (lstmkit's threads share the products) with one of this
        model's workspaces for ``purpose`` (``"train"``; ``"infer"``: predict, evaluate),
        reset, checked out by this thread for the duration and yielded. Every array the ops
        return inside stays valid until the scope's end or the next ``reset()``; two threads (or
        a nested call) never get the same workspace, and a forked child makes its own."""
        ws = self._checkout(purpose)
        ws.reset()
        try:
            with backend.compute_scope(rows=rows, workspace=ws):
                yield ws
        finally:
            self._idle_workspaces(purpose).append(ws)  # list.append/pop: atomic, no lock

    def _idle_workspaces(self, purpose) -> list:
        pools = self.__dict__.setdefault("_workspaces", {"train": [], "infer": []})
        return pools[purpose]

    def _checkout(self, purpose) -> Workspace:
        idle, pid = self._idle_workspaces(purpose), os.getpid()
        while True:
            try:
                ws = idle.pop()
            except IndexError:
                return Workspace()
            if ws.pid == pid:  # (one made before a fork belongs to the parent: dropped)
                return ws

    def release_buffers(self) -> None:
        """Release the buffers this model keeps between training steps and predictions (the
        next step allocates them again). Workspaces in use by a running step are left alone."""
        for idle in self.__dict__.get("_workspaces", {}).values():
            for ws in list(idle):
                ws.clear()

    def _train_step(self, xs, ys, rng, mask, state):
        """One update; returns the losses of the batch (the metrics accumulate in ``state``)."""
        ws = self._checkout("train")  # the step's buffers, reused by the next step: _scope
        ws.reset()  # ("train"), without its generator (a small model's step counts every us)
        try:
            with backend.compute_scope(workspace=ws):
                logs, grads, tape, params = self._step_gradients(xs, ys, rng, mask, state)
                self._apply_gradients(grads, tape, params)
        finally:
            self._idle_workspaces("train").append(ws)
        return logs

    def _gradients(self, xs, ys, rng, mask, state):
        """``(logs, grads, tape)`` of one batch, nothing updated: the half of a step that
        ``lstmkit.distributed`` runs on each worker's part of a global batch."""
        return self._step_gradients(xs, ys, rng, mask, state)[:3]

    def _step_gradients(self, xs, ys, rng, mask, state):
        """``_gradients`` and the ``trainable_params`` it read after the backward pass (a
        layer may build in its first forward), for the update: a dict built anew at each read,
        once per step so."""
        net = self.network
        preds, masks, tape = net.run(xs, training=True, masks=self._masks(mask), rng=rng)
        logs, dys, from_logits = self._losses(ys, preds, masks, state, tape=tape)
        grads = net.backward(dys, tape, from_logits=from_logits)
        logs["loss"] += self._regularization(grads, tape.caches)
        params = self.trainable_params
        for k in params.keys() - grads.keys():
            grads[k] = np.zeros_like(params[k])  # a parameter no output depends on
        return logs, grads, tape, params

    def _apply_gradients(self, grads, tape=None, params=None):
        """The optimizer update from ``grads``, then constraints and (with a tape) the moving
        statistics; the other half of a step. ``params``: ``trainable_params``, when the caller
        has it already."""
        self.optimizer.apply(self.trainable_params if params is None else params, grads)
        constraints_mod.apply_constraints(self.layers)  # Keras: after the update
        if tape is not None:
            self.network.apply_state_updates(tape)

    def _regularization(self, grads, caches):
        """The layers' regularization penalty (weights and activity), as Keras 3 adds it to the
        loss; the weight penalties' gradients are added to ``grads`` here, the activity
        penalties' ones were added by the layers' backward."""
        penalty, reg_grads = regularizers_mod.weight_penalty(self.layers)
        for name, g in reg_grads.items():
            grads[name] = grads[name] + g if name in grads else g
        if regularizers_mod.has_activity(self.layers):
            penalty += regularizers_mod.activity_penalty(caches)
        return float(penalty)

    @backend.one_path  # the compiled kernels, once ready, take over between calls
    def train_on_batch(self, x, y, mask=None, return_dict=False):
        """One optimisation step on one batch; returns the loss (before the update)."""
        self._require_compiled("train_on_batch")
        xs, ys = self._prepare(x, y)
        mask = _check_mask(f"{self.name}.train_on_batch", mask, xs[0])
        rng = _random.SeededLater([self.seed, self.optimizer.iterations])
        state = MetricState(self._metric_specs)
        logs = {**self._train_step(xs, ys, rng, mask, state), **state.results()}
        return logs if return_dict else _scalar_or_list(logs)

    @backend.one_path
    def test_on_batch(self, x, y, mask=None, return_dict=False):
        """The loss (and metrics) on one batch, without updating anything."""
        self._require_compiled("test_on_batch")
        logs = self.evaluate(x, y, batch_size=max(1, _n_samples(x)), return_dict=True, mask=mask)
        return logs if return_dict else _scalar_or_list(logs)

    @backend.one_path
    def predict_on_batch(self, x, mask=None):
        return self.predict(x, batch_size=max(1, _n_samples(x)), mask=mask)

    # -- truncated BPTT -------------------------------------------------------------------------
    def _check_tbptt(self, tbptt, xs, ys, mask):
        who = f"{self.name}.fit"
        if isinstance(tbptt, bool) or not isinstance(tbptt, (int, np.integer)) or tbptt < 1:
            raise ValueError(f"{who}: argument 'tbptt' must be a positive int; got {tbptt!r}")
        x, y = xs[0], ys[0]
        if len(xs) != 1 or len(ys) != 1:
            raise ValueError(f"{who}: tbptt needs a model with one input and one output")
        if x.ndim < 2 or y.ndim < 2 or y.shape[1] != x.shape[1]:
            raise ValueError(
                f"{who}: tbptt needs a target per time step, 'y' of shape (batch, "
                f"{x.shape[1] if x.ndim > 1 else 'timesteps'}, ...); got {y.shape}"
            )
        if mask is not None:
            raise ValueError(f"{who}: tbptt does not take a 'mask'; train on unpadded sequences")
        with self.carried_states(who):  # raises for layers that cannot carry state
            pass

    def _train_tbptt(self, x, y, k, seed, state):
        """One batch as consecutive chunks of ``k`` steps; returns step-weighted mean logs."""
        T = x.shape[1]
        sums = {}
        with self.carried_states("fit"):
            for a in range(0, T, k):
                rng = np.random.default_rng([*seed, a])
                logs = self._train_step([x[:, a : a + k]], [y[:, a : a + k]], rng, None, state)
                w = min(k, T - a) / T
                for key, v in logs.items():
                    sums[key] = sums.get(key, 0.0) + v * w
        return sums

    # -- fit ------------------------------------------------------------------------------------
    @backend.one_path
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
        distribute=None,
    ):
        """Keras' ``fit``. ``tbptt=K``: truncated backpropagation through time for long
        sequences: each batch is cut along time into chunks of ``K`` steps, one optimizer step
        per chunk, the recurrent state carried from chunk to chunk (gradients cut at the edge),
        so training memory depends on ``K``, not on the sequence length. Needs targets per time
        step, ``y (batch, timesteps, ...)``; the reported loss is the mean over all steps.

        ``distribute=lstmkit.distributed.RayStrategy(num_workers=N)``: data-parallel training
        on Ray workers, the same batches and updates as here (``docs/distributed.md``)."""
        who = f"{self.name}.fit"
        self._require_compiled("fit")
        if distribute is not None:  # the same epochs and batches, on the strategy's workers
            refused = {"tbptt": tbptt, "mask": mask, "validation_split": validation_split or None}
            return distribute.fit(self, x, y, epochs, batch_size, verbose, callbacks, shuffle,
                                  initial_epoch, validation_data, refused)  # fmt: skip
        epochs, initial_epoch = _check_fit_args(
            who, epochs, initial_epoch, validation_split, validation_data, shuffle
        )
        batch_size = _batch_size(who, batch_size)
        _check_verbose(who, verbose)
        xs, ys = self._prepare(x, y)
        mask = _check_mask(who, mask, xs[0])
        if tbptt is not None:
            self._check_tbptt(tbptt, xs, ys, mask)
        if validation_data is None and validation_split > 0:
            xs, ys, mask, validation_data = self._split_validation(xs, ys, mask, validation_split)
        n = len(xs[0])
        history = callbacks_mod.History()
        cbs = list(callbacks or [])
        if verbose not in (0, False):
            cbs.append(callbacks_mod.ProgressBar(verbose=1))
        steps = (n + batch_size - 1) // batch_size
        # the validation data checked (and cast) once, not at every epoch's end
        val = None if validation_data is None else self._checked_validation(validation_data)
        # callbacks read params (ProgressBar's "Epoch e/E", Keras' callback.params)
        params = {"epochs": epochs, "steps": steps, "verbose": verbose}
        cb = callbacks_mod.CallbackList([history, *cbs], model=self, params=params)
        self.stop_training = False
        cb.on_train_begin({})
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch, {"steps": steps})
            logs = self._fit_epoch(xs, ys, mask, epoch, batch_size, steps, shuffle, tbptt, cb)
            if val is not None:
                logs.update(self._checked_validation_logs(val, batch_size))
            self._epoch = epoch + 1
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end({})
        self.history = history
        return history

    def _split_validation(self, xs, ys, mask, fraction):
        # Keras takes the *last* fraction of the data, before any shuffling
        n = len(xs[0])
        split = int(n * (1.0 - fraction))
        if split < 1 or split >= n:
            raise ValueError(
                f"{self.name}.fit: validation_split={fraction} leaves no training or "
                f"no validation samples out of {n}"
            )
        val = ([x[split:] for x in xs], [y[split:] for y in ys])
        mask = None if mask is None else mask[:split]
        return [x[:split] for x in xs], [y[:split] for y in ys], mask, val

    def _fit_epoch(self, xs, ys, mask, epoch, batch_size, steps, shuffle, tbptt, cb):
        n = len(xs[0])
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if shuffle else None
        sums, seen, state = {}, 0, MetricState(self._metric_specs)
        for b in range(steps):
            lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
            # in order: a slice (views, no copy of the batch); shuffled: an index array
            idx = order[lo:hi] if shuffle else slice(lo, hi)
            rng = _random.SeededLater([self.seed, epoch, b])  # seeded when a layer draws
            cb.on_batch_begin(b, {})
            if shuffle:  # ndarray.take: the rows x[idx] gives, 3-4x faster on a small batch
                bx, by = [x.take(idx, axis=0) for x in xs], [y.take(idx, axis=0) for y in ys]
            else:
                bx, by = [x[idx] for x in xs], [y[idx] for y in ys]
            if tbptt is not None:
                logs = self._train_tbptt(bx[0], by[0], tbptt, [self.seed, epoch, b], state)
            else:
                m = None if mask is None else mask[idx]
                logs = self._train_step(bx, by, rng, m, state)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * (hi - lo)
            seen += hi - lo
            cb.on_batch_end(b, {**{k: s / seen for k, s in sums.items()}, **state.results()})
            if self.stop_training:  # Keras 3: a batch callback ends the epoch at once
                break
        return {**{k: s / seen for k, s in sums.items()}, **state.results()}

    def _validation_logs(self, validation_data, batch_size):
        return self._checked_validation_logs(self._checked_validation(validation_data), batch_size)

    def _checked_validation(self, validation_data):
        """``(xs, ys, mask)`` of ``validation_data`` as ``evaluate`` checks and casts them."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                f"{self.name}.fit: argument 'validation_data' must be (x_val, y_val) or "
                f"(x_val, y_val, mask); got {type(validation_data).__name__}"
            )
        vx, vy = validation_data[0], validation_data[1]
        vm = validation_data[2] if len(validation_data) > 2 else None
        xs, ys = self._prepare(vx, vy)
        return xs, ys, _check_mask(f"{self.name}.evaluate", vm, xs[0])

    def _checked_validation_logs(self, val, batch_size):
        """``evaluate`` on checked validation data, its keys prefixed ``val_``."""
        logs = self._evaluate_checked(*val, batch_size)
        return {f"val_{k}": v for k, v in logs.items()}

    # -- inference ------------------------------------------------------------------------------
    def _masks(self, mask):
        return None if mask is None else [mask] + [None] * (len(self.network.inputs) - 1)

    @backend.one_path
    def predict(self, x, batch_size=None, verbose=0, mask=None):
        """Outputs for ``x`` in batches of ``batch_size`` (None: 32, as Keras)."""
        if type(verbose) is not int or verbose != 0:  # checked in the order of the arguments
            _batch_size(f"{self.name}.predict", batch_size)
            _check_verbose(f"{self.name}.predict", verbose)
        plans = self.__dict__.get("_predict_plans")
        if plans is None:
            plans = self._predict_plans = PredictPlans()
        elif mask is None:  # the same call as before, its checks made then: predict_plan.py
            ys = plans.run(self, x, batch_size)
            if ys is not None:
                return ys
        given = batch_size
        batch_size = _batch_size(f"{self.name}.predict", batch_size)
        xs, _ = self._prepare(x)
        mask = _check_mask(f"{self.name}.predict", mask, xs[0])
        net, n = self.network, len(xs[0])
        outs = []
        with self._scope("infer", rows=min(n, batch_size)) as ws:
            for i in range(0, n, batch_size):
                if i:
                    ws.reset()  # one generation per batch
                m = None if mask is None else mask[i : i + batch_size]
                part = [v[i : i + batch_size] for v in xs] if n > batch_size else xs
                outs.append(_detached(ws, net.run(part, masks=self._masks(m), keep_cache=False)[0]))
        ys = outs[0] if len(outs) == 1 else [_concat(parts) for parts in zip(*outs)]
        plans.learn(self, x, xs, given, mask)
        return self._restructure_outputs(ys)

    def _evaluate_batch(self, xs, mask):
        """``(outputs, output masks, regularization penalty)``: Keras 3's evaluated loss
        includes the penalties too. Layers with an activity regularizer need the caches."""
        activity = regularizers_mod.has_activity(self.layers)
        preds, masks, tape = self.network.run(xs, masks=self._masks(mask), keep_cache=activity)
        penalty = regularizers_mod.weight_penalty(self.layers)[0]
        if activity:
            penalty += regularizers_mod.activity_penalty(tape.caches)
        return preds, masks, float(penalty)

    @backend.one_path
    def evaluate(self, x, y, batch_size=None, verbose=0, return_dict=False, mask=None):
        """Loss (and metrics) on ``x, y`` in batches of ``batch_size`` (None: 32, as Keras)."""
        self._require_compiled("evaluate")
        batch_size = _batch_size(f"{self.name}.evaluate", batch_size)
        _check_verbose(f"{self.name}.evaluate", verbose)
        xs, ys = self._prepare(x, y)
        mask = _check_mask(f"{self.name}.evaluate", mask, xs[0])
        out = self._evaluate_checked(xs, ys, mask, batch_size)
        return out if return_dict else _scalar_or_list(out)

    @backend.one_path
    def _evaluate_checked(self, xs, ys, mask, batch_size) -> dict:
        """``evaluate``'s logs once its arguments are checked (and cast)."""
        sums, seen, n, state = {}, 0, len(xs[0]), MetricState(self._metric_specs)
        with self._scope("infer") as ws:  # the outputs are read inside only
            for i in range(0, n, batch_size):
                if i:
                    ws.reset()
                logs, w = self._evaluate_rows(xs, ys, mask, i, batch_size, state)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v * w
                seen += w
        return {**{k: s / seen for k, s in sums.items()}, **state.results()}

    def _evaluate_rows(self, xs, ys, mask, i, batch_size, state):
        """``(logs, weight)`` of the rows ``i : i + batch_size``."""
        m = None if mask is None else mask[i : i + batch_size]
        bx, by = [v[i : i + batch_size] for v in xs], [v[i : i + batch_size] for v in ys]
        preds, masks, penalty = self._evaluate_batch(bx, m)
        logs, _, _ = self._losses(by, preds, masks, state, with_grad=False)
        logs["loss"] += penalty
        w = int(masks[0].sum()) if masks[0] is not None and preds[0].ndim == 3 else len(bx[0])
        return logs, w


class MetricState:
    """The metrics of one pass (an epoch, an evaluation) as Keras keeps them: one object per
    metric (``lstmkit.metrics.get_metric``) whose ``result()`` is the value over every batch so
    far, exactly (RMSE from the summed squares, F1 from the summed counts), not a mean of
    per-batch values. ``"accuracy"`` resolves from the first batch's shapes, as in Keras."""

    def __init__(self, specs):
        self._specs = specs  # per output: [(log key, identifier)]
        self._objects = {}

    def update(self, i, y_true, y_pred):
        for key, ident in self._specs[i]:
            obj = self._objects.get(key)
            if obj is None:
                obj = self._objects[key] = _metric_object(key, ident, y_true, y_pred)
                obj.reset_state()
            obj.update_state(y_true, y_pred)

    def results(self) -> dict:
        return {k: float(o.result()) for k, o in self._objects.items()}


def _metric_object(key, ident, y_true, y_pred):
    try:
        return metrics_mod.get_metric(ident, y_true, y_pred)
    except ValueError:  # e.g. plain "mase": its batch values, averaged over samples
        return metrics_mod.MeanMetricWrapper(metrics_mod.get(ident), name=key)


def _as_list(ms):
    return [] if ms is None else (list(ms) if isinstance(ms, (list, tuple)) else [ms])


def _metric_name(m):
    return (
        m
        if isinstance(m, str)
        else getattr(m, "name", None) or getattr(m, "__name__", type(m).__name__)
    )


def _scalar_or_list(logs):
    return logs["loss"] if len(logs) == 1 else list(logs.values())


def _detached(ws, out):
    """``out`` (an array, or lists of them) with every buffer behind it handed over from the
    workspace ``ws`` to the caller (:meth:`.Workspace.detach`): a later batch or call never
    overwrites what ``predict`` returned."""
    if isinstance(out, (list, tuple)):
        for a in out:
            _detached(ws, a)
    else:
        ws.detach(out)
    return out


def _concat(parts):
    if isinstance(parts[0], list):  # a layer returning [output, *states]
        return [np.concatenate(p) for p in zip(*parts)]
    return np.concatenate(parts)


def _n_samples(x):
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    return len(x)


def _to_list(x, names, arg, who, keys=None):
    """One array, a list (input order) or a dict (by name, or by the dict keys the model was
    built with) -> list in the model's order."""
    if isinstance(x, dict):
        lookup = dict(zip(keys, names)) if keys else {}
        by_name = {lookup.get(k, k): v for k, v in x.items()}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(
                f"{who}: argument '{arg}' is a dict without {missing}; expected keys "
                f"{list(keys or names)}"
            )
        return [by_name[n] for n in names]
    if len(names) > 1:
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            got = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
            raise ValueError(
                f"{who}: argument '{arg}' must be a list of {len(names)} arrays (or a dict) for "
                f"the inputs/outputs {names}; got {got}"
            )
        return list(x)
    if isinstance(x, (list, tuple)) and len(x) == 1 and hasattr(x[0], "shape"):
        return [x[0]]
    return [x]
