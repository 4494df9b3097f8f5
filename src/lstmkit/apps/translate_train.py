"""Training a :class:`~.translate_model.Translator` on integer sentence pairs.

- batches of ``batch_size`` from length-sorted pools: the pairs are shuffled (seeded), cut into
  pools of ``pool_batches`` batches, each pool sorted by source then target length and cut into
  batches, and the batches shuffled (little padding, still random);
- Adam (:class:`lstmkit.optimizers.Adam`) after clipping the gradients' global norm to
  ``clipnorm`` (computed here in the parameters' dtype: no float64 copy of 10M gradients);
- after each epoch: the validation loss (mean NLL per target token, no smoothing, no dropout),
  then ``on_epoch_end(model, logs)`` whose returned dict joins the logs (e.g. ``{"bleu": ...}``);
  the ``monitor``-ed value decides the best epoch (``*loss`` lower is better, else higher) and
  early stopping after ``patience`` epochs without improvement;
- ``max_minutes``: training stops when the time is up (checked after every batch); the partial
  epoch is validated like a full one;
- the best weights are kept: restored into the model at the end and, with ``out``, saved
  atomically (:func:`~.translate_files.save_translator`) whenever they improve. A non-finite
  loss stops training (``"diverged"``) and never reaches the file;
- ``distribute=RayStrategy(N)``: the same batches, each split over N Ray workers whose gradients
  are averaged weighted by their target tokens, then the same clipping and Adam step on every
  replica (:mod:`lstmkit.distributed.translate`); everything else stays here, on the driver.

Sequences are lists of token ids; targets without BOS/EOS (added here). Pairs with a side
longer than ``max_len`` tokens are dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..optimizers import Adam
from .translate_data import pad_batch
from .translate_loss import smoothed_cross_entropy
from .translate_model import BOS, EOS, PAD, Translator

#: batches between two progress lines
LOG_EVERY = 50


def padded(seqs, bos_eos=False) -> np.ndarray:
    """Post-padded ``(B, longest)`` int64 ids (:func:`~.translate_data.pad_batch`, the one
    padding function); with ``bos_eos`` each row is ``BOS ... EOS``."""
    if bos_eos:
        seqs = [[BOS, *s, EOS] for s in seqs]
    return pad_batch([np.asarray(s, dtype=np.int64) for s in seqs], PAD)[0].astype(np.int64)


def length_sorted_batches(src_lens, tgt_lens, batch_size, pool_batches, rng) -> list:
    """Index arrays of the batches of one epoch (module docstring)."""
    order = rng.permutation(len(src_lens))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        idx = order[start : start + pool]
        idx = idx[np.lexsort((np.asarray(tgt_lens)[idx], np.asarray(src_lens)[idx]))]
        batches += [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _check_pairs(name, pairs, max_len):
    """``(sources, targets)`` lists of id lists -> the pairs within ``max_len``."""
    try:
        src, tgt = pairs
        src, tgt = list(src), list(tgt)
    except (TypeError, ValueError):
        raise ValueError(
            f"train_translator: argument {name!r} must be (sources, targets), two lists of "
            f"token-id lists; got {type(pairs).__name__}"
        ) from None
    if len(src) != len(tgt):
        raise ValueError(
            f"train_translator: argument {name!r} has {len(src)} sources and {len(tgt)} targets"
        )
    keep = [i for i in range(len(src)) if 0 < len(src[i]) <= max_len and len(tgt[i]) <= max_len]
    if not keep:
        raise ValueError(
            f"train_translator: argument {name!r} has no pair with 1 to {max_len} source tokens "
            f"and at most {max_len} target tokens ({len(src)} pairs given)"
        )
    return [src[i] for i in keep], [tgt[i] for i in keep]


def validation_loss(model: Translator, pairs, batch_size=None) -> float:
    """Mean NLL per target token (teacher forcing, no smoothing, no dropout)."""
    src, tgt = pairs
    batch_size = batch_size or model.config.batch_size
    total = count = 0.0
    for i in range(0, len(src), batch_size):
        s, t = padded(src[i : i + batch_size]), padded(tgt[i : i + batch_size], True)
        memory, state, _ = model.encode(s)
        emb = model.params["tgt_embedding.embeddings"][t[:, :-1]]
        tilde = []
        for step in range(emb.shape[1]):
            state, h_tilde, _, _ = model.decoder_step(state, emb[:, step], memory)
            tilde.append(h_tilde)
        valid = t[:, 1:] != PAD
        rows = np.stack(tilde, 1)[valid]
        loss, _ = smoothed_cross_entropy(model.output_logits(rows), t[:, 1:][valid], 0.0)
        total, count = total + loss * len(rows), count + len(rows)
    return total / count


def clip_global_norm(grads: dict, limit: float) -> float:
    """Scale ``grads`` in place so their global L2 norm is at most ``limit``; returns the norm
    before clipping."""
    norm = math.sqrt(sum(float(np.vdot(g.ravel(), g.ravel())) for g in grads.values()))
    if norm > limit:
        for g in grads.values():
            g *= g.dtype.type(limit / norm)
    return norm


def train_step(model: Translator, opt, src, tgt, rng) -> tuple[float, int]:
    """One update: loss and gradients, global-norm clipping, ``opt.apply``. Returns ``(loss,
    target tokens)``; with a non-finite loss or gradient norm the weights are left untouched
    and the loss returned is NaN."""
    loss, n, grads = model.loss_and_grads(src, tgt, rng)
    if not math.isfinite(loss) or not math.isfinite(clip_global_norm(grads, model.config.clipnorm)):
        return float("nan"), n
    opt.apply(model.params, grads)
    return loss, n


class _LocalSteps:
    """The steps of one process: ``begin(epoch)``, ``step(idx) -> (loss, target tokens)``,
    ``end(model)``, ``close()`` (what :class:`lstmkit.distributed.translate.TranslatorSteps`
    does on Ray workers)."""

    def __init__(self, model, train, rng):
        self.model, self.train, self.rng = model, train, rng
        self.opt = Adam(learning_rate=model.config.learning_rate)

    def begin(self, epoch):
        pass

    def step(self, idx):
        src, tgt = self.train
        s = padded([src[j] for j in idx])
        t = padded([tgt[j] for j in idx], bos_eos=True)
        return train_step(self.model, self.opt, s, t, self.rng)

    def end(self, model):
        pass

    def close(self):
        pass


class _Best:
    """The best epoch so far, its weights (copies) and the early-stopping count."""

    def __init__(self, monitor, model):
        self.monitor, self.lower = monitor, monitor.endswith("loss")
        self.value, self.epoch, self.waited = None, None, 0
        # the starting weights until an epoch improves: what a first-epoch divergence restores
        self.params = {k: p.copy() for k, p in model.params.items()}

    def update(self, logs, model) -> bool:
        v = logs.get(self.monitor)
        if v is None or not math.isfinite(v):
            self.waited += 1
            return False
        better = self.value is None or (v < self.value if self.lower else v > self.value)
        if better:
            self.value, self.epoch, self.waited = v, logs["epoch"], 0
            self.params = {k: p.copy() for k, p in model.params.items()}
        else:
            self.waited += 1
        return better


def train_translator(
    model: Translator,
    train,
    valid,
    *,
    out=None,
    metadata: dict | None = None,
    max_minutes: float | None = None,
    on_epoch_end: Callable | None = None,
    monitor: str = "val_loss",
    progress: Callable[[str], None] | None = print,
    distribute=None,
) -> dict:
    """Train ``model`` in place; ``train``/``valid`` are ``(sources, targets)``. Returns
    ``{"history": [logs per epoch], "best_epoch", "best", "stopped": "epochs" | "patience" |
    "time" | "diverged"}``. ``distribute``: a :class:`lstmkit.distributed.RayStrategy`
    (module docstring)."""
    cfg = model.config
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise ValueError(
            f"train_translator: argument 'max_minutes' must be > 0; got {max_minutes!r}"
        )
    train = _check_pairs("train", train, cfg.max_len)
    valid = _check_pairs("valid", valid, cfg.max_len)
    rng = np.random.default_rng(cfg.seed)
    if distribute is None:
        steps = _LocalSteps(model, train, rng)
    else:
        from ..distributed.translate import TranslatorSteps

        steps = TranslatorSteps(distribute, model, train)
    try:
        return _train(model, steps, train, valid, rng, out, metadata, max_minutes,
                      on_epoch_end, monitor, progress)  # fmt: skip
    finally:
        steps.close()


def _train(model, steps, train, valid, rng, out, metadata, max_minutes, on_epoch_end, monitor,
           progress):  # fmt: skip
    """The epochs of :func:`train_translator`."""
    from .translate_files import save_translator

    cfg = model.config
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    best, history, stopped = _Best(monitor, model), [], "epochs"
    say = progress or (lambda _line: None)
    for epoch in range(1, cfg.epochs + 1):
        steps.begin(epoch)
        logs, stopped = _epoch(model, steps, train, rng, deadline, say, epoch)
        steps.end(model)  # the driver's model now holds the epoch's weights
        if stopped != "diverged":
            logs["val_loss"] = validation_loss(model, valid)
            logs.update((on_epoch_end and on_epoch_end(model, dict(logs))) or {})
        history.append(logs)
        improved = stopped != "diverged" and best.update(logs, model)
        if improved and out is not None:
            save_translator(model, out, metadata)
        say(_epoch_line(logs, improved))
        if stopped in ("time", "diverged"):
            break
        if best.waited >= cfg.patience:
            stopped = "patience"
            break
        stopped = "epochs"
    for k, p in model.params.items():
        p[...] = best.params[k]
    return {"history": history, "best_epoch": best.epoch, "best": best.value, "stopped": stopped}


def _epoch(model, steps, train, rng, deadline, say, epoch):
    """One pass over the training pairs -> ``(logs, why it stopped or "epochs")``."""
    cfg = model.config
    src, tgt = train
    batches = length_sorted_batches(
        [len(s) for s in src], [len(t) for t in tgt], cfg.batch_size, cfg.pool_batches, rng
    )
    t0, loss_sum, tokens, why = time.monotonic(), 0.0, 0, "epochs"
    for i, idx in enumerate(batches, 1):
        loss, n = steps.step(idx)
        if not math.isfinite(loss):
            say(f"epoch {epoch}: non-finite loss or gradients at batch {i}: training diverged")
            why = "diverged"
            break
        loss_sum, tokens = loss_sum + loss * n, tokens + n
        if i % LOG_EVERY == 0:
            rate = tokens / (time.monotonic() - t0)
            say(f"epoch {epoch} batch {i}/{len(batches)}: loss {loss_sum / tokens:.4f}, "
                f"{rate:,.0f} target tokens/s")  # fmt: skip
        if deadline is not None and time.monotonic() >= deadline:
            why = "time"
            break
    seconds = time.monotonic() - t0
    logs = {
        "epoch": epoch,
        "loss": loss_sum / tokens if tokens else float("nan"),
        "batches": i,
        "target_tokens": tokens,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
    }
    return logs, why


def _epoch_line(logs, improved) -> str:
    extra = ", ".join(
        f"{k} {v:.4g}"
        for k, v in logs.items()
        if k not in ("epoch", "loss", "batches", "target_tokens", "tokens_per_s", "seconds")
        and isinstance(v, (int, float))
    )
    mark = " (best)" if improved else ""
    return (
        f"epoch {logs['epoch']}: loss {logs['loss']:.4f}, {extra}, "
        f"{logs['tokens_per_s']:,.0f} target tokens/s, {logs['seconds']:.0f} s{mark}"
    )
