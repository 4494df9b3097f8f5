"""Keras' ``keras.preprocessing`` names that LSTM tutorials call (``sequence.pad_sequences``)."""

from . import sequence

__all__ = ["sequence"]
