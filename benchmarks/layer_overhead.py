"""What a small training step's Dense and Concatenate calls cost beyond their NumPy arithmetic.

    PYTHONPATH=src python benchmarks/layer_overhead.py [--calls 5000]

On the forecaster's network of ``step_overhead.py`` (built by one short ``fit``), one thread:
microseconds a call (least of 7 blocks) of the first ``Dense`` (64 x 40 -> 32, relu) forward and
backward and of the ``Concatenate`` forward (64 x 32 with 64 x 8), each beside the bare NumPy
operations that compute the same values (``x @ kernel + bias``, ``relu``; the two products and
the bias sum of the backward; ``np.concatenate``), and ``check_array`` (every layer's input
check) with its finiteness pass alone. The differences are what a per-layer training plan could
take out of a step (except the finiteness pass, which the layers' errors rely on).
"""

from __future__ import annotations

import argparse
import os
import timeit


def _cases(np, model):
    from lstmkit.layers.base import check_array

    dense, cat = model.layers[4], model.layers[3]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 40)).astype(np.float32)
    k, b = dense.params["kernel"], dense.params["bias"]
    y, cache = dense.forward(x, training=True)
    dy = np.ones_like(y)
    a, c = np.ones((64, 32), np.float32), np.ones((64, 8), np.float32)

    def bare_backward():
        dz = dy * (cache.y > 0)
        return x.T @ dz, np.add.reduce(dz, axis=0), dz @ k.T

    return {
        "Dense forward": lambda: dense.forward(x, training=True),
        "  bare NumPy": lambda: np.maximum(x @ k + b, 0),
        "Dense backward": lambda: dense.backward(dy, cache),
        "  bare NumPy ": bare_backward,
        "Concatenate forward": lambda: cat.forward([a, c], training=True),
        "  np.concatenate": lambda: np.concatenate([a, c], axis=1),
        "check_array (64 x 40)": lambda: check_array(dense, x, last_dim=40),
        "  its isfinite pass": lambda: np.logical_and.reduce(np.isfinite(x), axis=None),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args(argv)
    os.environ.setdefault("LSTMKIT_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np
    from step_overhead import _model

    from lstmkit.ops import backend

    backend.set_backend("numba")
    model, config, x, y = _model(np)
    model.fit(x, y, epochs=1, batch_size=config.batch_size, verbose=0)
    for name, fn in _cases(np, model).items():
        us = 1e6 * min(timeit.repeat(fn, number=args.calls, repeat=7)) / args.calls
        print(f"{name:<24}{us:>8.1f} us")


if __name__ == "__main__":
    main()
