"""Converters between lstmkit and other frameworks; never imported by the core.

- :mod:`lstmkit.interop.torch`: ``from_torch``, ``to_torch``, state-dict files (``.safetensors``
  without torch, ``.pt`` with ``torch.load(weights_only=True)``); the NumPy-only state-dict
  conversion lives in :mod:`lstmkit.interop.state_dict`.
- :mod:`lstmkit.interop.keras`: ``from_keras`` (live model, weights list or ``.keras`` file),
  ``to_keras``, ``save_keras``.
- :mod:`lstmkit.interop.onnx`: ``to_onnx`` with the standard LSTM/GRU/RNN operators.
- :mod:`lstmkit.interop.gates`: every gate-order permutation and weight layout, in one place.

Each submodule imports its framework inside the functions that need it.
"""
