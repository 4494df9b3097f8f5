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

Keras features without an lstmkit counterpart raise ``ValueError``: GRU ``reset_after=False``,
LSTM/GRU activations other than tanh/sigmoid, Dense activations other than linear, relu, tanh,
sigmoid, layers other than those above. Regularizers, constraints and initializers only matter for
training and are not carried over (lstmkit layers get their defaults). A recurrent layer with
``use_bias=False`` becomes an lstmkit layer whose bias is zero.

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


def _recurrent_from_config(class_name, cfg):
    from ..layers import GRU, LSTM, SimpleRNN

    kw = {
        "units": cfg["units"],
        "return_sequences": cfg.get("return_sequences", False),
        "return_state": cfg.get("return_state", False),
        "go_backwards": cfg.get("go_backwards", False),
        "stateful": cfg.get("stateful", False),
        "dropout": cfg.get("dropout", 0.0),
        "recurrent_dropout": cfg.get("recurrent_dropout", 0.0),
        "name": cfg.get("name"),
        "dtype": _dtype(cfg),
    }
    if cfg.get("zero_output_for_mask"):
        kw["zero_output_for_mask"] = True
    if class_name == "SimpleRNN":
        act = _activation(cfg, "activation", ("tanh", "relu"), class_name)
        return SimpleRNN(activation=act, **kw)
    _activation(cfg, "activation", ("tanh",), class_name)
    _activation(cfg, "recurrent_activation", ("sigmoid",), class_name)
    if class_name == "GRU":
        if not cfg.get("reset_after", True):
            raise ValueError(
                f"from_keras: GRU {cfg.get('name')!r} has reset_after=False; lstmkit implements "
                "the reset_after=True (cuDNN/PyTorch) convention only"
            )
        return GRU(**kw)
    return LSTM(unit_forget_bias=cfg.get("unit_forget_bias", True), **kw)


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
    model.build(_input_shape(config, build_config))
    return model


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
        rkw = dict(
            return_sequences=layer.return_sequences,
            return_state=layer.return_state,
            go_backwards=layer.go_backwards,
            stateful=layer.stateful,
            dropout=layer.dropout,
            recurrent_dropout=layer.recurrent_dropout,
            **kw,
        )
        if isinstance(layer, LSTM):
            return keras.layers.LSTM(layer.units, unit_forget_bias=layer.unit_forget_bias, **rkw)
        if isinstance(layer, GRU):
            return keras.layers.GRU(layer.units, reset_after=True, **rkw)
        return keras.layers.SimpleRNN(layer.units, activation=layer.activation, **rkw)
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

    if not model.built:
        raise ValueError(f"to_keras: build {model.name!r} (give input_shape) before converting it")
    keras = _import_keras()
    first = model.layers[0]
    in_dtype = "int32" if isinstance(first, Embedding) else (first.dtype or "float32")
    inp = keras.Input(shape=tuple(model.input_shape), batch_size=batch_size, dtype=in_dtype)
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
