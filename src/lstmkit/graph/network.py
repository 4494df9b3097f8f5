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
        order, first_seen = _topological(self.inputs, self.outputs, name)
        self.nodes: list[Node] = [n for n in order if not n.is_input]
        _check_computable(self.inputs, self.nodes, name)
        self.layers = _keras_layer_order(self.inputs, order, first_seen)
        self._input_ids = {id(t) for t in self.inputs}
        names = [la.name for la in self.layers]
        dup = sorted(n for n, k in Counter(names).items() if k > 1)  # linear, not names.count
        if dup:
            raise ValueError(f"{name}: layer names must be unique in a model; repeated: {dup}")

    # -- forward ---------------------------------------------------------------------------------
    def run(self, xs, *, training=False, masks=None, rng=None, keep_cache=True, record=None):
        """``xs`` one array per input -> ``(ys, out_masks, tape)`` (``tape`` None without cache).

        ``record``: a list that gets ``(node, output, cache)`` for every node (tracing)."""
        values = {id(t): x for t, x in zip(self.inputs, xs)}
        mvals = {id(t): m for t, m in zip(self.inputs, masks or [None] * len(xs))}
        caches = []
        for node in self.nodes:
            x = _gather(node.inputs, values, node.multi)
            m = _gather(node.inputs, mvals, node.multi)
            kw = dict(node.kwargs)
            if node.initial_state:
                kw["initial_state"] = [values[id(s)] for s in node.initial_state]
            layer = node.layer
            if keep_cache:
                y, cache = layer.forward(x, training=training, mask=m, rng=rng, **kw)
                caches.append(cache)
            else:
                y = layer.infer(x, mask=m, **kw)
            out_mask = layer.compute_mask(x, m)
            _scatter(node, y, out_mask, values, mvals)
            if record is not None:
                record.append((node, y, caches[-1] if keep_cache else None))
        ys = [values[id(t)] for t in self.outputs]
        out_masks = [mvals[id(t)] for t in self.outputs]
        batch = len(xs[0]) if xs else 0
        return ys, out_masks, (Tape(caches, batch) if keep_cache else None)

    # -- backward --------------------------------------------------------------------------------
    def backward(self, dys, tape: Tape, from_logits=None) -> dict:
        """dLoss/d(each output) -> ``{"<layer>.<role>": gradient}`` of trainable parameters.

        ``from_logits[i]``: ``dys[i]`` is dLoss/d(the logits ``z``) of output ``i = softmax(z)``
        (see :meth:`output_logits`); its layer then runs ``backward_from_logits``."""
        grads_t: dict[int, np.ndarray] = {}
        logit_nodes = {}
        for i, (t, dy) in enumerate(zip(self.outputs, dys)):
            if dy is None:
                continue
            if from_logits and from_logits[i]:
                logit_nodes[id(t.node)] = dy
            else:
                _accumulate(grads_t, t, dy)
        grads: dict[str, np.ndarray] = {}
        for node, cache in reversed(list(zip(self.nodes, tape.caches))):
            if id(node) in logit_nodes:
                dx, g = node.layer.backward_from_logits(logit_nodes[id(node)], cache)
            else:
                dy = _node_output_grads(node, grads_t, tape.batch)
                if dy is None:
                    continue  # nothing downstream of this node reaches the loss
                dx, g = self._node_backward(node, dy, cache, grads_t)
            if dx is not None:
                for t, d in zip(node.inputs, dx if node.multi else [dx]):
                    if d is not None and id(t) not in self._input_ids:
                        _accumulate(grads_t, t, d)
            if node.layer.trainable:
                for role, v in g.items():
                    if role in node.layer.non_trainable_roles:
                        continue
                    key = f"{node.layer.name}.{role}"
                    grads[key] = v if key not in grads else grads[key] + v
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

    def _node_backward(self, node, dy, cache, grads_t):
        layer = node.layer
        need_dx = _reads_computed(node.inputs, self._input_ids)
        if node.initial_state:
            dx, g, dinit = layer.backward_with_state(dy, cache, need_dx=need_dx)
            for s, d in zip(node.initial_state, dinit):
                if d is not None and id(s) not in self._input_ids:
                    _accumulate(grads_t, s, d)
            return dx, g
        if need_dx:
            return layer.backward(dy, cache)
        return None, layer.param_grads(dy, cache)

    # -- streaming -------------------------------------------------------------------------------
    def step(self, xs_t, states=None):
        """One time step: ``xs_t`` one ``(batch, features)`` array per input -> ``(ys_t, states)``
        with one state entry per node (``None`` for stateless layers)."""
        states = list(states) if states is not None else [None] * len(self.nodes)
        values = {id(t): x for t, x in zip(self.inputs, xs_t)}
        new = []
        for node, st in zip(self.nodes, states):
            layer = node.layer
            if isinstance(layer, _WHOLE_SEQUENCE) or node.initial_state or node.kwargs:
                raise ValueError(
                    f"{self.name}.step: layer {layer.name!r} ({type(layer).__name__}) needs the "
                    "whole sequence and cannot stream one step at a time"
                )
            x = _gather(node.inputs, values, node.multi)
            if hasattr(layer, "step"):
                y, st = layer.step(x, st)
                if getattr(layer, "return_state", False):
                    y = [y, *st]
            else:
                y, _ = layer.forward(x)
            _scatter(node, y, None, values, {})
            new.append(st)
        return [values[id(t)] for t in self.outputs], new

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
def _gather(tensors, values, multi):
    return [values[id(t)] for t in tensors] if multi else values[id(tensors[0])]


def _scatter(node, y, mask, values, mvals):
    ys = list(y) if node.listed else [y]
    if node.listed and len(ys) != len(node.outputs):
        raise ValueError(
            f"layer {node.layer.name!r} returned {len(ys)} outputs; expected {len(node.outputs)}"
        )
    masks = mask if isinstance(mask, list) else [mask] + [None] * (len(ys) - 1)
    for t, v, m in zip(node.outputs, ys, masks):
        values[id(t)] = v
        mvals[id(t)] = m


def _accumulate(grads_t, t, d):
    k = id(t)
    grads_t[k] = d if k not in grads_t else grads_t[k] + d


def _node_output_grads(node, grads_t, batch):
    ds = [grads_t.pop(id(t), None) for t in node.outputs]
    for d in ds:  # (a loop, not all() over a generator: one Python call per item)
        if d is not None:
            break
    else:
        return None
    if not node.listed:
        return ds[0]
    # a layer returning [output, *states]: unused outputs get zeros (states may stay None)
    if ds[0] is None:
        t = node.outputs[0]
        ds[0] = np.zeros((batch, *t.shape[1:]), t.dtype)
    return ds


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


def _reads_computed(tensors, input_ids) -> bool:
    """Whether any of ``tensors`` is computed by a node (not a model input): its gradient is
    needed. A loop: ``any`` over a generator is one Python call per item, each training step."""
    for t in tensors:
        if id(t) not in input_ids:
            return True
    return False
