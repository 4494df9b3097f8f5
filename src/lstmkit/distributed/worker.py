"""One data-parallel replica: a Ray actor holding a shard of the data and a copy of the model.

This module does not import Ray; :func:`lstmkit.distributed.strategy` wraps :class:`Worker` with
``ray.remote`` when it starts the workers. The model travels as the bytes of an lstmkit model
file (safetensors + JSON, never a pickle), the data shard as NumPy arrays in the object store.

A step, for the worker of rank ``r`` of ``N`` (shard = rows ``r::N`` of the training data)::

    rows_r   the rows of global batch b that live in shard r     (n_r of the batch's n)
    g_r      lstmkit's own forward/backward on rows_r            (the mean gradient of n_r rows)
    buf      (n_r / n) * g_r, every trainable parameter flattened in one vector (P,)
    sum      sum_r buf over the workers (collective allreduce, or a tree / ring through the
             object store) = the mean gradient of the whole batch, whatever the shard sizes
    update   every replica applies the same optimizer step to the same sum: their weights and
             optimizer slots stay identical without ever being sent.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


def model_bytes(model) -> bytes:
    """``model`` (architecture, weights, optimizer state, seed) as the bytes of a model file."""
    from ..saving import save_model

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.lstmkit")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes, losses=None):
    """The model of :func:`model_bytes`, read through the checked, pickle-free loader.

    ``losses``: the driver model's loss objects, compiled in instead of the file's (a custom
    loss, such as the forecaster's pinball closure, has no name a file could restore; Ray ships
    the object itself, lstmkit's own code, never anything read from a file)."""
    from ..saving import _restore_compile, load_model, read_model_file

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.lstmkit")
        with open(path, "wb") as f:
            f.write(data)
        if losses is None:
            return load_model(path)
        model = load_model(path, compile=False)
        parsed, tensors = read_model_file(path, "RayStrategy", ("optimizer/",))
    comp = {**parsed["compile"], "loss": losses[0] if len(losses) == 1 else list(losses)}
    _restore_compile(model, comp, tensors, "the driver's model")
    return model


def file_tensors(data: bytes) -> tuple[dict, dict]:
    """``(weights, optimizer state)`` of the model file ``data``, by name."""
    from ..saving import read_model_file

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.lstmkit")
        with open(path, "wb") as f:
            f.write(data)
        _, tensors = read_model_file(path, "RayStrategy")
    split = ({}, {})
    for k, v in tensors.items():
        kind, _, name = k.partition("/")
        split[kind == "optimizer"][name] = v
    return split


class Worker:
    """A replica of rank ``rank`` of ``world``; ``shard`` = (xs, ys), rows rank::world."""

    def __init__(self, data: bytes, losses, shard, rank, world, group=None):
        self.model = model_from_bytes(data, losses)
        self.xs, self.ys = list(shard[0]), list(shard[1])
        self.rank, self.world = rank, world
        params = self.model.trainable_params
        self.names = list(params)
        self.sizes = [params[k].size for k in self.names]
        self.dtype = np.result_type(*[params[k].dtype for k in self.names])
        self.buf = np.zeros(sum(self.sizes), self.dtype)  # (P,) this step's weighted gradient
        self.group = group

    def pid(self) -> int:
        return os.getpid()

    def init_collective(self):
        """Join the gloo group (every rank calls this at the same time)."""
        from ray.util import collective

        collective.init_collective_group(self.world, self.rank, "gloo", self.group)
        return True

    # -- the gradient of this worker's part of a global batch
    def grad(self, epoch, b, lr, reset, local, total):
        """Fill ``buf`` with ``(n_r / total) * g_r`` for the shard rows ``local``; returns the
        part's logs, already weighted by ``n_r / total`` (the driver sums them)."""
        from ..models.training import MetricState
        from ..ops import backend

        m, n = self.model, len(local)
        if lr is not None:  # the driver's rate (a LearningRateScheduler callback sets it there)
            m.optimizer.learning_rate = lr
        if reset:  # stateful streams (truncated BPTT) start each epoch from zero states
            m.reset_states()
        self.buf[...] = 0
        if n == 0:  # an empty part: weight 0, contributes nothing
            return {}
        # N = 1 draws exactly what a local fit draws; otherwise one stream per rank (dropout
        # masks then differ from a local run: equivalence is exact for deterministic models)
        key = [m.seed, epoch, b] if self.world == 1 else [m.seed, epoch, b, self.rank]
        state = MetricState(m._metric_specs)
        # the model's workspace for the step, as in a local fit; the gradients are copied out
        # inside its scope (they are fresh arrays, but nothing read after it may come from it)
        with backend.one_path_scope(), m._scope("train"):
            xs = [x[local] for x in self.xs]
            ys = [y[local] for y in self.ys]
            logs, grads, _ = m._gradients(xs, ys, np.random.default_rng(key), None, state)
            w = n / total
            off = 0
            for k, size in zip(self.names, self.sizes):
                np.multiply(
                    grads[k].ravel(), self.buf.dtype.type(w), out=self.buf[off : off + size]
                )
                off += size
        return {k: v * w for k, v in {**logs, **state.results()}.items()}

    def grad_flat(self, epoch, b, lr, reset, local, total):
        """:meth:`grad`, and the weighted gradient itself (for the object-store reductions)."""
        return self.grad(epoch, b, lr, reset, local, total), self.buf

    # -- the update, identical on every replica
    def apply(self, total=None):
        """One optimizer step from ``total`` (the summed gradient, or None: ``buf``)."""
        flat = self.buf if total is None else total
        grads, off = {}, 0
        params = self.model.trainable_params
        for k, size in zip(self.names, self.sizes):
            grads[k] = flat[off : off + size].reshape(params[k].shape)
            off += size
        self.model._apply_gradients(grads)
        return True

    def step_collective(self, epoch, b, lr, reset, local, total):
        """grad, allreduce (gloo, in place on ``buf``), apply: one call per worker per step."""
        from ray.util import collective

        logs = self.grad(epoch, b, lr, reset, local, total)
        collective.allreduce(self.buf, self.group)
        self.apply()
        return logs

    # -- object-store reductions
    @staticmethod
    def add(a, b):
        """One node of the tree: the sum of two partial sums (fresh array: inputs are
        read-only views of the object store)."""
        return a + b

    def ring_chunk(self, k):
        """Chunk ``k`` of ``buf`` (the ring's first send)."""
        return self.buf[self._chunk(k)].copy()

    def ring_reduce(self, k, chunk):
        """Reduce-scatter: add the neighbour's chunk ``k`` to ours and pass the sum on."""
        s = self._chunk(k)
        self.buf[s] += chunk
        return self.buf[s].copy()

    def ring_set(self, k, chunk):
        """All-gather: take the finished chunk ``k`` and pass it on."""
        self.buf[self._chunk(k)] = chunk
        return chunk

    def _chunk(self, k):
        bounds = np.linspace(0, len(self.buf), self.world + 1).astype(int)
        return slice(bounds[k], bounds[k + 1])

    # -- state
    def snapshot(self, progress: dict) -> bytes:
        """The model file's bytes, with the training position in its metadata."""
        self.model.metadata = {**(self.model.metadata or {}), "lstmkit.distributed": progress}
        self.model._epoch = progress["epoch"]  # saved with the compile settings
        return model_bytes(self.model)

    def digest(self) -> str:
        """A hash of every weight and optimizer slot (the replicas must agree bit for bit)."""
        import hashlib

        h = hashlib.sha256()
        for k, v in sorted(self.model.params.items()):
            h.update(k.encode() + np.ascontiguousarray(v).tobytes())
        for k, v in sorted(self.model.optimizer.get_state().items()):
            h.update(k.encode() + np.ascontiguousarray(v).tobytes())
        return h.hexdigest()
