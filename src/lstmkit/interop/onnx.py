"""lstmkit -> ONNX with the standard ``LSTM``, ``GRU`` and ``RNN`` operators (onnxruntime runs it).

Public name::

    to_onnx(model, path=None, *, opset=17, streaming=False, quantize=None) -> onnx.ModelProto

Graph (float32; a float64 model is exported in float32)::

    x (batch, time, features) float, or (batch, time) int64 ids when the model starts with an
    Embedding  ->  Gather (Embedding) -> Transpose to time-major (time, batch, features)
    -> LSTM / GRU / RNN per recurrent layer (a Bidirectional layer is one operator with
       direction="bidirectional"; go_backwards is direction="reverse")
    -> MatMul + Add (Dense on sequences) or Gemm (Dense on vectors) + Relu/Tanh/Sigmoid
    -> y, batch-major like the lstmkit model's predict

Weights (permutations and bias splits in :mod:`lstmkit.interop.gates`): ``W (dirs, G*H, D)`` is
``kernel.T``, ``R (dirs, G*H, H)`` is ``recurrent_kernel.T``, gate order LSTM i, o, f, c and GRU
z, r, h; ``B (dirs, 2*G*H)`` is ``[Wb, Rb]``: the LSTM/RNN bias goes into ``Wb`` with ``Rb = 0``,
the GRU's ``bias[0]``/``bias[1]`` into ``Wb``/``Rb`` with ``linear_before_reset=1`` (Keras'
``reset_after=True``; ``reset_after=False`` is ``linear_before_reset=0`` with ``Rb = 0``; no bias
is ``B = 0``). Keras' ``recurrent_activation`` and ``activation`` become the operator's
``activations`` (f, g, h) where ONNX has them (sigmoid, tanh, relu, linear, elu, softsign,
softplus, leaky_relu, hard_sigmoid), else the export is refused. The operators' ``Y`` is
``(time, dirs, batch, H)`` and ``Y_h``
``(dirs, batch, H)``; the merge modes concat/sum/ave/mul become Transpose+Reshape / ReduceSum /
ReduceMean / ReduceProd over the direction axis.

Masks: with ``Embedding(mask_zero=True)`` or ``Masking`` the graph computes ``sequence_lens``
(the number of valid steps, assuming post-padded batches) and passes it to every recurrent
operator, which then stops each sequence at its length, as lstmkit's masks do. lstmkit's (Keras')
unidirectional ``return_sequences`` output repeats the last valid h at padded steps, where ONNX
writes zeros; a ``Where(mask, Y, Y_h)`` restores it.

``quantize="int8"`` stores every matrix (the operators' ``W`` and ``R``, Dense kernels,
embeddings) as an int8 initializer with one float32 scale per output channel, the scheme of
:mod:`lstmkit.quantize` (so the int8 values equal those of ``save_quantized``'s file), each
followed by ``DequantizeLinear`` (zero point 0, ``axis`` = the channel axis; ``W``/``R`` are
stored as ``(dirs*G*H, D)`` and reshaped). Biases stay float32. The graph runs in any
onnxruntime, computes in float32 and is about 4x smaller; onnxruntime dequantises the constant
weights once, when it folds constants at session creation. (onnxruntime's own
``quantize_dynamic`` turns LSTM into its ``DynamicQuantizeLSTM`` with uint8 activations, but
leaves GRU and RNN float; ``benchmarks/quantize_report.py`` compares both.)

``streaming=True`` adds, for every recurrent layer ``<name>``, inputs ``<name>.h0`` (and
``<name>.c0`` for an LSTM) of shape ``(dirs, batch, H)`` and outputs ``<name>.h`` (``<name>.c``):
feed chunks of any length (one step at a time, say) and pass the states on.
"""

from __future__ import annotations

import os

import numpy as np

from .. import _optional
from . import gates
from .gates import ONNX

OPSET_MIN = 13


#: the values of ``to_onnx``'s ``quantize``
QUANTIZE = (None, "int8")


class _Graph:
    """A tiny builder over ``onnx.helper``: unique names, float32 initializers, and matrices
    stored as float32 or (``quantize="int8"``) int8 + per-channel scale."""

    def __init__(self, helper, numpy_helper, opset, quantize=None):
        self.h, self.nh, self.opset, self.quantize = helper, numpy_helper, opset, quantize
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.n = 0

    def matrix(self, base, array, axis):
        """A weight matrix whose output channels run along ``axis`` (0 or 1 of a 2-D array):
        a float32 initializer, or int8 + scales + ``DequantizeLinear`` (float32 out)."""
        if self.quantize is None:
            return self.const(base, np.asarray(array, np.float32))
        from ..quantize import quantize_array

        a = np.asarray(array)
        q, scale = quantize_array(a if axis == a.ndim - 1 else np.moveaxis(a, axis, -1))
        q = q if axis == a.ndim - 1 else np.moveaxis(q, -1, axis)
        ins = [
            self.const(f"{base}.int8", q),
            self.const(f"{base}.scale", scale.astype(np.float32)),
            self.const(f"{base}.zero_point", np.zeros(len(scale), np.int8)),
        ]
        return self.op("DequantizeLinear", ins, axis=axis)

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, array):
        name = self.name(base)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def axes(self, op_type, x, axes, keepdims):
        """Reduce over ``axes``: an attribute before opset 18 (13 for ReduceSum), an input after."""
        input_from = 13 if op_type == "ReduceSum" else 18
        if self.opset >= input_from:
            return self.op(
                op_type, [x, self.const("axes", np.array(axes, np.int64))], keepdims=keepdims
            )
        return self.op(op_type, [x], axes=list(axes), keepdims=keepdims)

    def squeeze(self, x, axis):
        return self.op("Squeeze", [x, self.const("axes", np.array([axis], np.int64))])

    def unsqueeze(self, x, axis):
        return self.op("Unsqueeze", [x, self.const("axes", np.array([axis], np.int64))])

    def reshape(self, x, shape):
        return self.op("Reshape", [x, self.const("shape", np.array(shape, np.int64))])


def _merge(g, y, merge_mode, axis):
    """Merge the direction axis of ``y``: ``Y (T, 2, B, H)`` (axis 1) or ``Y_h (2, B, H)`` (axis 0)."""
    if merge_mode == "concat":
        if axis == 1:
            y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (T, B, 2, H)
            return g.reshape(y, [0, 0, -1])
        y = g.op("Transpose", [y], perm=[1, 0, 2])  # (B, 2, H)
        return g.reshape(y, [0, -1])
    op = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}.get(merge_mode)
    if op is None:
        raise ValueError(f"to_onnx: Bidirectional merge_mode={merge_mode!r} is not supported")
    return g.axes(op, y, [axis], keepdims=0)


#: Keras activation -> (ONNX RNN activation, alpha, beta) for the names ONNX has (onnxruntime
#: reads alpha/beta only for the functions that take them, in order)
_ONNX_ACTS = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "elu": ("Elu", 1.0, None),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "leaky_relu": ("LeakyRelu", 0.2, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # Keras 3: clip(x / 6 + 1/2, 0, 1)
}


def _activation_attrs(layer, inner, dirs):
    """ONNX ``activations`` (f, g[, h] per direction) and their alpha/beta, from Keras'
    ``recurrent_activation`` (f) and ``activation`` (g, h); SimpleRNN has f = activation."""
    order = {"lstm": ("recurrent_activation", "activation", "activation"),
             "gru": ("recurrent_activation", "activation"), "rnn": ("activation",)}[inner.cell]  # fmt: skip
    names, alphas, betas = [], [], []
    for arg in order:
        act = getattr(inner, arg)
        if act not in _ONNX_ACTS:
            raise ValueError(
                f"to_onnx: layer {layer.name!r} has {arg}={act!r}; ONNX recurrent operators "
                f"have {sorted(_ONNX_ACTS)}"
            )
        name, alpha, beta = _ONNX_ACTS[act]
        names.append(name)
        alphas += [] if alpha is None else [alpha]
        betas += [] if beta is None else [beta]
    attrs = {"activations": names * dirs}
    if alphas:
        attrs["activation_alpha"] = alphas * dirs
    if betas:
        attrs["activation_beta"] = betas * dirs
    return attrs


def _bias_pair(layer, cell):
    """``(input bias, recurrent bias)`` in Keras order for any bias layout: GRU ``(2, 3H)``, GRU
    ``reset_after=False`` ``(3H,)`` (no recurrent bias), none at all (``use_bias=False``)."""
    G = gates.N_GATES[cell] * layer.units
    if not layer.use_bias:
        return np.zeros(G), np.zeros(G)
    bias = layer.params["bias"]
    if cell == "gru" and bias.ndim == 1:
        return bias, np.zeros_like(bias)
    return gates.split_bias(bias, cell)


def _rnn_weights(layers, cell):
    """W (dirs, G*H, D), R (dirs, G*H, H), B (dirs, 2*G*H) in ONNX order, in the model's
    dtype (each row of W and R is one output channel)."""
    W, R, B = [], [], []
    for la in layers:
        p = la.params
        b_in, b_rec = _bias_pair(la, cell)
        W.append(gates.to_rows(p["kernel"], cell, ONNX))
        R.append(gates.to_rows(p["recurrent_kernel"], cell, ONNX))
        B.append(
            np.concatenate([gates.to_vector(b_in, cell, ONNX), gates.to_vector(b_rec, cell, ONNX)])
        )
    return [np.stack(a) for a in (W, R, B)]


def _embedding(g, layer, ids):
    """``Gather`` of the embedding rows: ``(B, T, E)`` float32. Quantised, the int8 rows are
    gathered first and only they are dequantised, by ``Cast`` and ``Mul`` with the per-column
    scale: dequantising the whole ``(V, E)`` table would run on every call (onnxruntime does
    not fold it), and a ``DequantizeLinear`` here, feeding the Transpose, makes onnxruntime's
    QDQ propagation add a QuantizeLinear/DequantizeLinear pair that tripled the sentiment
    model's time (measured with onnxruntime's profiler)."""
    table = layer.params["embeddings"]
    if g.quantize is None:
        return g.op("Gather", [g.const(f"{layer.name}.embeddings", table.astype(np.float32)), ids])
    from ..quantize import quantize_array

    q, scale = quantize_array(table)
    rows = g.op("Gather", [g.const(f"{layer.name}.embeddings.int8", q), ids], axis=0)
    rows = g.op("Cast", [rows], to=1)  # TensorProto.FLOAT
    return g.op("Mul", [rows, g.const(f"{layer.name}.embeddings.scale", scale.astype(np.float32))])


def _rnn_matrix(g, base, w):
    """``w (dirs, G*H, n)`` as an initializer; quantised per row (dirs*G*H scales), it is
    stored 2-D for DequantizeLinear's per-axis form and reshaped back."""
    if g.quantize is None:
        return g.matrix(base, w, axis=1)
    dirs, rows, n = w.shape
    return g.reshape(g.matrix(base, w.reshape(dirs * rows, n), axis=0), [dirs, rows, n])


def _recurrent(g, layer, x, lens, mask_tb, streaming, state_io):
    """Emit one recurrent operator for an lstmkit recurrent or Bidirectional layer.

    ``x`` is time-major ``(T, B, D)``. Returns ``(output, is_sequence)``.
    """
    from ..layers import Bidirectional

    if isinstance(layer, Bidirectional):
        fwd, bwd = layer.forward_layer, layer.backward_layer
        if type(fwd) is not type(bwd) or fwd.units != bwd.units or fwd.go_backwards:
            raise ValueError(
                f"to_onnx: Bidirectional {layer.name!r} must pair a forward layer with a backward "
                "copy of the same kind and size"
            )
        for arg in ("activation", "recurrent_activation", "use_bias", "reset_after"):
            if getattr(fwd, arg, None) != getattr(bwd, arg, None):
                raise ValueError(
                    f"to_onnx: Bidirectional {layer.name!r}: directions differ in {arg}"
                )
        inner, parts, direction = fwd, [fwd, bwd], "bidirectional"
    else:
        inner, parts = layer, [layer]
        direction = "reverse" if layer.go_backwards else "forward"
    if inner.return_state:
        raise ValueError(f"to_onnx: layer {layer.name!r} has return_state=True; not supported")
    cell, H, dirs = gates.cell_of(inner), inner.units, len(parts)
    W, R, B = _rnn_weights(parts, cell)
    inputs = [
        x,
        _rnn_matrix(g, f"{layer.name}.W", W),
        _rnn_matrix(g, f"{layer.name}.R", R),
        g.const(f"{layer.name}.B", B.astype(np.float32)),
    ]
    inputs.append(lens or "")
    n_state = 2 if cell == "lstm" else 1
    if streaming:
        for s in ("h", "c")[:n_state]:
            name = f"{layer.name}.{s}0"
            state_io["inputs"].append((name, dirs, H))
            inputs.append(name)
    attrs = {"hidden_size": H, "direction": direction, **_activation_attrs(layer, inner, dirs)}
    if cell == "lstm":
        op_type = "LSTM"
    elif cell == "gru":  # Keras' reset_after=True is ONNX's linear_before_reset=1
        op_type, attrs["linear_before_reset"] = "GRU", int(inner.reset_after)
    else:
        op_type = "RNN"
    outs = g.op(op_type, inputs, n_out=1 + n_state, **attrs)
    y, y_h = outs[0], outs[1]
    if streaming:
        for s, out in zip(("h", "c"), outs[1:]):
            state_io["outputs"].append((f"{layer.name}.{s}", out, dirs, H))
    if not inner.return_sequences:
        if dirs == 1:
            return g.squeeze(y_h, 0), False  # (B, H)
        return _merge(g, y_h, layer.merge_mode, axis=0), False
    if dirs == 2:
        return _merge(g, y, layer.merge_mode, axis=1), True
    y = g.squeeze(y, 1)  # (T, B, H)
    if layer.go_backwards:
        if mask_tb is not None:
            raise ValueError(
                f"to_onnx: layer {layer.name!r} has go_backwards and return_sequences with a mask; "
                "not supported"
            )
        # lstmkit returns go_backwards outputs in reading order; ONNX aligns them with the input
        y = g.op(
            "Slice",
            [
                y,
                g.const("starts", np.array([-1], np.int64)),
                g.const("ends", np.array([np.iinfo(np.int64).min], np.int64)),
                g.const("axes", np.array([0], np.int64)),
                g.const("steps", np.array([-1], np.int64)),
            ],
        )
    elif mask_tb is not None and not inner.zero_output_for_mask:
        # Keras repeats the carried h at padded steps; post-padded, that is the last valid h
        y = g.op("Where", [g.unsqueeze(mask_tb, 2), y, y_h])
    return y, True


def to_onnx(model, path=None, *, opset=17, streaming=False, quantize=None):
    """Export ``model`` as an ONNX graph; also save it when ``path`` is given.

    ``opset`` >= 13. ``streaming`` adds state inputs and outputs; ``quantize="int8"`` stores
    the weight matrices as int8 with per-channel scales (see the module docstring). The graph
    is checked with ``onnx.checker`` before it is returned.
    """
    if quantize not in QUANTIZE:
        raise ValueError(
            f"to_onnx: argument 'quantize' must be one of {QUANTIZE}; got {quantize!r}"
        )
    onnx = _optional.require("onnx", "to_onnx")
    from onnx import TensorProto, helper, numpy_helper

    from ..layers import Dense, Dropout, Embedding, Masking

    if not model.built:
        raise ValueError(f"to_onnx: build {model.name!r} (give input_shape) before exporting it")
    from .graph import as_chain

    model = as_chain(model, "to_onnx")
    if not isinstance(opset, int) or opset < OPSET_MIN or opset > onnx.defs.onnx_opset_version():
        raise ValueError(
            f"to_onnx: argument 'opset' must be an int in [{OPSET_MIN}, "
            f"{onnx.defs.onnx_opset_version()}]; got {opset!r}"
        )
    g = _Graph(helper, numpy_helper, opset, quantize)
    state_io = {"inputs": [], "outputs": []}
    first = model.layers[0]
    ids_input = isinstance(first, Embedding)
    in_shape = ["batch", "time"] + ([] if ids_input else [int(model.input_shape[-1])])
    x = "x"
    g.inputs.append(
        helper.make_tensor_value_info(
            x, TensorProto.INT64 if ids_input else TensorProto.FLOAT, in_shape
        )
    )
    layout = "batch"  # "batch" (B, T, F), "time" (T, B, F) or "vector" (B, F)
    lens = mask_tb = None

    def set_mask(mask_bt):
        nonlocal lens, mask_tb
        m32 = g.op("Cast", [mask_bt], to=TensorProto.INT32)
        lens = g.axes("ReduceSum", m32, [1], keepdims=0)  # (B,) valid steps, post-padded
        mask_tb = g.op("Transpose", [mask_bt], perm=[1, 0])

    for layer in model.layers:
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, Embedding):
            if layer is not first:
                raise ValueError("to_onnx: an Embedding must be the first layer")
            x = _embedding(g, layer, x)
            if layer.mask_zero:
                set_mask(
                    g.op("Not", [g.op("Equal", ["x", g.const("zero", np.array(0, np.int64))])])
                )
            continue
        if isinstance(layer, Masking):
            if layout != "batch":
                raise ValueError("to_onnx: Masking must come before the recurrent layers")
            v = g.const("mask_value", np.array(layer.mask_value, np.float32))
            keep = g.op("Cast", [g.op("Not", [g.op("Equal", [x, v])])], to=TensorProto.FLOAT)
            keep = g.axes("ReduceMax", keep, [2], keepdims=1)  # (B, T, 1)
            x = g.op("Mul", [x, keep])
            set_mask(g.op("Cast", [g.squeeze(keep, 2)], to=TensorProto.BOOL))
            continue
        if isinstance(layer, Dense):
            k = g.matrix(f"{layer.name}.kernel", layer.params["kernel"], axis=1)
            if layout == "vector":
                ins = [x, k] + (
                    [g.const(f"{layer.name}.bias", layer.params["bias"].astype(np.float32))]
                    if layer.use_bias
                    else []
                )
                x = g.op("Gemm", ins)
            else:
                x = g.op("MatMul", [x, k])
                if layer.use_bias:
                    x = g.op(
                        "Add",
                        [x, g.const(f"{layer.name}.bias", layer.params["bias"].astype(np.float32))],
                    )
            act = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}.get(layer.activation)
            if act:
                x = g.op(act, [x])
            elif layer.activation not in (None, "linear"):
                raise ValueError(f"to_onnx: Dense activation {layer.activation!r} is not supported")
            continue
        if getattr(layer, "return_sequences", None) is None:
            raise ValueError(
                f"to_onnx: layer {layer.name!r} ({type(layer).__name__}) has no ONNX export"
            )
        if layout == "vector":
            raise ValueError(f"to_onnx: recurrent layer {layer.name!r} needs a sequence input")
        if layout == "batch":
            x = g.op("Transpose", [x], perm=[1, 0, 2])  # (T, B, D)
            layout = "time"
        x, seq = _recurrent(g, layer, x, lens, mask_tb, streaming, state_io)
        if not seq:
            layout, lens, mask_tb = "vector", None, None
    if layout == "time":
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    g.nodes.append(helper.make_node("Identity", [x], ["y"], name="output"))
    out_dims = ["batch"] + (["time"] if layout != "vector" else []) + [int(model.output_shape[-1])]
    g.outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims))
    for name, dirs, H in state_io["inputs"]:
        g.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [dirs, "batch", H]))
    for name, src, dirs, H in state_io["outputs"]:
        g.nodes.append(helper.make_node("Identity", [src], [name], name=f"out_{name}"))
        g.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [dirs, "batch", H]))
    graph = helper.make_graph(g.nodes, model.name, g.inputs, g.outputs, g.inits)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lstmkit"
    )
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime releases of 2024+
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        from ..saving import atomic_write

        atomic_write(os.fspath(path), lambda tmp: onnx.save(proto, tmp))
    return proto
