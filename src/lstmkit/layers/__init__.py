"""Layers with Keras names and semantics: ``from lstmkit.layers import LSTM, Dense, ...``."""

from __future__ import annotations

from .activation import Activation
from .attention import AdditiveAttention, Attention
from .base import Layer
from .bidirectional import Bidirectional
from .cells import RNN, CellRNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .conv import Conv1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .core import Dense, Dropout, Embedding, Masking
from .lambda_layer import Lambda
from .merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization, LayerNormalization
from .recurrent import GRU, LSTM, RNNBase, SimpleRNN
from .reshaping import Flatten, Permute, RepeatVector, Reshape
from .wrappers import TimeDistributed

LAYERS = {
    cls.__name__: cls
    for cls in (
        LSTM,
        GRU,
        SimpleRNN,
        Bidirectional,
        Dense,
        Dropout,
        Embedding,
        Masking,
        Activation,
        RepeatVector,
        Flatten,
        Reshape,
        Permute,
        Concatenate,
        Add,
        Subtract,
        Multiply,
        Average,
        Maximum,
        Minimum,
        Dot,
        LayerNormalization,
        BatchNormalization,
        Conv1D,
        MaxPooling1D,
        GlobalAveragePooling1D,
        GlobalMaxPooling1D,
        TimeDistributed,
        Lambda,
        Attention,
        AdditiveAttention,
        LSTMCell,
        GRUCell,
        SimpleRNNCell,
        StackedRNNCells,
        CellRNN,
    )
}


def register_layer(cls):
    """Let model files name a user's layer or cell class (``load_model`` builds only known
    classes, never arbitrary code). Returns ``cls``, so it works as a decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"register_layer: argument 'cls' must be a Layer subclass; got {cls!r}")
    LAYERS[cls.__name__] = cls
    return cls


def serialize(layer: Layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict) -> Layer:
    """``{"class_name": ..., "config": {...}}`` -> layer; only known lstmkit classes."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"layer config must be a dict with 'class_name'; got {config!r:.200}")
    name = config["class_name"]
    if name not in LAYERS:
        raise ValueError(f"unknown layer class {name!r}; expected one of {sorted(LAYERS)}")
    cfg = config.get("config", {})
    if not isinstance(cfg, dict):
        raise ValueError(f"config of layer {name!r} must be a dict; got {type(cfg).__name__}")
    try:
        return LAYERS[name].from_config(cfg)
    except TypeError as e:
        raise ValueError(f"invalid config for layer {name!r}: {e}") from e


__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Activation",
    "Add",
    "AdditiveAttention",
    "Attention",
    "Average",
    "BatchNormalization",
    "Bidirectional",
    "CellRNN",
    "Concatenate",
    "Conv1D",
    "Dense",
    "Dot",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRUCell",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "LSTMCell",
    "Lambda",
    "Layer",
    "LayerNormalization",
    "Masking",
    "MaxPooling1D",
    "Maximum",
    "Minimum",
    "Multiply",
    "Permute",
    "RNNBase",
    "RepeatVector",
    "Reshape",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "Subtract",
    "TimeDistributed",
    "add",
    "average",
    "concatenate",
    "deserialize",
    "dot",
    "maximum",
    "minimum",
    "multiply",
    "register_layer",
    "serialize",
    "subtract",
]
