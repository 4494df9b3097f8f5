"""Learning-rate schedules: ``schedule(step) -> lr`` with ``step = optimizer.iterations``.

The three Keras 3 schedules the tutorials use (``keras.optimizers.schedules``), with Keras'
formulas, configs and class names. An optimizer accepts an instance, or its serialised form
``{"class_name": ..., "config": ...}``, as ``learning_rate``.
"""

from __future__ import annotations

import bisect
import itertools
import math

from ._checks import positive


class LearningRateSchedule:
    """``schedule(step) -> lr`` for ``step = optimizer.iterations`` (0 on the first update)."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``lr = initial_learning_rate * decay_rate ** (step / decay_steps)``; the exponent is
    floored when ``staircase`` is true."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = positive(
            "ExponentialDecay", "initial_learning_rate", initial_learning_rate
        )
        self.decay_steps = positive("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = positive("ExponentialDecay", "decay_rate", decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


class CosineDecay(LearningRateSchedule):
    """``lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)`` with
    ``s = min(step, decay_steps)``: from ``initial`` down to ``alpha * initial``, then flat."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate = positive(
            "CosineDecay", "initial_learning_rate", initial_learning_rate
        )
        self.decay_steps = positive("CosineDecay", "decay_steps", decay_steps)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"CosineDecay: argument 'alpha' must be in [0, 1]; got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, step):
        s = min(step, self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), [float(v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "PiecewiseConstantDecay: argument 'values' must have len(boundaries) + 1 = "
                f"{len(boundaries) + 1} entries; got {len(values)}"
            )
        if any(b >= c for b, c in itertools.pairwise(boundaries)):
            raise ValueError(
                "PiecewiseConstantDecay: argument 'boundaries' must be strictly increasing; "
                f"got {boundaries}"
            )
        self.boundaries, self.values = boundaries, values

    def __call__(self, step):
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


SCHEDULES = {c.__name__: c for c in (ExponentialDecay, CosineDecay, PiecewiseConstantDecay)}
