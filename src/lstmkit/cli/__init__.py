"""``lstmkit`` command line. Each verb group lives in its own module with a ``register(sub)``
function that adds its parser; the parsers only translate arguments into calls of the apps."""

from __future__ import annotations

import argparse
import importlib
import sys

# verb -> module under lstmkit.cli (imported lazily so `lstmkit --help` stays fast)
GROUPS = {
    "forecast": "Forecast the series of a CSV file (one or many): train, predict, backtest, demo.",
    "text": "Character/word language models: train, generate, evaluate, next.",
    "classify": "Sequence classifiers (sentiment, numeric sequences): train, predict, evaluate.",
    "translate": "Encoder-decoder translation with attention: train, run, evaluate.",
    "lab": "Long-lag experiments: adding, temporal order (1997 LSTM paper), copy, compare cells.",
    "inspect": "Gate traces, gradient flow and an HTML report for a trained model.",
    "export": (
        "Export a saved model to ONNX, a PyTorch state dict, a .keras file or a quantised"
        " lstmkit file."
    ),
    "info": "Version, backend, kernels, threads, BLAS and the optional extras found.",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only`` (a verb of ``GROUPS``) only that group's module is
    imported and its subcommands registered (the others keep their one-line help): ``lstmkit
    forecast predict`` does not pay for importing the text, translate and lab apps (about a
    second of a short command)."""
    from .. import __version__
    from ._args import Parser

    p = Parser(
        prog="lstmkit",
        description="LSTM, GRU and RNN from their equations: train, forecast, inspect, export.",
    )
    p.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    sub = p.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name, help_text in GROUPS.items():
        group = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            importlib.import_module(f"lstmkit.cli.{name}").register(group)
    return p


def _group(argv) -> str | None:
    """The verb group the command line names first (None: none, e.g. ``--help``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return args[0] if args and args[0] in GROUPS else None


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``) in the ``lstmkit`` script: raised where Ctrl-C raises
    ``KeyboardInterrupt``, so that the same ``finally`` blocks run (child processes killed and
    reaped, temporary files and directories removed); Python's default for SIGTERM ends the
    process at once and leaves them (a ``--jobs`` child went on training)."""


def _terminated(signum, frame):
    raise Terminated


def main(argv=None) -> int:
    """Parse, check the declared paths (``lstmkit._paths``), run. Bad input: one line on stderr,
    status 2. Ctrl-C: one line saying what was written, status 130 (128 + SIGINT); SIGTERM in
    the script (``Terminated``): the same, status 143 (128 + SIGTERM)."""
    import numpy as np

    from .. import _paths

    prog, before = "lstmkit", {}
    try:
        args = build_parser(_group(argv)).parse_args(argv)
        prog = f"lstmkit {args.group}"
        try:
            before = _paths.snapshot(_paths.check_args(args))
            # a diverging run is reported once, by TerminateOnNaN and the non-finite checks,
            # not by a screenful of NumPy overflow warnings
            with np.errstate(over="ignore", invalid="ignore"):
                return int(args.func(args) or 0)
        except (ValueError, FileNotFoundError) as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
    except KeyboardInterrupt as e:
        # atomic writes leave each output the old file or the new one, never half of one
        written = _paths.written_since(before)
        done = f"wrote {', '.join(written)}" if written else "nothing written"
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"{prog}: {how}; {done}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


def script(argv=None) -> int:
    """The ``lstmkit`` script and ``python -m lstmkit``: :func:`main` (SIGTERM raising
    ``Terminated`` meanwhile), then the process ends without its final garbage collection
    (``_system.skip_final_collection``: 0.2-0.3 s of a short command). ``main`` itself, which
    tests call in their own process, leaves both alone."""
    import signal

    from .._system import skip_final_collection

    signal.signal(signal.SIGTERM, _terminated)
    try:
        return main(argv)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # main has answered: end as usual
        skip_final_collection()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(script())
