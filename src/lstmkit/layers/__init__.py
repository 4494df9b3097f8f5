"""Layers with Keras names and semantics: ``from lstmkit.layers import LSTM, Dense, ...``."""

from __future__ import annotations

from .base import Layer
from .bidirectional import Bidirectional
from .core import Dense, Dropout, Embedding, Masking
from .recurrent import GRU, LSTM, RNNBase, SimpleRNN

LAYERS = {
    cls.__name__: cls
    for cls in (LSTM, GRU, SimpleRNN, Bidirectional, Dense, Dropout, Embedding, Masking)
}


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
    "Bidirectional",
    "Dense",
    "Dropout",
    "Embedding",
    "Layer",
    "Masking",
    "RNNBase",
    "SimpleRNN",
    "deserialize",
    "serialize",
]
