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
layer, ``Masking`` and ``Embedding(mask_zero=True)`` (PyTorch has no implicit masks), LSTM/GRU
with an ``activation`` other than tanh or a ``recurrent_activation`` other than sigmoid, GRU
``reset_after=False``, SimpleRNN activations other than tanh and relu. ``use_bias=False`` is
a module with ``bias=False``.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _optional
from .state_dict import (
    _as_numpy,
    _blocks_from_model,
    _check_rnn_order,
    _default_input_shape,
    _float_dtype,
    _model_from_blocks,
    _params_from_state_dict,
    _state_dict_from_params,
    from_state_dict,
    load_state_dict_file,
    save_state_dict_file,
    to_state_dict,
)

__all__ = [
    "from_state_dict",
    "from_torch",
    "load_state_dict_file",
    "save_state_dict_file",
    "to_state_dict",
    "to_torch",
]

_ACTS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Identity": None}
_TORCH_ACTS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


# -- live torch modules -----------------------------------------------------------------------
def _modules_of(module):
    nn = _optional.require("torch.nn", "from_torch")

    if isinstance(module, (list, tuple)):
        return list(module)
    if isinstance(module, nn.RNNBase):
        return [module]
    return list(module.children())


def _blocks_from_modules(modules) -> list[dict]:
    nn = _optional.require("torch.nn", "from_torch")

    blocks = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.RNNBase):
            if getattr(m, "proj_size", 0):
                raise ValueError(f"from_torch: {type(m).__name__} with proj_size is not supported")
            cell = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}.get(m.mode)
            if cell is None:
                raise ValueError(f"from_torch: unsupported RNN mode {m.mode!r}")
            blocks.append(
                {
                    "kind": "rnn",
                    "cell": cell,
                    "nonlinearity": "relu" if m.mode == "RNN_RELU" else "tanh",
                    "units": m.hidden_size,
                    "input": m.input_size,
                    "num_layers": m.num_layers,
                    "bidirectional": m.bidirectional,
                    "bias": m.bias,
                    "return_sequences": False,
                }
            )
        elif isinstance(m, nn.Linear):
            blocks.append(
                {
                    "kind": "linear",
                    "units": m.out_features,
                    "input": m.in_features,
                    "bias": m.bias is not None,
                }
            )
        elif isinstance(m, nn.Embedding):
            blocks.append({"kind": "embedding", "num": m.num_embeddings, "units": m.embedding_dim})
        elif type(m).__name__ in _ACTS:
            blocks.append({"kind": "act", "activation": _ACTS[type(m).__name__]})
        elif isinstance(m, nn.Dropout):
            blocks.append({"kind": "dropout", "rate": float(m.p)})
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
    torch = _optional.require("torch", "to_torch")
    nn = torch.nn

    from .graph import as_chain

    model = as_chain(model, "to_torch")
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
                    bias=b["bias"],
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
    nn = _optional.require("torch.nn", "to_torch")

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
