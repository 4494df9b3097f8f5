"""int8 weights (``lstmkit.quantize``): accuracy lost, speed and file sizes on the three apps.

    python benchmarks/quantize_report.py                     # all three models, ~15-25 min on a busy 2-core machine
    python benchmarks/quantize_report.py --only forecast --json out.json

Each model is trained small and quickly (seeded) on the shared data, then saved as a float file
(``model.save``, no optimizer), a quantised file (``save_quantized``), an ONNX graph
(``to_onnx``), an int8 ONNX graph (``to_onnx(quantize="int8")``: int8 + DequantizeLinear) and,
for comparison, onnxruntime's own ``quantize_dynamic`` of the float graph (per-channel int8
weights; LSTM becomes ``DynamicQuantizeLSTM``, GRU/RNN stay float).

- text: char-level LM (Embedding 32 -> LSTM 128 -> Dense V) on ``shared/data/shakespeare``
  (the first 90 % to train, ``--lm-steps`` updates), bits per char on the last 10 %;
- sentiment: BiLSTM 32 on ``shared/data/sentiment/rt_snippets.csv`` (a seeded 80/20 split),
  accuracy on the 20 %;
- forecast: ``train_forecaster`` on the built-in yearly sunspots (lookback 24, horizon 12),
  MASE and RMSE over the test part's origins.

Accuracy of the quantised file is measured through ``lstmkit.load_model`` (the same weights
``runtime.load`` builds; the test suite checks that both read the same numbers) and through
onnxruntime for the ONNX graphs. Speed: median of ``--rounds`` interleaved rounds, one thread
everywhere (``OPENBLAS_NUM_THREADS=1``, onnxruntime ``intra_op_num_threads=1``):

- ``runtime.load`` and ``runtime.predict`` for the float and the quantised file (dequantised at
  load, so predict runs the same float kernels);
- "per product": the LSTM recurrence of the text model written out in NumPy twice, once with
  the float ``recurrent_kernel`` and once with the int8 one dequantised in every product
  (``(h @ q) * s``: NumPy has no int8 matrix product, so ``q`` is converted to float at each
  step), to show what keeping int8 in memory costs;
- onnxruntime float, int8 (QDQ) and dynamic.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import contextlib
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# -- training -------------------------------------------------------------------------------------
def train_text(args):
    from lstmkit.apps.text import LMConfig, build_language_model, train_language_model

    text = (DATA / "shakespeare" / "corpus.txt").read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    cfg = LMConfig(embed_dim=32, units=128, layers=1, seq_len=50, batch_size=32, epochs=5,
                   max_steps=args.lm_steps, val_fraction=0.05, seed=0)  # fmt: skip
    # not stateful: the ONNX export (and so the comparison) needs plain sequences
    rep = train_language_model(text[:cut], cfg, model=None)
    model = build_language_model(len(rep.vocabulary), 32, 128, 1, stateful=False)
    for k, w in model.params.items():  # the layer names are fixed, so the keys match
        w[...] = rep.model.params[k]
    model.metadata = rep.model.metadata
    held = text[cut:][: args.lm_chars]
    ids = rep.vocabulary.encode(held)
    T = 100
    n = (len(ids) - 1) // T
    x = ids[: n * T].reshape(n, T)
    y = ids[1 : n * T + 1].reshape(n, T)
    return model, x, {"y": y}


def bits_per_char(logits, y):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, y[..., None], -1).mean()
    return float(nll / np.log(2))


def train_sentiment(args):
    from lstmkit.apps.classify import encode_texts, train_text_classifier
    from lstmkit.data.text import Vocabulary

    with open(DATA / "sentiment" / "rt_snippets.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    cut = int(0.8 * len(rows))
    tr = [rows[i] for i in order[:cut]]
    te = [rows[i] for i in order[cut:]]
    rep = train_text_classifier(
        [r["text"] for r in tr], [r["label"] for r in tr],
        test=([r["text"] for r in te], [r["label"] for r in te]),
        embed_dim=32, units=32, epochs=args.sentiment_epochs, patience=1, seed=0,
    )  # fmt: skip
    model = rep.model
    meta = model.metadata
    vocab = Vocabulary.from_dict(meta["vocabulary"])
    x = encode_texts(vocab, [r["text"] for r in te], meta["maxlen"])
    y = np.array([meta["classes"].index(r["label"]) for r in te])
    return model, x, {"y": y}


def train_forecast(args):
    from lstmkit.apps.forecast import _windows, train_forecaster
    from lstmkit.data.builtin import load_series

    values, _, _ = load_series("sunspots")
    rep = train_forecaster(values, lookback=24, horizon=12, epochs=args.forecast_epochs, seed=0)
    model, N = rep.model, len(values)
    origins = range(max(N - rep.n_test, 24), N - 12 + 1)
    X, truth = _windows(np.asarray(values, np.float64), origins, 24, 12)
    extra = {"values": values, "origins": origins, "insample": values[: rep.n_train],
             "season": rep.season, "table": rep.table["lstm"], "truth": truth, "X": X}  # fmt: skip
    return model, None, extra


# -- scoring ---------------------------------------------------------------------------------------
def score(kind, model_or_fn, x, extra):
    """The app's metric for a model (anything with ``predict``) or a ``predict``-like callable."""
    predict = model_or_fn if callable(model_or_fn) else model_or_fn.predict
    if kind == "text":
        return {"bpc": bits_per_char(predict(x), extra["y"])}
    if kind == "sentiment":
        p = predict(x)  # (n, 1) sigmoid for two classes, else (n, C) logits
        label = (p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(-1)
        return {"accuracy": float((label == extra["y"]).mean())}
    return forecast_scores(model_or_fn, extra)


def forecast_scores(model_or_fn, extra):
    from lstmkit.apps.forecast import _decode, _encode, forecaster_meta
    from lstmkit.data.baselines import mase, rmse

    model = extra["model"]
    meta = forecaster_meta(model)
    X = extra["X"]
    enc, mu, sd = _encode(meta, X)  # as forecast_many does, so any predict can be scored
    predict = model_or_fn if callable(model_or_fn) else model_or_fn.predict
    out = predict(enc)
    pred = _decode(meta, out, mu, sd)
    truth = extra["truth"]
    return {
        "MASE": float(mase(truth.ravel(), pred.ravel(), extra["insample"], extra["season"])),
        "RMSE": float(rmse(truth, pred)),
    }


# -- timing ------------------------------------------------------------------------------------------
def interleaved(fns: dict, rounds: int, repeat: int) -> dict:
    """Median seconds per call of each function: one warm-up call each, then rounds in which
    every function runs ``repeat`` times, in a new (seeded) random order each round, so that
    the load of a shared machine does not always fall on the same contender."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    rng = np.random.default_rng(0)
    names = list(fns)
    for _ in range(rounds):
        for k in rng.permutation(names):
            fn = fns[k]
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            times[k].append((time.perf_counter() - t0) / repeat)
    return {k: float(np.median(v)) for k, v in times.items()}


def ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def ort_predict(sess, dtype):
    return lambda x: sess.run(["y"], {"x": x.astype(dtype)})[0]


def per_product_recurrence(model, x):
    """``(float loop, int8-per-product loop)``: the text model's LSTM recurrence over ``x``'s
    input projection, with ``h @ R`` or ``(h @ q) * s`` (the one difference)."""
    from lstmkit.quantize import quantize_array

    lstm = next(la for la in model.layers if type(la).__name__ == "LSTM")
    p = lstm.params
    R = p["recurrent_kernel"]
    q, s = quantize_array(R)
    H = R.shape[0]
    emb = model.layers[0].params["embeddings"][x[:8]]  # (B, T, E)
    xw = np.einsum("bte,eg->tbg", emb, p["kernel"]) + p["bias"]  # (T, B, 4H)

    def run(product):
        h = np.zeros((xw.shape[1], H), np.float32)
        c = np.zeros_like(h)
        for t in range(xw.shape[0]):
            z = xw[t] + product(h)
            i, f, g, o = np.split(z, 4, axis=1)
            i, f, o = (1 / (1 + np.exp(-v)) for v in (i, f, o))
            c = f * c + i * np.tanh(g)
            h = o * np.tanh(c)
        return h

    return (lambda: run(lambda h: h @ R)), (lambda: run(lambda h: (h @ q) * s))


# -- one model --------------------------------------------------------------------------------------
def measure(kind, model, x, extra, args, tmp):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from lstmkit import load_model, runtime
    from lstmkit.interop.onnx import to_onnx
    from lstmkit.quantize import save_quantized

    paths = {k: tmp / f"{kind}.{k}" for k in ("lstmkit", "q.lstmkit", "onnx", "q.onnx", "dyn.onnx")}
    model.save(paths["lstmkit"], include_optimizer=False)
    save_quantized(model, paths["q.lstmkit"])
    to_onnx(model, paths["onnx"])
    to_onnx(model, paths["q.onnx"], quantize="int8")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the inputs it cannot quantise
        quantize_dynamic(os.fspath(paths["onnx"]), os.fspath(paths["dyn.onnx"]),
                         weight_type=QuantType.QInt8, per_channel=True)  # fmt: skip
    sizes = {k: os.path.getsize(p) for k, p in paths.items()}

    extra = {**extra, "model": model}
    if kind == "forecast":
        x = _forecast_input(model, extra)
    q_model = load_model(paths["q.lstmkit"], compile=False)
    sessions = {k: ort_session(paths[k]) for k in ("onnx", "q.onnx", "dyn.onnx")}
    xin = x if x.dtype.kind == "f" else x.astype(np.int64)
    predictors = {
        "float": model,
        "int8 (lstmkit)": q_model,
        "onnx float": ort_predict(sessions["onnx"], xin.dtype),
        "onnx int8 (QDQ)": ort_predict(sessions["q.onnx"], xin.dtype),
        "onnx dynamic": ort_predict(sessions["dyn.onnx"], xin.dtype),
    }
    acc = {k: score(kind, p, xin, extra) for k, p in predictors.items()}
    if kind == "forecast":  # the same test origins as train_forecaster's own table
        assert np.isclose(acc["float"]["MASE"], extra["table"]["MASE"]), (acc, extra["table"])

    rt_f, rt_q = runtime.load(paths["lstmkit"]), runtime.load(paths["q.lstmkit"])
    xb = xin[: args.batch]
    fns = {
        "runtime.load float": lambda: runtime.load(paths["lstmkit"]),
        "runtime.load int8": lambda: runtime.load(paths["q.lstmkit"]),
        "runtime.predict float": lambda: rt_f.predict(xb),
        "runtime.predict int8": lambda: rt_q.predict(xb),
        "onnxruntime float": lambda: sessions["onnx"].run(["y"], {"x": xb}),
        "onnxruntime int8 (QDQ)": lambda: sessions["q.onnx"].run(["y"], {"x": xb}),
        "onnxruntime dynamic": lambda: sessions["dyn.onnx"].run(["y"], {"x": xb}),
    }
    if kind == "text":
        loop_f, loop_q = per_product_recurrence(model, x)
        fns["numpy recurrence, float R"] = loop_f
        fns["numpy recurrence, int8 R per product"] = loop_q
    speed = interleaved(fns, args.rounds, args.repeat)
    params = sum(v.size for v in model.params.values())
    return {"params": int(params), "batch": list(xb.shape), "sizes": sizes, "accuracy": acc,
            "seconds": speed}  # fmt: skip


def _forecast_input(model, extra):
    from lstmkit.apps.forecast import _encode, forecaster_meta

    enc, _, _ = _encode(forecaster_meta(model), extra["X"])
    return enc


# -- report -----------------------------------------------------------------------------------------
def print_report(name, r):
    print(f"\n## {name}: {r['params']:,} parameters, timed batch {tuple(r['batch'])}")
    print("| file | bytes | vs float |")
    print("|---|---|---|")
    for base in ("lstmkit", "onnx"):
        for k in (base, f"q.{base}", "dyn.onnx" if base == "onnx" else None):
            if k:
                ratio = r["sizes"][base] / r["sizes"][k]
                print(f"| {k} | {r['sizes'][k]:,} | {ratio:.2f}x smaller |")
    print("\n| weights | " + " | ".join(next(iter(r["accuracy"].values()))) + " |")
    print("|---|" + "---|" * len(next(iter(r["accuracy"].values()))))
    for k, v in r["accuracy"].items():
        print(f"| {k} | " + " | ".join(f"{x:.4f}" for x in v.values()) + " |")
    print("\n| timed | ms |")
    print("|---|---|")
    for k, v in r["seconds"].items():
        print(f"| {k} | {1e3 * v:.3f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["text", "sentiment", "forecast"], action="append")
    ap.add_argument("--lm-steps", type=int, default=1000, help="char-LM updates (default 1000)")
    ap.add_argument("--lm-chars", type=int, default=50_000, help="held-out chars scored")
    ap.add_argument("--sentiment-epochs", type=int, default=3)
    ap.add_argument("--forecast-epochs", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32, help="batch of the timed predict calls")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"error: the shared data directory {DATA} is missing")
    trainers = {"text": train_text, "sentiment": train_sentiment, "forecast": train_forecast}
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} (machine shared; times are upper bounds)")
    out = {"loadavg_start": load}
    with tempfile.TemporaryDirectory() as d:
        for kind in args.only or list(trainers):
            t0 = time.perf_counter()
            model, x, extra = trainers[kind](args)
            print(f"{kind}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
            out[kind] = measure(kind, model, x, extra, args, Path(d))
            print_report(kind, out[kind])
    out["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end: {out['loadavg_end'][0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
