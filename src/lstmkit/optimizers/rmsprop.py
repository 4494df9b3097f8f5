"""RMSprop with Keras' placement of eps (inside the square root)."""

from __future__ import annotations

import numpy as np

from ._checks import in_unit
from .base import Optimizer


class RMSprop(Optimizer):
    """RMSprop (Hinton, Coursera lecture 6e; centred form from Graves 2013, eq. 38-41), Keras
    placement of eps inside the square root: ``inc = lr * g / sqrt(v [- a^2] + eps)``."""

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = in_unit("RMSprop", "rho", rho)
        self.momentum = in_unit("RMSprop", "momentum", momentum, closed_right=True)
        if epsilon < 0:
            raise ValueError(f"RMSprop: argument 'epsilon' must be >= 0; got {epsilon!r}")
        self.epsilon, self.centered = float(epsilon), bool(centered)

    def slot_names(self):
        return (
            ("velocity",)
            + (("average_gradient",) if self.centered else ())
            + (("momentum",) if self.momentum > 0 else ())
        )

    def _update(self, name, p, g, lr):
        v = self._slot("velocity", name, p)
        v *= self.rho
        v += (1.0 - self.rho) * g * g
        if self.centered:
            a = self._slot("average_gradient", name, p)
            a *= self.rho
            a += (1.0 - self.rho) * g
            denominator = v - a * a + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * g / np.sqrt(denominator)
        if self.momentum > 0:
            m = self._slot("momentum", name, p)
            m *= self.momentum
            m += increment
            p -= m
        else:
            p -= increment

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
