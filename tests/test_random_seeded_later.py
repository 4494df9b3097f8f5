"""``lstmkit.random.SeededLater``: the generator a training step hands its layers, seeded at its
first use. Witness: ``np.random.default_rng`` with the same seed, made at once."""

from __future__ import annotations

import numpy as np

import lstmkit
from lstmkit import initializers
from lstmkit.layers import Dense, Dropout
from lstmkit.models import Sequential
from lstmkit.random import SeededLater


def test_draws_are_those_of_default_rng_with_the_same_seed():
    lazy, now = SeededLater([3, 1, 4]), np.random.default_rng([3, 1, 4])
    assert np.array_equal(lazy.random((2, 5)), now.random((2, 5)))
    assert np.array_equal(lazy.standard_normal(7), now.standard_normal(7))  # the state advances
    assert lazy.integers(100) == now.integers(100)


def test_initializers_take_it_as_a_generator_not_as_keras_positional_dtype():
    for name in ("glorot_uniform", "orthogonal", "truncated_normal"):
        init = initializers.get(name)
        got = init((4, 6), SeededLater([9, 0]))
        want = init((4, 6), np.random.default_rng([9, 0]))
        assert got.dtype == np.float32 and np.array_equal(got, want), name


def test_dropout_masks_of_a_fit_come_from_default_rng_seed_epoch_batch():
    """Each batch's masks are ``default_rng([seed, epoch, batch])``'s, as documented: a model
    whose Dropout draws from it sees exactly the mask such a generator gives."""
    x = np.ones((4, 3), np.float32)
    lstmkit.set_random_seed(0)
    model = Sequential([Dropout(0.5), Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(optimizer="sgd", loss="mse", seed=11)
    seen = []
    layer = model.layers[0]
    forward = layer.forward

    def spy(x, **kw):
        y, cache = forward(x, **kw)
        seen.append(y.copy())
        return y, cache

    layer.forward = spy
    model.fit(x, np.zeros((4, 1)), epochs=2, batch_size=2, shuffle=False, verbose=0)
    for (epoch, batch), y in zip([(0, 0), (0, 1), (1, 0), (1, 1)], seen):
        keep = np.random.default_rng([11, epoch, batch]).random((2, 3)) >= 0.5
        assert np.array_equal(y, np.where(keep, 2.0, 0.0).astype(np.float32)), (epoch, batch)
