"""Adam and its two relatives with Keras 3 update rules: AdamW (Adam + decoupled weight decay) and
Nadam (Adam with Dozat's Nesterov momentum and Keras' momentum schedule)."""

from __future__ import annotations

import math

import numpy as np

from ._checks import in_unit, non_negative
from .base import Optimizer, fast_flat


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1 with the eps of section 2's last paragraph, as Keras):
    ``p <- p - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``."""

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = in_unit(owner, "beta_1", beta_1)
        self.beta_2 = in_unit(owner, "beta_2", beta_2)
        self.epsilon = non_negative(owner, "epsilon", epsilon)
        self.amsgrad = bool(amsgrad)

    def slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _update(self, name, p, g, lr):
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v = self._slot("m", name, p), self._slot("v", name, p)
        fast = None if self.amsgrad else fast_flat(name, p, g, m, v)
        if fast is not None:  # the same operations in one pass (ops/fast/optim.py)
            dt = p.dtype.type
            fast.adam_flat(p, g, m, v, dt(1.0 - self.beta_1), dt(1.0 - self.beta_2), dt(alpha),
                           dt(self.epsilon))  # fmt: skip
            return
        m += (1.0 - self.beta_1) * (g - m)
        v += (1.0 - self.beta_2) * (g * g - v)
        if self.amsgrad:
            v_hat = self._slot("v_hat", name, p)
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        p -= alpha * m / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as Keras: before each Adam step
    ``p <- p - p * weight_decay * lr`` (the decay is scaled by the step's learning rate, as in
    ``torch.optim.AdamW``). Keras' default ``weight_decay`` is 0.004 (torch's is 0.01).
    ``exclude_from_weight_decay(var_names=["bias"])`` leaves matching parameters undecayed."""

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        **kwargs,
    ):
        if weight_decay is None:  # Keras refuses too: AdamW without decay is Adam
            raise ValueError("AdamW: argument 'weight_decay' must be a float >= 0; got None")
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay,
            **kwargs,
        )


class Nadam(Optimizer):
    """Nadam (Dozat 2016) with Keras' momentum schedule ``u_t = b1 (1 - 0.5 * 0.96^t)``::

        m <- m + (1 - b1) (g - m);   v <- v + (1 - b2) (g^2 - v)
        U_t = u_1 u_2 ... u_t                                      (one product for all params)
        m_hat = u_{t+1} m / (1 - U_t u_{t+1}) + (1 - u_t) g / (1 - U_t)
        p <- p - lr * m_hat / (sqrt(v / (1 - b2^t)) + eps)

    This is ``torch.optim.NAdam`` with ``momentum_decay=1`` (torch's default 0.004 makes the
    schedule ``0.96^(0.004 t)``), eps in the same place. ``U_t`` depends only on ``t``, so the
    state holds no more than the two slots and ``iterations``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = in_unit("Nadam", "beta_1", beta_1)
        self.beta_2 = in_unit("Nadam", "beta_2", beta_2)
        self.epsilon = non_negative("Nadam", "epsilon", epsilon)
        self._u_product = (0, 1.0)  # (t, U_t): the running product, recomputed after set_state

    def slot_names(self):
        return ("momentum", "velocity")

    def _u(self, t):
        return self.beta_1 * (1.0 - 0.5 * 0.96**t)

    def _prepare_step(self):
        t = self.iterations + 1
        done, product = self._u_product
        if done > t - 1:  # state was reset to an earlier step: start the product again
            done, product = 0, 1.0
        for s in range(done + 1, t + 1):  # one factor per step in training; all after set_state
            product *= self._u(s)
        self._u_product = (t, product)

    def _update(self, name, p, g, lr):
        t = self.iterations + 1
        u_t, u_next, product = self._u(t), self._u(t + 1), self._u_product[1]
        m, v = self._slot("momentum", name, p), self._slot("velocity", name, p)
        m += (1.0 - self.beta_1) * (g - m)
        v += (1.0 - self.beta_2) * (g * g - v)
        m_hat = (u_next / (1.0 - product * u_next)) * m + ((1.0 - u_t) / (1.0 - product)) * g
        v_hat = v / (1.0 - self.beta_2**t)
        p -= lr * m_hat / (np.sqrt(v_hat) + self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
