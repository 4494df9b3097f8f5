"""Symbolic tensors and nodes: what ``Input(...)`` returns and what calling a layer on it records.

Keras' functional API without tracing: calling a layer on a :class:`SymbolicTensor` builds the
layer for that input shape (``compute_output_shape`` says what comes out) and records a
:class:`Node` — *this layer was applied to these tensors* — whose outputs are new symbolic
tensors. Nothing is computed. A :class:`~lstmkit.graph.network.Network` later walks the nodes
from the outputs back to the inputs and runs them in order.

Shapes carry the batch axis as ``None`` (``Input(shape=(10, 3)).shape == (None, 10, 3)``), as in
Keras; layers are built with the shape *without* it (the :class:`~lstmkit.layers.Layer`
protocol).
"""

from __future__ import annotations

import numpy as np

from ..layers.base import Layer, fmt_shape


class SymbolicTensor:
    """A placeholder for an array that a node will produce: ``shape`` (batch ``None``), ``dtype``,
    and where it comes from (``node`` and its output ``index``)."""

    __slots__ = ("dtype", "index", "name", "node", "shape")

    def __init__(self, shape, dtype, node=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = str(np.dtype(dtype))
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        src = f", from {self.node.layer.name!r}" if self.node is not None else ""
        return f"<SymbolicTensor shape={fmt_shape(self.shape)} dtype={self.dtype}{src}>"

    # Python would otherwise iterate a tensor by __getitem__ forever (e.g. `a, b = tensor`)
    def __iter__(self):
        raise TypeError(
            f"a SymbolicTensor {fmt_shape(self.shape)} cannot be unpacked; call a layer with "
            "return_state=True (or several outputs) to get a list"
        )


def is_symbolic(x) -> bool:
    if isinstance(x, SymbolicTensor):
        return True
    if isinstance(x, (list, tuple)):
        return any(isinstance(v, SymbolicTensor) for v in x)
    return False


class Node:
    """One application of ``layer``: ``inputs`` (flat list of tensors; ``multi`` says whether the
    layer received them as a list), optional ``initial_state`` tensors, the constant keyword
    arguments of the call (``kwargs``, from the layer's ``call_arguments``: Attention's
    ``return_attention_scores``), and the ``outputs``."""

    __slots__ = ("initial_state", "inputs", "kwargs", "layer", "listed", "multi", "outputs")

    def __init__(self, layer, inputs, multi, initial_state, kwargs=None):
        self.layer = layer
        self.inputs = list(inputs)
        self.multi = bool(multi)
        self.initial_state = list(initial_state or [])
        self.kwargs = dict(kwargs or {})
        self.outputs: list[SymbolicTensor] = []
        self.listed = False  # the layer returned a list (return_state, merge_mode=None)

    @property
    def is_input(self) -> bool:
        return isinstance(self.layer, InputLayer)

    @property
    def parents(self) -> list[SymbolicTensor]:
        """Every tensor this node reads: its inputs then its initial states."""
        return self.inputs + self.initial_state

    def index(self) -> int:
        return self.layer._inbound_nodes.index(self)


# -- Input ------------------------------------------------------------------------------------
class InputLayer(Layer):
    """The layer behind :func:`Input`: no parameters; its one node produces the model input."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kw):
        if batch_shape is None:
            if shape is None:
                raise ValueError("Input: argument 'shape' is required, e.g. Input(shape=(10, 3))")
            shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
            try:
                shape = tuple(shape)
            except TypeError:
                raise ValueError(
                    f"Input: argument 'shape' must be a tuple of dimensions; got {shape!r}"
                ) from None
            batch_shape = (batch_size, *shape)
        batch_shape = tuple(batch_shape)
        for s in batch_shape[1:]:
            if s is not None and (
                not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1
            ):
                raise ValueError(
                    f"Input: argument 'shape' must hold positive ints or None; got "
                    f"{batch_shape[1:]!r}"
                )
        dtype = "float32" if dtype is None else str(np.dtype(dtype))
        if np.dtype(dtype).kind not in "fiub":
            raise ValueError(f"Input: argument 'dtype' must be numeric; got {dtype!r}")
        super().__init__(name=name or _auto_name("input_layer"), **kw)
        self.batch_shape = batch_shape
        self.input_dtype = dtype
        self.built = True
        self.built_input_shape = batch_shape[1:]
        node = Node(self, [], False, None)
        node.outputs = [SymbolicTensor(batch_shape, dtype, node, 0, self.name)]
        self._inbound_nodes = [node]

    @property
    def output(self):
        return self._inbound_nodes[0].outputs[0]

    def forward(self, x, *, training=False, mask=None, rng=None):
        return x, None

    def get_config(self):
        return {
            "name": self.name,
            "batch_shape": list(self.batch_shape),
            "dtype": self.input_dtype,
        }

    @classmethod
    def from_config(cls, config):
        cfg = dict(config)
        return cls(batch_shape=cfg.pop("batch_shape"), dtype=cfg.pop("dtype", None), **cfg)


def _auto_name(base):
    from ..layers.base import unique_name

    return unique_name(base)


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """A symbolic model input, as ``keras.Input``: ``Input(shape=(timesteps, features))``.

    ``shape`` excludes the batch axis; ``dtype`` defaults to float32 (use ``"int32"`` for token
    ids feeding an ``Embedding``)."""
    return InputLayer(shape, batch_size, dtype, name, batch_shape).output


# -- calling a layer on symbolic tensors -------------------------------------------------------
def call_symbolic(layer, x, mask=None, training=None, initial_state=None, **kwargs):
    """Record ``layer(x, initial_state=...)`` and return the symbolic output(s)."""
    who = f"{layer.name} ({type(layer).__name__})"
    kwargs = _call_kwargs(layer, who, kwargs)
    if mask is not None:
        raise ValueError(
            f"{who}: argument 'mask' cannot be given to a symbolic call; masks flow from "
            "Masking or Embedding(mask_zero=True)"
        )
    multi = isinstance(x, (list, tuple))
    inputs = list(x) if multi else [x]
    if multi and not getattr(layer, "multi_input", False):
        raise ValueError(
            f"{who}: takes one input tensor; got a list of {len(inputs)} (use Concatenate or "
            "another merging layer to combine tensors)"
        )
    if not multi and getattr(layer, "multi_input", False):
        raise ValueError(f"{who}: takes a list of input tensors; got one {fmt_shape(x.shape)}")
    for t in inputs:
        if not isinstance(t, SymbolicTensor):
            raise ValueError(
                f"{who}: cannot mix symbolic tensors and arrays; got {type(t).__name__} (wrap "
                "constants in an Input)"
            )
    states = _as_state_list(who, initial_state)
    shape = [t.shape[1:] for t in inputs] if multi else inputs[0].shape[1:]
    _build_for(layer, who, shape, inputs)
    try:
        out_shape = layer.compute_output_shape(shape, **kwargs)
    except (ValueError, TypeError, IndexError) as e:
        raise ValueError(f"{who}: cannot take input of shape {_fmt_shapes(inputs)}: {e}") from None
    node = Node(layer, inputs, multi, states, kwargs)
    if not hasattr(layer, "_inbound_nodes"):
        layer._inbound_nodes = []
    layer._inbound_nodes.append(node)
    dtype = layer.dtype or "float32"
    if isinstance(out_shape, list):
        node.listed = True
        node.outputs = [SymbolicTensor((None, *s), dtype, node, i) for i, s in enumerate(out_shape)]
        return list(node.outputs)
    node.outputs = [SymbolicTensor((None, *out_shape), dtype, node, 0)]
    return node.outputs[0]


def _call_kwargs(layer, who, kwargs):
    """The keyword arguments a node records: only those the layer lists in ``call_arguments``,
    each a constant a model file can hold (bool, int, float, str or None)."""
    allowed = getattr(layer, "call_arguments", ())
    bad = sorted(k for k in kwargs if k not in allowed)
    if bad:
        raise ValueError(f"{who}: unsupported call arguments {bad} on symbolic inputs")
    for k, v in kwargs.items():
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise ValueError(
                f"{who}: call argument {k!r} must be a constant (bool, int, float, str or None) "
                f"in a symbolic call; got {type(v).__name__}"
            )
    return dict(kwargs)


def _as_state_list(who, initial_state):
    if initial_state is None:
        return []
    states = [initial_state] if isinstance(initial_state, SymbolicTensor) else list(initial_state)
    for s in states:
        if not isinstance(s, SymbolicTensor):
            raise ValueError(
                f"{who}: argument 'initial_state' must be symbolic tensors in a symbolic call; "
                f"got {type(s).__name__}"
            )
    return states


def _fmt_shapes(tensors):
    return ", ".join(fmt_shape(t.shape) for t in tensors)


def _build_for(layer, who, shape, inputs):
    """Build ``layer`` for ``shape`` on its first call; later calls must fit the built shape."""
    floats = [t.dtype for t in inputs if np.dtype(t.dtype).kind == "f"]
    dtype = "float64" if "float64" in floats else None
    if not layer.built:
        try:
            layer.build(shape, None, dtype)
        except (ValueError, TypeError, IndexError) as e:
            raise ValueError(
                f"{who}: cannot take input of shape {_fmt_shapes(inputs)}: {e}"
            ) from None
        return
    built = layer.built_input_shape
    if isinstance(shape, list):
        ok = isinstance(built, (list, tuple)) and all(
            tuple(a)[-1:] == tuple(b)[-1:] for a, b in zip(built, shape)
        )
    else:
        ok = tuple(built)[-1:] == tuple(shape)[-1:]
        if hasattr(layer, "return_sequences"):  # recurrent: (timesteps, features) only
            ok = ok and len(built) == len(shape)
    if not ok:
        raise ValueError(
            f"{who}: was built for input {built} (without the batch axis); got "
            f"{_fmt_shapes(inputs)}"
        )
