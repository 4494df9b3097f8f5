"""Functional models in the converters.

PyTorch ``nn.Sequential``-style modules, state dicts and the ONNX exporter express a *chain* of
layers. :func:`as_chain` turns a functional model that is one (one input, one output, each layer
reading the previous one) into the equivalent ``Sequential`` sharing the same layers and weights,
and refuses any other graph with an error naming the layer that makes it a graph. Keras expresses
every graph: :func:`to_keras_functional` rebuilds one node by node.
"""

from __future__ import annotations


def as_chain(model, who):
    """``model`` itself if it is a ``Sequential``; the same layers as a ``Sequential`` if it is a
    functional chain; else ValueError naming the part that is not a chain."""
    from ..models import Sequential

    if isinstance(model, Sequential) or not hasattr(model, "network"):
        return model
    net = model.network
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise ValueError(
            f"{who}: model {model.name!r} has {len(net.inputs)} inputs and {len(net.outputs)} "
            "outputs; this format expresses a chain of layers (one input, one output). Convert "
            "the encoder and decoder parts as separate models, or use to_keras for the graph"
        )
    expected = net.inputs[0]
    for node in net.nodes:
        if node.multi or node.initial_state or node.inputs[0] is not expected:
            why = (
                "takes initial_state from another layer"
                if node.initial_state
                else "reads several tensors"
                if node.multi
                else "does not read the previous layer's output"
            )
            raise ValueError(
                f"{who}: layer {node.layer.name!r} ({type(node.layer).__name__}) {why}; this "
                "format expresses a chain of layers only (use to_keras for a graph)"
            )
        if node.listed and node is not net.nodes[-1]:
            raise ValueError(
                f"{who}: layer {node.layer.name!r} returns states inside the model; this format "
                "expresses a chain of layers only"
            )
        expected = node.outputs[0]
    seq = Sequential(name=model.name)
    seq._layers = [n.layer for n in net.nodes]
    seq._batch_shape = tuple(net.inputs[0].shape)
    seq.build(seq._batch_shape)
    seq.metadata = getattr(model, "metadata", {})
    return seq


def to_keras_functional(model, keras, keras_layer):
    """A ``keras.Model`` with the same graph, configs and weights (shared layers stay shared)."""
    net = model.network
    kt, made = {}, {}
    for t in net.inputs:
        layer = t.node.layer
        kt[id(t)] = keras.Input(shape=t.shape[1:], dtype=t.dtype, name=layer.name)
    for node in net.nodes:
        kl = made.get(id(node.layer))
        if kl is None:
            kl = made[id(node.layer)] = keras_layer(keras, node.layer)
        x = [kt[id(t)] for t in node.inputs] if node.multi else kt[id(node.inputs[0])]
        kw = {}
        if node.initial_state:
            kw["initial_state"] = [kt[id(s)] for s in node.initial_state]
        y = kl(x, **kw)
        for t, v in zip(node.outputs, list(y) if node.listed else [y]):
            kt[id(t)] = v
    ins = [kt[id(t)] for t in net.inputs]
    outs = [kt[id(t)] for t in net.outputs]
    km = keras.Model(
        ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name=model.name
    )
    layers = {id(n.layer): n.layer for n in net.nodes}
    for key, kl in made.items():
        kl.set_weights(layers[key].get_weights())
    return km
