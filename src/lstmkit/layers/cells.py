"""Keras' cell API: ``RNN(cell)``, ``LSTMCell``/``GRUCell``/``SimpleRNNCell``,
``StackedRNNCells``, and the protocol a user's own cell follows.

A cell is one time step. lstmkit has no autodiff, so a cell states its backward step too:

- ``state_size``: an int, or a list of ints (one per state tensor, e.g. ``[H, H]`` for h, c);
- ``output_size``: the size of ``y_t`` (default: the first state's);
- ``_build(input_shape, rng)``: its parameters through ``add_weight`` (``input_shape`` is
  ``(features,)``), as every layer;
- ``step(x_t, states, training=False) -> (y_t, new_states, cache)``: ``x_t (B, D)``,
  ``states`` a list of ``(B, size)`` arrays;
- ``backward_step(dy_t, dstates, cache) -> (dx_t, dstates_prev, grads)``: ``dy_t`` is
  dLoss/d(y_t), ``dstates`` dLoss/d(new_states) (arrays), ``grads`` keyed by role.

``RNN(cell)`` scans the step over time in Python (masks keep a padded step's states and output,
as Keras does; ``go_backwards``, ``return_sequences``, ``return_state``, ``initial_state``,
``stateful``). For the built-in cells ``RNN(LSTMCell(8), ...)`` *is* ``LSTM(8, ...)``: the same
layer with the compiled full-sequence kernels (its class and name are LSTM's), since the
weights and the numbers are Keras' in both forms. A user cell, written in NumPy::

    class MinimalRNNCell(layers.Layer):           # h_t = tanh(x_t W + h_{t-1} U)
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units = self.state_size = units
        def _build(self, input_shape, rng):
            self.add_weight("kernel", (input_shape[-1], self.units), initializers.get("glorot_uniform"), rng)
            self.add_weight("recurrent_kernel", (self.units, self.units), initializers.get("orthogonal"), rng)
        def step(self, x, states, training=False):
            h = np.tanh(x @ self.params["kernel"] + states[0] @ self.params["recurrent_kernel"])
            return h, [h], (x, states[0], h)
        def backward_step(self, dh, dstates, cache):
            x, h_prev, h = cache
            dz = (dh + dstates[0]) * (1 - h * h)
            grads = {"kernel": x.T @ dz, "recurrent_kernel": h_prev.T @ dz}
            return dz @ self.params["kernel"].T, [dz @ self.params["recurrent_kernel"].T], grads
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Layer, check_array, check_mask


def _sizes(state_size):
    return [int(state_size)] if np.ndim(state_size) == 0 else [int(s) for s in state_size]


# -- the built-in cells: one step of the full-sequence layers -----------------------------------
class _BuiltinCell(Layer):
    """``LSTMCell(units, **kw)`` holds the config of ``LSTM(units, **kw)``; its step runs the
    layer's own kernels on one time step (so its numbers are the layer's)."""

    layer_class: type = None

    def __init__(self, units, **kwargs):
        base = {k: kwargs.pop(k) for k in ("name", "dtype", "trainable") if k in kwargs}
        super().__init__(**base)
        self._kwargs = dict(kwargs)
        self._layer = self.layer_class(units, return_sequences=True, name=self.name, **kwargs)
        self.units = self._layer.units
        self.state_size = [self.units] * len(self._layer.state_names)
        self.output_size = self.units

    @property
    def weight_names(self):
        return self._layer.weight_names

    def build(self, input_shape, rng=None, dtype=None):
        super().build(input_shape, rng, dtype)
        self._layer.build((None, *tuple(input_shape)[-1:]), rng, self.dtype)
        self.params = self._layer.params

    def step(self, x_t, states, training=False):
        hs, final, cache = self._layer._cell_forward(x_t[None], list(states), None, None)
        return hs[0], final, cache

    def backward_step(self, dy_t, dstates, cache):
        g = self._layer._cell_backward(dy_t[None], list(dstates), cache)
        if not self._layer.use_bias:
            g.pop("bias", None)
        dx = g.pop("x")[0]
        dprev = [g.pop(f"{s}0") for s in self._layer.state_names]
        return dx, dprev, g

    def as_layer(self, **rnn_args):
        """The full-sequence layer this cell is one step of, with ``RNN``'s arguments."""
        return self.layer_class(self.units, name=self.name, **self._kwargs, **rnn_args)

    def get_config(self):
        cfg = {"name": self.name, "units": self.units, **self._kwargs}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype
        return cfg


def _builtin(layer_name):
    from . import recurrent

    return getattr(recurrent, layer_name)


class LSTMCell(_BuiltinCell):
    """One step of :class:`~lstmkit.layers.LSTM` (Keras ``LSTMCell``)."""

    layer_class = property(lambda self: _builtin("LSTM"))


class GRUCell(_BuiltinCell):
    """One step of :class:`~lstmkit.layers.GRU` (Keras ``GRUCell``)."""

    layer_class = property(lambda self: _builtin("GRU"))


class SimpleRNNCell(_BuiltinCell):
    """One step of :class:`~lstmkit.layers.SimpleRNN` (Keras ``SimpleRNNCell``)."""

    layer_class = property(lambda self: _builtin("SimpleRNN"))


class StackedRNNCells(Layer):
    """Several cells as one: at each step the output of one is the input of the next; the
    states are all the cells' states, in order (Keras ``StackedRNNCells``)."""

    def __init__(self, cells, **kwargs):
        from . import deserialize

        super().__init__(**kwargs)
        self.cells = [deserialize(c) if isinstance(c, dict) else c for c in cells]
        if not self.cells:
            raise ValueError("StackedRNNCells: argument 'cells' must hold at least one cell")
        self.state_size = [s for c in self.cells for s in _sizes(c.state_size)]
        self.output_size = getattr(
            self.cells[-1], "output_size", _sizes(self.cells[-1].state_size)[0]
        )

    @property
    def weight_names(self):
        return tuple(f"{i}.{r}" for i, c in enumerate(self.cells) for r in c.weight_names)

    def build(self, input_shape, rng=None, dtype=None):
        super().build(input_shape, rng, dtype)
        d = tuple(input_shape)[-1]
        self.params = {}
        for i, c in enumerate(self.cells):
            c.build((d,), rng, self.dtype)
            self.params.update({f"{i}.{r}": p for r, p in c.params.items()})
            d = getattr(c, "output_size", _sizes(c.state_size)[0])

    def _split(self, states):
        out, k = [], 0
        for c in self.cells:
            n = len(_sizes(c.state_size))
            out.append(list(states[k : k + n]))
            k += n
        return out

    def step(self, x_t, states, training=False):
        new, caches = [], []
        for c, st in zip(self.cells, self._split(states)):
            x_t, st, cache = c.step(x_t, st, training=training)
            new += list(st)
            caches.append(cache)
        return x_t, new, caches

    def backward_step(self, dy_t, dstates, caches):
        grads, dprev = {}, []
        for i in reversed(range(len(self.cells))):
            c = self.cells[i]
            dy_t, dp, g = c.backward_step(dy_t, self._split(dstates)[i], caches[i])
            dprev = list(dp) + dprev
            grads.update({f"{i}.{r}": v for r, v in g.items()})
        return dy_t, dprev, grads

    def get_config(self):
        from . import serialize

        cfg = super().get_config()
        cfg["cells"] = [serialize(c) for c in self.cells]
        return cfg


# -- RNN(cell) -----------------------------------------------------------------------------------
class CellCache(NamedTuple):
    steps: list  # one cell cache per processed step (None where masked)
    mask: np.ndarray | None  # (T, B) in processing order
    n_state: int
    batch_major_shape: tuple


def RNN(cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
        **kwargs):  # fmt: skip
    """Keras' ``RNN(cell)``: a built-in cell gives its full-sequence layer (``RNN(LSTMCell(8))``
    is ``LSTM(8)``); any other cell (a user's, ``StackedRNNCells``) is scanned by
    :class:`CellRNN`."""
    args = {"return_sequences": return_sequences, "return_state": return_state,
                "go_backwards": go_backwards, "stateful": stateful}  # fmt: skip
    if isinstance(cell, (list, tuple)):
        cell = StackedRNNCells(list(cell))
    if isinstance(cell, _BuiltinCell):
        return cell.as_layer(**args, **kwargs)
    return CellRNN(cell, **args, **kwargs)


class CellRNN(Layer):
    """The layer ``RNN(cell)`` builds for a cell that is not built in (see :func:`RNN`)."""

    supports_masking = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, **kwargs):  # fmt: skip
        from . import deserialize

        super().__init__(**kwargs)
        self.cell = deserialize(cell) if isinstance(cell, dict) else cell
        for what in ("step", "backward_step", "state_size"):
            if not hasattr(self.cell, what):
                raise ValueError(
                    f"RNN: argument 'cell' must have {what!r} (see lstmkit.layers.cells); got "
                    f"{type(self.cell).__name__}"
                )
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self.state_names = tuple(f"state_{i}" for i in range(len(_sizes(self.cell.state_size))))
        self.states = None

    @property
    def weight_names(self):
        return self.cell.weight_names

    def build(self, input_shape, rng=None, dtype=None):
        super().build(input_shape, rng, dtype)
        if len(input_shape) != 2:
            raise ValueError(f"RNN: input shape must be (timesteps, features); got {input_shape}")
        self.cell.build((input_shape[-1],), rng, self.dtype)
        self.params = self.cell.params

    @property
    def output_size(self):
        return getattr(self.cell, "output_size", _sizes(self.cell.state_size)[0])

    def compute_output_shape(self, input_shape):
        out = (input_shape[0], self.output_size) if self.return_sequences else (self.output_size,)
        if self.return_state:
            return [out] + [(s,) for s in _sizes(self.cell.state_size)]
        return out

    def compute_mask(self, x, mask):
        if self.return_sequences and mask is not None:
            return mask[:, ::-1] if self.go_backwards else mask
        return None

    def reset_states(self, states=None):
        self.states = None if states is None else [np.asarray(s, self.dtype) for s in states]

    reset_state = reset_states  # Keras 3's name

    def _initial(self, B, initial_state):
        if initial_state is not None:
            return [np.asarray(s, self.dtype) for s in initial_state]
        if self.stateful and self.states is not None:
            return list(self.states)
        return [np.zeros((B, s), self.dtype) for s in _sizes(self.cell.state_size)]

    def forward(self, x, *, training=False, mask=None, rng=None, initial_state=None):
        x = check_array(self, x, rank=3)
        if not self.built:
            self.build(x.shape[1:], rng, x.dtype if x.dtype.kind == "f" else None)
        x = x.astype(self.dtype, copy=False)
        B, T, _ = x.shape
        mask = check_mask(self, mask, B, T)
        xt = x.transpose(1, 0, 2)[::-1] if self.go_backwards else x.transpose(1, 0, 2)
        mt = None if mask is None else (mask.T[::-1] if self.go_backwards else mask.T)
        states = self._initial(B, initial_state)
        y_prev = np.zeros((B, self.output_size), self.dtype)
        ys, caches = [], []
        for t in range(T):
            y, new, cache = self.cell.step(xt[t], states, training=training)
            if mt is not None:  # a padded step keeps the states and repeats the output
                keep = mt[t][:, None]
                new = [np.where(keep, n, s) for n, s in zip(new, states)]
                y = np.where(keep, y, y_prev)
            ys.append(y)
            caches.append(cache)
            states, y_prev = list(new), y
        if self.stateful:
            self.states = [s.copy() for s in states]
        out = np.stack(ys, 1) if self.return_sequences else ys[-1]
        cache = CellCache(caches, mt, len(states), x.shape)
        return ([out, *states] if self.return_state else out), cache

    def backward_with_state(self, dy, cache, need_dx=True):
        T, B = len(cache.steps), cache.batch_major_shape[0]
        if self.return_state:
            dout, *dstates = dy
        else:
            dout, dstates = dy, [None] * cache.n_state
        sizes = _sizes(self.cell.state_size)
        ds = [
            np.zeros((B, s), self.dtype) if d is None else np.asarray(d)
            for d, s in zip(dstates, sizes)
        ]
        dys = np.zeros((T, B, self.output_size), self.dtype)
        if self.return_sequences:
            dys += np.asarray(dout).transpose(1, 0, 2)
        else:
            dys[-1] += dout
        grads, dxs, dy_carry = {}, [None] * T, np.zeros((B, self.output_size), self.dtype)
        for t in reversed(range(T)):
            dy_t = dys[t] + dy_carry
            if cache.mask is not None:
                keep = cache.mask[t][:, None]
                dy_carry = np.where(keep, 0.0, dy_t)  # a padded step repeated y_{t-1}
                dy_t = np.where(keep, dy_t, 0.0)
                held = [np.where(keep, 0.0, d) for d in ds]  # ... and kept the states
                ds = [np.where(keep, d, 0.0) for d in ds]
            dx, dprev, g = self.cell.backward_step(dy_t, ds, cache.steps[t])
            ds = list(dprev) if cache.mask is None else [p + h for p, h in zip(dprev, held)]
            dxs[t] = dx
            for r, v in g.items():
                grads[r] = v if r not in grads else grads[r] + v
        dx = np.stack(dxs, 0)
        dx = (dx[::-1] if self.go_backwards else dx).transpose(1, 0, 2)
        return (np.ascontiguousarray(dx) if need_dx else None), grads, ds

    def backward(self, dy, cache):
        dx, g, _ = self.backward_with_state(dy, cache)
        return dx, g

    def get_config(self):
        from . import serialize

        cfg = super().get_config()
        cfg.update(cell=serialize(self.cell), return_sequences=self.return_sequences,
                   return_state=self.return_state, go_backwards=self.go_backwards,
                   stateful=self.stateful)  # fmt: skip
        return cfg
