"""``lstmkit text``: character / word language models (:mod:`lstmkit.apps.text`).

    lstmkit text train CORPUS.txt --level char [--out MODEL] [--epochs 20] [--units 128] ...
    lstmkit text generate MODEL --prompt "ROMEO:" --length 500 --temperature 0.8 --top-k 20 --seed 1
    lstmkit text evaluate MODEL FILE.txt
    lstmkit text next MODEL --prompt "ROMEO" [--top 10]

``python -m lstmkit.cli.text ...`` runs the same parser without the ``lstmkit text`` prefix.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._args import (
    Parser,
    dropout_rate,
    float_in,
    fraction,
    int_at_least,
    nonempty,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    ray_options,
    ray_strategy,
)


def _read(path, what):
    from ..data.utf8 import read_utf8

    return read_utf8(path, what)


def register(parser: argparse.ArgumentParser) -> None:
    from ..apps.text import LMConfig

    d = LMConfig()
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a language model on a text file")
    p.add_argument("corpus", help="UTF-8 text file")
    p.add_argument("--level", choices=["char", "word"], default=d.level)
    p.add_argument("--out", type=nonempty, default=None,
                   help="model file (default out/text/<corpus>-<level>.lstmkit)")  # fmt: skip
    p.add_argument("--checkpoint-dir", type=nonempty, default=None,
                   help="save the model after every epoch that improves val_loss (default <out>.ckpt)")  # fmt: skip
    p.add_argument("--no-checkpoints", action="store_true")
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--patience", type=nonneg_int, default=d.patience,
                   help="early stopping on val_loss: epochs without improvement")  # fmt: skip
    p.add_argument(
        "--val-fraction", type=fraction, default=d.val_fraction, help="last part of the text"
    )
    p.add_argument("--embed-dim", type=positive_int, default=d.embed_dim)
    p.add_argument("--units", type=positive_int, default=d.units)
    p.add_argument("--layers", type=positive_int, default=d.layers)
    p.add_argument("--dropout", type=dropout_rate, default=d.dropout, help="in [0, 1)")
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="truncated-BPTT chunk length (default 50 for char, 35 for word)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help="parallel streams")  # fmt: skip
    p.add_argument("--lr", type=positive_float, default=d.learning_rate, help="Adam learning rate")
    p.add_argument("--clipnorm", type=positive_float, default=d.clipnorm,
                   help="global gradient-norm clip")  # fmt: skip
    p.add_argument("--eps", type=positive_float, default=d.epsilon, help="Adam's epsilon")
    p.add_argument("--lr-decay", type=float_in(0.0, 1.0, lo_open=True), default=d.lr_decay,
                   help="per-epoch factor in (0, 1]")  # fmt: skip
    p.add_argument("--decay-after", type=nonneg_int, default=d.decay_after,
                   help="epochs at full rate")  # fmt: skip
    p.add_argument("--max-vocab", type=int_at_least(3), default=None,
                   help="vocabulary size cap incl. <pad>/<unk> (default: all chars; 10000 words)")  # fmt: skip
    p.add_argument("--min-freq", type=positive_int, default=d.min_freq)
    p.add_argument("--lower", action="store_true", help="lower-case the text first")
    p.add_argument("--max-steps", type=positive_int, default=None)
    p.add_argument("--seed", type=nonneg_int, default=d.seed)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: data-parallel on Ray, --batch-size streams shared by the workers "
                   "(a multiple of --workers; pip install 'lstmkit[ray]')")  # fmt: skip
    ray_options(p)
    p.set_defaults(func=_train, reads=("corpus",), writes=_train_writes)

    p = sub.add_parser("generate", help="sample text from a trained model")
    p.add_argument("model")
    p.add_argument("--prompt", default="")
    p.add_argument("--length", type=positive_int, default=500, help="tokens to generate")
    p.add_argument("--temperature", type=nonneg_float, default=1.0,
                   help="0 = always the most likely")  # fmt: skip
    p.add_argument("--top-k", type=positive_int, default=None,
                   help="sample from the k most likely tokens only")  # fmt: skip
    p.add_argument("--seed", type=nonneg_int, default=None)
    p.set_defaults(func=_generate)

    p = sub.add_parser("evaluate", help="bits per character (or perplexity) on a text file")
    p.add_argument("model")
    p.add_argument("file")
    p.add_argument("--batch-size", type=positive_int, default=32, help="parallel streams")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("next", help="probabilities of the next token after a prompt")
    p.add_argument("model")
    p.add_argument("--prompt", default="")
    p.add_argument("--top", type=positive_int, default=10, help="how many tokens to list")
    p.set_defaults(func=_next)


def _train_paths(args):
    """``(model file, checkpoint directory or None)`` with their defaults."""
    stem = os.path.splitext(os.path.basename(args.corpus))[0]
    out = _default(args.out, os.path.join("out", "text", f"{stem}-{args.level}.lstmkit"))
    ckpt = None if args.no_checkpoints else _default(args.checkpoint_dir, out + ".ckpt")
    return out, ckpt


def _train_writes(args):  # what lstmkit.cli.main checks before the command runs
    from .._paths import Output

    out, ckpt = _train_paths(args)
    found = [Output("--out" if args.out is not None else "--out (default)", out)]
    if ckpt is not None:
        arg = "--checkpoint-dir" if args.checkpoint_dir else "--checkpoint-dir (default)"
        found.append(Output(arg, ckpt, names=("epoch*.lstmkit",)))
    return found


def _train(args) -> int:
    from ..apps.text import LMConfig, train_language_model

    word = args.level == "word"
    cfg = LMConfig(
        level=args.level, embed_dim=args.embed_dim, units=args.units, layers=args.layers,
        dropout=args.dropout, seq_len=_default(args.seq_len, 35 if word else LMConfig.seq_len),
        batch_size=args.batch_size, learning_rate=args.lr, epsilon=args.eps, clipnorm=args.clipnorm,
        lr_decay=args.lr_decay, decay_after=args.decay_after,
        epochs=args.epochs, patience=args.patience, val_fraction=args.val_fraction,
        max_vocab=_default(args.max_vocab, 10000 if word else None), min_freq=args.min_freq,
        lower=args.lower, seed=args.seed, max_steps=args.max_steps,
    )  # fmt: skip
    strategy = ray_strategy(args)
    text = _read(args.corpus, "corpus")
    out, ckpt = _train_paths(args)
    log = None if args.quiet else (lambda s: print(s, flush=True))
    report = train_language_model(text, cfg, checkpoint_dir=ckpt, log=log, distribute=strategy)
    report.model.save(out)
    print(report.format_table())
    b = report.best
    key = "val_bpc" if word is False else "val_perplexity"
    print(f"best epoch {b['epoch']}: val_loss {b['val_loss']:.4f} nats/{args.level}, "
          f"{key} {b[key]:.4f}")  # fmt: skip
    print(f"wrote {out}" + (f" (checkpoints in {ckpt})" if ckpt else ""))
    return 0


def _default(value, default):
    """``value`` unless the flag was not given (None); 0 or "" are values, not "not given"."""
    return default if value is None else value


def _generate(args) -> int:
    from ..apps.text import generate
    from ..saving import load_model

    model = load_model(args.model, compile=False)
    print(generate(model, args.prompt, args.length, args.temperature, args.top_k, args.seed))
    return 0


def _evaluate(args) -> int:
    from ..apps.text import evaluate_text, summary_line, vocabulary_of
    from ..saving import load_model

    model = load_model(args.model, compile=False)
    result = evaluate_text(model, _read(args.file, "file"), batch_size=args.batch_size)
    print(summary_line(result, vocabulary_of(model).level))
    return 0


def _next(args) -> int:
    from ..apps.text import next_token_distribution
    from ..saving import load_model

    model = load_model(args.model, compile=False)
    dist = next_token_distribution(model, args.prompt)
    for token, p in list(dist.items())[: args.top]:
        print(f"{token!r:>14}  {p:.4f}")
    return 0


def main(argv=None) -> int:
    """``python -m lstmkit.cli.text ...``: ``lstmkit text ...``, with the same path checks and
    Ctrl-C handling (``lstmkit.cli.main``)."""
    from . import main as lstmkit_main

    return lstmkit_main(["text", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
