"""lstmkit <-> PyTorch: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` stacks with a ``nn.Linear`` head.

Public names::

    from_torch(module, *, return_sequences=None, input_shape=None) -> Sequential
    to_torch(model) -> nn.Module                       # a torch.nn.Sequential mirroring the model
    to_state_dict(model) -> {torch key: np.ndarray}
    from_state_dict(state_dict, *, model=None, nonlinearity="tanh", return_sequences=False,
                    input_shape=None) -> Sequential
    load_state_dict_file(path, *, model=None, ...) -> Sequential   # .safetensors needs no torch
    save_state_dict_file(model, path)                               # .safetensors or .pt/.pth

How the two map (gate orders and bias splits: :mod:`lstmkit.interop.gates`):

- One ``nn.LSTM(num_layers=L, bidirectional=b)`` is ``L`` stacked lstmkit ``LSTM`` layers (each
  wrapped in ``Bidirectional(merge_mode="concat")`` when ``b``), all but the last returning
  sequences. ``weight_ih_l{k}[_reverse] (G*H, D)`` is ``kernel.T`` with PyTorch's gate order,
  ``weight_hh_l{k}`` is ``recurrent_kernel.T``; LSTM/RNN ``bias = bias_ih + bias_hh``, GRU
  ``bias = [bias_ih; bias_hh]``. A module without biases (``bias=False``) gets zero biases.
- ``nn.Linear`` is ``Dense`` (``kernel = weight.T``) and a following ``nn.ReLU`` / ``nn.Tanh`` /
  ``nn.Sigmoid`` becomes its activation; ``nn.Embedding`` is ``Embedding``; ``nn.Dropout`` is
  ``Dropout`` (identity at inference).
- Many-to-one: when the last recurrent layer has ``return_sequences=False`` the head sees the
  final state ``h_n`` of the last torch layer (both directions concatenated), which is exactly
  Keras' and lstmkit's output. For a unidirectional layer that equals ``output[:, -1]``; for a
  bidirectional one it is *not* ``output[:, -1]`` (whose backward half has read one step only).
- ``batch_first`` only changes how torch's forward takes its input; lstmkit is always batch-major
  ``(batch, timesteps, features)``. ``to_torch`` builds ``batch_first=True`` modules.

Not representable (raise ``ValueError``): ``proj_size``, unidirectional ``go_backwards``,
``return_state``, ``Bidirectional`` with a merge mode other than concat or a custom backward
layer, ``Masking`` and ``Embedding(mask_zero=True)`` (PyTorch has no implicit masks).
"""

from __future__ import annotations

import functools
import os
import re

import numpy as np

from . import gates
from .gates import TORCH

_RNN_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
_ACTS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Identity": None}
_TORCH_ACTS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


# -- the intermediate description: a list of blocks, one per torch module ---------------------
# {"kind": "rnn", "cell", "nonlinearity", "units", "num_layers", "bidirectional", "bias",
#  "return_sequences", "prefix", "layers": [lstmkit layer names]}
# {"kind": "linear", "units", "bias", "prefix", "layers": [name]}
# {"kind": "embedding", "prefix", "layers": [name]}
# {"kind": "act", "activation"} / {"kind": "dropout", "rate"}


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
    return inner, bidirectional


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
            key = (cell, getattr(inner, "activation", "tanh"), inner.units, bidir)
            last = blocks[-1] if blocks else None
            if last and last["kind"] == "rnn" and last["key"] == key and last["return_sequences"]:
                last["num_layers"] += 1  # stack into one nn.LSTM(num_layers=L)
                last["layers"].append(layer.name)
                last["return_sequences"] = inner.return_sequences
                continue
            blocks.append(
                dict(
                    kind="rnn",
                    key=key,
                    cell=cell,
                    nonlinearity=key[1],
                    units=inner.units,
                    num_layers=1,
                    bidirectional=bidir,
                    bias=True,
                    return_sequences=inner.return_sequences,
                    layers=[layer.name],
                )
            )
        elif isinstance(layer, Dense):
            blocks.append(
                dict(kind="linear", units=layer.units, bias=layer.use_bias, layers=[layer.name])
            )
            if layer.activation not in (None, "linear"):
                blocks.append(dict(kind="act", activation=layer.activation))
        elif isinstance(layer, Embedding):
            if layer.mask_zero:
                raise ValueError(
                    f"to_torch: Embedding {layer.name!r} has mask_zero=True; PyTorch has no "
                    "implicit masks (pack the sequences yourself)"
                )
            blocks.append(dict(kind="embedding", layers=[layer.name]))
        elif isinstance(layer, Dropout):
            blocks.append(dict(kind="dropout", rate=layer.rate))
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
                b_in, b_rec = gates.split_bias(params[f"{name}.{role}bias"], cell)
                sd[f"{p}weight_ih_l{k}{suffix}"] = gates.to_rows(
                    params[f"{name}.{role}kernel"], cell, TORCH
                )
                sd[f"{p}weight_hh_l{k}{suffix}"] = gates.to_rows(
                    params[f"{name}.{role}recurrent_kernel"], cell, TORCH
                )
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
    model.build(tuple(input_shape))
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
    for key in sd:
        prefix, _, leaf = key.rpartition(".")
        prefix = prefix + "." if prefix else ""
        groups.setdefault(prefix, {})[leaf] = np.shape(sd[key])
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
                raise ValueError(f"state dict: module {prefix[:-1]!r} lacks weight_ih_l0/weight_hh_l0")
            H = w_hh[1]
            G = w_ih[0] // H
            cell = {4: "lstm", 3: "gru", 1: "rnn"}.get(G)
            if cell is None or G * H != w_ih[0]:
                raise ValueError(
                    f"state dict: module {prefix[:-1]!r} has weight_ih_l0 {w_ih} and weight_hh_l0 "
                    f"{w_hh}; rows must be 4H (LSTM), 3H (GRU) or H (RNN)"
                )
            blocks.append(
                dict(
                    kind="rnn",
                    cell=cell,
                    nonlinearity=nonlinearity if cell == "rnn" else "tanh",
                    units=H,
                    input=w_ih[1],
                    num_layers=1 + max(int(_RNN_KEY.match(k).group(2)) for k in leaves),
                    bidirectional=any(k.endswith("_reverse") for k in leaves),
                    bias="bias_ih_l0" in leaves,
                    return_sequences=False,
                    prefix=prefix,
                )
            )
        elif set(leaves) in ({"weight", "bias"}, {"weight"}) and len(leaves["weight"]) == 2:
            out, inp = leaves["weight"]
            blocks.append(dict(kind="linear", units=out, input=inp, bias="bias" in leaves))
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
        import torch

        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for anything beyond tensors and containers
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
        import torch

        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
        atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    else:
        raise ValueError(
            f"save_state_dict_file: argument 'path' must end in .safetensors, .pt, .pth or .bin; "
            f"got {path!r}"
        )


# -- live torch modules -----------------------------------------------------------------------
def _modules_of(module):
    from torch import nn

    if isinstance(module, (list, tuple)):
        return list(module)
    if isinstance(module, nn.RNNBase):
        return [module]
    return list(module.children())


def _blocks_from_modules(modules) -> list[dict]:
    from torch import nn

    blocks = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.RNNBase):
            if getattr(m, "proj_size", 0):
                raise ValueError(f"from_torch: {type(m).__name__} with proj_size is not supported")
            cell = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}.get(m.mode)
            if cell is None:
                raise ValueError(f"from_torch: unsupported RNN mode {m.mode!r}")
            blocks.append(
                dict(
                    kind="rnn",
                    cell=cell,
                    nonlinearity="relu" if m.mode == "RNN_RELU" else "tanh",
                    units=m.hidden_size,
                    input=m.input_size,
                    num_layers=m.num_layers,
                    bidirectional=m.bidirectional,
                    bias=m.bias,
                    return_sequences=False,
                )
            )
        elif isinstance(m, nn.Linear):
            blocks.append(
                dict(kind="linear", units=m.out_features, input=m.in_features, bias=m.bias is not None)
            )
        elif isinstance(m, nn.Embedding):
            blocks.append(dict(kind="embedding", num=m.num_embeddings, units=m.embedding_dim))
        elif type(m).__name__ in _ACTS:
            blocks.append(dict(kind="act", activation=_ACTS[type(m).__name__]))
        elif isinstance(m, nn.Dropout):
            blocks.append(dict(kind="dropout", rate=float(m.p)))
        else:
            raise ValueError(
                f"from_torch: module {i} ({type(m).__name__}) has no lstmkit equivalent; supported: "
                "nn.LSTM/GRU/RNN, nn.Linear, nn.Embedding, nn.ReLU/Tanh/Sigmoid/Identity, nn.Dropout"
            )
        blocks[-1]["prefix"] = f"{i}."
    return blocks


def from_torch(module, *, return_sequences=None, input_shape=None):
    """lstmkit ``Sequential`` computing what a PyTorch model computes.

    ``module``: an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``; an ``nn.Sequential`` or a list/tuple of
    modules in forward order (e.g. ``(rnn, linear)``); any other ``nn.Module`` is read as its
    children in registration order. ``return_sequences`` of the last recurrent layer: ``False``
    (many-to-one, the head sees the final state) unless given, or the value :func:`to_torch`
    recorded on its module. ``input_shape`` defaults to ``(None, input_size)``.
    """
    modules = _modules_of(module)
    blocks = _blocks_from_modules(modules)
    if return_sequences is None:
        return_sequences = getattr(module, "lstmkit_return_sequences", False)
    _check_rnn_order(blocks, return_sequences)
    sd = {}
    for i, m in enumerate(modules):
        for k, v in m.state_dict().items():
            sd[f"{i}.{k}"] = _as_numpy(v)
    dtype = _float_dtype(sd)
    shape = tuple(input_shape) if input_shape is not None else _default_input_shape(blocks)
    model = _model_from_blocks(blocks, shape, dtype)
    from ..saving import assign_params

    assign_params(model.params, _params_from_state_dict(blocks, sd, dtype), source="from_torch")
    return model


def to_torch(model):
    """A ``torch.nn.Sequential`` (in eval mode) whose forward mirrors ``model``.

    Input ``(batch, timesteps, features)`` (``batch_first=True``), or ``(batch, timesteps)``
    token ids when the model starts with an ``Embedding``. Consecutive recurrent layers of the
    same kind and size become one module with ``num_layers``; the state-dict keys are those of
    :func:`to_state_dict`.
    """
    import torch
    from torch import nn

    blocks = _blocks_from_model(model)
    dtype = {"float32": torch.float32, "float64": torch.float64}[model.layers[0].dtype or "float32"]
    shape = model.input_shape
    modules = []
    for b in blocks:
        if b["kind"] == "rnn":
            D = shape[-1]
            cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[b["cell"]]
            extra = {"nonlinearity": b["nonlinearity"]} if b["cell"] == "rnn" else {}
            modules.append(
                cls(
                    D,
                    b["units"],
                    num_layers=b["num_layers"],
                    bidirectional=b["bidirectional"],
                    batch_first=True,
                    dtype=dtype,
                    **extra,
                )
            )
            H = b["units"] * (2 if b["bidirectional"] else 1)
            shape = shape[:-1] + (H,) if b["return_sequences"] else (H,)
        elif b["kind"] == "linear":
            modules.append(nn.Linear(shape[-1], b["units"], bias=b["bias"], dtype=dtype))
            shape = shape[:-1] + (b["units"],)
        elif b["kind"] == "embedding":
            emb = next(la for la in model.layers if la.name == b["layers"][0])
            modules.append(nn.Embedding(emb.input_dim, emb.output_dim, dtype=dtype))
            shape = tuple(shape) + (emb.output_dim,)
        elif b["kind"] == "act":
            modules.append(getattr(nn, _TORCH_ACTS[b["activation"]])())
        else:
            modules.append(nn.Dropout(b["rate"]))
    net = _sequential_class()(*modules)
    net.lstmkit_return_sequences = bool(
        next((b["return_sequences"] for b in reversed(blocks) if b["kind"] == "rnn"), True)
    )
    net._many_to_one = {
        i for i, b in enumerate(blocks) if b["kind"] == "rnn" and not b["return_sequences"]
    }
    sd = _state_dict_from_params(blocks, model.params)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return net.eval()


@functools.cache
def _sequential_class():
    from torch import nn

    class LstmkitSequential(nn.Sequential):
        """``nn.Sequential`` whose RNN modules hand on their outputs (or, many-to-one, their
        final states ``h_n`` of the last layer, directions concatenated)."""

        def forward(self, x):
            import torch

            for i, m in enumerate(self):
                if isinstance(m, nn.RNNBase):
                    out, hn = m(x)
                    if i in self._many_to_one:
                        h = hn[0] if isinstance(hn, tuple) else hn  # (L*dirs, B, H)
                        dirs = 2 if m.bidirectional else 1
                        x = torch.cat(list(h[-dirs:]), dim=-1)  # (B, dirs*H)
                    else:
                        x = out
                else:
                    x = m(x)
            return x

    return LstmkitSequential

