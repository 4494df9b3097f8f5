"""``Sequential``: a stack of layers, each feeding the next, masks passed along.

The model composes; it knows nothing about losses or optimizers (``training.Trainable`` adds
``compile``/``fit``/``predict`` on top of ``forward``/``backward``/``params``).

Parameters are addressed by dotted names, ``"<layer name>.<role>"`` (``"lstm.kernel"``,
``"bidirectional.forward.bias"``): the same keys in gradients, optimizer slots and weight files.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import random as _random
from ..layers import Bidirectional, Layer, Masking, deserialize, serialize
from ..layers.base import fmt_shape
from ..layers.recurrent import RNNBase
from .training import Trainable


class Sequential(Trainable):
    def __init__(self, layers=None, name=None, dtype=None):
        super().__init__()
        self.name = name or "sequential"
        self.dtype = None if dtype is None else str(np.dtype(dtype))
        self.layers: list[Layer] = []
        self.built = False
        self.input_shape = None  # without batch
        #: JSON-serialisable facts saved with the model (scalers, vocabularies, app settings)
        self.metadata: dict = {}
        for layer in layers or []:
            self.add(layer)

    # -- composition ----------------------------------------------------------------------------
    def add(self, layer):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Sequential.add: argument 'layer' must be an lstmkit layer; got {type(layer).__name__}"
            )
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(
                f"Sequential.add: layer name {layer.name!r} is already used in this model; "
                "names must be unique"
            )
        if not self.layers and layer.input_shape is not None:
            self.input_shape = tuple(layer.input_shape)
        self.layers.append(layer)
        self.built = False
        if self.input_shape is not None:
            self.build(self.input_shape)

    def pop(self):
        layer = self.layers.pop()
        self.built = False
        return layer

    def build(self, input_shape=None, rng=None):
        """Create every layer's parameters for inputs of shape ``(batch,) + input_shape``."""
        input_shape = self.input_shape if input_shape is None else tuple(input_shape)
        if input_shape is None:
            raise ValueError(
                "Sequential.build: the input shape is unknown; give the first layer "
                "input_shape=(timesteps, features) or call build(input_shape)"
            )
        self.input_shape = tuple(input_shape)
        rng = rng if rng is not None else _random.get_rng()
        shape = self.input_shape
        self.output_shapes = []
        for layer in self.layers:
            if not layer.built:
                layer.build(shape, rng, self.dtype)
            elif layer.built_input_shape[-1:] != shape[-1:]:
                raise ValueError(
                    f"Sequential: layer {layer.name!r} was built for input {layer.built_input_shape}; "
                    f"the previous layer gives {shape}"
                )
            shape = layer.compute_output_shape(shape)
            if isinstance(shape, list):  # return_state: only the output feeds the next layer
                if layer is not self.layers[-1]:
                    raise ValueError(
                        f"Sequential: layer {layer.name!r} has return_state=True; only the last "
                        "layer of a Sequential model may return states"
                    )
                self.output_shapes.append(shape)
                shape = shape[0]
            else:
                self.output_shapes.append(shape)
        self.output_shape = shape
        self.built = True
        self._params = None

    @property
    def params(self) -> dict:
        """Dotted name -> parameter array (the live arrays; optimizers update them in place)."""
        if getattr(self, "_params", None) is None:
            self._params = {
                f"{layer.name}.{role}": p
                for layer in self.layers
                for role, p in layer.params.items()
            }
        return self._params

    @property
    def trainable_params(self) -> dict:
        """What the optimizer updates: every parameter of a trainable layer except its
        ``non_trainable_roles`` (BatchNormalization's moving statistics)."""
        return {
            f"{layer.name}.{role}": p
            for layer in self.layers
            if layer.trainable
            for role, p in layer.params.items()
            if role not in layer.non_trainable_roles
        }

    # -- computation ----------------------------------------------------------------------------
    def _ensure_built(self, x):
        if not self.built:
            x = np.asarray(x)
            if x.ndim < 2:
                raise ValueError(
                    f"{self.name}: argument 'x' must have shape (batch, ...); got {x.shape}"
                )
            self.build(x.shape[1:] if self.input_shape is None else self.input_shape)

    def check_input(self, x, arg="x"):
        """Validate ``x`` against the model's input shape; error names what was expected."""
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        expected = (None,) + tuple(self.input_shape)
        ok = x.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
        if not ok:
            raise ValueError(
                f"{self.name}: argument '{arg}' must have shape {fmt_shape(expected)}; got {x.shape}"
            )
        return x

    def forward(self, x, *, training=False, mask=None, rng=None):
        """Returns ``(y, caches, mask)``; ``mask`` is the mask on the output, if any."""
        caches = []
        for layer in self.layers:
            y, cache = layer.forward(x, training=training, mask=mask, rng=rng)
            mask = layer.compute_mask(x, mask)
            caches.append(cache)
            x = y
        return x, caches, mask

    def infer(self, x, *, mask=None):
        """Inference: ``(y, output mask)`` like ``forward(x)`` but without keeping any training
        cache (each recurrent layer runs its cache-free kernel). ``x`` must be validated."""
        for layer in self.layers:
            y = layer.infer(x, mask=mask)
            mask = layer.compute_mask(x, mask)
            x = y
        return x, mask

    def output_logits(self, caches):
        """The logits ``z`` of the output when it is ``softmax(z)`` (see ``Layer.output_logits``)."""
        return self.layers[-1].output_logits(caches[-1]) if self.layers else None

    def apply_state_updates(self, caches):
        """Assign what a training forward computed for non-trainable parameters (moving
        statistics), after the optimizer step: forward itself never changes a layer."""
        for layer, cache in zip(self.layers, caches):
            for role, value in layer.state_updates(cache).items():
                layer.params[role][...] = value

    def backward(self, dy, caches, from_logits=False) -> dict:
        """dLoss/dy -> dotted-name gradients of every trainable parameter. ``from_logits``:
        ``dy`` is dLoss/d(the output's logits) (see :meth:`output_logits`)."""
        grads = {}
        last = len(self.layers) - 1
        for i, (layer, cache) in reversed(list(enumerate(zip(self.layers, caches)))):
            if from_logits and i == last:
                dy, g = layer.backward_from_logits(dy, cache)
            elif i == 0:  # nothing upstream of the first layer wants its input gradient
                g = layer.param_grads(dy, cache) if layer.trainable else {}
            else:
                dy, g = layer.backward(dy, cache)
            if layer.trainable:
                for role, v in g.items():
                    if role not in layer.non_trainable_roles:
                        grads[f"{layer.name}.{role}"] = v
        return grads

    def __call__(self, x, training=False, mask=None):
        self._ensure_built(x)
        if training:
            return self.forward(x, training=True, mask=mask)[0]
        return self.infer(x, mask=mask)[0]

    # -- streaming ------------------------------------------------------------------------------
    def step(self, x_t, states=None):
        """Feed one time step ``x_t (batch, features)``; returns ``(y_t, states)``.

        ``states`` is what the previous call returned (``None`` to start). Recurrent layers must
        return sequences except possibly the last; the result equals the full-sequence forward.
        """
        if not self.built:
            raise ValueError(f"{self.name}: build the model before calling step()")
        x = np.asarray(x_t)
        states = list(states) if states is not None else [None] * len(self.layers)
        new_states = []
        for layer, st in zip(self.layers, states):
            if isinstance(layer, (Bidirectional, Masking)):
                # the backward direction needs the future; a mask needs the whole step vector
                raise ValueError(
                    f"{self.name}.step: layer {layer.name!r} ({type(layer).__name__}) needs the "
                    "whole sequence and cannot be streamed one step at a time"
                )
            if hasattr(layer, "step"):
                x, st = layer.step(x, st)
            else:
                x, _ = layer.forward(x)
            new_states.append(st)
        return x, new_states

    def reset_states(self):
        for layer in self.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    @contextlib.contextmanager
    def carried_states(self, who="carried_states"):
        """Within the block every recurrent layer is stateful (each call starts from the state
        the previous call ended in), starting from zeros; ``reset_states()`` restarts from
        zeros. Afterwards the layers get back their own setting and a zero state. Gradients
        never flow across calls (truncated BPTT). A Bidirectional layer cannot carry state
        (its backward direction starts at the end of each chunk): ValueError."""
        for layer in self.layers:
            if isinstance(layer, Bidirectional):
                raise ValueError(
                    f"{self.name}.{who}: layer {layer.name!r} (Bidirectional) cannot carry its "
                    "state from one chunk to the next; train it on whole sequences"
                )
        rnns = [layer for layer in self.layers if isinstance(layer, RNNBase)]
        saved = [layer.stateful for layer in rnns]
        for layer in rnns:
            layer.stateful = True
            layer.reset_states()
        try:
            yield self
        finally:
            for layer, s in zip(rnns, saved):
                layer.stateful = s
                layer.reset_states()

    # -- weights --------------------------------------------------------------------------------
    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weight_names) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(
                f"{self.name}: argument 'weights' must be a list of {expected} arrays; got {len(weights)}"
            )
        i = 0
        for layer in self.layers:
            n = len(layer.weight_names)
            layer.set_weights(weights[i : i + n])
            i += n

    def count_params(self) -> int:
        return int(sum(layer.count_params() for layer in self.layers))

    def summary(self, print_fn=print):
        """Layer table with output shapes and parameter counts, like Keras."""
        if not self.built:
            raise ValueError(
                f"{self.name}: the model has not been built; give the first layer input_shape or "
                "call build()/fit() first"
            )
        rows = []
        for layer, shape in zip(self.layers, self.output_shapes):
            shapes = shape if isinstance(shape, list) else [shape]
            txt = ", ".join(fmt_shape((None,) + tuple(s)) for s in shapes)
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", txt, f"{layer.count_params():,}")
            )
        w = [
            max(len(r[i]) for r in rows + [("Layer (type)", "Output Shape", "Param #")]) + 2
            for i in range(3)
        ]
        line = "=" * sum(w)
        out = [f'Model: "{self.name}"', line]
        out.append("Layer (type)".ljust(w[0]) + "Output Shape".ljust(w[1]) + "Param #")
        out.append(line)
        for r in rows:
            out.append(r[0].ljust(w[0]) + r[1].ljust(w[1]) + r[2])
        out.append(line)
        trainable = sum(
            p.size
            for layer in self.layers
            if layer.trainable
            for role, p in layer.params.items()
            if role not in layer.non_trainable_roles
        )
        out.append(f"Total params: {self.count_params():,}")
        out.append(f"Trainable params: {trainable:,}")
        out.append(f"Non-trainable params: {self.count_params() - trainable:,}")
        text = "\n".join(out)
        print_fn(text)
        return text

    # -- config ---------------------------------------------------------------------------------
    def get_config(self):
        cfg = {"name": self.name, "layers": [serialize(layer) for layer in self.layers]}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Sequential config must be a dict with a 'layers' list")
        model = cls(name=config.get("name"), dtype=config.get("dtype"))
        for lc in config["layers"]:
            model.add(deserialize(lc))
        if config.get("input_shape") is not None and not model.built:
            model.build(tuple(config["input_shape"]))
        return model

    def save(self, path, include_optimizer=True):
        """Architecture (JSON) + weights (+ optimizer state) in one safetensors file, atomically."""
        from ..saving import save_model

        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """The same file as ``save`` without optimizer state (what ``ModelCheckpoint`` calls
        with ``save_weights_only=True``)."""
        from ..saving import save_model

        save_model(self, path, include_optimizer=False)

    def load_weights(self, path):
        """Copy weights from a file written by ``save``/``save_weights``; every key and shape
        must match this model (all mismatches are listed at once)."""
        from ..saving import load_weights

        if not self.built:
            raise ValueError(f"{self.name}.load_weights: build the model first")
        load_weights(self, path)
