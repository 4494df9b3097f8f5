"""``lstmkit inspect``: gates, states and gradient flow of a saved model, as PNGs and one HTML page.

    lstmkit inspect MODEL --input FILE [--out DIR] [--target FILE [--loss NAME]] [--sample N]
                          [--units U ...]
    lstmkit inspect --compare-cells [--length 100] [--seeds 5] [--hidden 32] [--lag 100] [--out DIR]

FILE is a ``.npy`` array, a ``.csv`` of numbers (rows = time steps, columns = features), or a
UTF-8 text file for a text model. The parser only translates arguments into calls of
:mod:`lstmkit.inspect.report` (details and the measured figures: ``docs/inspect.md``).
"""

from __future__ import annotations

import argparse

from ._args import int_at_least, nonempty, nonneg_int, positive_int

#: the adding problem of --compare-cells needs T >= 12 (lstmkit.tasks.adding_problem)
MIN_LENGTH = 12


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="lstmkit model file (written by model.save)")
    parser.add_argument(
        "--input", metavar="FILE", help="input: .npy, .csv, or text for a text model"
    )
    parser.add_argument(
        "--text", help="a translation model: the sentence whose attention and gates to show"
    )
    parser.add_argument(
        "--out", metavar="DIR", type=nonempty, default="inspect", help="output directory"
    )
    parser.add_argument(
        "--target",
        metavar="FILE",
        help="targets (.npy/.csv) for the gradient flow of the model's loss; without it the "
        "gradient of each sample's largest output",
    )
    parser.add_argument("--loss", help="loss for --target (default: the model's, else mse)")
    parser.add_argument(
        "--sample", type=nonneg_int, default=0, help="sequence the heatmaps show (from 0)"
    )
    parser.add_argument(
        "--units", type=nonneg_int, nargs="+", metavar="U", help="units whose states to plot"
    )
    parser.add_argument(
        "--compare-cells",
        action="store_true",
        help="instead of a model: gradient flow of SimpleRNN, GRU and LSTMs on the adding problem",
    )
    parser.add_argument("--length", type=int_at_least(MIN_LENGTH), default=100,
                        help=f"--compare-cells: minimal T (>= {MIN_LENGTH})")  # fmt: skip
    parser.add_argument(
        "--seeds", type=positive_int, default=5, help="--compare-cells: number of seeds"
    )
    parser.add_argument(
        "--hidden", type=positive_int, default=32, help="--compare-cells: units per cell"
    )
    parser.add_argument("--lag", type=nonneg_int, default=None,
                        help="--compare-cells: lag of the table, at most --length "
                        "(default: --length, at most 100)")  # fmt: skip
    parser.set_defaults(func=_run, reads=("model", "--input", "--target"), writes=_writes)


# the files lstmkit.inspect.report writes into --out DIR
REPORT_FILES = ("report.html", "cells.html", "gradient_flow*.png", "text.png", "*_gates.png",
                "*_states.png", "attention.png")  # fmt: skip


def _writes(args):  # what lstmkit.cli.main checks before the command runs
    from .._paths import Output

    return [Output("--out", args.out, names=REPORT_FILES)]


def _run(args) -> int:
    from ..inspect import inputs, report

    if args.compare_cells:
        lag = min(100, args.length) if args.lag is None else args.lag
        # lag k averages the samples longer than k: all for k < length, and lag == length needs
        # one sequence longer than the minimum per batch (almost sure; the report checks it)
        if lag > args.length:
            raise ValueError(
                f"argument --lag: must be at most --length ({args.length}); got {args.lag}"
            )
        path, _, rows = report.write_cell_comparison(
            args.out, T=args.length, units=args.hidden, seeds=range(args.seeds), lag=lag
        )
        for r in rows:
            print(
                f"{r['cell']:<22} |dL/dh| at lag {r['lag']}: {r['norm_h']:.3g}   "
                f"ratio to SimpleRNN (median): {r['ratio_to_rnn']:.3g}"
            )
        print(f"wrote {path}")
        return 0
    if args.model is not None:
        from ..apps.translate_files import is_translator

        if is_translator(args.model):
            return _translation(args)
    if args.text is not None:
        raise ValueError(
            f"argument --text: only for a translation model; {args.model!r} is not one "
            "(use --input FILE)"
        )
    if args.model is None or args.input is None:
        raise ValueError("arguments MODEL and --input FILE are required (or --compare-cells)")
    from ..saving import load_model

    model = load_model(args.model, compile=True)
    x, tokens = inputs.load_input(model, args.input)
    y = None
    if args.target is not None:
        y = inputs.read_numbers(args.target)
        if len(y) != len(x) and len(x) == 1:
            y = y[None]
    path = report.write_report(
        model,
        x,
        args.out,
        y=y,
        text=tokens,
        sample=args.sample,
        units=args.units,
        loss=args.loss,
        title=f"lstmkit inspect: {args.model}",
    )
    print(f"wrote {path}")
    return 0


def _translation(args) -> int:
    from ..apps.translate import align, load
    from ..inspect.report import write_translation_report

    if args.text is None:
        raise ValueError(
            f"argument --text: required for a translation model ({args.model!r}); got none"
        )
    a = align(load(args.model), args.text)
    path = write_translation_report(a, args.out, title=f"lstmkit inspect: {args.model}")
    print(f"{args.text}\n-> {a.translation}")
    print(f"wrote {path}, {path.parent / 'attention.png'}, {path.parent / 'decoder_gates.png'}")
    return 0
