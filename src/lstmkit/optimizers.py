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

Where this differs from PyTorch (the tests use the cases where both agree, and closed forms
otherwise):

- Adam: Keras adds ``eps`` to ``sqrt(v)`` before bias correction, torch after, so Keras's ``eps``
  acts like torch's ``eps * sqrt(1 - b2^t)``. Identical when ``eps == 0``.
- RMSprop: Keras puts ``eps`` inside the square root, torch outside. Identical when ``eps == 0``.
- SGD: Keras keeps ``lr`` inside the momentum buffer (``m = -lr * torch_buf``): the same
  trajectory for a constant ``lr``, different as soon as ``lr`` changes between steps.
- ``clipnorm``: Keras 3 clips each gradient by its own norm and calls the joint version
  ``global_clipnorm``. In lstmkit both names mean the global norm (``clip_grad_norm_`` in torch,
  without its 1e-6 in the denominator), because that is what keeps BPTT gradients in check.

Slots (``"m"``, ``"v"``, ``"momentum"`` ...) are created lazily per parameter name with the
parameter's dtype. ``get_state()`` returns them as ``"slot/param"`` arrays plus ``"iterations"``;
``set_state()`` on an optimizer built from the same config resumes the exact trajectory.
"""

from __future__ import annotations

import bisect
import itertools
import math

import numpy as np

# ------------------------------------------------------------------- learning-rate schedules


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
        self.initial_learning_rate = _positive(
            "ExponentialDecay", "initial_learning_rate", initial_learning_rate
        )
        self.decay_steps = _positive("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = _positive("ExponentialDecay", "decay_rate", decay_rate)
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
        self.initial_learning_rate = _positive(
            "CosineDecay", "initial_learning_rate", initial_learning_rate
        )
        self.decay_steps = _positive("CosineDecay", "decay_steps", decay_steps)
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


def _positive(owner, arg, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value <= 0:
        raise ValueError(f"{owner}: argument '{arg}' must be a positive number; got {value!r}")
    return float(value)


def _in_unit(owner, arg, value, closed_right=False):
    ok = 0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0
    if not ok:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{owner}: argument '{arg}' must be in {interval}; got {value!r}")
    return float(value)


def _learning_rate(owner, value):
    """A float >= 0, a schedule instance, or a serialised schedule ``{"class_name", "config"}``."""
    if isinstance(value, dict):
        name = value.get("class_name")
        if name not in SCHEDULES:
            raise ValueError(
                f"{owner}: argument 'learning_rate' names an unknown schedule {name!r}; "
                f"expected one of {sorted(SCHEDULES)}"
            )
        return SCHEDULES[name].from_config(value.get("config", {}))
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value < 0:
        raise ValueError(
            f"{owner}: argument 'learning_rate' must be a float >= 0 or a LearningRateSchedule; "
            f"got {value!r}"
        )
    return float(value)


# ------------------------------------------------------------------------------- optimizers


class Optimizer:
    """Base class: argument checks, clipping, schedules, lazy slots, state and config."""

    def __init__(self, learning_rate=0.001, clipnorm=None, clipvalue=None, global_clipnorm=None):
        owner = type(self).__name__
        self._learning_rate = _learning_rate(owner, learning_rate)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(
                f"{owner}: arguments 'clipnorm' and 'global_clipnorm' are aliases (both clip the "
                f"global norm); pass one; got clipnorm={clipnorm!r}, "
                f"global_clipnorm={global_clipnorm!r}"
            )
        if clipvalue is not None and (clipnorm is not None or global_clipnorm is not None):
            raise ValueError(
                f"{owner}: only one of 'clipnorm', 'global_clipnorm' and 'clipvalue' can be set "
                f"(as in Keras); got clipnorm={clipnorm!r}, global_clipnorm={global_clipnorm!r}, "
                f"clipvalue={clipvalue!r}"
            )
        for arg, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ):
            if value is not None:
                _positive(owner, arg, value)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.iterations = 0
        self._slots: dict[str, dict[str, np.ndarray]] = {}  # slot -> param name -> array

    # -- learning rate
    @property
    def learning_rate(self) -> float:
        """The rate the next ``apply`` will use (the schedule evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if isinstance(lr, LearningRateSchedule) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        owner = type(self).__name__
        if isinstance(self._learning_rate, LearningRateSchedule) and not isinstance(
            value, (LearningRateSchedule, dict)
        ):
            # Keras raises here too: overwriting a schedule with a float silently loses it.
            raise TypeError(
                f"{owner}: 'learning_rate' was created as a {type(self._learning_rate).__name__} "
                f"schedule and cannot be set to {value!r}; expected another LearningRateSchedule"
            )
        self._learning_rate = _learning_rate(owner, value)

    # -- slots
    def slot_names(self) -> tuple[str, ...]:
        """The slots this configuration keeps per parameter (e.g. ``("m", "v")`` for Adam)."""
        return ()

    def _slot(self, slot, name, p):
        arrays = self._slots.setdefault(slot, {})
        a = arrays.get(name)
        if a is None:
            a = arrays[name] = np.zeros_like(p)
        elif a.shape != p.shape:
            raise ValueError(
                f"{type(self).__name__}: slot '{slot}/{name}' has shape {a.shape} but parameter "
                f"{name!r} has shape {p.shape}; expected equal shapes (state from another model?)"
            )
        return a

    # -- the update
    def apply(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array in ``params`` in place from ``grads``; ``iterations += 1``."""
        self._check(params, grads)
        grads = self._clip(grads)
        lr = self.learning_rate
        for name, p in params.items():
            self._update(name, p, np.asarray(grads[name]).astype(p.dtype, copy=False), lr)
        self.iterations += 1

    def _update(self, name, p, g, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, params, grads):
        where = f"{type(self).__name__}.apply"
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        if missing or extra:
            raise ValueError(
                f"{where}: argument 'grads' must have the same keys as 'params'; "
                f"missing {missing}, unexpected {extra}"
            )
        bad = []
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                got = f"ndarray of {p.dtype}" if isinstance(p, np.ndarray) else type(p).__name__
                bad.append(f"params[{name!r}] must be a floating np.ndarray; got {got}")
            elif np.shape(grads[name]) != p.shape:
                bad.append(
                    f"grads[{name!r}] must have shape {p.shape}; got {np.shape(grads[name])}"
                )
        if bad:
            raise ValueError(f"{where}: " + "; ".join(bad))

    def _clip(self, grads):
        norm_limit = self.clipnorm if self.clipnorm is not None else self.global_clipnorm
        if norm_limit is not None:
            norm = math.sqrt(
                sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values())
            )
            if norm > norm_limit:
                scale = norm_limit / norm
                grads = {
                    k: np.asarray(g) * np.asarray(scale, np.asarray(g).dtype)
                    for k, g in grads.items()
                }
        if self.clipvalue is not None:
            grads = {k: np.clip(g, -self.clipvalue, self.clipvalue) for k, g in grads.items()}
        return grads

    # -- state (resume exactly)
    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of every slot as ``"slot/param"`` plus ``"iterations"`` (int64 scalar)."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for slot, arrays in self._slots.items():
            for name, a in arrays.items():
                state[f"{slot}/{name}"] = a.copy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace iterations and all slots by (copies of) ``state`` from ``get_state``."""
        owner = f"{type(self).__name__}.set_state"
        if "iterations" not in state:
            raise ValueError(
                f"{owner}: argument 'state' must contain 'iterations'; got keys {sorted(state)}"
            )
        it = np.asarray(state["iterations"])
        if it.shape != () or not np.issubdtype(it.dtype, np.integer) or int(it) < 0:
            raise ValueError(
                f"{owner}: state['iterations'] must be an integer scalar >= 0; got "
                f"{state['iterations']!r}"
            )
        slots, bad = {}, []
        for key, value in state.items():
            if key == "iterations":
                continue
            slot, sep, name = key.partition("/")
            if not sep or not name or slot not in self.slot_names():
                bad.append(key)
            else:
                slots.setdefault(slot, {})[name] = np.array(value, copy=True)
        if bad:
            raise ValueError(
                f"{owner}: argument 'state' has unexpected keys {sorted(bad)}; expected "
                f"'iterations' and '<slot>/<param>' with slot in {list(self.slot_names())}"
            )
        self.iterations, self._slots = int(it), slots

    # -- config
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        return {
            "learning_rate": lr,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)  # learning_rate dicts are deserialised by the constructor

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with Keras momentum: ``m <- momentum * m - lr * g``,
    ``p <- p + m`` (or ``p + momentum * m - lr * g`` with ``nesterov``)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _in_unit("SGD", "momentum", momentum, closed_right=True)
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


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1 with the eps of section 2's last paragraph, as Keras):
    ``p <- p - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``."""

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = _in_unit("Adam", "beta_1", beta_1)
        self.beta_2 = _in_unit("Adam", "beta_2", beta_2)
        if epsilon < 0:
            raise ValueError(f"Adam: argument 'epsilon' must be >= 0; got {epsilon!r}")
        self.epsilon, self.amsgrad = float(epsilon), bool(amsgrad)

    def slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _update(self, name, p, g, lr):
        t = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v = self._slot("m", name, p), self._slot("v", name, p)
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


class RMSprop(Optimizer):
    """RMSprop (Hinton, Coursera lecture 6e; centred form from Graves 2013, eq. 38-41), Keras
    placement of eps inside the square root: ``inc = lr * g / sqrt(v [- a^2] + eps)``."""

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _in_unit("RMSprop", "rho", rho)
        self.momentum = _in_unit("RMSprop", "momentum", momentum, closed_right=True)
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


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


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
