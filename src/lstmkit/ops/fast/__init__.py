"""Compiled (numba) versions of :mod:`lstmkit.ops.lstm`, :mod:`~lstmkit.ops.gru` and
:mod:`~lstmkit.ops.rnn`: same signatures, return types and caches as the NumPy reference, plus an
``*_infer`` that skips the cache. Importing this package imports numba; use
:mod:`lstmkit.ops.backend` to pick an implementation without requiring numba.

Threads: :func:`set_num_threads` (or ``LSTMKIT_NUM_THREADS``; default: the CPUs this process may
use). Kernels compile on first use for each float type and are cached on disk by numba
(``__pycache__`` next to these files, or ``NUMBA_CACHE_DIR``). numba's cache only notices edits to
the file holding the compiled function: after editing ``activations.py`` or ``common.py`` delete
``src/lstmkit/ops/fast/__pycache__``.
"""

import numba  # noqa: F401  (fail at import, not at first call, when the fast path cannot run)
import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls BLAS through SciPy

from .common import get_num_threads, set_num_threads
from .gru import gru_backward, gru_forward, gru_infer, gru_step
from .lstm import lstm_backward, lstm_forward, lstm_infer, lstm_step
from .rnn import rnn_backward, rnn_forward, rnn_infer, rnn_step

__all__ = [
    "get_num_threads",
    "gru_backward",
    "gru_forward",
    "gru_infer",
    "gru_step",
    "lstm_backward",
    "lstm_forward",
    "lstm_infer",
    "lstm_step",
    "rnn_backward",
    "rnn_forward",
    "rnn_infer",
    "rnn_step",
    "set_num_threads",
]
