"""Argument types shared by the ``lstmkit`` parsers: every number is checked when the command line
is parsed, before any file is read or any work starts.

Each type refuses a value with a message that says what is allowed and what was given; argparse
puts the flag in front of it::

    lstmkit text train: error: argument --seq-len: must be a positive integer; got 0

``Parser`` prints a refused command line as that one line (no usage block) and exits with status
2, argparse's status for a bad command line.
"""

from __future__ import annotations

import argparse
import math

__all__ = [
    "Parser",
    "comma_list",
    "dropout_rate",
    "finite_float",
    "float_in",
    "fraction",
    "int_at_least",
    "nonempty",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
    "ray_options",
    "ray_strategy",
]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr: ``PROG: error: MESSAGE``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _refuse(allowed, text):
    return argparse.ArgumentTypeError(f"must be {allowed}; got {text}")


def int_at_least(lo: int):
    """Type: an integer ``>= lo`` (written in decimal; ``1.5`` and ``1e3`` are refused)."""
    allowed = "a positive integer" if lo == 1 else f"an integer >= {lo}"

    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise _refuse(allowed, repr(text)) from None
        if v < lo:
            raise _refuse(allowed, v)
        return v

    parse.__name__ = f"int_at_least_{lo}"
    return parse


def float_in(lo=-math.inf, hi=math.inf, *, lo_open=False, hi_open=False, allowed=None):
    """Type: a finite number in the interval from ``lo`` to ``hi`` (``lo_open``/``hi_open``
    exclude the end). NaN and infinities are always refused."""
    if allowed is None:
        if math.isinf(lo) and math.isinf(hi):
            allowed = "a finite number"
        elif math.isinf(hi):
            allowed = f"a number {'>' if lo_open else '>='} {lo:g}"
        else:
            allowed = (
                f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            )

    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise _refuse(allowed, repr(text)) from None
        above = v > lo if lo_open else v >= lo
        below = v < hi if hi_open else v <= hi
        if not (math.isfinite(v) and above and below):
            raise _refuse(allowed, text.strip())
        return v

    parse.__name__ = "float_in"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
positive_float = float_in(0.0, lo_open=True)
nonneg_float = float_in(0.0)
finite_float = float_in()
#: a share of the data: strictly between 0 and 1, so that both parts hold something
fraction = float_in(0.0, 1.0, lo_open=True, hi_open=True)
#: a dropout rate: 0 (none) up to, not including, 1 (everything dropped)
dropout_rate = float_in(0.0, 1.0, hi_open=True)


def nonempty(text):
    """Type: a non-empty string (paths, names)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty; got {text!r}")
    return text


def comma_list(item, allowed, *, unique=True):
    """Type: a non-empty comma-separated list, each entry parsed by ``item`` (one of the types
    above); ``allowed`` describes the whole list for the message (``"integers >= 0"``)."""

    def parse(text):
        parts = [p.strip() for p in text.split(",")]
        if not any(parts):
            raise _refuse(f"comma-separated {allowed}", repr(text))
        try:
            values = [item(p) for p in parts]
        except argparse.ArgumentTypeError:
            raise _refuse(f"comma-separated {allowed}", repr(text)) from None
        repeated = sorted({v for v in values if values.count(v) > 1})
        if unique and repeated:
            raise argparse.ArgumentTypeError(
                f"must not repeat an entry; got {text!r} (repeats {', '.join(map(str, repeated))})"
            )
        return values

    parse.__name__ = "comma_list"
    return parse


def ray_options(p):
    """``--ray-address`` and ``--workers``, for the commands with ``--engine ray``."""
    g = p.add_argument_group("--engine ray only (docs/distributed.md)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="join a running Ray cluster ('auto' or host:port; default: start a "
                   "local Ray instance with this machine's cores)")  # fmt: skip
    g.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="Ray workers (default: one per CPU of the cluster)")  # fmt: skip


def ray_strategy(args):
    """The ``RayStrategy`` of ``--engine ray``, else None (``--ray-address``/``--workers``
    refused). Without the ``ray`` extra: the error says how to install it, before any work."""
    if args.engine != "ray":
        for name in ("ray_address", "workers"):
            if getattr(args, name) is not None:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"argument '{flag}' applies to --engine ray only; got "
                                 f"{getattr(args, name)!r} with --engine {args.engine}")  # fmt: skip
        return None
    from ..distributed import RayStrategy
    from ..distributed.strategy import import_ray

    import_ray("--engine ray")
    return RayStrategy(num_workers=args.workers, address=args.ray_address)
