"""Argument checks shared by the optimizers and the schedules."""

from __future__ import annotations

import numpy as np


def positive(owner, arg, value):
    """``value`` as a float; a ``ValueError`` naming ``owner`` and ``arg`` unless it is > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value <= 0:
        raise ValueError(f"{owner}: argument '{arg}' must be a positive number; got {value!r}")
    return float(value)


def non_negative(owner, arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value < 0:
        raise ValueError(f"{owner}: argument '{arg}' must be a number >= 0; got {value!r}")
    return float(value)


def in_unit(owner, arg, value, closed_right=False):
    """``value`` in [0, 1) (or [0, 1] with ``closed_right``) as a float."""
    number = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    ok = number and (0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0)
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{owner}: argument '{arg}' must be in {interval}; got {value!r}")
    return float(value)
