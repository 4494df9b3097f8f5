"""Adagrad (Duchi, Hazan & Singer 2011) with Keras 3 defaults and eps placement."""

from __future__ import annotations

import numpy as np

from ._checks import non_negative
from .base import Optimizer


class Adagrad(Optimizer):
    """``a <- a + g^2;  p <- p - lr * g / sqrt(a + eps)``, the accumulator ``a`` starting at
    ``initial_accumulator_value`` (Keras: 0.1; torch: 0) and eps inside the square root (torch
    adds it outside). Keras' default ``learning_rate`` is 0.001 (the paper's form uses 1.0)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = non_negative(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value
        )
        self.epsilon = non_negative("Adagrad", "epsilon", epsilon)

    def slot_names(self):
        return ("accumulator",)

    def _update(self, name, p, g, lr):
        a = self._slot("accumulator", name, p, self.initial_accumulator_value)
        a += g * g
        p -= lr * g / np.sqrt(a + self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }
