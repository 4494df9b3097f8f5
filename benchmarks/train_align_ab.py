"""``train_on_batch`` with training's buffers 64-byte aligned against the same code with them
shifted by 16 and 32 bytes, call by call in one process (``bench_speed.py``'s pattern: a 10 ms
pause, an untimed call, the timed call; the order reversed every round).

    python benchmarks/train_align_ab.py --configs C,A,D --rounds 30 [--threads 1]
    python benchmarks/train_align_ab.py --configs charlm --charlm out/bench/charlm_init.lstmkit

Configs are ``bench_speed.py``'s (mse + SGD), and ``charlm``: the model file ``--charlm`` (the
char LM of ``text_charlm_torch.py``: embedding, two stacked LSTM layers, dense) with Adam and
the sparse cross-entropy from logits, on random ids (B 32, T 50).

The workspace (``workspace.aligned_empty``) and ``lstm_fm``'s own buffers (``lstm_fm.aligned_empty``)
are swapped for a function that starts them ``off`` bytes past a cache line, which is what
``np.empty`` gave them before (16 bytes past a page for a fresh mmap, anywhere 16-aligned from
the heap). Each placement trains its own copy of the model, so its pooled buffers keep their
placement from call to call. Prints the median wall ms of each and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infer_align_ab import shifted


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="C,A,D")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--charlm", default="out/bench/charlm_init.lstmkit", help="for 'charlm'")
    args = p.parse_args(argv)
    import bench_speed as bs

    bs.set_threads(args.threads)
    import numpy as np

    from lstmkit.ops import backend, workspace
    from lstmkit.ops.fast import lstm_fm

    backend.set_backend("numba")
    real = workspace.aligned_empty
    modes = {"aligned": real, "+16 B": shifted(16), "+32 B": shifted(32)}
    for name in args.configs.split(","):
        # same weights and data, one copy per placement
        models = {k: charlm(args.charlm) if name == "charlm" else bs.build(name) for k in modes}
        res = {k: [] for k in modes}
        for r in range(args.rounds):
            for k in list(res) if r % 2 == 0 else list(res)[::-1]:
                workspace.aligned_empty = lstm_fm.aligned_empty = modes[k]
                model, x, y = models[k]
                time.sleep(0.01)
                model.train_on_batch(x, y)
                t0 = time.perf_counter()
                model.train_on_batch(x, y)
                res[k].append(time.perf_counter() - t0)
        workspace.aligned_empty = lstm_fm.aligned_empty = real
        base = np.median(res["aligned"])
        cells = ", ".join(
            f"{k} {1e3 * np.median(v):.3f} ({np.median(v) / base - 1:+.1%})" for k, v in res.items()
        )
        print(f"{name} ({args.threads} thread(s)): {cells} ms (wall medians)", flush=True)
    print(f"load average {os.getloadavg()}")


def charlm(path, B=32, T=50):
    """The char LM from ``path``, compiled as ``text_charlm_torch.py`` does, and random ids."""
    import numpy as np

    import lstmkit
    from lstmkit.losses import SparseCategoricalCrossentropy
    from lstmkit.optimizers import Adam

    model = lstmkit.load_model(path, compile=False)
    model.compile(Adam(3e-3, clipnorm=5.0), SparseCategoricalCrossentropy(from_logits=True), seed=0)
    n = model.layers[0].input_dim
    rng = np.random.default_rng(0)
    return model, rng.integers(0, n, (B, T)), rng.integers(0, n, (B, T))


if __name__ == "__main__":
    main()
