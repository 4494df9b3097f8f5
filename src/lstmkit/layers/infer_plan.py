"""One layer's step of ``Model.predict``'s cached plan (:mod:`lstmkit.models.predict_plan`).

``step_for(layer, shape, dtype)`` gives a callable ``step(x) -> y`` for input arrays of that
exact shape and dtype (already checked by the caller: shape, dtype, and finite for the first
layer), or None when the layer has no such step. A step returns None instead of an output when
the layer changed since the step was made (the plan is then dropped). Steps run only without a
mask and have no side effects (a stateful layer gets none).

- recurrent layers (LSTM, GRU, SimpleRNN, not the LSTM variants): what ``RNNBase.infer`` does
  for a mask-free, state-free call, with its checks made once: the cell ops looked up once,
  the parameters checked by identity at each call (``set_weights`` and ``load_weights`` copy
  into the same arrays; a rebuild makes new ones), the settings that change the call (stateful,
  dtype, direction, outputs, activations) compared with those the step was made for;
- ``Dense`` and ``Bidirectional``: their own ``infer``, the graph walk around it skipped.
"""

from __future__ import annotations

import sys

import numpy as np

from .bidirectional import Bidirectional
from .core import Dense
from .recurrent import LSTM, RNNBase


def step_for(layer, shape, dtype, checked=False):
    """The step of ``layer`` for inputs of ``shape`` (batch first) and ``dtype``, or None.
    ``checked``: the caller has checked that the input is finite (else the step does)."""
    if shape is None or not layer.built or np.dtype(layer.dtype) is not dtype or 0 in shape:
        return None
    if isinstance(layer, RNNBase):
        return RecurrentStep.make(layer, shape, dtype, checked)
    if isinstance(layer, (Dense, Bidirectional)) and len(shape) >= 2:
        return InferStep(layer, shape)
    return None


def _settings(layer) -> tuple:
    """What a recurrent layer's inference depends on besides its parameters."""
    return (
        layer.stateful,
        layer.return_sequences,
        layer.return_state,
        layer.go_backwards,
        layer.use_bias,
        layer.dtype,
        layer.activation,
        layer.recurrent_activation,
        getattr(layer, "reset_after", None),
        getattr(layer, "is_variant", False),
    )


class RecurrentStep:
    __slots__ = ("checked", "dtype", "fast", "layer", "lstm", "ops", "output_shape", "settings",
                 "states", "weights")  # fmt: skip

    @classmethod
    def make(cls, layer, shape, dtype, checked):
        plain = not (layer.stateful or layer.return_state or getattr(layer, "is_variant", False))
        if not plain or len(shape) != 3 or shape[-1] != layer.input_dim:
            return None
        return cls(layer, shape, dtype, checked)

    def __init__(self, layer, shape, dtype, checked):
        B, T, _ = shape
        H = layer.units
        self.layer, self.dtype, self.checked = layer, dtype, checked
        self.settings = _settings(layer)
        self.ops = layer._ops()  # fixed while the backend is (the plan checks that)
        self.weights = layer._weights()  # kernel, recurrent kernel, bias (use_bias=False: zeros)
        self.lstm = isinstance(layer, LSTM)  # two states (h, c)
        self.states = (B, H)  # the zero initial states' shape
        self.output_shape = (B, T, H) if layer.return_sequences else (B, H)
        self.fast = self._fast_lstm((T, B, shape[2])) if self.lstm else None

    def _fast_lstm(self, shape):
        """The compiled LSTM's checks made once (``lstm_infer_plan``), when the namespace's
        ``infer`` is ``lstm_infer`` itself (not the reference, not gated by a background
        compilation, Keras' default activations)."""
        fast = sys.modules.get("lstmkit.ops.fast.lstm")
        infer = getattr(self.ops.infer, "__wrapped__", self.ops.infer)  # the workspace wrapper's
        if fast is None or infer is not fast.lstm_infer:
            return None
        layer = self.layer
        act, rec = layer.activation, layer.recurrent_activation
        return fast.lstm_infer_plan(shape, *self.weights, act, rec)

    def __call__(self, x):
        layer = self.layer
        p, (k, u, b) = layer.params, self.weights
        if (
            p["kernel"] is not k
            or p["recurrent_kernel"] is not u
            or (layer.use_bias and p["bias"] is not b)
            or _settings(layer) != self.settings
        ):
            return None
        if not self.checked and not np.isfinite(x).all():
            return None  # the general path raises the layer's error
        xt = x.transpose(1, 0, 2)  # (T, B, D) time-major, as RNNBase._run
        if layer.go_backwards:
            xt = xt[::-1]
        h0 = np.zeros(self.states, self.dtype)
        if self.fast is not None:
            hs, (h, _) = self.fast(xt, h0, np.zeros(self.states, self.dtype))
        elif self.lstm:
            hs, (h, _) = self.ops.infer(xt, h0, np.zeros(self.states, self.dtype), k, u, b, None)
        else:
            hs, h = self.ops.infer(xt, h0, k, u, b, None)
        return hs.transpose(1, 0, 2) if layer.return_sequences else h


class InferStep:
    """A layer's own ``infer`` (it checks its input itself)."""

    __slots__ = ("layer", "output_shape")

    def __init__(self, layer, shape):
        self.layer = layer
        out = layer.compute_output_shape(tuple(shape[1:]))
        self.output_shape = (shape[0], *out) if isinstance(out, tuple) else None

    def __call__(self, x):
        return self.layer.infer(x)
