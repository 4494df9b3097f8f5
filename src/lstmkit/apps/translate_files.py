"""Translator model files: the lstmkit safetensors layout (``lstmkit.saving``) with
``{"class_name": "Translator", "config": {...}}`` as the architecture and the caller's
``metadata`` (tokenizers as JSON strings, training facts) as the metadata JSON.

Written atomically, refused when a weight is NaN or Inf (the previous file stays); read with
every size, key, shape and dtype checked against the architecture before a tensor is read.
Never pickled. ``lstmkit.load_model`` refuses these files ("unsupported model description"), and
:func:`load_translator` refuses any other lstmkit model.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import _modelfile
from .. import _safetensors_np as stnp
from .._atomic import atomic_write
from ..saving import FORMAT, FORMAT_VERSION, ModelFileError, _check_finite
from .translate_model import Translator, TranslatorConfig, param_shapes

CLASS_NAME = "Translator"


def save_translator(model: Translator, path, metadata: dict | None = None) -> None:
    """Write ``model`` (and ``metadata``, default ``model.metadata``) to ``path`` atomically."""
    tensors = {f"weights/{k}": np.ascontiguousarray(v) for k, v in model.params.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": json.dumps({"class_name": CLASS_NAME, "config": model.get_config()}),
        "compile": "null",
        "metadata": json.dumps(model.metadata if metadata is None else metadata),
    }
    _check_finite(tensors, os.fspath(path))
    atomic_write(path, lambda tmp: stnp.save_file(tensors, tmp, metadata=meta))


def load_translator(path) -> Translator:
    """Read a file written by :func:`save_translator`; ``ModelFileError`` for anything else."""
    path = os.fspath(path)
    who = "load_translator"
    if not os.path.isfile(path):
        raise ModelFileError(f"{who}: argument 'path' must be an existing file; got {path!r}")
    source = f"{who}: {path!r}"
    try:
        header = stnp.read_header(path, _modelfile.MAX_HEADER, _modelfile.MAX_DEPTH)
    except stnp.SafetensorsError as e:
        raise ModelFileError(f"{source} is corrupt or truncated: {e}") from None
    texts = _modelfile._lstmkit_texts(source, header.metadata)
    spec = _modelfile._json(source, "model", texts["model"])
    metadata = _modelfile._json(source, "metadata", texts["metadata"])
    if not isinstance(spec, dict) or spec.get("class_name") != CLASS_NAME:
        kind = spec.get("class_name") if isinstance(spec, dict) else None
        raise ModelFileError(
            f"{source} is not a translation model (its architecture is {kind!r:.60}); "
            "train one with 'lstmkit translate train'"
        )
    model = _build(source, spec.get("config"), header)
    tensors = _modelfile.read_tensors(_modelfile.ModelFile(source, header, spec, None, {}, {}))
    for name, p in model.params.items():
        p[...] = tensors[f"weights/{name}"]
        if not np.isfinite(p).all():
            raise ModelFileError(f"{source}: weight {name!r} holds NaN or Inf")
    model.metadata = metadata if isinstance(metadata, dict) else {}
    return model


def _build(source, config, header) -> Translator:
    """Check the architecture and the declared weights, then build the model (no tensor
    read yet; the allocation is bounded by what the file holds)."""
    try:
        cfg = TranslatorConfig.from_dict(dict(config["config"]))
        src_vocab, tgt_vocab = config["src_vocab"], config["tgt_vocab"]
        shapes = param_shapes(src_vocab, tgt_vocab, cfg)
    except (TypeError, KeyError, ValueError) as e:
        raise ModelFileError(f"{source}: invalid architecture: {e}") from None
    dtype = np.dtype(cfg.dtype)
    expected = {k: (tuple(s), dtype) for k, s in shapes.items()}
    _modelfile.check_declared_weights(source, expected, header)  # the sizes match the file
    try:
        return Translator(src_vocab, tgt_vocab, cfg)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{source}: invalid architecture: {e}") from None


def is_translator(path) -> bool:
    """Whether the file's header names a ``Translator`` architecture (only the header is read;
    any unreadable file is False, and the loader of the other models says what is wrong)."""
    try:
        header = stnp.read_header(os.fspath(path), _modelfile.MAX_HEADER, _modelfile.MAX_DEPTH)
        spec = json.loads((header.metadata or {}).get("model", "null"))
    except (stnp.SafetensorsError, OSError, ValueError, TypeError, AttributeError):
        return False
    return isinstance(spec, dict) and spec.get("class_name") == CLASS_NAME
