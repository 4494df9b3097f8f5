"""Training speed of the translation model: lstmkit's train step against the same model in
PyTorch (``tests/translate_torch.py``), same thread count, interleaved blocks of steps in one
process (same load), on random token batches shaped like the Tatoeba en->zh data.

One step = forward, backward, global-norm clipping at 1.0 and an Adam update, batch 64, source
lengths uniform in [5, 15] (mean 10), target lengths in [6, 18] (mean 12) plus BOS/EOS,
vocabularies 7,515 (source) and 4,484 (target), the recipe's sizes (emb 256, encoder 256 per
direction, decoder 512), dropout 0.2, label smoothing 0.1, float32. Reported: target tokens
per second (non-PAD labels), the median over rounds, and the ratio lstmkit / torch; also the
target tokens per CPU-second of the process (steadier than wall time on a shared machine).

    python benchmarks/translate_speed.py --threads 2 --rounds 5 --steps 10
    python benchmarks/translate_speed.py --threads 2 --profile   # where lstmkit's step goes
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="steps per block")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--src-vocab", type=int, default=7515)
    ap.add_argument("--tgt-vocab", type=int, default=4484)
    ap.add_argument("--profile", action="store_true", help="cProfile lstmkit's steps instead")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def set_threads(n: int) -> None:
    """BLAS and numba read these once, at import: call before importing numpy."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["LSTMKIT_NUM_THREADS"] = str(n)


def batches(np, args, count):
    rng = np.random.default_rng(args.seed)
    out = []
    for _ in range(count):
        ls = rng.integers(5, 16, args.batch)
        lt = rng.integers(6, 19, args.batch)
        src = np.zeros((args.batch, ls.max()), np.int64)
        tgt = np.zeros((args.batch, lt.max() + 2), np.int64)
        for b in range(args.batch):
            src[b, : ls[b]] = rng.integers(4, args.src_vocab, ls[b])
            tgt[b, 0], tgt[b, 1 : lt[b] + 1], tgt[b, lt[b] + 1] = (
                1,
                rng.integers(4, args.tgt_vocab, lt[b]),
                2,
            )
        out.append((src, tgt))
    return out


def lstmkit_stepper(args):
    import numpy as np

    from lstmkit.apps.translate_model import Translator
    from lstmkit.apps.translate_train import train_step
    from lstmkit.optimizers import Adam

    model = Translator(args.src_vocab, args.tgt_vocab)
    opt, rng = Adam(model.config.learning_rate), np.random.default_rng(args.seed)

    def step(src, tgt):  # what train_translator runs per batch
        return train_step(model, opt, src, tgt, rng)[1]

    return model, step


def torch_stepper(args, model):
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from translate_torch import TorchTranslator, copy_into

    cfg = model.config
    tm = TorchTranslator(
        args.src_vocab, args.tgt_vocab, cfg.embedding_dim, cfg.encoder_units,
        cfg.decoder_units, dropout=cfg.dropout, smoothing=cfg.label_smoothing,
    )  # fmt: skip
    copy_into(tm, model.params, np.random.default_rng(1))
    tm.train()
    opt = torch.optim.Adam(tm.parameters(), lr=cfg.learning_rate)

    def step(src, tgt):
        opt.zero_grad()
        loss = tm(torch.from_numpy(src), torch.from_numpy(tgt))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), cfg.clipnorm)
        opt.step()
        return int((tgt[:, 1:] != 0).sum())

    return step


def timed(step, data):
    """-> ``(tokens per wall second, tokens per CPU second of this process)``; on a shared
    machine the second is the steadier figure (with one thread: the work per token)."""
    t0, c0, tokens = time.perf_counter(), time.process_time(), 0
    for src, tgt in data:
        tokens += step(src, tgt)
    return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - c0)


def main(argv=None):
    args = parse(argv)
    set_threads(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    data = batches(np, args, args.steps)
    model, lk = lstmkit_stepper(args)
    lk(*data[0])  # compile / warm up
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("timed(lk, data)", globals(), {"lk": lk, "data": data}, "/tmp/tprof")
        pstats.Stats("/tmp/tprof").sort_stats("tottime").print_stats(25)
        return
    th = torch_stepper(args, model)
    th(*data[0])
    rates = {"lstmkit": [], "torch": []}
    cpu = {"lstmkit": [], "torch": []}
    for r in range(args.rounds):
        for name, step in (("lstmkit", lk), ("torch", th)):
            wall, per_cpu = timed(step, data)
            rates[name].append(wall)
            cpu[name].append(per_cpu)
        print(f"round {r + 1}: lstmkit {rates['lstmkit'][-1]:,.0f}  torch "
              f"{rates['torch'][-1]:,.0f} target tokens/s (per CPU-second: lstmkit "
              f"{cpu['lstmkit'][-1]:,.0f}, torch {cpu['torch'][-1]:,.0f})", flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        f"{args.threads} threads, batch {args.batch}, {args.rounds} rounds of {args.steps} steps: "
        f"lstmkit {med['lstmkit']:,.0f}, torch {med['torch']:,.0f} target tokens/s "
        f"(median); ratio {med['lstmkit'] / med['torch']:.2f}; per CPU-second lstmkit "
        f"{med_cpu['lstmkit']:,.0f}, torch {med_cpu['torch']:,.0f}"
    )


if __name__ == "__main__":
    main()
