"""The Layer protocol every lstmkit layer follows.

- ``build(input_shape)`` creates parameters (``input_shape`` excludes the batch axis).
- ``forward(x, *, training, mask, rng) -> (y, cache)``: pure with respect to the layer; the
  cache holds exactly what ``backward`` needs.
- ``backward(dy, cache) -> (dx, grads)``: fresh gradients keyed by parameter role
  (``"kernel"``, ``"recurrent_kernel"``, ...), the same keys as ``params``.
- ``params``: role -> array. Optimizers update these arrays in place.
- ``get_weights()``/``set_weights()`` use Keras 3's order and layouts; ``get_config()`` returns
  the constructor arguments and ``from_config(cfg)`` is ``cls(**cfg)``.
- ``non_trainable_roles``: parameters no optimizer touches (BatchNormalization's moving
  statistics). A training forward that changes them returns the new values in its cache; the
  model assigns ``state_updates(cache)`` after the step (forward itself never mutates the layer).
- ``multi_input = True`` (merging layers): ``forward`` takes a list of arrays, ``backward``
  returns a list of input gradients, ``build``/``compute_output_shape`` take a list of shapes
  and ``compute_mask(xs, masks)`` a list of inputs and a list of masks (or None).
- ``output_logits(cache)``: the ``z`` of an output ``softmax(z)`` (else None), with
  ``backward_from_logits(dz, cache)``: how the trainer fuses softmax with cross-entropy.
- ``weight_shapes(input_shape, dtype)``: the shape of every parameter ``build`` would create,
  found without allocating them (a model file's sizes are checked with it before anything is
  built). It works for any layer whose ``_build`` creates its parameters through ``add_weight``
  (inner layers included) and changes them only by indexing (``b[block] = 1.0``, ``w *= 0.5``);
  values are computed in initializers, never in ``_build``.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import itertools
import math
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


class ShapeOnly:
    """What ``add_weight`` returns while shapes are derived (:meth:`Layer.weight_shapes`): a
    parameter's shape and dtype without storage. Writes are ignored (``b[block] = 1.0``,
    ``w *= 0.5``, ``w.fill(0)``), so ``_build`` code that edits a weight after creating it runs
    unchanged; reading values is an error, since there are none."""

    __slots__ = ("dtype", "shape")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: math.prod(self.shape))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __getitem__(self, key):  # b[:H] += 1 is b.__setitem__(s, b.__getitem__(s).__iadd__(1))
        return self

    def __setitem__(self, key, value):
        pass

    def fill(self, value):
        pass

    def _ignore(self, other):
        return self

    __iadd__ = __isub__ = __imul__ = __itruediv__ = __ipow__ = _ignore

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"a weight of shape {self.shape} has no values while parameter shapes are derived: "
            "compute initial values in an initializer, not in _build"
        )

    def __repr__(self):
        return f"ShapeOnly({self.shape}, {self.dtype})"


# How add_weight makes a parameter: None runs the initializer (the normal case); otherwise a
# function (shape, dtype) -> array-like used instead. A context variable, not an argument: wrapper
# layers build their inner layers themselves, and every layer must follow the switch without
# knowing about it. Set only by the context managers below, for the duration of one build.
_MAKE_WEIGHT: contextvars.ContextVar = contextvars.ContextVar("lstmkit_make_weight", default=None)


@contextlib.contextmanager
def _weights_made_by(make):
    token = _MAKE_WEIGHT.set(make)
    try:
        yield
    finally:
        _MAKE_WEIGHT.reset(token)


def _check_weight_shape(shape):
    if not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"a parameter shape must be a tuple of sizes >= 0; got {shape!r}")
    return tuple(int(s) for s in shape)


@contextlib.contextmanager
def skip_initializers(max_bytes=None):
    """Within the block, ``build`` allocates every parameter as zeros and runs no initializer
    (and draws nothing from the RNG). For loading: the file's values replace them at once, and
    an orthogonal initializer alone takes minutes for a large recurrent kernel. With
    ``max_bytes``, a parameter that would take the total past it raises ValueError before it
    is allocated (a load never allocates more than the file holds)."""
    total = 0

    def zeros(shape, dtype):
        nonlocal total
        shape, dtype = _check_weight_shape(shape), np.dtype(dtype)
        total += math.prod(shape) * dtype.itemsize
        if max_bytes is not None and total > max_bytes:
            raise ValueError(
                f"the parameters need more than the {max_bytes:,} bytes of weights available "
                f"(a parameter of shape {shape} took the total to {total:,})"
            )
        return np.zeros(shape, dtype)

    with _weights_made_by(zeros):
        yield


def fmt_shape(shape) -> str:
    """``(None, 10, 50)`` -> ``"(batch, 10, 50)"``."""
    return "(" + ", ".join("batch" if s is None else str(s) for s in shape) + ")"


class Layer:
    supports_masking = False
    #: parameter roles in Keras ``get_weights`` order
    weight_names: tuple[str, ...] = ()
    #: roles updated by ``state_updates`` rather than by an optimizer
    non_trainable_roles: tuple[str, ...] = ()
    #: forward takes a list of arrays (merging layers)
    multi_input = False

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
        if self.multi_input:  # a list of shapes
            input_shape = [tuple(s) for s in input_shape]
        self.built_input_shape = tuple(input_shape)
        self._build(self.built_input_shape, rng if rng is not None else _random.get_rng())
        self.built = True

    def _build(self, input_shape, rng):
        pass

    def add_weight(self, role, shape, initializer, rng):
        make = _MAKE_WEIGHT.get()
        if make is not None:  # deriving shapes, or loading (see skip_initializers)
            self.params[role] = make(tuple(shape), self.dtype)
        else:
            w = np.asarray(initializer(tuple(shape), rng, self.dtype))
            # not np.ascontiguousarray: it turns a scalar parameter (shape ()) into shape (1,)
            self.params[role] = w if w.flags.c_contiguous else np.ascontiguousarray(w)
        return self.params[role]

    def shape_only_copy(self, input_shape, dtype=None) -> Layer:
        """A copy of this layer built for ``input_shape`` with :class:`ShapeOnly` parameters:
        nothing is allocated and no initializer runs, whatever the sizes. Its ``params`` map
        each role to its shape and dtype, and ``compute_output_shape`` works on it. This layer
        is left as it was (and the global RNG is not drawn from)."""
        # an unbuilt layer is copied as it is; a built one is rebuilt from its config, so that
        # its arrays are not copied (the config is the constructor)
        probe = type(self).from_config(self.get_config()) if self.built else copy.deepcopy(self)
        with _weights_made_by(lambda shape, dt: ShapeOnly(_check_weight_shape(shape), dt)):
            probe.build(tuple(input_shape), np.random.default_rng(0), dtype)
        return probe

    def weight_shapes(self, input_shape, dtype=None) -> dict:
        """``{role: shape}`` of the parameters ``build(input_shape, dtype=dtype)`` creates,
        derived without allocating them (see :meth:`shape_only_copy`)."""
        return {r: p.shape for r, p in self.shape_only_copy(input_shape, dtype).params.items()}

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

    def state_updates(self, cache) -> dict:
        """``{role: new value}`` for non-trainable parameters after a training forward (the
        model assigns them after the step); nothing for most layers."""
        return {}

    def output_logits(self, cache):
        """The logits ``z`` when this layer's output is ``softmax(z)`` over the last axis (then
        the layer also has ``backward_from_logits(dz, cache)``); None otherwise."""

    def __call__(self, x, mask=None, training=False, **kwargs):
        """As in Keras: on symbolic tensors (``Input(...)``, other layers' outputs) it records a
        node of the functional graph and returns symbolic outputs; on arrays it builds on first
        use and returns the outputs."""
        from ..graph.symbolic import call_symbolic, is_symbolic

        if is_symbolic(x) or any(is_symbolic(v) for v in kwargs.values()):
            return call_symbolic(self, x, mask=mask, training=training, **kwargs)
        if self.multi_input:  # forward validates the list and builds on first use
            x = list(x) if isinstance(x, (list, tuple)) else x
        else:
            x = np.asarray(x)
            if not self.built:
                self.build(x.shape[1:], dtype=x.dtype if x.dtype.kind == "f" else None)
        y, _ = self.forward(x, training=training, mask=mask, **kwargs)
        return y

    # -- the functional graph (Keras' layer.input / layer.output) -------------------------------
    def _first_node(self, what):
        nodes = getattr(self, "_inbound_nodes", None)
        if not nodes:
            raise ValueError(
                f"{self.name}: layer.{what} is defined once the layer has been called on a "
                "symbolic tensor (Input(...) or another layer's output)"
            )
        return nodes[0]

    @property
    def output(self):
        """The symbolic output(s) of the layer's first call (a list with ``return_state``)."""
        node = self._first_node("output")
        return list(node.outputs) if node.listed else node.outputs[0]

    @property
    def input(self):
        node = self._first_node("input")
        return list(node.inputs) if node.multi else node.inputs[0]

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
    if 0 in x.shape:
        raise ValueError(f"{who}: argument '{arg}' must not be empty; got shape {x.shape}")
    if last_dim is not None and x.shape[-1] != last_dim:
        names = {2: ["batch"], 3: ["batch", "timesteps"]}.get(x.ndim, ["..."] * (x.ndim - 1))
        expected = "(" + ", ".join(names + [str(last_dim)]) + ")"
        raise ValueError(f"{who}: argument '{arg}' must have shape {expected}; got {x.shape}")
    # (ufunc reduce: ndarray.all() without its two Python wrapper calls; every layer call checks)
    if finite and x.dtype.kind == "f" and not np.logical_and.reduce(np.isfinite(x), axis=None):
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
