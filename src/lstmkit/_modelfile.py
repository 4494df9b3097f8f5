"""Reading a model file without trusting it: every size is checked before anything is allocated.

The order (:func:`open_model_file`), each step refusing with one :class:`ModelFileError`:

1. the safetensors header alone: at most :data:`MAX_HEADER` bytes (and never more than the
   file), at most :data:`MAX_DEPTH` deep (counted without recursion before ``json.loads``),
   every tensor's dtype, shape and offsets consistent, the tensors tiling the file exactly;
2. the lstmkit tag and version, then the three JSON texts inside ``__metadata__`` (``model``,
   ``compile``, ``metadata``) under the same size and depth limits;
3. the values in them, by type and range (:mod:`lstmkit._meta`);
4. the shape and dtype of every parameter, derived from the architecture without allocating
   (:meth:`lstmkit.layers.Layer.shape_only_copy`, layer after layer as ``Sequential.build``
   goes), against what the header declares: all mismatches in one error. Since the declared
   tensors tile the file, a model that passes is never larger than the file.

Only then :func:`read_tensors` reads the tensors (memory: their size) and the caller builds the
model (with :func:`lstmkit.layers.base.skip_initializers`: the file's values replace the
initial ones at once). NumPy-only: the runtime reads files through this module.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

from . import _meta
from . import _safetensors_np as stnp
from .saving import FORMAT, FORMAT_VERSION, ModelFileError

#: the largest JSON header read (a word vocabulary of 100,000 tokens takes about 1.5 MB)
MAX_HEADER = 16 * 2**20
#: the deepest JSON nesting read (a Bidirectional layer's config nests 7 deep)
MAX_DEPTH = 64
#: how many problems one error lists before "... and N more"
MAX_LISTED = 20
#: exceptions a layer's constructor or ``build`` raises for a bad config (anything else is a bug)
CONFIG_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError)


class ModelFile(NamedTuple):
    """A model file whose header passed every check; no tensor has been read yet."""

    source: str  # "load_model: 'path'", the prefix of every error about it
    header: stnp.Header
    spec: dict | None  # the architecture JSON
    compile: dict | None
    metadata: dict
    weights: dict  # "<layer>.<role>" -> (shape, np.dtype), derived from the architecture
    quantization: str | None = None  # lstmkit.quantize.SCHEME for an int8 file


def open_model_file(path, who="load_model") -> ModelFile:
    """Check everything the file declares (module docstring, steps 1-4)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{who}: argument 'path' must be an existing file; got {path!r}")
    source = f"{who}: {path!r}"
    try:
        header = stnp.read_header(path, MAX_HEADER, MAX_DEPTH)
    except stnp.SafetensorsError as e:
        raise ModelFileError(f"{source} is corrupt or truncated: {e}") from None
    texts = _lstmkit_texts(source, header.metadata)
    spec = _json(source, "model", texts["model"])
    comp = _meta.check_compile(source, _json(source, "compile", texts["compile"]))
    metadata = _json(source, "metadata", texts["metadata"])
    _meta.check_model_spec(source, spec)
    weights, arch = architecture_weights(source, spec["config"], spec.get("class_name"))
    quantization = _quantization(source, header.metadata)
    if quantization is not None:  # int8 matrices and their scales in place of float ones
        from . import quantize

        check_declared_weights(source, quantize.expected_weights(weights), header)
    else:
        check_declared_weights(source, weights, header)
    metadata = _meta.check_metadata(source, metadata, arch)
    return ModelFile(source, header, spec, comp, metadata, weights, quantization)


def _quantization(source, meta):
    """``None`` for a float file, else the (only) known scheme, ``"int8-per-channel"``."""
    from .quantize import SCHEME

    value = meta.get("quantization")
    if value is not None and value != SCHEME:
        raise ModelFileError(
            f"{source}: unsupported quantization {value!r:.40}; this lstmkit reads {SCHEME!r}"
        )
    return value


def _lstmkit_texts(source, meta) -> dict:
    if meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{source} is not an lstmkit model file (format {meta.get('format')!r:.40})"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{source} has format version {meta.get('format_version')!r:.40}; "
            f"this lstmkit reads version {FORMAT_VERSION}"
        )
    return {key: meta.get(key, "null") for key in ("model", "compile", "metadata")}


def _json(source, key, text):
    try:
        return stnp.loads_bounded(text, f"corrupt '{key}' JSON", MAX_HEADER, MAX_DEPTH)
    except stnp.SafetensorsError as e:
        raise ModelFileError(f"{source}: {e}") from None


# -- the architecture's parameters, derived without allocating ----------------------------------
def functional_weights(source, config) -> tuple[dict, _meta.Arch]:
    """The same for a functional config: the graph is rebuilt with shape-only parameters
    (nothing allocated, no initializer run), then each layer's roles are read off."""
    from .graph.config import network_from_config
    from .graph.network import Network
    from .layers.base import ShapeOnly, _check_weight_shape, _weights_made_by

    try:
        with _weights_made_by(lambda shape, dt: ShapeOnly(_check_weight_shape(shape), dt)):
            net = Network(*network_from_config(config))
    except CONFIG_ERRORS as e:
        raise ModelFileError(f"{source}: invalid architecture: {e}") from None
    weights = {
        f"{layer.name}.{role}": (tuple(p.shape), np.dtype(p.dtype))
        for layer in net.layers
        for role, p in layer.params.items()
    }
    shape_in = tuple(net.inputs[0].shape[1:]) if net.inputs else None
    shape_out = tuple(net.outputs[0].shape[1:]) if net.outputs else None
    return weights, _meta.Arch(shape_in, shape_out, None)


def architecture_weights(source, config, class_name="Sequential") -> tuple[dict, _meta.Arch]:
    """``({"<layer>.<role>": (shape, dtype)}, Arch)`` of a (checked) ``Sequential`` config:
    each layer is built on a shape-only copy for the output shape of the one before it, as
    ``Sequential.build`` does. Nothing is allocated and no initializer runs."""
    from .layers import Embedding, deserialize

    if class_name in _meta.FUNCTIONAL:
        return functional_weights(source, config)
    try:
        layers = [deserialize(lc) for lc in config["layers"]]
    except CONFIG_ERRORS as e:
        raise ModelFileError(f"{source}: invalid architecture: {e}") from None
    # as Sequential.add does: the first layer's input_shape, else the model's
    input_shape = layers[0].input_shape if layers else None
    input_shape = config.get("input_shape") if input_shape is None else input_shape
    if input_shape is None:
        raise ModelFileError(f"{source}: the architecture has no input shape")
    shape, weights = tuple(input_shape), {}
    for i, layer in enumerate(layers):
        label = f"layer {i} ({type(layer).__name__} {layer.name!r})"
        try:
            probe = layer.shape_only_copy(shape, config.get("dtype"))
            out = probe.compute_output_shape(shape)
        except CONFIG_ERRORS as e:
            raise ModelFileError(
                f"{source}: invalid architecture: {label} cannot take input {shape}: {e}"
            ) from None
        for role, p in probe.params.items():
            weights[f"{layer.name}.{role}"] = (tuple(p.shape), np.dtype(p.dtype))
        if isinstance(out, list):  # return_state: only the output feeds the next layer
            if i != len(layers) - 1:
                raise ModelFileError(
                    f"{source}: invalid architecture: {label} returns states; only the last "
                    "layer of a Sequential model may"
                )
            out = out[0]
        shape = tuple(out)
    vocab = layers[0].input_dim if isinstance(layers[0], Embedding) else None
    return weights, _meta.Arch(tuple(input_shape), shape, vocab)


def check_declared_weights(source, expected: dict, header: stnp.Header):
    """Every ``weights/`` tensor the header declares must be one the architecture has, with
    its shape and dtype, and none may be missing; all problems are listed in one error."""
    declared = {
        e.name[len("weights/") :]: e for e in header.entries if e.name.startswith("weights/")
    }
    problems = [f"missing {k} {expected[k][0]}" for k in sorted(set(expected) - set(declared))]
    problems += [
        f"unexpected {k} {declared[k].shape}" for k in sorted(set(declared) - set(expected))
    ]
    for k in sorted(set(expected) & set(declared)):
        (shape, dtype), e = expected[k], declared[k]
        if e.shape != shape:
            problems.append(f"{k}: expected shape {shape}, got {e.shape}")
        elif stnp.DTYPES[e.dtype] != dtype:
            problems.append(f"{k}: expected dtype {_code(dtype)}, got {e.dtype}")
    if not problems:
        return
    if len(problems) > MAX_LISTED:
        problems = problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more"]
    count = sum(math.prod(s) for s, _ in expected.values())
    implied = sum(math.prod(s) * dt.itemsize for s, dt in expected.values())
    held = header.size - header.start
    size = ""
    if implied > held:
        size = (
            f" (the architecture implies {count:,} parameters, {implied:,} bytes; the file "
            f"holds {held:,} bytes of tensors)"
        )
    raise ModelFileError(f"{source}: weights do not match the model: " + "; ".join(problems) + size)


def _code(dtype) -> str:
    return next((c for c, d in stnp.DTYPES.items() if d == dtype), str(dtype))


def read_tensors(mf: ModelFile, prefixes=("weights/", "optimizer/")) -> dict:
    """The tensors whose names start with one of ``prefixes`` (only these are read); the
    weights of a quantised file come back dequantised (float, the architecture's shapes)."""
    names = {e.name for e in mf.header.entries if e.name.startswith(tuple(prefixes))}
    try:
        tensors = stnp.read_tensors(mf.header, names)
    except stnp.SafetensorsError as e:
        raise ModelFileError(f"{mf.source} is corrupt or truncated: {e}") from None
    if mf.quantization is not None:
        from . import quantize

        tensors = quantize.dequantize_weights(mf.source, tensors)
    return tensors


def parsed(mf: ModelFile) -> dict:
    """``{"model", "compile", "metadata"}`` as :func:`lstmkit.saving.read_model_file` gives."""
    return {"model": mf.spec, "compile": mf.compile, "metadata": mf.metadata}


__all__ = ["MAX_DEPTH", "MAX_HEADER", "ModelFile", "open_model_file", "parsed", "read_tensors"]
