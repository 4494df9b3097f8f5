"""Sequence-mask helpers for post-padded batches.

These work batch-major, like Keras inputs and masks: ``mask (B, T)`` bool, True on valid steps,
``x (B, T, ...)``. The recurrent ops are time-major and take ``mask.T``.

``reverse_sequences`` reverses each sequence within its own length and leaves the padding at the
end, which is what a masked ``go_backwards`` and ``Bidirectional`` need: the backward direction
then starts at each sequence's last real step, as PyTorch's packed sequences do.
"""

from __future__ import annotations

import numpy as np


def mask_from_lengths(lengths, T: int) -> np.ndarray:
    """``lengths (B,)`` of ints in ``[0, T]`` -> post-padded ``mask (B, T)`` bool."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"argument 'lengths' must be a 1-D integer array; got {lengths.dtype} "
            f"with shape {lengths.shape}"
        )
    if lengths.size and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(
            f"argument 'lengths' must lie in [0, {T}]; got values in "
            f"[{lengths.min()}, {lengths.max()}]"
        )
    return np.arange(T) < lengths[:, None]


def lengths_from_mask(mask) -> np.ndarray:
    """Post-padded ``mask (B, T)`` -> ``lengths (B,)``; a mask with holes is an error."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"argument 'mask' must have shape (batch, timesteps); got {mask.shape}")
    lengths = mask.sum(axis=1)
    holes = (mask != mask_from_lengths(lengths, mask.shape[1])).any(axis=1)  # (B,)
    if holes.any():
        raise ValueError(
            "argument 'mask' must be post-padded (each row True then False); "
            f"got holes in rows {np.flatnonzero(holes).tolist()}"
        )
    return lengths


def reverse_sequences(x, mask=None) -> np.ndarray:
    """Reverse ``x (B, T, ...)`` along time, each row within its length when ``mask`` is given.

    A fresh array; applying it twice gives ``x`` back.
    """
    x = np.asarray(x)
    if mask is None:
        return x[:, ::-1].copy()
    B, T = x.shape[:2]
    if np.shape(mask) != (B, T):
        raise ValueError(f"argument 'mask' must have shape ({B}, {T}); got {np.shape(mask)}")
    lengths = lengths_from_mask(mask)[:, None]  # (B, 1)
    t = np.arange(T)
    src = np.where(t < lengths, lengths - 1 - t, t)  # (B, T) padding stays where it is
    return x[np.arange(B)[:, None], src]
