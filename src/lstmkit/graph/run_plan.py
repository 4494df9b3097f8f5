"""The graph walk of :class:`.network.Network`, made once per network: slots instead of tensors.

``Network.run`` and ``Network.backward`` used to find every value in a dict keyed by
``id(tensor)``, gather a node's inputs and masks through it, copy its keyword arguments and ask,
for each input, whether a model input or a node computes it: ~60 Python calls of a small
model's training step (the forecaster's, issue 18) that give the same answers at every step.
A :class:`RunPlan` numbers the tensors once (model inputs first, then each node's outputs, in
run order) and keeps, per node, a :class:`NodeStep`: the slots it reads and writes, its constant
keyword arguments, whether its inputs need a gradient. A run then holds its values in a list.

What the plan holds is the graph's structure, which a :class:`.network.Network` never changes
(``Sequential.add``/``pop`` and rebuilding make a new network): nothing about the layers, whose
``trainable`` flag, parameters, dtype and settings the walk reads at every step as before.
"""

from __future__ import annotations

from typing import NamedTuple


class NodeStep(NamedTuple):
    """One node of the walk, its tensors as slots of the run's value list."""

    node: object  # the graph's Node (its layer, for errors and tracing)
    layer: object
    ins: tuple  # slots of node.inputs
    multi: bool  # the layer takes a list
    outs: tuple  # slots of node.outputs
    listed: bool  # the layer returns a list
    kwargs: dict  # constant keyword arguments of the call (read only)
    init: tuple  # slots of node.initial_state
    grad_ins: tuple  # per input: whether a node computes it (its gradient is needed)
    grad_init: tuple  # the same per initial_state tensor
    need_dx: bool  # any of grad_ins


class RunPlan(NamedTuple):
    slots: int  # how many values a run holds
    inputs: tuple  # the model inputs' slots
    outputs: tuple  # the model outputs' slots
    steps: tuple  # NodeStep per node, in run order


def make_plan(inputs, nodes, outputs) -> RunPlan:
    """The plan of a network with model inputs ``inputs``, ``nodes`` in run order (every
    tensor they read computable, as :class:`.network.Network` checked) and ``outputs``."""
    slot = {id(t): i for i, t in enumerate(inputs)}
    given = set(slot)
    steps = []
    for node in nodes:
        steps.append(_node_step(node, slot, given))
        for t in node.outputs:
            slot[id(t)] = len(slot)
    outs = tuple(slot[id(t)] for t in outputs)
    return RunPlan(len(slot), tuple(range(len(inputs))), outs, tuple(steps))


def _node_step(node, slot, given) -> NodeStep:
    """``node``'s step; ``slot`` maps the tensors computed before it (``given``: the model
    inputs' ids) to their slots, and its outputs get the next ones."""
    grad_ins = tuple(id(t) not in given for t in node.inputs)
    n = len(slot)
    return NodeStep(
        node=node,
        layer=node.layer,
        ins=tuple(slot[id(t)] for t in node.inputs),
        multi=node.multi,
        outs=tuple(range(n, n + len(node.outputs))),
        listed=node.listed,
        kwargs=dict(node.kwargs),
        init=tuple(slot[id(t)] for t in node.initial_state),
        grad_ins=grad_ins,
        grad_init=tuple(id(t) not in given for t in node.initial_state),
        need_dx=any(grad_ins),
    )
