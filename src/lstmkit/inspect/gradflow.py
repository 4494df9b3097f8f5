"""Gradient flow: how much the loss still "hears" each earlier step, ``‖∂L/∂h_t‖`` and ``‖∂L/∂c_t‖``.

For every recurrent layer (each direction of a ``Bidirectional``) and every step t,
``∂L/∂h_t`` is the gradient with respect to the state after step t (the h the step outputs and
hands to step t + 1), through every path: the layer's output at t, when the layer returns
sequences, and all later steps. ``∂L/∂c_t`` (LSTM) is likewise the gradient with respect to the
cell computed at step t, through ``h_t = o_t ⊙ tanh(c_t)`` and through ``c_{t+1}``. These are
exactly the ``.grad`` PyTorch leaves on each step's h and c after ``retain_grad()`` when the cell
is stepped in a Python loop (``tests/test_inspect_gradflow.py`` checks this).

How it is computed, exactly and without a second implementation of BPTT: the model's own
backward runs once; for each recurrent layer, the gradient the layer hands its cell backward
(``dhs`` on the outputs and ``dstates`` on the final state, after the layer has applied masks,
``return_sequences`` and ``return_state``) is recorded, and the layer's cell backward is then run
again one step at a time on one-step slices of the same cache, from the last step to the first,
each call's ``h0``/``c0`` gradient feeding the next. BPTT is a chain, so T one-step calls are
the T-step call; the state gradient between two calls is ``∂L/∂h_t`` from the later steps. Two
additions turn that into the totals above::

    ∂L/∂h_t = (from steps after t) + dhs[t]                         (the output at t)
    ∂L/∂c_t = (from steps after t) + ∂L/∂h_t ⊙ o_t ⊙ (1 - tanh²(c_t))     (skipped steps: 0)

the second read from the cache (``o`` and ``tanh(c)`` as the forward stored them). For LSTM
variants (peepholes, layer norm, zoneout ...) the h_t–c_t link is more than this, so only
``∂L/∂h_t`` is reported (``c`` is None).

Batch: L is the model's loss, a mean over the batch; each sample's share is rescaled by the
batch size, so ``h[b, t] = ‖B ∂L/∂h_t[b]‖ = ‖∂L_b/∂h_t[b]‖``, the gradient of sample b's own
loss, and the figures do not depend on the batch size. :meth:`StateFlow.mean` averages over
samples; :meth:`StateFlow.by_lag` averages over samples at each *lag*, the number of steps the
layer processed after t (0 = its last step; for post-padded sequences of different lengths the
lags line up each sequence's own end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import losses as losses_mod
from ..layers import Bidirectional, RNNBase
from ..ops.activations import dtanh
from ..ops.gates import split
from ..ops.gru import GRUCache
from ..ops.lstm import LSTMCache, lstm_output_backward
from ..ops.lstm_variants import LSTMVariantCache
from ..ops.rnn import RNNCache
from .trace import ORDERS, prepare_input, recurrent_parts, run_layers


@dataclass(frozen=True)
class StateFlow:
    """Per-sample gradient norms of one recurrent layer (direction), in time or processing order.

    ``h``, ``c``: ``(batch, timesteps)`` (``c`` None unless a plain LSTM); ``lag``:
    ``(batch, timesteps)`` int, steps processed after t (-1 at skipped steps); ``mask``: steps
    that ran.
    """

    name: str
    cell: str
    h: np.ndarray
    c: np.ndarray | None
    lag: np.ndarray
    mask: np.ndarray | None
    go_backwards: bool
    order: str

    def _get(self, state):
        a = getattr(self, state, None) if state in ("h", "c") else None
        if a is None:
            raise ValueError(
                f"{self.name}: argument 'state' must be 'h'{' or c' if self.c is not None else ''};"
                f" got {state!r}"
            )
        return a

    def mean(self, state="h") -> np.ndarray:
        """``(timesteps,)``: the norm averaged over the samples that ran each step."""
        a = self._get(state)
        valid = self.lag >= 0
        n = valid.sum(axis=0)
        s = np.where(valid, a, 0.0).sum(axis=0)
        return np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)

    def by_lag(self, state="h") -> np.ndarray:
        """``(max lag + 1,)``: entry k averages the norm at lag k (k steps before the layer's
        last processed step) over the samples that have such a step."""
        a = self._get(state)
        valid = self.lag >= 0
        lags = self.lag[valid]
        n = np.bincount(lags)
        s = np.bincount(lags, weights=a[valid].astype(np.float64))
        return np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)


@dataclass(frozen=True)
class GradientFlow(Mapping):
    """``gradient_flow``'s result: ``flow["lstm"]`` is a :class:`StateFlow`; ``loss`` the value
    of L and ``outputs`` the model's outputs."""

    layers: dict = field(default_factory=dict)
    loss: float = float("nan")
    outputs: object = None

    def __getitem__(self, key):
        try:
            return self.layers[key]
        except KeyError:
            raise KeyError(
                f"gradient_flow: no recurrent layer {key!r}; expected one of {list(self.layers)}"
            ) from None

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)


# -- one-step slices of an ops cache ------------------------------------------------------------
_STATIC = {
    "kernel",
    "recurrent_kernel",
    "variant",
    "peephole",
    "ln",
    "recurrent_mask",
    "activation",
}
_PLUS_ONE = {"c", "h"}  # (T+1, B, H): entry t is the state entering step t


def step_cache(cache, t):
    """The cache of step ``t`` alone, as the ops forward would have returned it for a one-step
    sequence started from the state entering step t."""
    if not isinstance(cache, (LSTMCache, LSTMVariantCache, GRUCache, RNNCache)):
        raise TypeError(f"gradient_flow: unknown ops cache {type(cache).__name__}")
    T = cache.x.shape[0]
    parts = {}
    for name, v in cache._asdict().items():
        if name == "buffers":  # the whole sequence's compiled buffers: left at None
            continue
        if v is None or name in _STATIC:
            parts[name] = v
        elif name in _PLUS_ONE:
            parts[name] = v[t : t + 2]
        elif name == "ln_stats":
            parts[name] = tuple(s[t : t + 1] for s in v)
        elif name == "zoneout":  # rates (inference) or per-step draws (T, B, H)
            parts[name] = tuple(d[t : t + 1] if np.ndim(d) == 3 and len(d) == T else d for d in v)
        else:
            parts[name] = v[t : t + 1]
    return type(cache)(**parts)


def _lags(mt):
    """(T, B) processing-order mask -> (T, B) steps processed after t (-1 where skipped)."""
    if mt is None:
        return None
    after = np.cumsum(mt[::-1], axis=0)[::-1] - mt  # valid steps strictly after t
    return np.where(mt, after, -1)


def step_gradients(layer, dhs, dstates, ops_cache):
    """``(dh (T, B, H), dc (T, B, H) or None)``: the total state gradients at every step, from
    the gradients the layer handed its cell backward (see the module docstring)."""
    T, B = ops_cache.x.shape[:2]
    H = layer.units
    dt = ops_cache.x.dtype
    n = len(layer.state_names)
    carry = [np.zeros((B, H), dt) if d is None else np.asarray(d, dt) for d in dstates[:n]]
    dh_all = np.empty((T, B, H), dt)
    plain_lstm = isinstance(ops_cache, LSTMCache)
    dc_all = np.empty((T, B, H), dt) if plain_lstm else None
    for t in range(T - 1, -1, -1):
        dh_all[t] = carry[0] if dhs is None else carry[0] + dhs[t]
        if plain_lstm:
            tanh_c = ops_cache.tanh_c[t]
            _, d_tanh_c = lstm_output_backward(dh_all[t], split(ops_cache.gates[t], 4)[3], tanh_c)
            through_h = d_tanh_c * dtanh(tanh_c)
            if ops_cache.mask is not None:  # a skipped step computed no c
                through_h = through_h * ops_cache.mask[t][:, None]
            dc_all[t] = carry[1] + through_h
        g = layer._cell_backward(
            None if dhs is None else dhs[t : t + 1], carry, step_cache(ops_cache, t)
        )
        carry = [g[f"{s}0"] for s in layer.state_names]
    return dh_all, dc_all


class _Recorder:
    """Remember what a recurrent layer hands its cell backward during ``layer.backward``.

    Sets an instance attribute that shadows the class's ``_cell_backward`` for the duration of a
    ``with`` block; the call itself goes to the class's method unchanged.
    """

    def __init__(self, layers):
        self.layers = layers
        self.calls = {}

    def __enter__(self):
        for layer in self.layers:
            original = type(layer)._cell_backward.__get__(layer)

            def record(dhs, dstates, cache, need_dx=True, _layer=layer, _original=original):
                self.calls[id(_layer)] = (dhs, list(dstates), cache)
                return _original(dhs, dstates, cache, need_dx)

            layer._cell_backward = record
        return self

    def __exit__(self, *exc):
        for layer in self.layers:
            layer.__dict__.pop("_cell_backward", None)


def _loss_grad(model, loss, y, y_pred, out_mask):
    """(L, dL/dy_pred) as the trainer computes them (``Trainable._loss_and_grad``)."""
    y = np.asarray(y)
    if not getattr(loss, "sparse", False) and y.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y = y[..., None]
    if out_mask is not None and y_pred.ndim == 3:
        yv, pv = y[out_mask], y_pred[out_mask]
        dy = np.zeros_like(y_pred)
        dy[out_mask] = loss.grad(yv, pv)
        return float(loss(yv, pv)), dy
    return float(loss(y, y_pred)), loss.grad(y, y_pred)


def _top_output_grad(y_pred, out_mask):
    """Without a target: L = mean over samples of each sample's largest output at its last
    step (the predicted value, or the winning class's score)."""
    B = y_pred.shape[0]
    dy = np.zeros_like(y_pred)
    rows = np.arange(B)
    if y_pred.ndim == 3:
        last = np.full(B, y_pred.shape[1] - 1)
        if out_mask is not None:
            last = out_mask.shape[1] - 1 - np.argmax(out_mask[:, ::-1], axis=1)
        top = y_pred[rows, last]  # (B, K)
        dy[rows, last, np.argmax(top, axis=-1)] = 1.0 / B
        return float(top.max(axis=-1).mean()), dy
    flat = y_pred.reshape(B, -1)
    k = np.argmax(flat, axis=-1)
    dflat = dy.reshape(B, -1)
    dflat[rows, k] = 1.0 / B
    return float(flat.max(axis=-1).mean()), dy


def _cell_name(ops_cache) -> str:
    if isinstance(ops_cache, (LSTMCache, LSTMVariantCache)):
        return "lstm"
    return "gru" if isinstance(ops_cache, GRUCache) else "rnn"


def _state_flow(name, layer, dhs, dstates, ops_cache, mt, order) -> StateFlow:
    """Per-step gradients of one recurrent layer -> its :class:`StateFlow`."""
    dh, dc = step_gradients(layer, dhs, dstates, ops_cache)
    T, B = dh.shape[:2]
    lag = _lags(mt) if mt is not None else np.broadcast_to(np.arange(T)[::-1, None], (T, B))
    flip = order == "time" and layer.go_backwards

    def arrange(a):  # (T, B) processing order -> (B, T) in the requested order
        if a is None:
            return None
        a = np.swapaxes(a, 0, 1)
        return np.ascontiguousarray(a[:, ::-1] if flip else a)

    def norms(a):  # (T, B, H) -> (T, B)
        return None if a is None else np.linalg.norm(a.astype(np.float64), axis=-1)

    return StateFlow(
        name,
        _cell_name(ops_cache),
        arrange(norms(dh)),
        arrange(norms(dc)),
        arrange(np.asarray(lag)),
        arrange(mt),
        layer.go_backwards,
        order,
    )


def gradient_flow(model, x, y=None, *, loss=None, mask=None, order="time") -> GradientFlow:
    """Per-step gradient norms ``‖∂L_b/∂h_t‖`` (and ``‖∂L_b/∂c_t‖`` for LSTMs) of every
    recurrent layer, see the module docstring.

    ``loss``: a loss name or object; default the model's compiled loss, else ``"mse"``. With
    ``y=None`` L is each sample's largest output at its last step (what the prediction hears).
    ``mask (batch, timesteps)`` goes to the first layer as in ``predict``. The model is run in
    inference mode (no dropout); its parameters and carried states are left untouched.
    """
    if order not in ORDERS:
        raise ValueError(
            f"gradient_flow: argument 'order' must be one of {list(ORDERS)}; got {order!r}"
        )
    x, mask = prepare_input(model, x, mask)
    parts = recurrent_parts(model)
    if not parts:
        raise ValueError(
            f"gradient_flow: model {model.name!r} has no recurrent layer (LSTM, GRU, SimpleRNN, "
            "Bidirectional)"
        )
    if getattr(model.layers[-1], "return_state", False):
        raise ValueError(
            "gradient_flow: the model returns several outputs (return_state=True on its last "
            "layer); give it one output to differentiate"
        )
    y_pred, out_mask, steps = run_layers(model, x, mask)
    B = len(x)
    if y is None:
        value, dy = _top_output_grad(y_pred, out_mask)
    else:
        if len(np.asarray(y)) != B:
            raise ValueError(
                f"gradient_flow: arguments 'x' and 'y' must have the same number of samples; "
                f"got {B} and {len(np.asarray(y))}"
            )
        if loss is None:
            loss = model.loss if getattr(model, "compiled", False) else "mse"
        value, dy = _loss_grad(model, losses_mod.get(loss), y, y_pred, out_mask)
    dy = np.asarray(dy * B, dtype=y_pred.dtype)  # each sample's own loss, see the docstring

    recurrent = [r for _, _, r in parts]
    with _Recorder(recurrent) as rec:
        for layer, _, cache in reversed(steps):
            dy, _ = layer.backward(dy, cache)
            if dy is None:  # Embedding: nothing flows further down
                break
    caches = {}
    for layer, _, cache in steps:
        if isinstance(layer, Bidirectional):
            caches[id(layer.forward_layer)] = cache.fwd
            caches[id(layer.backward_layer)] = cache.bwd
        elif isinstance(layer, RNNBase):
            caches[id(layer)] = cache
    flows = {}
    for name, _, r in parts:
        dhs, dstates, ops_cache = rec.calls[id(r)]
        flows[name] = _state_flow(name, r, dhs, dstates, ops_cache, caches[id(r)].mask, order)
    return GradientFlow(flows, value, y_pred)
