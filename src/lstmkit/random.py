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


class SeededLater:
    """``np.random.default_rng(seed)``, made at the first use of any of its attributes: a
    training step hands every layer a generator seeded by ``[seed, epoch, batch]`` (dropout
    masks), and seeding one costs ~20 us (``SeedSequence``), 2 % of a small model's step, while
    most models draw nothing from it. The same draws as the generator made at once."""

    __slots__ = ("_generator", "_seed")

    def __init__(self, seed):
        self._seed, self._generator = seed, None

    def get(self) -> np.random.Generator:
        if self._generator is None:
            self._generator = np.random.default_rng(self._seed)
        return self._generator

    def __getattr__(self, name):  # (only for names not in __slots__: the Generator's)
        return getattr(self.get(), name)


def as_generator(rng):
    """``rng`` itself, or the generator behind a :class:`SeededLater`."""
    return rng.get() if isinstance(rng, SeededLater) else rng
