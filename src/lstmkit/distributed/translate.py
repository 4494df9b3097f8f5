"""``train_translator(..., distribute=RayStrategy(N))``: data-parallel training of the translator.

The driver keeps :func:`~lstmkit.apps.translate_train.train_translator`'s own loop (the
length-sorted batches drawn from its seeded generator, the validation loss and BLEU, early
stopping, ``max_minutes``, the best checkpoint); only the step goes to the workers::

    idx      a global batch of pair indices, exactly as the local loop draws it
    part r   the pairs of idx that live in shard r (pair i is pair i // N of shard i % N)
    n_r      the part's target tokens (each target's tokens + EOS: what the loss scores);
             n = sum_r n_r, counted by the driver and checked against the workers' counts
    g_r      Translator.loss_and_grads on part r: a mean over its n_r tokens
    buf      (n_r / n) * g_r, flattened (P,); the sum over r is the batch's mean gradient,
             however unevenly the tokens split (a plain mean of the g_r would not be)
    update   every replica clips the sum's global norm and applies Adam: the same arithmetic
             on the same vector, so weights and optimizer slots stay identical, never sent

The sum goes through the strategy's reductions (tree, ring or gloo allreduce:
:mod:`lstmkit.distributed.reduce`) and :meth:`RayStrategy.step`; the workers are
:class:`~lstmkit.distributed.worker.Worker` with the translator's gradient and update.

Faults: the driver keeps the replicas' state at each epoch's start (rank 0's model file and
Adam slots, in memory) and the batches done since; a worker that dies makes it restart all
``N`` workers from that state, replay those batches (the same updates) and retry, logged as the
other fits log it. The durable checkpoint is the best model file (``out``).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .strategy import log
from .train import _parts
from .worker import Worker


def translator_bytes(model) -> bytes:
    """The weights and architecture of ``model`` as a translator file's bytes (no metadata:
    the tokenizers stay on the driver)."""
    from ..apps.translate_files import save_translator

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.lstmkit")
        save_translator(model, path, metadata={})
        with open(path, "rb") as f:
            return f.read()


def translator_from_bytes(data: bytes):
    """The model of :func:`translator_bytes`, through the checked, pickle-free loader."""
    from ..apps.translate_files import load_translator

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.lstmkit")
        with open(path, "wb") as f:
            f.write(data)
        return load_translator(path)


class TranslatorWorker(Worker):
    """A replica: ``data = (translator file bytes, Adam state or None)``, ``shard =
    (sources, targets)``, the pairs ``rank::world``. ``losses`` is unused (the translator's
    loss is its own)."""

    def __init__(self, data, losses, shard, rank, world, group=None):
        from ..optimizers import Adam

        model_file, opt_state = data
        self.model = translator_from_bytes(model_file)
        self.opt = Adam(learning_rate=self.model.config.learning_rate)
        if opt_state is not None:
            self.opt.set_state(opt_state)
        self.src, self.tgt = list(shard[0]), list(shard[1])
        self.rank, self.world, self.group = rank, world, group
        params = self.model.params
        self.names = list(params)
        self.sizes = [params[k].size for k in self.names]
        self.buf = np.zeros(sum(self.sizes), self.model.dtype)  # (P,) weighted gradient

    def grad(self, epoch, b, lr, reset, local, total):
        """Fill ``buf`` with ``(n_r / total) * g_r`` for the shard's pairs ``local``
        (``total``: the batch's target tokens) -> ``{"loss": loss * n_r / total, "tokens":
        n_r}``. ``lr`` and ``reset`` are unused (a constant rate, no carried state)."""
        from ..apps.translate_train import padded

        self.buf[...] = 0
        if len(local) == 0:  # an empty part: weight 0
            return {}
        src = padded([self.src[i] for i in local])
        tgt = padded([self.tgt[i] for i in local], bos_eos=True)
        # dropout masks: one stream per (epoch, batch, rank); with dropout 0 none is drawn
        rng = np.random.default_rng([self.model.config.seed, epoch, b, self.rank])
        loss, n, grads = self.model.loss_and_grads(src, tgt, rng)
        w = n / total
        off = 0
        for k, size in zip(self.names, self.sizes):
            np.multiply(grads[k].ravel(), self.buf.dtype.type(w), out=self.buf[off : off + size])
            off += size
        return {"loss": loss * w, "tokens": n}

    def apply(self, total=None):
        """Clip the summed gradient's global norm, then Adam (skipped when the norm is not
        finite, as the local step skips it): the same on every replica."""
        import math

        from ..apps.translate_train import clip_global_norm

        if total is not None:  # the tree's sum: a read-only view of the object store
            self.buf[...] = total
        grads, off = {}, 0
        for k, size in zip(self.names, self.sizes):
            grads[k] = self.buf[off : off + size].reshape(self.model.params[k].shape)
            off += size
        if math.isfinite(clip_global_norm(grads, self.model.config.clipnorm)):
            self.opt.apply(self.model.params, grads)
        return True

    def snapshot(self, progress=None):
        """``(translator file bytes, Adam state)``: what a new worker starts from."""
        return translator_bytes(self.model), self.opt.get_state()


class TranslatorSteps:
    """The distributed steps of :func:`~lstmkit.apps.translate_train.train_translator`:
    ``begin(epoch)``, ``step(idx) -> (loss, target tokens)``, ``end(model)`` (the replicas'
    weights into the driver's model), ``close()``."""

    def __init__(self, strategy, model, train):
        if strategy.checkpoint_dir is not None or strategy.checkpoint_every is not None:
            raise ValueError(
                "train_translator: argument 'distribute' takes no checkpoint_dir or "
                "checkpoint_every (a restart replays from the epoch's start, kept in memory; "
                "the durable checkpoint is the best model file, out=); got "
                f"checkpoint_dir={strategy.checkpoint_dir!r}, "
                f"checkpoint_every={strategy.checkpoint_every!r}"
            )
        self.s, self.ray = strategy, strategy.connect()
        src, tgt = train
        self.n = n = strategy.workers_wanted(self.ray)
        if n > len(src):
            raise ValueError(
                f"train_translator: RayStrategy(num_workers={n}) needs at least {n} training "
                f"pairs; got {len(src)}"
            )
        self.tokens = np.array([len(t) + 1 for t in tgt])  # scored targets per pair (+ EOS)
        self.shards = [self.ray.put((src[r::n], tgt[r::n])) for r in range(n)]
        self.start = (translator_bytes(model), None)  # the state at this epoch's start
        self.done, self.epoch = [], 0  # the batches of this epoch applied so far
        self.stale = False  # restarted workers that have not replayed ``done`` yet
        strategy.restarts = 0
        n_params = sum(p.size for p in model.params.values())
        try:
            strategy.start_workers(self.ray, self.start, self.shards, n, (), n_params,
                                   worker=TranslatorWorker)  # fmt: skip
        except BaseException:  # a timeout, Ctrl-C: no actors left behind
            strategy.stop_workers(self.ray)
            raise

    def begin(self, epoch):
        self.epoch, self.done = epoch, []

    def step(self, idx):
        idx = np.asarray(idx)
        out = self._retry(lambda: self._step(len(self.done), idx))
        self.done.append(idx)
        return out

    def _retry(self, call):
        """``call()``; after a worker failure: restart, replay this epoch's batches, again."""
        while True:
            try:
                if self.stale:  # new workers at the epoch's start: the same batches again
                    for b, idx in enumerate(self.done):
                        self._step(b, idx)
                    self.stale = False
                return call()
            except self.ray.exceptions.RayActorError as e:
                self._restart(e)

    def _step(self, b, idx):
        total = int(self.tokens[idx].sum())
        logs = self.s.step(self.ray, self.epoch, b, None, _parts(idx, self.n), total)
        if round(logs.get("tokens", 0)) != total:  # the weights assume the driver's count
            raise RuntimeError(
                f"train_translator: the workers scored {logs.get('tokens', 0):.0f} target "
                f"tokens, the driver counted {total}"
            )
        return logs["loss"], total

    def _restart(self, error):
        s = self.s
        s.restarts += 1
        if s.restarts > s.max_restarts:
            raise RuntimeError(
                f"RayStrategy: a worker failed ({type(error).__name__}) after "
                f"{s.max_restarts} restarts; training stopped in epoch {self.epoch}"
            ) from error
        log.warning(
            "RayStrategy: worker failed (%s); restarting %d workers from the start of epoch %d "
            "and replaying %d batches (restart %d of at most %d)",
            type(error).__name__, self.n, self.epoch, len(self.done), s.restarts,
            s.max_restarts,
        )  # fmt: skip
        s.start_workers(self.ray, self.start, self.shards, self.n)
        self.stale = True

    def end(self, model):
        """The replicas' weights into ``model`` (validation, BLEU and the best checkpoint run
        on the driver); also the restart point of the next epoch."""
        self.start = self._retry(lambda: self.s.snapshot(self.ray, None))
        replica = translator_from_bytes(self.start[0])
        for k, p in model.params.items():
            p[...] = replica.params[k]

    def close(self):
        self.s.stop_workers(self.ray)
