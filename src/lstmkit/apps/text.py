"""Language models on characters or words: train with truncated BPTT, score text, generate.

The model (``build_language_model``)::

    ids (B, T) -> Embedding(V, E) -> LSTM(H, return_sequences, stateful) x L -> Dense(V) logits

trained with softmax cross-entropy from logits (``SparseCategoricalCrossentropy(from_logits=True)``)
on the layout of :func:`lstmkit.data.text.stateful_chunks`: ``B`` parallel streams cut into
consecutive chunks of ``T`` tokens. The LSTM layers are stateful, so each chunk starts from the
state the previous chunk ended in (one long sequence per stream), while backpropagation stops at
the chunk edge; the state is reset at the start of every epoch and of every evaluation.

Numbers reported: the mean cross-entropy in nats per token (``loss``); for characters also bits
per character ``bpc = nats / ln 2``; for words perplexity ``exp(nats)``. Validation is the last
``val_fraction`` of the text (a contiguous block, never seen in training).

Generation (``generate``) feeds the prompt one token at a time through ``model.step`` and then
samples one token per step from ``softmax(logits / temperature)`` restricted to the ``top_k``
most likely tokens: O(length) work, the state is carried, nothing is recomputed. The special
tokens ``<pad>`` and ``<unk>`` are never sampled.

Everything a saved model needs travels in ``model.metadata``: the vocabulary (``"vocabulary"``),
the settings it was trained with (``"settings"``) and its validation results (``"results"``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, fields
from functools import partial

import numpy as np

from .. import random as _random
from .._meta import check_app_metadata
from ..callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from ..data.text import PAD_ID, UNK_ID, Vocabulary, detokenize, stateful_chunks, tokenize
from ..layers import LSTM, Dense, Dropout, Embedding
from ..losses import SparseCategoricalCrossentropy
from ..metrics import bits_per_char, perplexity
from ..models import Sequential
from ..ops.activations import log_softmax
from ._checks import check_ints, check_range

APP = "text"


@dataclass
class LMConfig:
    """Settings of ``train_language_model`` (all saved in ``model.metadata["settings"]``)."""

    level: str = "char"
    embed_dim: int = 64
    units: int = 128
    layers: int = 2
    dropout: float = 0.0  # between layers (and after the embedding) when > 0
    seq_len: int = 50  # T: truncated-BPTT chunk length
    batch_size: int = 32  # B: parallel streams
    learning_rate: float = 3e-3  # Adam
    # Adam's eps. Keras adds it to sqrt(v) before the bias correction, so early on it acts like
    # eps / sqrt(1 - b2^t), up to 30x larger; at 1e-7 that measurably slowed this model's first
    # epochs (docs/text.md). 1e-12 makes the placement irrelevant (and matches torch's Adam).
    epsilon: float = 1e-12
    clipnorm: float | None = 5.0  # global gradient-norm clip (None: none)
    lr_decay: float = 0.85  # after `decay_after` epochs the rate is multiplied by this each epoch
    decay_after: int = 15
    epochs: int = 40
    patience: int = 3  # early stopping on val_loss; the best weights are kept
    val_fraction: float = 0.1
    max_vocab: int | None = None  # None: every token (the usual choice for characters)
    min_freq: int = 1
    lower: bool = False
    seed: int = 0
    max_steps: int | None = None  # stop after this many updates in all (quick runs, tests)

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise ValueError(
                f"LMConfig: argument 'level' must be 'char' or 'word'; got {self.level!r}"
            )
        check_ints(self, ("embed_dim", "units", "layers", "seq_len", "batch_size", "epochs",
                          "min_freq"), 1)  # fmt: skip
        check_ints(self, ("patience", "decay_after", "seed"), 0)
        check_ints(self, ("max_vocab",), 3, none_ok=True)
        check_ints(self, ("max_steps",), 1, none_ok=True)
        check_range(self, "val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
        check_range(self, "dropout", 0.0, 1.0, hi_open=True)
        check_range(self, "lr_decay", 0.0, 1.0, lo_open=True)
        for name in ("learning_rate", "epsilon"):
            check_range(self, name, 0.0, np.inf, lo_open=True)
        check_range(self, "clipnorm", 0.0, np.inf, lo_open=True, none_ok=True)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class LMReport:
    """What ``train_language_model`` measured. ``history`` has one row per epoch:
    ``epoch, steps, seconds`` (training time so far, evaluation excluded), ``loss`` (train nats),
    ``val_loss`` (nats) and ``val_bpc`` or ``val_perplexity``."""

    model: Sequential
    vocabulary: Vocabulary
    config: LMConfig
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)  # the history row whose weights the model holds

    def format_table(self) -> str:
        key = "val_bpc" if self.config.level == "char" else "val_perplexity"
        lines = [f"{'epoch':>5}{'steps':>8}{'seconds':>10}{'loss':>9}{'val_loss':>10}{key:>16}"]
        for r in self.history:
            lines.append(
                f"{r['epoch']:>5}{r['steps']:>8}{r['seconds']:>10.1f}{r['loss']:>9.4f}"
                f"{r['val_loss']:>10.4f}{r[key]:>16.4f}"
            )
        return "\n".join(lines)


def build_language_model(
    vocab_size, embed_dim=64, units=128, layers=2, dropout=0.0, stateful=True, dtype="float32"
) -> Sequential:
    """``Embedding -> LSTM x layers -> Dense(vocab_size)`` returning logits ``(B, T, V)``."""
    model = Sequential(name="language_model", dtype=dtype)
    model.add(Embedding(vocab_size, embed_dim, input_shape=(None,), name="embedding"))
    for k in range(layers):
        if dropout > 0:
            model.add(Dropout(dropout, name=f"dropout_{k}"))
        model.add(LSTM(units, return_sequences=True, stateful=stateful, name=f"lstm_{k}"))
    if dropout > 0:
        model.add(Dropout(dropout, name=f"dropout_{layers}"))
    model.add(Dense(vocab_size, name="logits"))
    return model


def vocabulary_of(model) -> Vocabulary:
    """The vocabulary saved in a language or text-classification model's metadata."""
    meta = check_app_metadata(getattr(model, "metadata", None) or {}, f"model {model.name!r}")
    if "vocabulary" not in meta:
        raise ValueError(
            f"{model.name}: this model has no vocabulary in its metadata; it was not trained by "
            "lstmkit text train / classify train"
        )
    return Vocabulary.from_dict(meta["vocabulary"])


def _level_metric(level, nats) -> dict:
    if level == "char":
        return {"bpc": bits_per_char(nats)}
    return {"perplexity": perplexity(nats)}


# -- scoring ------------------------------------------------------------------------------------
def stream_loss(model, ids, batch_size=32, seq_len=100) -> tuple[float, int]:
    """Mean cross-entropy (nats) of predicting ``ids[1:]`` from the tokens before them, state
    carried along ``batch_size`` parallel streams. Returns ``(nats, tokens scored)``; at most
    ``batch_size - 1`` trailing tokens go unscored, and each stream starts from a zero state."""
    ids = np.asarray(ids)
    for arg, v in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"stream_loss: argument '{arg}' must be a positive int; got {v!r}")
    # a short text fills fewer streams (each needs a chunk of seq_len tokens), at least one
    batch_size = max(1, min(batch_size, (len(ids) - 1) // seq_len))
    xs, ys = stateful_chunks(ids, batch_size, seq_len, drop_remainder=False)
    total, count = 0.0, 0
    with model.carried_states("stream_loss"):
        for x, y in zip(xs, ys):
            logits = model.infer(x)[0]  # (B, T, V)
            lp = log_softmax(logits.astype(np.float64))
            total -= float(np.take_along_axis(lp, y[..., None].astype(np.intp), axis=-1).sum())
            count += y.size
    return total / count, count


def evaluate_text(model, text, batch_size=32, seq_len=None) -> dict:
    """Score any text with a trained language model: ``{"tokens", "unknown", "nats", "bpc"
    or "perplexity"}`` (``unknown``: tokens outside the vocabulary, scored as ``<unk>``)."""
    vocab = vocabulary_of(model)
    settings = model.metadata.get("settings", {})
    if seq_len is None:  # the chunk length the model was trained with
        seq_len = int(settings.get("seq_len", 100))
    ids = vocab.encode(text)
    if len(ids) < 2:
        raise ValueError(
            f"evaluate_text: argument 'text' must hold at least 2 {vocab.level} tokens; got {len(ids)}"
        )
    nats, n = stream_loss(model, ids, batch_size, seq_len)
    out = {"tokens": n, "unknown": int(np.sum(ids == UNK_ID)), "nats": nats}
    out.update(_level_metric(vocab.level, nats))
    return out


# -- training -----------------------------------------------------------------------------------
def learning_rate_at(config: LMConfig, epoch: int, _lr=None) -> float:
    """The rate of 0-based ``epoch``: constant for ``decay_after`` epochs, then multiplied by
    ``lr_decay`` once per epoch (char-rnn's schedule)."""
    return config.learning_rate * config.lr_decay ** max(0, epoch + 1 - config.decay_after)


def lm_data(text, config: LMConfig):
    """``(vocabulary, train ids, validation ids)``: the text is tokenised, its last
    ``val_fraction`` of tokens held out, and the vocabulary counted on the training part only
    (validation tokens it lacks become ``<unk>``)."""
    tokens = tokenize(text, config.level, config.lower)
    cut = len(tokens) - round(len(tokens) * config.val_fraction)
    vocab = Vocabulary.from_counts(
        tokens[:cut], config.level, config.max_vocab, config.min_freq, config.lower
    )
    return vocab, vocab.ids(tokens[:cut]), vocab.ids(tokens[cut:])


def fit_tbptt(
    model, x, y, *, epochs, validate, callbacks=(), max_steps=None, log=None, distribute=None
):
    """Truncated BPTT over ``x, y (n_chunks, B, T)`` in order, state carried between chunks and
    reset at each epoch start. ``validate()`` returns extra epoch logs (``val_loss`` ...).
    Callbacks get Keras' hooks; returns the epoch rows with ``steps`` and ``seconds``.
    ``distribute``: a ``lstmkit.distributed.RayStrategy``; its workers then carry B / N streams
    each (B must be a multiple of N), the same updates as here."""
    if distribute is not None:
        return _fit_tbptt_distributed(model, x, y, epochs, validate, callbacks, max_steps, log,
                                      distribute)  # fmt: skip
    cb = CallbackList(list(callbacks), model=model, params={"epochs": epochs, "steps": len(x)})
    rows, steps, seconds = [], 0, 0.0
    model.stop_training = False
    cb.on_train_begin({})
    for epoch in range(epochs):
        model.reset_states()
        cb.on_epoch_begin(epoch, {})
        total, n = 0.0, 0
        t0 = time.perf_counter()
        for k in range(len(x)):
            cb.on_batch_begin(k, {})
            loss = model.train_on_batch(x[k], y[k])
            total, n, steps = total + loss, n + 1, steps + 1
            cb.on_batch_end(k, {"loss": total / n})
            if model.stop_training or (max_steps is not None and steps >= max_steps):
                break
        seconds += time.perf_counter() - t0
        logs = {"loss": total / n, **validate(), "lr": float(model.optimizer.learning_rate)}
        rows.append({"epoch": epoch + 1, "steps": steps, "seconds": seconds, **logs})
        if log is not None:
            log("epoch {epoch:3d}  steps {steps:6d}  {seconds:8.1f}s  ".format(**rows[-1])
                + "  ".join(f"{k} {v:.4f}" for k, v in logs.items()))  # fmt: skip
        cb.on_epoch_end(epoch, logs)
        if model.stop_training or (max_steps is not None and steps >= max_steps):
            break
    cb.on_train_end({})
    model.reset_states()
    return rows


def _fit_tbptt_distributed(model, x, y, epochs, validate, callbacks, max_steps, log, strategy):
    """:func:`fit_tbptt` on Ray: chunk k of stream s is row ``k * B + s`` of one flat array, so
    with ``B % N == 0`` stream s always lands on worker ``s % N`` (in order, no shuffle) and its
    state is carried there; the workers reset their states at each epoch's start."""
    n_chunks, B, T = x.shape
    n = strategy.workers_wanted(strategy.connect())
    if B % n or max_steps is not None:
        raise ValueError(
            f"fit_tbptt: distribute=RayStrategy needs batch_size (parallel streams, {B}) to be a "
            f"multiple of the workers ({n}) and no max_steps; got max_steps={max_steps!r}"
        )
    rows = _EpochRows(validate, log, model)
    strategy.fit(model, x.reshape(n_chunks * B, T), y.reshape(n_chunks * B, *y.shape[2:]),
                 epochs, B, 0, [rows, *callbacks], False, 0, reset_states=True)  # fmt: skip
    model.reset_states()
    return rows.rows


class _EpochRows(Callback):
    """:func:`fit_tbptt`'s epoch rows and log lines, for a fit that runs elsewhere; first in
    the callback list, it adds the validation logs the others (early stopping) read."""

    def __init__(self, validate, log, model):
        super().__init__()
        self.validate, self.log, self.m = validate, log, model
        self.rows, self.steps, self.seconds, self.t0 = [], 0, 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.t0
        logs.update({**self.validate(), "lr": float(self.m.optimizer.learning_rate)})
        self.rows.append({"epoch": epoch + 1, "steps": self.steps, "seconds": self.seconds,
                          **logs})  # fmt: skip
        if self.log is not None:
            self.log("epoch {epoch:3d}  steps {steps:6d}  {seconds:8.1f}s  ".format(**self.rows[-1])
                     + "  ".join(f"{k} {v:.4f}" for k, v in logs.items()))  # fmt: skip


def train_language_model(
    text,
    config: LMConfig | None = None,
    *,
    checkpoint_dir=None,
    log=None,
    model=None,
    distribute=None,
    **overrides,
) -> LMReport:
    """Train ``build_language_model`` on ``text`` following the module docstring.

    ``config`` fields can also be passed as keyword arguments. ``checkpoint_dir``: save the model
    there after every epoch that improves ``val_loss`` (``epoch003.lstmkit`` ...). ``model``: a
    model to train instead of a fresh one (it must match the vocabulary); the benchmarks use it
    to start from given weights. Early stopping restores the best epoch's weights.
    """
    from ..optimizers import Adam

    config = LMConfig(**{**(asdict(config) if config else {}), **overrides})
    if not isinstance(text, str) or not text:
        raise ValueError("train_language_model: argument 'text' must be a non-empty str")
    vocab, train_ids, val_ids = lm_data(text, config)
    B, T = config.batch_size, config.seq_len
    if len(train_ids) < B * T + 1 or len(val_ids) < 2:
        raise ValueError(
            f"train_language_model: the text has {len(train_ids) + len(val_ids)} {config.level} "
            f"tokens; batch_size * seq_len = {B * T} training tokens and a validation part are "
            "needed; use a longer text or smaller --batch-size / --seq-len"
        )
    x, y = stateful_chunks(train_ids, B, T)
    _random.set_random_seed(config.seed)
    if model is None:
        model = build_language_model(
            len(vocab), config.embed_dim, config.units, config.layers, config.dropout
        )
    model.compile(
        optimizer=Adam(config.learning_rate, epsilon=config.epsilon, clipnorm=config.clipnorm),
        loss=SparseCategoricalCrossentropy(from_logits=True),
        seed=config.seed,
    )
    model.metadata = {"app": APP, "vocabulary": vocab.to_dict(), "settings": asdict(config)}

    def validate():
        nats, _ = stream_loss(model, val_ids, B, T)
        return {
            "val_loss": nats,
            **{f"val_{k}": v for k, v in _level_metric(config.level, nats).items()},
        }

    stop = EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    schedule = LearningRateScheduler(partial(learning_rate_at, config))
    nan = TerminateOnNaN(raise_error=True, check_weights=True)  # diverged: one line, no save
    callbacks = [stop, schedule, nan]
    if checkpoint_dir is not None:
        path = os.path.join(os.fspath(checkpoint_dir), "epoch{epoch:03d}.lstmkit")
        callbacks.append(ModelCheckpoint(path, monitor="val_loss", save_best_only=True))
    rows = fit_tbptt(
        model, x, y, epochs=config.epochs, validate=validate, callbacks=callbacks,
        max_steps=config.max_steps, log=log, distribute=distribute,
    )  # fmt: skip
    best = min(rows, key=lambda r: r["val_loss"])
    model.metadata["results"] = {k: v for k, v in best.items()}
    return LMReport(model, vocab, config, rows, best)


# -- generation ---------------------------------------------------------------------------------
def _prime(model, vocab, prompt):
    """Feed the prompt through ``model.step``; returns (logits of the next token (V,), states)."""
    ids = vocab.encode(prompt) if prompt else np.array([], np.int32)
    if len(ids) == 0:  # start as after a line break, or from <unk> if there is none
        ids = np.array([vocab.index.get("\n", UNK_ID)], np.int32)
    states = None
    for i in ids:
        logits, states = model.step(np.array([i]), states)
    return np.asarray(logits[0], np.float64), states


def next_token_distribution(model, prompt, as_array=False):
    """Probabilities of the token that follows ``prompt``: a dict ``token -> p`` ordered from
    the most likely (every vocabulary entry), or with ``as_array`` the ``(V,)`` array by id."""
    vocab = vocabulary_of(model)
    logits, _ = _prime(model, vocab, prompt)
    p = np.exp(log_softmax(logits))
    if as_array:
        return p
    order = np.argsort(-p, kind="stable")
    return {vocab.tokens[i]: float(p[i]) for i in order}


def _sample(logits, temperature, top_k, rng):
    z = logits.copy()
    z[[PAD_ID, UNK_ID]] = -np.inf  # never emit padding or <unk>
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    if top_k is not None and top_k < np.isfinite(z).sum():
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def generate(model, prompt="", length=500, temperature=1.0, top_k=None, seed=None) -> str:
    """``prompt`` followed by ``length`` sampled tokens (characters or words).

    ``temperature`` 0 picks the most likely token each step; ``top_k`` keeps only the k most
    likely; ``seed`` makes the sample reproducible.
    """
    if not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"generate: argument 'length' must be an int >= 0; got {length!r}")
    if temperature < 0:
        raise ValueError(f"generate: argument 'temperature' must be >= 0; got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(
            f"generate: argument 'top_k' must be a positive int or None; got {top_k!r}"
        )
    vocab = vocabulary_of(model)
    rng = np.random.default_rng(seed)
    logits, states = _prime(model, vocab, prompt)
    out = []
    for n in range(length):
        i = _sample(logits, temperature, top_k, rng)
        out.append(vocab.tokens[i])
        if n + 1 < length:  # the last token needs no successor
            logits, states = model.step(np.array([i]), states)
            logits = np.asarray(logits[0], np.float64)
    if vocab.level == "char":
        return prompt + "".join(out)
    text = detokenize(out, "word")
    joiner = "" if not prompt or prompt[-1:].isspace() or text[:1] in ".,;:!?'\n" else " "
    return prompt + joiner + text


def summary_line(result: dict, level: str) -> str:
    key = "bpc" if level == "char" else "perplexity"
    return (
        f"{result['tokens']} {level} tokens ({result['unknown']} unknown): "
        f"{result['nats']:.4f} nats/{level}, {key} {result[key]:.4f}"
    )


__all__ = [
    "LMConfig",
    "LMReport",
    "build_language_model",
    "evaluate_text",
    "fit_tbptt",
    "generate",
    "learning_rate_at",
    "lm_data",
    "next_token_distribution",
    "stream_loss",
    "train_language_model",
    "vocabulary_of",
]
