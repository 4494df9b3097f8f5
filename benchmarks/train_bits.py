"""A digest of what a few training steps produce, to compare two source trees bit for bit.

    PYTHONPATH=/tmp/base-x/src python benchmarks/train_bits.py > base.txt
    PYTHONPATH=src python benchmarks/train_bits.py > new.txt && diff base.txt new.txt

Not a timing: a witness for changes that must keep every bit (buffer placement, allocation),
run once against a ``git archive`` of the previous commit. Each case builds a model from a fixed
seed, trains ``--steps`` steps of ``train_on_batch`` (mse, Adam) on the numba backend with
``--threads`` threads, then predicts; it prints one line per case: the SHA-256 of the losses,
every final weight and the predictions (their bytes), and the first loss for the eye.
Cases: single LSTM layers at B 16/32/64 (float32 and float64), a mask, dropout and recurrent
dropout, a stacked and a bidirectional model, ``return_sequences`` False.
"""

from __future__ import annotations

import argparse
import hashlib
import os

import numpy as np

CASES = {  # name: (T, B, D, H, dtype, options)
    "A32": (20, 32, 32, 128, "float32", {}),
    "C64": (12, 64, 64, 256, "float32", {}),
    "B16": (30, 16, 16, 64, "float32", {}),
    "f64": (10, 32, 8, 128, "float64", {}),
    "mask": (15, 32, 8, 128, "float32", {"mask": True}),
    "drop": (15, 32, 8, 128, "float32", {"dropout": 0.2, "recurrent_dropout": 0.3}),
    "stack": (15, 32, 16, 128, "float32", {"stack": 2}),
    "bidi": (15, 32, 16, 128, "float32", {"bidi": True}),
    "last": (15, 48, 16, 128, "float32", {"last": True}),
}


def build(T, B, D, H, dtype, opt, seed=0):
    """The case's model (mse + Adam), weights uniform in +-0.2 from ``seed``."""
    import lstmkit
    from lstmkit import layers

    lstmkit.set_random_seed(seed)
    first = [layers.Masking(0.0, input_shape=(T, D))] if opt.get("mask") else []
    n, bidi = opt.get("stack", 1), opt.get("bidi", False)
    stack = []
    for k in range(n):
        shape = {} if first or k else {"input_shape": (T, D)}  # on the outermost layer
        lstm = layers.LSTM(
            H,
            return_sequences=not opt.get("last") or k + 1 < n,
            dtype=dtype,
            dropout=opt.get("dropout", 0.0),
            recurrent_dropout=opt.get("recurrent_dropout", 0.0),
            **({} if bidi else shape),
        )
        stack.append(layers.Bidirectional(lstm, **shape) if bidi else lstm)
    model = lstmkit.Sequential(first + stack)
    model.build()
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        for v in layer.params.values():
            v[...] = rng.uniform(-0.2, 0.2, v.shape)
    model.compile(lstmkit.optimizers.Adam(1e-2), "mse", seed=seed)
    return model


def digest(name, steps):
    """One line: the case, the SHA-256 of its losses, final weights and predictions."""
    T, B, D, H, dtype, opt = CASES[name]
    model = build(T, B, D, H, dtype, opt)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    if opt.get("mask"):
        x[B // 2 :, T - T // 3 :] = 0  # padded tails on half the batch
    y = rng.standard_normal(model.predict(x, batch_size=B).shape).astype(dtype)
    losses = [model.train_on_batch(x, y) for _ in range(steps)]
    h = hashlib.sha256(np.asarray(losses, np.float64).tobytes())
    for layer in model.layers:
        for k in sorted(layer.params):
            h.update(np.ascontiguousarray(layer.params[k]).tobytes())
    h.update(np.ascontiguousarray(model.predict(x, batch_size=B)).tobytes())
    return f"{name}: {h.hexdigest()[:32]} first loss {float(losses[0]):.9g}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cases", default=",".join(CASES))
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LSTMKIT_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    from lstmkit.ops import backend

    backend.set_backend("numba")
    for name in args.cases.split(","):
        print(digest(name, args.steps), flush=True)


if __name__ == "__main__":
    main()
