"""Optimizers and learning-rate schedules with Keras 3 semantics, updating NumPy arrays in place.

A model hands an optimizer two dicts keyed by dotted parameter name (``"lstm_1.kernel"``):
``params`` (updated in place) and ``grads`` (same keys and shapes; never modified). At each step
``t = iterations + 1`` and ``lr = schedule(iterations)`` (or the constant)::

    clipping  g <- g * min(1, clipnorm / sqrt(sum_k ||g_k||^2))   # one GLOBAL norm, see below
              g <- clip(g, -clipvalue, clipvalue)
    SGD       m <- momentum * m - lr * g;   p <- p + m                        (momentum > 0)
              p <- p + momentum * m - lr * g   (after updating m)             (nesterov)
              p <- p - lr * g                                                 (momentum == 0)
    Adam      m <- m + (1 - b1) * (g - m);   v <- v + (1 - b2) * (g^2 - v)
              v_hat <- max(v_hat, v), used in place of v                      (amsgrad)
              p <- p - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    RMSprop   v <- rho * v + (1 - rho) * g^2
              a <- rho * a + (1 - rho) * g;   d = v - a^2 + eps               (centered)
              d = v + eps                                                     (otherwise)
              inc = lr * g / sqrt(d)
              m <- momentum * m + inc;   p <- p - m                           (momentum > 0)
              p <- p - inc                                                    (otherwise)
    Nadam     m, v as Adam;  u_t = b1 (1 - 0.5 * 0.96^t);  U_t = u_1 ... u_t
              m_hat = u_{t+1} m / (1 - U_t u_{t+1}) + (1 - u_t) g / (1 - U_t)
              p <- p - lr * m_hat / (sqrt(v / (1 - b2^t)) + eps)
    Adagrad   a <- a + g^2  (a starts at initial_accumulator_value);  p <- p - lr g / sqrt(a + eps)
    AdamW     Adam, with weight_decay 0.004 by default
    decay     p <- p - p * weight_decay * lr   before the update, for every optimizer given
              ``weight_decay`` (Keras 3), except parameters named in exclude_from_weight_decay

Where this differs from PyTorch (the tests use the cases where both agree, and closed forms
otherwise):

- Adam: Keras adds ``eps`` to ``sqrt(v)`` before bias correction, torch after, so Keras's ``eps``
  acts like torch's ``eps * sqrt(1 - b2^t)``. Identical when ``eps == 0``.
- RMSprop: Keras puts ``eps`` inside the square root, torch outside. Identical when ``eps == 0``.
- Adagrad: the same (eps inside vs outside), and Keras starts the accumulator at 0.1, torch at 0.
- Nadam: torch's ``momentum_decay`` multiplies ``t`` in ``0.96^t``; Keras is ``momentum_decay=1``
  (torch's default is 0.004). Otherwise identical, eps included.
- AdamW: both decay ``p <- p (1 - lr * weight_decay)`` before the step; the Adam part differs
  as Adam's eps does. Keras' default weight_decay is 0.004, torch's 0.01.
- SGD: Keras keeps ``lr`` inside the momentum buffer (``m = -lr * torch_buf``): the same
  trajectory for a constant ``lr``, different as soon as ``lr`` changes between steps.
- ``clipnorm``: Keras 3 clips each gradient by its own norm and calls the joint version
  ``global_clipnorm``. In lstmkit both names mean the global norm (``clip_grad_norm_`` in torch,
  without its 1e-6 in the denominator), because that is what keeps BPTT gradients in check.

Slots (``"m"``, ``"v"``, ``"momentum"`` ...) are created lazily per parameter name with the
parameter's dtype. ``get_state()`` returns them as ``"slot/param"`` arrays plus ``"iterations"``;
``set_state()`` on an optimizer built from the same config resumes the exact trajectory.

Layout: ``base.py`` (the ``Optimizer`` base: checks, clipping, decay, slots, state, config),
``schedules.py`` (``keras.optimizers.schedules``), and one module per family of update rules.
"""

from __future__ import annotations

from . import schedules
from .adagrad import Adagrad
from .adam import Adam, AdamW, Nadam
from .base import ELEMENTWISE_UPDATES, Optimizer
from .rmsprop import RMSprop
from .schedules import (
    SCHEDULES,
    CosineDecay,
    ExponentialDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
)
from .sgd import SGD

OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "nadam": Nadam,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
}

# every rule above works element by element on any array: one call updates all parameters at
# once (base._FlatStep), bit-identical to one call per array
ELEMENTWISE_UPDATES.update(cls._update for cls in OPTIMIZERS.values())

__all__ = [
    "SCHEDULES",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineDecay",
    "ExponentialDecay",
    "LearningRateSchedule",
    "Nadam",
    "Optimizer",
    "PiecewiseConstantDecay",
    "RMSprop",
    "get",
    "schedules",
    "serialize",
]


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": "Adam", "config": {...}}`` — JSON-ready; ``get`` reverses it."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def get(identifier) -> Optimizer:
    """An optimizer from a name (``"adam"``, any case), an instance, or a serialised dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    if isinstance(identifier, dict) and str(identifier.get("class_name")).lower() in OPTIMIZERS:
        cls = OPTIMIZERS[identifier["class_name"].lower()]
        return cls.from_config(dict(identifier.get("config", {})))
    raise ValueError(
        f"optimizers.get: argument 'identifier' must be one of {sorted(OPTIMIZERS)} (any case), "
        "an Optimizer, or {'class_name': ..., 'config': ...}; "
        f"got {identifier!r}"
    )
