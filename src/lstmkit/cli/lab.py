"""``lstmkit lab``: long-time-lag experiments (:mod:`lstmkit.apps.lab`).

    lstmkit lab adding --length 100 --cell lstm --seed 0 [--budget 200000] [--out DIR]
    lstmkit lab temporal-order --length 100 --cell gru --seed 1
    lstmkit lab copy --length 50 --cell lstm
    lstmkit lab compare --task adding --cells lstm,gru,rnn --seeds 0,1,2 --length 50

Cells: lstm, lstm-peephole, lstm-cifg, lstm-nofg, lstm-ln, gru, rnn. ``python -m lstmkit.cli.lab``
runs the same parser without the ``lstmkit lab`` prefix.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_OUT = "out/lab"
EXTS = (".json", ".png")  # apps.lab.save_result writes <stem>.json and <stem>.png


def _csv(kind):
    def parse(text):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__}s; got {text!r}"
            ) from e

    return parse


def _settings(p, task_choice=False):
    from ..apps.lab import CELLS, TASKS, LabConfig

    d = LabConfig()
    if task_choice:
        p.add_argument("--task", choices=list(TASKS), default="adding")
        p.add_argument(
            "--cells",
            type=_csv(str),
            default=["lstm", "gru", "rnn"],
            help=f"comma-separated, from {','.join(CELLS)} (default lstm,gru,rnn)",
        )
        p.add_argument("--seeds", type=_csv(int), default=[0, 1, 2], help="default 0,1,2")
    else:
        p.add_argument("--cell", choices=list(CELLS), default="lstm")
        p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--length", type=int, default=d.length, help="minimal sequence length T (copy: the delay)"
    )
    p.add_argument("--units", type=int, default=d.units)
    p.add_argument(
        "--forget-bias",
        type=float,
        default=d.forget_bias,
        help=f"LSTM forget-gate bias at start (default {d.forget_bias})",
    )
    p.add_argument(
        "--input-bias", type=float, default=None, help="LSTM input-gate bias at start (default 0)"
    )
    p.add_argument(
        "--update-bias", type=float, default=None, help="GRU update-gate bias at start (default 0)"
    )
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--clipnorm", type=float, default=d.clipnorm, help="global gradient-norm clip")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--budget", type=int, default=d.budget, help="training sequences at most")
    p.add_argument(
        "--check-every",
        type=int,
        default=d.check_every,
        help="training sequences between validation checks",
    )
    p.add_argument("--test-size", type=int, default=d.test_size)
    p.add_argument(
        "--max-wrong", type=int, default=d.max_wrong, help="stop at this many wrong or fewer"
    )
    p.add_argument(
        "--out", default=DEFAULT_OUT, help=f"directory for JSON and PNG (default {DEFAULT_OUT})"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="TASK", required=True)
    helps = {
        "adding": "the adding problem (1997 paper, section 5.4)",
        "temporal-order": "the temporal-order problem, 2 symbols (1997 paper, section 5.6)",
        "copy": "copy / delayed recall of 10 symbols after --length steps",
    }
    for task, help_text in helps.items():
        p = sub.add_parser(task, help=help_text, description=help_text)
        _settings(p)
        p.set_defaults(func=_run, task=task, writes=_writes)
    p = sub.add_parser("compare", help="several cells x seeds on one task, one table")
    _settings(p, task_choice=True)
    p.set_defaults(func=_compare, writes=_writes)


def _writes(args):  # what lstmkit.cli.main checks before the command runs: <stem>.json, .png
    from .._paths import Output
    from ..apps.lab import result_stem

    cells, seeds = (
        (args.cells, args.seeds) if args.verb == "compare" else ([args.cell], [args.seed])
    )
    stems = [
        result_stem({"task": args.task, "length": args.length, "cell": c, "seed": s})
        for c in cells
        for s in seeds
    ]
    return [Output("--out", os.path.join(args.out, f"{s}{ext}")) for s in stems for ext in EXTS]


def _log(line):
    print(line, flush=True)  # progress shows up in log files of long runs


def _config_kwargs(args):
    return {
        "length": args.length,
        "units": args.units,
        "forget_bias": args.forget_bias,
        "input_bias": args.input_bias,
        "update_bias": args.update_bias,
        "lr": args.lr,
        "clipnorm": args.clipnorm,
        "batch": args.batch,
        "budget": args.budget,
        "check_every": args.check_every,
        "test_size": args.test_size,
        "max_wrong": args.max_wrong,
    }


def _run(args) -> int:
    from ..apps.lab import LabConfig, run, save_result

    cfg = LabConfig(task=args.task, cell=args.cell, seed=args.seed, **_config_kwargs(args))
    result = run(cfg, log=None if args.quiet else _log)
    print(result.summary())
    jpath, ppath = save_result(result, args.out)
    print(f"wrote {jpath}" + (f" and {ppath}" if ppath else ""))
    return 0


def _compare(args) -> int:
    from ..apps.lab import CELLS, compare, format_table

    bad = [c for c in args.cells if c not in CELLS]
    if bad:
        raise ValueError(f"argument '--cells' must name cells from {list(CELLS)}; got {bad}")
    results = compare(
        args.task,
        args.cells,
        args.seeds,
        log=None if args.quiet else _log,
        out_dir=args.out,
        **_config_kwargs(args),
    )
    print(format_table(results))
    return 0


def main(argv=None) -> int:
    """``python -m lstmkit.cli.lab ...``: ``lstmkit lab ...``, with the same path checks and
    Ctrl-C handling (``lstmkit.cli.main``)."""
    from . import main as lstmkit_main

    return lstmkit_main(["lab", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
