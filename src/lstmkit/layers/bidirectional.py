"""``Bidirectional``: one recurrent layer reading forward, a copy reading backward, outputs merged.

As in Keras: the backward copy runs with ``go_backwards=True``; its sequence output is flipped
back so step t of both directions lines up; with ``return_sequences`` both directions output
zeros at masked steps (Keras forces ``zero_output_for_mask``). Because a masked step leaves the
state alone, reading a post-padded sequence backwards from its padded end equals reading it
backwards from its last valid step: exactly what PyTorch's packed bidirectional LSTM does.

Parameters are exposed as ``forward.<role>`` and ``backward.<role>``; ``get_weights`` returns the
forward layer's weights then the backward layer's (Keras order).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ops import backend
from .base import Layer

MERGE_MODES = ("concat", "sum", "ave", "mul", None)


class BidirectionalCache(NamedTuple):
    fwd: object
    bwd: object
    # each direction's output, the backward one aligned with forward time order; with
    # merge_mode="concat", views of the merged output's halves, so that the directions' own
    # output buffers (pooled by the fast path) are free for the next layer once merged
    y_fwd: np.ndarray
    y_bwd: np.ndarray


def _backward_strided(layer, dy, cache, need_dx):
    """``RNNBase.backward_strided``; a wrapped layer without it (``CellRNN``) gives a
    contiguous dx through ``backward_with_state``, fresh all the same."""
    run = getattr(layer, "backward_strided", None) or layer.backward_with_state
    return run(dy, cache, need_dx)


def _sum_fresh(a, b):
    """``a + b`` as a C-contiguous array, written into whichever of the two fresh gradients
    (:meth:`RNNBase.backward_strided`) is contiguous: no third ``(B, T, D)`` array, and no
    contiguous copy of the time-reversed one."""
    out = a if a.flags.c_contiguous else b if b.flags.c_contiguous else None
    return np.add(a, b, out=out)


class Bidirectional(Layer):
    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        from . import deserialize

        if isinstance(layer, dict):
            layer = deserialize(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize(backward_layer)
        if not hasattr(layer, "return_sequences"):
            raise ValueError(
                f"Bidirectional: argument 'layer' must be a recurrent layer (LSTM, GRU, "
                f"SimpleRNN); got {type(layer).__name__}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"Bidirectional: argument 'merge_mode' must be one of {MERGE_MODES}; got {merge_mode!r}"
            )
        if "input_shape" not in kwargs and layer.input_shape is not None:
            kwargs["input_shape"] = layer.input_shape
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        cfg = layer.get_config()
        cfg.pop("input_shape", None)
        cfg["zero_output_for_mask"] = layer.return_sequences
        self._layer_config = {"class_name": type(layer).__name__, "config": dict(cfg)}
        self.forward_layer = type(layer).from_config({**cfg, "name": "forward_" + layer.name})
        if backward_layer is None:
            bcfg = {**cfg, "name": "backward_" + layer.name, "go_backwards": not layer.go_backwards}
            self.backward_layer = type(layer).from_config(bcfg)
        else:
            bcfg = backward_layer.get_config()
            bcfg.pop("input_shape", None)
            bcfg["zero_output_for_mask"] = backward_layer.return_sequences
            self.backward_layer = type(backward_layer).from_config(bcfg)
        self._has_custom_backward = backward_layer is not None
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        if self.backward_layer.return_sequences != self.return_sequences:
            raise ValueError(
                "Bidirectional: argument 'backward_layer' must have the same return_sequences "
                f"as 'layer' ({self.return_sequences})"
            )

    # parameters of both directions under one namespace ---------------------------------------
    @property
    def weight_names(self):
        return tuple(f"forward.{r}" for r in self.forward_layer.weight_names) + tuple(
            f"backward.{r}" for r in self.backward_layer.weight_names
        )

    def weight_regularizers(self):
        return self._by_direction("weight_regularizers")

    def weight_constraints(self):
        return self._by_direction("weight_constraints")

    def _by_direction(self, method):
        out = {f"forward.{k}": v for k, v in getattr(self.forward_layer, method)().items()}
        out.update({f"backward.{k}": v for k, v in getattr(self.backward_layer, method)().items()})
        return out

    def _sync_params(self):
        self.params = {f"forward.{k}": v for k, v in self.forward_layer.params.items()}
        self.params.update({f"backward.{k}": v for k, v in self.backward_layer.params.items()})

    def build(self, input_shape, rng=None, dtype=None):
        super().build(input_shape, rng, dtype)
        self.forward_layer.build(input_shape, rng, self.dtype)
        self.backward_layer.build(input_shape, rng, self.dtype)
        self._sync_params()

    def compute_output_shape(self, input_shape):
        f = self.forward_layer.compute_output_shape(input_shape)
        out = f[0] if self.return_state else f
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (2 * out[-1],)
        if self.return_state:
            b = self.backward_layer.compute_output_shape(input_shape)
            return [out, *f[1:], *b[1:]]
        return out

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def infer(self, x, mask=None, initial_state=None):
        if not self.built or initial_state is not None:
            return self.forward(x, mask=mask, initial_state=initial_state)[0]
        yf = self.forward_layer.infer(x, mask=mask)
        yb = self.backward_layer.infer(x, mask=mask)
        if self.return_state:
            (yf, *sf), (yb, *sb) = yf, yb
        if self.return_sequences:
            yb = yb[:, ::-1]
        y = self._merge(yf, yb)
        if self.merge_mode is not None:  # the directions' outputs are merged into a new array
            backend.give_back(yf, yb)
        if self.return_state:
            return [*y, *sf, *sb] if self.merge_mode is None else [y, *sf, *sb]
        return y

    def forward(self, x, *, training=False, mask=None, rng=None, initial_state=None):
        if not self.built:
            x = np.asarray(x)
            if x.ndim != 3:
                raise ValueError(
                    "Bidirectional: argument 'x' must have rank 3, shape (batch, timesteps, "
                    f"features); got shape {x.shape}"
                )
            self.build(x.shape[1:], rng)
        fs = bs = None
        if initial_state is not None:
            n = len(self.forward_layer.state_names)
            fs, bs = list(initial_state[:n]), list(initial_state[n:])
        yf, cf = self.forward_layer.forward(
            x, training=training, mask=mask, rng=rng, initial_state=fs
        )
        yb, cb = self.backward_layer.forward(
            x, training=training, mask=mask, rng=rng, initial_state=bs
        )
        states = []
        if self.return_state:
            yf, *sf = yf
            yb, *sb = yb
            states = sf + sb
        if self.return_sequences:
            yb = yb[:, ::-1]
        y = self._merge(yf, yb)
        if self.merge_mode == "concat" and not _activity(cf, cb):
            # concatenated into a new array (which the cache keeps views of): nothing reads the
            # directions' own outputs again
            backend.give_back(yf, yb)
        if self.merge_mode == "concat":
            H = yf.shape[-1]
            yf, yb = y[..., :H], y[..., H:]
        cache = BidirectionalCache(cf, cb, yf, yb)
        if self.return_state:  # Keras: merge_mode=None gives (y_fwd, y_bwd, *states), flat
            return ([*y, *states] if self.merge_mode is None else [y, *states]), cache
        return y, cache

    def _merge(self, yf, yb):
        if self.merge_mode == "concat":
            return np.concatenate([yf, yb], axis=-1)
        if self.merge_mode == "sum":
            return yf + yb
        if self.merge_mode == "ave":
            return (yf + yb) * 0.5
        if self.merge_mode == "mul":
            return yf * yb
        return [yf, yb]

    def _unmerge(self, dy, cache):
        if self.merge_mode == "concat":
            H = cache.y_fwd.shape[-1]
            return dy[..., :H], dy[..., H:]
        if self.merge_mode == "sum":
            return dy, dy
        if self.merge_mode == "ave":
            return dy * 0.5, dy * 0.5
        if self.merge_mode == "mul":
            return dy * cache.y_bwd, dy * cache.y_fwd
        return dy[0], dy[1]

    def backward_with_state(self, dy, cache, need_dx=True):
        if self.return_state:
            if self.merge_mode is None:  # flat (dy_fwd, dy_bwd, *dstates), as forward returns
                dout, dstates = list(dy[:2]), list(dy[2:])
            else:
                dout, *dstates = dy
        else:
            dout, dstates = dy, []
        dyf, dyb = self._unmerge(dout, cache)
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        if self.return_state:
            n = len(self.forward_layer.state_names)
            dyf, dyb = [dyf, *dstates[:n]], [dyb, *dstates[n:]]
        dxf, gf, sf = _backward_strided(self.forward_layer, dyf, cache.fwd, need_dx)
        dxb, gb, sb = _backward_strided(self.backward_layer, dyb, cache.bwd, need_dx)
        grads = {f"forward.{k}": v for k, v in gf.items()}
        grads.update({f"backward.{k}": v for k, v in gb.items()})
        return (_sum_fresh(dxf, dxb) if need_dx else None), grads, sf + sb

    def backward(self, dy, cache):
        dx, grads, _ = self.backward_with_state(dy, cache)
        return dx, grads

    def param_grads(self, dy, cache):
        return self.backward_with_state(dy, cache, need_dx=False)[1]

    def reset_states(self, states=None):
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states  # Keras 3's name

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = self._layer_config
        cfg["merge_mode"] = self.merge_mode
        if self._has_custom_backward:
            bcfg = self.backward_layer.get_config()
            cfg["backward_layer"] = {
                "class_name": type(self.backward_layer).__name__,
                "config": bcfg,
            }
        return cfg


def _activity(*caches) -> bool:
    """Whether an inner layer's cache keeps its outputs (for its activity regularizer)."""
    return any(getattr(c, "activity", None) is not None for c in caches)
