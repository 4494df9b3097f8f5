"""The driver's loop of a distributed ``fit``: batches, callbacks, checkpoints, restarts."""

from __future__ import annotations

import os

import numpy as np

from .. import callbacks as callbacks_mod
from .._atomic import atomic_write
from ..models import training as tr
from .strategy import CHECKPOINT_FILE, copy_into, log
from .worker import model_bytes


def _check(model, who, unsupported):
    given = sorted(k for k, v in unsupported.items() if v is not None)
    if given:
        raise ValueError(
            f"{who}: argument 'distribute' does not take {given} yet; train with "
            f"distribute=None for those"
        )
    stateful = [la.name for la in model.layers if getattr(la, "non_trainable_roles", ())]
    if stateful:
        raise ValueError(
            f"{who}: argument 'distribute' needs a model without moving statistics (each "
            f"replica would update its own); layers {stateful} have non-trainable state"
        )


def _shards(ray, xs, ys, n):
    """Shard r = rows r::n (sizes differ by at most one), put once in the object store."""
    return [ray.put(([x[r::n] for x in xs], [y[r::n] for y in ys])) for r in range(n)]


def _rate(model):
    """The driver's learning rate when it is a constant (callbacks may change it), else None."""
    from ..optimizers.schedules import LearningRateSchedule

    lr = model.optimizer._learning_rate
    return None if isinstance(lr, LearningRateSchedule) else float(lr)


def _parts(idx, n):
    """Global batch rows ``idx`` -> for each worker r, the positions in its shard of the rows
    that live there (row i is row i // n of shard i % n)."""
    return [idx[idx % n == r] // n for r in range(n)]


class _Run:
    """The position of a distributed fit, and the checkpoint it can go back to."""

    def __init__(self, strategy, ray, model, shards, n):
        self.s, self.ray, self.model, self.shards, self.n = strategy, ray, model, shards, n
        self.ckpt = None  # (model file bytes, progress dict)
        self.val, self.batch_size, self.reset_states = None, None, False

    def epoch_logs(self, sums, seen):
        """The epoch's mean logs, and the validation ones (the driver holds the epoch's
        weights by now)."""
        logs = {k: v / seen for k, v in sums.items()}
        if self.val is not None:
            logs.update(self.model._validation_logs(self.val, self.batch_size))
        return logs

    def save(self, progress):
        progress = _copy(progress)
        data = self.s.snapshot(self.ray, progress)
        self.ckpt = (data, progress)
        if self.s.checkpoint_dir is not None:
            path = os.path.join(self.s.checkpoint_dir, CHECKPOINT_FILE)
            atomic_write(path, lambda tmp: open(tmp, "wb").write(data))  # noqa: SIM115
        return data

    def restart(self, error):
        s = self.s
        s.restarts += 1
        data, progress = self.ckpt
        if s.restarts > s.max_restarts:
            raise RuntimeError(
                f"RayStrategy: a worker failed ({type(error).__name__}) after "
                f"{s.max_restarts} restarts; the last checkpoint is at epoch "
                f"{progress['epoch']} batch {progress['batch']}"
            ) from error
        log.warning(
            "RayStrategy: worker failed (%s); restarting %d workers from the checkpoint at "
            "epoch %d, batch %d (restart %d of at most %d)",
            type(error).__name__,
            self.n,
            progress["epoch"],
            progress["batch"],
            s.restarts,
            s.max_restarts,
        )
        s.start_workers(self.ray, data, self.shards, self.n)
        return _copy(progress)


def _copy(progress):
    return {**progress, "sums": dict(progress["sums"])}


def run_fit(s, model, data, epochs, batch_size, verbose, callbacks, shuffle, initial_epoch,
            unsupported, reset_states=False):  # fmt: skip
    """``data = (x, y, validation_data)``; the rest as ``Trainable.fit``."""
    who = f"{model.name}.fit"
    x, y, val = data
    epochs, initial_epoch = tr._check_fit_args(who, epochs, initial_epoch, 0.0, val, shuffle)
    batch_size = tr._batch_size(who, batch_size)
    tr._check_verbose(who, verbose)
    xs, ys = model._prepare(x, y)
    _check(model, who, unsupported)
    ray = s.connect()
    n_rows, n = len(xs[0]), s.workers_wanted(ray)
    if n > n_rows:
        raise ValueError(
            f"{who}: RayStrategy(num_workers={n}) needs at least {n} samples; got {n_rows}"
        )
    steps = -(-n_rows // batch_size)
    history = callbacks_mod.History()
    cbs = [history, *(callbacks or [])]
    if verbose not in (0, False):
        cbs.append(callbacks_mod.ProgressBar(verbose=1))
    cb = callbacks_mod.CallbackList(
        cbs, model=model, params={"epochs": epochs, "steps": steps, "verbose": verbose}
    )
    run = _Run(s, ray, model, _shards(ray, xs, ys, n), n)
    run.val, run.batch_size, run.reset_states = val, batch_size, reset_states
    s.restarts, model.stop_training = 0, False
    data = model_bytes(model)
    n_params = sum(p.size for p in model.trainable_params.values())
    s.start_workers(ray, data, run.shards, n, model.losses_per_output, n_params)
    run.ckpt = (data, {"epoch": initial_epoch, "batch": 0, "sums": {}})
    cb.on_train_begin({})
    try:
        _loop(run, cb, epochs, initial_epoch, batch_size, steps, shuffle, n_rows)
    finally:
        s.stop_workers(ray)
    cb.on_train_end({})
    model.history = history
    return history


def _loop(run, cb, epochs, initial_epoch, batch_size, steps, shuffle, n_rows):
    s, ray, model = run.s, run.ray, run.model
    pos, orders = {"epoch": initial_epoch, "batch": 0, "sums": {}}, {}
    while pos["epoch"] < epochs:
        epoch, b = pos["epoch"], pos["batch"]
        if b == 0:
            cb.on_epoch_begin(epoch, {"steps": steps})
        if shuffle and epoch not in orders:  # drawn once per epoch, as a local fit does
            orders = {epoch: np.random.default_rng([model.seed, epoch]).permutation(n_rows)}
        lo, hi = b * batch_size, min(n_rows, (b + 1) * batch_size)
        idx = orders[epoch][lo:hi] if shuffle else np.arange(lo, hi)
        cb.on_batch_begin(b, {})
        try:
            reset = run.reset_states and b == 0
            logs = s.step(ray, epoch, b, _rate(model), _parts(idx, run.n), hi - lo, reset)
        except ray.exceptions.RayActorError as e:
            pos = run.restart(e)
            continue
        sums = pos["sums"]
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + v * (hi - lo)
        pos, seen = {"epoch": epoch, "batch": b + 1, "sums": sums}, min(n_rows, hi)
        cb.on_batch_end(b, {k: v / seen for k, v in sums.items()})
        last = b + 1 == steps or model.stop_training
        nxt = {"epoch": epoch + 1, "batch": 0, "sums": {}} if last else pos
        try:  # a worker lost while saving: back to the previous checkpoint too
            due = last or (s.checkpoint_every and (b + 1) % s.checkpoint_every == 0)
            data = run.save(nxt) if due else None
        except ray.exceptions.RayActorError as e:
            pos = run.restart(e)
            continue
        pos = nxt
        if last:
            copy_into(model, data)  # epoch-end callbacks see the current weights
            model._epoch = epoch + 1
            cb.on_epoch_end(epoch, run.epoch_logs(sums, seen))
            if model.stop_training:
                break
