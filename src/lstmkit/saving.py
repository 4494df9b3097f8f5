"""Model files: one safetensors file holding the architecture (JSON), weights and optimizer state.

Layout (``.lstmkit`` by convention; any name works)::

    header metadata  "format": "lstmkit", "format_version": "1",
                     "model": JSON model config, "compile": JSON (loss, metrics, optimizer config,
                     seed), "metadata": JSON app facts (scalers, vocabularies ...)
    tensors          "weights/<layer>.<role>"        every parameter
                     "optimizer/<slot>/<layer>.<role>" and "optimizer/iterations"

A quantised file (:mod:`lstmkit.quantize`) also says ``"quantization": "int8-per-channel"`` in
the header metadata and stores each weight matrix as ``weights/<layer>.<role>`` int8 plus
``weights/<layer>.<role>.scale`` (one per output channel); :func:`read_model_file` checks and
dequantises them, so every reader below gets float weights.

Why safetensors: the format is a JSON header plus raw little-endian buffers, so a hostile file can
at worst be rejected; nothing is ever unpickled. Writes go to a temporary file in the target's
directory and are renamed into place, so a crash mid-save never leaves a broken model and a
failed save never destroys the previous file. A file loads only when every weight key and shape
matches the architecture, and the error lists every mismatch at once.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ._atomic import atomic_write

FORMAT = "lstmkit"
FORMAT_VERSION = "1"


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, truncated, hostile or does not match."""


class NonFiniteWeightsError(ValueError):
    """``save_model`` refused a model holding NaN or Inf: training diverged."""


def _first_non_finite(tensors):
    """``(name, bad count, size)`` of the first tensor holding NaN or Inf, else ``None``."""
    for key, v in tensors.items():
        bad = int(np.count_nonzero(~np.isfinite(v))) if v.dtype.kind in "fc" else 0
        if bad:
            return key, bad, v.size
    return None


def _check_finite(tensors, path):
    # weights first, then optimizer slots: the message names the first bad tensor in that order;
    # load_model rejects such a file anyway, so writing it would only destroy the previous one
    found = _first_non_finite(tensors)
    if found:
        key, bad, size = found
        name = key.removeprefix("weights/")
        what = f"parameter '{name}'" if name != key else f"optimizer state '{key}'"
        kept = "; the existing file is left as it was" if os.path.lexists(path) else ""
        raise NonFiniteWeightsError(
            f"save_model: training diverged: {what} has {bad} NaN or Inf values of {size}; "
            f"refusing to write {path!r}{kept}"
        )


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` atomically; refuses (``NonFiniteWeightsError``) a model whose
    weights or optimizer state hold NaN or Inf."""
    try:
        from safetensors.numpy import save_file
    except ImportError:  # core install without the apps extra: same bytes, NumPy only
        from ._safetensors_np import save_file

    if not model.built:
        raise ValueError(f"{model.name}.save: the model has not been built; nothing to save")
    # np.asarray(order="C"), not np.ascontiguousarray: that makes a 0-d parameter (Attention's
    # scale) shape (1,)
    tensors = {f"weights/{k}": np.asarray(v, order="C") for k, v in model.params.items()}
    compile_cfg = None
    if getattr(model, "compiled", False):
        from . import losses, optimizers

        if hasattr(model, "get_compile_config"):
            compile_cfg = model.get_compile_config()
        else:
            compile_cfg = {
                "optimizer": optimizers.serialize(model.optimizer),
                "loss": losses.serialize(model.loss),
                "metrics": [name for name, _ in model.metrics],
                "seed": model.seed,
                "epoch": getattr(model, "_epoch", 0),
            }
        if include_optimizer:
            for k, v in model.optimizer.get_state().items():
                # np.array, not np.ascontiguousarray: the latter turns the 0-d "iterations"
                # into shape (1,), which set_state then rejects
                tensors[f"optimizer/{k}"] = np.array(v, order="C")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": json.dumps({"class_name": type(model).__name__, "config": model.get_config()}),
        "compile": json.dumps(compile_cfg),
        "metadata": json.dumps(getattr(model, "metadata", {}) or {}),
    }
    _check_finite(tensors, os.fspath(path))
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_model_file(path, who="load_model", tensors=("weights/", "optimizer/")):
    """Read and validate a model file -> ``(meta dict, tensors dict)``; never unpickles.

    Everything the header declares is checked before any tensor is read: sizes against the
    file's size, the JSON's size and depth, the values of the architecture, compile settings
    and metadata, and the shape and dtype of every weight against the architecture
    (:mod:`lstmkit._modelfile`). Only the tensors whose names start with one of ``tensors``
    are read. ``who`` starts every error message.
    """
    from . import _modelfile

    mf = _modelfile.open_model_file(path, who)
    return _modelfile.parsed(mf), _modelfile.read_tensors(mf, tensors)


#: model class name (as saved) -> class; ``lstmkit.models`` registers Sequential and Model
_MODEL_CLASSES: dict = {}


def register_model(name, cls):
    """Make ``load_model`` build files whose architecture names ``name`` with ``cls.from_config``."""
    _MODEL_CLASSES[name] = cls


def _model_class(name, path):
    if not _MODEL_CLASSES:
        import importlib

        importlib.import_module("lstmkit.models")  # its classes register themselves
    if name not in _MODEL_CLASSES:
        raise ModelFileError(
            f"load_model: {path!r}: unsupported model class {name!r:.100}; expected one of "
            f"{sorted(_MODEL_CLASSES)}"
        )
    return _MODEL_CLASSES[name]


def load_model(path, compile=True):
    """Load a model saved with ``model.save``; with ``compile`` restores the optimizer state.

    The file is checked whole before the model is built (:func:`read_model_file`); the build
    runs no initializer, since the file's values replace the initial ones at once."""
    from .layers.base import skip_initializers

    source = repr(os.fspath(path))
    parsed, tensors = read_model_file(
        path, "load_model", ("weights/", "optimizer/") if compile else ("weights/",)
    )
    weights = {k[len("weights/") :]: v for k, v in tensors.items() if k.startswith("weights/")}
    try:  # the checks derived the same shapes; the budget holds even if a layer disagrees
        cls = _model_class(parsed["model"].get("class_name"), path)
        with skip_initializers(max_bytes=sum(v.nbytes for v in weights.values())):
            model = cls.from_config(parsed["model"]["config"])
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as e:
        raise ModelFileError(f"load_model: {source}: invalid architecture: {e}") from None
    if not model.built:
        raise ModelFileError(f"load_model: {source}: the architecture has no input shape")
    assign_params(model.params, weights, source=source)
    model.metadata = parsed.get("metadata") or {}
    comp = parsed.get("compile")
    if compile and comp:
        _restore_compile(model, comp, tensors, source)
    return model


def _restore_compile(model, comp, tensors, source):
    try:
        model.compile(
            optimizer=comp["optimizer"],
            loss=comp["loss"],
            metrics=comp.get("metrics"),
            seed=comp.get("seed"),
            loss_weights=comp.get("loss_weights"),
        )
        model._epoch = int(comp.get("epoch", 0))
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as e:
        raise ModelFileError(f"load_model: {source}: invalid compile settings: {e}") from None
    opt_state = {
        k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")
    }
    if opt_state:
        _check_optimizer_state(model.params, opt_state, source)
        try:
            model.optimizer.set_state(opt_state)
        except ValueError as e:
            raise ModelFileError(f"load_model: {source}: invalid optimizer state: {e}") from None


def _check_optimizer_state(params, state, source):
    # each slot "<slot>/<param>" must belong to a parameter and have its shape, or the next
    # update would fail (or broadcast) far from the file that caused it
    problems = []
    for k, v in sorted(state.items()):
        if k == "iterations":
            continue
        name = k.partition("/")[2]
        if name not in params:
            problems.append(f"unexpected optimizer/{k}")
        elif np.shape(v) != params[name].shape:
            problems.append(
                f"optimizer/{k}: expected shape {params[name].shape}, got {np.shape(v)}"
            )
        elif not np.isfinite(v).all():
            problems.append(f"optimizer/{k}: contains NaN or Inf")
    if problems:
        raise ModelFileError(
            f"{source}: optimizer state does not match the model: " + "; ".join(problems)
        )


def load_weights(model, path):
    """Copy the weights in a model file into ``model.params`` (the optimizer state in the file is
    ignored); every key and shape must match.

    Layers are matched by position, as Keras 3's ``load_weights`` matches by structure: the file's
    layer names (from its architecture JSON) are renamed to ``model``'s, so a freshly built copy
    of the architecture, whose automatic names differ (``lstm_3`` vs ``lstm``), loads the file.
    """
    parsed, tensors = read_model_file(path, "load_weights", ("weights/",))
    weights = {k[len("weights/") :]: v for k, v in tensors.items() if k.startswith("weights/")}
    spec = parsed.get("model")
    try:
        file_names = [lc["config"]["name"] for lc in spec["config"]["layers"]]
    except (TypeError, KeyError):
        file_names = None
    if file_names is not None and len(file_names) == len(model.layers):
        rename = {old: layer.name for old, layer in zip(file_names, model.layers)}
        renamed = {}
        for k, v in weights.items():
            layer, _, role = k.partition(".")
            renamed[f"{rename.get(layer, layer)}.{role}"] = v
        weights = renamed
    assign_params(model.params, weights, source=repr(os.fspath(path)))


def assign_params(params: dict, arrays: dict, source="weights"):
    """Copy ``arrays`` into ``params`` only if every key and shape matches; else list all
    mismatches in one error (nothing is changed)."""
    problems = []
    for k in sorted(set(params) - set(arrays)):
        problems.append(f"missing {k} {params[k].shape}")
    for k in sorted(set(arrays) - set(params)):
        problems.append(f"unexpected {k} {np.shape(arrays[k])}")
    for k in sorted(set(params) & set(arrays)):
        if np.shape(arrays[k]) != params[k].shape:
            problems.append(f"{k}: expected shape {params[k].shape}, got {np.shape(arrays[k])}")
        elif not np.isfinite(arrays[k]).all():
            problems.append(f"{k}: contains NaN or Inf")
    if problems:
        raise ModelFileError(f"{source}: weights do not match the model: " + "; ".join(problems))
    for k, v in arrays.items():
        params[k][...] = v
