"""Range checks of the apps' config dataclasses (``LMConfig``, ``ClassifyConfig``): each refuses a
field with ``<Config>: argument '<field>' must be <allowed>; got <value>``."""

from __future__ import annotations

import numpy as np


def check_ints(cfg, names, lo, none_ok=False):
    """Each field in ``names`` an int >= ``lo`` (bools refused; None allowed with ``none_ok``)."""
    owner = type(cfg).__name__
    for name in names:
        v = getattr(cfg, name)
        if v is None and none_ok:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            what = "a positive int" if lo == 1 else f"an int >= {lo}"
            tail = " or None" if none_ok else ""
            raise ValueError(f"{owner}: argument '{name}' must be {what}{tail}; got {v!r}")


def check_range(cfg, name, lo, hi, *, lo_open=False, hi_open=False, none_ok=False):
    """Field ``name`` a finite real number from ``lo`` to ``hi`` (``*_open`` excludes the end;
    ``hi=inf`` for no upper end); None allowed with ``none_ok``."""
    v = getattr(cfg, name)
    if v is None and none_ok:
        return
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    if ok:
        ok = bool(np.isfinite(v)) and (v > lo if lo_open else v >= lo)
        ok = ok and (v < hi if hi_open else v <= hi)
    if not ok:
        if np.isinf(hi):
            allowed = f"a number {'>' if lo_open else '>='} {lo:g}"
        else:
            allowed = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        tail = " or None" if none_ok else ""
        raise ValueError(
            f"{type(cfg).__name__}: argument '{name}' must be {allowed}{tail}; got {v!r}"
        )
