"""int8 weights with one symmetric scale per output channel, for small devices.

Public names::

    quantize_model(model) -> {name: array}       # the weights of a quantised model file
    save_quantized(model, path)                  # that file (loads with runtime.load)

The scheme, for every matrix parameter (a role named ``kernel``, ``recurrent_kernel`` or
``embeddings`` with two or more axes: LSTM/GRU/SimpleRNN ``kernel (D, G*H)`` and
``recurrent_kernel (H, G*H)``, Dense ``kernel (D, units)``, Conv1D ``kernel (k, C, filters)``,
Embedding ``embeddings (V, E)``, Bidirectional ``forward.kernel`` ...), column ``j`` (the last
axis: one output channel, one gate unit) gets::

    scale[j] = max_i |w[i, j]| / 127          (1 where the column is all zero)
    q[i, j]  = round(w[i, j] / scale[j])      in [-127, 127], int8, round half to even
    w'[i, j] = q[i, j] * scale[j]             |w' - w| <= scale[j] / 2

Biases, peepholes, normalisation parameters and every vector stay in the model's float dtype.
A file stores ``weights/<name>`` as ``I8`` and ``weights/<name>.scale`` ``(channels,)`` in the
model's dtype, and says ``"quantization": "int8-per-channel"`` in its metadata;
:func:`lstmkit.saving.read_model_file` (hence ``runtime.load`` and ``load_model``) checks the
int8 tensors, their scales (finite, > 0, one per channel) and dequantises at load. NumPy has no
int8 matrix product, so the gain is the file (about 4x smaller); inference runs on the
dequantised float weights at the float model's speed (``benchmarks/quantize_report.py`` compares
with dequantising per product, which keeps int8 in memory and is slower).

NumPy only (the runtime imports this module).
"""

from __future__ import annotations

import json

import numpy as np

#: the value of ``"quantization"`` in a quantised file's metadata
SCHEME = "int8-per-channel"
#: parameter roles (the last dotted part of a name) that are quantised when they are matrices
ROLES = ("kernel", "recurrent_kernel", "embeddings")
#: the int8 range used: symmetric, so -128 never occurs
QMAX = 127

__all__ = [
    "QMAX",
    "ROLES",
    "SCHEME",
    "dequantize_array",
    "is_quantized",
    "quantize_array",
    "quantize_model",
    "save_quantized",
]


def is_quantized(name: str, shape) -> bool:
    """Whether the parameter ``name`` (``"<layer>.<role>"``) of ``shape`` is stored as int8."""
    return name.rpartition(".")[2] in ROLES and len(shape) >= 2


def quantize_array(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q int8 like w, scale (w.shape[-1],) in w's dtype)`` with one scale per last-axis
    column (module docstring)."""
    w = np.asarray(w)
    if w.ndim < 2 or w.dtype.kind != "f":
        raise ValueError(
            f"quantize_array: argument 'w' must be a float array with 2 or more axes; got "
            f"{w.dtype} {w.shape}"
        )
    if not np.isfinite(w).all():
        raise ValueError("quantize_array: argument 'w' contains NaN or Inf")
    peak = np.abs(w).reshape(-1, w.shape[-1]).max(axis=0, initial=0.0)  # (channels,)
    scale = np.where(peak > 0, peak / QMAX, 1.0).astype(w.dtype)
    q = np.clip(np.rint(w / scale), -QMAX, QMAX).astype(np.int8)
    return q, scale


def dequantize_array(q: np.ndarray, scale: np.ndarray, dtype) -> np.ndarray:
    """``q * scale`` in ``dtype`` (a fresh C-contiguous array)."""
    return np.ascontiguousarray(q.astype(dtype) * scale.astype(dtype, copy=False))


def quantize_model(model) -> dict:
    """The weights of ``model`` as a quantised file holds them: ``{name: int8 array,
    name + ".scale": scale}`` for the matrices, ``{name: float array}`` for the rest."""
    if not model.built:
        raise ValueError(f"quantize_model: {model.name!r} has not been built; nothing to quantise")
    out = {}
    for name, w in model.params.items():
        if is_quantized(name, w.shape):
            out[name], out[f"{name}.scale"] = quantize_array(w)
        else:
            out[name] = np.ascontiguousarray(w)
    return out


def save_quantized(model, path):
    """Write ``model`` as a quantised model file (weights only: no optimizer state, no
    compile settings), atomically; :func:`lstmkit.runtime.load` reads it."""
    from . import saving
    from ._atomic import atomic_write

    try:
        from safetensors.numpy import save_file
    except ImportError:  # core install: same bytes, NumPy only
        from ._safetensors_np import save_file

    if not model.built:
        raise ValueError(f"save_quantized: {model.name!r} has not been built; nothing to save")
    tensors = {f"weights/{k}": v for k, v in quantize_model(model).items()}
    meta = {
        "format": saving.FORMAT,
        "format_version": saving.FORMAT_VERSION,
        "quantization": SCHEME,
        "model": json.dumps({"class_name": type(model).__name__, "config": model.get_config()}),
        "compile": json.dumps(None),
        "metadata": json.dumps(getattr(model, "metadata", {}) or {}),
    }
    saving._check_finite(tensors, str(path))
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


# -- reading (called by lstmkit._modelfile) -----------------------------------------------------
def expected_weights(weights: dict) -> dict:
    """The header a quantised file must declare, from the float architecture's
    ``{name: (shape, dtype)}``: int8 matrices plus their ``.scale`` vectors."""
    out = {}
    for name, (shape, dtype) in weights.items():
        if is_quantized(name, shape):
            out[name] = (shape, np.dtype(np.int8))
            out[f"{name}.scale"] = ((shape[-1],), dtype)
        else:
            out[name] = (shape, dtype)
    return out


def dequantize_weights(source, tensors: dict, prefix="weights/") -> dict:
    """Float weights from a quantised file's tensors (shapes and dtypes already checked
    against the architecture): every scale must be finite and > 0 and every int8 value in
    [-127, 127]; all problems are listed in one ``ModelFileError``."""
    from .saving import ModelFileError

    problems, out = [], dict(tensors)
    for key, scale in tensors.items():
        if not (key.startswith(prefix) and key.endswith(".scale")):
            continue
        name = key[: -len(".scale")]
        q = tensors[name]
        bad = int(np.count_nonzero(~(np.isfinite(scale) & (scale > 0))))
        if bad:
            problems.append(f"{key[len(prefix) :]}: {bad} scales are not finite and > 0")
        if q.size and int(q.min()) < -QMAX:
            problems.append(f"{name[len(prefix) :]}: int8 value {int(q.min())} outside [-127, 127]")
        if not problems:
            out[name] = dequantize_array(q, scale, scale.dtype)
        del out[key]
    if problems:
        raise ModelFileError(f"{source}: invalid quantised weights: " + "; ".join(problems))
    return out
