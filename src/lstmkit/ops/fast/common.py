"""Argument plumbing shared by the compiled cells: dtype/contiguity and optional-mask stand-ins.

The kernels take every optional array as a real array plus a flag, so each kernel compiles once
per float type instead of once per combination of ``None`` arguments.
"""

from __future__ import annotations

import numpy as np

_DUMMY_BOOL = np.ones((1, 1), dtype=np.bool_)


def as_float(a, dtype=None) -> np.ndarray:
    """C-contiguous float32/float64 view or copy; anything else becomes float64 like NumPy would."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def bool_or_dummy(mask):
    """``(mask as C-contiguous bool, True)`` or a (1, 1) stand-in and False for ``None``."""
    if mask is None:
        return _DUMMY_BOOL, False
    return np.ascontiguousarray(mask, dtype=np.bool_), True


def float_or_dummy(a, dtype):
    if a is None:
        return np.ones((1, 1), dtype=dtype), False
    return as_float(a, dtype), True
