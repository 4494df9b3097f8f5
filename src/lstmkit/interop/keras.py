"""lstmkit <-> Keras 3 Sequential models of LSTM, GRU, SimpleRNN, Bidirectional, Dense, Embedding,
Dropout and Masking layers.

Public names::

    from_keras(model_or_path, *, model=None) -> Sequential
    to_keras(model, *, batch_size=None) -> keras.Sequential
    save_keras(model, path)                                  # a .keras file, written by Keras

lstmkit keeps Keras' parameter layouts and gate orders (``kernel (D, 4H)``, ``recurrent_kernel
(H, 4H)``, ``bias (4H,)``, i, f, g, o; GRU ``bias (2, 3H)``, z, r, n with ``reset_after=True``),
so weights cross unchanged, in ``get_weights()`` order; only the layer configs are translated.

A ``.keras`` file is a zip of ``config.json`` (the architecture, read here as JSON) and
``model.weights.h5`` (read with h5py, which Keras depends on): loading one needs neither Keras nor
its backend. ``from_keras`` also takes a live ``keras.Sequential``, or a ``get_weights()`` list
together with an lstmkit ``model`` of the same architecture.

Recurrent layers carry every Keras 3 constructor argument both ways (activations, ``use_bias``,
GRU ``reset_after``, initializers, regularizers and constraints as Keras' config dicts, ``seed``,
``unroll``, ``zero_output_for_mask``). Keras features without an lstmkit counterpart raise
``ValueError``: activations without an element-wise derivative (softmax ...), Dense activations
other than linear, relu, tanh, sigmoid, layers other than those above.

Keras needs a backend chosen before it is imported (``KERAS_BACKEND``). When none is set and
TensorFlow and JAX are not installed, ``to_keras``/``save_keras`` select the torch backend.
"""

from __future__ import annotations

import json
import os
import re
import zipfile

import numpy as np

from .. import _optional
from . import gates

RECURRENT = ("LSTM", "GRU", "SimpleRNN")
SUPPORTED = RECURRENT + ("Bidirectional", "Dense", "Embedding", "Dropout", "Masking", "InputLayer")


def _import_keras(feature="to_keras"):
    # Keras needs a backend before it is imported; a missing one names the extra to install
    return _optional.keras(feature)


# -- Keras config -> lstmkit layers -----------------------------------------------------------
def _dtype(cfg) -> str | None:
    d = cfg.get("dtype")
    if isinstance(d, dict):  # DTypePolicy
        d = d.get("config", {}).get("name")
    if d in (None, "float32", "float64"):
        return d
    raise ValueError(
        f"from_keras: layer {cfg.get('name')!r} has dtype policy {d!r}; lstmkit supports float32 "
        "and float64"
    )


def _activation(cfg, key, allowed, who):
    act = cfg.get(key, "linear")
    if isinstance(act, dict):  # a serialized function
        act = act.get("config", act.get("class_name"))
    act = None if act in (None, "linear") else act
    if act not in allowed:
        raise ValueError(
            f"from_keras: {who} {cfg.get('name')!r} has {key}={act!r}; lstmkit supports {allowed}"
        )
    return act


#: Keras 3 recurrent-layer arguments lstmkit takes as Keras writes them
_RECURRENT_ARGS = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
    "unit_forget_bias",
    "reset_after",
    "use_cudnn",
)


def _recurrent_from_config(class_name, cfg):
    from ..layers import GRU, LSTM, SimpleRNN

    kw = {k: cfg[k] for k in _RECURRENT_ARGS if k in cfg}
    for key in ("activation", "recurrent_activation"):
        if isinstance(kw.get(key), dict):  # a serialized function: its registered name
            kw[key] = kw[key].get("config", kw[key].get("class_name"))
    cls = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[class_name]
    try:
        return cls(name=cfg.get("name"), dtype=_dtype(cfg), **kw)
    except (ValueError, TypeError) as e:
        raise ValueError(f"from_keras: {class_name} {cfg.get('name')!r}: {e}") from None


def _layer_from_config(spec):
    """One Keras layer config (``{"class_name", "config"}``) -> an lstmkit layer."""
    from ..layers import Bidirectional, Dense, Dropout, Embedding, Masking

    name, cfg = spec.get("class_name"), spec.get("config", {})
    if name not in SUPPORTED:
        raise ValueError(
            f"from_keras: layer {cfg.get('name')!r} is a {name}; lstmkit converts {list(SUPPORTED)}"
        )
    if name in RECURRENT:
        return _recurrent_from_config(name, cfg)
    if name == "Bidirectional":
        inner = spec["config"]["layer"]
        fwd = _layer_from_config(inner)
        bwd = None
        bspec = cfg.get("backward_layer")
        if bspec is not None:
            mirror = (
                bspec.get("class_name") == inner.get("class_name")
                and bspec["config"].get("units") == inner["config"].get("units")
                and bool(bspec["config"].get("go_backwards")) != bool(fwd.go_backwards)
                and bspec["config"].get("activation") == inner["config"].get("activation")
            )
            if not mirror:  # a genuinely different backward layer
                bwd = _layer_from_config(bspec)
        return Bidirectional(
            fwd,
            merge_mode=cfg.get("merge_mode", "concat"),
            backward_layer=bwd,
            name=cfg.get("name"),
        )
    if name == "Dense":
        return Dense(
            cfg["units"],
            activation=_activation(cfg, "activation", (None, "relu", "tanh", "sigmoid"), "Dense"),
            use_bias=cfg.get("use_bias", True),
            name=cfg.get("name"),
            dtype=_dtype(cfg),
        )
    if name == "Embedding":
        return Embedding(
            cfg["input_dim"],
            cfg["output_dim"],
            mask_zero=cfg.get("mask_zero", False),
            name=cfg.get("name"),
            dtype=_dtype(cfg),
        )
    if name == "Dropout":
        ns = cfg.get("noise_shape")
        return Dropout(cfg["rate"], noise_shape=ns, seed=cfg.get("seed"), name=cfg.get("name"))
    return Masking(cfg.get("mask_value", 0.0), name=cfg.get("name"))


def _input_shape(config: dict, build_config=None):
    """``(timesteps, features)`` (or ``(timesteps,)`` for token ids) from a Sequential config."""
    for spec in config.get("layers", []):
        if spec.get("class_name") == "InputLayer":
            c = spec["config"]
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            if shape is None and c.get("shape") is not None:
                return tuple(c["shape"])
            return tuple(shape[1:])
    for src in (build_config or {}, config):
        shape = src.get("input_shape") or src.get("build_input_shape")
        if shape is not None:
            return tuple(shape[1:])
    layers = config.get("layers", [])
    if layers and layers[0].get("build_config", {}).get("input_shape"):
        return tuple(layers[0]["build_config"]["input_shape"][1:])
    raise ValueError(
        "from_keras: the Keras model has no input shape (build it or give keras.Input)"
    )


def _model_from_config(config: dict, build_config=None):
    from ..models import Sequential

    specs = [s for s in config.get("layers", []) if s.get("class_name") != "InputLayer"]
    layers = [_layer_from_config(s) for s in specs]
    dtypes = {la.dtype for la in layers if la.dtype}
    model = Sequential(
        layers, name=config.get("name"), dtype="float64" if "float64" in dtypes else None
    )
    model.build((None, *_input_shape(config, build_config)))
    return model


def _functional_from_config(config: dict):
    """A Keras 3 functional config (``layers`` with ``inbound_nodes``) -> lstmkit ``Model``."""
    from ..graph.symbolic import Input
    from ..models import Model

    outputs, pending = {}, []
    for s in config.get("layers", []):
        name = s.get("name") or s["config"]["name"]
        if s.get("class_name") == "InputLayer":
            c = s["config"]
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            outputs[(name, 0)] = [Input(batch_shape=shape, dtype=c.get("dtype"), name=name)]
        else:
            pending.append([_layer_from_config(s), list(s.get("inbound_nodes") or [])])

    def tensor(v):
        if isinstance(v, list):
            return [tensor(x) for x in v]
        n, i, j = v["config"]["keras_history"]
        return outputs[(n, i)][j]

    def ready(v):
        if isinstance(v, list):
            return all(ready(x) for x in v)
        n, i, _ = v["config"]["keras_history"]
        return (n, i) in outputs

    def node_inputs(node):
        return [node["args"][0], *((node.get("kwargs") or {}).get("initial_state") or [])]

    while any(nodes for _, nodes in pending):
        progress = False
        for layer, nodes in pending:
            while nodes and ready(node_inputs(nodes[0])):
                node = nodes.pop(0)
                init = (node.get("kwargs") or {}).get("initial_state")
                kw = {"initial_state": tensor(init)} if init else {}
                y = layer(tensor(node["args"][0]), **kw)
                k = sum(1 for key in outputs if key[0] == layer.name)
                outputs[(layer.name, k)] = y if isinstance(y, list) else [y]
                progress = True
        if not progress:
            raise ValueError(
                "from_keras: the functional config has nodes whose inputs never appear"
            )

    def refs(v):
        return [v] if v and isinstance(v[0], str) else v

    ins = [outputs[(n, i)][j] for n, i, j in refs(config["input_layers"])]
    outs = [outputs[(n, i)][j] for n, i, j in refs(config["output_layers"])]
    return Model(
        ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name=config.get("name")
    )


def _complete(layer, weights):
    """Keras weights of one layer -> lstmkit's list: zero biases for ``use_bias=False``."""
    expected = layer.weight_names
    if len(weights) == len(expected):
        return weights
    if type(layer).__name__ == "Bidirectional" and len(weights) == len(expected) - 2:
        half = len(weights) // 2
        return _complete(layer.forward_layer, weights[:half]) + _complete(
            layer.backward_layer, weights[half:]
        )
    if expected == ("kernel", "recurrent_kernel", "bias") and len(weights) == 2:
        return list(weights) + [np.zeros_like(layer.params["bias"])]
    raise ValueError(
        f"from_keras: layer {layer.name!r} has {len(weights)} weight arrays; expected "
        f"{len(expected)} {list(expected)}"
    )


def _set_layer_weights(model, per_layer: dict):
    """``{layer name: [arrays in Keras order]}`` -> the model, every mismatch listed at once."""
    problems = []
    for layer in model.layers:
        if not layer.weight_names:
            continue
        if layer.name not in per_layer:
            problems.append(f"no weights for layer {layer.name!r}")
            continue
        try:
            layer.set_weights(_complete(layer, [np.asarray(w) for w in per_layer[layer.name]]))
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise ValueError(
            "from_keras: weights do not match the architecture: " + "; ".join(problems)
        )


# -- .keras files ----------------------------------------------------------------------------
def _snake(class_name):
    # keras.src.utils.naming.to_snake_case: "SimpleRNN" -> "simple_rnn"
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _h5_layer_weights(group, class_name) -> list:
    """The variables of one layer's group in ``model.weights.h5``, in ``get_weights()`` order."""

    def walk(g, children=None):
        out = []
        if "vars" in g:
            out += [g["vars"][k][()] for k in sorted(g["vars"], key=int)]
        for k in children or sorted(k for k in g if k != "vars"):
            if k in g and hasattr(g[k], "keys"):
                out += walk(g[k])
        return out

    if class_name == "Bidirectional":
        return walk(group, ["forward_layer", "backward_layer"])
    return walk(group)


def _load_keras_file(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"from_keras: no such file {path!r}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"from_keras: {path!r} is not a .keras file (not a zip archive)") from None
    with zf:
        names = set(zf.namelist())
        if not {"config.json", "model.weights.h5"} <= names:
            raise ValueError(
                f"from_keras: {path!r} must hold config.json and model.weights.h5; has {sorted(names)}"
            )
        spec = json.loads(zf.read("config.json"))
        if spec.get("class_name") != "Sequential":
            raise ValueError(
                f"from_keras: {path!r} holds a {spec.get('class_name')}; only Sequential models convert"
            )
        model = _model_from_config(spec["config"], spec.get("build_config"))
        import io

        h5py = _optional.require("h5py", "from_keras (.keras file)", extra="keras")

        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            groups = f.get("layers", {})
            per_layer, used = {}, {}
            for s in spec["config"]["layers"]:
                if s["class_name"] == "InputLayer":
                    continue
                # Keras names the groups after the class, not the layer name: lstm, lstm_1, ...
                key = _snake(s["class_name"])
                used[key] = used.get(key, -1) + 1
                key = key if used[key] == 0 else f"{key}_{used[key]}"
                name = s["config"].get("name")
                key = key if key in groups else name
                if key in groups:
                    per_layer[name] = _h5_layer_weights(groups[key], s["class_name"])
    _set_layer_weights(model, per_layer)
    return model


def from_keras(model_or_path, *, model=None):
    """lstmkit ``Sequential`` from a Keras 3 Sequential.

    ``model_or_path``: a ``.keras`` file path (read without importing Keras), a live
    ``keras.Sequential`` (architecture from ``get_config()``, weights from each layer's
    ``get_weights()``), or a ``get_weights()`` list, in which case ``model`` (an lstmkit model of
    the same architecture) receives the weights and is returned.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        return _load_keras_file(model_or_path)
    if isinstance(model_or_path, (list, tuple)):
        if model is None:
            raise ValueError(
                "from_keras: a get_weights() list carries no architecture; pass model=<lstmkit "
                "model of the same architecture>"
            )
        model.set_weights([np.asarray(w) for w in model_or_path])
        return model
    km = model_or_path
    if type(km).__name__ == "Functional" and hasattr(km, "get_config"):
        out = _functional_from_config(km.get_config())
        _set_layer_weights(out, {la.name: la.get_weights() for la in km.layers})
        return out
    if type(km).__name__ != "Sequential" or not hasattr(km, "get_config"):
        raise ValueError(
            f"from_keras: argument 'model_or_path' must be a keras.Sequential, a .keras path or a "
            f"weights list; got {type(km).__name__}"
        )
    config = km.get_config()
    build = {}
    if getattr(km, "inputs", None):
        build = {"input_shape": [None, *tuple(km.inputs[0].shape)[1:]]}
    out = _model_from_config(config, build)
    _set_layer_weights(out, {la.name: la.get_weights() for la in km.layers})
    return out


# -- lstmkit -> Keras -------------------------------------------------------------------------
def _keras_layer(keras, layer):
    from ..layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Masking, SimpleRNN

    kw = {"name": layer.name}
    if isinstance(layer, Bidirectional):
        bwd = _keras_layer(keras, layer.backward_layer) if layer._has_custom_backward else None
        inner = _keras_layer(keras, layer.forward_layer)
        return keras.layers.Bidirectional(
            inner, merge_mode=layer.merge_mode, backward_layer=bwd, **kw
        )
    kw["dtype"] = layer.dtype
    if isinstance(layer, (LSTM, GRU, SimpleRNN)):
        gates.cell_of(layer)  # refuses LSTM variants Keras has no cell for
        cfg = {k: v for k, v in layer.get_config().items() if k in _RECURRENT_ARGS}
        # lstmkit's forget_bias only sets a starting value: the weights carry it
        return getattr(keras.layers, type(layer).__name__)(**cfg, **kw)
    if isinstance(layer, Dense):
        return keras.layers.Dense(
            layer.units, activation=layer.activation, use_bias=layer.use_bias, **kw
        )
    if isinstance(layer, Embedding):
        return keras.layers.Embedding(
            layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero, **kw
        )
    if isinstance(layer, Dropout):
        return keras.layers.Dropout(
            layer.rate, noise_shape=layer.noise_shape, seed=layer.seed, **kw
        )
    if isinstance(layer, Masking):
        return keras.layers.Masking(layer.mask_value, **kw)
    raise ValueError(
        f"to_keras: layer {layer.name!r} ({type(layer).__name__}) has no Keras equivalent"
    )


def to_keras(model, *, batch_size=None):
    """A ``keras.Sequential`` with the same layers, configs and weights as ``model``.

    ``batch_size`` fixes the input's batch dimension (Keras' stateful RNNs need one).
    """
    from ..layers import Embedding
    from ..models import Sequential
    from .graph import to_keras_functional

    if not model.built:
        raise ValueError(f"to_keras: build {model.name!r} (give input_shape) before converting it")
    keras = _import_keras()
    if not isinstance(model, Sequential):
        return to_keras_functional(model, keras, _keras_layer)
    first = model.layers[0]
    in_dtype = "int32" if isinstance(first, Embedding) else (first.dtype or "float32")
    inp = keras.Input(shape=tuple(model.input_shape[1:]), batch_size=batch_size, dtype=in_dtype)
    km = keras.Sequential([inp] + [_keras_layer(keras, la) for la in model.layers], name=model.name)
    for kl, la in zip(km.layers, model.layers):
        kl.set_weights(la.get_weights())
    return km


def save_keras(model, path, *, batch_size=None):
    """Write ``model`` as a ``.keras`` file (Keras' own writer, so Keras loads it back)."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"save_keras: argument 'path' must end in .keras; got {path!r}")
    to_keras(model, batch_size=batch_size).save(path)
