"""``RayStrategy``: ``model.fit(x, y, ..., distribute=RayStrategy(num_workers=N))``.

The driver (the process that calls ``fit``) draws exactly the batches a local ``fit`` draws
(epoch e's order from ``default_rng([seed, e])``, batch b = ``order[b*B:(b+1)*B]``) and tells
each worker which of its shard's rows are in batch b; the workers do the arithmetic
(:mod:`lstmkit.distributed.worker`) and the reduction (:mod:`lstmkit.distributed.reduce`).
Only row indices, the per-step losses and, at checkpoints, the model file travel through it.

Faults: every ``checkpoint_every`` steps and at each epoch's end rank 0 sends the model file
(weights, optimizer state, seed, and the position ``{epoch, batch, sums}`` in its metadata); with
``checkpoint_dir`` it is written atomically to ``checkpoint_dir/checkpoint.lstmkit``, a normal
model file. A worker that dies (its process killed, its node lost) raises ``RayActorError`` on
the driver; the driver then kills the others, starts ``num_workers`` new ones from the last
checkpoint, logs that it did (logger ``lstmkit.distributed``, level WARNING) and replays from
there: the same batches, the same updates, so the run ends where an uninterrupted one would.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

import numpy as np

from . import reduce as reduce_mod
from .worker import Worker, file_tensors

log = logging.getLogger("lstmkit.distributed")

CHECKPOINT_FILE = "checkpoint.lstmkit"
#: parameters from which ``reduce="auto"`` takes the gloo allreduce over the object-store tree
COLLECTIVE_FROM = 50_000
#: seconds for the workers to start (and join their collective group) before giving up
START_TIMEOUT = 300.0


def import_ray(feature="RayStrategy"):
    """Ray, or ``MissingExtraError`` saying ``pip install 'lstmkit[ray]'``."""
    from .._optional import require

    return require("ray", feature, "ray")


def _positive_or_none(name, v):
    ok = v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1)
    if not ok:
        raise ValueError(
            f"RayStrategy: argument '{name}' must be a positive int or None; got {v!r}"
        )
    return None if v is None else int(v)


class RayStrategy:
    """Synchronous data-parallel training on ``num_workers`` Ray actors.

    ``address``: None starts (or reuses) a local Ray instance with this machine's cores; ``"auto"``
    or ``"host:6379"`` joins a running cluster (``ray start --head`` / ``ray start --address``).
    ``reduce``: how gradients are summed, ``"collective"`` (gloo allreduce), ``"ring"`` or
    ``"tree"`` (through the object store); ``"auto"`` picks the fastest measured here
    (``docs/distributed.md``). ``object_store_memory``: bytes, for a local instance only.
    ``checkpoint_dir``: where the atomic checkpoint file goes (None: kept in the driver's memory
    only). ``checkpoint_every``: steps between checkpoints (None: at each epoch's end).
    ``max_restarts``: worker failures survived per ``fit`` before giving up.
    """

    def __init__(
        self,
        num_workers=None,
        address=None,
        reduce="auto",
        object_store_memory=None,
        checkpoint_dir=None,
        checkpoint_every=None,
        max_restarts=3,
    ):
        self.num_workers = _positive_or_none("num_workers", num_workers)
        if address is not None and (not isinstance(address, str) or not address):
            raise ValueError(
                f"RayStrategy: argument 'address' must be None, 'auto' or 'host:port'; "
                f"got {address!r}"
            )
        if reduce not in reduce_mod.REDUCES:
            raise ValueError(
                f"RayStrategy: argument 'reduce' must be one of {list(reduce_mod.REDUCES)}; "
                f"got {reduce!r}"
            )
        self.address, self.reduce = address, reduce
        self.object_store_memory = _positive_or_none("object_store_memory", object_store_memory)
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.checkpoint_every = _positive_or_none("checkpoint_every", checkpoint_every)
        if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 0:
            raise ValueError(
                f"RayStrategy: argument 'max_restarts' must be an int >= 0; got {max_restarts!r}"
            )
        self.max_restarts = max_restarts
        self.restarts = 0  # worker failures survived by the last fit
        self._workers = []

    def __repr__(self):
        return (
            f"RayStrategy(num_workers={self.num_workers!r}, address={self.address!r}, "
            f"reduce={self.reduce!r})"
        )

    # -- Ray
    def connect(self):
        """Ray, initialised: the running instance, else ``address``, else a new local one."""
        ray = import_ray()
        if not ray.is_initialized():
            kw = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None and self.object_store_memory is not None:
                kw["object_store_memory"] = self.object_store_memory
            ray.init(address=self.address, **kw)
        return ray

    def workers_wanted(self, ray):
        return self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def worker_pids(self):
        """The process ids of the current workers (a test kills one of them)."""
        ray = import_ray()
        return ray.get([w.pid.remote() for w in self._workers])

    def resolved_reduce(self, n, n_params):
        """``reduce``, or for "auto" the fastest measured here (docs/distributed.md): the gloo
        allreduce from ``COLLECTIVE_FROM`` parameters up when torch is installed (its actors
        import it), else the tree through the object store; one worker reduces nothing."""
        if n == 1:
            return "none"
        if self.reduce != "auto":
            return self.reduce
        import importlib.util

        torch = importlib.util.find_spec("torch") is not None
        return "collective" if torch and n_params >= COLLECTIVE_FROM else "tree"

    # -- fit
    def fit(self, model, x, y, epochs, batch_size, verbose, callbacks, shuffle, initial_epoch,
            validation_data=None, unsupported=None, reset_states=False):  # fmt: skip
        """``model.fit(..., distribute=self)``: the same batches and updates as a local fit;
        ``validation_data`` is evaluated by the driver at each epoch's end. ``reset_states``:
        the workers reset the recurrent states at each epoch's start (stateful streams,
        :func:`lstmkit.apps.text.fit_tbptt`)."""
        from .train import run_fit

        return run_fit(self, model, (x, y, validation_data), epochs, batch_size, verbose,
                       callbacks, shuffle, initial_epoch, unsupported or {},
                       reset_states)  # fmt: skip

    # -- workers
    def start_workers(self, ray, data: bytes, shards, n, losses=None, n_params=0, worker=None):
        """``n`` new actors from the model file ``data`` and the driver's ``losses`` (None:
        the last ones, and the last ``worker`` class) for a model of ``n_params`` trainable
        parameters; ``shards[r]``: a ref to (xs, ys). ``worker``: the actor class (default
        :class:`Worker`; the translator has its own)."""
        self.stop_workers(ray)
        if losses is not None:  # kept for the restarts
            self._losses = list(losses)
            self._n_params = n_params
            self._worker_cls = worker or Worker
        mode = self.resolved_reduce(n, self._n_params)
        group = f"lstmkit-{uuid.uuid4().hex[:12]}" if mode == "collective" else None
        # one CPU each, or an equal share when asking for more workers than the cluster has
        cpus = ray.cluster_resources().get("CPU", 1.0)
        actor = ray.remote(self._worker_cls).options(
            num_cpus=min(1.0, cpus / n),
            max_restarts=0,  # the driver restarts from a checkpoint itself
            runtime_env={"env_vars": {"LSTMKIT_NUM_THREADS": "1"}},
        )
        data_ref = ray.put(data)
        self._workers = [
            actor.remote(data_ref, self._losses, shards[r], r, n, group) for r in range(n)
        ]
        ready = [w.init_collective.remote() if group else w.pid.remote() for w in self._workers]
        wait_all(ray, ready, timeout=START_TIMEOUT, what=f"starting {n} workers")
        self._mode = mode
        return self._workers

    def stop_workers(self, ray):
        for w in self._workers:
            ray.kill(w, no_restart=True)
        self._workers = []

    def step(self, ray, epoch, b, lr, parts, total, reset=False):
        """One synchronous step on every worker -> the batch's logs (summed weighted logs).
        ``lr``: the driver's constant learning rate (None: a schedule, the workers' own);
        ``reset``: the workers reset their recurrent states first."""
        ws, args = self._workers, (epoch, b, lr, reset)
        if self._mode == "collective":
            logs = [w.step_collective.remote(*args, p, total) for w, p in zip(ws, parts)]
            done = []
        elif self._mode == "tree":
            pairs = [
                w.grad_flat.options(num_returns=2).remote(*args, p, total)
                for w, p in zip(ws, parts)
            ]
            logs = [lg for lg, _ in pairs]
            done = reduce_mod.tree(ws, [f for _, f in pairs])
        else:  # ring, or one worker ("none"): buf is already the whole batch's gradient
            logs = [w.grad.remote(*args, p, total) for w, p in zip(ws, parts)]
            done = reduce_mod.ring(ws) if self._mode == "ring" else [ws[0].apply.remote()]
        results = wait_all(ray, logs + done)[: len(logs)]
        out = {}
        for r in results:
            for k, v in r.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def snapshot(self, ray, progress) -> bytes:
        return wait_all(ray, [self._workers[0].snapshot.remote(progress)])[0]


def wait_all(ray, refs, timeout=None, what=None):
    """``ray.get(refs)``, raising as soon as any of them fails (``ray.get`` of a list would
    first wait on a worker blocked in an allreduce whose partner has died); ``timeout``
    seconds in all, then ``TimeoutError`` naming ``what``."""
    pending, end = list(refs), None if timeout is None else time.monotonic() + timeout
    while pending:
        left = None if end is None else max(0.0, end - time.monotonic())
        ready, pending = ray.wait(pending, num_returns=1, timeout=left)
        if not ready:
            raise TimeoutError(
                f"RayStrategy: {what} took more than {timeout:.0f} s (is the cluster out of "
                f"CPUs or memory? ray status shows it)"
            )
        ray.get(ready)
    return ray.get(list(refs))


def copy_into(model, data: bytes):
    """Copy the weights and optimizer state of the model file ``data`` into ``model``."""
    from ..saving import assign_params

    weights, state = file_tensors(data)
    assign_params(model.params, weights, source="RayStrategy")
    model.optimizer.set_state(state)
