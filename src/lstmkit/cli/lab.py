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

from ._args import (
    Parser,
    comma_list,
    finite_float,
    int_at_least,
    nonempty,
    nonneg_int,
    positive_float,
    positive_int,
)

DEFAULT_OUT = "out/lab"
#: the shortest --length each task's generator in lstmkit.tasks accepts (adding: both marks must
#: lie before the last pair; temporal order: the two symbols need T // 10 < T // 2)
MIN_LENGTH = {"adding": 12, "temporal-order": 10, "copy": 1}
EXTS = (".json", ".png")  # apps.lab.save_result writes <stem>.json and <stem>.png


def _settings(p, task=None):
    """The shared flags; ``task`` None: ``compare``'s --task/--cells/--seeds instead of one run's
    --cell/--seed (its --length minimum is then checked once the task is known)."""
    from ..apps.lab import CELLS, TASKS, LabConfig

    d = LabConfig()
    if task is None:
        p.add_argument("--task", choices=list(TASKS), default="adding")
        p.add_argument(
            "--cells",
            type=comma_list(nonempty, "cell names"),
            default=["lstm", "gru", "rnn"],
            help=f"comma-separated, from {','.join(CELLS)} (default lstm,gru,rnn)",
        )
        p.add_argument("--seeds", type=comma_list(nonneg_int, "integers >= 0"),
                       default=[0, 1, 2], help="comma-separated integers >= 0 (default 0,1,2)")  # fmt: skip
    else:
        p.add_argument("--cell", choices=list(CELLS), default="lstm")
        p.add_argument("--seed", type=nonneg_int, default=0)
    least = 1 if task is None else MIN_LENGTH[task]
    p.add_argument("--length", type=int_at_least(least), default=d.length,
                   help="minimal sequence length T (copy: the delay); adding >= 12, "
                   "temporal-order >= 10")  # fmt: skip
    p.add_argument("--units", type=positive_int, default=d.units)
    p.add_argument(
        "--forget-bias",
        type=finite_float,
        default=d.forget_bias,
        help=f"LSTM forget-gate bias at start (default {d.forget_bias})",
    )
    p.add_argument("--input-bias", type=finite_float, default=None,
                   help="LSTM input-gate bias at start (default 0)")  # fmt: skip
    p.add_argument("--update-bias", type=finite_float, default=None,
                   help="GRU update-gate bias at start (default 0)")  # fmt: skip
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate")
    p.add_argument("--clipnorm", type=positive_float, default=d.clipnorm,
                   help="global gradient-norm clip")  # fmt: skip
    p.add_argument("--batch", type=positive_int, default=d.batch)
    p.add_argument("--budget", type=positive_int, default=d.budget,
                   help="training sequences at most")  # fmt: skip
    p.add_argument(
        "--check-every",
        type=positive_int,
        default=d.check_every,
        help="training sequences between validation checks",
    )
    p.add_argument("--test-size", type=positive_int, default=d.test_size)
    p.add_argument("--max-wrong", type=nonneg_int, default=d.max_wrong,
                   help="stop at this many wrong or fewer (below --test-size)")  # fmt: skip
    p.add_argument("--out", type=nonempty, default=DEFAULT_OUT,
                   help=f"directory for JSON and PNG (default {DEFAULT_OUT})")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="TASK", required=True, parser_class=Parser)
    helps = {
        "adding": "the adding problem (1997 paper, section 5.4)",
        "temporal-order": "the temporal-order problem, 2 symbols (1997 paper, section 5.6)",
        "copy": "copy / delayed recall of 10 symbols after --length steps",
    }
    for task, help_text in helps.items():
        p = sub.add_parser(task, help=help_text, description=help_text)
        _settings(p, task)
        p.set_defaults(func=_run, task=task, writes=_writes)
    p = sub.add_parser("compare", help="several cells x seeds on one task, one table")
    _settings(p)
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
    """The LabConfig settings of the flags, after the checks that need two flags at once."""
    if args.length < MIN_LENGTH[args.task]:  # compare: the task was not known at parse time
        raise ValueError(
            f"argument --length: must be an integer >= {MIN_LENGTH[args.task]} for the "
            f"{args.task} task; got {args.length}"
        )
    if args.max_wrong >= args.test_size:
        raise ValueError(
            f"argument --max-wrong: must be below --test-size ({args.test_size}), or the first "
            f"check would stop training; got {args.max_wrong}"
        )
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
        raise ValueError(f"argument --cells: must name cells from {list(CELLS)}; got {bad}")
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
