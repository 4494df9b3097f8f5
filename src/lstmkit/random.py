"""One seeded source of randomness for initialisers, dropout and shuffling.

``lstmkit.set_random_seed(s)`` makes everything that follows reproducible, like
``keras.utils.set_random_seed``. Components that accept ``rng=`` use it instead.
"""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def get_rng() -> np.random.Generator:
    return _rng
