"""Inference of a saved lstmkit model with NumPy alone: ``load``, ``predict``, ``step``, ``reset``.

::

    from lstmkit import runtime
    rt = runtime.load("model.lstmkit")
    y = rt.predict(x)                      # == Sequential.predict(x)
    for x_t in stream:                     # x_t (batch, features)
        y_t, _ = rt.step(x_t)              # carries the state between calls
    rt.reset()                             # start a new stream (and clear stateful layers)

What is imported: NumPy, the standard library, ``lstmkit.layers`` and ``lstmkit.ops`` (the same
step/forward functions the full model runs, so the numbers are the same by construction) and
:mod:`lstmkit._safetensors_np` to read the file. Not imported: the trainer
(``lstmkit.models``, losses, optimizers, callbacks), the safetensors package, tqdm, matplotlib,
torch, onnx. ``tests/test_runtime.py`` checks this in a fresh interpreter.

The cell functions come from the active ops backend (``LSTMKIT_BACKEND``, see
:mod:`lstmkit.ops.backend`), as for the full model, so both give the same numbers. With numba
installed the default ``auto`` picks the compiled cells: faster steps, but importing numba costs
about a second and ~120 MB. ``LSTMKIT_BACKEND=numpy`` keeps an inference process at NumPy alone
(~40 MB peak RSS for a small model; ``benchmarks/bench_streaming.py`` measures it).

The file is validated as strictly as :func:`lstmkit.saving.load_model` validates it, by the same
code (:mod:`lstmkit._modelfile`), before anything is allocated: the safetensors header (offsets,
dtypes, sizes against the file's size, JSON size and depth), the lstmkit format and version, the
values in the architecture and metadata, and every weight key, shape and dtype against the
architecture, with all mismatches listed in one error.
"""

from __future__ import annotations

import os

import numpy as np

from . import saving
from .layers import Bidirectional, Embedding, Masking, deserialize
from .layers.base import fmt_shape, skip_initializers

__all__ = ["RuntimeModel", "load"]

#: layers that need the whole sequence at once: a backward direction, a mask over all steps
_WHOLE_SEQUENCE = (Bidirectional, Masking)


class RuntimeModel:
    """A loaded model for inference: the layers of the saved ``Sequential`` and nothing else."""

    def __init__(self, layers, input_shape, name="model", metadata=None):
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        self.name = name
        self.metadata = metadata or {}
        self.state = None  # the carried streaming state: one entry per layer
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            shape = shape[0] if isinstance(shape, list) else shape
        self.output_shape = shape

    @property
    def params(self) -> dict:
        """Dotted name -> parameter array, as in ``Sequential.params``."""
        return {f"{la.name}.{r}": p for la in self.layers for r, p in la.params.items()}

    def _check(self, x, expected, arg):
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        ok = x.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
        if not ok:
            raise ValueError(
                f"{self.name}: argument '{arg}' must have shape {fmt_shape(expected)}; got {x.shape}"
            )
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{self.name}: argument '{arg}' contains NaN or Inf")
        return x

    def predict(self, x, mask=None, batch_size=None):
        """Outputs for ``x (batch,) + input_shape`` (token ids for an Embedding model).

        Equals ``Sequential.predict``; stateful layers carry their state from one call to the
        next (see :meth:`reset`). ``batch_size`` splits a large batch to bound memory.
        """
        x = self._check(x, (None,) + self.input_shape, "x")
        if batch_size is not None and len(x) > batch_size:
            parts = [
                self.predict(
                    x[i : i + batch_size], None if mask is None else mask[i : i + batch_size]
                )
                for i in range(0, len(x), batch_size)
            ]
            if isinstance(parts[0], list):
                return [np.concatenate(p) for p in zip(*parts)]
            return np.concatenate(parts)
        for layer in self.layers:
            y, _ = layer.forward(x, mask=mask)  # the cache is dropped at once
            mask = layer.compute_mask(x, mask)
            x = y
        return x

    def step(self, x_t, state=None):
        """Feed one time step ``x_t (batch, features)`` (ids ``(batch,)`` for an Embedding model).

        Returns ``(y_t, state)``. With ``state=None`` the model continues from the state it
        carries (zeros after :func:`load` or :meth:`reset`); passing a state returned earlier
        resumes from it. The returned state is also kept as the carried one. Equal to
        ``Sequential.step`` and to the full-sequence forward at every step.
        """
        for layer in self.layers:
            if type(layer) in _WHOLE_SEQUENCE:
                raise ValueError(
                    f"{self.name}.step: layer {layer.name!r} ({type(layer).__name__}) needs the "
                    "whole sequence and cannot stream"
                )
        per_step = self.input_shape[1:]
        x = self._check(x_t, (None,) + per_step, "x_t")
        if not isinstance(self.layers[0], Embedding):
            x = x.astype(self.layers[0].dtype, copy=False)
        state = self.state if state is None else state
        state = list(state) if state is not None else [None] * len(self.layers)
        if len(state) != len(self.layers):
            raise ValueError(
                f"{self.name}.step: argument 'state' must have one entry per layer "
                f"({len(self.layers)}); got {len(state)}"
            )
        new = []
        for layer, s in zip(self.layers, state):
            if hasattr(layer, "step"):
                x, s = layer.step(x, s)  # lstmkit.ops.<cell>_step
            else:
                x, _ = layer.forward(x)
            new.append(s)
        self.state = new
        return x, new

    def reset(self):
        """Forget the carried streaming state and every stateful layer's state."""
        self.state = None
        for layer in self.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    def __repr__(self):
        names = ", ".join(f"{type(la).__name__}" for la in self.layers)
        return f"<RuntimeModel {self.name!r}: {names}>"


def load(path) -> RuntimeModel:
    """Read a model file written by ``Sequential.save`` (the optimizer state is ignored).

    The file is checked whole before any layer is built (:func:`lstmkit.saving.read_model_file`);
    the build runs no initializer and draws nothing from the global RNG."""
    path = os.fspath(path)
    parsed, tensors = saving.read_model_file(path, "runtime.load", ("weights/",))
    config = parsed["model"]["config"]
    weights = {k[len("weights/") :]: v for k, v in tensors.items() if k.startswith("weights/")}
    try:
        layers = [deserialize(lc) for lc in config["layers"]]
        input_shape = tuple(layers[0].input_shape or config["input_shape"])  # as Sequential
        shape, rng = input_shape, np.random.default_rng(0)  # never drawn from; not the global
        with skip_initializers(max_bytes=sum(v.nbytes for v in weights.values())):
            for layer in layers:
                layer.build(shape, rng, config.get("dtype"))
                shape = layer.compute_output_shape(shape)
                shape = shape[0] if isinstance(shape, list) else shape
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as e:
        raise saving.ModelFileError(f"runtime.load: {path!r}: invalid architecture: {e}") from None
    model = RuntimeModel(layers, input_shape, config.get("name", "model"), parsed["metadata"])
    saving.assign_params(model.params, weights, source=repr(path))
    return model
