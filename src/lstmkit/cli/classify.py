"""``lstmkit classify``: sequence classifiers on texts or numeric sequences (:mod:`lstmkit.apps.classify`).

    # texts: one row per example
    lstmkit classify train DATA.csv --text-column text --label-column label [--out MODEL]
    lstmkit classify predict MODEL "some text" ["another text" ...]
    lstmkit classify evaluate MODEL DATA.csv

    # numeric sequences: one row per frame, rows of a sequence consecutive
    lstmkit classify train TRAIN.csv --sequence-column utterance --time-column frame \\
        --label-column label --test TEST.csv
    lstmkit classify predict MODEL FRAMES.csv
    lstmkit classify evaluate MODEL TEST.csv

``python -m lstmkit.cli.classify ...`` runs the same parser without the ``lstmkit classify`` prefix.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._args import (
    Parser,
    dropout_rate,
    fraction,
    int_at_least,
    nonempty,
    nonneg_int,
    positive_float,
    positive_int,
)


def register(parser: argparse.ArgumentParser) -> None:
    from ..apps.classify import ClassifyConfig

    d = ClassifyConfig()
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a (Bi)LSTM classifier on a labelled CSV file")
    p.add_argument("data", help="CSV with a header row")
    _columns(p)
    p.add_argument("--sequence-column", default=None,
                   help="numeric sequences: the column naming the sequence of each row (frames)")  # fmt: skip
    p.add_argument(
        "--test", default=None, help="a separate labelled test file (else a random split)"
    )
    p.add_argument("--out", type=nonempty, default=None,
                   help="model file (default out/classify/<data>.lstmkit)")  # fmt: skip
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--patience", type=nonneg_int, default=d.patience,
                   help="early stopping on val_loss: epochs without improvement")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.learning_rate, help="Adam learning rate")
    p.add_argument("--embed-dim", type=positive_int, default=d.embed_dim)
    p.add_argument("--units", type=positive_int, default=d.units)
    p.add_argument("--dropout", type=dropout_rate, default=None,
                   help=f"in [0, 1); default {d.dropout} for texts, 0 for numeric sequences")  # fmt: skip
    p.add_argument("--unidirectional", action="store_true", help="LSTM instead of a BiLSTM")
    p.add_argument("--test-fraction", type=fraction, default=d.test_fraction,
                   help="share held out for the test, in (0, 1)")  # fmt: skip
    p.add_argument("--val-fraction", type=fraction, default=d.val_fraction,
                   help="share of the rest for validation, in (0, 1)")  # fmt: skip
    p.add_argument("--max-vocab", type=int_at_least(3), default=d.max_vocab,
                   help="vocabulary size cap incl. <pad>/<unk>")  # fmt: skip
    p.add_argument("--min-freq", type=positive_int, default=d.min_freq)
    p.add_argument(
        "--maxlen",
        type=positive_int,
        default=None,
        help="tokens per text (default longest, <= 100)",
    )
    p.add_argument("--bow-features", choices=["binary", "tf"], default=d.features)
    p.add_argument("--seed", type=nonneg_int, default=d.seed)
    p.add_argument("--verbose", action="store_true", help="progress bars")
    p.set_defaults(func=_train, reads=("data", "--test"), writes=_train_writes)

    p = sub.add_parser("predict", help="label and probability for texts (or sequences in a CSV)")
    p.add_argument("model")
    p.add_argument("inputs", nargs="+", help="texts, or one CSV file for a sequence model")
    _columns(p, labels=False)
    p.add_argument("--sequence-column", default="utterance")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="accuracy and F1 on a labelled CSV file")
    p.add_argument("model")
    p.add_argument("data")
    _columns(p)
    p.add_argument("--sequence-column", default="utterance")
    p.set_defaults(func=_evaluate)


def _columns(p, labels=True):
    p.add_argument("--text-column", default="text")
    if labels:
        p.add_argument("--label-column", default="label")
    p.add_argument("--time-column", default="frame", help="numeric sequences: frame order")


def _train_out(args):
    stem = os.path.splitext(os.path.basename(args.data))[0]
    return os.path.join("out", "classify", f"{stem}.lstmkit") if args.out is None else args.out


def _train_writes(args):  # what lstmkit.cli.main checks before the command runs
    from .._paths import Output

    return [Output("--out" if args.out is not None else "--out (default)", _train_out(args))]


def _train(args) -> int:
    from ..apps.classify import ClassifyConfig, train_sequence_classifier, train_text_classifier
    from ..data.sequences import read_sequence_csv
    from ..data.text import read_labelled_texts

    numeric = args.sequence_column is not None
    dropout = args.dropout
    if dropout is None:  # none for numeric sequences, the config's for texts
        dropout = 0.0 if numeric else ClassifyConfig.dropout
    cfg = ClassifyConfig(
        embed_dim=args.embed_dim, units=args.units, bidirectional=not args.unidirectional,
        dropout=dropout, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        patience=args.patience, test_fraction=args.test_fraction, val_fraction=args.val_fraction,
        max_vocab=args.max_vocab, min_freq=args.min_freq, maxlen=args.maxlen,
        features=args.bow_features, seed=args.seed,
    )  # fmt: skip
    features = None
    if numeric:

        def read(path):
            nonlocal features
            seqs, labels, features = read_sequence_csv(
                path, args.sequence_column, args.label_column, args.time_column, features
            )
            return seqs, labels

        train_fn = train_sequence_classifier
    else:
        read = lambda path: read_labelled_texts(path, args.text_column, args.label_column)
        train_fn = train_text_classifier
    x, y = read(args.data)
    test = read(args.test) if args.test else None
    report = train_fn(x, y, cfg, test=test, verbose=1 if args.verbose else 0)
    out = _train_out(args)
    if features is not None:  # predict/evaluate read the same columns
        report.model.metadata["feature_columns"] = features
    report.model.save(out)
    s = report.sizes
    split = "test file" if args.test else f"held-out {args.test_fraction:.0%}"
    print(f"{len(report.classes)} classes; train {s['train']}, validation {s['val']}, "
          f"test {s['test']} ({split}); {report.epochs_run} epochs")  # fmt: skip
    print(report.format_table())
    if report.baseline:
        print(f"bag-of-words l2 = {report.baseline['l2']} (picked on validation accuracy)")
    print(f"wrote {out}")
    return 0


def _predict(args) -> int:
    from ..apps.classify import predict_sequences, predict_texts
    from ..data.sequences import read_sequence_csv
    from ..saving import load_model

    model = load_model(args.model, compile=False)
    if model.metadata.get("kind") == "sequence":
        if len(args.inputs) != 1:
            raise ValueError(
                f"argument 'inputs' must be one CSV file of frames for a sequence model; got {args.inputs}"
            )
        seqs, keys, _ = read_sequence_csv(
            args.inputs[0], args.sequence_column, None, args.time_column,
            model.metadata.get("feature_columns"),
        )  # fmt: skip
        for key, (label, p) in zip(keys, predict_sequences(model, seqs)):
            print(f"{key}\t{label}\t{p:.4f}")
        return 0
    for text, (label, p) in zip(args.inputs, predict_texts(model, args.inputs)):
        print(f"{label}\t{p:.4f}\t{text}")
    return 0


def _evaluate(args) -> int:
    from ..apps.classify import evaluate_file
    from ..saving import load_model

    model = load_model(args.model, compile=False)
    r = evaluate_file(
        model,
        args.data,
        args.text_column,
        args.label_column,
        args.sequence_column,
        args.time_column,
    )
    print(f"{r['n']} examples: accuracy {r['accuracy']:.4f}, F1 {r['f1']:.4f}")
    return 0


def main(argv=None) -> int:
    """``python -m lstmkit.cli.classify ...``: ``lstmkit classify ...``, with the same path checks and
    Ctrl-C handling (``lstmkit.cli.main``)."""
    from . import main as lstmkit_main

    return lstmkit_main(["classify", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
