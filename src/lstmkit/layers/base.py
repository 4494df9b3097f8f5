"""The Layer protocol every lstmkit layer follows.

- ``build(input_shape)`` creates parameters (``input_shape`` excludes the batch axis).
- ``forward(x, *, training, mask, rng) -> (y, cache)``: pure with respect to the layer; the
  cache holds exactly what ``backward`` needs.
- ``backward(dy, cache) -> (dx, grads)``: fresh gradients keyed by parameter role
  (``"kernel"``, ``"recurrent_kernel"``, ...), the same keys as ``params``.
- ``params``: role -> array. Optimizers update these arrays in place.
- ``get_weights()``/``set_weights()`` use Keras 3's order and layouts; ``get_config()`` returns
  the constructor arguments and ``from_config(cfg)`` is ``cls(**cfg)``.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict

import numpy as np

from .. import random as _random

_name_counters: dict[str, itertools.count] = defaultdict(itertools.count)

FLOAT_DTYPES = ("float32", "float64")


def _snake(name: str) -> str:
    # LSTM -> lstm, SimpleRNN -> simple_rnn, Bidirectional -> bidirectional (Keras' names)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def unique_name(base: str) -> str:
    """Keras-style automatic names: ``lstm``, ``lstm_1``, ``lstm_2`` ..."""
    n = next(_name_counters[base])
    return base if n == 0 else f"{base}_{n}"


def fmt_shape(shape) -> str:
    """``(None, 10, 50)`` -> ``"(batch, 10, 50)"``."""
    return "(" + ", ".join("batch" if s is None else str(s) for s in shape) + ")"


class Layer:
    supports_masking = False
    #: parameter roles in Keras ``get_weights`` order
    weight_names: tuple[str, ...] = ()

    def __init__(self, name=None, input_shape=None, input_dim=None, dtype=None, trainable=True):
        self.name = name or unique_name(_snake(type(self).__name__))
        if input_shape is None and input_dim is not None:
            input_shape = (input_dim,)
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if dtype is not None and str(np.dtype(dtype)) not in FLOAT_DTYPES:
            raise ValueError(
                f"{type(self).__name__}: argument 'dtype' must be one of {FLOAT_DTYPES}; got {dtype!r}"
            )
        self.dtype = None if dtype is None else str(np.dtype(dtype))
        self.trainable = trainable
        self.params: dict[str, np.ndarray] = {}
        self.built = False
        self.built_input_shape: tuple | None = None

    # -- construction ---------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=None):
        self.dtype = self.dtype or (str(np.dtype(dtype)) if dtype is not None else "float32")
        self.built_input_shape = tuple(input_shape)
        self._build(tuple(input_shape), rng if rng is not None else _random.get_rng())
        self.built = True

    def _build(self, input_shape, rng):
        pass

    def add_weight(self, role, shape, initializer, rng):
        self.params[role] = np.ascontiguousarray(initializer(tuple(shape), rng, self.dtype))
        return self.params[role]

    # -- computation ----------------------------------------------------------------------------
    def forward(self, x, *, training=False, mask=None, rng=None):
        raise NotImplementedError

    def backward(self, dy, cache):
        raise NotImplementedError

    def param_grads(self, dy, cache) -> dict:
        """``backward(dy, cache)[1]``: the parameter gradients alone, for a first layer, whose
        input gradient nobody needs (recurrent layers then skip computing it)."""
        return self.backward(dy, cache)[1]

    def infer(self, x, mask=None):
        """Inference output only (no cache kept): ``forward(x, training=False)[0]``. Layers
        with a cheaper cache-free path override it."""
        return self.forward(x, training=False, mask=mask)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        """The mask passed to the next layer; by default a masking-aware layer passes it on."""
        return mask if self.supports_masking else None

    def __call__(self, x, mask=None, training=False, **kwargs):
        """Inference-style call as in Keras: builds on first use and returns the outputs."""
        x = np.asarray(x)
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype if x.dtype.kind == "f" else None)
        y, _ = self.forward(x, training=training, mask=mask, **kwargs)
        return y

    # -- weights and config ---------------------------------------------------------------------
    def get_weights(self):
        return [self.params[k].copy() for k in self.weight_names]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self.weight_names):
            raise ValueError(
                f"{self.name}: argument 'weights' must be a list of {len(self.weight_names)} "
                f"arrays {list(self.weight_names)}; got {len(weights)}"
            )
        problems = []
        for role, w in zip(self.weight_names, weights):
            w = np.asarray(w)
            if w.shape != self.params[role].shape:
                problems.append(f"{role}: expected {self.params[role].shape}, got {w.shape}")
        if problems:
            raise ValueError(f"{self.name}: set_weights shape mismatch: " + "; ".join(problems))
        for role, w in zip(self.weight_names, weights):
            self.params[role][...] = w

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"

    # -- regularizers and constraints (Keras' kernel_regularizer=, kernel_constraint= ...) -------
    def weight_regularizers(self) -> dict:
        """Parameter role -> :class:`lstmkit.regularizers.Regularizer` whose penalty training
        adds to the loss (see :func:`lstmkit.regularizers.weight_penalty`)."""
        return {}

    def weight_constraints(self) -> dict:
        """Parameter role -> :class:`lstmkit.constraints.Constraint` applied after every
        optimizer step (see :func:`lstmkit.constraints.apply_constraints`)."""
        return {}


# -- input validation shared by all layers ------------------------------------------------------
def check_array(layer, x, arg="x", rank=None, last_dim=None, kind="float", finite=True):
    """Validate an input array; errors name the layer, the argument, what was received and
    what was expected."""
    who = f"{type(layer).__name__}"
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists, objects ...
            raise ValueError(
                f"{who}: argument '{arg}' must be an array; got {type(x).__name__}"
            ) from e
    if rank is not None and x.ndim != rank:
        expected = {2: "(batch, features)", 3: "(batch, timesteps, features)"}.get(
            rank, f"rank {rank}"
        )
        if last_dim is not None and rank == 3:
            expected = f"(batch, timesteps, {last_dim})"
        raise ValueError(
            f"{who}: argument '{arg}' must have rank {rank}, shape {expected}; got shape {x.shape}"
        )
    if kind == "float":
        if x.dtype.kind not in "fiub":
            raise ValueError(f"{who}: argument '{arg}' must be a float array; got dtype {x.dtype}")
    elif kind == "int" and x.dtype.kind not in "iu":
        if x.dtype.kind == "f" and np.all(np.mod(x, 1) == 0):
            x = x.astype(np.int64)  # whole-number floats are ids too (Keras accepts them)
        else:
            raise ValueError(
                f"{who}: argument '{arg}' must hold integer token ids; got dtype {x.dtype}"
            )
    if any(s == 0 for s in x.shape):
        raise ValueError(f"{who}: argument '{arg}' must not be empty; got shape {x.shape}")
    if last_dim is not None and x.shape[-1] != last_dim:
        names = {2: ["batch"], 3: ["batch", "timesteps"]}.get(x.ndim, ["..."] * (x.ndim - 1))
        expected = "(" + ", ".join(names + [str(last_dim)]) + ")"
        raise ValueError(f"{who}: argument '{arg}' must have shape {expected}; got {x.shape}")
    if finite and x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{who}: argument '{arg}' contains NaN or Inf")
    return x


def check_mask(layer, mask, batch, timesteps, arg="mask"):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (batch, timesteps):
        raise ValueError(
            f"{type(layer).__name__}: argument '{arg}' must have shape (batch, timesteps) = "
            f"({batch}, {timesteps}); got {mask.shape}"
        )
    if mask.dtype != bool:
        if mask.dtype.kind not in "iuf" or not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"{type(layer).__name__}: argument '{arg}' must be boolean (or 0/1); got dtype {mask.dtype}"
            )
        mask = mask.astype(bool)
    return mask
