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

``--fit``: cases trained by ``fit`` instead (shuffled batches, the last one short, so every
step's shapes are not the same), the digest of the history's losses, the final weights and the
predictions: the forecaster's network (``forecast_network.build_network``: LSTM, Concatenate
with the known-ahead inputs, a series-id Embedding, Dense, Dense; pinball loss, Adam with
clipnorm, the forecaster's callbacks) and a functional model (Embedding of tokens and an LSTM
of a sequence, Concatenate, Dense softmax, cross-entropy and mse on two outputs, RMSprop), each
in float32 and float64; and a Sequential LSTM model by ``fit`` (mse, SGD with momentum).
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


def forecaster(dtype, seed=0):
    """The forecaster's network at the shapes of ``benchmarks/step_overhead.py`` with a
    4-wide series-id embedding; its data; its fit arguments."""
    import dataclasses

    from lstmkit import random as _random
    from lstmkit.apps import forecast_network as fn
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import quantiles_of
    from lstmkit.optimizers import Adam

    config = dataclasses.replace(ForecastConfig(), embedding=4).validate()
    facts = {"horizon": 4, "quantiles": quantiles_of(config), "ids": list(range(4))}
    _random.set_random_seed(seed)
    model = fn.build_network(facts, config, 4, 4, 8, 4)
    if dtype != "float32":
        model = _recast(model, dtype)
    loss = fn.pinball_loss(facts["quantiles"], facts["horizon"])
    model.compile(optimizer=Adam(config.learning_rate, clipnorm=1.0), loss=loss, seed=seed)
    rng = np.random.default_rng(seed + 1)
    n = 150
    x = {"series": rng.standard_normal((n, 4, 4)).astype(dtype),
         "ahead": rng.standard_normal((n, 8)).astype(dtype),
         "id": rng.integers(1, 5, (n, 1))}  # fmt: skip
    y = rng.standard_normal((n, 4 * len(facts["quantiles"]))).astype(dtype)
    cbs = fn._callbacks(config, n, None, None)
    return model, x, y, {"batch_size": 64, "callbacks": cbs}


def _recast(model, dtype):
    """The same architecture with every layer in ``dtype`` (from its config), weights cast."""
    from lstmkit.models import Model

    cfg = model.get_config()
    for layer in cfg["layers"]:  # (an integer Input stays one)
        if str(layer["config"].get("dtype") or "float32").startswith("float"):
            layer["config"]["dtype"] = dtype
    new = Model.from_config(cfg)
    new.set_weights([w.astype(dtype) for w in model.get_weights()])
    return new


def functional(dtype, seed=0):
    """Tokens -> Embedding -> LSTM and a sequence -> LSTM, concatenated -> two Dense outputs."""
    import lstmkit
    from lstmkit import layers
    from lstmkit.graph import Input
    from lstmkit.models import Model

    lstmkit.set_random_seed(seed)
    tok = Input(shape=(6,), dtype="int32", name="tok")
    seq = Input(shape=(6, 3), dtype=dtype, name="seq")
    e = layers.LSTM(16, dtype=dtype)(layers.Embedding(20, 8, dtype=dtype)(tok))
    s = layers.LSTM(16, return_sequences=True, dtype=dtype)(seq)
    s = layers.LSTM(8, dtype=dtype)(s)
    h = layers.Dense(24, activation="tanh", dtype=dtype)(layers.Concatenate()([e, s]))
    cls = layers.Dense(5, activation="softmax", dtype=dtype, name="cls")(h)
    reg = layers.Dense(2, dtype=dtype, name="reg")(h)
    model = Model([tok, seq], [cls, reg])
    opt = lstmkit.optimizers.RMSprop(3e-3, clipnorm=0.5)
    model.compile(opt, ["sparse_categorical_crossentropy", "mse"], seed=seed,
                  loss_weights=[1.0, 0.5])  # fmt: skip
    rng = np.random.default_rng(seed + 1)
    n = 100
    x = [rng.integers(0, 20, (n, 6)), rng.standard_normal((n, 6, 3)).astype(dtype)]
    y = [rng.integers(0, 5, n), rng.standard_normal((n, 2)).astype(dtype)]
    return model, x, y, {"batch_size": 32}


def sequential(dtype, seed=0):
    """A Sequential LSTM(32) -> Dense(1) model, mse, SGD with momentum."""
    import lstmkit
    from lstmkit import layers

    lstmkit.set_random_seed(seed)
    model = lstmkit.Sequential(
        [layers.LSTM(32, input_shape=(5, 3), dtype=dtype), layers.Dense(1, dtype=dtype)]
    )
    model.compile(lstmkit.optimizers.SGD(1e-2, momentum=0.9), "mse", seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((90, 5, 3)).astype(dtype)
    return model, x, rng.standard_normal((90, 1)).astype(dtype), {"batch_size": 16}


FIT_CASES = {
    "fc32": (forecaster, "float32"),
    "fc64": (forecaster, "float64"),
    "fn32": (functional, "float32"),
    "fn64": (functional, "float64"),
    "sq32": (sequential, "float32"),
    "sq64": (sequential, "float64"),
}


def fit_digest(name, epochs):
    """One line: the case, the SHA-256 of its fit history, final weights and predictions."""
    make, dtype = FIT_CASES[name]
    model, x, y, kw = make(dtype)
    hist = model.fit(x, y, epochs=epochs, verbose=0, **kw).history
    h = hashlib.sha256()
    for k in sorted(hist):
        h.update(np.asarray(hist[k], np.float64).tobytes())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    preds = model.predict(x, batch_size=64)
    for p in preds if isinstance(preds, list) else [preds]:
        h.update(np.ascontiguousarray(p).tobytes())
    dts = sorted({str(w.dtype) for w in model.get_weights()})
    return f"{name}: {h.hexdigest()[:32]} loss {hist['loss'][-1]:.9g} {dts}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cases", default=None)
    p.add_argument("--fit", action="store_true", help="the fit cases (FIT_CASES)")
    p.add_argument("--epochs", type=int, default=3, help="of each fit case")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LSTMKIT_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    from lstmkit.ops import backend

    backend.set_backend("numba")
    if args.fit:
        for name in (args.cases or ",".join(FIT_CASES)).split(","):
            print(fit_digest(name, args.epochs), flush=True)
        return
    for name in (args.cases or ",".join(CASES)).split(","):
        print(digest(name, args.steps), flush=True)


if __name__ == "__main__":
    main()
