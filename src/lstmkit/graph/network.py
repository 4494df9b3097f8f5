"""The one inference and training core: a graph of layer nodes, run forward and backward.

``Network(inputs, outputs)`` walks the nodes from the output tensors back to the input tensors
(depth-first, as Keras' ``map_graph``), checks that every tensor can be computed from the given
inputs, and orders the nodes so each runs after the nodes it reads. ``Model``, ``Sequential``,
the NumPy runtime, tracing and streaming all run their layers through it:

- :meth:`Network.run` — forward over the nodes; with ``keep_cache`` it returns a :class:`Tape`
  of the layers' caches for :meth:`Network.backward`, else the layers' cache-free ``infer``.
- :meth:`Network.backward` — reverse order; a tensor read by several nodes gets the *sum* of
  their gradients; gradients reach ``initial_state`` tensors through ``backward_with_state``;
  a shared layer's parameter gradients are summed over its nodes.
- :meth:`Network.step` — one time step of every node (streaming), the states one list per node.

Values live in a dict keyed by tensor for the duration of one call; nothing is kept on the layers.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np

from ..layers import Attention, Bidirectional, Masking
from ..layers.base import fmt_shape
from .run_plan import make_plan
from .symbolic import Node, SymbolicTensor

#: layers that need the whole sequence at once: a backward direction, a mask over all steps
_WHOLE_SEQUENCE = (Attention, Bidirectional, Masking)


class Tape(NamedTuple):
    """What :meth:`Network.run` keeps for :meth:`Network.backward`."""

    caches: list  # one per node, in run order
    batch: int  # for zero gradients of outputs nobody used


class Network:
    def __init__(self, inputs, outputs, name="model"):
        self.name = name
        self.inputs: list[SymbolicTensor] = list(inputs)
        self.outputs: list[SymbolicTensor] = list(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise ValueError(
                    f"{name}: model inputs and outputs must be symbolic tensors (from Input() "
                    f"and layer calls); got {type(t).__name__}"
                )
        seen: dict[int, int] = {}
        for i, t in enumerate(self.inputs):
            if id(t) in seen:  # one slot a tensor: a repeat would feed two arrays to one place
                raise ValueError(
                    f"{name}: argument 'inputs' holds the same tensor at positions {seen[id(t)]} "
                    f"and {i}; expected each Input() once (feed the array once and use the "
                    "tensor twice in the graph)"
                )
            seen[id(t)] = i
        order, first_seen = _topological(self.inputs, self.outputs, name)
        self.nodes: list[Node] = [n for n in order if not n.is_input]
        _check_computable(self.inputs, self.nodes, name)
        self.layers = _keras_layer_order(self.inputs, order, first_seen)
        self._plan = make_plan(self.inputs, self.nodes, self.outputs)
        names = [la.name for la in self.layers]
        dup = sorted(n for n, k in Counter(names).items() if k > 1)  # linear, not names.count
        if dup:
            raise ValueError(f"{name}: layer names must be unique in a model; repeated: {dup}")

    # -- forward ---------------------------------------------------------------------------------
    def run(self, xs, *, training=False, masks=None, rng=None, keep_cache=True, record=None):
        """``xs`` one array per input -> ``(ys, out_masks, tape)`` (``tape`` None without cache).

        ``record``: a list that gets ``(node, output, cache)`` for every node (tracing)."""
        plan = self._plan  # the walk's slots, made once (run_plan.py)
        values, mvals = [None] * plan.slots, [None] * plan.slots
        for s, x in zip(plan.inputs, xs):
            values[s] = x
        for s, m in zip(plan.inputs, masks or ()):
            mvals[s] = m
        caches = []
        for st in plan.steps:
            if st.multi:
                x, m = [values[i] for i in st.ins], [mvals[i] for i in st.ins]
            else:
                x, m = values[st.ins[0]], mvals[st.ins[0]]
            kw = st.kwargs  # (read only: the call unpacks it)
            if st.init:
                kw = {**kw, "initial_state": [values[i] for i in st.init]}
            layer = st.layer
            if keep_cache:
                y, cache = layer.forward(x, training=training, mask=m, rng=rng, **kw)
                caches.append(cache)
            else:
                y = layer.infer(x, mask=m, **kw)
            _scatter(st, y, layer.compute_mask(x, m), values, mvals)
            if record is not None:
                record.append((st.node, y, caches[-1] if keep_cache else None))
        ys = [values[s] for s in plan.outputs]
        out_masks = [mvals[s] for s in plan.outputs]
        batch = len(xs[0]) if xs else 0
        return ys, out_masks, (Tape(caches, batch) if keep_cache else None)

    # -- backward --------------------------------------------------------------------------------
    def backward(self, dys, tape: Tape, from_logits=None) -> dict:
        """dLoss/d(each output) -> ``{"<layer>.<role>": gradient}`` of trainable parameters.

        ``from_logits[i]``: ``dys[i]`` is dLoss/d(the logits ``z``) of output ``i = softmax(z)``
        (see :meth:`output_logits`); its layer then runs ``backward_from_logits``."""
        plan = self._plan
        grads_t = [None] * plan.slots  # dLoss/d(each value), summed over its readers
        logit_nodes = {}
        for i, (t, s, dy) in enumerate(zip(self.outputs, plan.outputs, dys)):
            if dy is None:
                continue
            if from_logits and from_logits[i]:
                logit_nodes[id(t.node)] = dy
            else:
                _accumulate(grads_t, s, dy)
        grads: dict[str, np.ndarray] = {}
        for st, cache in reversed(list(zip(plan.steps, tape.caches))):
            if logit_nodes and id(st.node) in logit_nodes:
                dx, g = st.layer.backward_from_logits(logit_nodes[id(st.node)], cache)
            else:
                dy = _node_output_grads(st, grads_t, tape.batch)
                if dy is None:
                    continue  # nothing downstream of this node reaches the loss
                dx, g = _node_backward(st, dy, cache, grads_t)
            if dx is not None:
                for s, need, d in zip(st.ins, st.grad_ins, dx if st.multi else (dx,)):
                    if need and d is not None:
                        _accumulate(grads_t, s, d)
            _add_param_grads(grads, st.layer, g)
        return grads

    def output_logits(self, i, tape: Tape):
        """The logits ``z`` of output ``i`` when its layer computes ``softmax(z)``, else None."""
        node = self.outputs[i].node
        if node.listed or node not in self.nodes:
            return None
        return node.layer.output_logits(tape.caches[self.nodes.index(node)])

    def apply_state_updates(self, tape: Tape):
        """Assign what a training forward computed for non-trainable parameters (moving
        statistics), after the optimizer step: forward itself never changes a layer."""
        for node, cache in zip(self.nodes, tape.caches):
            for role, value in node.layer.state_updates(cache).items():
                node.layer.params[role][...] = value

    # -- streaming -------------------------------------------------------------------------------
    def step(self, xs_t, states=None):
        """One time step: ``xs_t`` one ``(batch, features)`` array per input -> ``(ys_t, states)``
        with one state entry per node (``None`` for stateless layers)."""
        plan = self._plan
        states = list(states) if states is not None else [None] * len(self.nodes)
        values, mvals = [None] * plan.slots, [None] * plan.slots
        for s, x in zip(plan.inputs, xs_t):
            values[s] = x
        new = []
        for node_step, st in zip(plan.steps, states):
            layer = node_step.layer
            if isinstance(layer, _WHOLE_SEQUENCE) or node_step.init or node_step.kwargs:
                raise ValueError(
                    f"{self.name}.step: layer {layer.name!r} ({type(layer).__name__}) needs the "
                    "whole sequence and cannot stream one step at a time"
                )
            ins = node_step.ins
            x = [values[i] for i in ins] if node_step.multi else values[ins[0]]
            if hasattr(layer, "step"):
                y, st = layer.step(x, st)
                if getattr(layer, "return_state", False):
                    y = [y, *st]
            else:
                y, _ = layer.forward(x)
            _scatter(node_step, y, None, values, mvals)
            new.append(st)
        return [values[s] for s in plan.outputs], new

    # -- parameters ------------------------------------------------------------------------------
    def params(self, trainable_only=False) -> dict:
        """Dotted name -> array; ``trainable_only``: what an optimizer updates (trainable layers,
        without their ``non_trainable_roles`` such as moving statistics)."""
        return {
            f"{layer.name}.{role}": p
            for layer in self.layers
            if layer.trainable or not trainable_only
            for role, p in layer.params.items()
            if not (trainable_only and role in layer.non_trainable_roles)
        }

    def check_inputs(self, xs, who):
        """Each array against its input's shape (batch free): errors name the input."""
        out = []
        for t, x in zip(self.inputs, xs):
            x = x if isinstance(x, np.ndarray) else np.asarray(x)
            ok = x.ndim == len(t.shape) and all(
                e is None or e == s for e, s in zip(t.shape, x.shape)
            )
            if not ok:
                arg = "x" if len(self.inputs) == 1 else f"x[{t.name!r}]"
                raise ValueError(
                    f"{who}: argument '{arg}' must have shape {fmt_shape(t.shape)}; got {x.shape}"
                )
            out.append(x)
        return out


# -- helpers --------------------------------------------------------------------------------------
def _scatter(st, y, mask, values, mvals):
    """A node's output(s) and mask(s) into their slots."""
    if not st.listed and not isinstance(mask, list):
        values[st.outs[0]], mvals[st.outs[0]] = y, mask
        return
    ys = list(y) if st.listed else [y]
    if st.listed and len(ys) != len(st.outs):
        raise ValueError(
            f"layer {st.layer.name!r} returned {len(ys)} outputs; expected {len(st.outs)}"
        )
    masks = mask if isinstance(mask, list) else [mask] + [None] * (len(ys) - 1)
    for s, v, m in zip(st.outs, ys, masks):
        values[s] = v
        mvals[s] = m


def _accumulate(grads_t, s, d):
    g = grads_t[s]
    grads_t[s] = d if g is None else g + d


def _node_output_grads(st, grads_t, batch):
    """dLoss/d(the node's output), taken out of ``grads_t``; None when nothing reached it."""
    if not st.listed:
        s = st.outs[0]
        d, grads_t[s] = grads_t[s], None
        return d
    ds = [grads_t[s] for s in st.outs]
    for s in st.outs:
        grads_t[s] = None
    for d in ds:  # (a loop, not all() over a generator: one Python call per item)
        if d is not None:
            break
    else:
        return None
    # a layer returning [output, *states]: unused outputs get zeros (states may stay None)
    if ds[0] is None:
        t = st.node.outputs[0]
        ds[0] = np.zeros((batch, *t.shape[1:]), t.dtype)
    return ds


def _node_backward(st, dy, cache, grads_t):
    """``(dx, parameter grads)`` of one node; gradients of its ``initial_state`` tensors go
    into ``grads_t``. ``dx`` None when no input needs it."""
    layer = st.layer
    if st.init:
        dx, g, dinit = layer.backward_with_state(dy, cache, need_dx=st.need_dx)
        for s, need, d in zip(st.init, st.grad_init, dinit):
            if need and d is not None:
                _accumulate(grads_t, s, d)
        return dx, g
    if st.need_dx:
        return layer.backward(dy, cache)
    return None, layer.param_grads(dy, cache)


def _add_param_grads(grads, layer, g):
    """A node's parameter gradients into ``grads`` by dotted name (a shared layer's summed),
    when its layer is trainable now, without its non-trainable roles."""
    if not layer.trainable:
        return
    skip, name = layer.non_trainable_roles, layer.name
    for role, v in g.items():
        if role in skip:
            continue
        key = f"{name}.{role}"
        grads[key] = v if key not in grads else grads[key] + v


def _topological(inputs, outputs, name):
    """Depth-first from the outputs: nodes ordered inputs -> outputs, and each layer's first
    traversal index (Keras' ``_build_map``)."""
    input_ids = {id(t) for t in inputs}
    done, in_progress, order, first_seen = set(), set(), [], {}

    def visit(t):
        node = t.node
        if node is None or id(node) in done:
            return
        if not node.is_input and id(t) in input_ids:
            done.add(id(node))  # an intermediate tensor given as input: the graph starts here
            return
        if id(node) in in_progress:
            raise ValueError(f"{name}: tensor from layer {node.layer.name!r} is part of a cycle")
        first_seen.setdefault(node.layer, len(first_seen))
        in_progress.add(id(node))
        for p in node.parents:
            visit(p)
        in_progress.discard(id(node))
        done.add(id(node))
        order.append(node)

    for t in outputs:
        visit(t)
    return order, first_seen


def _check_computable(inputs, nodes, name):
    known = {id(t) for t in inputs}
    for node in nodes:
        for t in node.parents:
            if id(t) not in known:
                src = t.node.layer.name if t.node is not None else "?"
                given = ", ".join(f"{x.name or '?'} {fmt_shape(x.shape)}" for x in inputs)
                raise ValueError(
                    f"{name}: graph disconnected: layer {node.layer.name!r} "
                    f"({type(node.layer).__name__}) needs tensor {fmt_shape(t.shape)} from "
                    f"{src!r}, which cannot be computed from the model inputs [{given}]; pass "
                    "every Input the outputs depend on"
                )
        known.update(id(t) for t in node.outputs)


def _keras_layer_order(inputs, order, first_seen):
    """``model.layers`` as Keras lists them: by decreasing depth (distance from the outputs),
    ties in traversal order; unused inputs last (depth 0)."""
    depth: dict[int, int] = {}
    layer_depth: dict = {}
    for node in reversed(order):
        d = depth.setdefault(id(node), 0)
        d = max(d, layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = d
        depth[id(node)] = d
        for p in node.parents:
            if p.node is not None:
                depth[id(p.node)] = max(depth.get(id(p.node), 0), d + 1)
    for t in inputs:
        layer = t.node.layer if t.node is not None else None
        if layer is not None and layer not in layer_depth:
            layer_depth[layer] = 0
            first_seen[layer] = -1
    return sorted(layer_depth, key=lambda la: (-layer_depth[la], first_seen.get(la, 0)))
