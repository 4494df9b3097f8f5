"""Which implementation of the cell ops runs: the NumPy reference (placeholder until the fast
path lands; the numba helper extends this module with the same ``ops_for`` contract)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace


def ops_for(cell: str) -> SimpleNamespace:
    mod = importlib.import_module(f"lstmkit.ops.{cell}")
    return SimpleNamespace(
        forward=getattr(mod, f"{cell}_forward"),
        backward=getattr(mod, f"{cell}_backward"),
        step=getattr(mod, f"{cell}_step"),
    )
