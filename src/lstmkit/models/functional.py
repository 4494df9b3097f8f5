"""``Model(inputs, outputs)``: Keras' functional model over the graph core.

::

    enc_in = Input(shape=(None, 71))
    _, h, c = LSTM(256, return_state=True)(enc_in)
    dec_in = Input(shape=(None, 93))
    seq = LSTM(256, return_sequences=True)(dec_in, initial_state=[h, c])
    model = Model([enc_in, dec_in], Dense(93, activation="softmax")(seq))

The model composes (:class:`lstmkit.graph.Network` runs the nodes); ``Trainable`` trains it.
Inputs and outputs may be one tensor, a list or a dict; ``fit``/``predict`` take arrays in the
same structure (a dict by input name works for any structure). Parameters are addressed
``"<layer>.<role>"`` as everywhere; a shared layer's parameters appear once.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..graph.network import Network
from ..graph.symbolic import InputLayer, SymbolicTensor
from ..layers import Bidirectional, Layer
from ..layers.base import fmt_shape
from ..layers.recurrent import RNNBase
from .training import Trainable


def _structure(value, what, name):
    """tensor | list | dict -> (flat list, keys or None, kind)."""
    if isinstance(value, SymbolicTensor):
        return [value], None, "single"
    if isinstance(value, dict):
        return list(value.values()), list(value), "dict"
    if isinstance(value, (list, tuple)) and value:
        return list(value), None, "list"
    raise ValueError(
        f"{name}: argument '{what}' must be a symbolic tensor, a list or a dict of them "
        f"(from Input() and layer calls); got {type(value).__name__}"
    )


class Model(Trainable):
    """A graph of layers from ``inputs`` to ``outputs`` (Keras ``keras.Model``)."""

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        super().__init__()
        self.name = name or "functional"
        self.metadata: dict = {}
        trainable = kwargs.pop("trainable", True)
        if kwargs:
            raise ValueError(f"Model: unexpected arguments {sorted(kwargs)}")
        if type(self) is Model and (inputs is None or outputs is None):
            raise ValueError(
                "Model: arguments 'inputs' and 'outputs' are required (the functional API: "
                "Model(inputs, outputs)); lstmkit has no autodiff, so subclassed models with a "
                "call() method are not supported"
            )
        self.trainable = trainable
        self.built = False
        if inputs is not None:
            self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs):
        flat_in, self._input_keys, self._input_kind = _structure(inputs, "inputs", self.name)
        flat_out, self._output_keys, self._output_kind = _structure(outputs, "outputs", self.name)
        for i, t in enumerate(flat_in):
            if isinstance(t, SymbolicTensor) and (t.node is None or not t.node.is_input):
                raise ValueError(
                    f"{self.name}: argument 'inputs' must hold tensors from Input(); input {i} "
                    f"{fmt_shape(t.shape)} comes from layer {t.node.layer.name!r}"
                )
        self._net = Network(flat_in, flat_out, self.name)
        self.built = True

    # -- structure (Keras names) ------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return list(self._net.layers)

    @property
    def inputs(self):
        return list(self._net.inputs)

    @property
    def outputs(self):
        return list(self._net.outputs)

    @property
    def input(self):
        return self._restructure(self._net.inputs, self._input_kind, self._input_keys)

    @property
    def output(self):
        return self._restructure(self._net.outputs, self._output_kind, self._output_keys)

    @property
    def input_shape(self):
        s = [t.shape for t in self._net.inputs]
        return s[0] if len(s) == 1 else s

    @property
    def output_shape(self):
        s = [t.shape for t in self._net.outputs]
        return s[0] if len(s) == 1 else s

    @property
    def input_names(self):
        return [t.node.layer.name for t in self._net.inputs]

    @property
    def output_names(self):
        return [t.node.layer.name for t in self._net.outputs]

    @staticmethod
    def _restructure(flat, kind, keys):
        if kind == "single":
            return flat[0]
        if kind == "dict":
            return dict(zip(keys, flat))
        return list(flat)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"{self.name}.get_layer: no layer named {name!r}; layers: {[la.name for la in self.layers]}"
        )

    # -- parameters ----------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        return self._net.params()

    @property
    def trainable_params(self) -> dict:
        return self._net.params(trainable_only=True) if self.trainable else {}

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weight_names) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(
                f"{self.name}: argument 'weights' must be a list of {expected} arrays; "
                f"got {len(weights)}"
            )
        i = 0
        for layer in self.layers:
            n = len(layer.weight_names)
            layer.set_weights(weights[i : i + n])
            i += n

    def count_params(self) -> int:
        return int(sum(layer.count_params() for layer in self.layers))

    # -- the model protocol the trainer uses ---------------------------------------------------
    def _ensure_built(self, xs):
        pass

    @property
    def network(self) -> Network:
        return self._net

    def __call__(self, x, training=False, mask=None):
        """Eager call on arrays, as Keras' ``model(x)``."""
        xs = self._standardize_inputs(x, "x")
        self._ensure_built(xs)
        xs = self._net.check_inputs(xs, self.name)
        ys, _, _ = self._net.run(xs, training=training, masks=self._masks(mask), keep_cache=False)
        return self._restructure(ys, self._output_kind, self._output_keys)

    def _masks(self, mask):
        return None if mask is None else [mask] + [None] * (len(self._net.inputs) - 1)

    # -- one input, one output: the array-level protocol apps and the lab use ------------------
    def forward(self, x, *, training=False, mask=None, rng=None):
        """``(y, tape, output mask)`` of a one-input model; ``backward(dy, tape)`` uses it."""
        self._ensure_built([x])
        ys, masks, tape = self._net.run([x], training=training, masks=self._masks(mask), rng=rng)
        return self._single(ys), tape, masks[0]

    def infer(self, x, *, mask=None):
        """``(y, output mask)`` without keeping any training cache (each recurrent layer runs
        its cache-free kernel). ``x`` must be validated."""
        self._ensure_built([x])
        ys, masks, _ = self._net.run([x], masks=self._masks(mask), keep_cache=False)
        return self._single(ys), masks[0]

    def backward(self, dy, tape) -> dict:
        """dLoss/dy -> dotted-name gradients of every trainable parameter."""
        return self._net.backward(dy if isinstance(dy, list) else [dy], tape)

    def _single(self, ys):
        return ys[0] if len(ys) == 1 else list(ys)

    # -- streaming -----------------------------------------------------------------------------
    def step(self, x_t, states=None):
        """One time step ``x_t`` (per input: ``(batch, features)``) -> ``(y_t, states)``;
        ``states`` is what the previous call returned (``None`` to start). Equals the full
        sequence forward at every step."""
        if not self.built:
            raise ValueError(f"{self.name}: build the model before calling step()")
        xs = self._standardize_inputs(x_t, "x_t")
        ys, states = self._net.step([np.asarray(x) for x in xs], states)
        return self._restructure(ys, self._output_kind, self._output_keys), states

    def _recurrent_layers(self):
        return [la for la in self.layers if isinstance(la, RNNBase)]

    def reset_states(self):
        for layer in self.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    @contextlib.contextmanager
    def carried_states(self, who="carried_states"):
        """Within the block every recurrent layer is stateful (each call starts from the state
        the previous call ended in), starting from zeros; afterwards the layers get back their
        own setting and a zero state. Gradients never flow across calls (truncated BPTT). A
        Bidirectional layer cannot carry state: ValueError."""
        for layer in self.layers:
            if isinstance(layer, Bidirectional):
                raise ValueError(
                    f"{self.name}.{who}: layer {layer.name!r} (Bidirectional) cannot carry its "
                    "state from one chunk to the next; train it on whole sequences"
                )
        rnns = self._recurrent_layers()
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

    # -- summary -------------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """Keras' table with a "Connected to" column: each node's input layers."""
        if not self.built:
            raise ValueError(f"{self.name}: the model has not been built")
        rows = []
        for layer in self.layers:
            nodes = [n for n in getattr(layer, "_inbound_nodes", []) if n in self._net.nodes]
            if isinstance(layer, InputLayer):
                shapes = fmt_shape(layer.batch_shape)
                conn = "-"
            else:
                shapes = ", ".join(fmt_shape(t.shape) for n in nodes[:1] for t in n.outputs)
                conn = ", ".join(
                    f"{t.node.layer.name}[{t.node.index()}][{t.index}]"
                    for n in nodes
                    for t in n.parents
                )
            rows.append(
                (
                    f"{layer.name} ({type(layer).__name__})",
                    shapes,
                    f"{layer.count_params():,}",
                    conn,
                )
            )
        text = _table(self.name, rows, ("Layer (type)", "Output Shape", "Param #", "Connected to"))
        trainable = trainable_count(self.layers)
        text += (
            f"\nTotal params: {self.count_params():,}\nTrainable params: {trainable:,}\n"
            f"Non-trainable params: {self.count_params() - trainable:,}"
        )
        print_fn(text)
        return text

    # -- config --------------------------------------------------------------------------------
    def get_config(self):
        from ..graph.config import network_config

        cfg = network_config(self._net)
        cfg["name"] = self.name
        cfg["input_structure"] = (
            self._input_keys if self._input_kind == "dict" else self._input_kind
        )
        cfg["output_structure"] = (
            self._output_keys if self._output_kind == "dict" else self._output_kind
        )
        return cfg

    @classmethod
    def from_config(cls, config):
        from ..graph.config import network_from_config

        inputs, outputs = network_from_config(config)
        ins = _apply_structure(inputs, config.get("input_structure"))
        outs = _apply_structure(outputs, config.get("output_structure"))
        return cls(ins, outs, name=config.get("name"))

    def save(self, path, include_optimizer=True):
        """Architecture (JSON) + weights (+ optimizer state) in one safetensors file, atomically."""
        from ..saving import save_model

        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        from ..saving import save_model

        save_model(self, path, include_optimizer=False)

    def load_weights(self, path):
        from ..saving import load_weights

        if not self.built:
            raise ValueError(f"{self.name}.load_weights: build the model first")
        load_weights(self, path)


def trainable_count(layers):
    """Parameters an optimizer updates (moving statistics and frozen layers excluded)."""
    return sum(
        p.size
        for la in layers
        if la.trainable
        for role, p in la.params.items()
        if role not in la.non_trainable_roles
    )


def _apply_structure(flat, structure):
    if structure == "single":
        return flat[0]
    if isinstance(structure, list) and len(structure) == len(flat):
        return dict(zip(structure, flat))
    return list(flat)


def _table(name, rows, head):
    widths = [max(len(r[i]) for r in [head, *rows]) + 2 for i in range(len(head))]
    line = "=" * sum(widths)
    out = [f'Model: "{name}"', line, "".join(h.ljust(w) for h, w in zip(head, widths)), line]
    out += ["".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.append(line)
    return "\n".join(out)
