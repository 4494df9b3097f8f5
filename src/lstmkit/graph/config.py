"""A network as JSON and back (Keras' functional config, simplified).

::

    {"layers": [{"class_name": "LSTM", "config": {...}, "name": "lstm",
                 "inbound_nodes": [{"inputs": [["input_layer", 0, 0]], "multi": false,
                                    "initial_state": [["lstm_enc", 0, 1], ...],
                                    "kwargs": {"return_attention_scores": true}}]}, ...],
     "input_layers": [["input_layer", 0, 0], ...], "output_layers": [["dense", 0, 0], ...]}

A tensor is named ``[layer name, node index, output index]``, node indices counting only this
network's nodes of that layer (a layer shared with another model may have more).
"""

from __future__ import annotations

from ..layers import deserialize, serialize
from .symbolic import InputLayer


def network_config(net) -> dict:
    own = {id(n) for n in net.nodes}
    own.update(id(t.node) for t in net.inputs)

    def node_index(node):
        mine = [n for n in node.layer._inbound_nodes if id(n) in own]
        return mine.index(node)

    def ref(t):
        return [t.node.layer.name, node_index(t.node), t.index]

    layers = []
    for layer in net.layers:
        entry = {**_serialize(layer), "name": layer.name, "inbound_nodes": []}
        for node in layer._inbound_nodes:
            if id(node) not in own or node.is_input:
                continue
            nd = {"inputs": [ref(t) for t in node.inputs], "multi": node.multi}
            if node.initial_state:
                nd["initial_state"] = [ref(t) for t in node.initial_state]
            if node.kwargs:
                nd["kwargs"] = dict(node.kwargs)
            entry["inbound_nodes"].append(nd)
        layers.append(entry)
    return {
        "layers": layers,
        "input_layers": [ref(t) for t in net.inputs],
        "output_layers": [ref(t) for t in net.outputs],
    }


def _serialize(layer):
    if isinstance(layer, InputLayer):
        return {"class_name": "InputLayer", "config": layer.get_config()}
    return serialize(layer)


def network_from_config(config):
    """-> ``(input tensors, output tensors)``, every layer called again in a valid order."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("functional model config must be a dict with a 'layers' list")
    created, pending = {}, []
    for lc in config["layers"]:
        if not isinstance(lc, dict) or not isinstance(lc.get("name"), str):
            raise ValueError(f"functional model config: bad layer entry {lc!r:.200}")
        if lc.get("class_name") == "InputLayer":
            layer = InputLayer.from_config(lc.get("config") or {})
        else:
            layer = deserialize({"class_name": lc.get("class_name"), "config": lc.get("config")})
        if layer.name != lc["name"]:
            raise ValueError(f"functional model config: layer name mismatch {lc['name']!r}")
        created[lc["name"]] = layer
        nodes = lc.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ValueError(f"functional model config: 'inbound_nodes' of {lc['name']!r}")
        pending.append([layer, list(nodes)])
    outputs = {}  # (layer name, node index) -> list of output tensors
    for name, layer in created.items():
        if isinstance(layer, InputLayer):
            outputs[(name, 0)] = layer._inbound_nodes[0].outputs
    counts = {name: 0 for name in created}
    _call_all(pending, outputs, counts)

    def get(r):
        try:
            name, ni, ti = r
            return outputs[(name, ni)][ti]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"functional model config: unknown tensor {r!r:.100}") from None

    ins = [get(r) for r in config.get("input_layers") or []]
    outs = [get(r) for r in config.get("output_layers") or []]
    return ins, outs


def _call_all(pending, outputs, counts):
    """Call each layer on its nodes' inputs once they exist; a pass that makes no progress means
    the config refers to tensors nobody produces."""
    while any(nodes for _, nodes in pending):
        progress = False
        for entry in pending:
            layer, nodes = entry
            while nodes and _ready(nodes[0], outputs):
                nd = nodes.pop(0)
                ins = [outputs[(r[0], r[1])][r[2]] for r in nd["inputs"]]
                states = [outputs[(r[0], r[1])][r[2]] for r in nd.get("initial_state") or []]
                x = ins if nd.get("multi") else ins[0]
                kw = _node_kwargs(layer, nd)
                if states:
                    kw["initial_state"] = states
                y = layer(x, **kw)
                outputs[(layer.name, counts[layer.name])] = y if isinstance(y, list) else [y]
                counts[layer.name] += 1
                progress = True
        if not progress:
            stuck = [layer.name for layer, nodes in pending if nodes]
            raise ValueError(f"functional model config: cannot connect layers {stuck}")


def _node_kwargs(layer, nd):
    """A node's recorded call arguments (checked again by the symbolic call)."""
    kw = nd.get("kwargs") or {}
    if not isinstance(kw, dict) or "initial_state" in kw:
        raise ValueError(
            f"functional model config: bad 'kwargs' of a node of {layer.name!r}: {kw!r:.100}"
        )
    return dict(kw)


def _ready(nd, outputs):
    if not isinstance(nd, dict) or not isinstance(nd.get("inputs"), list):
        raise ValueError(f"functional model config: bad node {nd!r:.200}")
    refs = nd["inputs"] + list(nd.get("initial_state") or [])
    for r in refs:
        if not (isinstance(r, list) and len(r) == 3):
            raise ValueError(f"functional model config: bad tensor reference {r!r:.100}")
    return all((r[0], r[1]) in outputs and 0 <= r[2] < len(outputs[(r[0], r[1])]) for r in refs)


# -- Sequential: a chain ---------------------------------------------------------------------------
def chain(layers, batch_shape, dtype=None, rng=None, name="sequential", input_dtype=None):
    """``Input(batch_shape) -> layers[0] -> ... -> layers[-1]``: ``(input, output)`` tensors (the
    output a list when the last layer returns states). Unbuilt layers are built with ``rng``."""
    from ..layers import Embedding

    if not layers:
        raise ValueError(f"{name}: add layers before building the model")
    first = layers[0]
    if not first.built:
        first.build(tuple(batch_shape[1:]), rng, dtype)
    if input_dtype is None:
        input_dtype = "int32" if isinstance(first, Embedding) else (first.dtype or "float32")
    x = InputLayer(batch_shape=batch_shape, dtype=input_dtype, name=f"{name}_input").output
    inp, prev = x, None
    for layer in layers:
        if isinstance(x, list):
            raise ValueError(
                f"Sequential: layer {prev.name!r} has return_state=True; only the last "
                "layer of a Sequential model may return states"
            )
        if not layer.built:
            layer.build(x.shape[1:], rng, dtype)
        x, prev = layer(x), layer
    return inp, x


def network_from_model_config(spec, rng=None):
    """``{"class_name": "Sequential" | "Model", "config": ...}`` (a saved architecture) ->
    ``(Network, output structure)`` without the trainer (the NumPy runtime uses it)."""
    from .network import Network

    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError("unsupported model description")
    config, kind = spec["config"], spec.get("class_name")
    if kind == "Sequential":
        if not isinstance(config.get("layers"), list):
            raise ValueError("Sequential config must have a 'layers' list")
        first = config["layers"][0].get("config", {}) if config["layers"] else {}
        if config.get("input_shape") is None and first.get("input_shape") is None:
            raise ValueError("the architecture has no input shape")
        layers = [deserialize(lc) for lc in config["layers"]]
        shape = (layers[0].input_shape if layers else None) or config["input_shape"]
        inp, out = chain(layers, (None, *shape), config.get("dtype"), rng)
        outs = out if isinstance(out, list) else [out]
        return Network([inp], outs, config.get("name", "sequential")), (
            "list" if isinstance(out, list) else "single"
        )
    if kind in ("Model", "Functional"):
        ins, outs = network_from_config(config)
        structure = config.get("output_structure", "list")
        return Network(ins, outs, config.get("name", "functional")), structure
    raise ValueError(f"unsupported model class {kind!r:.100}")
