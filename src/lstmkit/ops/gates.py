"""Gate-order constants: the one place that says how the stacked gate blocks are laid out.

lstmkit stores parameters with Keras role names and Keras gate orders:

- LSTM: ``kernel (D, 4H)``, ``recurrent_kernel (H, 4H)``, ``bias (4H,)``; blocks i, f, g(c), o.
- GRU (reset_after=True, the cuDNN/PyTorch convention): ``kernel (D, 3H)``,
  ``recurrent_kernel (H, 3H)``, ``bias (2, 3H)`` = [input bias; recurrent bias]; blocks z, r, n(h).
- SimpleRNN: ``kernel (D, H)``, ``recurrent_kernel (H, H)``, ``bias (H,)``.

PyTorch and ONNX orders live in ``lstmkit.interop``; they are permutations of these.
"""

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("z", "r", "n")


def block(k: int, units: int) -> slice:
    """Slice of gate block ``k`` along the last axis of a stacked (..., G*H) array."""
    return slice(k * units, (k + 1) * units)


def split(a, n: int) -> tuple:
    """The ``n`` gate blocks of a stacked ``(..., n*H)`` array, in storage order, as views (or
    ``(None,) * n`` for ``a`` None: a cache that did not store it)."""
    if a is None:
        return (None,) * n
    units = a.shape[-1] // n
    return tuple(a[..., block(k, units)] for k in range(n))
