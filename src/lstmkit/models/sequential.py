"""``Sequential``: a stack of layers, each feeding the next — a functional ``Model`` whose graph is
a chain (``Input -> layer_1 -> ... -> layer_n``), built once the input shape is known.

Parameters are addressed by dotted names, ``"<layer name>.<role>"`` (``"lstm.kernel"``,
``"bidirectional.forward.bias"``): the same keys in gradients, optimizer slots and weight files.
"""

from __future__ import annotations

import numpy as np

from .. import random as _random
from ..graph.config import chain
from ..graph.symbolic import InputLayer, SymbolicTensor
from ..layers import Layer, deserialize, serialize
from ..layers.base import fmt_shape
from .functional import Model, _table, trainable_count


class Sequential(Model):
    def __init__(self, layers=None, name=None, dtype=None, trainable=True):
        super().__init__(name=name or "sequential", trainable=trainable)
        self.dtype = None if dtype is None else str(np.dtype(dtype))
        self._layers: list[Layer] = []
        self._batch_shape = None  # (None, *input shape) once known
        for layer in layers or []:
            self.add(layer)

    # -- composition ----------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer; an ``Input(...)`` tensor (or ``InputLayer``) first sets the input shape."""
        if isinstance(layer, SymbolicTensor) and layer.node is not None and layer.node.is_input:
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError(f"{self.name}.add: an Input can only be the first element")
            self._batch_shape = tuple(layer.batch_shape)
            self._input_dtype = layer.input_dtype
            return
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Sequential.add: argument 'layer' must be an lstmkit layer; got {type(layer).__name__}"
            )
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"Sequential.add: layer name {layer.name!r} is already used in this model; "
                "names must be unique"
            )
        if not self._layers and layer.input_shape is not None and self._batch_shape is None:
            self._batch_shape = (None, *layer.input_shape)
        self._layers.append(layer)
        self.built = False
        if self._batch_shape is not None:
            self.build(self._batch_shape)

    def pop(self):
        layer = self._layers.pop()
        self.built = False
        if self._layers and self._batch_shape is not None:
            self.build(self._batch_shape)
        return layer

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def build(self, input_shape=None, rng=None):
        """Create every layer's parameters for inputs of shape ``input_shape``, batch axis first
        as in Keras (``build((None, timesteps, features))``)."""
        if input_shape is None:
            input_shape = self._batch_shape
        if input_shape is None:
            raise ValueError(
                "Sequential.build: the input shape is unknown; give the first layer "
                "input_shape=(timesteps, features), start with Input(shape=...), or call "
                "build((None, timesteps, features))"
            )
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(
                f"{self.name}.build: argument 'input_shape' must include the batch axis, e.g. "
                f"(None, timesteps, features); got {input_shape}"
            )
        self._batch_shape = (None, *input_shape[1:])
        self._chain(rng if rng is not None else _random.get_rng())

    def _chain(self, rng):
        self._forget_graph()
        inp, out = chain(
            self._layers,
            self._batch_shape,
            self.dtype,
            rng,
            self.name,
            getattr(self, "_input_dtype", None),
        )
        self._init_graph(inp, out)

    def _forget_graph(self):
        """A rebuilt chain replaces the old one: drop its nodes from the layers."""
        old = getattr(self, "_net", None)
        if old is None:
            return
        mine = {id(n) for n in old.nodes}
        for layer in self._layers:
            nodes = getattr(layer, "_inbound_nodes", [])
            layer._inbound_nodes = [n for n in nodes if id(n) not in mine]

    @property
    def input_shape(self):
        """``(None, *shape)`` as in Keras, or None before the shape is known."""
        return self._batch_shape

    @property
    def output_shape(self):
        return super().output_shape if self.built else None

    @property
    def params(self) -> dict:
        """Dotted name -> parameter array (the live arrays; optimizers update them in place)."""
        return {f"{la.name}.{r}": p for la in self._layers for r, p in la.params.items()}

    @property
    def trainable_params(self) -> dict:
        return {
            f"{la.name}.{r}": p
            for la in self._layers
            if la.trainable and self.trainable
            for r, p in la.params.items()
            if r not in la.non_trainable_roles
        }

    def _ensure_built(self, xs):
        if not self.built:
            x = xs[0] if isinstance(xs, list) else xs
            x = np.asarray(x)
            if x.ndim < 2:
                raise ValueError(
                    f"{self.name}: argument 'x' must have shape (batch, ...); got {x.shape}"
                )
            self.build(self._batch_shape or (None, *x.shape[1:]))

    def check_input(self, x, arg="x"):
        """Validate ``x`` against the model's input shape; error names what was expected."""
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        expected = self._batch_shape
        ok = x.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
        if not ok:
            raise ValueError(
                f"{self.name}: argument '{arg}' must have shape {fmt_shape(expected)}; got {x.shape}"
            )
        return x

    def step(self, x_t, states=None):
        """Feed one time step ``x_t (batch, features)``; returns ``(y_t, states)``.

        ``states`` is what the previous call returned (``None`` to start). Recurrent layers must
        return sequences except possibly the last; the result equals the full-sequence forward.
        """
        if not self.built:
            raise ValueError(f"{self.name}: build the model before calling step()")
        ys, states = self._net.step([np.asarray(x_t)], states)
        return (ys[0] if len(ys) == 1 else ys), states

    # -- summary --------------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """Layer table with output shapes and parameter counts, like Keras."""
        if not self.built:
            raise ValueError(
                f"{self.name}: the model has not been built; give the first layer input_shape or "
                "call build()/fit() first"
            )
        rows = []
        for layer in self._layers:
            node = next(n for n in layer._inbound_nodes if n in self._net.nodes)
            txt = ", ".join(fmt_shape(t.shape) for t in node.outputs)
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", txt, f"{layer.count_params():,}")
            )
        text = _table(self.name, rows, ("Layer (type)", "Output Shape", "Param #"))
        trainable = trainable_count(self._layers)
        text += (
            f"\nTotal params: {self.count_params():,}\nTrainable params: {trainable:,}\n"
            f"Non-trainable params: {self.count_params() - trainable:,}"
        )
        print_fn(text)
        return text

    # -- config ---------------------------------------------------------------------------------
    def get_config(self):
        cfg = {"name": self.name, "layers": [serialize(layer) for layer in self._layers]}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype
        if self._batch_shape is not None:
            cfg["input_shape"] = list(self._batch_shape[1:])  # without the batch axis (format 1)
        return cfg

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Sequential config must be a dict with a 'layers' list")
        model = cls(name=config.get("name"), dtype=config.get("dtype"))
        for lc in config["layers"]:
            model._layers.append(deserialize(lc))
        # as add() does: the first layer's input_shape, else the model's
        shape = (model._layers[0].input_shape if model._layers else None) or config.get(
            "input_shape"
        )
        if shape is not None:
            model._batch_shape = (None, *shape)
        if model._batch_shape is not None and model._layers:
            model.build(model._batch_shape)
        return model
