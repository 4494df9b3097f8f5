"""Sequence classification: texts (word ids) or real-valued multichannel sequences -> one label.

Two front ends, one back end::

    text       ids (B, T) -> Embedding(V, E, mask_zero=True) -> Dropout -> Bidirectional(LSTM(H))
    numeric    x (B, T, D) -> Masking(0.0) -> Bidirectional(LSTM(H))
    both       -> Dropout -> Dense(1, sigmoid) for two classes | Dense(C) + softmax for more

For more than two classes the last layer outputs logits and the softmax is folded into the loss
(``SparseCategoricalCrossentropy(from_logits=True)``, exact and stable);
``predict_texts``/``predict_sequences``/``evaluate_file`` apply it, so they return probabilities.

Sequences are padded at the end with id 0 / all-zero frames; the mask makes every recurrent
layer skip the padding (each direction of the BiLSTM reads exactly the valid steps), so a padded
batch gives the same outputs as one sequence at a time. Numeric features are standardised with
statistics of the training frames, so a real frame is (almost surely) never all zeros.

Recipe (``train_text_classifier`` / ``train_sequence_classifier``):

1. hold out a test split (``test_fraction``, stratified, seeded) unless a test set is given;
   take a validation split from what remains (``val_fraction``, stratified);
2. vocabulary (texts) or scaler (numbers) from the training split only;
3. train with Adam, early stopping on validation loss, best weights restored;
4. report accuracy and F1 (binary: positive class = the second label in sorted order; multiclass:
   macro F1) on the test split, next to the majority class and, for texts, an L2 bag-of-words
   logistic regression (:mod:`lstmkit.apps.bow`) whose ``l2`` is picked on the same validation
   split.

``model.metadata`` carries ``kind`` (``"text"`` / ``"sequence"``), ``classes``, the vocabulary or
scaler, ``maxlen`` and the settings, so ``predict_texts`` / ``evaluate_file`` need only the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .. import random as _random
from .._meta import check_app_metadata
from ..callbacks import EarlyStopping, TerminateOnNaN
from ..data.sequences import LabelEncoder, SequenceScaler, pad_sequences, read_sequence_csv
from ..data.text import Vocabulary, read_labelled_texts
from ..layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking
from ..losses import SparseCategoricalCrossentropy
from ..metrics import accuracy, f1
from ..models import Sequential
from ..ops.activations import softmax
from ._checks import check_ints, check_range

APP = "classify"


@dataclass
class ClassifyConfig:
    """Settings of the classifiers (saved in ``model.metadata["settings"]``)."""

    embed_dim: int = 64  # texts only
    units: int = 64
    bidirectional: bool = True
    dropout: float = 0.5
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float | None = 5.0  # None: no clipping
    patience: int = 3
    test_fraction: float = 0.2  # ignored when a test set is given
    val_fraction: float = 0.1
    max_vocab: int = 20000
    min_freq: int = 2
    lower: bool = True
    maxlen: int | None = None  # default: longest training text, at most 100 tokens
    features: str = "binary"  # bag-of-words baseline: "binary" or "tf"
    seed: int = 0

    def __post_init__(self):
        check_ints(self, ("embed_dim", "units", "epochs", "batch_size", "min_freq"), 1)
        check_ints(self, ("patience", "seed"), 0)
        check_ints(self, ("max_vocab",), 3)
        check_ints(self, ("maxlen",), 1, none_ok=True)
        check_range(self, "dropout", 0.0, 1.0, hi_open=True)
        for name in ("test_fraction", "val_fraction"):
            check_range(self, name, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range(self, "learning_rate", 0.0, np.inf, lo_open=True)
        check_range(self, "clipnorm", 0.0, np.inf, lo_open=True, none_ok=True)
        if self.features not in ("binary", "tf"):
            raise ValueError(
                f"ClassifyConfig: argument 'features' must be 'binary' or 'tf'; got {self.features!r}"
            )

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ClassifyReport:
    model: Sequential
    classes: list
    table: dict  # method -> {"accuracy", "f1"} on the test split
    sizes: dict  # split -> number of examples
    epochs_run: int
    history: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)  # BoW details: l2, validation scores

    def format_table(self) -> str:
        lines = [f"{'method':<24}{'accuracy':>10}{'F1':>8}"]
        for name, row in self.table.items():
            lines.append(f"{name:<24}{row['accuracy']:>10.4f}{row['f1']:>8.4f}")
        return "\n".join(lines)


# -- models -------------------------------------------------------------------------------------
def _head(model, n_classes, dropout):
    if dropout > 0:
        model.add(Dropout(dropout, name="dropout_head"))
    if n_classes == 2:
        model.add(Dense(1, activation="sigmoid", name="output"))
    else:
        model.add(Dense(n_classes, name="logits"))  # softmax in the loss / in _probabilities
    return model


def _recurrent(units, bidirectional):
    rnn = LSTM(units, name="lstm")
    return Bidirectional(rnn, name="bilstm") if bidirectional else rnn


def build_text_classifier(vocab_size, n_classes, embed_dim=64, units=64, dropout=0.5,
                          bidirectional=True, maxlen=None) -> Sequential:  # fmt: skip
    """``Embedding(mask_zero) -> [Dropout] -> (Bi)LSTM -> [Dropout] -> Dense``."""
    model = Sequential(name="text_classifier", dtype="float32")
    model.add(
        Embedding(vocab_size, embed_dim, mask_zero=True, input_shape=(maxlen,), name="embedding")
    )
    if dropout > 0:
        model.add(Dropout(dropout, name="dropout_embedding"))
    model.add(_recurrent(units, bidirectional))
    return _head(model, n_classes, dropout)


def build_sequence_classifier(n_features, n_classes, units=64, dropout=0.0, bidirectional=True):
    """``Masking(0) -> (Bi)LSTM -> [Dropout] -> Dense`` on ``(batch, time, n_features)``."""
    model = Sequential(name="sequence_classifier", dtype="float32")
    model.add(Masking(0.0, input_shape=(None, n_features), name="masking"))
    model.add(_recurrent(units, bidirectional))
    return _head(model, n_classes, dropout)


# -- splits, scores -----------------------------------------------------------------------------
def stratified_split(y, fraction, seed):
    """Index arrays ``(rest, held_out)``: ``fraction`` of every class held out, seeded."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        held.append(idx[: round(len(idx) * fraction)])
    held = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(y)), held)
    return rest, held


def _fewest_for_one(fraction):
    """The fewest examples of one class of which ``stratified_split`` holds out at least one
    (``round(n * fraction) >= 1``; Python rounds 0.5 to 0)."""
    n = int(0.5 / fraction) + 1
    while n > 1 and round((n - 1) * fraction) >= 1:
        n -= 1
    while round(n * fraction) < 1:
        n += 1
    return n


def _checked_split(who, y, classes, fraction, seed, parts, arg, source, other=None):
    """``stratified_split`` refusing an empty side with the counts and what is needed.
    ``parts``: names of the (kept, held-out) sides; ``arg``: the fraction's name; ``source``:
    what ``y`` is ("examples"); ``other``: another remedy when nothing is held out."""
    rest, held = stratified_split(y, fraction, seed)
    if len(rest) and len(held):
        return rest, held
    counts = np.bincount(y, minlength=len(classes))
    shown = np.flatnonzero(counts)
    per_class = ", ".join(f"{classes[c]!r}: {counts[c]}" for c in shown[:10])
    given = f"{arg}={fraction:g} of {len(y)} {source} ({per_class}{', ...' * (len(shown) > 10)})"
    if not len(held):
        remedies = ["more examples", f"a larger {arg}", *([other] if other else [])]
        raise ValueError(
            f"{who}: the {parts[1]} split is empty: {given} holds out round(n * {fraction:g}) = 0 "
            f"examples of every class; at this {arg} a class needs at least "
            f"{_fewest_for_one(fraction)} examples; give {', '.join(remedies[:-1])} or "
            f"{remedies[-1]}"
        )
    raise ValueError(
        f"{who}: the {parts[0]} split is empty: {given} holds out every example; give more "
        f"examples or a smaller {arg}"
    )


def _labels(who, arg, examples, labels):
    """``(LabelEncoder, class ids)`` of ``labels``, one per example, at least two classes."""
    labels = list(labels)
    if len(examples) != len(labels):
        raise ValueError(
            f"{who}: arguments '{arg}' and 'labels' must have the same length; "
            f"got {len(examples)} and {len(labels)}"
        )
    if not labels:
        raise ValueError(f"{who}: argument '{arg}' must hold at least one example; got none")
    enc = LabelEncoder.fit(labels)
    if len(enc) < 2:
        raise ValueError(f"{who}: need at least 2 classes; got {enc.classes}")
    return enc, enc.encode(labels)


def _splits(who, y, classes, cfg, test_given):
    """Index arrays ``(train, validation, test)`` into ``y``: a stratified test split (None when
    a test set is given), then a stratified validation split of the rest; no split is empty."""
    te = None
    rest = np.arange(len(y))
    if not test_given:
        rest, te = _checked_split(
            who, y, classes, cfg.test_fraction, cfg.seed, ("training and validation", "test"),
            "test_fraction", "examples", "a separate test set (lstmkit classify train --test)",
        )  # fmt: skip
    tr_i, va_i = _checked_split(
        who, y[rest], classes, cfg.val_fraction, cfg.seed + 1, ("training", "validation"),
        "val_fraction", "examples" if test_given else "examples left after the test split",
    )  # fmt: skip
    return rest[tr_i], rest[va_i], te


def _probabilities(model, x, batch_size=256):
    """``(N, C)`` class probabilities (the sigmoid output expanded to two columns)."""
    p = np.asarray(model.predict(x, batch_size=batch_size), np.float64)
    return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else softmax(p)


def scores(y, proba) -> dict:
    """``{"accuracy", "f1"}`` of class ids ``y`` against ``(N, C)`` probabilities."""
    y = np.asarray(y)
    if proba.shape[1] == 2:  # binary F1 of class 1
        return {"accuracy": accuracy(y, proba[:, 1]), "f1": f1(y, proba[:, 1])}
    return {"accuracy": accuracy(y, proba), "f1": f1(y, proba)}


def _majority(y_train, y_test, n_classes):
    proba = np.zeros((len(y_test), n_classes))
    proba[:, np.bincount(y_train, minlength=n_classes).argmax()] = 1.0
    return scores(y_test, proba)


def _compile_and_fit(model, cfg, n_classes, train, val, verbose):
    from ..optimizers import Adam

    loss = (
        "binary_crossentropy" if n_classes == 2 else SparseCategoricalCrossentropy(from_logits=True)
    )
    model.compile(
        Adam(cfg.learning_rate, clipnorm=cfg.clipnorm), loss, metrics=["accuracy"], seed=cfg.seed
    )
    stop = EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    nan = TerminateOnNaN(raise_error=True, check_weights=True)  # diverged: one line, no save
    history = model.fit(
        train[0], train[1], epochs=cfg.epochs, batch_size=cfg.batch_size,
        validation_data=val, callbacks=[stop, nan], verbose=verbose,
    )  # fmt: skip
    return history


# -- texts --------------------------------------------------------------------------------------
def encode_texts(vocab, texts, maxlen):
    """Texts -> ``(N, maxlen)`` ids, padded with 0 at the end and cut after ``maxlen`` tokens.
    An empty text becomes one ``<unk>`` so that every sequence has a valid step."""
    seqs = [vocab.encode(t)[:maxlen] for t in texts]
    seqs = [s if len(s) else np.array([1], np.int32) for s in seqs]
    ids, _ = pad_sequences(seqs, maxlen=maxlen)
    return ids


def train_text_classifier(texts, labels, config=None, *, test=None, verbose=0, log=None,
                          **overrides) -> ClassifyReport:  # fmt: skip
    """Train the text classifier on ``texts`` (list of str) and ``labels`` (any strings) following
    the module docstring; ``test=(texts, labels)`` replaces the random test split."""
    from .bow import bow_features, fit_best

    cfg = ClassifyConfig(**{**(asdict(config) if config else {}), **overrides})
    texts = list(texts)
    enc, y = _labels("train_text_classifier", "texts", texts, labels)
    tr, va, te = _splits("train_text_classifier", y, enc.classes, cfg, test is not None)
    if test is None:
        test_texts, y_test = [texts[i] for i in te], y[te]
    else:
        test_texts, y_test = list(test[0]), enc.encode(test[1])
    tr_texts, va_texts = [texts[i] for i in tr], [texts[i] for i in va]
    vocab = Vocabulary.build(tr_texts, "word", cfg.max_vocab, cfg.min_freq, cfg.lower)
    lengths = [len(vocab.tokenize(t)) for t in tr_texts]
    maxlen = min(100, max(lengths)) if cfg.maxlen is None else int(cfg.maxlen)
    x_tr, x_va, x_te = (encode_texts(vocab, t, maxlen) for t in (tr_texts, va_texts, test_texts))
    C = len(enc)
    _random.set_random_seed(cfg.seed)
    model = build_text_classifier(
        len(vocab), C, cfg.embed_dim, cfg.units, cfg.dropout, cfg.bidirectional
    )
    model.metadata = {
        "app": APP, "kind": "text", "classes": enc.classes, "vocabulary": vocab.to_dict(),
        "maxlen": maxlen, "settings": asdict(cfg),
    }  # fmt: skip
    history = _compile_and_fit(model, cfg, C, (x_tr, y[tr]), (x_va, y[va]), verbose)
    table = {"bilstm" if cfg.bidirectional else "lstm": scores(y_test, _probabilities(model, x_te))}
    bow, l2, val_scores = fit_best(
        vocab, (tr_texts, y[tr]), (va_texts, y[va]), C, features=cfg.features
    )
    table[f"bow_logreg ({cfg.features})"] = scores(
        y_test, bow.predict_proba(bow_features(vocab, test_texts, cfg.features))
    )
    table["majority class"] = _majority(y[tr], y_test, C)
    model.metadata["results"] = table
    report = ClassifyReport(
        model, enc.classes, table, {"train": len(tr), "val": len(va), "test": len(y_test)},
        len(history.epoch), history.history, {"l2": l2, "val_accuracy": val_scores,
                                             "optimizer": bow.optimizer},
    )  # fmt: skip
    if log:
        log(report.format_table())
    return report


def predict_texts(model, texts):
    """``[(label, probability of that label), ...]`` for a text classifier."""
    meta = _meta(model, "text")
    vocab = Vocabulary.from_dict(meta["vocabulary"])
    proba = _probabilities(model, encode_texts(vocab, list(texts), meta["maxlen"]))
    return [(meta["classes"][k], float(p[k])) for p, k in zip(proba, proba.argmax(axis=1))]


# -- numeric sequences --------------------------------------------------------------------------
def _pad_numeric(seqs):
    x, _ = pad_sequences(seqs, value=0.0, dtype="float32")
    return x


def train_sequence_classifier(sequences, labels, config=None, *, test=None, verbose=0, log=None,
                              **overrides) -> ClassifyReport:  # fmt: skip
    """Train ``build_sequence_classifier`` on ``sequences`` (list of ``(T_i, D)`` arrays) and
    ``labels``; ``test=(sequences, labels)`` is the standard test set if there is one."""
    cfg = ClassifyConfig(**{**(asdict(config) if config else {}), **overrides})
    sequences = [np.asarray(s, np.float64) for s in sequences]
    enc, y = _labels("train_sequence_classifier", "sequences", sequences, labels)
    tr, va, te = _splits("train_sequence_classifier", y, enc.classes, cfg, test is not None)
    if test is None:
        test_seqs, y_test = [sequences[i] for i in te], y[te]
    else:
        test_seqs, y_test = list(test[0]), enc.encode(test[1])
    scaler = SequenceScaler.fit([sequences[i] for i in tr])
    x_tr = _pad_numeric(scaler.transform([sequences[i] for i in tr]))
    x_va = _pad_numeric(scaler.transform([sequences[i] for i in va]))
    x_te = _pad_numeric(scaler.transform(test_seqs))
    C, D = len(enc), x_tr.shape[-1]
    _random.set_random_seed(cfg.seed)
    model = build_sequence_classifier(D, C, cfg.units, cfg.dropout, cfg.bidirectional)
    model.metadata = {
        "app": APP, "kind": "sequence", "classes": enc.classes, "scaler": scaler.to_dict(),
        "settings": asdict(cfg),
    }  # fmt: skip
    history = _compile_and_fit(model, cfg, C, (x_tr, y[tr]), (x_va, y[va]), verbose)
    table = {"bilstm" if cfg.bidirectional else "lstm": scores(y_test, _probabilities(model, x_te))}
    table["majority class"] = _majority(y[tr], y_test, C)
    model.metadata["results"] = table
    report = ClassifyReport(
        model, enc.classes, table, {"train": len(tr), "val": len(va), "test": len(y_test)},
        len(history.epoch), history.history,
    )  # fmt: skip
    if log:
        log(report.format_table())
    return report


def predict_sequences(model, sequences):
    """``[(label, probability), ...]`` for a numeric sequence classifier."""
    meta = _meta(model, "sequence")
    scaler = SequenceScaler.from_dict(meta["scaler"])
    proba = _probabilities(model, _pad_numeric(scaler.transform(sequences)))
    return [(meta["classes"][k], float(p[k])) for p, k in zip(proba, proba.argmax(axis=1))]


# -- files --------------------------------------------------------------------------------------
def _meta(model, kind=None):
    meta = getattr(model, "metadata", None) or {}
    if meta.get("app") != APP:
        raise ValueError(
            f"{model.name}: not a classifier trained by lstmkit classify (metadata app is "
            f"{meta.get('app')!r})"
        )
    check_app_metadata(meta, f"model {model.name!r}")  # types, ranges, lengths
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{model.name}: this is a {meta.get('kind')!r} classifier, not {kind!r}")
    return meta


def evaluate_file(model, path, text_column="text", label_column="label",
                  sequence_column="utterance", time_column="frame") -> dict:  # fmt: skip
    """Accuracy and F1 of a saved classifier on a labelled CSV file (texts or sequences)."""
    meta = _meta(model)
    enc = LabelEncoder(meta["classes"])
    if meta["kind"] == "text":
        texts, labels = read_labelled_texts(path, text_column, label_column)
        x = encode_texts(Vocabulary.from_dict(meta["vocabulary"]), texts, meta["maxlen"])
    else:
        seqs, labels, _ = read_sequence_csv(
            path, sequence_column, label_column, time_column, meta.get("feature_columns")
        )
        x = _pad_numeric(SequenceScaler.from_dict(meta["scaler"]).transform(seqs))
    y = enc.encode(labels)
    return {"n": len(y), **scores(y, _probabilities(model, x))}


__all__ = [
    "ClassifyConfig",
    "ClassifyReport",
    "build_sequence_classifier",
    "build_text_classifier",
    "encode_texts",
    "evaluate_file",
    "predict_sequences",
    "predict_texts",
    "scores",
    "stratified_split",
    "train_sequence_classifier",
    "train_text_classifier",
]
