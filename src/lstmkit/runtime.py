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

A quantised file (:func:`lstmkit.quantize.save_quantized`, ``lstmkit export lstmkit MODEL OUT
--quantize int8``: int8 weight matrices with one scale per output channel) loads the same way:
its int8 tensors and scales are checked too (dtype, shape, scales finite and > 0) and the
weights are dequantised at load, so ``predict`` runs the float kernels at the float speed and the
gain is the file, about 4x smaller (``docs/deploy.md``).
"""

from __future__ import annotations

import os

import numpy as np

from . import saving
from .graph.config import network_from_model_config
from .layers.base import fmt_shape, skip_initializers

__all__ = ["RuntimeModel", "load"]


class RuntimeModel:
    """A loaded model for inference: the saved graph (Sequential or functional) and nothing else.

    It runs on :class:`lstmkit.graph.Network`, the same core as ``Model.predict`` and
    ``Model.step``."""

    def __init__(self, network, name="model", metadata=None, structure="single"):
        self.network = network
        self.name = name
        self.metadata = metadata or {}
        self.structure = structure
        self.state = None  # the carried streaming state: one entry per node

    @property
    def layers(self):
        return [n.layer for n in self.network.nodes]

    @property
    def input_shape(self):
        """``(None, *shape)`` as in Keras (a list for several inputs)."""
        s = [t.shape for t in self.network.inputs]
        return s[0] if len(s) == 1 else s

    @property
    def output_shape(self):
        s = [t.shape for t in self.network.outputs]
        return s[0] if len(s) == 1 else s

    @property
    def params(self) -> dict:
        """Dotted name -> parameter array, as in ``Model.params``."""
        return self.network.params()

    def _inputs(self, x, arg):
        n = len(self.network.inputs)
        xs = list(x) if n > 1 else [x]
        if len(xs) != n:
            raise ValueError(f"{self.name}: argument '{arg}' must be a list of {n} arrays")
        out = []
        for i, v in enumerate(xs):
            v = v if isinstance(v, np.ndarray) else np.asarray(v)
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise ValueError(f"{self.name}: argument '{arg}' contains NaN or Inf")
            t = self.network.inputs[i]
            if v.dtype.kind == "f" and np.dtype(t.dtype).kind == "f":
                v = v.astype(t.dtype, copy=False)
            out.append(v)
        return out

    def _outputs(self, ys):
        return ys[0] if self.structure == "single" else list(ys)

    def predict(self, x, mask=None, batch_size=None):
        """Outputs for ``x (batch,) + input shape`` (token ids for an Embedding model).

        Equals ``Model.predict``; stateful layers carry their state from one call to the
        next (see :meth:`reset`). ``batch_size`` splits a large batch to bound memory."""
        xs = self.network.check_inputs(self._inputs(x, "x"), self.name)
        n = len(xs[0])
        if batch_size is not None and n > batch_size:
            parts = [
                self.predict(
                    [v[i : i + batch_size] for v in xs]
                    if len(xs) > 1
                    else xs[0][i : i + batch_size],
                    None if mask is None else mask[i : i + batch_size],
                )
                for i in range(0, n, batch_size)
            ]
            if isinstance(parts[0], list):
                return [np.concatenate(p) for p in zip(*parts)]
            return np.concatenate(parts)
        masks = None if mask is None else [mask] + [None] * (len(xs) - 1)
        ys, _, _ = self.network.run(xs, masks=masks, keep_cache=False)
        return self._outputs(ys)

    def step(self, x_t, state=None):
        """Feed one time step ``x_t (batch, features)`` (ids ``(batch,)`` for an Embedding model).

        Returns ``(y_t, state)``. With ``state=None`` the model continues from the state it
        carries (zeros after :func:`load` or :meth:`reset`); passing a state returned earlier
        resumes from it. The returned state is also kept as the carried one. Equal to
        ``Model.step`` and to the full-sequence forward at every step.
        """
        xs = self._inputs(x_t, "x_t")
        for t, v in zip(self.network.inputs, xs):
            expected = (None, *t.shape[2:])
            ok = v.ndim == len(expected) and all(
                e is None or e == s for e, s in zip(expected, v.shape)
            )
            if not ok:
                raise ValueError(
                    f"{self.name}: argument 'x_t' must have shape {fmt_shape(expected)}; got "
                    f"{v.shape}"
                )
        state = self.state if state is None else state
        if state is not None and len(state) != len(self.network.nodes):
            raise ValueError(
                f"{self.name}.step: argument 'state' must have one entry per layer "
                f"({len(self.network.nodes)}); got {len(state)}"
            )
        ys, new = self.network.step(xs, state)
        self.state = new
        return self._outputs(ys), new

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
    """Read a model file written by ``model.save`` (the optimizer state is ignored).

    The file is checked whole before any layer is built (:func:`lstmkit.saving.read_model_file`);
    the build runs no initializer and draws nothing from the global RNG."""
    path = os.fspath(path)
    parsed, tensors = saving.read_model_file(path, "runtime.load", ("weights/",))
    spec = parsed["model"]
    weights = {k[len("weights/") :]: v for k, v in tensors.items() if k.startswith("weights/")}
    try:
        rng = np.random.default_rng(0)  # never drawn from; not the global
        with skip_initializers(max_bytes=sum(v.nbytes for v in weights.values())):
            net, structure = network_from_model_config(spec, rng)
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as e:
        raise saving.ModelFileError(f"runtime.load: {path!r}: invalid architecture: {e}") from None
    name = (spec.get("config") or {}).get("name", "model")
    model = RuntimeModel(net, name, parsed["metadata"] or {}, structure)
    saving.assign_params(model.params, weights, source=repr(path))
    return model
