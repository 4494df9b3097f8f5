"""lstmkit: LSTM, GRU and RNN from their equations in NumPy.

Keras-style API::

    from lstmkit import Sequential, LSTM, Dense
    model = Sequential()
    model.add(LSTM(50, input_shape=(timesteps, features)))
    model.add(Dense(1))
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, y, epochs=10, batch_size=32)
"""

from . import layers  # noqa: F401  (keras.layers.LSTM after `import lstmkit as keras`)
from .graph import Input
from .layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    AdditiveAttention,
    Attention,
    Average,
    BatchNormalization,
    Bidirectional,
    Concatenate,
    Conv1D,
    Dense,
    Dot,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Lambda,
    LayerNormalization,
    Masking,
    Maximum,
    MaxPooling1D,
    Minimum,
    Multiply,
    Permute,
    RepeatVector,
    Reshape,
    SimpleRNN,
    Subtract,
    TimeDistributed,
)
from .random import set_random_seed
from .saving import load_model

#: modules imported on first use (``import lstmkit as keras; keras.optimizers.Adam(...)``)
_LAZY_MODULES = (
    "models",
    "optimizers",
    "losses",
    "metrics",
    "callbacks",
    "utils",
    "initializers",
    "regularizers",
    "constraints",
    "preprocessing",
)


def __getattr__(name):
    # ``Model``/``Sequential`` pull in the trainer (losses, optimizers, callbacks); importing
    # them lazily keeps ``import lstmkit.runtime`` free of training code.
    if name in ("Sequential", "Model"):
        from . import models

        return getattr(models, name)
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"lstmkit.{name}")
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "AdditiveAttention",
    "Attention",
    "Average",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Dense",
    "Dot",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Input",
    "Lambda",
    "LayerNormalization",
    "Masking",
    "MaxPooling1D",
    "Maximum",
    "Minimum",
    "Model",
    "Multiply",
    "Permute",
    "RepeatVector",
    "Reshape",
    "Sequential",
    "SimpleRNN",
    "Subtract",
    "TimeDistributed",
    "load_model",
    "set_random_seed",
]
