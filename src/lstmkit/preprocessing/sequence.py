"""``keras.preprocessing.sequence.pad_sequences``: the same function as
:func:`lstmkit.utils.pad_sequences` (Keras' signature and defaults)."""

from ..utils import pad_sequences

__all__ = ["pad_sequences"]
