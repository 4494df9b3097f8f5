"""PyTorch state dicts <-> lstmkit parameters, with NumPy alone (no torch import).

The layout conversion behind :mod:`lstmkit.interop.torch`; the public names are re-exported
there. A model is described as a list of *blocks*, one per torch module in forward order::

    {"kind": "rnn", "cell", "nonlinearity", "units", "num_layers", "bidirectional", "bias",
     "return_sequences", "prefix", "layers": [lstmkit layer names]}
    {"kind": "linear", "units", "bias", "prefix", "layers": [name]}
    {"kind": "embedding", "prefix", "layers": [name]}
    {"kind": "act", "activation"}  /  {"kind": "dropout", "rate"}

``prefix`` is the module's key prefix in the state dict (``"0."``, ``"lstm."``). Gate orders and
bias splits come from :mod:`lstmkit.interop.gates`.
"""

from __future__ import annotations

import os
import pickle
import re

import numpy as np

from .. import _optional
from . import gates
from .gates import TORCH

_RNN_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _rnn_layer_info(layer):
    """lstmkit layer -> ``(inner recurrent layer, bidirectional)`` or ``None`` if not recurrent."""
    from ..layers import Bidirectional, RNNBase

    if isinstance(layer, Bidirectional):
        if layer.merge_mode != "concat":
            raise ValueError(
                f"to_torch: Bidirectional layer {layer.name!r} has merge_mode="
                f"{layer.merge_mode!r}; PyTorch's bidirectional RNNs concatenate (merge_mode='concat')"
            )
        if layer._has_custom_backward:
            raise ValueError(
                f"to_torch: Bidirectional layer {layer.name!r} has a custom backward_layer; "
                "PyTorch's reverse direction is the same cell type and size"
            )
        inner, bidirectional = layer.forward_layer, True
    elif isinstance(layer, RNNBase):
        inner, bidirectional = layer, False
    else:
        return None
    if inner.go_backwards:
        raise ValueError(
            f"to_torch: layer {layer.name!r} reads its input backwards (go_backwards=True); "
            "PyTorch has no such RNN"
        )
    if inner.return_state:
        raise ValueError(f"to_torch: layer {layer.name!r} has return_state=True; not supported")
    _check_torch_cell(layer.name, inner)
    return inner, bidirectional


def _check_torch_cell(name, inner):
    """Refuse the Keras cell arguments PyTorch's modules cannot compute (use_bias=False maps to
    ``bias=False``; initializers, regularizers, constraints, seed and unroll do not change what
    a trained layer computes)."""
    if inner.cell == "rnn":
        if inner.activation not in ("tanh", "relu"):
            raise ValueError(
                f"to_torch: layer {name!r} has activation={inner.activation!r}; nn.RNN's "
                "nonlinearity is 'tanh' or 'relu'"
            )
        return
    kind = {"lstm": "nn.LSTM", "gru": "nn.GRU"}[inner.cell]
    for arg, expected in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        if getattr(inner, arg) != expected:
            raise ValueError(
                f"to_torch: layer {name!r} has {arg}={getattr(inner, arg)!r}; {kind} computes "
                f"{arg}={expected!r} only"
            )
    if inner.cell == "gru" and not inner.reset_after:
        raise ValueError(
            f"to_torch: layer {name!r} has reset_after=False; nn.GRU applies the reset gate after "
            "the recurrent product (Keras' reset_after=True)"
        )


def _blocks_from_model(model) -> list[dict]:
    """The torch modules (as blocks) that compute what ``model`` computes."""
    from ..layers import Dense, Dropout, Embedding

    if not model.built:
        raise ValueError(f"{model.name}: build the model (give input_shape) before converting it")
    blocks: list[dict] = []
    for layer in model.layers:
        info = _rnn_layer_info(layer)
        if info is not None:
            inner, bidir = info
            cell = gates.cell_of(inner)
            key = (cell, getattr(inner, "activation", "tanh"), inner.units, bidir, inner.use_bias)
            last = blocks[-1] if blocks else None
            if last and last["kind"] == "rnn" and last["key"] == key and last["return_sequences"]:
                last["num_layers"] += 1  # stack into one nn.LSTM(num_layers=L)
                last["layers"].append(layer.name)
                last["return_sequences"] = inner.return_sequences
                continue
            blocks.append(
                {
                    "kind": "rnn",
                    "key": key,
                    "cell": cell,
                    "nonlinearity": key[1],
                    "units": inner.units,
                    "num_layers": 1,
                    "bidirectional": bidir,
                    "bias": inner.use_bias,
                    "return_sequences": inner.return_sequences,
                    "layers": [layer.name],
                }
            )
        elif isinstance(layer, Dense):
            blocks.append(
                {
                    "kind": "linear",
                    "units": layer.units,
                    "bias": layer.use_bias,
                    "layers": [layer.name],
                }
            )
            if layer.activation not in (None, "linear"):
                blocks.append({"kind": "act", "activation": layer.activation})
        elif isinstance(layer, Embedding):
            if layer.mask_zero:
                raise ValueError(
                    f"to_torch: Embedding {layer.name!r} has mask_zero=True; PyTorch has no "
                    "implicit masks (pack the sequences yourself)"
                )
            blocks.append({"kind": "embedding", "layers": [layer.name]})
        elif isinstance(layer, Dropout):
            blocks.append({"kind": "dropout", "rate": layer.rate})
        else:
            raise ValueError(
                f"to_torch: layer {layer.name!r} ({type(layer).__name__}) has no PyTorch "
                "equivalent; supported: LSTM, GRU, SimpleRNN, Bidirectional, Dense, Embedding, Dropout"
            )
    for i, b in enumerate(blocks):
        b["prefix"] = f"{i}."
    return blocks


def _param_blocks(blocks):
    return [b for b in blocks if b["kind"] in ("rnn", "linear", "embedding")]


def _directions(b):
    return ("", "_reverse") if b["bidirectional"] else ("",)


def _state_dict_from_params(blocks, params: dict) -> dict:
    """lstmkit dotted parameters -> torch state-dict arrays (keys with each block's prefix)."""
    sd = {}
    for b in _param_blocks(blocks):
        p = b["prefix"]
        if b["kind"] == "linear":
            name = b["layers"][0]
            sd[p + "weight"] = np.ascontiguousarray(params[f"{name}.kernel"].T)
            if b["bias"]:
                sd[p + "bias"] = params[f"{name}.bias"].copy()
            continue
        if b["kind"] == "embedding":
            sd[p + "weight"] = params[f"{b['layers'][0]}.embeddings"].copy()
            continue
        cell = b["cell"]
        for k, name in enumerate(b["layers"]):
            for suffix, role in zip(_directions(b), ("forward.", "backward.")):
                role = role if b["bidirectional"] else ""
                sd[f"{p}weight_ih_l{k}{suffix}"] = gates.to_rows(
                    params[f"{name}.{role}kernel"], cell, TORCH
                )
                sd[f"{p}weight_hh_l{k}{suffix}"] = gates.to_rows(
                    params[f"{name}.{role}recurrent_kernel"], cell, TORCH
                )
                if not b["bias"]:  # use_bias=False: a module built with bias=False
                    continue
                b_in, b_rec = gates.split_bias(params[f"{name}.{role}bias"], cell)
                sd[f"{p}bias_ih_l{k}{suffix}"] = gates.to_vector(b_in, cell, TORCH)
                sd[f"{p}bias_hh_l{k}{suffix}"] = gates.to_vector(b_rec, cell, TORCH)
    return sd


def _params_from_state_dict(blocks, sd: dict, dtype) -> dict:
    """torch state-dict arrays -> lstmkit dotted parameters; every key must be used."""
    out, used, missing = {}, set(), []

    def get(key, required=True):
        if key in sd:
            used.add(key)
            return np.asarray(sd[key], dtype=dtype)
        if required:
            missing.append(key)
        return None

    for b in _param_blocks(blocks):
        p = b["prefix"]
        if b["kind"] == "linear":
            name = b["layers"][0]
            w = get(p + "weight")
            if w is not None:
                out[f"{name}.kernel"] = np.ascontiguousarray(w.T)
            if b["bias"]:
                bias = get(p + "bias")
                if bias is not None:
                    out[f"{name}.bias"] = bias
            continue
        if b["kind"] == "embedding":
            w = get(p + "weight")
            if w is not None:
                out[f"{b['layers'][0]}.embeddings"] = w
            continue
        cell = b["cell"]
        for k, name in enumerate(b["layers"]):
            for suffix, role in zip(_directions(b), ("forward.", "backward.")):
                role = role if b["bidirectional"] else ""
                w_ih = get(f"{p}weight_ih_l{k}{suffix}")
                w_hh = get(f"{p}weight_hh_l{k}{suffix}")
                b_ih = get(f"{p}bias_ih_l{k}{suffix}", required=b["bias"])
                b_hh = get(f"{p}bias_hh_l{k}{suffix}", required=b["bias"])
                if w_ih is None or w_hh is None:
                    continue
                zeros = np.zeros(w_ih.shape[0], dtype)
                b_ih = zeros if b_ih is None else b_ih
                b_hh = zeros if b_hh is None else b_hh
                out[f"{name}.{role}kernel"] = gates.from_rows(w_ih, cell, TORCH)
                out[f"{name}.{role}recurrent_kernel"] = gates.from_rows(w_hh, cell, TORCH)
                out[f"{name}.{role}bias"] = gates.join_bias(
                    gates.from_vector(b_ih, cell, TORCH), gates.from_vector(b_hh, cell, TORCH), cell
                )
    unexpected = sorted(set(sd) - used)
    if missing or unexpected:
        raise ValueError(
            "state dict does not match the architecture: "
            + "; ".join([f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected])
        )
    return out


def _model_from_blocks(blocks, input_shape, dtype):
    """Build the lstmkit model the blocks describe (sets each block's ``layers`` names)."""
    from ..layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, SimpleRNN
    from ..models import Sequential

    classes = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}
    layers = []
    for b in blocks:
        kind = b["kind"]
        if kind == "rnn":
            b["layers"] = []
            for k in range(b["num_layers"]):
                rs = k < b["num_layers"] - 1 or b["return_sequences"]
                extra = {"activation": b["nonlinearity"]} if b["cell"] == "rnn" else {}
                layer = classes[b["cell"]](b["units"], return_sequences=rs, **extra)
                if b["bidirectional"]:
                    layer = Bidirectional(layer)
                layers.append(layer)
                b["layers"].append(layer.name)
        elif kind == "linear":
            layers.append(Dense(b["units"], use_bias=b["bias"]))
            b["layers"] = [layers[-1].name]
        elif kind == "embedding":
            layers.append(Embedding(b["num"], b["units"]))
            b["layers"] = [layers[-1].name]
        elif kind == "act":
            prev = layers[-1] if layers else None
            if not isinstance(prev, Dense) or prev.activation is not None:
                raise ValueError(
                    f"from_torch: activation {b['activation']!r} must follow an nn.Linear "
                    "(lstmkit applies activations inside Dense)"
                )
            if b["activation"] is not None:
                cfg = prev.get_config()
                cfg["activation"] = b["activation"]
                layers[-1] = Dense.from_config(cfg)
        elif kind == "dropout":
            layers.append(Dropout(b["rate"]))
    model = Sequential(layers, dtype=dtype)
    model.build((None, *input_shape))
    return model


def _check_rnn_order(blocks, return_sequences):
    """Every recurrent block followed by another one returns sequences; the last one follows
    ``return_sequences``."""
    rnn = [b for b in blocks if b["kind"] == "rnn"]
    for b in rnn[:-1]:
        b["return_sequences"] = True
    if rnn:
        rnn[-1]["return_sequences"] = bool(return_sequences)


def _default_input_shape(blocks):
    first = _param_blocks(blocks)[0] if _param_blocks(blocks) else None
    if first is None:
        raise ValueError("from_torch: found no nn.LSTM/GRU/RNN, nn.Linear or nn.Embedding module")
    if first["kind"] == "embedding":
        return (None,)
    if first["kind"] == "rnn":
        return (None, first["input"])
    return (first["input"],)


# -- from a state dict (no torch needed) ------------------------------------------------------
def _blocks_from_state_dict(sd: dict, nonlinearity="tanh") -> list[dict]:
    groups: dict[str, dict] = {}
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition(".")
        prefix = prefix + "." if prefix else ""
        groups.setdefault(prefix, {})[leaf] = np.shape(value)
    blocks = []
    for prefix, leaves in groups.items():
        if any(_RNN_KEY.match(k) for k in leaves):
            bad = sorted(k for k in leaves if not _RNN_KEY.match(k))
            if bad:
                raise ValueError(
                    f"state dict: module {prefix[:-1]!r} has keys {bad} (e.g. proj_size's "
                    "weight_hr) that lstmkit does not support"
                )
            w_ih, w_hh = leaves.get("weight_ih_l0"), leaves.get("weight_hh_l0")
            if w_ih is None or w_hh is None or len(w_ih) != 2 or len(w_hh) != 2:
                raise ValueError(
                    f"state dict: module {prefix[:-1]!r} lacks weight_ih_l0/weight_hh_l0"
                )
            H = w_hh[1]
            G = w_ih[0] // H
            cell = {4: "lstm", 3: "gru", 1: "rnn"}.get(G)
            if cell is None or G * H != w_ih[0]:
                raise ValueError(
                    f"state dict: module {prefix[:-1]!r} has weight_ih_l0 {w_ih} and weight_hh_l0 "
                    f"{w_hh}; rows must be 4H (LSTM), 3H (GRU) or H (RNN)"
                )
            blocks.append(
                {
                    "kind": "rnn",
                    "cell": cell,
                    "nonlinearity": nonlinearity if cell == "rnn" else "tanh",
                    "units": H,
                    "input": w_ih[1],
                    "num_layers": 1 + max(int(_RNN_KEY.match(k).group(2)) for k in leaves),
                    "bidirectional": any(k.endswith("_reverse") for k in leaves),
                    "bias": "bias_ih_l0" in leaves,
                    "return_sequences": False,
                    "prefix": prefix,
                }
            )
        elif set(leaves) in ({"weight", "bias"}, {"weight"}) and len(leaves["weight"]) == 2:
            out, inp = leaves["weight"]
            blocks.append({"kind": "linear", "units": out, "input": inp, "bias": "bias" in leaves})
            blocks[-1]["prefix"] = prefix
        else:
            raise ValueError(
                f"state dict: module {prefix[:-1]!r} with keys {sorted(leaves)} is not an "
                "nn.LSTM/GRU/RNN, nn.Linear or nn.Embedding"
            )
    # Order: numeric prefixes (nn.Sequential) numerically; otherwise the file order, with
    # recurrent modules first (safetensors files do not keep the order of their keys).
    if all(b["prefix"][:-1].isdigit() for b in blocks):
        blocks.sort(key=lambda b: int(b["prefix"][:-1]))
    else:
        blocks.sort(key=lambda b: b["kind"] != "rnn")
    # A bias-free "Linear" before the first recurrent module is an embedding table (num, dim).
    first_rnn = next((i for i, b in enumerate(blocks) if b["kind"] == "rnn"), len(blocks))
    for b in blocks[:first_rnn]:
        if b["kind"] == "linear" and not b["bias"]:
            b.update(kind="embedding", num=b["units"], units=b.pop("input"))
    return blocks


def _compatible(a, b) -> bool:
    keys = {"rnn": ("cell", "units", "num_layers", "bidirectional"), "linear": ("units", "bias")}
    return a["kind"] == b["kind"] and all(a[k] == b[k] for k in keys.get(a["kind"], ()))


def from_state_dict(
    state_dict: dict,
    *,
    model=None,
    nonlinearity="tanh",
    return_sequences=False,
    input_shape=None,
):
    """lstmkit model from a PyTorch ``state_dict`` (``{key: array or tensor}``).

    With ``model`` (an lstmkit ``Sequential`` of the same architecture) the weights are copied
    into it, matched module by module in order; the keys' prefixes may differ (``"lstm."``,
    ``"0."``). Without it the architecture is inferred from the keys and shapes: the cell from
    ``weight_ih_l0``'s rows (4H LSTM, 3H GRU, H RNN with ``nonlinearity``), ``num_layers`` and
    ``bidirectional`` from the key names, ``nn.Linear`` heads without activations, the last
    recurrent module many-to-one unless ``return_sequences``. A state dict holds no activations
    or dropout: pass ``model`` for those.
    """
    sd = {k: _as_numpy(v) for k, v in state_dict.items()}
    blocks = _blocks_from_state_dict(sd, nonlinearity)
    if model is None:
        _check_rnn_order(blocks, return_sequences)
        dtype = _float_dtype(sd)
        shape = tuple(input_shape) if input_shape is not None else _default_input_shape(blocks)
        model = _model_from_blocks(blocks, shape, dtype)
        params = _params_from_state_dict(blocks, sd, dtype)
    else:
        mine = _param_blocks(_blocks_from_model(model))
        if len(mine) != len(blocks) or not all(map(_compatible, mine, blocks)):
            raise ValueError(
                f"state dict modules {[_describe(b) for b in blocks]} do not match the model's "
                f"{[_describe(b) for b in mine]}"
            )
        for m, b in zip(mine, blocks):
            m["prefix"] = b["prefix"]
            m["bias"] = b["bias"]
        dtype = np.dtype(model.layers[0].dtype or "float32")
        params = _params_from_state_dict(mine, sd, dtype)
    from ..saving import assign_params

    assign_params(model.params, params, source="state dict")
    return model


def _describe(b):
    if b["kind"] == "rnn":
        d = "bi" if b["bidirectional"] else ""
        return f"{d}{b['cell'].upper()}(H={b['units']}, layers={b['num_layers']})"
    return f"{b['kind']}({b.get('units')})"


def _as_numpy(v):
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _float_dtype(sd):
    kinds = {np.asarray(v).dtype for v in sd.values() if np.asarray(v).dtype.kind == "f"}
    return "float64" if np.dtype("float64") in kinds else "float32"


def to_state_dict(model) -> dict:
    """lstmkit model -> ``{key: np.ndarray}`` with the keys of :func:`to_torch`'s module
    (``"0.weight_ih_l0"``, ``"1.weight"``, ...)."""
    from .graph import as_chain

    model = as_chain(model, "to_state_dict")
    return _state_dict_from_params(_blocks_from_model(model), model.params)


def load_state_dict_file(path, *, model=None, **kwargs):
    """:func:`from_state_dict` of a file: ``.safetensors`` is read with NumPy alone; ``.pt`` /
    ``.pth`` / ``.bin`` need torch and are read with ``torch.load(weights_only=True)`` (never
    full unpickling). A checkpoint dict holding the state dict under ``"state_dict"`` or
    ``"model_state_dict"`` is accepted too."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_state_dict_file: no such file {path!r}")
    if path.endswith(".safetensors"):
        from .._safetensors_np import load_file

        sd = load_file(path)
    else:
        torch = _optional.require("torch", f"load_state_dict_file of {os.path.basename(path)!r}")

        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            # UnpicklingError: anything beyond tensors and containers; RuntimeError: not a zip
            raise ValueError(
                f"load_state_dict_file: {path!r} is not a weights-only PyTorch file: {e}"
            ) from None
        if isinstance(sd, dict):
            for k in ("state_dict", "model_state_dict"):
                if isinstance(sd.get(k), dict):
                    sd = sd[k]
        if not isinstance(sd, dict) or not all(hasattr(v, "detach") for v in sd.values()):
            raise ValueError(f"load_state_dict_file: {path!r} does not hold a dict of tensors")
    return from_state_dict(sd, model=model, **kwargs)


def save_state_dict_file(model, path) -> None:
    """Write :func:`to_state_dict` to ``.safetensors`` (NumPy only) or ``.pt`` / ``.pth``
    (``torch.save`` of tensors; loads with ``torch.load(weights_only=True)``)."""
    from ..saving import atomic_write

    path = os.fspath(path)
    sd = to_state_dict(model)
    if path.endswith(".safetensors"):
        from .._safetensors_np import save_file

        atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={"format": "pt"}))
    elif path.endswith((".pt", ".pth", ".bin")):
        torch = _optional.require("torch", "save_state_dict_file to .pt/.pth/.bin")

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
        atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    else:
        raise ValueError(
            f"save_state_dict_file: argument 'path' must end in .safetensors, .pt, .pth or .bin; "
            f"got {path!r}"
        )
