"""Weight initialisers with Keras 3 names, defaults, formulas and configs.

An initialiser is called as ``init(shape, rng, dtype)`` (what layers do: ``rng`` is the model's
generator) or Keras-style as ``init(shape, dtype=None)``. Objects with an integer ``seed`` draw
from ``np.random.default_rng(seed)`` and so return the same values at every call (Keras' int
seeds); without one they draw from ``rng`` or, failing that, lstmkit's global generator
(:func:`lstmkit.set_random_seed`).

Keras 3 formulas (``keras/src/initializers``)::

    fan_in, fan_out    (n,): n, n   (a, b): a, b   (..., a, b): a * r, b * r with r = prod(...)
    VarianceScaling    s = scale / max(1, fan_in | fan_out | (fan_in + fan_out) / 2)
      uniform            U(-sqrt(3 s), sqrt(3 s))
      truncated_normal   N(0, sqrt(s) / .87962566103423978) redrawn outside 2 std
      untruncated_normal N(0, sqrt(s))
    GlorotUniform / GlorotNormal   scale 1, fan_avg, uniform / truncated_normal
    HeUniform / HeNormal           scale 2, fan_in,  uniform / truncated_normal
    LecunUniform / LecunNormal     scale 1, fan_in,  uniform / truncated_normal
    RandomUniform(-0.05, 0.05)  RandomNormal(0, 0.05)  TruncatedNormal(0, 0.05) (cut at 2 std)
    Orthogonal(gain)   gain * Q of the QR of a normal (max(r, c), min(r, c)) matrix, signs fixed
                       by diag(R); r = prod(shape[:-1]), c = shape[-1]; transposed when r < c
    Zeros  Ones  Constant(value)  Identity(gain) = gain * eye (2-D only)

``get(identifier)`` takes a name (Keras' names and aliases: ``"glorot_uniform"``,
``"GlorotUniform"``, ``"uniform"`` ...), a config dict ``{"class_name", "config"}`` (what
:func:`serialize` writes, Keras' format), an initialiser object, or a function
``f(shape, rng, dtype)``.
"""

from __future__ import annotations

import math

import numpy as np

from . import random as _random
from ._config import Configurable, from_config_dict, from_name, keras_config


def compute_fans(shape, input_axes=None, output_axes=None):
    """``(fan_in, fan_out)`` as Keras 3 computes them."""
    shape = tuple(int(s) for s in shape)
    if input_axes is not None and output_axes is not None:
        return int(np.prod([shape[a] for a in input_axes])), int(
            np.prod([shape[a] for a in output_axes])
        )
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer(Configurable):
    """Base class: subclasses define ``_draw(shape, rng, dtype)`` and ``get_config()``."""

    def __call__(self, shape, rng=None, dtype=None):
        rng = _random.as_generator(rng)
        if dtype is None and not (rng is None or isinstance(rng, np.random.Generator)):
            rng, dtype = None, rng  # Keras' positional init(shape, dtype)
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype("float32" if dtype is None else dtype)
        return np.asarray(self._draw(shape, self._rng(rng), dtype), dtype=dtype)

    def _rng(self, rng):
        return rng if rng is not None else _random.get_rng()

    def _draw(self, shape, rng, dtype):
        raise NotImplementedError


class Zeros(Initializer):
    def _draw(self, shape, rng, dtype):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    def _draw(self, shape, rng, dtype):
        return np.ones(shape, dtype)


class Constant(Initializer):
    def __init__(self, value=0.0):
        if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
            raise ValueError(f"Constant: argument 'value' must be a number; got {value!r}")
        self.value = float(value)

    def _draw(self, shape, rng, dtype):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = _number("Identity", "gain", gain)

    def _draw(self, shape, rng, dtype):
        if len(shape) != 2:
            raise ValueError(f"Identity: the shape must be 2-D; got {shape}")
        return self.gain * np.eye(*shape, dtype=dtype)

    def get_config(self):
        return {"gain": self.gain}


class RandomInitializer(Initializer):
    """An initialiser that draws: ``seed`` (int) makes every call return the same values."""

    def __init__(self, seed=None):
        if seed is not None and (
            not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0
        ):
            raise ValueError(
                f"{type(self).__name__}: argument 'seed' must be None or a non-negative int; "
                f"got {seed!r}"
            )
        self.seed = None if seed is None else int(seed)

    def _rng(self, rng):
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        return super()._rng(rng)

    def get_config(self):
        return {"seed": self.seed}


def _number(cls, arg, v, positive=False):
    if not isinstance(v, (int, float, np.number)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f"{cls}: argument '{arg}' must be a finite number; got {v!r}")
    if positive and v <= 0:
        raise ValueError(f"{cls}: argument '{arg}' must be positive; got {v!r}")
    return float(v)


def _truncated_normal(rng, shape, mean, stddev):
    """N(mean, stddev) redrawn outside mean ± 2 stddev (Keras/TF's truncated normal)."""
    a = rng.standard_normal(shape)
    for _ in range(100):  # each round keeps ~95%; 100 rounds leave nothing in practice
        out = np.abs(a) > 2.0
        if not out.any():
            break
        a[out] = rng.standard_normal(int(out.sum()))
    a = np.clip(a, -2.0, 2.0)  # bounded cost: anything left after 100 rounds sits on the cut
    return mean + stddev * a


class RandomUniform(RandomInitializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = _number("RandomUniform", "minval", minval)
        self.maxval = _number("RandomUniform", "maxval", maxval)
        if self.maxval < self.minval:
            raise ValueError(
                f"RandomUniform: argument 'maxval' ({maxval}) must be >= 'minval' ({minval})"
            )
        super().__init__(seed)

    def _draw(self, shape, rng, dtype):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class RandomNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _number("RandomNormal", "mean", mean)
        self.stddev = _number("RandomNormal", "stddev", stddev)
        super().__init__(seed)

    def _draw(self, shape, rng, dtype):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    def _draw(self, shape, rng, dtype):
        return _truncated_normal(rng, shape, self.mean, self.stddev)


class VarianceScaling(RandomInitializer):
    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(
        self,
        scale=1.0,
        mode="fan_in",
        distribution="truncated_normal",
        seed=None,
        input_axes=None,
        output_axes=None,
    ):
        who = type(self).__name__
        self.scale = _number(who, "scale", scale, positive=True)
        if mode not in self.MODES:
            raise ValueError(f"{who}: argument 'mode' must be one of {self.MODES}; got {mode!r}")
        distribution = "truncated_normal" if distribution == "normal" else distribution
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(
                f"{who}: argument 'distribution' must be one of {self.DISTRIBUTIONS} (or "
                f"'normal'); got {distribution!r}"
            )
        self.mode, self.distribution = mode, distribution
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        super().__init__(seed)

    def _denominator(self, shape):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        return max(1.0, fan[self.mode])

    def _draw(self, shape, rng, dtype):
        denom = self._denominator(shape)
        if self.distribution == "uniform":
            # sqrt(3 scale / denom): glorot_uniform's limit is sqrt(6 / (fan_in + fan_out))
            limit = math.sqrt(3.0 * self.scale / denom)
            return rng.uniform(-limit, limit, size=shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(self.scale / denom), size=shape)
        stddev = math.sqrt(self.scale / denom) / 0.87962566103423978
        return _truncated_normal(rng, shape, 0.0, stddev)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


def _fixed_variance_scaling(name, scale, mode, distribution):
    """A Keras named VarianceScaling (GlorotUniform ...): config ``{seed, input_axes,
    output_axes}``."""

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    doc = f"Keras' ``{name}``: VarianceScaling(scale={scale}, mode={mode!r}, {distribution!r})."
    ns = {"__init__": __init__, "get_config": get_config, "__doc__": doc}
    return type(name, (VarianceScaling,), ns)


GlorotUniform = _fixed_variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _fixed_variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _fixed_variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _fixed_variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _fixed_variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _fixed_variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    def __init__(self, gain=1.0, seed=None):
        self.gain = _number("Orthogonal", "gain", gain)
        super().__init__(seed)

    def _draw(self, shape, rng, dtype):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have at least 2 dimensions; got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over orthogonal matrices)
        if rows < cols:
            q = q.T
        return (self.gain * q[:rows, :cols]).reshape(shape)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


CLASSES = {
    cls.__name__: cls
    for cls in (
        Zeros,
        Ones,
        Constant,
        Identity,
        RandomUniform,
        RandomNormal,
        TruncatedNormal,
        VarianceScaling,
        GlorotUniform,
        GlorotNormal,
        HeUniform,
        HeNormal,
        LecunUniform,
        LecunNormal,
        Orthogonal,
    )
}
#: Keras' string identifiers (snake-case class names and its aliases)
NAMES = {
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "constant": Constant,
    "identity": Identity,
    "random_uniform": RandomUniform,
    "uniform": RandomUniform,
    "random_normal": RandomNormal,
    "normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "IdentityInitializer": Identity,
    "OrthogonalInitializer": Orthogonal,
}


def serialize(init) -> dict | str:
    """An object -> Keras' config dict; a name stays a name."""
    if isinstance(init, str):
        return init
    if isinstance(init, Initializer):
        return keras_config(init, "keras.initializers")
    raise ValueError(
        f"initializer {init!r} cannot be serialized; use a name or an lstmkit.initializers object"
    )


def get(identifier, arg="initializer"):
    """Name, config dict, object or function -> an initialiser ``f(shape, rng, dtype)``."""
    if isinstance(identifier, Initializer) or (
        callable(identifier) and not isinstance(identifier, type)
    ):
        return identifier
    if isinstance(identifier, str):
        lookup = {**CLASSES, **NAMES}
        return from_name(identifier, lookup, "initializer", arg, f"one of {sorted(NAMES)}")
    if isinstance(identifier, dict):
        return from_config_dict(
            identifier, CLASSES, "initializer", arg, aliases=NAMES, check=_plain_seed(arg)
        )
    raise ValueError(
        f"argument '{arg}' must be an initializer name, config dict or object; got {identifier!r}"
    )


def _plain_seed(arg):
    def check(cfg):
        if isinstance(cfg.get("seed"), dict):  # a Keras SeedGenerator: lstmkit cannot redo it
            raise ValueError(f"argument '{arg}': a SeedGenerator seed is not supported; use an int")

    return check


# Keras' lower-case exports are the classes: ``initializers.he_normal(seed=1)``.
constant, identity, ones, zeros = Constant, Identity, Ones, Zeros
random_uniform, random_normal, truncated_normal = RandomUniform, RandomNormal, TruncatedNormal
variance_scaling, orthogonal = VarianceScaling, Orthogonal
glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal = (
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
)
