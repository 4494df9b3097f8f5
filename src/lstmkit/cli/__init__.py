"""``lstmkit`` command line. Each verb group lives in its own module with a ``register(sub)``
function that adds its parser; the parsers only translate arguments into calls of the apps."""

from __future__ import annotations

import argparse
import importlib
import sys

# verb -> module under lstmkit.cli (imported lazily so `lstmkit --help` stays fast)
GROUPS = {
    "forecast": "Train a forecaster on a CSV series, forecast, backtest.",
    "text": "Character/word language models: train, generate, evaluate.",
    "classify": "Sequence classifiers (sentiment, numeric sequences): train, predict, evaluate.",
    "lab": "Long-lag experiments of the 1997 LSTM paper: adding, temporal order, compare cells.",
    "inspect": "Gate traces, gradient flow and an HTML report for a trained model.",
    "export": "Export a saved model to ONNX, a PyTorch state dict or a .keras file.",
    "info": "Version, backend, kernels, threads, BLAS and the optional extras found.",
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="lstmkit",
        description="LSTM, GRU and RNN from their equations: train, forecast, inspect, export.",
    )
    p.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    sub = p.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name, help_text in GROUPS.items():
        mod = importlib.import_module(f"lstmkit.cli.{name}")
        mod.register(sub.add_parser(name, help=help_text, description=help_text))
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"lstmkit {args.group}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
