"""Training memory against sequence length: full BPTT grows with T, ``fit(..., tbptt=K)`` stays
flat. A character model on the Shakespeare corpus (``../shared/data``): 4 streams of T characters
each, ``Embedding(V, 16) -> LSTM(128, return_sequences=True) -> Dense(V)`` (logits, sparse
cross-entropy), Adam, one epoch.

    python benchmarks/tbptt_memory.py                 # T = 1,000 / 10,000 / 100,000
    python benchmarks/tbptt_memory.py --json out/bench/tbptt_memory.json

Each (mode, T) runs in a fresh process: it builds the data and the model, runs one warm-up
step, resets the kernel's high-water mark (``/proc/self/clear_refs``), trains, and reports the
peak resident memory added by training (glibc's mmap threshold is fixed at 64 KiB so that freed
arrays go back to the system and the figure is a true high-water mark). The data themselves
(4 x T ids and targets) are allocated before the reset and not counted. Full BPTT at T=100,000
is not run: its cache alone would take ~1.5 GB (``--full-max``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "shakespeare" / "corpus.txt"

_CHILD = r"""
import gc, json, math, os, sys, time
import numpy as np
import lstmkit
from lstmkit.apps.text import build_language_model
from lstmkit.data.text import Vocabulary, tokenize
from lstmkit.losses import SparseCategoricalCrossentropy
from lstmkit.optimizers import Adam

T, K, B = {T}, {K}, 4
text = open({data!r}, encoding="utf-8").read()
vocab = Vocabulary.from_counts(tokenize(text, "char"), "char")
ids = vocab.ids(tokenize(text, "char"))[: B * T + 1]
if len(ids) < B * T + 1:
    raise SystemExit(f"corpus too short for B x T = {{B * T}}")
x = ids[:-1].reshape(B, T)  # stream b: characters b*T ... (b+1)*T - 1
y = ids[1:].reshape(B, T)
lstmkit.set_random_seed(0)
model = build_language_model(len(vocab), embed_dim=16, units=128, layers=1, stateful=False)
model.compile(Adam(3e-3, clipnorm=5.0), SparseCategoricalCrossentropy(from_logits=True), seed=0)
warm = min(T, K or 100)
model.train_on_batch(x[:, :warm], y[:, :warm])  # compile + allocate once
gc.collect()
def rss(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = rss("VmRSS:")
t0 = time.perf_counter()
hist = model.fit(x, y, epochs=1, batch_size=B, shuffle=False, tbptt=K or None, verbose=0)
seconds = time.perf_counter() - t0
print(json.dumps({{"peak_bytes": rss("VmHWM:") - before, "seconds": seconds,
                  "loss": hist.history["loss"][0], "uniform_loss": math.log(len(vocab)),
                  "steps": model.optimizer.iterations - 1}}))
"""


def run(T, K, data):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    r = subprocess.run(
        [sys.executable, "-c", _CHILD.format(T=T, K=K or 0, data=str(data))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"T={T} tbptt={K}: {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="1000,10000,100000")
    ap.add_argument("--tbptt", type=int, default=100)
    ap.add_argument("--full-max", type=int, default=10000, help="longest T for full BPTT")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(f"{'mode':<12}{'T':>9}{'steps':>7}{'peak MiB':>10}{'seconds':>9}{'loss':>8}")
    for T in (int(t) for t in args.lengths.split(",")):
        for mode, K in (("full BPTT", None), (f"tbptt={args.tbptt}", args.tbptt)):
            if K is None and T > args.full_max:
                continue
            r = run(T, K, args.data)
            rows.append({"mode": mode, "T": T, **r})
            print(
                f"{mode:<12}{T:>9}{r['steps']:>7}{r['peak_bytes'] / 2**20:>10.1f}"
                f"{r['seconds']:>9.1f}{r['loss']:>8.3f}",
                flush=True,
            )
    print(f"(uniform guess: loss {rows[0]['uniform_loss']:.3f} nats)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
