"""``lstmkit export {onnx,lstmkit,torch,keras} MODEL OUT``: write a saved lstmkit model for another
runtime.

    lstmkit export onnx model.lstmkit model.onnx [--opset 17] [--streaming] [--check]
                                                 [--quantize int8]
    lstmkit export lstmkit model.lstmkit small.lstmkit --quantize int8   # for lstmkit.runtime
    lstmkit export torch model.lstmkit weights.safetensors      # or .pt; torch state-dict keys
    lstmkit export keras model.lstmkit model.keras

The parsers only translate arguments into calls of :mod:`lstmkit.interop`.
"""

from __future__ import annotations

import argparse
import os

from .. import _optional
from ._args import Parser, int_at_least


def register(parser: argparse.ArgumentParser) -> None:
    # the newest opset depends on the installed onnx package; to_onnx checks that end
    from ..interop.onnx import OPSET_MIN  # (imports onnx only when a graph is built)

    sub = parser.add_subparsers(dest="target", metavar="FORMAT", required=True, parser_class=Parser)

    p = sub.add_parser("onnx", help="ONNX graph with the standard LSTM/GRU/RNN operators")
    p.add_argument("model", help="lstmkit model file (written by model.save)")
    p.add_argument("out", help="output .onnx file")
    p.add_argument("--opset", type=int_at_least(OPSET_MIN), default=17,
                   help=f"ONNX opset (>= {OPSET_MIN}; default 17)")  # fmt: skip
    p.add_argument(
        "--streaming",
        action="store_true",
        help="add <layer>.h0/.c0 state inputs and <layer>.h/.c outputs for step-by-step use",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run the graph in onnxruntime on random input and compare with lstmkit",
    )
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="store the weight matrices as int8 with one scale per output channel "
        "(DequantizeLinear; about 4x smaller; see docs/deploy.md)",
    )
    p.set_defaults(func=_onnx, reads=("model",), writes=("out",))

    p = sub.add_parser(
        "lstmkit", help="lstmkit model file for lstmkit.runtime, weights quantised (no optimizer)"
    )
    p.add_argument("model", help="lstmkit model file")
    p.add_argument("out", help="output model file (runtime.load and load_model read it)")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        required=True,
        help="int8 weight matrices with one scale per output channel (about 4x smaller)",
    )
    p.set_defaults(func=_lstmkit, reads=("model",), writes=("out",))

    p = sub.add_parser("torch", help="PyTorch state dict (.safetensors needs no torch; or .pt)")
    p.add_argument("model", help="lstmkit model file")
    p.add_argument("out", help="output .safetensors / .pt / .pth file")
    p.set_defaults(func=_torch, reads=("model",), writes=("out",))

    p = sub.add_parser("keras", help="Keras 3 .keras file (needs keras and a backend)")
    p.add_argument("model", help="lstmkit model file")
    p.add_argument("out", help="output .keras file")
    p.set_defaults(func=_keras, reads=("model",), writes=("out",))


def _load(path):
    from ..saving import load_model

    return load_model(path, compile=False)


def _onnx(args) -> int:
    # missing extras are reported before any work (MissingExtraError: one line, exit 2)
    _optional.require("onnx", "lstmkit export onnx")
    if args.check:
        _optional.require("onnxruntime", "lstmkit export onnx --check")
    from ..interop.onnx import to_onnx

    model = _load(args.model)
    to_onnx(model, args.out, opset=args.opset, streaming=args.streaming, quantize=args.quantize)
    print(f"wrote {args.out} (opset {args.opset}{', int8 weights' if args.quantize else ''})")
    if args.check:
        if args.quantize:  # the reference is the model on the int8 weights, as runtime.load has
            float_out = _dequantized(model)
        diff = _check_onnx(model, args.out, args.streaming, exact=bool(args.quantize))
        print(f"onnxruntime vs lstmkit on random input: max abs diff {diff:.3g}")
        if args.quantize:
            print(f"int8 vs float weights on the same input: max abs diff {float_out:.3g}")
        if not diff <= 1e-4:
            print("error: the exported graph does not reproduce the model")
            return 1
    return 0


def _check_input(model):
    import numpy as np

    from ..layers import Embedding

    rng = np.random.default_rng(0)
    T = model.input_shape[1] or 8
    first = model.layers[0]
    if isinstance(first, Embedding):
        return rng.integers(1, first.input_dim, size=(3, T))
    return rng.standard_normal((3, T) + tuple(model.input_shape[2:])).astype(np.float32)


def _dequantized(model) -> float:
    """Put the int8-then-float weights into ``model`` (as ``runtime.load`` of a quantised file
    has them); returns how far its output moved on the check input."""
    import numpy as np

    from ..quantize import dequantize_array, quantize_model

    x = _check_input(model)
    before = model.predict(x)
    q = quantize_model(model)
    for name, w in model.params.items():
        if f"{name}.scale" in q:
            w[...] = dequantize_array(q[name], q[f"{name}.scale"], w.dtype)
    return float(np.abs(model.predict(x) - before).max())


def _check_onnx(model, path, streaming, exact=False) -> float:
    """Max abs difference of onnxruntime's output and ``model.predict`` on random input.
    ``exact`` turns off onnxruntime's fusions beyond the basic ones: with them, a
    DequantizeLinear + MatMul becomes MatMulNBits, which also rounds the activations to int8."""
    import numpy as np

    ort = _optional.require("onnxruntime", "lstmkit export onnx --check")

    x = _check_input(model)
    opts = ort.SessionOptions()
    if exact:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feeds = {"x": x}
    for i in sess.get_inputs()[1:]:  # streaming state inputs start at zero
        feeds[i.name] = np.zeros([3 if d == "batch" else d for d in i.shape], np.float32)
    y = sess.run(["y"], feeds)[0]
    return float(np.abs(y - model.predict(x)).max())


def _lstmkit(args) -> int:
    from ..quantize import save_quantized

    save_quantized(_load(args.model), args.out)
    print(f"wrote {args.out} (int8 weights)")
    return 0


def _torch(args) -> int:
    if args.out.endswith((".pt", ".pth", ".bin")):  # .safetensors is written without torch
        _optional.require("torch", f"lstmkit export torch to {os.path.splitext(args.out)[1]}")
    from ..interop.torch import save_state_dict_file

    save_state_dict_file(_load(args.model), args.out)
    print(f"wrote {args.out}")
    return 0


def _keras(args) -> int:
    _optional.keras("lstmkit export keras")
    from ..interop.keras import save_keras

    save_keras(_load(args.model), args.out)
    print(f"wrote {args.out}")
    return 0
