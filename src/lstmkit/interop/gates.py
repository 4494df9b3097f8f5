"""Gate orders and weight layouts of lstmkit (Keras), PyTorch and ONNX: every permutation lives here.

lstmkit stores Keras layouts (see :mod:`lstmkit.ops.gates`): ``kernel (D, G*H)``,
``recurrent_kernel (H, G*H)``, gate blocks stacked along the last axis. The other two frameworks
store the transposes, ``W (G*H, D)`` and ``R (G*H, H)``, with blocks stacked along the first axis,
in their own order:

============  ==================  ==================  ====================================
cell          lstmkit / Keras     PyTorch             ONNX
============  ==================  ==================  ====================================
LSTM          i, f, g, o          i, f, g, o          i, o, f, c   (c is lstmkit's g)
GRU           z, r, n             r, z, n             z, r, h      (h is lstmkit's n)
SimpleRNN     h                   h                   h
============  ==================  ==================  ====================================

Biases: Keras has one LSTM/RNN bias; PyTorch and ONNX have two (input and recurrent) that are
added, so ``bias = b_ih + b_hh``. The GRU keeps them apart everywhere (the recurrent bias of the
candidate sits inside ``r ⊙ (...)``): Keras ``bias[0]`` is PyTorch's ``bias_ih`` and ONNX's
``Wb``, ``bias[1]`` is ``bias_hh`` / ``Rb`` (ONNX with ``linear_before_reset=1``).
"""

from __future__ import annotations

import numpy as np

from ..ops.gates import GRU_GATES, LSTM_GATES

CELLS = ("lstm", "gru", "rnn")

# Block names in each framework's stacking order (lstmkit's symbols: ONNX's c is g, its h is n).
KERAS = {"lstm": LSTM_GATES, "gru": GRU_GATES, "rnn": ("h",)}
TORCH = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("h",)}
ONNX = {"lstm": ("i", "o", "f", "g"), "gru": ("z", "r", "n"), "rnn": ("h",)}

N_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def permutation(cell: str, src: dict, dst: dict) -> tuple[int, ...]:
    """Block ``k`` of the ``dst`` layout is block ``permutation[k]`` of the ``src`` layout."""
    return tuple(src[cell].index(g) for g in dst[cell])


def reorder(a, cell: str, src: dict, dst: dict, axis: int = -1) -> np.ndarray:
    """Re-stack the gate blocks of ``a`` along ``axis`` from ``src`` order to ``dst`` order."""
    a = np.asarray(a)
    blocks = np.split(a, N_GATES[cell], axis=axis)
    return np.concatenate([blocks[k] for k in permutation(cell, src, dst)], axis=axis)


def to_rows(kernel, cell: str, dst: dict) -> np.ndarray:
    """Keras ``(D, G*H)`` -> ``(G*H, D)`` with blocks in ``dst`` order (PyTorch / ONNX)."""
    return np.ascontiguousarray(reorder(kernel, cell, KERAS, dst, axis=-1).T)


def from_rows(w, cell: str, src: dict) -> np.ndarray:
    """``(G*H, D)`` with blocks in ``src`` order -> Keras ``(D, G*H)``."""
    return np.ascontiguousarray(reorder(np.asarray(w).T, cell, src, KERAS, axis=-1))


def to_vector(b, cell: str, dst: dict) -> np.ndarray:
    """A ``(G*H,)`` bias in Keras order -> ``dst`` order."""
    return np.ascontiguousarray(reorder(b, cell, KERAS, dst, axis=-1))


def from_vector(b, cell: str, src: dict) -> np.ndarray:
    """A ``(G*H,)`` bias in ``src`` order -> Keras order."""
    return np.ascontiguousarray(reorder(b, cell, src, KERAS, axis=-1))


def split_bias(bias, cell: str):
    """lstmkit ``bias`` -> ``(b_input, b_recurrent)`` in Keras order.

    GRU: the two rows of ``bias (2, 3H)``. LSTM and RNN: ``(bias, zeros)`` -- the sum is what
    counts, and putting all of it on the input side is exact.
    """
    bias = np.asarray(bias)
    if cell == "gru":
        return bias[0], bias[1]
    return bias, np.zeros_like(bias)


def join_bias(b_input, b_recurrent, cell: str) -> np.ndarray:
    """Inverse of :func:`split_bias` (Keras order): GRU stacks them, LSTM/RNN add them."""
    if cell == "gru":
        return np.stack([b_input, b_recurrent])
    return np.asarray(b_input) + np.asarray(b_recurrent)


def cell_of(layer) -> str:
    """``"lstm"``, ``"gru"`` or ``"rnn"`` for an lstmkit recurrent layer."""
    cell = getattr(layer, "cell", None)
    if cell not in CELLS:
        raise ValueError(f"{type(layer).__name__} is not a recurrent layer (LSTM, GRU, SimpleRNN)")
    if getattr(layer, "is_variant", False):
        # peepholes, CIFG, no forget gate, layer norm, zoneout: PyTorch's nn.LSTM and Keras have
        # no such cells, and exporting the plain weights would silently compute something else
        raise ValueError(
            f"{layer.name}: LSTM variants (peephole, cifg, forget_gate=False, layer_norm, zoneout) "
            "cannot be exported to PyTorch, Keras or ONNX; only the standard cell can"
        )
    return cell
