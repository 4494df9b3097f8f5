"""Stochastic gradient descent with Keras momentum and nesterov."""

from __future__ import annotations

from ._checks import in_unit
from .base import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent with Keras momentum: ``m <- momentum * m - lr * g``,
    ``p <- p + m`` (or ``p + momentum * m - lr * g`` with ``nesterov``)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = in_unit("SGD", "momentum", momentum, closed_right=True)
        self.nesterov = bool(nesterov)

    def slot_names(self):
        return ("momentum",) if self.momentum > 0 else ()

    def _update(self, name, p, g, lr):
        if self.momentum == 0:
            p -= lr * g
            return
        m = self._slot("momentum", name, p)
        m *= self.momentum
        m -= lr * g
        if self.nesterov:
            p += self.momentum * m - lr * g
        else:
            p += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
