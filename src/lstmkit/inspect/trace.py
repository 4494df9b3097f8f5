"""``trace(model, x)``: every recurrent layer's gates and states at every step, by name.

The numbers are read from the caches the ops forward already returns (no second implementation
of the cell, no hooks): the model runs exactly as ``model.forward(x)`` runs it, once, in inference
mode, and the caches are taken apart afterwards.

Names (each array ``(batch, timesteps, units)``)::

    LSTM       i, f, g, o   activated gates (σ, σ, tanh, σ)     c, h   states after the step
    GRU        z, r, n      activated gates (σ, σ, tanh)         h      state after the step
    SimpleRNN                                                     h      state after the step

so that, at every step the layer did not skip, ``c = f * c_prev + i * g``, ``h = o * tanh(c)``
(LSTM) and ``h = z * h_prev + (1 - z) * n`` (GRU), with ``c_prev``/``h_prev`` the previous step's
state or ``initial`` at the first processed step. LSTM variants report the same names: with
``cifg`` the derived ``i = 1 - f``, without a forget gate ``f = 1``; with zoneout ``c``/``h`` are
the carried (mixed) states.

Time order: ``order="time"`` (the default) puts index t at the step that read ``x[:, t]``, for
every layer; a ``go_backwards`` layer (and the backward half of a ``Bidirectional``) processes t
from last to first, so its *previous* step is t + 1. ``order="processing"`` keeps each layer's
own order (index k = the k-th step processed), where the previous step is always k - 1.

Masks: a step the layer skipped (mask False) carries ``c`` and ``h`` over unchanged; its gates
were never used, so they are reported as NaN. ``LayerTrace.mask`` says which steps ran.

Layer names are the model's layer names; the two halves of a ``Bidirectional`` named ``bi`` are
``"bi/forward"`` and ``"bi/backward"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..layers import Bidirectional, RNNBase
from ..ops.gates import LSTM_GATES, split
from ..ops.gru import GRUCache
from ..ops.lstm import LSTMCache
from ..ops.lstm_variants import LSTMVariantCache
from ..ops.rnn import RNNCache

#: the names ``trace`` reports for each cell, in this order
NAMES = {"lstm": ("f", "i", "g", "o", "c", "h"), "gru": ("r", "z", "n", "h"), "rnn": ("h",)}
#: which names are gates (squashed by σ or tanh) rather than states
GATES = {"lstm": ("f", "i", "g", "o"), "gru": ("r", "z", "n"), "rnn": ()}
#: gates squashed by tanh (range [-1, 1]); the other gates are σ (range [0, 1])
TANH_GATES = ("g", "n")
ORDERS = ("time", "processing")


@dataclass(frozen=True)
class LayerTrace(Mapping):
    """One recurrent layer (or one direction of a ``Bidirectional``): ``trace_["f"]`` etc.

    ``arrays[name]`` is ``(batch, timesteps, units)``; ``initial[name]`` the ``(batch, units)``
    state before the first processed step; ``mask`` the ``(batch, timesteps)`` steps that ran
    (None: all did), in the same order as the arrays.
    """

    name: str
    cell: str  # "lstm" | "gru" | "rnn"
    arrays: dict
    initial: dict
    mask: np.ndarray | None
    go_backwards: bool
    order: str

    def __getitem__(self, key):
        try:
            return self.arrays[key]
        except KeyError:
            raise KeyError(
                f"{self.name}: no {key!r} in this {self.cell.upper()} trace; "
                f"expected one of {list(self.arrays)}"
            ) from None

    def __iter__(self):
        return iter(self.arrays)

    def __len__(self):
        return len(self.arrays)

    @property
    def units(self) -> int:
        return self.arrays["h"].shape[-1]

    @property
    def timesteps(self) -> int:
        return self.arrays["h"].shape[1]

    @property
    def gates(self) -> tuple[str, ...]:
        return GATES[self.cell]

    def valid(self) -> np.ndarray:
        """``(batch, timesteps)`` bool: the steps the layer ran (all True without a mask)."""
        h = self.arrays["h"]
        return np.ones(h.shape[:2], bool) if self.mask is None else self.mask

    def previous(self, name: str) -> np.ndarray:
        """``(batch, timesteps, units)``: the state each step started from (``c_prev``/``h_prev``).

        The previous step in processing order: t - 1 in time order, t + 1 for a backwards layer.
        """
        a = self.arrays[name]
        first = self.initial[name][:, None]
        if self.order == "time" and self.go_backwards:
            return np.concatenate([a[:, 1:], first], axis=1)
        return np.concatenate([first, a[:, :-1]], axis=1)


@dataclass(frozen=True)
class Trace(Mapping):
    """``trace(model, x)``'s result: ``outputs`` (``model.predict(x)``'s, bit for bit), the output
    ``mask``, and one :class:`LayerTrace` per recurrent layer (direction) keyed by name."""

    outputs: object
    layers: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    order: str = "time"

    def __getitem__(self, key):
        try:
            return self.layers[key]
        except KeyError:
            raise KeyError(
                f"trace: no recurrent layer {key!r}; the model's recurrent layers are "
                f"{list(self.layers)}"
            ) from None

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)


# -- running the model ----------------------------------------------------------------------------
def recurrent_parts(model):
    """``[(trace name, model layer, recurrent layer)]``: each RNN layer or Bidirectional half."""
    parts = []
    for layer in model.layers:
        if isinstance(layer, Bidirectional):
            parts.append((f"{layer.name}/forward", layer, layer.forward_layer))
            parts.append((f"{layer.name}/backward", layer, layer.backward_layer))
        elif isinstance(layer, RNNBase):
            parts.append((layer.name, layer, layer))
    return parts


def prepare_input(model, x, mask=None):
    """Validate and cast ``x`` the way ``predict`` does; returns ``(x, mask)``."""
    if not (hasattr(model, "layers") and hasattr(model, "_prepare")):
        raise TypeError(
            "argument 'model' must be an lstmkit Sequential model (lstmkit.load_model gives one; "
            f"the NumPy-only runtime keeps no caches to inspect); got {type(model).__name__}"
        )
    xs, _ = model._prepare(x)
    x = xs[0]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
    return x, mask


def run_layers(model, x, mask=None):
    """``Sequential.forward`` in inference mode, keeping each layer's output as well.

    Returns ``(y, out_mask, [(layer, output, cache)])``. Stateful layers get their carried state
    back afterwards, so inspecting a stateful model does not advance it.
    """
    saved = [
        (r, None if r.states is None else list(r.states)) for _, _, r in recurrent_parts(model)
    ]
    record = []
    try:
        ys, masks, _ = model.network.run([x], masks=[mask], record=record)
    finally:
        for r, states in saved:
            r.states = states
    steps = [(node.layer, y, cache) for node, y, cache in record]
    return ys[0] if len(ys) == 1 else ys, masks[0], steps


# -- reading the caches -----------------------------------------------------------------------------
def _to_batch_major(a, go_backwards, order):
    """(T, B, ...) in processing order -> (B, T, ...) in the requested order."""
    a = np.swapaxes(a, 0, 1)
    if order == "time" and go_backwards:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def _final_h(layer, out, mt, h_in):
    """``(B, H)``: the layer's state after its last processed step, from its output."""
    if not layer.return_sequences:
        return out  # the layer returns exactly its final h
    last = out[:, -1]  # (B, H) the last processed step's output (processing order)
    if mt is None:
        return last
    # a skipped last step outputs zeros or the carried h; its state is the h it was handed
    return np.where(mt[-1][:, None], last, h_in[-1])


def _state_sequence(h_in, h_final):
    """States after each step (T, B, H) from the h entering each step plus the final one."""
    return np.concatenate([h_in[1:], h_final[None]], axis=0)


def _lstm_arrays(c, H):
    """Plain LSTM cache -> (gates by name, c (T, B, H), initial c)."""
    gates = dict(zip(LSTM_GATES, split(c.gates, 4)))
    return gates, c.c[1:], c.c[0]


def _variant_arrays(c, H):
    gates = {n: c.gates[..., c.variant.block(n, H)] for n in c.variant.gates}
    if "i" not in gates:  # cifg: i = 1 - f
        gates["i"] = 1.0 - gates["f"]
    if "f" not in gates:  # the 1997 cell: f = 1
        gates["f"] = np.ones_like(gates["i"])
    return gates, c.c[1:], c.c[0]


def layer_trace(name, layer, rcache, out, order="time") -> LayerTrace:
    """One :class:`LayerTrace` from a recurrent layer's forward ``(output, RecurrentCache)``."""
    ops_cache, mt = rcache.ops_cache, rcache.mask
    if isinstance(out, list):  # return_state: [output, *states]
        out = out[0]
    H = layer.units
    states, initial = {}, {}
    if isinstance(ops_cache, (LSTMCache, LSTMVariantCache)):
        cell = "lstm"
        read = _lstm_arrays if isinstance(ops_cache, LSTMCache) else _variant_arrays
        gates, states["c"], initial["c"] = read(ops_cache, H)
        if isinstance(ops_cache, LSTMVariantCache):
            states["h"], initial["h"] = ops_cache.h[1:], ops_cache.h[0]
        else:
            h_in = ops_cache.h_in  # no recurrent dropout in inference: h_in[t] = h_{t-1}
            states["h"] = _state_sequence(h_in, _final_h(layer, out, mt, h_in))
            initial["h"] = h_in[0]
    elif isinstance(ops_cache, GRUCache):
        cell = "gru"
        gates = {n: ops_cache.gates[..., k * H : (k + 1) * H] for k, n in enumerate("zrn")}
        states["h"], initial["h"] = ops_cache.h[1:], ops_cache.h[0]
    elif isinstance(ops_cache, RNNCache):
        cell, gates = "rnn", {}
        h_in = ops_cache.h_in
        states["h"] = _state_sequence(h_in, _final_h(layer, out, mt, h_in))
        initial["h"] = h_in[0]
    else:
        raise TypeError(
            f"trace: layer {name!r} has an unknown ops cache {type(ops_cache).__name__}"
        )
    arrays = {}
    for n in NAMES[cell]:
        a = gates[n] if n in gates else states[n]
        if n in gates and mt is not None:  # a skipped step's gates never acted
            a = np.where(mt[:, :, None], a, np.nan)
        arrays[n] = _to_batch_major(np.asarray(a), layer.go_backwards, order)
    mask = None if mt is None else _to_batch_major(mt, layer.go_backwards, order)
    initial = {k: np.array(v) for k, v in initial.items()}
    return LayerTrace(name, cell, arrays, initial, mask, layer.go_backwards, order)


def trace(model, x, *, mask=None, order="time") -> Trace:
    """Run ``model`` on ``x`` once (inference mode) and return its outputs and, for every
    recurrent layer, the gates and states at every step (see the module docstring).

    ``x`` is what ``model.predict`` takes; ``mask (batch, timesteps)`` is passed to the first
    layer like ``predict(x, mask=...)``. The outputs are bit for bit those of
    ``model.predict(x, batch_size=len(x))``: the same checks, casts and layer calls."""
    if order not in ORDERS:
        raise ValueError(f"trace: argument 'order' must be one of {list(ORDERS)}; got {order!r}")
    x, mask = prepare_input(model, x, mask)
    y, out_mask, steps = run_layers(model, x, mask)
    layers = {}
    for layer, out, cache in steps:
        if isinstance(layer, Bidirectional):
            # each direction's own output is in the cache; the backward one was flipped back to
            # forward time order when it is a sequence, so flip it again to processing order
            y_bwd = cache.y_bwd[:, ::-1] if layer.return_sequences else cache.y_bwd
            for half, sub, c, o in (
                ("forward", layer.forward_layer, cache.fwd, cache.y_fwd),
                ("backward", layer.backward_layer, cache.bwd, y_bwd),
            ):
                name = f"{layer.name}/{half}"
                layers[name] = layer_trace(name, sub, c, o, order)
        elif isinstance(layer, RNNBase):
            layers[layer.name] = layer_trace(layer.name, layer, cache, out, order)
    if not layers:
        raise ValueError(
            f"trace: model {model.name!r} has no recurrent layer (LSTM, GRU, SimpleRNN, "
            "Bidirectional); there is nothing to trace"
        )
    return Trace(y, layers, out_mask, order)
