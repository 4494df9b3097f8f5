"""Compiled (numba) versions of :mod:`lstmkit.ops.lstm`, :mod:`~lstmkit.ops.gru` and
:mod:`~lstmkit.ops.rnn`: same signatures, return types and caches as the NumPy reference, plus an
``*_infer`` that skips the cache. Importing this package imports numba; use
:mod:`lstmkit.ops.backend` to pick an implementation without requiring numba.

Threads: :func:`set_num_threads` (or ``LSTMKIT_NUM_THREADS``; default: the CPUs this process may
use). Kernels compile on first use for each float type and are cached on disk by numba in the
directory of :func:`lstmkit.ops.compiled.cache_dir` (``$LSTMKIT_CACHE_DIR`` or the user's cache
directory; ``NUMBA_CACHE_DIR`` does not apply to them), keyed on a hash of every file here, so an
edit to any of them (``activations.py``, ``common.py`` included) gives a fresh cache. Who compiles
them and when: :mod:`lstmkit.ops.compiled`.
"""

import numba  # noqa: F401  (fail at import, not at first call, when the fast path cannot run)
import scipy.linalg.cython_blas  # noqa: F401  numba's np.dot calls BLAS through SciPy

from .. import compiled

# numba picks each kernel's cache directory when it is decorated: every submodule is imported here
with compiled.numba_cache_dir():
    from .common import get_num_threads, set_num_threads
    from .gru import gru_backward, gru_forward, gru_infer, gru_step
    from .lstm import lstm_backward, lstm_forward, lstm_infer, lstm_step
    from .optim import adam_flat, sum_squares  # noqa: F401  (the optimizers' flat step)
    from .rnn import rnn_backward, rnn_forward, rnn_infer, rnn_step
    from .scatter import embedding_grad  # noqa: F401  (Embedding's backward)
    from .xent import sparse_xent  # noqa: F401  (the sparse cross-entropy from logits)

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
