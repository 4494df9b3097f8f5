"""What ``Model.predict`` can skip on a call like the one before it.

A batch-1 ``predict`` at config B of ``benchmarks/bench_speed.py`` (T = 100, D = 8, H = 64)
spends ~0.12 ms in the compiled loop and, before this plan, 60-70 us in the Python around it:
input standardisation, shape checks at three levels (model, layer, cell op), a second
finiteness check of the same ``x`` by the layer, the graph walk, the backend dispatch, casts
that do nothing. After an idle gap (a user's requests, the benchmark's pause) that code runs
with cold caches, at several times its warm cost, while onnxruntime's ``run`` is one C++ call.

A model keeps :class:`PredictPlans`: for one network and backend choice, a
:class:`PredictPlan` per ``(x.shape, x.dtype, batch_size)``, made after a ``predict`` that went
the general way without a mask, in one batch, on an ``x`` that needed no cast, when the network
is a chain of layers that each offer a step (:func:`lstmkit.layers.infer_plan.step_for`: the
recurrent layers, ``Dense``, ``Bidirectional``); None for calls that have no plan. A later call
with the same key checks, cheaply, everything the general path would have decided differently:

- ``x``: an ndarray of the same shape and dtype, finite (when not, the general path raises the
  clear error); ``batch_size`` None or an int (bools and others: the general path checks);
- the model: the same network object (``add``/``pop``/rebuild make a new one), the same backend
  choice and resolved backend (``set_backend``, ``LSTMKIT_BACKEND``): else every plan goes;
- each layer (its step): the same parameter arrays (a rebuild or a replaced array makes new
  ones; ``set_weights`` and ``load_weights`` copy into them, which the plan sees: it keeps no
  copy), the same dtype and settings (stateful, ...).

A step that finds its layer changed returns None: that plan goes and the call takes the general
way, which makes a new one. Steps have no side effects (stateful layers get none).
"""

from __future__ import annotations

import numpy as np

from ..layers.infer_plan import step_for
from ..ops import backend

#: Keras' default ``batch_size`` of predict
DEFAULT_BATCH_SIZE = 32
#: plans kept per model (one per input shape, dtype and batch_size seen): then all are dropped
MAX_PLANS = 8


class PredictPlans:
    """One model's plans, for one network and backend choice."""

    __slots__ = ("backend", "net", "plans")

    def __init__(self):
        self.net, self.backend, self.plans = None, None, {}

    def run(self, model, x, batch_size):
        """The model's output for ``x``, or None when no plan applies to this call."""
        if type(x) is not np.ndarray or not (batch_size is None or type(batch_size) is int):
            return None
        if model.network is not self.net or backend.dispatch_key() != self.backend:
            self.net, self.backend, self.plans = model.network, backend.dispatch_key(), {}
            return None
        key = (x.shape, x.dtype, batch_size)
        plan = self.plans.get(key)
        if plan is None or not np.isfinite(x).all():  # (a sum is no faster: 2-10x slower at A)
            return None
        y = plan.run(x)
        if y is None:  # a layer changed since the plan was made
            self.plans.pop(key, None)
        return y

    def learn(self, model, x, xs, batch_size, mask):
        """After a call that went the general way (``xs``: ``x`` as it checked and cast it)."""
        if type(x) is not np.ndarray or not (batch_size is None or type(batch_size) is int):
            return
        if model.network is not self.net or backend.dispatch_key() != self.backend:
            self.net, self.backend, self.plans = model.network, backend.dispatch_key(), {}
        key = (x.shape, x.dtype, batch_size)
        if key in self.plans:
            return
        if len(self.plans) >= MAX_PLANS:
            self.plans = {}
        one = len(xs) == 1 and xs[0] is x and _one_batch(batch_size, len(x))
        self.plans[key] = make_plan(self.net, x) if one and mask is None else None


class PredictPlan:
    __slots__ = ("rows", "steps")

    def __init__(self, rows, steps):
        self.rows, self.steps = rows, steps

    def run(self, x):
        """The output for ``x`` (checked by :class:`PredictPlans`), or None when a layer
        changed."""
        if self.rows < 2:  # compute_scope(rows=1) does nothing
            return self._steps(x)
        with backend.compute_scope(rows=self.rows):
            return self._steps(x)

    def _steps(self, y):
        for step in self.steps:
            y = step(y)
            if y is None:
                return None
        return y


def _one_batch(batch_size, rows):
    return rows <= (DEFAULT_BATCH_SIZE if batch_size is None else batch_size)


def make_plan(net, x):
    """A :class:`PredictPlan` for calls on arrays like ``x`` (checked, one batch, no mask), or
    None when such calls take the general path."""
    if len(net.inputs) != 1 or len(net.outputs) != 1 or x.dtype.kind != "f":
        return None
    steps = _chain_steps(net, x.shape, x.dtype)
    return None if steps is None else PredictPlan(len(x), steps)


def _chain_steps(net, shape, dtype):
    """One step per node when the nodes form a chain (each reads the one before, no extra
    arguments) and every layer offers a plan for the shape it gets; else None."""
    steps, prev = [], net.inputs[0]
    for node in net.nodes:
        plain = not (node.multi or node.listed or node.initial_state or node.kwargs)
        if not plain or len(node.inputs) != 1 or node.inputs[0] is not prev:
            return None
        step = step_for(node.layer, shape, dtype, checked=not steps)
        if step is None or len(node.outputs) != 1:
            return None
        steps.append(step)
        prev, shape = node.outputs[0], step.output_shape
    if net.outputs[0] is not prev:
        return None
    return steps
